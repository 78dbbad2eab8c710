"""The funnel report: leads -> sales -> won deals, revenue and time to close, per group.

Pure and vectorised: canonical frames in (see docs/design.md and `features.data.loading`), one
DataFrame out, no files, no Python loop over leads or touchpoints (1M leads and 10M touchpoints
take seconds: `bench/funnel.py`). The measures are declared in `features.report.measures`.

How leads are counted
- Leads are selected by creation time: `start <= created_at < end` (either bound optional; a
  bound without a time zone is UTC).
- A lead's outcome is its earliest outcome row (as `features.snapshots` does); ties on `closed_at`
  go to the row listed first. Leads without an outcome are open. Outcomes without a won value are
  ignored.
- Days to close = (closed_at - created_at) in days, for won deals only.
- Amounts: revenue and average deal use the won deals that have an amount (`won_with_amount`);
  revenue is empty (NaN) when a group won deals but none has an amount, 0 when it won none.
- Scores (optional): one row per lead is used, the latest by `scored_at` when that column is there,
  else the last row given for the lead. Leads without a score count as not sent to sales.
- What the threshold misses (`attrs["exploration"]`, with decisions): of the selected leads, those
  whose latest score decided nurture or was sent to sales by the policy's exploration rate
  (`exploration` column, false when absent) are held back; the explored ones' win rate with its
  Wilson interval, and that rate times the held-back leads a week (`features.report.exploration`;
  the weeks: [start, end), an open bound at the first or last lead's week, Monday to Sunday UTC).

Channel and campaign reports (attribution)
- Only touchpoints at or before the lead's close count: a touch after the deal closed is no credit
  for it. Open leads count all their touchpoints. Leads with none are the group '(none)'.
- first_touch / last_touch: the whole lead goes to its earliest / latest counted touch (a tie on
  `occurred_at` goes to the touch listed first / last).
- linear: each counted touch gets 1/k of its lead (k = the lead's counted touches), so every measure
  that counts leads (leads, sent_to_sales, won, lost, open, won_with_amount) and revenue is a sum of
  fractional credits; win rate and average deal are ratios of those sums. The Wilson interval is
  computed with the credited n = won + lost, so it is indicative there.

Percentiles of days to close are weighted quantiles: each won deal in a group is a point at its
days to close with a weight equal to its credit (1, or 1/k under linear). With the deals sorted by
days, deal i sits at position (cumulative weight up to and including i - weight_i / 2) / total
weight of the group, and the q-quantile interpolates linearly between the two deals whose positions
bracket q (the first or last deal's days outside them). With equal weights this is the ordinary
median and numpy's `percentile(method="hazen")`: the p75 of 10, 20, 30, 40 days is 35.

The totals row counts every selected lead once, with weight 1, whatever the attribution rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from features.report.measures import (
    ATTRIBUTION_NAMES,
    GROUPING_NAMES,
    GROUPINGS,
    MEASURE_NAMES,
    MISSING,
    NO_CAMPAIGN,
    NO_TOUCHPOINTS,
    NOT_SCORED,
    TOTAL,
)

# Two-sided 95%: the standard normal quantile at 0.975.
Z_95 = 1.959963984540054
DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min
_NEVER = np.iinfo(np.int64).max
GRADES = ("A", "B", "C", "D")
DECISIONS = ("sales", "nurture", "disqualify")
_SPECIAL = (NO_TOUCHPOINTS, NO_CAMPAIGN, MISSING, NOT_SCORED)
# Counts that are whole numbers unless credit is split (linear attribution).
_COUNTS = ("leads", "sent_to_sales", "won", "lost", "open", "won_with_amount")


class FunnelError(ValueError):
    """A choice the caller made that the report cannot follow; `option` names the parameter."""

    def __init__(self, option: str, message: str):
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")


def funnel(
    leads: pd.DataFrame,
    touchpoints: pd.DataFrame | None,
    outcomes: pd.DataFrame | None,
    by: str = "channel",
    attribution: str = "first_touch",
    scores: pd.DataFrame | None = None,
    start: Any = None,
    end: Any = None,
) -> pd.DataFrame:
    """The funnel measures per group of `by`, then a '(total)' row.

    `by`: channel, campaign, week, grade, score_band, decision, or a lead attribute column.
    `attribution`: first_touch, last_touch or linear (used by channel and campaign reports).
    `scores`: `lead_id` plus `score`/`grade`/`decision` (optional `scored_at` and `exploration`),
    needed by the grade, score_band and decision groupings, by `sent_to_sales` and by the
    exploration estimate.
    Returns one row per group: the group label in a column named `by`, then the measures of
    `MEASURE_NAMES`; `frame.attrs` holds `by`, `attribution` (None when `by` is not about
    touchpoints), `start` and `end` (ISO 8601 or None), and `exploration`: what the threshold
    misses among these leads (`features.report.exploration`; None without decisions).
    Raises `FunnelError` naming the parameter when `by`, `attribution`, `start`/`end` or the
    scores do not fit.
    """
    grouping = _check_by(by, leads, scores)
    if attribution not in ATTRIBUTION_NAMES:
        raise FunnelError(
            "attribution",
            f"{attribution!r} is not an attribution rule; accepted: {', '.join(ATTRIBUTION_NAMES)}",
        )
    for column in ("lead_id", "created_at"):
        if column not in leads.columns:
            raise FunnelError(
                "leads",
                f"the leads have no {column!r} column; the funnel needs lead ids and creation "
                "times (timestamped data, not flat mode with a label)",
            )
    lo = moment_bound(start, "start")
    hi = moment_bound(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise FunnelError("end", f"end ({iso_moment(hi)}) must be after start ({iso_moment(lo)})")

    created = _moments(leads["created_at"])
    chosen = np.ones(len(leads), dtype=bool)
    if lo is not None:
        chosen &= (created != _NAT) & (created >= lo)
    if hi is not None:
        chosen &= (created != _NAT) & (created < hi)
    if not chosen.all():
        leads = leads.loc[chosen]
        created = created[chosen]
    index = _LeadIndex(leads["lead_id"])
    per_lead = _per_lead(index, created, outcomes, scores)

    touch_level = grouping in ("channel", "campaign")
    if touch_level:
        assignment = _touch_assignment(touchpoints, index, per_lead.closed, grouping, attribution)
    else:
        assignment = _lead_assignment(grouping, by, leads, created, per_lead, lo, hi)
    rows = _aggregate(assignment, per_lead)
    everyone = _Assignment(
        lead=np.arange(len(index)),
        group=np.zeros(len(index), dtype=np.int64),
        weight=None,
        labels=[TOTAL],
        natural=True,
    )
    frame = report_frame(by, rows, _aggregate(everyone, per_lead), touch_level)
    frame.attrs.update(
        report="funnel",
        by=by,
        attribution=attribution if touch_level else None,
        start=None if lo is None else iso_moment(lo),
        end=None if hi is None else iso_moment(hi),
        exploration=_exploration(per_lead, created, lo, hi),
    )
    return frame


def _exploration(
    per_lead: _PerLead, created: np.ndarray, lo: int | None, hi: int | None
) -> dict[str, Any] | None:
    """What the threshold misses among the selected leads (`features.report.exploration`):
    held back = latest decision nurture, or sent to sales by exploration; None without decisions
    or without a period (no lead and an open bound)."""
    from features.report.exploration import funnel_weeks  # a cycle at import

    if per_lead.decision is None:
        return None
    explored = per_lead.explored
    held_back = explored | (per_lead.decision == "nurture")
    dated = created[created != _NAT]
    first, last = (int(dated.min()), int(dated.max())) if len(dated) else (None, None)
    weeks = funnel_weeks(lo, hi, first, last)
    if weeks is None:
        return None
    won, lost = int((explored & per_lead.won).sum()), int((explored & per_lead.lost).sum())
    return exploration_figures(int(held_back.sum()), int(explored.sum()), won, lost, weeks)


def exploration_figures(
    held_back: int, explored: int, won: int, lost: int, weeks: float
) -> dict[str, Any]:
    """The funnel report's `exploration`: the estimate's figures from its counts."""
    from features.report.exploration import estimate_from_counts  # a cycle at import

    return estimate_from_counts(held_back, explored, won, lost, weeks).to_dict()


def wilson_interval(
    won: np.ndarray, closed: np.ndarray, z: float = Z_95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of won / closed (NaN where nothing closed)."""
    won = np.asarray(won, dtype=float)
    n = np.asarray(closed, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = won / n
        z2 = z * z
        denominator = 1 + z2 / n
        centre = (p + z2 / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return low, high


def weighted_quantiles(
    group: np.ndarray, values: np.ndarray, weights: np.ndarray, n_groups: int, q: float
) -> np.ndarray:
    """The q-quantile of `values` in each group, each value weighted (see the module docstring).

    Groups without values get NaN. Weights must be positive.
    """
    out = np.full(n_groups, np.nan)
    if not len(values):
        return out
    order = np.lexsort((values, group))
    group, values, weights = group[order], values[order], weights[order]
    total = np.bincount(group, weights=weights, minlength=n_groups)
    starts = np.searchsorted(group, np.arange(n_groups), side="left")
    ends = np.searchsorted(group, np.arange(n_groups), side="right")
    cumulative = np.cumsum(weights)
    before = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)
    position = (cumulative - before[group] - weights / 2) / total[group]
    # Positions rise within a group, so counting those <= q finds the bracketing pair.
    at_or_below = np.bincount(group, weights=position <= q, minlength=n_groups).astype(np.int64)
    present = ends > starts
    size = ends - starts
    first = np.minimum(starts, len(values) - 1)
    last = np.maximum(ends - 1, 0)
    lo = np.clip(starts + at_or_below - 1, 0, len(values) - 1)
    hi = np.minimum(lo + 1, len(values) - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = (q - position[lo]) / (position[hi] - position[lo])
        between = values[lo] + share * (values[hi] - values[lo])
    result = np.where(
        at_or_below == 0, values[first], np.where(at_or_below >= size, values[last], between)
    )
    out[present] = result[present]
    return out


# --------------------------------------------------------------------------------------------------
# Per lead: outcome, amount, days to close, latest score


class _LeadIndex:
    """Positions of lead ids among the selected leads.

    One factorize (a hash in Arrow for `str` columns) of the leads' ids followed by the other
    table's: the leads come first, so lead i gets code i and ids of other leads get codes >= n.
    `pd.Index.get_indexer` would turn 10M Arrow strings into Python objects first (~8 s).
    """

    def __init__(self, ids: pd.Series):
        self.ids = ids.reset_index(drop=True)
        codes, _ = pd.factorize(self.ids)
        if not np.array_equal(codes, np.arange(len(codes))):
            raise FunnelError(
                "leads", "lead ids are missing or not unique; each lead must be one row with an id"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def get_indexer(self, ids: pd.Series) -> np.ndarray:
        """Each id's lead position, or -1 for ids of no selected lead."""
        n = len(self.ids)
        both = pd.concat([self.ids, ids.reset_index(drop=True)], ignore_index=True)
        codes, _ = pd.factorize(both)
        codes = np.asarray(codes[n:], dtype=np.int64)  # a view: factorize's codes are ours
        codes[codes >= n] = -1
        return codes


@dataclass
class _PerLead:
    won: np.ndarray  # bool
    lost: np.ndarray  # bool
    closed: np.ndarray  # int64 ns, _NAT when open
    amount: np.ndarray  # float, NaN when missing or not won
    days: np.ndarray  # float, days from creation to the won close; NaN otherwise
    sent: np.ndarray | None  # bool, latest decision is "sales"; None when decisions are unknown
    score: np.ndarray | None  # float, NaN when not scored
    grade: np.ndarray | None  # object, None when not scored
    decision: np.ndarray | None  # object, None when not scored
    explored: np.ndarray  # bool, the latest score sent it to sales by exploration


def _per_lead(
    index: _LeadIndex,
    created: np.ndarray,
    outcomes: pd.DataFrame | None,
    scores: pd.DataFrame | None,
) -> _PerLead:
    n = len(index)
    won = np.zeros(n, dtype=bool)
    lost = np.zeros(n, dtype=bool)
    closed = np.full(n, _NAT, dtype=np.int64)
    amount = np.full(n, np.nan)
    if outcomes is not None and len(outcomes):
        position = index.get_indexer(outcomes["lead_id"])
        at = _moments(outcomes["closed_at"])
        known = outcomes["won"].notna().to_numpy()
        rows = np.flatnonzero((position >= 0) & (at != _NAT) & known)
        first = _first_per_lead(position[rows], at[rows])
        rows = rows[first]
        lead = position[rows]
        is_won = outcomes["won"].to_numpy()[rows].astype(bool)
        won[lead] = is_won
        lost[lead] = ~is_won
        closed[lead] = at[rows]
        if "amount" in outcomes.columns:
            values = pd.to_numeric(outcomes["amount"], errors="coerce").to_numpy(dtype=float)
            amount[lead] = np.where(is_won, values[rows], np.nan)
    days = np.full(n, np.nan)
    dated = won & (created != _NAT)
    days[dated] = (closed[dated] - created[dated]) / DAY_NS

    sent = score = grade = decision = None
    explored = np.zeros(n, dtype=bool)
    if scores is not None:
        latest = _latest_scores(scores, index)
        lead, rows = latest
        if "score" in scores.columns:
            score = np.full(n, np.nan)
            score[lead] = pd.to_numeric(scores["score"], errors="coerce").to_numpy(float)[rows]
        if "grade" in scores.columns:
            grade = np.full(n, None, dtype=object)
            grade[lead] = _text(scores["grade"])[rows]
        if "decision" in scores.columns:
            decision = np.full(n, None, dtype=object)
            decision[lead] = _text(scores["decision"])[rows]
            sent = decision == "sales"
        if "exploration" in scores.columns:
            flags = scores["exploration"].astype("boolean").fillna(False).to_numpy(dtype=bool)
            explored[lead] = flags[rows]
    return _PerLead(won, lost, closed, amount, days, sent, score, grade, decision, explored)


def _first_per_lead(lead: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Indices of each lead's earliest row (ties: the row listed first)."""
    order = np.lexsort((at, lead))  # lexsort is stable
    ordered = lead[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return order[first]


def _latest_scores(scores: pd.DataFrame, index: _LeadIndex) -> tuple[np.ndarray, np.ndarray]:
    """(lead positions, score rows): each scored lead's latest row."""
    if "lead_id" not in scores.columns:
        raise FunnelError("scores", "the scores have no 'lead_id' column")
    position = index.get_indexer(scores["lead_id"])
    rows = np.flatnonzero(position >= 0)
    if "scored_at" in scores.columns:
        at = _moments(scores["scored_at"])[rows]
    else:
        at = np.zeros(len(rows), dtype=np.int64)
    # The last row of each lead in (lead, moment, row) order is its latest.
    order = np.lexsort((rows, at, position[rows]))
    ordered = position[rows][order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    rows = rows[order[last]]
    return position[rows], rows


# --------------------------------------------------------------------------------------------------
# Which group each lead (or share of a lead) goes to


@dataclass
class _Assignment:
    """Rows of (lead, group, weight): a lead in one group, or its credit spread over several."""

    lead: np.ndarray  # positions into the selected leads
    group: np.ndarray  # int64 codes into labels
    weight: np.ndarray | None  # None: every row weighs 1
    labels: list[str]
    natural: bool  # rows keep the labels' order (else: most leads first)


def _check_by(by: str, leads: pd.DataFrame, scores: pd.DataFrame | None) -> str:
    """The grouping's name, or "attribute" for a lead column; FunnelError naming the choices."""
    attributes = [c for c in leads.columns if c not in ("lead_id", "created_at")]
    if by in GROUPING_NAMES:
        grouping = next(g for g in GROUPINGS if g.name == by)
        if grouping.needs_scores:
            column = "score" if by == "score_band" else by
            if scores is None or column not in scores.columns:
                raise FunnelError(
                    "by",
                    f"grouping by {by} needs scores with a {column!r} column (lead_id, score, "
                    "grade, decision: what `leadscore score` writes); none were given",
                )
        return by
    if by in attributes and by not in MEASURE_NAMES:
        return "attribute"
    accepted = ", ".join(GROUPING_NAMES)
    columns = ", ".join(repr(c) for c in attributes[:30]) or "none"
    more = f" (and {len(attributes) - 30} more)" if len(attributes) > 30 else ""
    reason = (
        f"{by!r} is a measure name, not a way to group"
        if by in MEASURE_NAMES and by in attributes
        else f"{by!r} is neither a grouping nor a lead attribute column"
    )
    raise FunnelError("by", f"{reason}; accepted: {accepted}, or a lead attribute: {columns}{more}")


def _lead_assignment(
    grouping: str,
    by: str,
    leads: pd.DataFrame,
    created: np.ndarray,
    per_lead: _PerLead,
    lo: int | None,
    hi: int | None,
) -> _Assignment:
    n = len(leads)
    natural = True
    if grouping == "week":
        codes, labels = week_groups(created, lo, hi)
    elif grouping == "grade":
        assert per_lead.grade is not None
        codes, labels = known_value_groups(per_lead.grade, GRADES)
    elif grouping == "decision":
        assert per_lead.decision is not None
        codes, labels = known_value_groups(per_lead.decision, DECISIONS)
    elif grouping == "score_band":
        assert per_lead.score is not None
        codes, labels = score_band_groups(per_lead.score)
    else:
        codes, labels, natural = attribute_groups(leads[by])
    return _Assignment(lead=np.arange(n), group=codes, weight=None, labels=labels, natural=natural)


def week_groups(
    created: np.ndarray, lo: int | None, hi: int | None
) -> tuple[np.ndarray, list[str]]:
    """Weeks (Monday to Sunday, UTC) of creation; every week in the range, with or without leads."""
    dated = created != _NAT
    day = np.where(dated, created, 0) // DAY_NS
    monday = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    if lo is not None:
        first = lo // DAY_NS - (lo // DAY_NS + 3) % 7
    elif dated.any():
        first = int(monday[dated].min())
    else:
        first = 0
    if hi is not None:
        end_day = (hi - 1) // DAY_NS
        last = end_day - (end_day + 3) % 7
    elif dated.any():
        last = int(monday[dated].max())
    else:
        last = first - 7
    n_weeks = max(0, (last - first) // 7 + 1)
    labels = [
        str(np.datetime64(int(first + 7 * i), "D")) for i in range(n_weeks)
    ]  # a label per week, not per lead
    codes = np.where(dated, (monday - first) // 7, n_weeks).astype(np.int64)
    if not dated.all():
        labels.append(MISSING)
    return codes, labels


def known_value_groups(values: np.ndarray, known: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Codes for values from a known list (in that order), then any others, then unscored."""
    present = pd.unique(values[pd.notna(values)])
    labels = list(known) + sorted(str(v) for v in present if v not in known)
    missing = pd.isna(values)
    codes, _ = _codes(pd.Series(values).where(~missing, None), labels)
    if missing.any():
        codes[missing] = len(labels)
        labels.append(NOT_SCORED)
    return codes, labels


def score_band_groups(score: np.ndarray) -> tuple[np.ndarray, list[str]]:
    labels = [f"{10 * b}-{10 * b + 9}" for b in range(9)] + ["90-100"]
    scored = ~np.isnan(score)
    band = np.clip(np.floor(np.where(scored, score, 0) / 10), 0, 9).astype(np.int64)
    if not scored.all():
        band[~scored] = len(labels)
        labels.append(NOT_SCORED)
    return band, labels


def attribute_groups(values: pd.Series) -> tuple[np.ndarray, list[str], bool]:
    """Codes and labels of a lead attribute; numbers, yes/no and dates in their order."""
    ordered = (
        pd.api.types.is_numeric_dtype(values)
        or pd.api.types.is_bool_dtype(values)
        or pd.api.types.is_datetime64_any_dtype(values)
    )
    codes, uniques = pd.factorize(values, sort=ordered)
    labels = [_label(v) for v in uniques]
    codes = codes.astype(np.int64)
    if (codes < 0).any():
        codes[codes < 0] = len(labels)
        labels.append(MISSING)
    return codes, labels, ordered


def _label(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _touch_assignment(
    touchpoints: pd.DataFrame | None,
    index: _LeadIndex,
    closed: np.ndarray,
    grouping: str,
    attribution: str,
) -> _Assignment:
    """Leads (or their credits) to the channel or campaign of their touches up to the close."""
    n = len(index)
    if touchpoints is None or not len(touchpoints):
        return _Assignment(np.arange(n), np.zeros(n, dtype=np.int64), None, [NO_TOUCHPOINTS], False)
    if grouping not in touchpoints.columns:
        raise FunnelError("by", f"the touchpoints have no {grouping!r} column")
    position = index.get_indexer(touchpoints["lead_id"])
    at = _moments(touchpoints["occurred_at"])
    # A touch counts up to and including the close; open leads count every touch.
    cutoff = np.append(np.where(closed == _NAT, _NEVER, closed), _NAT)  # [-1]: unknown lead
    counted = np.flatnonzero((position >= 0) & (at != _NAT) & (at <= cutoff[position]))
    lead = position[counted]
    at = at[counted]
    # Every value with touchpoints is a row, even one whose touches all came after the close.
    codes, uniques = pd.factorize(touchpoints[grouping])
    labels = [str(u) for u in uniques]
    code = np.asarray(codes[counted], dtype=np.int64)
    if (codes < 0).any():
        code[code < 0] = len(labels)
        labels.append(MISSING if grouping == "channel" else NO_CAMPAIGN)
    none_code = len(labels)
    labels.append(NO_TOUCHPOINTS)

    if attribution == "linear":
        k = np.bincount(lead, minlength=n)
        untouched = np.flatnonzero(k == 0)
        return _Assignment(
            lead=np.concatenate([lead, untouched]),
            group=np.concatenate([code, np.full(len(untouched), none_code, dtype=np.int64)]),
            weight=np.concatenate([1.0 / k[lead], np.ones(len(untouched))]),
            labels=labels,
            natural=False,
        )
    rows = np.arange(len(lead))
    if attribution == "first_touch":
        best = np.full(n, _NEVER, dtype=np.int64)
        np.minimum.at(best, lead, at)
        tied = np.flatnonzero(at == best[lead])
        pick = np.full(n, len(lead), dtype=np.int64)
        np.minimum.at(pick, lead[tied], rows[tied])
        has = pick < len(lead)
    else:
        best = np.full(n, _NAT, dtype=np.int64)
        np.maximum.at(best, lead, at)
        tied = np.flatnonzero(at == best[lead])
        pick = np.full(n, -1, dtype=np.int64)
        np.maximum.at(pick, lead[tied], rows[tied])
        has = pick >= 0
    group = np.full(n, none_code, dtype=np.int64)
    group[has] = code[pick[has]]
    return _Assignment(np.arange(n), group, None, labels, False)


# --------------------------------------------------------------------------------------------------
# Sums per group


@dataclass
class GroupSums:
    """What a funnel adds up per group, before any ratio: the file report sums these with numpy,
    the service's database report (`serving.funnel`) with SQL; `measures` turns either into the
    report's measures, so both follow one definition."""

    labels: list[str]
    natural: bool  # groups keep the labels' order (else: most leads first)
    weighted: bool  # credit is split over touchpoints (linear): counts are fractional
    leads: np.ndarray  # credited leads per group
    sent_to_sales: np.ndarray | None  # None: no scores were given
    won: np.ndarray
    lost: np.ndarray
    won_with_amount: np.ndarray
    revenue: np.ndarray  # sum of the amounts of won deals that have one
    # Won deals with a creation time: one point per (deal, group), weighted by the deal's credit.
    days_group: np.ndarray
    days: np.ndarray
    days_weight: np.ndarray


def measures(sums: GroupSums) -> dict[str, np.ndarray]:
    """The measures of `MEASURE_NAMES` per group from the credited sums."""
    n_groups = len(sums.labels)
    won, lost = sums.won, sums.lost
    revenue = sums.revenue.astype(float).copy()
    revenue[(won > 0) & (sums.won_with_amount == 0)] = np.nan
    closed = won + lost
    with np.errstate(divide="ignore", invalid="ignore"):
        win_rate = np.where(closed > 0, won / closed, np.nan)
        average = np.where(sums.won_with_amount > 0, revenue / sums.won_with_amount, np.nan)
    low, high = wilson_interval(won, closed)

    def quantile(q: float) -> np.ndarray:
        return weighted_quantiles(sums.days_group, sums.days, sums.days_weight, n_groups, q)

    return {
        "leads": sums.leads,
        "sent_to_sales": (
            np.full(n_groups, np.nan) if sums.sent_to_sales is None else sums.sent_to_sales
        ),
        "won": won,
        "lost": lost,
        "open": sums.leads - closed,
        "win_rate": win_rate,
        "win_rate_low": low,
        "win_rate_high": high,
        "won_with_amount": sums.won_with_amount,
        "revenue_won": revenue,
        "average_deal": average,
        "median_days_to_close": quantile(0.5),
        "p75_days_to_close": quantile(0.75),
    }


def report_frame(by: str, rows: GroupSums, total: GroupSums, touch_level: bool) -> pd.DataFrame:
    """The report: one row per group in the report's order, then the '(total)' row (`total`:
    every selected lead once, labelled TOTAL). `touch_level`: a channel or campaign report, whose
    '(none)' row is shown only when some lead has no touchpoint up to its close."""
    table = measures(rows)
    order = _row_order(table["leads"], rows.labels, rows.natural)
    if touch_level:
        order = order[
            (table["leads"][order] > 0) | (np.array(rows.labels)[order] != NO_TOUCHPOINTS)
        ]
    frame = pd.DataFrame({by: [rows.labels[i] for i in order]})
    for name in MEASURE_NAMES:
        frame[name] = table[name][order]
    totals = measures(total)
    total_row = pd.DataFrame({by: [TOTAL], **{name: totals[name] for name in MEASURE_NAMES}})
    frame = pd.concat([frame, total_row], ignore_index=True)
    if not rows.weighted:
        for name in _COUNTS:
            if not frame[name].isna().any():
                frame[name] = frame[name].round().astype("int64")
    return frame


def _aggregate(assignment: _Assignment, per_lead: _PerLead) -> GroupSums:
    lead, group, weight = assignment.lead, assignment.group, assignment.weight
    n_groups = len(assignment.labels)

    def credited(per: np.ndarray) -> np.ndarray:
        values = per[lead].astype(float)
        if weight is not None:
            values *= weight
        return np.bincount(group, weights=values, minlength=n_groups).astype(float)

    has_amount = per_lead.won & ~np.isnan(per_lead.amount)
    dated = np.flatnonzero(~np.isnan(per_lead.days[lead]))
    days_lead, days_group = lead[dated], group[dated]
    days_weight: np.ndarray = np.ones(len(dated))
    if weight is not None:
        # One point per (deal, group) with the deal's whole credit there, however many touches.
        pair, inverse = np.unique(days_lead * n_groups + days_group, return_inverse=True)
        days_weight = np.bincount(inverse, weights=weight[dated])
        days_lead, days_group = pair // n_groups, pair % n_groups
    return GroupSums(
        labels=assignment.labels,
        natural=assignment.natural,
        weighted=weight is not None,
        leads=np.bincount(group, weights=weight, minlength=n_groups).astype(float),
        sent_to_sales=None if per_lead.sent is None else credited(per_lead.sent),
        won=credited(per_lead.won),
        lost=credited(per_lead.lost),
        won_with_amount=credited(has_amount),
        revenue=credited(np.where(has_amount, per_lead.amount, 0.0)),
        days_group=days_group,
        days=per_lead.days[days_lead],
        days_weight=days_weight,
    )


def _row_order(leads: np.ndarray, labels: list[str], natural: bool) -> np.ndarray:
    """Groups in their natural order, or most leads first; '(none)', '(missing)' ... last."""
    special = np.array([label in _SPECIAL for label in labels], dtype=bool)
    position = np.arange(len(labels))
    if natural:
        return np.lexsort((position, special))
    text = np.array(labels, dtype=object)
    return np.lexsort((text, -np.round(leads, 9), special))


# --------------------------------------------------------------------------------------------------
# Moments and labels


def _moments(values: pd.Series) -> np.ndarray:
    """UTC nanoseconds since 1970 as int64 (missing: the int64 minimum, like NaT)."""
    moments = pd.to_datetime(values, utc=True)
    return moments.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def moment_bound(value: Any, option: str) -> int | None:
    """A `start`/`end` bound as UTC nanoseconds; a bound without a zone is UTC."""
    if value is None:
        return None
    if not isinstance(value, str | datetime | date | pd.Timestamp | np.datetime64):
        raise FunnelError(option, f"{value!r} is not a date or a timestamp")
    try:
        moment = pd.Timestamp(value)
    except (ValueError, TypeError):
        moment = pd.NaT
    if moment is pd.NaT or pd.isna(moment):
        raise FunnelError(
            option,
            f"{value!r} is not a date: write YYYY-MM-DD or an ISO 8601 timestamp "
            "(2024-03-01T09:00:00+01:00)",
        )
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    try:
        return int(moment.as_unit("ns").value)
    except (OverflowError, ValueError):  # pandas' nanoseconds end in 1677 and 2262
        raise FunnelError(
            option, f"{value!r} is out of range: give a date between 1678-01-01 and 2261-12-31"
        ) from None


def iso_moment(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


def _text(values: pd.Series) -> np.ndarray:
    """Text values as an object array, missing as None."""
    array = values.to_numpy(dtype=object, na_value=None, copy=True)
    return array


def _codes(values: pd.Series, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    codes = pd.Categorical(values.astype(object), categories=labels).codes.astype(np.int64)
    return codes, labels
