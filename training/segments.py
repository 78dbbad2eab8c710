"""Training a model per segment (`features.model.segments.SegmentModels`), global fallback.

`segment_by` names a categorical attribute column. For each of its values (the featurizer's
learned categories: rare values are 'other' and stay global) the training leads of that value
are counted as the thin-data check counts them (`training.thin_data`): won leads, and leads
never won. With at least `min_wins` and `min_losses` the chosen candidate (the global search's
winner, same settings) is fitted on the segment's training snapshots and calibrated on its own
grouped out-of-fold scores, as the global model is. It is kept when it does at least as well as
the global model on the segment's held-out snapshots (log loss); a segment whose holdout has no
win or no loss cannot judge, and keeps its model. Every segment, kept or not, is reported:
`segment_<value>_*` figures (leads, own model or not, ROC AUC, log loss and ECE of the model
that scores it, and the global model's on the same leads), logged as run metrics.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GroupKFold

from features.model.calibration import CalibratedModel
from features.model.segments import SegmentModels
from training.models import Candidate, choose_calibration, fit_estimator

FOLDS = 3
_EPS = 1e-6


@dataclass
class SegmentFit:
    models: SegmentModels | None
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)  # every segment's, kept or not


def segment_feature(featurizer: Any, column: str) -> tuple[int, list[str]]:
    """(feature index, category labels) of the categorical attribute `column`; raises
    TrainingConfigError naming the column and the columns that would do."""
    from training.train import TrainingConfigError

    names = [str(n) for n in featurizer.get_feature_names_out()]
    specs = {c["column"]: c for c in featurizer.attributes_.columns_}
    categorical = [c for c, spec in specs.items() if spec["type"] == "categorical"]
    spec = specs.get(column)
    if spec is None or spec["type"] != "categorical" or column not in names:
        what = (
            "is not an attribute column of the leads"
            if spec is None
            else f"is a {spec['type']} column, not a categorical one"
        )
        raise TrainingConfigError(
            f"training.segment_by (--segment-by): {column!r} {what}; segment by a categorical "
            f"attribute column such as {', '.join(repr(c) for c in categorical[:8]) or '(none)'}"
        )
    return names.index(column), list(spec["labels"])


def metric_name(label: str) -> str:
    """A segment's value as a metric name part (MLflow: letters, digits, _ - . / and spaces)."""
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", label).strip("_") or "blank"


def _lead_counts(y: np.ndarray, groups: np.ndarray) -> tuple[int, int]:
    """(won leads, leads never won) among snapshots `y` of leads `groups`."""
    if len(y) == 0:
        return 0, 0
    leads, inverse = np.unique(groups, return_inverse=True)
    won = np.zeros(len(leads), dtype=bool)
    np.logical_or.at(won, inverse, np.asarray(y) == 1)
    return int(won.sum()), int((~won).sum())


def _fit_calibrated(
    candidate: Candidate,
    kinds: np.ndarray,
    seed: int,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
) -> CalibratedModel:
    oof = np.full(len(y), np.nan)
    for fit_rows, test_rows in GroupKFold(n_splits=FOLDS).split(X, y, groups):
        if len(np.unique(y[fit_rows])) < 2:
            continue
        model = fit_estimator(
            candidate, kinds, seed, X[fit_rows], y[fit_rows], groups=groups[fit_rows]
        )
        oof[test_rows] = model.predict_proba(X[test_rows])[:, 1]
    seen = ~np.isnan(oof)
    calibration, _ = choose_calibration(oof[seen], y[seen], seed)
    return CalibratedModel(fit_estimator(candidate, kinds, seed, X, y, groups=groups), calibration)


def _figures(y: np.ndarray, p: np.ndarray, prefix: str) -> dict[str, float]:
    from training.evaluate import expected_calibration_error

    if len(y) == 0:
        return {}
    out = {
        f"{prefix}log_loss": float(log_loss(y, np.clip(p, _EPS, 1 - _EPS), labels=[0, 1])),
        f"{prefix}ece": float(expected_calibration_error(y.astype(int), p, 10)),
    }
    if 0 < y.sum() < len(y):
        out[f"{prefix}roc_auc"] = float(roc_auc_score(y, p))
    return out


