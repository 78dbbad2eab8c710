"""The wire shape of `GET /v1/reports/funnel`: the JSON of `leadscore report funnel --format json`
(`features.report.formats.to_records`), so a client reads files' and the service's reports alike.

A row names its group under the key the report is grouped by (`"channel": "email"`, `"week":
"2024-01-01"`, `"industry": "Retail"`); the measures follow, each described in `measures`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from features.report.exploration import FIGURES
from features.report.measures import MEASURES

_WORDS = {m.name: m.description for m in MEASURES}


class FunnelRow(BaseModel):
    """One group (or the total); its label is under the key named by `by`."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "description": "One group of the report. Its label is the value of the key named "
            "like the report's `by` (e.g. `\"channel\": \"email\"`; the total's is `(total)`); "
            "counts are fractional credits under linear attribution; null: no value (e.g. no "
            "closed lead for a win rate).",
            "examples": [{"channel": "email", "leads": 3, "sent_to_sales": 1, "won": 1,
                          "lost": 1, "open": 1, "win_rate": 0.5, "win_rate_low": 0.0945,
                          "win_rate_high": 0.9055, "won_with_amount": 1, "revenue_won": 1000.0,
                          "average_deal": 1000.0, "median_days_to_close": 20.0,
                          "p75_days_to_close": 20.0}],
        },
    )  # fmt: skip

    leads: float = Field(description=_WORDS["leads"])
    sent_to_sales: float | None = Field(None, description=_WORDS["sent_to_sales"])
    won: float = Field(description=_WORDS["won"])
    lost: float = Field(description=_WORDS["lost"])
    open: float = Field(description=_WORDS["open"])
    win_rate: float | None = Field(None, description=_WORDS["win_rate"])
    win_rate_low: float | None = Field(None, description=_WORDS["win_rate_low"])
    win_rate_high: float | None = Field(None, description=_WORDS["win_rate_high"])
    won_with_amount: float = Field(description=_WORDS["won_with_amount"])
    revenue_won: float | None = Field(None, description=_WORDS["revenue_won"])
    average_deal: float | None = Field(None, description=_WORDS["average_deal"])
    median_days_to_close: float | None = Field(None, description=_WORDS["median_days_to_close"])
    p75_days_to_close: float | None = Field(None, description=_WORDS["p75_days_to_close"])


class MeasureWords(BaseModel):
    name: str
    unit: Literal["leads", "share", "amount", "days"]
    description: str


def _figure(name: str, example: float | int | None) -> Any:
    return Field(description=FIGURES[name], examples=[example])


class FunnelExploration(BaseModel):
    """What the threshold misses among the report's leads (`features.report.exploration`)."""

    weeks: float = _figure("weeks", 13.0)
    held_back: int = _figure("held_back", 1800)
    held_back_per_week: float = _figure("held_back_per_week", 138.5)
    explored: int = _figure("explored", 90)
    explored_won: int = _figure("explored_won", 9)
    explored_lost: int = _figure("explored_lost", 51)
    explored_open: int = _figure("explored_open", 30)
    win_rate: float | None = _figure("win_rate", 0.15)
    win_rate_low: float | None = _figure("win_rate_low", 0.081)
    win_rate_high: float | None = _figure("win_rate_high", 0.261)
    forgone_wins_per_week: float | None = _figure("forgone_wins_per_week", 20.8)
    forgone_wins_per_week_low: float | None = _figure("forgone_wins_per_week_low", 11.2)
    forgone_wins_per_week_high: float | None = _figure("forgone_wins_per_week_high", 36.2)


class FunnelReport(BaseModel):
    report: Literal["funnel"] = "funnel"
    by: str = Field(description="What the rows are grouped by (the key naming each row's group).")
    attribution: Literal["first_touch", "last_touch", "linear"] | None = Field(
        None, description="How touchpoints share a lead (channel and campaign reports only)."
    )
    from_: str | None = Field(
        None, alias="from", description="Leads created from this moment (ISO 8601, included)."
    )
    to: str | None = Field(None, description="Leads created before this moment (excluded).")
    rows: list[FunnelRow] = Field(description="One row per group, in the report's order.")
    total: FunnelRow = Field(description="Every selected lead once, whatever the attribution.")
    exploration: FunnelExploration | None = Field(
        None,
        description="What the threshold misses among the selected leads: those whose latest "
        "score decided nurture or was sent to sales by the policy's exploration rate are held "
        "back; the explored ones' win rate with its 95% interval, and that rate times the "
        "held-back leads a week (the period's weeks: [from, to), an open bound at the first or "
        "last lead's week). Null when the period has no length (no lead and an open bound).",
    )
    measures: list[MeasureWords] = Field(description="What each measure means, in plain words.")
