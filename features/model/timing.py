"""Time to close: the chance of winning within 30, 60 and 90 days, and the median days to a win.

A discrete-time competing-risks model. The days after the scoring moment are cut into periods
(`edges`, every 15 days up to the longest horizon); one classifier gives, for a lead still open at
the start of a period, the chance it is won in that period, lost in it, or still open at its end
(its input: the lead's feature row, the period's start in days after the scoring moment, and the
lead's age in days then). Chaining the periods gives the chance of a win by each period's end:

    won_by(e_k+1) = won_by(e_k) + open(e_k) x won_in_k,  open(e_k+1) = open(e_k) x (1 - won_in_k - lost_in_k)

which can only grow with the horizon, so the 30-, 60- and 90-day chances are monotone for every
lead by construction. Why this form: a lead still open when the data ends (censored) tells the
model it was neither won nor lost in each period it was watched through, and nothing about the
rest; per-horizon classifiers would have to drop it (its label unknown) and could cross.

The served chances are tied to the calibrated win probability of the scorer (the chance of a win
within its training horizon, `horizon_days`): `probability x won_by(h) / won_by(horizon)`, so the
90-day chance is the headline probability when the horizon is 90 days, and the timing model only
says how the wins spread over time. The median days to close is the day by which half of the wins
within the longest horizon have happened (linear within a period).

The classifier is a scikit-learn estimator the artifact saves with skops (allow-listed types);
the rest of the state is plain JSON (`to_dict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.model.compiled import CompiledClasses, compile_classes

HORIZONS_DAYS = (30, 60, 90)
PERIOD_DAYS = 15
OPEN, WON, LOST = 0, 1, 2  # the classifier's classes


def period_edges(horizon_days: float, horizons: Sequence[float] = HORIZONS_DAYS) -> list[float]:
    """0, 15, 30, ... up to the longest of the horizons and the win model's horizon."""
    longest = max([*horizons, horizon_days])
    edges = list(np.arange(0, longest, PERIOD_DAYS, dtype=float)) + [float(longest)]
    return sorted(set(edges) | {float(h) for h in (*horizons, horizon_days)})


