"""Fit and engagement: two calibrated sub-scores beside the combined win probability, and the grid.

Fit says how likely leads *like this one* win, from who the lead is: its attribute columns only
(company size, industry, title, country, when it arrived). Engagement says how likely leads that
*did what this one did* win, from its touchpoints only (counts, recency, channels, and the lead's
age they are measured against). Each is a small model of its own, trained on the same snapshots
as the win model and calibrated the same way (`training.subscores`), reading only its columns of
the feature row: a change in touchpoints cannot move the fit, a change in attributes cannot move
the engagement.

The grid marketing filters on: a fit letter A-D (A the best fit) by share bands of the fit
probability (A the top 25% of held-out leads, B the next 25%, ...) and an engagement digit 1-4
(1 the most engaged) the same way, e.g. ``A1`` (right company, very active) or ``A4`` (right
company, silent: a nurture target). State: JSON (`to_dict`) + the two estimators (skops).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.model.calibration import CalibratedModel

FIT_LETTERS = ("A", "B", "C", "D")
ENGAGEMENT_DIGITS = ("1", "2", "3", "4")
BAND_SHARES = (0.25, 0.5, 0.75)  # the top 25%, 50%, 75% of held-out leads
SUBSCORES = ("fit", "engagement")
_LETTERS = np.asarray(FIT_LETTERS, dtype=object)
_DIGITS = np.asarray(ENGAGEMENT_DIGITS, dtype=object)
LEAD_AGE_FEATURE = "days_since_created"  # the clock of the touchpoints: engagement's


def subscore_columns(featurizer: Any) -> dict[str, list[int]]:
    """{"fit": attribute feature columns, "engagement": touchpoint feature columns (with the
    lead's age, the clock they are counted against)}; empty lists when a side has none."""
    names = [str(n) for n in featurizer.get_feature_names_out()]
    n_attributes = len(featurizer.attributes_.features_)
    touch = list(range(n_attributes, len(names)))
    if not getattr(featurizer, "uses_touchpoints_", False):
        touch = []  # the lead's age alone says nothing of engagement
    return {"fit": list(range(n_attributes)), "engagement": touch}


class SubScoreModel:
    """A calibrated classifier reading only `columns` of the scorer's feature rows."""

    def __init__(self, columns: Sequence[int], estimator: CalibratedModel) -> None:
        self.columns = np.asarray(columns, dtype=np.intp)
        self.estimator = estimator

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(np.asarray(X, dtype=float).take(self.columns, axis=1))


class FitEngagement:
    """The fit and engagement models, their share bands and holdout figures."""

    def __init__(
        self,
        fit: SubScoreModel,
        engagement: SubScoreModel,
        fit_bands: Sequence[float],
        engagement_bands: Sequence[float],
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.fit = fit
        self.engagement = engagement
        # A, B, C (letters) and 1, 2, 3 (digits) are above these probabilities: descending
        self.fit_bands = np.asarray(fit_bands, dtype=float)
        self.engagement_bands = np.asarray(engagement_bands, dtype=float)
        self.metrics: dict[str, float] = dict(metrics or {})

    def models(self) -> dict[str, SubScoreModel]:
        return {"fit": self.fit, "engagement": self.engagement}

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Per lead: fit_probability, engagement_probability, fit_grade (A-D),
        engagement_level (1-4) and grid (e.g. 'B2')."""
        fit = self.fit.predict_proba(X)
        engagement = self.engagement.predict_proba(X)
        letter = band_of(fit, self.fit_bands)
        digit = band_of(engagement, self.engagement_bands)
        letters = _LETTERS[letter]
        digits = _DIGITS[digit]
        return {
            "fit_probability": fit,
            "engagement_probability": engagement,
            "fit_grade": letters,
            "engagement_level": digit + 1,
            "grid": letters + digits,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "fit": {
                "columns": self.fit.columns.tolist(),
                "calibration": self.fit.estimator.calibration,
                "bands": self.fit_bands.tolist(),
            },
            "engagement": {
                "columns": self.engagement.columns.tolist(),
                "calibration": self.engagement.estimator.calibration,
                "bands": self.engagement_bands.tolist(),
            },
            "band_shares": list(BAND_SHARES),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], estimators: Mapping[str, Any], compile: bool = True
    ) -> FitEngagement:
        """From `to_dict()` and the fitted classifiers {"fit": ..., "engagement": ...}."""
        parts = {
            name: SubScoreModel(
                state[name]["columns"],
                CalibratedModel(estimators[name], state[name]["calibration"], compile=compile),
            )
            for name in SUBSCORES
        }
        return cls(
            parts["fit"],
            parts["engagement"],
            state["fit"]["bands"],
            state["engagement"]["bands"],
            state.get("metrics"),
        )


def band_of(probability: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """0 for the top band (above bands[0]), 1, 2, or 3 at or below bands[-1]. Strictly above:
    leads tied at a band's edge (all the leads without a touch share one engagement) go to
    the band below it, not above."""
    return (np.asarray(probability, dtype=float)[:, None] <= bands[None, :]).sum(axis=1)


def share_bands(probability: np.ndarray) -> list[float]:
    """The edges above which the top 25%, 50% and 75% of `probability` lie (descending)."""
    p = np.asarray(probability, dtype=float)
    return [float(np.quantile(p, 1 - share)) for share in BAND_SHARES]
