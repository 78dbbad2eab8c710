"""Compiled (numpy) forms of the champion model kinds, checked against scikit-learn when built.

One scikit-learn `predict_proba` call costs milliseconds whatever the number of rows (validation
in every pipeline step, one call per boosted tree), which is most of the time of scoring one lead.
Two model kinds are restated in numpy here:

- the logistic pipeline (one-hot categories; imputed, arcsinh, scaled and spline-expanded numbers;
  missing and "any at all" indicators; LogisticRegression) is additive in the input features:
  logit(x) = b + sum_j f_j(x_j). `AdditiveLogistic.contributions` gives every f_j, so a reason's
  effect (the lead with feature j set to the typical value) is exact without re-predicting;
- a binary HistGradientBoostingClassifier: all trees walked at once (`compile_boosting`).

`compile_model` returns one of them only when it equals `predict_proba` within `TOLERANCE` on
generated rows (known and unknown categories, NaN, values at the split thresholds); otherwise None
and the caller keeps scikit-learn. Imports nothing of ours (features/ is the bottom layer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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

    __call__ = raw_proba

    def probe_rows(self, n: int, seed: int = 0) -> np.ndarray:
        """Leads the model could see: known and unknown categories, typical and extreme numbers, NaN."""
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, self.n_features)) * 3
        for kind, data in self.parts:
            if kind == "onehot":
                for col, categories, _, _ in data:
                    pool = (np.concatenate([categories, [np.nan, 1e6 + 0.5]]) if categories.size
                            else np.array([np.nan, 3.0]))  # fmt: skip
                    X[:, col] = pool[rng.integers(0, pool.size, n)]
            elif kind == "numbers":
                cols, fill, function, mean, scale, _, _ = data
                z = mean + scale * rng.normal(scale=1.5, size=(n, cols.size))
                X[:, cols] = np.sinh(z) if function is np.arcsinh else z
        X[rng.random(X.shape) < 0.1] = np.nan
        return X



def compile_boosting(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy walk of a binary HistGradientBoostingClassifier's trees, all trees at once.

    scikit-learn walks each tree in its own call (~10 us each, 4-5 ms for one lead); here every
    (row, tree) pair advances one level per step. Same rules as scikit-learn's predictor (missing
    values, categorical bitsets, unknown categories); tests check it equals `predict_proba`.
    """
    if type(model).__name__ != "HistGradientBoostingClassifier" or getattr(model, "n_trees_per_iteration_", 0) != 1:
        return None
    predictors = [p[0] for p in model._predictors]
    if not predictors:
        return None
    known, f_map = model._bin_mapper.make_known_categories_bitsets()
    nodes = [p.nodes for p in predictors]
    sizes = np.array([len(n) for n in nodes])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    bit_sizes = np.array([len(p.raw_left_cat_bitsets) for p in predictors])
    bit_offsets = np.concatenate([[0], np.cumsum(bit_sizes)[:-1]])
    allnodes = np.concatenate(nodes)
    tree_of = np.repeat(np.arange(len(nodes)), sizes)
    feature = allnodes["feature_idx"].astype(np.intp)
    threshold = allnodes["num_threshold"].astype(float)
    missing_left = allnodes["missing_go_to_left"].astype(bool)
    left = allnodes["left"].astype(np.intp) + offsets[tree_of]
    right = allnodes["right"].astype(np.intp) + offsets[tree_of]
    leaf = allnodes["is_leaf"].astype(bool)
    value = allnodes["value"].astype(float)
    categorical = allnodes["is_categorical"].astype(bool)
    bitset = allnodes["bitset_idx"].astype(np.intp) + bit_offsets[tree_of]
    raw_bits = np.concatenate([p.raw_left_cat_bitsets for p in predictors]).astype(np.uint64) if bit_sizes.sum() else None
    known = np.asarray(known, dtype=np.uint64)
    f_map = np.asarray(f_map, dtype=np.intp)
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    depth = int(allnodes["depth"].max()) + 1
    # With categorical features scikit-learn first ordinal-encodes them (categories seen in fit
    # -> 0..k-1, anything else -> missing) and puts them before the numbers.
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is not None:
        encoder = preprocessor.named_transformers_["encoder"]
        cat_cols = np.flatnonzero(model.is_categorical_)
        num_cols = np.flatnonzero(~np.asarray(model.is_categorical_))
        seen = [np.asarray(c, dtype=float) for c in encoder.categories_]
        seen = [c[~np.isnan(c)] for c in seen]

        def prepare(X: np.ndarray) -> np.ndarray:
            out = np.empty((X.shape[0], cat_cols.size + num_cols.size))
            for k, (j, cats) in enumerate(zip(cat_cols, seen)):
                x = X[:, j]
                if cats.size == 0:
                    out[:, k] = np.nan
                    continue
                pos = np.clip(np.searchsorted(cats, x), 0, cats.size - 1)
                out[:, k] = np.where(cats[pos] == x, pos, np.nan)
            out[:, cat_cols.size :] = X[:, num_cols]
            return out
    else:

        def prepare(X: np.ndarray) -> np.ndarray:
            return X

    def in_bitset(bits: np.ndarray, row: np.ndarray, v: np.ndarray) -> np.ndarray:
        return ((bits[row, v >> 5] >> (v & 31).astype(np.uint64)) & np.uint64(1)).astype(bool)

    column_of = (np.concatenate([cat_cols, num_cols]) if preprocessor is not None
                 else np.arange(int(model.n_features_in_)))  # fmt: skip

    def walk(X: np.ndarray, r: np.ndarray, t: np.ndarray, visited: list | None = None) -> np.ndarray:
        """Leaf node of each (row r of prepared X, tree t) pair; `visited` collects (pair, input
        column) of the splits passed, each column once per pair."""
        node = offsets[t].copy()
        todo = np.flatnonzero(~leaf[node])
        path = np.full((node.size, depth), -1, dtype=np.int32) if visited is not None else None
        for level in range(depth):
            if not todo.size:
                break
            nd = node[todo]
            f = feature[nd]
            if path is not None:
                columns = column_of[f]
                fresh = ~(path[todo, :level] == columns[:, None]).any(axis=1)
                path[todo, level] = columns
                visited.append((todo[fresh], columns[fresh]))
            x = X[r[todo], f]
            go_left = x <= threshold[nd]
            cat = categorical[nd]
            if cat.any() and raw_bits is not None:
                xc, ndc = x[cat], nd[cat]
                unusable = np.isnan(xc) | (xc < 0)
                v = np.where(unusable, 0, xc).astype(np.intp)
                in_left = in_bitset(raw_bits, bitset[ndc], v)
                is_known = in_bitset(known, f_map[feature[ndc]], v)
                go = np.where(in_left, True, np.where(is_known, False, missing_left[ndc]))
                go_left[cat] = np.where(unusable, missing_left[ndc], go)
            go_left = np.where(np.isnan(x), missing_left[nd], go_left)
            node[todo] = np.where(go_left, left[nd], right[nd])
            todo = todo[~leaf[node[todo]]]
        return node

    n_trees = offsets.size

    def leaves(X: np.ndarray, visited: list | None = None) -> np.ndarray:
        r = np.repeat(np.arange(X.shape[0]), n_trees)
        t = np.tile(np.arange(n_trees), X.shape[0])
        return walk(X, r, t, visited).reshape(X.shape[0], n_trees)

    def predict(X: np.ndarray) -> np.ndarray:
        X = prepare(np.asarray(X, dtype=float))
        node = leaves(X)
        # Trees added one after another from the baseline, as scikit-learn does, so the result
        # is the same bits as predict_proba whatever the batch size (cumsum is sequential).
        terms = np.empty((X.shape[0], n_trees + 1))
        terms[:, 0] = baseline
        terms[:, 1:] = value[node]
        return expit(np.cumsum(terms, axis=1)[:, -1])

    def occluded_raw(X: np.ndarray, typical: np.ndarray, lead: np.ndarray, column: np.ndarray):
        """(raw log-odds of each lead, raw log-odds of each lead with `column` set to `typical`).

        Only trees whose path for the lead splits on that column can change, so only those
        (variant, tree) pairs are walked again: ~depth pairs per tree instead of one per feature.
        """
        Xp = prepare(np.asarray(X, dtype=float))
        visited: list = []
        node = leaves(Xp, visited)
        own = value[node]
        terms = np.empty((X.shape[0], n_trees + 1))
        terms[:, 0] = baseline
        terms[:, 1:] = own
        raw = np.cumsum(terms, axis=1)[:, -1]  # the order of predict(): the same bits
        if not lead.size:
            return raw, np.empty(0)
        pairs = np.concatenate([v[0] for v in visited])
        columns = np.concatenate([v[1] for v in visited])
        n_columns = X.shape[1]
        # Which variant (lead, column) each visited split belongs to, if that column differs.
        variant_of = np.full(X.shape[0] * n_columns, -1, dtype=np.intp)
        variant_of[lead * n_columns + column] = np.arange(lead.size)
        pair_lead, pair_tree = pairs // n_trees, pairs % n_trees
        variant = variant_of[pair_lead * n_columns + columns]
        hit = variant >= 0
        v, t = variant[hit], pair_tree[hit]  # each (variant, tree) once: see walk()
        rows = X[lead].copy()
        rows[np.arange(lead.size), column] = typical[column]
        new = walk(prepare(rows), v, t)
        change = np.bincount(v, weights=value[new] - own[lead[v], t], minlength=lead.size)
        return raw, raw[lead] + change

    predict.occluded_raw = occluded_raw  # type: ignore[attr-defined]
    return predict


