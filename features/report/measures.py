"""The funnel report's vocabulary, declared once: measures, groupings and attribution rules.

`features.report.funnel` computes exactly these measures; the CLI's output, the JSON records, the
API and the /ops tooltips take names and descriptions from here, so a later SQL version of the
report has one definition to match.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Measure:
    """One column of the funnel report."""

    name: str
    unit: str  # "leads" (a count, fractional under linear credit), "share", "amount", "days"
    description: str


# Whole leads under every rule but linear multi-touch, where a lead's credit is split over its
# touchpoints; the descriptions say "credited" where that matters.
MEASURES: tuple[Measure, ...] = (
    Measure(
        "leads",
        "leads",
        "Leads created in the period (under linear attribution: the sum of their credits).",
    ),
    Measure(
        "sent_to_sales",
        "leads",
        "Leads whose latest decision is 'sales' (empty when no scores were given).",
    ),
    Measure("won", "leads", "Leads whose deal was won (the earliest outcome of a lead counts)."),
    Measure("lost", "leads", "Leads whose deal was lost."),
    Measure("open", "leads", "Leads without an outcome yet."),
    Measure(
        "win_rate",
        "share",
        "Lead-to-sale conversion among closed leads: won / (won + lost); empty when none closed.",
    ),
    Measure(
        "win_rate_low",
        "share",
        "Lower end of the Wilson 95% confidence interval of the win rate.",
    ),
    Measure(
        "win_rate_high",
        "share",
        "Upper end of the Wilson 95% confidence interval of the win rate.",
    ),
    Measure(
        "won_with_amount",
        "leads",
        "Won leads whose deal has an amount; revenue and average deal count only these.",
    ),
    Measure(
        "revenue_won",
        "amount",
        "Sum of the amounts of won deals (return per group); empty when deals were won but "
        "none has an amount.",
    ),
    Measure(
        "average_deal",
        "amount",
        "Mean amount of a won deal: revenue_won / won_with_amount; empty without won amounts.",
    ),
    Measure(
        "median_days_to_close",
        "days",
        "Median days from lead creation to the won deal's close (weighted by credit).",
    ),
    Measure(
        "p75_days_to_close",
        "days",
        "75th percentile of days from lead creation to the won deal's close: three in four "
        "won deals closed within this many days (weighted by credit).",
    ),
)

MEASURE_NAMES: tuple[str, ...] = tuple(m.name for m in MEASURES)


@dataclass(frozen=True)
class Attribution:
    """How a lead's credit is shared among its touchpoints' channels or campaigns."""

    name: str
    description: str


ATTRIBUTIONS: tuple[Attribution, ...] = (
    Attribution(
        "first_touch",
        "The whole lead goes to the channel (or campaign) of its earliest touchpoint.",
    ),
    Attribution(
        "last_touch",
        "The whole lead goes to the channel (or campaign) of its latest touchpoint up to the "
        "close.",
    ),
    Attribution(
        "linear",
        "Each touchpoint up to the close gets an equal share of the lead: 2 email touches and "
        "1 webinar touch give email 2/3 of the lead and webinar 1/3.",
    ),
)

ATTRIBUTION_NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTIONS)


@dataclass(frozen=True)
class Grouping:
    """A built-in way to split the report; any lead attribute column is one too."""

    name: str
    description: str
    needs_scores: bool = False
    uses_touchpoints: bool = False


GROUPINGS: tuple[Grouping, ...] = (
    Grouping(
        "channel",
        "Marketing channel of the touchpoints, by the attribution rule; leads without "
        "touchpoints up to their close are '(none)'.",
        uses_touchpoints=True,
    ),
    Grouping(
        "campaign",
        "Campaign of the touchpoints, by the attribution rule; touches without a campaign are "
        "'(no campaign)', leads without touchpoints '(none)'.",
        uses_touchpoints=True,
    ),
    Grouping("week", "Week of lead creation (UTC), named by its Monday."),
    Grouping("grade", "Grade of the lead's latest score (A-D).", needs_scores=True),
    Grouping(
        "score_band",
        "Latest score in bands of ten points (0-9, 10-19, ..., 90-100).",
        needs_scores=True,
    ),
    Grouping(
        "decision",
        "Latest hand-off decision (sales, nurture, disqualify).",
        needs_scores=True,
    ),
)

GROUPING_NAMES: tuple[str, ...] = tuple(g.name for g in GROUPINGS)

# Labels of the rows that are not a value of the grouping column.
TOTAL = "(total)"
NO_TOUCHPOINTS = "(none)"
NO_CAMPAIGN = "(no campaign)"
MISSING = "(missing)"
NOT_SCORED = "(not scored)"
