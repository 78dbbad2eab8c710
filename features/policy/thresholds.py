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


def _checked(
    probabilities: Any, labels: Any, weeks: float, expected_values: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(probabilities, win weights: the labels or else the probabilities, expected values)."""
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
    values = None
    if expected_values is not None:
        values = np.asarray(expected_values, dtype=float).reshape(-1)
        if values.shape != p.shape:
            raise PolicyError(
                f"got {values.size} expected values for {p.size} probabilities: give one per lead"
            )
        if values.size and (not np.isfinite(values).all() or values.min() < 0):
            raise PolicyError("expected values must be numbers of 0 or more (found NaN or below 0)")
    return p, wins_weight, values


def threshold_table(
    probabilities: Any, labels: Any = None, weeks: float = 1.0, expected_values: Any = None
) -> pd.DataFrame:
    """What each integer score threshold 0-100 would send to sales, per week of leads.

    `probabilities`: calibrated win probabilities; `labels`: 1 won / 0 lost (None when outcomes
    are unknown: precision, recall and wins are then expected values from the probabilities);
    `weeks`: how many weeks of leads the sample covers (> 0); `expected_values` (probability x
    expected deal amount per lead, when the model has a deal value model) adds
    ``expected_revenue``: the sum of the expected values of the leads sent, per week.
    precision/lift are NaN where no lead is sent; recall is NaN when there is no win at all.
    """
    p, wins_weight, values = _checked(probabilities, labels, weeks, expected_values)
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
    table = pd.DataFrame(
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
    if values is not None:
        revenue = np.cumsum(np.bincount(scores, weights=values, minlength=101)[::-1])[::-1]
        table["expected_revenue"] = revenue / weeks
    return table


# ---------------------------------------------------------------------------------------------
# Filling the capacity by expected value

VALUE_COLUMNS = (
    "value_threshold",
    "share_to_sales",
    "leads_per_week",
    "precision",
    "recall",
    "expected_wins",
    "expected_revenue",
)


def value_table(
    expected_values: Any, probabilities: Any, labels: Any = None, weeks: float = 1.0
) -> pd.DataFrame:
    """What each value threshold would send to sales when leads are ranked by expected value
    (probability x expected deal amount), per week of leads: one row per distinct expected
    value, highest first; a row's `value_threshold` is that expected value, and the row counts
    every lead at or above it. Columns as `threshold_table`'s (wins observed with labels,
    expected without) with ``expected_revenue``, the sum of the expected values sent a week.
    """
    p, wins_weight, values = _checked(probabilities, labels, weeks, expected_values)
    assert values is not None
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    # the last lead of each run of equal values: a threshold sends all of them or none
    last = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True]) if ranked.size else ranked
    sent = (np.asarray(last) + 1).astype(float)
    wins = np.cumsum(wins_weight[order])[last] if ranked.size else np.empty(0)
    revenue = np.cumsum(ranked)[last] if ranked.size else np.empty(0)
    total_wins = float(wins_weight.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.full(sent.size, np.nan) if total_wins == 0 else wins / total_wins
    return pd.DataFrame(
        {
            "value_threshold": ranked[last] if ranked.size else np.empty(0),
            "share_to_sales": sent / p.size if p.size else sent,
            "leads_per_week": sent / weeks,
            "precision": wins / sent,
            "recall": recall,
            "expected_wins": wins / weeks,
            "expected_revenue": revenue / weeks,
        }
    )


def choose_value_threshold(
    table: pd.DataFrame,
    by: str,
    capacity: float | None = None,
    cost_per_lead: float = 0.0,
) -> pd.Series:
    """The row of `table` (from `value_table`) chosen when ranking by expected value.

    - ``capacity``: the leads of highest expected value that fill `capacity` leads a week
      without going over it (ties are sent together or not at all).
    - ``value``: the most expected revenue net of `cost_per_lead` per lead sent a week (every
      lead whose expected value is above the cost), within `capacity` leads a week when given.
    """
    if by not in ("capacity", "value"):
        raise PolicyError(
            f"ranking by expected value chooses its threshold by capacity or value, not {by!r}: "
            "use --by capacity (leads a week) or --by value (with a cost per lead)"
        )
    if table.empty:
        raise PolicyError("no leads to rank by expected value")
    if capacity is not None and (not math.isfinite(capacity) or capacity <= 0):
        raise PolicyError(f"sales capacity must be > 0 leads a week, got {capacity}")
    if by == "capacity" and capacity is None:
        raise PolicyError(
            "filling the capacity by expected value needs the weekly capacity: give it "
            "(leads a week sales can take) or set the policy's weekly_capacity"
        )
    if cost_per_lead < 0 or not math.isfinite(cost_per_lead):
        raise PolicyError(f"cost per lead must be 0 or more, got {cost_per_lead}")
    volume = table["leads_per_week"].to_numpy()
    within = np.ones(volume.size, dtype=bool) if capacity is None else volume <= capacity + 1e-9
    if not within.any():
        raise PolicyError(
            f"no value threshold keeps to {capacity:g} leads a week: the leads of the highest "
            f"expected value alone are {volume[0]:.1f} a week; raise the capacity"
        )
    if by == "capacity":
        return table.iloc[int(np.flatnonzero(within)[-1])]
    net = table["expected_revenue"].to_numpy() - volume * cost_per_lead
    net = np.where(within, net, -np.inf)
    best = np.flatnonzero(np.isclose(net, net.max(), rtol=1e-12, atol=1e-9))
    return table.iloc[int(best[0])]  # ties: the higher threshold, fewer leads


def at_capacity(table: pd.DataFrame, capacity: float) -> pd.Series | None:
    """The row of a threshold or value table that sends the most leads a week within
    `capacity` (None when even the strictest sends more)."""
    volume = table["leads_per_week"].to_numpy()
    within = np.flatnonzero(volume <= capacity + 1e-9)
    if within.size == 0:
        return None
    most = within[volume[within] == volume[within].max()]
    return table.iloc[int(most[-1])]  # ties (same leads): the higher threshold


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
