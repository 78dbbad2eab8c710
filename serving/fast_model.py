"""A compiled form of additive models for the request path, checked against scikit-learn at load.

The logistic-regression candidate (one-hot categories; imputed, arcsinh, scaled and
spline-expanded numbers; missing and "any at all" indicators; LogisticRegression) is additive in the input
features: logit(x) = b + sum_j f_j(x_j). One scikit-learn `predict_proba` call through that
pipeline costs ~7 ms whatever the number of rows (validation in every step), and the reasons
re-predict every lead once per differing feature (~70 rows a lead). Here each f_j is evaluated
with numpy (a lookup for categories, the same B-spline for numbers), and a reason's effect (the
lead with feature j set to the typical value) is exact without re-predicting:
logit - f_j(x_j) + f_j(typical_j).

`accelerate(scorer)` returns True when it installed the compiled path. It installs nothing unless
the compiled probabilities and reasons match the scikit-learn ones on generated leads (1e-9), so
other model kinds (gradient boosting) keep the original code path unchanged.
"""

from __future__ import annotations

import logging
import types
from typing import Any

import numpy as np
from scipy.interpolate import BSpline
from scipy.special import expit

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
# Element-wise functions a FunctionTransformer may apply (no state, no inverse needed).
ELEMENTWISE = (np.arcsinh, np.sign, np.log1p, np.tanh, np.sqrt, np.abs)


class NotCompilable(Exception):
    pass


