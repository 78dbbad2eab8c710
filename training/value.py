"""Learning the expected deal value (`features.model.value.DealValueModel`) from won deals.

Rows: the snapshots of won leads whose outcome has an amount, each lead weighing one in total
(a lead seen at three ages is three rows of a third). The design: one indicator per category seen
at least `MIN_CATEGORY_ROWS` times in a categorical feature (rarer ones count as the typical
category), each number log1p-transformed when it is never negative (counts, amounts),
standardised, with an indicator for "missing". A ridge regression of the log amount, its penalty
chosen by grouped cross-validation; the out-of-fold residuals give the smearing factor (the mean
amount) and the interval's quantiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.model_selection import GroupKFold

from features.model.value import DealValueModel

MIN_CATEGORY_ROWS = 10
PENALTIES = (0.3, 3.0, 30.0, 300.0)
INTERVAL_LEVEL = 0.8
MIN_DEALS = 30  # won deals with an amount, below which no value model is trained


def design_terms(X: np.ndarray, categorical: np.ndarray) -> list[dict[str, Any]]:
    """The terms (without weights) of every feature column that varies among the rows."""
    terms: list[dict[str, Any]] = []
    for j in range(X.shape[1]):
        values = X[:, j]
        missing = np.isnan(values)
        known = values[~missing]
        if known.size == 0:
            continue
        if categorical[j]:
            codes, counts = np.unique(known, return_counts=True)
            codes = codes[counts >= MIN_CATEGORY_ROWS]
            if len(codes) + missing.any() < 2:
                continue
            terms.append({"column": j, "kind": "category", "codes": codes.tolist()})
        else:
            log = bool(known.min() >= 0)
            v = np.log1p(known) if log else known
            if v.std() == 0 and not missing.any():
                continue
            terms.append({
                "column": j, "kind": "number", "log": log, "fill": float(np.median(v)),
                "center": float(v.mean()), "scale": float(v.std()) or 1.0,
            })  # fmt: skip
    return terms


def design_matrix(X: np.ndarray, terms: list[dict[str, Any]]) -> np.ndarray:
    """The regression's columns, term by term: category indicators or the standardised number,
    then the term's "missing" indicator."""
    blocks = []
    for term in terms:
        values = X[:, term["column"]]
        missing = np.isnan(values)
        if term["kind"] == "category":
            blocks.append((values[:, None] == np.asarray(term["codes"])[None, :]).astype(float))
        else:
            v = np.log1p(np.clip(values, 0, None)) if term["log"] else values
            v = np.where(missing, term["fill"], v)
            blocks.append(((v - term["center"]) / term["scale"])[:, None])
        blocks.append(missing[:, None].astype(float))
    return np.hstack(blocks) if blocks else np.empty((X.shape[0], 0))


def _ridge(D: np.ndarray, y: np.ndarray, w: np.ndarray, penalty: float) -> tuple[float, np.ndarray]:
    mean_d = np.average(D, axis=0, weights=w)
    mean_y = float(np.average(y, weights=w))
    root = np.sqrt(w)[:, None]
    Dc = (D - mean_d) * root
    beta = np.linalg.solve(
        Dc.T @ Dc + penalty * np.eye(D.shape[1]), Dc.T @ ((y - mean_y) * root[:, 0])
    )
    return mean_y - float(mean_d @ beta), beta


def fit_value_model(
    X: np.ndarray, categorical: np.ndarray, amount: np.ndarray, groups: np.ndarray, seed: int = 0
) -> DealValueModel:
    """A `DealValueModel` from feature rows of won deals and their amounts (> 0)."""
    del seed  # GroupKFold is deterministic
    y = np.log(np.asarray(amount, dtype=float))
    per_lead = dict(zip(*np.unique(groups, return_counts=True)))
    w = 1.0 / np.array([per_lead[g] for g in groups], dtype=float)
    terms = design_terms(X, np.asarray(categorical, dtype=bool))
    D = design_matrix(X, terms)
    folds = list(GroupKFold(n_splits=min(3, len(per_lead))).split(D, y, groups))
    best: tuple[float, float, np.ndarray] | None = None
    for penalty in PENALTIES:
        oof = np.empty_like(y)
        for fit_rows, test_rows in folds:
            intercept, beta = _ridge(D[fit_rows], y[fit_rows], w[fit_rows], penalty)
            oof[test_rows] = intercept + D[test_rows] @ beta
        loss = float(np.average((y - oof) ** 2, weights=w))
        if best is None or loss < best[0]:
            best = (loss, penalty, y - oof)
    assert best is not None
    _, penalty, residual = best
    intercept, beta = _ridge(D, y, w, penalty)
    position = 0
    for term in terms:
        if term["kind"] == "category":
            width = len(term["codes"])
            term["weights"] = beta[position : position + width].tolist()
        else:
            width = 1
            term["weight"] = float(beta[position])
        term["missing"] = float(beta[position + width])
        position += width + 1
    tail = (1 - INTERVAL_LEVEL) / 2
    state = {
        "intercept": intercept,
        "terms": terms,
        "smear": float(np.average(np.exp(residual), weights=w)),
        "interval": {
            "level": INTERVAL_LEVEL,
            "low": float(np.quantile(residual, tail)),
            "high": float(np.quantile(residual, 1 - tail)),
        },
        "penalty": penalty,
        "deals": len(per_lead),
    }
    return DealValueModel(state)


def value_metrics(model: DealValueModel, X: np.ndarray, amount: np.ndarray) -> dict[str, float]:
    """Holdout figures of won deals: rank correlation of expected and actual amounts, interval
    coverage, mean actual over mean expected, median absolute error of the log amount."""
    if len(amount) < 3:
        return {}
    expected, low, high = model.predict(X)
    return {
        "value_spearman": float(spearmanr(expected, amount).statistic),
        "value_interval_coverage": float(np.mean((amount >= low) & (amount <= high))),
        "value_mean_ratio": float(np.mean(amount) / np.mean(expected)),
        "value_median_abs_log_error": float(np.median(np.abs(np.log(amount) - np.log(expected)))),
        "value_holdout_deals": float(len(amount)),
    }
