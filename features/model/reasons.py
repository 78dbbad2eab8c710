"""features.model.reasons"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

N_REASONS = 3


MIN_EFFECT_POINTS = 0.5  # effects smaller than half a score point are noise, not reasons


def _baseline_equal(X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(X) & np.isnan(baseline)
    return (X == baseline) | both_nan


def strongest_effects(
    effects: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(top columns, their effects, bottom columns, their effects), `n` per lead (row).

    Top: largest effects first, ties to the earlier column; bottom: smallest first, ties to the
    later column; NaN (no effect) is never picked: a lead with fewer effects gets NaN there.
    The same picks as a stable argsort of each row (`ranked_effects`), by n passes of argmax.
    """
    n_leads = effects.shape[0]
    rows = np.arange(n_leads)
    missing = np.isnan(effects)
    out = []
    for fill, flip in ((-np.inf, False), (np.inf, True)):
        key = np.where(missing, fill, effects)
        if flip:  # smallest, ties to the later column: argmax of the negated, reversed row
            key = -key[:, ::-1]
        columns = np.empty((n_leads, n), dtype=np.intp)
        picked = np.empty((n_leads, n))
        for k in range(n):
            j = key.argmax(axis=1)
            picked[:, k] = key[rows, j]
            key[rows, j] = -np.inf
            columns[:, k] = effects.shape[1] - 1 - j if flip else j
        exhausted = np.isneginf(picked)  # only NaN effects were left
        values = np.where(exhausted, np.nan, -picked if flip else picked)
        out += [columns, values]
    return out[0], out[1], out[2], out[3]


def ranked_effects(
    effects: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`strongest_effects` by a stable argsort of every row (the tests' reference)."""
    n_features = effects.shape[1]
    order = np.argsort(np.where(np.isnan(effects), np.inf, -effects), axis=1, kind="stable")
    top = order[:, :n]
    counts = (~np.isnan(effects)).sum(axis=1)
    back = counts[:, None] - 1 - np.arange(n)[None, :]
    bottom = np.take_along_axis(order, np.clip(back, 0, n_features - 1), axis=1)
    top_effect = np.take_along_axis(effects, top, axis=1)
    bottom_effect = np.where(back >= 0, np.take_along_axis(effects, bottom, axis=1), np.nan)
    return top, top_effect, bottom, bottom_effect


def format_reasons(reasons: Sequence[Mapping[str, Any]] | None) -> str:
    """Reasons as one line for files and terminals: 'text (+8.0); text (-3.1)'."""
    if not reasons:
        return ""
    return "; ".join(f"{r['text']} ({r['effect']:+.1f})" for r in reasons)


def typical_lead(X: np.ndarray, categorical_mask: np.ndarray) -> np.ndarray:
    """The baseline for reasons: per feature the most common category or the median number.

    A feature missing for most leads has a missing baseline (missing is the typical value).
    """
    X = np.asarray(X, dtype=float)
    baseline = np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        column = X[:, j]
        present = column[~np.isnan(column)]
        if present.size * 2 < column.size or present.size == 0:
            continue
        if categorical_mask[j]:
            values, counts = np.unique(present, return_counts=True)
            baseline[j] = values[int(np.argmax(counts))]
        else:
            baseline[j] = float(np.median(present))
    return baseline
