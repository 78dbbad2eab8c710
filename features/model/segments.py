"""A model per segment: leads of one value of a categorical attribute scored by their own model.

Segments differ (enterprise deals are not won like small-business ones, one region buys unlike
another); one global model averages them. With `training.segment_by: <column>` training fits,
for each value of that column with enough won and lost leads, the chosen candidate again on that
segment's leads only (`training.segments`), and keeps it when it does at least as well as the
global model on the segment's held-out leads. Every other lead (thin segments, rare or new
values, a blank column) is scored by the global model. A lead's segment is read from its
feature row (the column's category code), so it is the same on every path. `segment` in each
answer names the model that scored it: the segment's value, or ``global``.

State: JSON (`to_dict`: the column, its feature index, per segment its label, code, calibration
map and figures) + the segment classifiers (one skops dict, keyed by label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.model.calibration import CalibratedModel

GLOBAL = "global"  # the `segment` of a lead the global model scored


class SegmentModels:
    """The segments' own models over the feature column `feature` (category codes)."""

    def __init__(
        self,
        column: str,
        feature: int,
        labels: Sequence[str],
        codes: Sequence[float],
        estimators: Sequence[CalibratedModel],
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.column = column
        self.feature = int(feature)
        self.labels = [str(label) for label in labels]
        self.codes = np.asarray(codes, dtype=float)
        self.estimators = list(estimators)
        self.metrics: dict[str, float] = dict(metrics or {})
        self._names = np.asarray([*self.labels, GLOBAL], dtype=object)

    def assign(self, X: np.ndarray) -> np.ndarray:
        """Per row, the index of its segment's model; -1 for the global model."""
        code = np.asarray(X, dtype=float)[:, self.feature]
        hit = code[:, None] == self.codes[None, :]
        return np.where(hit.any(axis=1), hit.argmax(axis=1), -1)

    def names(self, assigned: np.ndarray) -> np.ndarray:
        """The `segment` of each row from `assign`'s indices."""
        return self._names[assigned]

    def probabilities(self, X: np.ndarray, global_probability: np.ndarray) -> np.ndarray:
        """`global_probability` with each segment's rows scored by its own model."""
        assigned = self.assign(X)
        out = np.array(global_probability, dtype=float, copy=True)
        for k in np.unique(assigned[assigned >= 0]).tolist():
            rows = assigned == k
            out[rows] = self.estimators[k].predict_proba(X[rows])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "feature": self.feature,
            "segments": [
                {"label": label, "code": float(code), "calibration": estimator.calibration}
                for label, code, estimator in zip(self.labels, self.codes, self.estimators)
            ],
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], models: Mapping[str, Any], compile: bool = True
    ) -> SegmentModels:
        """From `to_dict()` and the fitted classifiers keyed by segment label."""
        segments = state["segments"]
        return cls(
            state["column"],
            state["feature"],
            [s["label"] for s in segments],
            [s["code"] for s in segments],
            [
                CalibratedModel(models[s["label"]], s["calibration"], compile=compile)
                for s in segments
            ],  # fmt: skip
            state.get("metrics"),
        )
