"""Learning the fit and engagement sub-scores (`features.model.subscores.FitEngagement`).

Each sub-score is a logistic regression (the `logistic` candidate of `training.models`, C=0.1,
numbers without splines: small, additive, compiled to numpy for serving, and quicker to fit:
on 20,000 demo leads, splines, 3 folds and 60,000 rows took 54 s, this 40 s, same figures) of the same label on the same training snapshots
as the win model, reading only its columns: attributes for fit, touchpoints for engagement. It
is calibrated as the win model is: out-of-fold scores (folds grouped by lead) choose and fit
sigmoid or isotonic (`training.models.choose_calibration`). Above `MAX_ROWS` training snapshots
a random sample of leads' snapshots is used: a sub-score is a coarse summary, and the fits must
not add much to training time. The share bands of the grid come from the held-out leads'
sub-scores, as the grades do; holdout figures per sub-score and the win rate per grid cell are
the model's `metrics`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from features.model.calibration import CalibratedModel
from features.model.subscores import (
    ENGAGEMENT_DIGITS,
    FIT_LETTERS,
    FitEngagement,
    SubScoreModel,
    share_bands,
    subscore_columns,
)
from training.data import sample_leads_rows
from training.models import Candidate, choose_calibration, fit_estimator

MAX_ROWS = 40_000
FOLDS = 2  # out-of-fold scores for the calibrator: two folds are enough for a 1-d map
MIN_COLUMNS = 1


def _candidate(splines: bool) -> Candidate:
    return Candidate("logistic", {"C": 0.1, "splines": splines})


def fit_subscore(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    columns: list[int],
    column_kinds: np.ndarray,
    seed: int,
    splines: bool = True,
) -> SubScoreModel:
    """One calibrated sub-score model reading `columns` of `X` (see the module docstring);
    `column_kinds`: every column's kind, a bool mask of categories or `column_kinds_`."""
    Xc = X[:, columns]
    kinds = np.asarray(column_kinds)[columns]
    candidate = _candidate(splines)
    oof = np.full(len(y), np.nan)
    n_folds = min(FOLDS, len(np.unique(groups)))
    for fit_rows, test_rows in GroupKFold(n_splits=n_folds).split(Xc, y, groups):
        if len(np.unique(y[fit_rows])) < 2:
            continue
        model = fit_estimator(
            candidate, kinds, seed, Xc[fit_rows], y[fit_rows], groups=groups[fit_rows]
        )
        oof[test_rows] = model.predict_proba(Xc[test_rows])[:, 1]
    seen = ~np.isnan(oof)
    calibration, _ = choose_calibration(oof[seen], y[seen], seed)
    model = fit_estimator(candidate, kinds, seed, Xc, y, groups=groups)
    return SubScoreModel(columns, CalibratedModel(model, calibration))


def fit_subscores(
    featurizer: Any,
    X_train: np.ndarray,
    y_train: np.ndarray,
    groups: np.ndarray,
    X_holdout: np.ndarray,
    y_holdout: np.ndarray,
    seed: int,
    splines: bool = True,
) -> tuple[FitEngagement | None, str | None]:
    """(the fit and engagement models, None) or (None, why there are none)."""
    columns = subscore_columns(featurizer)
    if not columns["fit"] or not columns["engagement"]:
        return None, (
            "no fit and engagement scores: they need both attribute columns and touchpoints "
            "(give the training a touchpoints file)"
        )
    rows = sample_leads_rows(groups, MAX_ROWS, seed)
    kinds = featurizer.column_kinds_
    X, y, g = X_train[rows], y_train[rows], groups[rows]
    parts = {
        name: fit_subscore(X, y, g, columns[name], kinds, seed, splines=False)
        for name in ("fit", "engagement")
    }
    held = {name: model.predict_proba(X_holdout) for name, model in parts.items()}
    model = FitEngagement(
        parts["fit"],
        parts["engagement"],
        share_bands(held["fit"]),
        share_bands(held["engagement"]),
    )
    model.metrics = subscore_metrics(model, X_holdout, y_holdout)
    return model, None


def subscore_metrics(model: FitEngagement, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Holdout figures: each sub-score's ROC AUC and ECE, and per grid cell the share of leads
    and their win rate (`grid_B2_share`, `grid_B2_win_rate`)."""
    from training.evaluate import expected_calibration_error

    if len(y) == 0:
        return {}
    scored = model.predict(X)
    metrics: dict[str, float] = {}
    both = 0 < y.sum() < y.size
    for name in ("fit", "engagement"):
        p = scored[f"{name}_probability"]
        if both:
            metrics[f"{name}_roc_auc"] = float(roc_auc_score(y, p))
        metrics[f"{name}_ece"] = float(expected_calibration_error(y, p, 10))
    grid = scored["grid"]
    for letter in FIT_LETTERS:
        for digit in ENGAGEMENT_DIGITS:
            cell = grid == letter + digit
            metrics[f"grid_{letter}{digit}_share"] = float(cell.mean())
            if cell.any():
                metrics[f"grid_{letter}{digit}_win_rate"] = float(y[cell].mean())
    return metrics
