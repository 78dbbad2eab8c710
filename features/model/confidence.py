"""How much to trust one lead's score: low, medium or high, from how many similar leads trained it.

A probability is an average over the training leads the model saw near this one. Where many
were near, it is measured; where few were, it is an extrapolation, however confident it looks.
"Near" here is the lead's cell in a grid over what the model says of it: the win probability,
and, when the model has them, the fit and the engagement (`features.model.subscores`); each axis
cut at the training leads' 2nd, 10th, 30th, 50th, 70th, 90th and 98th percentiles, so a lead in
an extreme or unusual corner (very high probability, or high fit with no engagement where such
leads are rare) has few neighbours. `similar_leads` is the number of training snapshots in the
lead's cell; the label is low below `LOW_BELOW`, high from `HIGH_FROM`, medium between.

Why these counts: with n leads at a win rate near 15%, the rate they measure is known to about
+-1.3 x sqrt(0.15 x 0.85 / n) (an 80% interval): +-0.08 at 30 leads, +-0.04 at 150. The
training evaluation reports each label's held-out leads (share, win rate against the mean
probability, ECE), so users see what the labels mean on their own data (`metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUANTILES = (0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98)
LOW_BELOW = 30
HIGH_FROM = 150
LABELS = ("low", "medium", "high")


class LeadConfidence:
    """Training snapshots per cell of the grid over `axes` (names of score columns)."""

    def __init__(
        self,
        axes: Sequence[str],
        edges: Sequence[Sequence[float]],
        counts: np.ndarray | Sequence[Any],
        low_below: int = LOW_BELOW,
        high_from: int = HIGH_FROM,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.axes = [str(a) for a in axes]
        self.edges = [np.asarray(e, dtype=float) for e in edges]
        self.counts = np.asarray(counts, dtype=np.int64)
        self.low_below = int(low_below)
        self.high_from = int(high_from)
        self.metrics: dict[str, float] = dict(metrics or {})
        shape = tuple(len(e) + 1 for e in self.edges)
        if self.counts.shape != shape:
            raise ValueError(f"confidence counts have shape {self.counts.shape}, expected {shape}")

    @classmethod
    def learn(cls, columns: Mapping[str, np.ndarray]) -> LeadConfidence:
        """The grid from the training snapshots' score columns ({axis name: values})."""
        axes = list(columns)
        edges = [np.unique(np.quantile(np.asarray(columns[a], dtype=float), QUANTILES))
                 for a in axes]  # fmt: skip
        empty = cls(axes, edges, np.zeros(tuple(len(e) + 1 for e in edges), dtype=np.int64))
        cell = empty._cells(columns)
        counts = np.bincount(cell, minlength=empty.counts.size).reshape(empty.counts.shape)
        return cls(axes, edges, counts)

    def _cells(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        index = [
            np.searchsorted(edge, np.asarray(columns[axis], dtype=float), side="right")
            for axis, edge in zip(self.axes, self.edges)
        ]
        return np.ravel_multi_index(index, self.counts.shape)

    def similar_leads(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Training snapshots in each lead's cell."""
        return self.counts.reshape(-1)[self._cells(columns)]

    def labels(self, similar: np.ndarray) -> np.ndarray:
        """low / medium / high per count of similar training snapshots."""
        similar = np.asarray(similar)
        level = (similar >= self.low_below).astype(np.intp) + (similar >= self.high_from)
        return np.asarray(LABELS, dtype=object)[level]

    def to_dict(self) -> dict[str, Any]:
        return {
            "axes": self.axes,
            "edges": [e.tolist() for e in self.edges],
            "counts": self.counts.tolist(),
            "low_below": self.low_below,
            "high_from": self.high_from,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> LeadConfidence:
        return cls(
            state["axes"],
            state["edges"],
            state["counts"],
            state.get("low_below", LOW_BELOW),
            state.get("high_from", HIGH_FROM),
            state.get("metrics"),
        )
