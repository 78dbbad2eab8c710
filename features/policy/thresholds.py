"""features.policy.thresholds"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features.policy.rules import PolicyError, score_from_probability

CHOOSE_BY = ("value", "capacity", "precision", "recall")


THRESHOLDS = np.arange(101)


# ---------------------------------------------------------------------------------------------
# Threshold tables and choosing a threshold

TABLE_COLUMNS = (
    "threshold",
    "share_to_sales",
    "leads_per_week",
    "precision",
    "recall",
    "expected_wins",
    "lift",
)


def threshold_table(probabilities: Any, labels: Any = None, weeks: float = 1.0) -> pd.DataFrame:
    """What each integer score threshold 0-100 would send to sales, per week of leads.

    `probabilities`: calibrated win probabilities; `labels`: 1 won / 0 lost (None when outcomes
    are unknown: precision, recall and wins are then expected values from the probabilities);
    `weeks`: how many weeks of leads the sample covers (> 0).
    precision/lift are NaN where no lead is sent; recall is NaN when there is no win at all.
    """
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    if not np.isfinite(weeks) or weeks <= 0:
        raise PolicyError(f"weeks must be a positive number of weeks of leads, got {weeks}")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise PolicyError(
            "probabilities must be numbers between 0 and 1 (found values outside or NaN)"
        )
    if labels is None:
        wins_weight = p
    else:
        y = np.asarray(labels, dtype=float).reshape(-1)
        if y.shape != p.shape:
            raise PolicyError(
                f"got {y.size} labels for {p.size} probabilities: give one label per lead"
            )
        if not np.isin(y, (0.0, 1.0)).all():
            raise PolicyError("labels must be 1 (won) or 0 (lost)")
        wins_weight = y
    scores = score_from_probability(p)
    per_score = np.bincount(scores, minlength=101).astype(float)
    wins_per_score = np.bincount(scores, weights=wins_weight, minlength=101)
    sent = np.cumsum(per_score[::-1])[::-1]  # leads with score >= threshold
    wins = np.cumsum(wins_per_score[::-1])[::-1]
    total, total_wins = float(p.size), float(wins_weight.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(sent > 0, wins / sent, np.nan)
        recall = np.full(101, np.nan) if total_wins == 0 else wins / total_wins
        base_rate = total_wins / total if total else np.nan
        lift = precision / base_rate if base_rate and base_rate > 0 else np.full(101, np.nan)
        share = sent / total if total else np.full(101, np.nan)
    return pd.DataFrame(
        {
            "threshold": THRESHOLDS.copy(),
            "share_to_sales": share,
            "leads_per_week": sent / weeks,
            "precision": precision,
            "recall": recall,
            "expected_wins": wins / weeks,
            "lift": lift,
        }
    )


def net_value_per_week(table: pd.DataFrame, value: float, cost_per_lead: float = 1.0) -> np.ndarray:
    """Expected wins x value of a win - leads sent x cost of working a lead, per week."""
    return (
        table["expected_wins"].to_numpy() * value
        - table["leads_per_week"].to_numpy() * cost_per_lead
    )


def choose_threshold(
    table: pd.DataFrame,
    by: str,
    value: float,
    cost_per_lead: float = 1.0,
    capacity: float | None = None,
) -> pd.Series:
    """The row of `table` (from `threshold_table`) chosen by one of marketing ops' criteria.

    - ``value``: `value` is what a win is worth and `cost_per_lead` what sales spends working one
      lead (same currency; default 1, so `value` alone is the ratio): the threshold with the most
      net value per week (ties: the higher threshold, fewer leads), among those that send at most
      `capacity` leads a week when given (what sales can take: value alone would send any lead
      worth more than it costs, hundreds a week).
    - ``capacity``: `value` leads a week sales can take: the threshold whose leads a week is
      closest to it (ties: the higher threshold, never more work than needed).
    - ``precision``: target precision 0-1: the lowest threshold (most leads) that reaches it.
    - ``recall``: target recall 0-1: the highest threshold (fewest leads) that still reaches it.
    """
    if by not in CHOOSE_BY:
        raise PolicyError(
            f"unknown way to choose a threshold {by!r}; use one of: {', '.join(CHOOSE_BY)}"
        )
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise PolicyError(f"value for choosing by {by} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise PolicyError(f"value for choosing by {by} must be a finite number, got {value}")
    thresholds = table["threshold"].to_numpy()
    if by == "value":
        if value <= 0 or cost_per_lead < 0:
            raise PolicyError(
                "choosing by value needs the value of a win > 0 and a cost per lead >= 0, "
                f"got value={value}, cost_per_lead={cost_per_lead}"
            )
        net = net_value_per_week(table, value, cost_per_lead)
        if capacity is not None:
            if not math.isfinite(capacity) or capacity <= 0:
                raise PolicyError(f"sales capacity must be > 0 leads a week, got {capacity}")
            volume = table["leads_per_week"].to_numpy()
            within = volume <= capacity + 1e-9
            if not within.any():
                raise PolicyError(
                    f"no threshold keeps to {capacity:g} leads a week: the fewest is "
                    f"{volume.min():.1f} a week (threshold {thresholds[int(np.argmin(volume))]}); "
                    "raise the capacity"
                )
            net = np.where(within, net, -np.inf)
        best = np.flatnonzero(np.isclose(net, net.max(), rtol=1e-12, atol=1e-12))
        return table.iloc[int(best[-1])]
    if by == "capacity":
        if value < 0:
            raise PolicyError(f"sales capacity must be >= 0 leads a week, got {value}")
        gap = np.abs(table["leads_per_week"].to_numpy() - value)
        best = np.flatnonzero(np.isclose(gap, gap.min(), rtol=1e-12, atol=1e-12))
        return table.iloc[int(best[-1])]
    if not 0 < value <= 1:
        raise PolicyError(f"target {by} must be between 0 and 1 (e.g. 0.4 for 40%), got {value}")
    column = table[by].to_numpy()
    ok = np.flatnonzero(column >= value - 1e-12)
    if ok.size == 0:
        if np.isnan(column).all():
            raise PolicyError(f"no {by} can be computed: the sample has no wins")
        best = int(np.nanargmax(column))
        raise PolicyError(
            f"no threshold reaches {by} {value:.3f}; the highest is {column[best]:.3f} at threshold "
            f"{thresholds[best]}: lower the target"
        )
    return table.iloc[int(ok[0] if by == "precision" else ok[-1])]
