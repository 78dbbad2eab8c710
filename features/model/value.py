"""Expected deal value: the amount a lead's deal would have if won, with an interval and reasons.

`DealValueModel` is a linear model of the log amount of won deals on the lead's features (the
scorer's feature rows): each category of a categorical feature its own weight, each number (log
of counts) one weight and one for "missing". It is additive, so each fact's part of a deal's size
against the typical lead is exact: "Company size: 1001-5000: typical deals about 3.1x". The
expected amount is exp(predicted log amount) x the mean of exp(out-of-sample residual) (Duan's
smearing: the mean of a skewed amount, not its median), and the interval the predicted log amount
plus the out-of-sample residuals' quantiles. Learned by `training.value`; its state is plain JSON
(`to_dict` / `from_dict`), nothing pickled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from features.feature import FactColumns

N_AMOUNT_REASONS = 3
MIN_REASON_FACTOR = 1.15  # a fact that moves the typical deal by less than 15% is no reason
MAX_Z = 6.0  # numbers count at most 6 standard deviations from their training mean


class DealValueModel:
    """Log-linear model of won deal amounts over feature rows; see the module docstring.

    State: `intercept`; `terms` one per used feature column: ``{"column", "kind": "category",
    "codes": [...], "weights": [...], "missing": w}`` or ``{"column", "kind": "number", "log":
    bool, "fill", "center", "scale", "weight", "missing": w}``; `smear` (mean exp residual);
    `interval` (level, low and high residual quantiles); `metrics` (holdout figures)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.intercept = float(state["intercept"])
        self.terms = list(state["terms"])
        self.smear = float(state["smear"])
        self.level = float(state["interval"]["level"])
        self.low = float(state["interval"]["low"])
        self.high = float(state["interval"]["high"])
        self.metrics: dict[str, float] = dict(state.get("metrics") or {})
        self._compile_terms()

    def _compile_terms(self) -> None:
        """The terms as arrays, once: scoring one lead read ~100 terms' lists into arrays on
        every call (~9 ms a call, more than the win model). The categories of every column are
        one table (a column's codes at its offset; the last entry: no weight), so a lead's
        categories are looked up in one pass whatever the number of columns."""
        categories = [t for t in self.terms if t["kind"] == "category"]
        numbers = [t for t in self.terms if t["kind"] != "category"]
        self._cat_columns = np.array([int(t["column"]) for t in categories], dtype=np.intp)
        self._cat_missing = np.array([float(t["missing"]) for t in categories], dtype=float)
        codes = [np.asarray(t["codes"], dtype=float) for t in categories]
        if any(((c < 0) | (c != np.floor(c))).any() for c in codes):
            raise ValueError(
                "the deal value model has category codes that are not whole numbers from 0; "
                "retrain the model with this version of leadscore"
            )
        sizes = np.array([int(c.max()) + 1 if c.size else 0 for c in codes], dtype=np.intp)
        self._cat_sizes = sizes.astype(float)
        self._cat_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self._cat_nowhere = int(sizes.sum())  # the table's last entry: a code not learned
        self._cat_weights = np.zeros(self._cat_nowhere + 1)
        self._cat_known = np.zeros(self._cat_nowhere + 1, dtype=bool)
        for term, offset, known in zip(categories, self._cat_offsets.tolist(), codes):
            at = offset + known.astype(np.intp)
            self._cat_weights[at] = np.asarray(term["weights"], dtype=float)
            self._cat_known[at] = True
        self._num_columns = np.array([int(t["column"]) for t in numbers], dtype=np.intp)
        self._num_log = np.array([bool(t["log"]) for t in numbers], dtype=bool)
        self._num = {
            key: np.array([float(t[key]) for t in numbers], dtype=float)
            for key in ("fill", "center", "scale", "weight", "missing")
        }
        self._used = sorted({int(t["column"]) for t in self.terms})
        self._base_cache: tuple[Any, np.ndarray, np.ndarray] | None = None
        self._groups_cache: tuple[Any, ...] | None = None
        self._padded_cache: tuple[Any, np.ndarray] | None = None
        self._reason_texts: list[dict[bytes, tuple[str, float]]] = []

    def to_dict(self) -> dict[str, Any]:
        return {**self.state, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> DealValueModel:
        return cls(state)

    # the maths -------------------------------------------------------------------------------
    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(leads, feature columns): each column's part of the log amount (0 for unused ones)."""
        X = np.asarray(X, dtype=float)
        out = np.zeros(X.shape)
        if self._cat_columns.size:
            values = X[:, self._cat_columns]
            missing = np.isnan(values)
            inside = (values >= 0) & (values < self._cat_sizes)  # False for NaN
            whole = np.where(inside, values, 0.0).astype(np.intp)
            learned = inside & (whole == values)
            index = np.where(learned, self._cat_offsets + whole, self._cat_nowhere)
            # the same value as a one-hot product: the code's weight, or 0
            out[:, self._cat_columns] = (
                np.where(self._cat_known[index], self._cat_weights[index], 0.0)
                + missing * self._cat_missing
            )
        if self._num_columns.size:
            n = self._num
            values = X[:, self._num_columns]
            missing = np.isnan(values)
            logged = np.log1p(np.clip(values, 0, None))
            v = np.where(self._num_log[None, :], logged, values)
            v = np.where(missing, n["fill"], v)
            # beyond the training spread a line says little: held there (and finite for 1e400)
            z = np.clip((v - n["center"]) / n["scale"], -MAX_Z, MAX_Z)
            out[:, self._num_columns] = n["weight"] * z + missing * n["missing"]
        return out

    def log_amount(self, X: np.ndarray, contributions: np.ndarray | None = None) -> np.ndarray:
        """The predicted median log amount of each lead's deal if won (`contributions`: those of
        `X`, when already computed)."""
        parts = self.contributions(X) if contributions is None else contributions
        return self.intercept + parts.sum(axis=1)

    def predict(
        self, X: np.ndarray, contributions: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expected amount, interval low, interval high) per lead, if the lead wins."""
        mu = self.log_amount(X, contributions)
        return np.exp(mu) * self.smear, np.exp(mu + self.low), np.exp(mu + self.high)

    # reasons ---------------------------------------------------------------------------------
    def reasons(
        self,
        X: np.ndarray,
        baseline: np.ndarray,
        facts: Sequence[FactColumns],
        n: int = N_AMOUNT_REASONS,
        contributions: np.ndarray | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Per lead, up to `n` facts that make its typical deal larger or smaller than the
        typical lead's, strongest first: ``{"feature", "text", "effect"}`` with `effect` the
        factor on the typical deal amount (2.5: deals about 2.5 times as large)."""
        X = np.asarray(X, dtype=float)
        if X.shape[0] == 0:
            return []
        baseline = np.asarray(baseline, dtype=float)
        cached = self._base_cache  # the scorer passes the same baseline array every call
        if cached is None or (
            cached[0] is not baseline and not np.array_equal(cached[1], baseline, equal_nan=True)
        ):
            cached = self._base_cache = (
                baseline,
                baseline.copy(),
                self.contributions(baseline.reshape(1, -1))[0],
            )
            self._reason_texts = []  # a reason's factor is against the typical lead's amount
        base = cached[2]
        parts = self.contributions(X) if contributions is None else contributions
        effect = parts - base[None, :]
        if self._groups_cache is None or self._groups_cache[0] is not facts:
            self._groups_cache = (facts, *self._fact_groups(facts))
            self._reason_texts = []
        _, groups, by_size = self._groups_cache
        by_fact = np.empty((X.shape[0], len(groups)))
        for where, columns in by_size:  # the facts of as many columns at once: their sums
            by_fact[:, where] = effect[:, columns].sum(axis=2)
        # every lead's strongest facts in one sort (the same stable order as one sort per lead)
        orders = np.argsort(-np.abs(by_fact), axis=1, kind="stable")[:, :n]
        sizes = np.take_along_axis(by_fact, orders, axis=1)
        # strongest first, so the facts past the first one below the threshold are all below it
        keep = np.abs(sizes) >= math.log(MIN_REASON_FACTOR)
        lead, rank = np.nonzero(keep)  # row-major: each lead's reasons in order
        picked = orders[lead, rank]
        # A reason is a function of its fact's values alone (an additive model): its words and
        # factor are cached per fact and values (1,000 leads share few distinct reasons).
        if not self._reason_texts or sum(map(len, self._reason_texts)) > 100_000:
            self._reason_texts = [{} for _ in groups]
        cache = self._reason_texts
        padded = self._padded_columns(groups)
        block = X[lead[:, None], padded[picked]]
        raw = block.tobytes()
        width = block.shape[1] * 8
        reasons: list[dict[str, Any]] = []
        for k, (g, size) in enumerate(zip(picked.tolist(), sizes[lead, rank].tolist())):
            key = raw[k * width : (k + 1) * width]
            said = cache[g].get(key)
            if said is None:
                fact = groups[g]
                factor = math.exp(size)
                words = fact.describe(block[k, : len(fact.columns)].tolist())
                said = cache[g][key] = (f"{words}: {factor_words(factor)}", round(factor, 2))
            reasons.append({"feature": groups[g].name, "text": said[0], "effect": said[1]})
        ends = np.cumsum(keep.sum(axis=1)).tolist()
        return [reasons[start:end] for start, end in zip([0, *ends[:-1]], ends)]

    def _padded_columns(self, groups: list[FactColumns]) -> np.ndarray:
        """Each fact's columns padded to the widest fact's (its last column repeated), once."""
        cached = self._padded_cache
        if cached is None or cached[0] is not groups:
            widest = max((len(f.columns) for f in groups), default=1)
            cached = self._padded_cache = (
                groups,
                np.array(
                    [[*f.columns, *[f.columns[-1]] * (widest - len(f.columns))] for f in groups],
                    dtype=np.intp,
                ).reshape(len(groups), widest),
            )
        return cached[1]

    def _fact_groups(
        self, facts: Sequence[FactColumns]
    ) -> tuple[list[FactColumns], list[tuple[np.ndarray, np.ndarray]]]:
        """The facts with a used column, and per number of columns (their positions among them,
        their columns as rows): one gather and one sum per size instead of one per fact."""
        used = set(self._used)
        groups = [f for f in facts if any(c in used for c in f.columns)]
        sizes = sorted({len(f.columns) for f in groups})
        by_size = []
        for size in sizes:
            where = [g for g, f in enumerate(groups) if len(f.columns) == size]
            columns = [list(groups[g].columns) for g in where]
            by_size.append((np.array(where, dtype=np.intp), np.array(columns, dtype=np.intp)))
        return groups, by_size


def factor_words(factor: float) -> str:
    """'typical deals about 3.1x' / 'typical deals about half the size' in plain words."""
    if 0.45 <= factor <= 0.55:
        return "typical deals about half the size"
    return (
        f"typical deals about {factor:.1f}x"
        if factor >= 1
        else f"typical deals about {factor:.2f}x"
    )