def period_rows(X: np.ndarray, lead_age: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """The classifier's input: each feature row once per period (period-major), with the
    period's start (days after the scoring moment) and the lead's age then (NaN: unknown)."""
    n, k = X.shape[0], len(edges) - 1
    starts = np.asarray(edges[:-1], dtype=float)
    rows = np.tile(np.asarray(X, dtype=float), (k, 1))
    start = np.repeat(starts, n)
    age = np.tile(np.asarray(lead_age, dtype=float), k) + start
    return np.column_stack([rows, start, age])


# leads scored at once: 200,000 held-out leads (a million demo leads) in one go took 1.3 GB more
# than the rest of training at its peak
CHUNK_ROWS = 16_384


class CloseTimingModel:
    """Chances of a win within each horizon and median days to a win; see the module docstring."""

    def __init__(
        self,
        classifier: Any,
        edges: Sequence[float],
        horizon_days: float,
        horizons: Sequence[float] = HORIZONS_DAYS,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        self.classifier = classifier
        self.edges = [float(e) for e in edges]
        self.horizon_days = float(horizon_days)
        self.horizons = [float(h) for h in horizons]
        self.metrics: dict[str, float] = dict(metrics or {})
        # the classifier's numpy form (`compile`), checked against predict_proba when built
        self.compiled: CompiledClasses | None = None
        missing = [h for h in (*self.horizons, self.horizon_days) if h not in self.edges]
        if missing:
            raise ValueError(f"the periods {self.edges} do not end at the horizons {missing}")
        # where the periods start and the horizons end, once (not on every lead's call)
        self._edges = np.asarray(self.edges, dtype=float)
        self._starts = self._edges[:-1]
        self._horizon_column = self.edges.index(self.horizon_days)
        self._horizon_columns = np.array(
            [self.edges.index(h) for h in self.horizons], dtype=np.intp
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": self.edges,
            "horizon_days": self.horizon_days,
            "horizons": self.horizons,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any], classifier: Any) -> CloseTimingModel:
        return cls(
            classifier,
            state["edges"],
            state["horizon_days"],
            state.get("horizons", HORIZONS_DAYS),
            state.get("metrics"),
        )

    def compile(self) -> CloseTimingModel:
        """Use the classifier's numpy form from now on when it matches it (see
        `features.model.compiled.compile_classes`); scikit-learn otherwise."""
        self.compiled = compile_classes(self.classifier)
        return self

    def won_by(self, X: np.ndarray, lead_age: np.ndarray) -> np.ndarray:
        """(leads, len(edges)): the chance of a win by each edge (0 at the scoring moment)."""
        n, k = X.shape[0], len(self.edges) - 1
        if n > CHUNK_ROWS:  # each lead on its own: in parts, so memory stays flat at any size
            lead_age = np.asarray(lead_age)
            return np.concatenate([
                self.won_by(X[i : i + CHUNK_ROWS], lead_age[i : i + CHUNK_ROWS])
                for i in range(0, n, CHUNK_ROWS)
            ])  # fmt: skip
        if self.compiled is not None and self.compiled.faster_than_sklearn(n * k):
            # the periods of a lead differ only in their last two columns: the trees' work on
            # the lead's own features is done once for its k periods
            base = np.column_stack([np.asarray(X, dtype=float), np.full((n, 2), np.nan)])
            starts = self._starts[:, None]
            values = np.empty((k, n, 2))
            values[:, :, 0] = starts
            values[:, :, 1] = np.asarray(lead_age, dtype=float)[None, :] + starts
            columns = np.array([base.shape[1] - 2, base.shape[1] - 1])
            proba = self.compiled.predict_proba_variants(base, columns, values)
        else:
            proba = self.classifier.predict_proba(period_rows(X, lead_age, self.edges))
        won, lost = self._class_columns()
        won_in = proba[:, won].reshape(k, n).T
        lost_in = proba[:, lost].reshape(k, n).T if lost is not None else 0 * won_in
        # np.clip, np.cumprod and np.cumsum's arithmetic without their wrappers (never -0.0)
        still_open = np.multiply.accumulate(
            np.minimum(np.maximum(1 - won_in - lost_in, 0), 1), axis=1
        )
        open_before = np.empty((n, k))
        open_before[:, 0] = 1.0
        open_before[:, 1:] = still_open[:, :-1]
        out = np.zeros((n, k + 1))
        np.add.accumulate(open_before * won_in, axis=1, out=out[:, 1:])
        return out

    def _class_columns(self) -> tuple[int, int | None]:
        """The columns of `predict_proba` holding won and lost (None: never lost in training)."""
        cached = self.__dict__.get("_columns_of_classes")
        if cached is None:
            classes = list(self.classifier.classes_)
            cached = self._columns_of_classes = (
                classes.index(WON),
                classes.index(LOST) if LOST in classes else None,
            )
        return cached

    def predict(
        self, X: np.ndarray, lead_age: np.ndarray, probability: np.ndarray
    ) -> tuple[dict[int, np.ndarray], np.ndarray]:
        """({horizon: chance of a win within it}, median days to a win) per lead, the chances
        scaled to `probability` (the win probability within `horizon_days`)."""
        X = np.asarray(X, dtype=float)
        probability = np.asarray(probability, dtype=float)
        if X.shape[0] == 0:
            return {int(h): np.empty(0) for h in self.horizons}, np.empty(0)
        won_by = self.won_by(X, lead_age)
        at_horizon = won_by[:, self._horizon_column]
        ratio = won_by / np.maximum(at_horizon, 1e-12)[:, None]
        # every horizon's chances at once: a row per horizon
        chance = np.minimum(np.maximum(ratio[:, self._horizon_columns].T * probability, 0.0), 1.0)
        chances = {int(h): chance[i] for i, h in enumerate(self.horizons)}
        return chances, self._median_days(won_by)

    def _median_days(self, won_by: np.ndarray) -> np.ndarray:
        """The day by which half of the wins within the longest horizon happen."""
        edges = self._edges
        half = won_by[:, -1:] / 2
        after = np.argmax(won_by >= half, axis=1).clip(1, len(edges) - 1)
        rows = np.arange(won_by.shape[0])
        below, above = won_by[rows, after - 1], won_by[rows, after]
        share = np.where(above > below, (half[:, 0] - below) / np.maximum(above - below, 1e-15), 0)
        return edges[after - 1] + np.clip(share, 0, 1) * (edges[after] - edges[after - 1])


_MICROSECOND = timedelta(microseconds=1)


def lead_ages(created_at: Any, as_of: Any) -> np.ndarray:
    """Days from creation to the scoring moment per lead (NaN where either is unknown)."""
    created_at, as_of = list(created_at), list(as_of)
    if all(v is None or (v.__class__ is datetime and v.tzinfo is not None)
           for v in (*created_at, *as_of)):  # fmt: skip
        # what the API gives: no pandas (~1.5 ms a call); the same bits as below, which reads
        # Python datetimes at microsecond resolution
        return np.array(
            [math.nan if c is None or m is None else (m - c) // _MICROSECOND / 1e6 / 86_400
             for c, m in zip(created_at, as_of, strict=True)],
            dtype=float,
        )  # fmt: skip
    created = pd.to_datetime(pd.Series(list(created_at), dtype=object), utc=True, errors="coerce")
    moment = pd.to_datetime(pd.Series(list(as_of), dtype=object), utc=True, errors="coerce")
    days = (moment - created).dt.total_seconds() / 86_400
    return days.to_numpy(dtype=float, na_value=np.nan)