def _tree_probe_rows(model: Any, n: int, seed: int = 0) -> np.ndarray:
    """Rows at, just below and just above every split threshold, seen and unseen categories, NaN."""
    rng = np.random.default_rng(seed)
    n_features = int(model.n_features_in_)
    is_categorical = np.asarray(getattr(model, "is_categorical_", None) if
                                getattr(model, "is_categorical_", None) is not None
                                else np.zeros(n_features, dtype=bool))  # fmt: skip
    X = rng.normal(size=(n, n_features)) * 3
    pools: dict[int, list[float]] = {}
    preprocessor = getattr(model, "_preprocessor", None)
    cat_cols = np.flatnonzero(is_categorical)
    num_cols = np.flatnonzero(~is_categorical)
    order = np.concatenate([cat_cols, num_cols]) if preprocessor is not None else np.arange(n_features)
    for predictors in model._predictors:
        nodes = predictors[0].nodes
        inner = nodes[~nodes["is_leaf"].astype(bool)]
        for f, t in zip(inner["feature_idx"], inner["num_threshold"]):
            pools.setdefault(int(order[f]), []).append(float(t))
    for j in range(n_features):
        if is_categorical[j] and preprocessor is not None:
            encoder = preprocessor.named_transformers_["encoder"]
            cats = np.asarray(encoder.categories_[list(cat_cols).index(j)], dtype=float)
            pool = np.concatenate([cats, [np.nan, np.nanmax(cats, initial=0) + 7, -1.0]])
            X[:, j] = pool[rng.integers(0, pool.size, n)]
        elif j in pools:
            t = np.asarray(pools[j])
            base = t[rng.integers(0, t.size, n)]
            X[:, j] = base + rng.choice([-1e-3, 0.0, 1e-3, -10.0, 10.0], n) * np.maximum(1, np.abs(base))
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def compile_model(model: Any, n_features: int | None = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """The numpy form of `model` (called with X, returns the raw win probability), or None.

    None for other model kinds, for unexpected layouts, and when the compiled probabilities differ
    from `model.predict_proba` by more than `TOLERANCE` on generated rows.
    """
    try:
        n_features = int(n_features if n_features is not None else model.n_features_in_)
        try:
            compiled: Any = AdditiveLogistic(model, n_features)
            rows = compiled.probe_rows(400)
        except NotCompilable:
            compiled = compile_boosting(model)
            if compiled is None:
                return None
            rows = _tree_probe_rows(model, 400)
        expected = model.predict_proba(rows)[:, 1]
        worst = float(np.max(np.abs(compiled(rows) - expected)))
    except Exception as error:  # an unexpected estimator layout: keep scikit-learn
        log.warning("model not compiled (%s: %s): scikit-learn path", type(error).__name__, error)
        return None
    if not worst <= TOLERANCE:
        log.warning("model not compiled (differs from scikit-learn by %.2e): scikit-learn path", worst)
        return None
    log.info("model compiled to numpy (largest difference from scikit-learn %.1e)", worst)
    return compiled
