"""A lead's trend: how its score moved since its previous score, in words sales act on.

`improving` / `declining` when the score rose / fell by at least the policy's `trend_points`,
`steady` for a smaller move, `new` when the lead was never scored before, `unknown` when its
history could not be read (the score log's database did not answer: the score itself is not
held back for that). Pure: the previous score comes from the caller (the API reads it from the
score log, `serving.trend`).
"""

from __future__ import annotations

from typing import Literal

Trend = Literal["improving", "steady", "declining", "new", "unknown"]
TRENDS: tuple[str, ...] = ("improving", "steady", "declining", "new", "unknown")
UNKNOWN: Trend = "unknown"


def score_trend(score: float, previous: float | None, points: float) -> Trend:
    """The trend of `score` after `previous` (None: never scored) with a `points` threshold."""
    if previous is None:
        return "new"
    change = score - previous
    if change >= points:
        return "improving"
    if change <= -points:
        return "declining"
    return "steady"
