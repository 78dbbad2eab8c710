"""The shipped estimator: a frozen scikit-learn classifier, its numpy form and one calibrator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from features.model.compiled import CompiledModel, compile_model

_EPS = 1e-6


class CalibratedModel:
    """A frozen scikit-learn classifier and one probability calibrator fitted after it.

    `calibration` is JSON-safe: ``{"method": "none"}``, ``{"method": "sigmoid", "a", "b"}`` (Platt
    scaling of the model's log-odds) or ``{"method": "isotonic", "x": [...], "y": [...]}``
    (piecewise-linear map of the model's probability). One calibrator on one frozen model, not an
    ensemble of cross-validation models, keeps scoring a single estimator call.
    """

    def __init__(
        self, model: Any, calibration: Mapping[str, Any] | None = None, compile: bool = True
    ) -> None:
        self.model = model
        self.calibration = dict(calibration or {"method": "none"})
        self._read_calibration()
        # The numpy form of the model (features.model.compiled), checked against predict_proba
        # when built; None: scikit-learn only.
        self.compiled: CompiledModel | None = compile_model(model) if compile else None

    def _read_calibration(self) -> None:
        method = self.calibration.get("method", "none")
        if method == "sigmoid":
            self._a = float(self.calibration["a"])
            self._b = float(self.calibration["b"])
        elif method == "isotonic":
            self._x = np.asarray(self.calibration["x"], dtype=float)
            self._y = np.asarray(self.calibration["y"], dtype=float)
        elif method != "none":
            raise ValueError(
                f"unknown calibration method {method!r}; use none, sigmoid or isotonic"
            )
        self._method = method

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """The frozen model's uncalibrated win probability."""
        if self.compiled is not None and self.compiled.faster_than_sklearn(X.shape[0]):
            return self.compiled.raw_proba(X)
        return self.model.predict_proba(X)[:, 1]

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self._method == "sigmoid":
            # np.clip's arithmetic (max, then min) without its wrapper: the bounds are not 0
            won = np.minimum(np.maximum(raw, _EPS), 1 - _EPS)
            lost = np.minimum(np.maximum(1 - raw, _EPS), 1)
            logit = np.log(won / lost)
            return 1.0 / (1.0 + np.exp(-(self._a * logit + self._b)))
        if self._method == "isotonic":
            return np.interp(raw, self._x, self._y)
        return raw

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated win probability per row (1-d)."""
        return self.calibrate(self.raw_proba(X))
