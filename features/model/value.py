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
        for term in self.terms:
            j = int(term["column"])
            values = X[:, j]
            missing = np.isnan(values)
            if term["kind"] == "category":
                codes = np.asarray(term["codes"], dtype=float)
                weights = np.asarray(term["weights"], dtype=float)
                hit = values[:, None] == codes[None, :]
                out[:, j] = hit.astype(float) @ weights + missing * float(term["missing"])
            else:
                v = np.log1p(np.clip(values, 0, None)) if term["log"] else values
                v = np.where(missing, float(term["fill"]), v)
                # beyond the training spread a line says little: held there (and finite for 1e400)
                z = np.clip((v - float(term["center"])) / float(term["scale"]), -MAX_Z, MAX_Z)
                out[:, j] = float(term["weight"]) * z + missing * float(term["missing"])
        return out

    def log_amount(self, X: np.ndarray) -> np.ndarray:
        """The predicted median log amount of each lead's deal if won."""
        return self.intercept + self.contributions(X).sum(axis=1)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expected amount, interval low, interval high) per lead, if the lead wins."""
        mu = self.log_amount(X)
        return np.exp(mu) * self.smear, np.exp(mu + self.low), np.exp(mu + self.high)

    # reasons ---------------------------------------------------------------------------------
    def reasons(
        self,
        X: np.ndarray,
        baseline: np.ndarray,
        facts: Sequence[FactColumns],
        n: int = N_AMOUNT_REASONS,
    ) -> list[list[dict[str, Any]]]:
        """Per lead, up to `n` facts that make its typical deal larger or smaller than the
        typical lead's, strongest first: ``{"feature", "text", "effect"}`` with `effect` the
        factor on the typical deal amount (2.5: deals about 2.5 times as large)."""
        X = np.asarray(X, dtype=float)
        if X.shape[0] == 0:
            return []
        base = self.contributions(np.asarray(baseline, dtype=float).reshape(1, -1))[0]
        effect = self.contributions(X) - base[None, :]
        used = sorted({int(t["column"]) for t in self.terms})
        groups = [f for f in facts if any(c in used for c in f.columns)]
        by_fact = np.stack([effect[:, list(f.columns)].sum(axis=1) for f in groups], axis=1)
        out: list[list[dict[str, Any]]] = []
        threshold = math.log(MIN_REASON_FACTOR)
        for i in range(X.shape[0]):
            order = np.argsort(-np.abs(by_fact[i]), kind="stable")[:n]
            reasons = []
            for g in order:
                size = float(by_fact[i, g])
                if abs(size) < threshold:
                    break
                fact = groups[g]
                factor = math.exp(size)
                words = fact.describe([float(X[i, c]) for c in fact.columns])
                reasons.append(
                    {"feature": fact.name, "text": f"{words}: {factor_words(factor)}",
                     "effect": round(factor, 2)}
                )  # fmt: skip
            out.append(reasons)
        return out


def factor_words(factor: float) -> str:
    """'typical deals about 3.1x' / 'typical deals about half the size' in plain words."""
    if 0.45 <= factor <= 0.55:
        return "typical deals about half the size"
    return (
        f"typical deals about {factor:.1f}x"
        if factor >= 1
        else f"typical deals about {factor:.2f}x"
    )