def fit_segments(
    featurizer: Any,
    column: str,
    candidate: Candidate,
    global_model: CalibratedModel,
    X_train: np.ndarray,
    y_train: np.ndarray,
    groups: np.ndarray,
    X_holdout: np.ndarray,
    y_holdout: np.ndarray,
    seed: int,
    min_wins: int,
    min_losses: int,
    step: Callable[[str], None] | None = None,
) -> SegmentFit:
    """The segments' own models, kept where they earn it, and the per-segment figures."""
    feature, labels = segment_feature(featurizer, column)
    kinds = featurizer.column_kinds_
    train_code, holdout_code = X_train[:, feature], X_holdout[:, feature]
    global_holdout = global_model.predict_proba(X_holdout)
    kept_labels: list[str] = []
    kept_codes: list[float] = []
    kept_models: list[CalibratedModel] = []
    metrics: dict[str, float] = {}
    notes: list[str] = []
    for code, label in enumerate(labels):
        rows = train_code == code
        held = holdout_code == code
        name = f"segment_{metric_name(label)}_"
        wins, losses = _lead_counts(y_train[rows], groups[rows])
        y_held = y_holdout[held].astype(float)
        figures = {
            f"{name}leads": float(wins + losses),
            f"{name}holdout_snapshots": float(held.sum()),
        }
        figures |= _figures(y_held, global_holdout[held], f"{name}global_")
        own = None
        if wins < min_wins or losses < min_losses:
            notes.append(
                f"segment {column}={label!r}: {wins} won and {losses} lost leads in training, at "
                f"least {min_wins} and {min_losses} are needed for its own model "
                "(training.min_wins, training.min_losses): scored by the global model"
            )
        else:
            if step is not None:
                step(f"fitting the model of segment {column}={label}")
            own = _fit_calibrated(
                candidate, kinds, seed, X_train[rows], y_train[rows], groups[rows]
            )
            own_held = own.predict_proba(X_holdout[held])
            mine = _figures(y_held, own_held, name)
            judged = 0 < y_held.sum() < len(y_held)
            if judged and mine[f"{name}log_loss"] > figures[f"{name}global_log_loss"]:
                notes.append(
                    f"segment {column}={label!r}: its own model did worse than the global one on "
                    f"its held-out leads (log loss {mine[f'{name}log_loss']:.4f} vs "
                    f"{figures[f'{name}global_log_loss']:.4f}): scored by the global model"
                )
                own = None
            else:
                figures |= mine
        if own is None:  # the global model scores it: its figures are the global ones
            figures |= {
                k.replace(f"{name}global_", name): v
                for k, v in list(figures.items())
                if k.startswith(f"{name}global_")
            }
        else:
            kept_labels.append(label)
            kept_codes.append(float(code))
            kept_models.append(own)
        figures[f"{name}own_model"] = float(own is not None)
        metrics |= figures
    if not kept_models:
        notes.append(
            f"no segment of {column!r} has a model of its own: every lead is scored by the "
            "global model"
        )
        return SegmentFit(None, notes, metrics)
    models = SegmentModels(column, feature, kept_labels, kept_codes, kept_models, metrics)
    return SegmentFit(models, notes, metrics)


def compare_by_segment(
    featurizer: Any,
    column: str,
    X_holdout: np.ndarray,
    labels: np.ndarray,
    challenger: np.ndarray,
    champion: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Per value of `column` with held-out snapshots: the challenger's and the champion's ROC
    AUC and log loss on them (the gate's per-segment report)."""
    feature, values = segment_feature(featurizer, column)
    code = X_holdout[:, feature]
    out = {}
    y = np.asarray(labels, dtype=float)
    for i, value in enumerate(values):
        rows = code == i
        if not rows.any():
            continue
        figures = {"holdout_snapshots": float(rows.sum())}
        figures |= _figures(y[rows], np.asarray(challenger)[rows], "challenger_")
        figures |= _figures(y[rows], np.asarray(champion)[rows], "champion_")
        out[value] = figures
    return out
