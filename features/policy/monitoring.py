"""features.policy.monitoring"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.policy.rules import GRADES, PolicyError

# ---------------------------------------------------------------------------------------------
# Drift and outcomes


def population_stability_index(
    reference: Any, recent: Any, bins: int = 10
) -> tuple[float, pd.DataFrame]:
    """PSI of recent probabilities against a reference (the training holdout).

    Bins are the reference's quantiles (equal-count bins; merged where values repeat); empty bins
    get a share of 1e-4 so the log is finite. Returns (psi, DataFrame[bin_low, bin_high,
    reference_share, recent_share, psi]). Rule of thumb: < 0.1 stable, 0.1-0.25 watch, > 0.25 shift.
    """
    ref = np.asarray(reference, dtype=float).reshape(-1)
    new = np.asarray(recent, dtype=float).reshape(-1)
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if ref.size == 0 or new.size == 0:
        raise PolicyError(
            f"population stability needs scores on both sides (reference {ref.size}, recent {new.size})"
        )
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    inner = edges[1:-1]
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    new_counts = np.bincount(np.searchsorted(inner, new, side="right"), minlength=inner.size + 1)
    ref_share = np.maximum(ref_counts / ref.size, 1e-4)
    new_share = np.maximum(new_counts / new.size, 1e-4)
    terms = (new_share - ref_share) * np.log(new_share / ref_share)
    low = np.concatenate([[0.0], inner])
    high = np.concatenate([inner, [1.0]])
    frame = pd.DataFrame(
        {
            "bin_low": low,
            "bin_high": high,
            "reference_share": ref_counts / ref.size,
            "recent_share": new_counts / new.size,
            "psi": terms,
        }
    )
    return float(terms.sum()), frame


def win_rate_by_grade(grades: Any, won: Any) -> pd.DataFrame:
    """Leads with a known outcome, wins and win rate per grade A-D (NaN where no outcome yet)."""
    g = np.asarray(grades, dtype=object).reshape(-1)
    w = np.asarray(won, dtype=float).reshape(-1)
    if g.shape != w.shape:
        raise PolicyError(f"got {g.size} grades and {w.size} outcomes: give one outcome per lead")
    rows = []
    for grade in GRADES:
        mask = g == grade
        leads = int(mask.sum())
        wins = int(w[mask].sum())
        rows.append(
            {
                "grade": grade,
                "leads": leads,
                "wins": wins,
                "win_rate": wins / leads if leads else float("nan"),
            }
        )
    return pd.DataFrame(rows)


OUTLOOK_MEANS = ("expected_value", "win_within_30d", "win_within_60d", "win_within_90d")


def outlook_by_grade(grades: Any, won: Any, columns: dict[str, Any]) -> pd.DataFrame:
    """What each grade A-D holds, per grade: leads, share of leads, win rate (`won`: 1/0), and
    of the value and timing `columns` given (one value per lead): the mean expected value and
    chance of a win within 30/60/90 days (`OUTLOOK_MEANS`), the median of
    `median_days_to_close` (NaN where a grade has no lead, or no value)."""
    g = np.asarray(grades, dtype=object).reshape(-1)
    w = np.asarray(won, dtype=float).reshape(-1)
    if g.shape != w.shape:
        raise PolicyError(f"got {g.size} grades and {w.size} outcomes: give one outcome per lead")
    arrays = {name: np.asarray(v, dtype=float).reshape(-1) for name, v in columns.items()}
    for name, values in arrays.items():
        if values.shape != g.shape:
            raise PolicyError(f"got {values.size} values of {name} for {g.size} leads")
    rows = []
    for grade in GRADES:
        mask = g == grade
        leads = int(mask.sum())
        row: dict[str, Any] = {
            "grade": grade,
            "leads": leads,
            "share": leads / g.size if g.size else float("nan"),
            "win_rate": float(w[mask].mean()) if leads else float("nan"),
        }
        for name, values in arrays.items():
            known = values[mask & np.isfinite(values)]
            if not known.size:
                row[name] = float("nan")
            elif name == "median_days_to_close":
                row[name] = float(np.median(known))
            else:
                row[name] = float(known.mean())
        rows.append(row)
    return pd.DataFrame(rows)
