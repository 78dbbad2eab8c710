"""Step 3: outcomes, won with the true probability, closed when deals of that kind close.

won ~ Bernoulli(p). Wins close between day 31 and day 110 (`process.WIN_CLOSE_FIRST_DAY`, with
bigger companies later and senior buyers, demo requests and pricing-page views sooner), so no win
has closed at the 30-day snapshot and "won within 90 days of it" is "won". A won deal's amount is
log-normal around the lead's typical amount (`process.true_typical_amount`). Most losses close at
any time (some within a week); the rest stay open. Outcomes after the export date are not written.

The draws are those of the first generator (a size-only Beta and a log-normal factor per lead):
the closing day is that Beta draw moved to the lead's own Beta by its quantile, so the same seed
gives the same random stream, the same win probabilities and touchpoints as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from features.data.demo.columns import timestamps
from features.data.demo.leads import Leads
from features.data.demo.process import (
    AMOUNT_SIGMA,
    DAY,
    EXPORT_DATE,
    LOSS_AGE_BETA,
    LOSS_CLOSE_SHARE,
    LOSS_FIRST_DAY,
    LOSS_SPAN_DAYS,
    SIZES,
    WIN_CLOSE_FIRST_DAY,
    WIN_CLOSE_SPAN_DAYS,
    true_typical_amount,
    win_close_shape,
)


@dataclass
class Outcomes:
    won: np.ndarray  # bool per lead
    closed: np.ndarray  # int64 seconds since the epoch, per lead
    has_outcome: np.ndarray  # closed (won or lost) no later than the export date
    amount: np.ndarray
    amount_missing: np.ndarray
    typical_amount: np.ndarray  # the truth: median amount if won
    close_a: np.ndarray  # the truth: a win closes on day 31 + 79 x Beta(close_a, close_b)
    close_b: np.ndarray

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


def draw_outcomes(
    rng: np.random.Generator, leads: Leads, p: np.ndarray, counts: np.ndarray
) -> Outcomes:
    """`counts`: the first-21-day activity counts (n_leads, len(ACTIVITIES))."""
    from scipy.special import betainc, betaincinv

    n, size = len(p), leads.size
    won = rng.random(n) < p
    stretch = np.array([v[2] for v in SIZES.values()])[size]
    drawn_a, drawn_b = 1.5 + 2.5 * stretch, 3.5 - 1.5 * stretch
    drawn = rng.beta(drawn_a, drawn_b)
    close_a, close_b = win_close_shape(leads.attribute_pace, counts)
    quantile = np.clip(betainc(drawn_a, drawn_b, drawn), 1e-12, 1 - 1e-12)
    win_age = WIN_CLOSE_FIRST_DAY + WIN_CLOSE_SPAN_DAYS * betaincinv(close_a, close_b, quantile)
    lost_closes = rng.random(n) < LOSS_CLOSE_SHARE
    loss_age = LOSS_FIRST_DAY + LOSS_SPAN_DAYS * rng.beta(*LOSS_AGE_BETA, n)
    close_age = np.where(won, win_age, loss_age)
    closed = leads.created + (close_age * DAY).astype(np.int64)
    has_outcome = (won | lost_closes) & (closed <= EXPORT_DATE.astype(np.int64))
    typical = true_typical_amount(leads.attribute_log_amount, counts)
    amount = np.round(typical * rng.lognormal(0, AMOUNT_SIGMA, n), -2)
    amount_missing = np.where(won, rng.random(n) < 0.03, rng.random(n) < 0.5)
    return Outcomes(won, closed, has_outcome, amount, amount_missing, typical, close_a, close_b)