class AdditiveLogistic:
    """Per-feature logit contributions of a fitted Pipeline(ColumnTransformer, LogisticRegression)."""

    def __init__(self, pipeline: Any, n_features: int) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            raise NotCompilable("not a two-step pipeline")
        columns, model = pipeline.steps[0][1], pipeline.steps[1][1]
        if not isinstance(columns, ColumnTransformer) or type(model) is not LogisticRegression:
            raise NotCompilable("not ColumnTransformer + LogisticRegression")
        if model.coef_.shape[0] != 1:
            raise NotCompilable("not a binary model")
        self.n_features = n_features
        self.intercept = float(model.intercept_[0])
        coef = model.coef_[0]
        self.parts: list[tuple[str, Any]] = []
        offset = 0
        for name, transformer, cols in columns.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    raise NotCompilable("remainder columns are passed through")
                continue
            cols = np.asarray(cols)
            if cols.dtype == bool:
                cols = np.flatnonzero(cols)
            width, part = self._compile(transformer, cols, coef, offset)
            self.parts.append(part)
            offset += width
        if offset != coef.shape[0]:
            raise NotCompilable("output width does not match the coefficients")

    def _compile(self, transformer, cols, coef, offset):
        from sklearn.impute import MissingIndicator
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder

        if isinstance(transformer, OneHotEncoder):
            if transformer.drop_idx_ is not None or getattr(transformer, "_infrequent_enabled", False):
                raise NotCompilable("one-hot with drop or infrequent categories")
            tables = []
            for i, categories in enumerate(transformer.categories_):
                categories = np.asarray(categories, dtype=float)
                weights = coef[offset : offset + categories.size]
                offset += categories.size
                nan = np.isnan(categories)
                tables.append((int(cols[i]), categories[~nan], weights[~nan],
                               float(weights[nan][0]) if nan.any() else 0.0))
            return sum(len(c) for c in transformer.categories_), ("onehot", tables)
        if isinstance(transformer, MissingIndicator):
            features = np.asarray(transformer.features_)
            weights = coef[offset : offset + features.size]
            return features.size, ("missing", (cols[features], weights))
        if isinstance(transformer, Pipeline):
            return self._compile_numbers(transformer, cols, coef, offset)
        raise NotCompilable(f"unsupported transformer {type(transformer).__name__}")

    def _compile_numbers(self, pipeline, cols, coef, offset):
        from sklearn.feature_selection import VarianceThreshold
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import FunctionTransformer, SplineTransformer, StandardScaler

        steps = [step for _, step in pipeline.steps]
        fill = None
        keep = np.ones(cols.size, dtype=bool)
        function = None
        mean, scale = None, None
        splines = None
        for step in steps:
            if isinstance(step, SimpleImputer) and fill is None:
                if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
                    raise NotCompilable("imputer for other missing values")
                if step.add_indicator or step.statistics_.shape[0] != cols.size:
                    raise NotCompilable("imputer drops or adds columns")
                fill = np.asarray(step.statistics_, dtype=float)
            elif isinstance(step, VarianceThreshold) and keep.all():
                keep = step.get_support()
            elif (
                isinstance(step, FunctionTransformer) and step.func in ELEMENTWISE and not step.kw_args
                and function is None and mean is None
            ):
                function = step.func
            elif isinstance(step, StandardScaler) and splines is None:
                mean = step.mean_ if step.with_mean else np.zeros(int(keep.sum()))
                scale = step.scale_ if step.with_std else np.ones(int(keep.sum()))
            elif isinstance(step, SplineTransformer) and splines is None:
                if step.extrapolation != "constant" or not step.include_bias or step.sparse_output:
                    raise NotCompilable("spline settings")
                splines = step.bsplines_
            else:
                raise NotCompilable(f"unsupported numeric step {type(step).__name__}")
        if fill is None:
            raise NotCompilable("numbers are not imputed")
        kept = np.flatnonzero(keep)
        mean = np.zeros(kept.size) if mean is None else np.asarray(mean, dtype=float)
        scale = np.ones(kept.size) if scale is None else np.asarray(scale, dtype=float)
        functions = []
        if splines is None:
            weights = coef[offset : offset + kept.size]
            width = kept.size
        else:
            n_splines = splines[0].c.shape[1]
            width = kept.size * n_splines
            for k, spl in enumerate(splines):
                w = coef[offset + k * n_splines : offset + (k + 1) * n_splines]
                degree = spl.k
                functions.append((BSpline(spl.t, w, degree, extrapolate=True),
                                  spl.t[degree], spl.t[-degree - 1]))
            weights = None
        part = ("numbers", (cols[kept], fill[kept], function, mean, scale, weights, functions))
        return width, part

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) logit contributions; features the model does not use get 0."""
        X = np.asarray(X, dtype=float)
        out = np.zeros((X.shape[0], self.n_features))
        for kind, data in self.parts:
            if kind == "onehot":
                for col, categories, weights, nan_weight in data:
                    v = X[:, col]
                    index = np.searchsorted(categories, v)
                    index_safe = np.minimum(index, max(categories.size - 1, 0))
                    hit = (index < categories.size) & (categories[index_safe] == v) if categories.size else np.zeros(v.shape, bool)
                    value = np.where(hit, weights[index_safe] if categories.size else 0.0, 0.0)
                    out[:, col] += np.where(np.isnan(v), nan_weight, value)
            elif kind == "missing":
                cols, weights = data
                out[:, cols] += np.isnan(X[:, cols]) * weights
            else:
                cols, fill, function, mean, scale, weights, functions = data
                x = X[:, cols]
                x = np.where(np.isnan(x), fill, x)
                if function is not None:
                    x = function(x)
                z = (x - mean) / scale
                if weights is not None:
                    out[:, cols] += z * weights
                else:
                    for k, (function, low, high) in enumerate(functions):
                        out[:, cols[k]] += function(np.clip(z[:, k], low, high))
        return out

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        return expit(self.intercept + self.contributions(X).sum(axis=1))


class FastEstimator:
    """Drop-in for `features.scoring.CalibratedModel` (same calibration, compiled model)."""

    def __init__(self, original: Any, compiled: AdditiveLogistic) -> None:
        self.original = original
        self.compiled = compiled
        self.model = original.model
        self.calibration = original.calibration

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        return self.compiled.raw_proba(X)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return self.original.calibrate(raw)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.calibrate(self.raw_proba(X))


def _fast_predict_explained(scorer: Any, compiled: AdditiveLogistic):
    baseline = np.asarray(scorer.baseline, dtype=float)
    base = compiled.contributions(baseline[None, :])[0]

    def predict_explained(self, X: np.ndarray, n_reasons: int):
        X = np.asarray(X, dtype=float)
        contributions = compiled.contributions(X)
        logit = compiled.intercept + contributions.sum(axis=1)
        calibrate = self.estimator.calibrate
        probabilities = calibrate(expit(logit))
        differs = ~((X == baseline) | (np.isnan(X) & np.isnan(baseline)))
        reasons_for, reasons_against = [], []
        for i in range(X.shape[0]):
            cols = np.flatnonzero(differs[i])
            # Rounded so features with equal weights tie exactly (the first feature wins).
            occluded = np.round(calibrate(expit(logit[i] - contributions[i, cols] + base[cols])), 12)
            rf, ra = self._reasons(X[i], float(probabilities[i]), occluded, cols, n_reasons)
            reasons_for.append(rf)
            reasons_against.append(ra)
        return probabilities, reasons_for, reasons_against

    return predict_explained


def _probe_rows(compiled: AdditiveLogistic, n: int, seed: int = 0) -> np.ndarray:
    """Leads the model could see: known and unknown categories, typical and extreme numbers, NaN."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, compiled.n_features)) * 3
    for kind, data in compiled.parts:
        if kind == "onehot":
            for col, categories, _, _ in data:
                pool = np.concatenate([categories, [np.nan, 1e6 + 0.5]]) if categories.size else np.array([np.nan, 3.0])
                X[:, col] = pool[rng.integers(0, pool.size, n)]
        elif kind == "numbers":
            cols, fill, function, mean, scale, _, _ = data
            z = mean + scale * rng.normal(scale=1.5, size=(n, cols.size))
            X[:, cols] = np.sinh(z) if function is np.arcsinh else z
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def accelerate(scorer: Any) -> bool:
    """Install the compiled path on `scorer` if its model is additive and the results match."""
    estimator = getattr(scorer, "estimator", None)
    if estimator is None or not hasattr(estimator, "calibrate") or not hasattr(scorer, "_reasons"):
        return False
    try:
        compiled = AdditiveLogistic(estimator.model, len(scorer.feature_names))
    except NotCompilable as reason:
        log.info("model call not compiled (%s): scikit-learn path", reason)
        return False
    except Exception as error:  # an unexpected estimator layout: keep the original path
        log.warning("model call not compiled (%s: %s): scikit-learn path", type(error).__name__, error)
        return False
    fast = FastEstimator(estimator, compiled)
    rows = _probe_rows(compiled, 400)
    try:
        expected = estimator.predict_proba(rows)
        got = fast.predict_proba(rows)
        worst = float(np.max(np.abs(expected - got)))
        original_explained = scorer._predict_explained(rows[:25], 3)
    except Exception as error:
        log.warning("model call not compiled (check failed: %s): scikit-learn path", error)
        return False
    if not worst <= TOLERANCE:
        log.warning("model call not compiled (differs from scikit-learn by %.2e): scikit-learn path", worst)
        return False
    explained = _fast_predict_explained(scorer, compiled)
    original_estimator = scorer.estimator
    scorer.estimator = fast
    try:
        p, rf, ra = explained(scorer, rows[:25], 3)
    finally:
        scorer.estimator = original_estimator
    # Features with equal weights (collinear columns) tie; which of them is named may differ.
    same = np.max(np.abs(p - original_explained[0])) <= TOLERANCE and all(
        len(a) == len(b)
        and all(abs(x["effect"] - y["effect"]) <= 0.1 + 1e-9 for x, y in zip(a, b, strict=True))
        for a, b in zip(rf + ra, original_explained[1] + original_explained[2], strict=True)
    )
    if not same:
        log.warning("model reasons not compiled (differ from the scikit-learn ones): scikit-learn path")
        return False
    scorer.estimator = fast
    scorer._predict_explained = types.MethodType(explained, scorer)
    log.info("model call compiled to numpy (largest difference from scikit-learn %.1e)", worst)
    return True
