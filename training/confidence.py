"""Learning each lead's confidence label (`features.model.confidence.LeadConfidence`).

The grid is cut on the training snapshots' scores (the probability, fit and engagement the
model gives them) and counts them per cell; the held-out leads then say what each label means
on this data: its share of leads, its win rate against its mean probability, and its expected
calibration error (the `metrics`: `confidence_low_share`, `confidence_low_win_rate`,
`confidence_low_mean_probability`, `confidence_low_ece`, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.model.confidence import LABELS, LeadConfidence
from features.model.scorer import confidence_axes


def _axes(scorer: Any, X: np.ndarray, probability: np.ndarray) -> dict[str, np.ndarray]:
    sub = scorer.subscores.predict(X) if scorer.subscores is not None else {}
    return confidence_axes(probability, sub)


def fit_confidence(
    scorer: Any,
    X_train: np.ndarray,
    train_probability: np.ndarray,
    X_holdout: np.ndarray,
    holdout_probability: np.ndarray,
    holdout_labels: np.ndarray,
) -> LeadConfidence:
    """The grid over the training snapshots, with each label's held-out figures."""
    from training.evaluate import expected_calibration_error

    confidence = LeadConfidence.learn(_axes(scorer, X_train, train_probability))
    similar = confidence.similar_leads(_axes(scorer, X_holdout, holdout_probability))
    labels = confidence.labels(similar)
    y = np.asarray(holdout_labels, dtype=float)
    metrics: dict[str, float] = {}
    for label in LABELS:
        rows = labels == label
        metrics[f"confidence_{label}_share"] = float(rows.mean()) if len(rows) else 0.0
        if rows.any():
            p = np.asarray(holdout_probability)[rows]
            metrics[f"confidence_{label}_win_rate"] = float(y[rows].mean())
            metrics[f"confidence_{label}_mean_probability"] = float(p.mean())
            metrics[f"confidence_{label}_ece"] = float(
                expected_calibration_error(y[rows].astype(int), p, 10)
            )
    confidence.metrics = metrics
    return confidence
