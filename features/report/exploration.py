"""What the threshold misses: the win rate of explored leads, and the wins a week it forgoes.

Two reports show it: `GET /v1/reports/exploration` (the leads whose latest score in a period the
threshold held back: `exploration_estimate`), and the funnel report, for the leads it selects
(created in its period: `estimate_from_counts` over their latest scores, per `funnel_weeks`).

With an exploration rate in the policy (`features.policy.exploration`), a random share of the
leads the threshold holds back goes to sales anyway. Their outcomes answer what no report of the
leads sent to sales can: how often a held-back lead closes when it is worked. Here, from the
scored leads and their outcomes (pure: frames in, figures out):

- the leads the threshold held back: each lead's latest score in the period decided `nurture`
  by the score alone, or sent it to sales by exploration (without exploration it would have been
  held back too);
- the explored leads among them, won, lost and still open; their win rate won / (won + lost)
  with the Wilson 95% interval of the funnel report (`features.report.funnel.wilson_interval`);
- the wins a week the threshold forgoes: that win rate times the held-back leads per week, with
  the interval's ends times the same volume (the volume is counted, not estimated).

The estimate assumes the explored leads are like the other held-back leads, which the draw
(a hash of the lead id, unrelated to the lead's data) makes true on average; and that sales work
explored leads as any other (the answer asks them to).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.report.funnel import wilson_interval


class ExplorationReportError(ValueError):
    """The inputs cannot give the estimate; the message names the column or value and the fix."""


SCORE_COLUMNS = ("lead_id", "scored_at", "decision", "exploration")


@dataclass(frozen=True)
class ExplorationEstimate:
    weeks: float
    held_back: int
    held_back_per_week: float
    explored: int
    explored_won: int
    explored_lost: int
    explored_open: int
    win_rate: float | None
    win_rate_low: float | None
    win_rate_high: float | None
    forgone_wins_per_week: float | None
    forgone_wins_per_week_low: float | None
    forgone_wins_per_week_high: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Plain words for each figure, declared once: the API documents its answer with these.
FIGURES: dict[str, str] = {
    "weeks": "Length of the period, in weeks.",
    "held_back": "Leads the threshold held back: their latest score in the period decided "
    "nurture by the score alone, or exploration sent them to sales.",
    "held_back_per_week": "held_back / weeks.",
    "explored": "Held-back leads that exploration sent to sales.",
    "explored_won": "Explored leads whose deal was won.",
    "explored_lost": "Explored leads whose deal was lost.",
    "explored_open": "Explored leads without an outcome yet (not in the win rate).",
    "win_rate": "Win rate of explored leads: won / (won + lost); empty when none closed.",
    "win_rate_low": "Lower end of its Wilson 95% confidence interval.",
    "win_rate_high": "Upper end of its Wilson 95% confidence interval.",
    "forgone_wins_per_week": "Wins a week the threshold forgoes: win_rate x held_back_per_week.",
    "forgone_wins_per_week_low": "win_rate_low x held_back_per_week.",
    "forgone_wins_per_week_high": "win_rate_high x held_back_per_week.",
}


def exploration_estimate(
    scores: pd.DataFrame, outcomes: pd.DataFrame | None, weeks: float
) -> ExplorationEstimate:
    """The estimate from the scores of a period of `weeks` weeks and the leads' outcomes.

    `scores`: one row per score (several per lead allowed; the latest counts) with `lead_id`,
    `scored_at`, `decision` (sales / nurture / disqualify, after hard rules and exploration) and
    `exploration` (bool). A hard rule deciding `nurture` is counted as the threshold's (the score
    log keeps the rule only in words). `outcomes`: `lead_id`, `won` (bool); the earliest counts
    when a lead has several (give them sorted by close).
    """
    if not (isinstance(weeks, int | float) and math.isfinite(weeks) and weeks > 0):
        raise ExplorationReportError(f"weeks must be a number above 0, got {weeks!r}")
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ExplorationReportError(
            f"scores: missing column(s) {', '.join(missing)}; give {', '.join(SCORE_COLUMNS)}"
        )
    latest = scores.sort_values("scored_at", kind="stable").drop_duplicates("lead_id", keep="last")
    explored_mask = latest["exploration"].fillna(False).to_numpy(dtype=bool)
    held_mask = explored_mask | (latest["decision"].to_numpy(dtype=object) == "nurture")
    held_back = int(held_mask.sum())
    explored_ids = latest.loc[explored_mask, "lead_id"].astype(str)

    won_by_lead = pd.Series(dtype=bool)
    if outcomes is not None and len(outcomes):
        for column in ("lead_id", "won"):
            if column not in outcomes.columns:
                raise ExplorationReportError(
                    f"outcomes: missing column {column}; give lead_id, won"
                )
        first = outcomes.drop_duplicates("lead_id", keep="first")
        won_by_lead = pd.Series(
            first["won"].to_numpy(dtype=bool), index=first["lead_id"].astype(str).to_numpy()
        )
    outcome = won_by_lead.reindex(explored_ids.to_numpy())
    closed = outcome.notna().to_numpy()
    won = int(outcome[closed].astype(bool).sum())
    lost = int(closed.sum()) - won
    return estimate_from_counts(held_back, int(explored_mask.sum()), won, lost, weeks)


def estimate_from_counts(
    held_back: int, explored: int, won: int, lost: int, weeks: float
) -> ExplorationEstimate:
    """The estimate from its counts: held-back leads, explored ones among them, and of those the
    won and the lost, over `weeks` weeks (the funnel report counts them in SQL or numpy)."""
    per_week = held_back / weeks
    win_rate = low = high = None
    forgone = forgone_low = forgone_high = None
    if won + lost:
        win_rate = won / (won + lost)
        lows, highs = wilson_interval(np.array([won]), np.array([won + lost]))
        low, high = float(lows[0]), float(highs[0])
        forgone, forgone_low, forgone_high = win_rate * per_week, low * per_week, high * per_week
    return ExplorationEstimate(
        weeks=float(weeks),
        held_back=int(held_back),
        held_back_per_week=per_week,
        explored=int(explored),
        explored_won=int(won),
        explored_lost=int(lost),
        explored_open=int(explored) - int(won) - int(lost),
        win_rate=win_rate,
        win_rate_low=low,
        win_rate_high=high,
        forgone_wins_per_week=forgone,
        forgone_wins_per_week_low=forgone_low,
        forgone_wins_per_week_high=forgone_high,
    )


WEEK_NS = 7 * 86_400 * 10**9
_DAY_NS = 86_400 * 10**9


def _monday(ns: int) -> int:
    """Midnight UTC of the Monday starting the week of `ns` (1970-01-01 was a Thursday)."""
    day = ns // _DAY_NS
    return (day - (day + 3) % 7) * _DAY_NS


def funnel_weeks(
    start: int | None, end: int | None, first_created: int | None, last_created: int | None
) -> float | None:
    """How many weeks a funnel report's leads stand for, for the wins a week: [start, end) when
    both bounds are given (UTC nanoseconds); an open bound is the start of the first lead's week
    (Monday, UTC) or the end of the last lead's week: the weeks the report by week lists. None
    when the period has no length (no lead and an open bound)."""
    lo = start if start is not None else None if first_created is None else _monday(first_created)
    hi: int | None = end
    if hi is None and last_created is not None:
        hi = _monday(last_created) + WEEK_NS
    if lo is None or hi is None or hi <= lo:
        return None
    return (hi - lo) / WEEK_NS
