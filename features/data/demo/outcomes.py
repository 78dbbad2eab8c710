"""Step 3: outcomes, won with the true probability, closed when deals of that size close.

won ~ Bernoulli(p). Wins close between day 31 and day 110 (bigger companies later), so no win has
closed at the 30-day snapshot and "won within 90 days of it" is "won". Most losses close at any
time (some within a week); the rest stay open. Outcomes after the export date are not written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.data.demo.columns import timestamps
from features.data.demo.leads import Leads
from features.data.demo.process import DAY, EXPORT_DATE, SIZES


@dataclass
class Outcomes:
    won: np.ndarray  # bool per lead
    closed: np.ndarray  # int64 seconds since the epoch, per lead
    has_outcome: np.ndarray  # closed (won or lost) no later than the export date
    amount: np.ndarray
    amount_missing: np.ndarray

    def table(self, ids: pa.Array) -> pa.Table:
        """The written outcomes, in the order they closed."""
        chosen = np.flatnonzero(self.has_outcome)
        chosen = chosen[np.argsort(self.closed[chosen], kind="stable")]
        return pa.table(
            {
                "lead_id": ids.take(pa.array(chosen)),
                "closed_at": timestamps(self.closed[chosen]),
                "won": pa.array(self.won[chosen]),
                "amount": pa.array(self.amount[chosen], mask=self.amount_missing[chosen]),
            }
        )


def draw_outcomes(rng: np.random.Generator, leads: Leads, p: np.ndarray) -> Outcomes:
    n, size = len(p), leads.size
    won = rng.random(n) < p
    stretch = np.array([v[2] for v in SIZES.values()])[size]
    win_age = 31 + 79 * rng.beta(1.5 + 2.5 * stretch, 3.5 - 1.5 * stretch)
    lost_closes = rng.random(n) < 0.75
    loss_age = 1 + 300 * rng.beta(1.1, 3.0, n)
    close_age = np.where(won, win_age, loss_age)
    closed = leads.created + (close_age * DAY).astype(np.int64)
    has_outcome = (won | lost_closes) & (closed <= EXPORT_DATE.astype(np.int64))
    size_amount = np.array([v[3] for v in SIZES.values()])[size]
    amount = np.round(size_amount * rng.lognormal(0, 0.5, n), -2)
    amount_missing = np.where(won, rng.random(n) < 0.03, rng.random(n) < 0.5)
    return Outcomes(won, closed, has_outcome, amount, amount_missing)
