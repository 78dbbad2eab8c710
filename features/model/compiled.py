"""Compiled (numpy) forms of the champion model kinds, checked against scikit-learn when built.

One scikit-learn `predict_proba` call costs milliseconds whatever the number of rows (validation
in every pipeline step, one call per boosted tree), which is most of the time of scoring one lead.
Two model kinds are restated in numpy here, behind one interface, `CompiledModel`:

- `AdditiveLogistic`: the logistic pipeline (one-hot categories; imputed, arcsinh, scaled and
  spline-expanded numbers; missing and "any at all" indicators; LogisticRegression) is additive
  in the input features: logit(x) = b + sum_j f_j(x_j). `contributions` gives every f_j, so a
  reason's effect (the lead with feature j set to the typical value) is exact without
  re-predicting;
- `CompiledTrees`: a binary HistGradientBoostingClassifier, all trees at once, with
  `occluded_raw` for reasons: `LeafBitvectors` (trees of up to `BITVECTOR_MAX_LEAVES` leaves) or
  `WalkedTrees` (node by node).

Each is built by a classmethod (`AdditiveLogistic.from_pipeline`, `WalkedTrees.from_model`,
`LeafBitvectors.from_trees`); `__init__` only stores. `compile_model` returns one of them only
when it equals `predict_proba` within `TOLERANCE` on generated rows (known and unknown
categories, NaN, values at the split thresholds); otherwise None and the caller keeps
scikit-learn. Imports nothing of ours (features/ is the bottom layer).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

log = logging.getLogger(__name__)


TOLERANCE = 1e-9


BITVECTOR_MAX_LEAVES = 64  # trees with more leaves are walked node by node


WALKED_MAX_ROWS = 256  # above this many rows, scikit-learn is faster than walking node by node


LEAD_CHUNK = 32  # leads per bitvector pass: its arrays stay in cache (128: 1.5x slower)


OCCLUSION_CHUNK = 64  # leads per occlusion pass (buffers reused: 32 is ~8% slower, 96 no faster)


FEW_ROWS = 16  # up to this many rows, interval indices by comparing with every threshold at once
# Rows a logistic's probabilities are computed for at once: its contributions are (rows, features)
# with a temporary per part, ~1 GB for 300,000 training snapshots of a million demo leads
PROBA_CHUNK_ROWS = 32_768


# Element-wise functions a FunctionTransformer may apply (no state, no inverse needed).
ELEMENTWISE = (np.arcsinh, np.sign, np.log1p, np.tanh, np.sqrt, np.abs)


class NotCompilable(Exception):
    """The estimator is not a layout this module restates in numpy (the message says which part)."""


class CompiledModel(ABC):
    """The numpy form of a fitted binary classifier."""

    @abstractmethod
    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """The win probability of each row, as the estimator's `predict_proba(X)[:, 1]` gives it
        (uncalibrated: "raw" as in `CalibratedModel.raw_proba`)."""

    def faster_than_sklearn(self, n_rows: int) -> bool:
        """Whether `raw_proba` beats the estimator's own `predict_proba` at `n_rows` rows."""
        return True


class CompiledTrees(CompiledModel):
    """Boosted trees, with the occluded log-odds that reasons need."""

    @abstractmethod
    def raw(self, X: np.ndarray) -> np.ndarray:
        """The raw score (log-odds) of each row: the baseline plus every tree's leaf value."""

    @abstractmethod
    def occluded_raw(
        self, X: np.ndarray, typical: np.ndarray, lead: np.ndarray, column: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw log-odds of each row of `X`, raw log-odds of row `lead[i]` with column
        `column[i]` set to `typical[column[i]]`, for every i)."""

    def raw_variants(self, X: np.ndarray, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The raw score of each row of `X` in `values.shape[0]` variants, variant-major: in
        variant v, the columns `columns` of row i hold `values[v, i]` (the rest as in `X`).
        Equal to `raw` of the stacked variant rows; forms that can share the work of the
        columns that do not vary across the variants override it."""
        return self.raw(variant_rows(X, columns, values))


# ------------------------------------------------------------------------------------------------
# The logistic pipeline


class AdditiveLogistic(CompiledModel):
    """Per-feature logit contributions of a fitted Pipeline(ColumnTransformer, LogisticRegression).

    `parts`: one ("onehot" | "missing" | "numbers", data) entry per transformer of the
    ColumnTransformer, in order (see `from_pipeline`). A target encoder's part is a "onehot"
    part too: a weight per category code (coef * (encoding - mean) / scale), one for missing and
    one for a code it never saw (the mean win rate's)."""

    def __init__(self, n_features: int, intercept: float, parts: list[tuple[str, Any]]) -> None:
        self.n_features = n_features
        self.intercept = intercept
        self.parts = parts

    @classmethod
    def from_pipeline(cls, pipeline: Any, n_features: int) -> AdditiveLogistic:
        """Read the fitted pipeline's transformers and coefficients; raises NotCompilable for any
        other layout."""
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
        coef = model.coef_[0]
        # a transformer's weight multiplies its output: its columns weigh weight x coefficient
        weights = columns.transformer_weights or {}
        parts: list[tuple[str, Any]] = []
        offset = 0
        for name, transformer, cols in columns.transformers_:
            if name == "remainder":
                if transformer != "drop":
                    raise NotCompilable("remainder columns are passed through")
                continue
            cols = np.asarray(cols)
            if cols.dtype == bool:
                cols = np.flatnonzero(cols)
            scaled = coef * weights[name] if name in weights else coef
            width, part = _compile_part(transformer, cols, scaled, offset)
            parts.append(part)
            offset += width
        if offset != coef.shape[0]:
            raise NotCompilable("output width does not match the coefficients")
        return cls(n_features, float(model.intercept_[0]), parts)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, n_features) logit contributions; features the model does not use get 0."""
        X = np.asarray(X, dtype=float)
        out = np.zeros((X.shape[0], self.n_features))
        few = X.shape[0] <= FEW_ROWS
        for number, (kind, data) in enumerate(self.parts):
            if kind == "onehot" and few:  # a few leads: a dict look-up per value, no array work
                cols, tables = self._weights_by_category(number)
                weights = [nan_weight if v != v else weight_of.get(v, unknown)
                           for row in X.take(cols, axis=1).tolist()
                           for v, (weight_of, nan_weight, unknown) in zip(row, tables)]  # fmt: skip
                out[:, cols] += np.array(weights, dtype=float).reshape(X.shape[0], cols.size)
            elif kind == "onehot":
                for col, categories, weights, nan_weight, unknown in data:
                    v = X[:, col]
                    index = np.searchsorted(categories, v)
                    index_safe = np.minimum(index, max(categories.size - 1, 0))
                    hit = (
                        (index < categories.size) & (categories[index_safe] == v)
                        if categories.size
                        else np.zeros(v.shape, bool)
                    )
                    value = np.where(hit, weights[index_safe] if categories.size else 0.0, unknown)
                    out[:, col] += np.where(np.isnan(v), nan_weight, value)
            elif kind == "missing":
                cols, weights = data
                out[:, cols] += np.isnan(X.take(cols, axis=1)) * weights
            else:
                cols, fill, function, mean, scale, weights, functions = data
                x = X.take(cols, axis=1)
                x = np.where(np.isnan(x), fill, x)
                if function is not None:
                    x = function(x)
                z = (x - mean) / scale
                if weights is not None:
                    out[:, cols] += z * weights
                else:
                    out[:, cols] += functions(z)
        return out

    def _weights_by_category(
        self, part: int
    ) -> tuple[np.ndarray, list[tuple[dict[float, float], float, float]]]:
        """The one-hot part's columns, and per column ({category: weight}, weight of NaN, weight
        of an unknown category), once."""
        maps = self.__dict__.setdefault("_category_maps", {})
        if part not in maps:
            tables = self.parts[part][1]
            maps[part] = (
                np.array([int(col) for col, _, _, _, _ in tables], dtype=np.intp),
                [(dict(zip(categories.tolist(), weights.tolist(), strict=True)), float(nan_weight),
                  float(unknown))
                 for _, categories, weights, nan_weight, unknown in tables],
            )  # fmt: skip
        return maps[part]

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.shape[0] > PROBA_CHUNK_ROWS:  # in parts: the same rows' sums, flat memory
            return np.concatenate([self.raw_proba(X[start : start + PROBA_CHUNK_ROWS])
                                   for start in range(0, X.shape[0], PROBA_CHUNK_ROWS)])  # fmt: skip
        return expit(self.intercept + self.contributions(X).sum(axis=1))

    def probe_rows(self, n: int, seed: int = 0) -> np.ndarray:
        """Leads the model could see: known and unknown categories, typical and extreme numbers, NaN."""
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, self.n_features)) * 3
        for kind, data in self.parts:
            if kind == "onehot":
                for col, categories, _, _, _ in data:
                    pool = (np.concatenate([categories, [np.nan, 1e6 + 0.5]]) if categories.size
                            else np.array([np.nan, 3.0]))  # fmt: skip
                    X[:, col] = pool[rng.integers(0, pool.size, n)]
            elif kind == "numbers":
                cols, fill, function, mean, scale, _, _ = data
                z = mean + scale * rng.normal(scale=1.5, size=(n, cols.size))
                X[:, cols] = np.sinh(z) if function is np.arcsinh else z
        X[rng.random(X.shape) < 0.1] = np.nan
        return X


def _compile_part(
    transformer: Any, cols: np.ndarray, coef: np.ndarray, offset: int
) -> tuple[int, tuple[str, Any]]:
    """(output width, part) of one ColumnTransformer entry."""
    from sklearn.impute import MissingIndicator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, TargetEncoder

    if isinstance(transformer, OneHotEncoder):
        if transformer.drop_idx_ is not None or getattr(transformer, "_infrequent_enabled", False):
            raise NotCompilable("one-hot with drop or infrequent categories")
        tables = []
        for i, categories in enumerate(transformer.categories_):
            categories = np.asarray(categories, dtype=float)
            weights = coef[offset : offset + categories.size]
            offset += categories.size
            nan = np.isnan(categories)
            tables.append(
                (
                    int(cols[i]),
                    categories[~nan],
                    weights[~nan],
                    float(weights[nan][0]) if nan.any() else 0.0,
                    0.0,  # handle_unknown="ignore": an unknown category weighs nothing
                )
            )
        return sum(len(c) for c in transformer.categories_), ("onehot", tables)
    if isinstance(transformer, Pipeline) and isinstance(transformer.steps[0][1], TargetEncoder):
        return _compile_target_encoding(transformer, cols, coef, offset)
    if isinstance(transformer, MissingIndicator):
        features = np.asarray(transformer.features_)
        weights = coef[offset : offset + features.size]
        return features.size, ("missing", (cols[features], weights))
    if isinstance(transformer, Pipeline):
        return _compile_numbers(transformer, cols, coef, offset)
    raise NotCompilable(f"unsupported transformer {type(transformer).__name__}")


def _compile_target_encoding(
    pipeline: Any, cols: np.ndarray, coef: np.ndarray, offset: int
) -> tuple[int, tuple[str, Any]]:
    """A Pipeline(TargetEncoder, column-wise steps) as a "onehot" part: each column's categories,
    NaN and a code it never saw, put through the fitted pipeline once, times the coefficient.
    Only column-wise steps keep a column's output its own; `compile_model`'s check against
    scikit-learn refuses any other."""
    encoder = pipeline.steps[0][1]
    if encoder.target_type_ != "binary":
        raise NotCompilable("target encoding of a target that is not binary")
    known = [np.asarray(c, dtype=float) for c in encoder.categories_]
    seen = [c[~np.isnan(c)] for c in known]
    # per column: its categories, then NaN, then a code none of them is
    unseen = [float(np.max(c, initial=-1.0) + 1.0) for c in seen]
    height = max(c.size for c in seen) + 2
    probe = np.full((height, len(known)), np.nan)
    for j, c in enumerate(seen):
        probe[: c.size, j] = c
        probe[c.size + 1 :, j] = unseen[j]  # row c.size stays NaN
    encoded = np.asarray(pipeline.transform(probe), dtype=float)
    if encoded.shape[1] != len(known):
        raise NotCompilable("target encoding with more than one output per column")
    weights = coef[offset : offset + len(known)]
    tables = [
        (
            int(cols[j]),
            c,
            encoded[: c.size, j] * weights[j],
            float(encoded[c.size, j] * weights[j]),
            float(encoded[c.size + 1, j] * weights[j]),
        )
        for j, c in enumerate(seen)
    ]
    return len(known), ("onehot", tables)


def _compile_numbers(
    pipeline: Any, cols: np.ndarray, coef: np.ndarray, offset: int
) -> tuple[int, tuple[str, Any]]:
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
            isinstance(step, FunctionTransformer)
            and step.func in ELEMENTWISE
            and not step.kw_args
            and function is None
            and mean is None
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
    functions = None
    if splines is None:
        weights = coef[offset : offset + kept.size]
        width = kept.size
    else:
        n_splines = splines[0].c.shape[1]
        width = kept.size * n_splines
        functions = SplineSums.from_bsplines(splines, coef[offset : offset + width])
        weights = None
    part = ("numbers", (cols[kept], fill[kept], function, mean, scale, weights, functions))
    return width, part


@dataclass(eq=False)
class SplineSums:
    """The weighted sum of each column's B-splines (SplineTransformer, constant extrapolation,
    then the logistic's coefficients) as piecewise polynomials, every column in one numpy pass.

    A column's sum is one cubic (say) per interval between its knots, so `__call__` clips each
    value to the column's base interval, finds its interval by comparing with the inner knots
    and evaluates that interval's polynomial (Horner). One scipy `BSpline` call per column cost
    ~13 us each, most of a one-lead logistic contribution; this is a few array operations for all
    columns. Equal to the B-splines up to rounding (`compile_model` checks the whole model)."""

    low: np.ndarray  # (columns,): the base interval's ends; values outside are clipped to them
    high: np.ndarray
    inner: np.ndarray  # (columns, intervals - 1): the knots between the base intervals
    left: np.ndarray  # (columns, intervals): each interval's left knot
    coefficients: np.ndarray  # (columns, intervals, degree + 1): highest power first

    @classmethod
    def from_bsplines(cls, splines: list[Any], coef: np.ndarray) -> SplineSums:
        from scipy.interpolate import BSpline, PPoly

        n_splines = splines[0].c.shape[1]
        lows, highs, inners, lefts, polys = [], [], [], [], []
        for k, spline in enumerate(splines):
            degree, knots = spline.k, np.asarray(spline.t, dtype=float)
            if len(knots) != len(splines[0].t) or degree != splines[0].k:
                raise NotCompilable("splines of different shapes")
            weights = coef[k * n_splines : (k + 1) * n_splines]
            poly = PPoly.from_spline(BSpline(knots, weights, degree, extrapolate=True))
            base = slice(degree, len(knots) - degree - 1)  # the intervals inside the base knots
            lows.append(knots[degree])
            highs.append(knots[-degree - 1])
            inners.append(knots[degree + 1 : -degree - 1])
            lefts.append(poly.x[base])
            polys.append(poly.c[:, base].T)
        return cls(
            np.asarray(lows), np.asarray(highs), np.asarray(inners).reshape(len(splines), -1),
            np.asarray(lefts), np.asarray(polys),
        )  # fmt: skip

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """(rows, columns) values of the columns' sums at `z` (rows, columns)."""
        z = np.minimum(np.maximum(z, self.low), self.high)
        interval = (z[:, :, None] >= self.inner[None, :, :]).sum(axis=2)
        column = np.arange(z.shape[1])[None, :]
        dx = z - self.left[column, interval]
        c = self.coefficients[column, interval]  # (rows, columns, degree + 1)
        value = c[:, :, 0]
        for power in range(1, c.shape[2]):
            value = value * dx + c[:, :, power]
        return value


# ------------------------------------------------------------------------------------------------
# Boosted trees


@dataclass(eq=False)
class WalkedTrees(CompiledTrees):
    """A binary HistGradientBoostingClassifier's trees walked node by node, all trees at once.

    scikit-learn walks each tree in its own call (~10 us each, 4-5 ms for one lead); here every
    (row, tree) pair advances one level per step. Same rules as scikit-learn's predictor (missing
    values, categorical bitsets, unknown categories); tests check it equals `predict_proba`.
    Node arrays are the trees' nodes concatenated (`left`/`right`/`bitset` already offset).
    """

    roots: np.ndarray  # node index of each tree's root
    tree_of: np.ndarray  # tree of each node
    feature: np.ndarray  # feature index (among the prepared columns) of each split
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf: np.ndarray
    value: np.ndarray
    categorical: np.ndarray
    bitset: np.ndarray  # row of `raw_bits` of each categorical split
    raw_bits: np.ndarray | None  # the categorical splits' left-category bitsets
    known: np.ndarray  # the known-category bitset of each categorical feature
    f_map: np.ndarray  # feature -> row of `known`
    baseline: float
    depth: int
    column_of: np.ndarray  # input column of each prepared feature
    # With categorical features scikit-learn first ordinal-encodes them (categories seen in fit
    # -> 0..k-1, anything else -> missing) and puts them before the numbers: those columns and the
    # categories seen in fit, or None without categorical features.
    categories: list[np.ndarray] | None
    cat_cols: np.ndarray
    num_cols: np.ndarray

    @classmethod
    def from_model(
        cls, model: Any, class_index: int | None = None, every_class: bool = False
    ) -> WalkedTrees:
        """The node arrays of a fitted binary HistGradientBoostingClassifier (NotCompilable for
        anything else); with `class_index`, the trees of that class of a multiclass one (their
        sum is the class's raw score before the softmax); with `every_class`, every class's
        trees, class after class (`baseline` is then the first class's: `CompiledClasses`
        adds each class's own)."""
        per_iteration = getattr(model, "n_trees_per_iteration_", 0)
        if type(model).__name__ != "HistGradientBoostingClassifier" or (
            per_iteration < 2
            if every_class
            else per_iteration != 1
            if class_index is None
            else not 0 <= class_index < per_iteration
        ):
            raise NotCompilable("not a binary HistGradientBoostingClassifier")
        k = class_index or 0
        classes = range(per_iteration) if every_class else (k,)
        predictors = [p[c] for c in classes for p in model._predictors]
        if not predictors:
            raise NotCompilable("no trees")
        known, f_map = model._bin_mapper.make_known_categories_bitsets()
        nodes = [p.nodes for p in predictors]
        sizes = np.array([len(n) for n in nodes])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        bit_sizes = np.array([len(p.raw_left_cat_bitsets) for p in predictors])
        bit_offsets = np.concatenate([[0], np.cumsum(bit_sizes)[:-1]])
        allnodes = np.concatenate(nodes)
        tree_of = np.repeat(np.arange(len(nodes)), sizes)
        preprocessor = getattr(model, "_preprocessor", None)
        if preprocessor is not None:
            encoder = preprocessor.named_transformers_["encoder"]
            cat_cols = np.flatnonzero(model.is_categorical_)
            num_cols = np.flatnonzero(~np.asarray(model.is_categorical_))
            seen = [np.asarray(c, dtype=float) for c in encoder.categories_]
            categories: list[np.ndarray] | None = [c[~np.isnan(c)] for c in seen]
            column_of = np.concatenate([cat_cols, num_cols])
        else:
            cat_cols = num_cols = np.empty(0, dtype=np.intp)
            categories = None
            column_of = np.arange(int(model.n_features_in_))
        return cls(
            roots=offsets,
            tree_of=tree_of,
            feature=allnodes["feature_idx"].astype(np.intp),
            threshold=allnodes["num_threshold"].astype(float),
            missing_left=allnodes["missing_go_to_left"].astype(bool),
            left=allnodes["left"].astype(np.intp) + offsets[tree_of],
            right=allnodes["right"].astype(np.intp) + offsets[tree_of],
            leaf=allnodes["is_leaf"].astype(bool),
            value=allnodes["value"].astype(float),
            categorical=allnodes["is_categorical"].astype(bool),
            bitset=allnodes["bitset_idx"].astype(np.intp) + bit_offsets[tree_of],
            raw_bits=(
                np.concatenate([p.raw_left_cat_bitsets for p in predictors]).astype(np.uint64)
                if bit_sizes.sum()
                else None
            ),
            known=np.asarray(known, dtype=np.uint64),
            f_map=np.asarray(f_map, dtype=np.intp),
            baseline=float(np.asarray(model._baseline_prediction).ravel()[k]),
            depth=int(allnodes["depth"].max()) + 1,
            column_of=column_of,
            categories=categories,
            cat_cols=cat_cols,
            num_cols=num_cols,
        )

    @property
    def n_trees(self) -> int:
        return int(self.roots.size)

    def leaves_per_tree(self) -> np.ndarray:
        return np.bincount(self.tree_of[self.leaf], minlength=self.n_trees)

    def faster_than_sklearn(self, n_rows: int) -> bool:
        return n_rows <= WALKED_MAX_ROWS

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """Input rows -> the columns the trees split on (categories as codes, then numbers)."""
        if self.categories is None:
            return X
        out = np.empty((X.shape[0], self.cat_cols.size + self.num_cols.size))
        for k, (j, cats) in enumerate(zip(self.cat_cols, self.categories)):
            x = X[:, j]
            if cats.size == 0:
                out[:, k] = np.nan
                continue
            pos = np.clip(np.searchsorted(cats, x), 0, cats.size - 1)
            out[:, k] = np.where(cats[pos] == x, pos, np.nan)
        out[:, self.cat_cols.size :] = X[:, self.num_cols]
        return out

    @staticmethod
    def _in_bitset(bits: np.ndarray, row: np.ndarray, v: np.ndarray) -> np.ndarray:
        return ((bits[row, v >> 5] >> (v & 31).astype(np.uint64)) & np.uint64(1)).astype(bool)

    def goes_left(self, nd: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Whether prepared value `x` goes left at node `nd` (pairwise), as scikit-learn decides."""
        go_left = x <= self.threshold[nd]
        cat = self.categorical[nd]
        if cat.any() and self.raw_bits is not None:
            xc, ndc = x[cat], nd[cat]
            unusable = np.isnan(xc) | (xc < 0)
            v = np.where(unusable, 0, xc).astype(np.intp)
            in_left = self._in_bitset(self.raw_bits, self.bitset[ndc], v)
            is_known = self._in_bitset(self.known, self.f_map[self.feature[ndc]], v)
            missing_left = self.missing_left[ndc]
            go = np.where(in_left, True, np.where(is_known, False, missing_left))
            go_left[cat] = np.where(unusable, missing_left, go)
        return np.where(np.isnan(x), self.missing_left[nd], go_left)

    def walk(
        self,
        X: np.ndarray,
        r: np.ndarray,
        t: np.ndarray,
        visited: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> np.ndarray:
        """Leaf node of each (row r of prepared X, tree t) pair; `visited` collects (pair, input
        column) of the splits passed, each column once per pair."""
        leaf, feature = self.leaf, self.feature
        node = self.roots[t].copy()
        todo = np.flatnonzero(~leaf[node])
        path = np.full((node.size, self.depth), -1, dtype=np.int32) if visited is not None else None
        for level in range(self.depth):
            if not todo.size:
                break
            nd = node[todo]
            f = feature[nd]
            if visited is not None and path is not None:
                columns = self.column_of[f]
                fresh = ~(path[todo, :level] == columns[:, None]).any(axis=1)
                path[todo, level] = columns
                visited.append((todo[fresh], columns[fresh]))
            node[todo] = np.where(self.goes_left(nd, X[r[todo], f]), self.left[nd], self.right[nd])
            todo = todo[~leaf[node[todo]]]
        return node

    def leaves(
        self, X: np.ndarray, visited: list[tuple[np.ndarray, np.ndarray]] | None = None
    ) -> np.ndarray:
        """(rows, trees): the leaf node each prepared row reaches in each tree."""
        n_trees = self.n_trees
        r = np.repeat(np.arange(X.shape[0]), n_trees)
        t = np.tile(np.arange(n_trees), X.shape[0])
        return self.walk(X, r, t, visited).reshape(X.shape[0], n_trees)

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        return expit(self.raw(X))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The raw score (log-odds) of each row: the baseline plus every tree's leaf value."""
        X = self.prepare(np.asarray(X, dtype=float))
        node = self.leaves(X)
        # Trees added one after another from the baseline, as scikit-learn does, so the result
        # is the same bits as predict_proba whatever the batch size (cumsum is sequential).
        terms = np.empty((X.shape[0], self.n_trees + 1))
        terms[:, 0] = self.baseline
        terms[:, 1:] = self.value[node]
        return np.cumsum(terms, axis=1)[:, -1]

    def occluded_raw(
        self, X: np.ndarray, typical: np.ndarray, lead: np.ndarray, column: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw log-odds of each lead, raw log-odds of each lead with `column` set to `typical`).

        Only trees whose path for the lead splits on that column can change, so only those
        (variant, tree) pairs are walked again: ~depth pairs per tree instead of one per feature.
        """
        n_trees = self.n_trees
        Xp = self.prepare(np.asarray(X, dtype=float))
        visited: list[tuple[np.ndarray, np.ndarray]] = []
        node = self.leaves(Xp, visited)
        own = self.value[node]
        terms = np.empty((X.shape[0], n_trees + 1))
        terms[:, 0] = self.baseline
        terms[:, 1:] = own
        raw = np.cumsum(terms, axis=1)[:, -1]  # the order of raw_proba(): the same bits
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
        new = self.walk(self.prepare(rows), v, t)
        change = np.bincount(v, weights=self.value[new] - own[lead[v], t], minlength=lead.size)
        return raw, raw[lead] + change


@dataclass(eq=False)
class LeafBitvectors(CompiledTrees):
    """Binary boosted trees evaluated as leaf bitvectors (the QuickScorer idea), all trees at once.

    A tree's leaves are numbered left to right; a split the lead fails (goes right) rules out
    the leaves of its left subtree, and the leaf reached is the leftmost one no split rules
    out. What a tree's splits on one feature rule out depends only on that feature's value,
    through the interval it falls in between the thresholds used: tabled once per (tree,
    feature) at load. A lead is then a few table look-ups and ANDs per tree, no walk.

    Occlusion (`occluded_raw`, for reasons): the leaf with feature j set to the typical value is
    the leftmost leaf of (AND of the tree's other features' tables) & (j's table at the typical
    value); the ANDs of the others are prefix/suffix ANDs along each tree's features.
    Probabilities are summed tree by tree from the baseline as scikit-learn does: the same bits.
    Faster than scikit-learn at any number of rows.
    """

    walked: WalkedTrees  # the node-walking form of the same trees (the tests' reference)
    dtype: type[np.unsignedinteger]  # the smallest unsigned integer with a bit per leaf
    everything: np.unsignedinteger  # every leaf possible
    # per used feature: (input column, is a category, sorted thresholds or categories seen)
    features: list[tuple[int, bool, np.ndarray]]
    used_columns: np.ndarray
    order: np.ndarray  # sorted position -> tree
    rank: np.ndarray  # tree -> sorted position
    blocks: list[tuple[int, int, int]]  # (first slot, stop, trees): slots at one position
    table: np.ndarray  # every slot's bitvector per interval, concatenated
    slot_table: np.ndarray  # where each slot's entries start in `table`
    slot_feature: np.ndarray  # used feature of each slot
    slot_tree: np.ndarray  # sorted position of each slot's tree
    leaf_values: np.ndarray
    leaf_offset: np.ndarray  # by sorted position: where its leaves start, minus one
    baseline: float
    n_trees: int
    n_used: int  # features any tree splits on
    # `_few_intervals`: every threshold compared at once
    with_edges: np.ndarray  # used features with a threshold or a category seen
    is_category: np.ndarray
    nan_interval: np.ndarray
    edges: np.ndarray
    edge_column: np.ndarray
    edge_starts: np.ndarray
    # `_slots_by_feature`: per used feature, (its slots' entries by interval, first, stop)
    by_feature: list[tuple[np.ndarray, int, int]]
    from_feature_order: np.ndarray  # column of each slot among the slots ordered by feature

    @classmethod
    def from_trees(cls, walked: WalkedTrees) -> LeafBitvectors:
        """Table every (tree, feature) pair's bitvectors (trees of up to 64 leaves)."""
        leaf, left, right, value, feature = (
            walked.leaf, walked.left, walked.right, walked.value, walked.feature
        )  # fmt: skip
        categories = dict(enumerate(walked.categories or []))
        n_trees = walked.n_trees
        leaf_values: list[float] = []
        leaf_offset = np.empty(n_trees, dtype=np.intp)
        # per tree: (feature, [(node, mask of the leaves of its left subtree)])
        groups: list[list[tuple[int, list[tuple[int, int]]]]] = []
        for t, root in enumerate(walked.roots):
            leaf_offset[t] = len(leaf_values)
            spans: dict[int, tuple[int, int]] = {}
            stack = [(int(root), False)]
            while stack:  # post-order: both subtrees' leaf spans are known before the node's
                n, done = stack.pop()
                if leaf[n]:
                    spans[n] = (len(leaf_values), len(leaf_values) + 1)
                    leaf_values.append(float(value[n]))
                elif done:
                    spans[n] = (spans[int(left[n])][0], spans[int(right[n])][1])
                else:
                    stack += [(n, True), (int(right[n]), False), (int(left[n]), False)]
            by_feature: dict[int, list[tuple[int, int]]] = {}
            for n in spans:
                if not leaf[n]:
                    l_low, l_high = spans[int(left[n])]
                    mask = ((1 << (l_high - l_low)) - 1) << (l_low - leaf_offset[t])
                    by_feature.setdefault(int(feature[n]), []).append((n, mask))
            groups.append(sorted(by_feature.items()))
        n_leaves = np.diff(np.append(leaf_offset, len(leaf_values)))
        dtype = next(d for d in (np.uint8, np.uint16, np.uint32, np.uint64)
                     if np.iinfo(d).bits >= n_leaves.max())  # fmt: skip
        all_leaves = dtype(np.iinfo(dtype).max)
        used = sorted({f for tree in groups for f, _ in tree})
        position = {f: k for k, f in enumerate(used)}
        # Intervals of each used feature: numbers between sorted thresholds (+ above all, NaN),
        # categories by their code among those seen in fit (+ unseen or NaN).
        features: list[tuple[int, bool, np.ndarray]] = []
        representatives = []
        for f in used:
            if f in categories:
                cats = np.asarray(categories[f], dtype=float)
                features.append((int(walked.column_of[f]), True, cats))
                representatives.append(np.append(np.arange(cats.size, dtype=float), np.nan))
            else:
                on_f = np.flatnonzero((feature == f) & ~leaf)
                edges = np.unique(walked.threshold[on_f])
                features.append((int(walked.column_of[f]), False, edges))
                representatives.append(np.concatenate([edges, [np.inf, np.nan]]))
        # Slots (tree, feature) in blocks by position within the tree; trees sorted by how many
        # features they split on, so block p holds a prefix of the sorted trees (no padding).
        counts = np.array([len(tree) for tree in groups], dtype=np.intp)
        order = np.argsort(-counts, kind="stable")
        rank = np.empty(n_trees, dtype=np.intp)
        rank[order] = np.arange(n_trees)
        entries = []
        size = 0
        slot_table: list[int] = []
        slot_feature: list[int] = []
        slot_tree: list[int] = []
        blocks: list[tuple[int, int, int]] = []
        for p in range(int(counts.max(initial=0))):
            in_block = int((counts > p).sum())
            blocks.append((len(slot_table), len(slot_table) + in_block, in_block))
            for sorted_position in range(in_block):
                f, members = groups[int(order[sorted_position])][p]
                reps = representatives[position[f]]
                entry = np.full(reps.size, all_leaves)
                for n, mask in members:
                    go_left = walked.goes_left(np.full(reps.size, n, dtype=np.intp), reps)
                    entry &= np.where(go_left, all_leaves, all_leaves ^ dtype(mask))
                entries.append(entry)
                slot_table.append(size)
                slot_feature.append(position[f])
                slot_tree.append(sorted_position)
                size += entry.size
        table = np.concatenate(entries) if entries else np.empty(0, dtype=dtype)
        slots = np.array(slot_table, dtype=np.intp)
        slot_features = np.array(slot_feature, dtype=np.intp)
        used_columns = np.array([c for c, _, _ in features], dtype=np.intp)
        few = _few_rows_index(features, used_columns)
        by_feature_rows, from_feature_order = _slots_by_feature_index(
            table, slots, slot_features, representatives
        )
        return cls(
            walked=walked,
            dtype=dtype,
            everything=all_leaves,
            features=features,
            used_columns=used_columns,
            order=order,
            rank=rank,
            blocks=blocks,
            table=table,
            slot_table=slots,
            slot_feature=slot_features,
            slot_tree=np.array(slot_tree, dtype=np.intp),
            leaf_values=np.asarray(leaf_values, dtype=float),
            # by sorted position; + the number of bits up to and including the lowest set one
            leaf_offset=leaf_offset[order] - 1,
            baseline=float(walked.baseline),
            n_trees=n_trees,
            n_used=len(used),
            with_edges=few[0],
            is_category=few[1],
            nan_interval=few[2],
            edges=few[3],
            edge_column=few[4],
            edge_starts=few[5],
            by_feature=by_feature_rows,
            from_feature_order=from_feature_order,
        )

    def _intervals(self, X: np.ndarray) -> np.ndarray:
        """(rows, used features): the interval index of each row's value of each used feature."""
        out = np.zeros((X.shape[0], self.n_used), dtype=np.intp)
        for k, (column, _, _) in enumerate(self.features):
            out[:, k] = self._feature_intervals(X[:, column], k)
        return out

    def _feature_intervals(self, x: np.ndarray, k: int) -> np.ndarray:
        """The interval index of each value `x` of used feature `k`."""
        _, is_category, edges = self.features[k]
        if is_category:
            if not edges.size:
                return np.zeros(x.shape, dtype=np.intp)
            pos = np.minimum(np.searchsorted(edges, x), edges.size - 1)
            return np.where(edges[pos] == x, pos, edges.size)
        b = np.searchsorted(edges, x)
        b[np.isnan(x)] = edges.size + 1
        return b

    def _few_intervals(self, X: np.ndarray) -> np.ndarray:
        """`_intervals` for a few rows: every threshold compared at once instead of a call per
        feature (one lead: ~25 us instead of ~0.4 ms)."""
        x = X.take(self.edge_column, axis=1)
        below = np.add.reduceat(x > self.edges, self.edge_starts, axis=1)  # edges < x
        equal = np.add.reduceat(x == self.edges, self.edge_starts, axis=1)  # a seen category
        out = np.zeros((X.shape[0], self.n_used), dtype=np.intp)
        mine, columns, is_category, nan_interval = self._with_edges_index()
        values = X.take(columns, axis=1)
        out[:, mine] = np.where(
            np.isnan(values), nan_interval,
            np.where(is_category & (equal == 0), nan_interval, below),
        )  # fmt: skip
        return out

    def _with_edges_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The used features with edges: (mask, their input columns, which are categories,
        their NaN interval), selected once."""
        cached = self.__dict__.get("_with_edges_selected")
        if cached is None:
            mine = self.with_edges
            cached = (mine, self.used_columns[mine], self.is_category[mine],
                      self.nan_interval[mine])  # fmt: skip
            self._with_edges_selected = cached
        return cached

    def _slots_by_feature(self, intervals: np.ndarray) -> np.ndarray:
        """`_slots` of many rows with the slots ordered by feature (columns: `_from_feature_order`
        takes them back to slot order)."""
        out = np.empty((intervals.shape[0], self.from_feature_order.size), dtype=self.dtype)
        for k, (rows, first, stop) in enumerate(self.by_feature):
            out[:, first:stop] = rows[intervals[:, k]]
        return out

    def _all_intervals(self, X: np.ndarray) -> np.ndarray:
        if X.shape[0] <= FEW_ROWS and self.with_edges.any():
            return self._few_intervals(X)
        return self._intervals(X)

    def _slots(self, intervals: np.ndarray) -> np.ndarray:
        """(rows, slots): per (tree, feature), the bitvector of the leaves it leaves possible,
        from the rows' interval indices (a few rows; many: `_slots_by_feature`)."""
        index = intervals[:, self.slot_feature]
        index += self.slot_table  # in place: no second (rows, slots) temporary
        return self.table[index]

    def _leaf_values(self, bits: np.ndarray, sorted_trees: Any = slice(None)) -> np.ndarray:
        """Value of the leftmost possible leaf of each bitvector (trees in sorted order)."""
        # the number of bits up to and including the lowest set one: its position + 1
        up_to_lowest = np.bitwise_count(bits ^ (bits - self.dtype(1)))
        return self.leaf_values[self.leaf_offset[sorted_trees] + up_to_lowest]

    def _raw(self, own: np.ndarray) -> np.ndarray:
        """Raw log-odds of rows from their leaf values (rows, trees in sorted order)."""
        terms = np.empty((own.shape[0], self.n_trees + 1))
        terms[:, 0] = self.baseline
        terms[:, 1:] = own[:, self.rank]
        # tree after tree, as scikit-learn adds them (np.cumsum's sums, without its wrapper)
        return np.add.accumulate(terms, axis=1)[:, -1]

    def _full(self, slots: np.ndarray) -> np.ndarray:
        """(rows, trees) AND of each tree's slots: the leaves the tree's features leave possible."""
        full = np.full((slots.shape[0], self.n_trees), self.everything, dtype=self.dtype)
        for start, stop, n in self.blocks:
            full[:, :n] &= slots[:, start:stop]
        return full

    def _full_and_twice(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`_full`, and the leaves that two or more of the tree's features rule out."""
        full = np.full((slots.shape[0], self.n_trees), self.everything, dtype=self.dtype)
        ruled_out_twice = np.zeros_like(full)
        for start, stop, n in self.blocks:
            keep = slots[:, start:stop]
            # ruled out before and by this feature: ~full & ~keep = ~(full | keep)
            either = np.bitwise_or(full[:, :n], keep)
            ruled_out_twice[:, :n] |= np.invert(either, out=either)
            full[:, :n] &= keep
        return full, ruled_out_twice

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        return expit(self.raw(X))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """The raw score (log-odds) of each row: the baseline plus every tree's leaf value."""
        X = np.asarray(X, dtype=float)
        raw = np.empty(X.shape[0])
        intervals = self._all_intervals(X)  # once for all rows: a call per feature
        if X.shape[0] < LEAD_CHUNK:  # a few leads: a copy per feature costs more than it saves
            return self._raw(self._leaf_values(self._full(self._slots(intervals))))
        by_feature = self._slots_by_feature(intervals)
        slots_buffer = np.empty((OCCLUSION_CHUNK, self.slot_table.size), dtype=self.dtype)
        for start in range(0, X.shape[0], OCCLUSION_CHUNK):
            part = by_feature[start : start + OCCLUSION_CHUNK]
            slots = np.take(part, self.from_feature_order, axis=1, out=slots_buffer[: part.shape[0]],
                            mode="wrap")  # fmt: skip
            raw[start : start + part.shape[0]] = self._raw(self._leaf_values(self._full(slots)))
        return raw

    def raw_variants(self, X: np.ndarray, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`CompiledTrees.raw_variants` with the trees' work on the columns that do not vary done
        once per row: the AND of those features' slots is shared by every variant, which then
        ANDs in only the slots of the varying columns (the time-to-close model's 6 periods of a
        lead differ in 2 of its ~115 columns). The same leaves, so the same bits as `raw`."""
        X = np.asarray(X, dtype=float)
        values = np.asarray(values, dtype=float)
        n, k = X.shape[0], values.shape[0]
        if not self._variant_plan(tuple(int(c) for c in np.asarray(columns)))[1]:
            # no tree splits on them: every variant scores as the row
            return np.broadcast_to(self.raw(X)[None, :], (k, n)).ravel()
        out = np.empty(k * n)
        for start, stop, own in self.leaf_values_variants(X, columns, values):
            out.reshape(k, n)[:, start:stop] = self._raw(own).reshape(k, stop - start)
        return out

    def leaf_values_variants(
        self, X: np.ndarray, columns: np.ndarray, values: np.ndarray
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """`raw_variants`'s leaves: per part of the rows (start, stop, leaf value of every
        (variant, row) of the part and tree, variant-major, trees in sorted order)."""
        X = np.asarray(X, dtype=float)
        values = np.asarray(values, dtype=float)
        n, k = X.shape[0], values.shape[0]
        varying, plan = self._variant_plan(tuple(int(c) for c in np.asarray(columns)))
        intervals = self._all_intervals(X)  # once for all rows: a call per feature
        # the varying features' intervals in every variant: (variants, rows) each
        varied = [self._feature_intervals(values[:, :, j].ravel(), f).reshape(k, n)
                  for f, j, _, _ in plan]  # fmt: skip
        for start in range(0, n, LEAD_CHUNK):
            stop = min(start + LEAD_CHUNK, n)
            slots = self._slots(intervals[start:stop])
            slots[:, varying] = self.everything
            # (variants, leads, trees): the shared AND, then each varying feature's slots
            full = np.repeat(self._full(slots)[None], k, axis=0)
            for (_, _, trees, entries), index in zip(plan, varied, strict=True):
                full[:, :, trees] &= self.table[
                    index[:, start:stop].reshape(-1, 1) + entries
                ].reshape(k, stop - start, trees.size)
            yield start, stop, self._leaf_values(full.reshape(k * (stop - start), -1))

    def _variant_plan(
        self, columns: tuple[int, ...]
    ) -> tuple[np.ndarray, list[tuple[int, int, np.ndarray, np.ndarray]]]:
        """For `raw_variants` with these varying columns (worked out once per model): the slots
        of the varying features, and per varying used feature (feature, its column among
        `columns`, its slots' trees, its slots' table starts)."""
        plans = self.__dict__.setdefault("_variant_plans", {})
        if columns not in plans:
            used = [k for k, (c, _, _) in enumerate(self.features) if c in columns]
            varying = np.flatnonzero(np.isin(self.slot_feature, used))
            plan = []
            for f in used:
                mine = np.flatnonzero(self.slot_feature == f)  # one slot per tree at most
                plan.append((f, columns.index(self.features[f][0]), self.slot_tree[mine],
                             self.slot_table[mine][None, :]))  # fmt: skip
            plans[columns] = (varying, plan)
        return plans[columns]

    def occluded_raw(
        self, X: np.ndarray, typical: np.ndarray, lead: np.ndarray, column: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw log-odds of each lead, raw log-odds of each lead with `column` set to `typical`).

        With the tree's leaves ruled out by its features: `full` (by none), `twice` (by two or
        more), the leaves the features other than g leave possible are (full | ~slot_g) & ~twice.
        Only the (lead, slot) pairs whose leftmost leaf changes (~8%) are looked up.
        """
        X = np.asarray(X, dtype=float)
        n = X.shape[0]
        raw = np.empty(n)
        width = self.n_used + 1  # the last column: features no tree uses (no change)
        change = np.zeros((n, width))
        typical_slots = self._typical_slots(typical)
        zero = self.dtype(0)
        intervals = self._all_intervals(X)  # once for all rows: a call per feature
        few = n < LEAD_CHUNK  # a few leads: a copy per feature costs more than it saves
        # a row copy per (row, feature), or (a few leads) the slots in slot order at once
        by_feature = self._slots(intervals) if few else self._slots_by_feature(intervals)
        n_slots = self.slot_table.size
        chunk = min(n, OCCLUSION_CHUNK)
        # Reused from chunk to chunk: fresh arrays this size cost page faults, not arithmetic.
        slots_buffer = np.empty((0 if few else chunk, n_slots), dtype=self.dtype)
        changed_buffer = np.empty((chunk, n_slots), dtype=bool)
        for start in range(0, n, OCCLUSION_CHUNK):
            part = by_feature[start : start + OCCLUSION_CHUNK]
            # back to slot order ("wrap": the columns are in range; it only skips a bounds copy)
            slots = part if few else np.take(part, self.from_feature_order, axis=1,
                                             out=slots_buffer[: part.shape[0]], mode="wrap")  # fmt: skip
            full, twice = self._full_and_twice(slots)
            own = self._leaf_values(full)
            raw[start : start + own.shape[0]] = self._raw(own)
            lowest = full & (zero - full)
            up_to_lowest = full ^ (full - self.dtype(1))  # the bits up to and including it
            allowed = np.invert(twice, out=twice)  # not ruled out by two or more features
            occluded = np.invert(slots, out=slots)  # in place, block by block: no temporaries
            changed = changed_buffer[: part.shape[0]]
            low = np.empty((part.shape[0], self.n_trees), dtype=self.dtype)
            for first, stop, m in self.blocks:
                block = occluded[:, first:stop]
                block |= full[:, :m]
                block &= allowed[:, :m]
                block &= typical_slots[first:stop]
                # the same lowest leaf: the block has it and none below it
                np.bitwise_and(block, up_to_lowest[:, :m], out=low[:, :m])
                np.not_equal(low[:, :m], lowest[:, :m], out=changed[:, first:stop])
            where = np.flatnonzero(changed)  # the pairs whose leftmost leaf changes
            row, slot = np.divmod(where, n_slots)
            tree = self.slot_tree[slot]
            before = own.reshape(-1)[row * self.n_trees + tree]  # own[row, tree], flat: faster
            delta = self._leaf_values(occluded.reshape(-1)[where], tree) - before
            change[start : start + own.shape[0]] = np.bincount(
                row * width + self.slot_feature[slot], weights=delta, minlength=own.shape[0] * width
            ).reshape(-1, width)
        if not lead.size:
            return raw, np.empty(0)
        return raw, raw[lead] + change[lead, self._feature_of(X.shape[1])[column]]

    def _feature_of(self, n_columns: int) -> np.ndarray:
        """Per input column, its used feature (`n_used` for columns no tree uses), once."""
        cached = self.__dict__.get("_feature_of_columns")
        if cached is None or cached.size != n_columns:
            cached = np.full(n_columns, self.n_used, dtype=np.intp)
            cached[self.used_columns] = np.arange(self.n_used)
            self._feature_of_columns = cached
        return cached

    def _typical_slots(self, typical: np.ndarray) -> np.ndarray:
        """The slots of the typical lead (the scorer's baseline: the same array every call),
        worked out once per baseline."""
        cached = self.__dict__.get("_typical_slots_of")
        if cached is None or (
            cached[0] is not typical and not np.array_equal(cached[1], typical, equal_nan=True)
        ):
            row = np.asarray(typical, dtype=float)[None, :]
            cached = (typical, row[0].copy(), self._slots(self._all_intervals(row))[0])
            self._typical_slots_of = cached
        return cached[2]


def variant_rows(X: np.ndarray, columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`X` once per variant (variant-major), `columns` set to `values[v]` in variant v."""
    X = np.asarray(X, dtype=float)
    rows = np.tile(X, (values.shape[0], 1))
    rows[:, columns] = np.asarray(values, dtype=float).reshape(-1, len(columns))
    return rows


def _few_rows_index(
    features: list[tuple[int, bool, np.ndarray]], used_columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(with_edges, is_category, nan_interval, edges, edge_column, edge_starts) for
    `LeafBitvectors._few_intervals`."""
    sizes = np.array([edges.size for _, _, edges in features], dtype=np.intp)
    with_edges = sizes > 0  # a categorical feature with no category seen: interval 0
    is_category = np.array([c for _, c, _ in features], dtype=bool)
    # NaN: the interval after "above every threshold" for numbers, "not seen" for categories
    nan_interval = np.where(is_category, sizes, sizes + 1)
    kept = [edges for (_, _, edges), size in zip(features, sizes) if size]
    edges = np.concatenate(kept) if kept else np.empty(0)
    edge_column = np.repeat(used_columns[with_edges], sizes[with_edges])
    starts = np.cumsum(sizes[with_edges])[:-1]
    edge_starts = np.concatenate([[0], starts]).astype(np.intp)
    return with_edges, is_category, nan_interval, edges, edge_column, edge_starts


def _slots_by_feature_index(
    table: np.ndarray,
    slot_table: np.ndarray,
    slot_feature: np.ndarray,
    representatives: list[np.ndarray],
) -> tuple[list[tuple[np.ndarray, int, int]], np.ndarray]:
    """Per used feature, its slots' table entries as (intervals, slots of the feature): a lead's
    slots of that feature are then one row, copied, not one look-up per slot. Also the column of
    each slot among the slots ordered by feature."""
    by_feature = []
    order: list[int] = []
    for k, reps in enumerate(representatives):
        mine = np.flatnonzero(slot_feature == k)
        by_feature.append(
            (table[slot_table[mine][None, :] + np.arange(reps.size)[:, None]],
             len(order), len(order) + mine.size)
        )  # fmt: skip
        order.extend(mine.tolist())
    from_feature_order = np.empty(len(order), dtype=np.intp)
    from_feature_order[np.array(order, dtype=np.intp)] = np.arange(len(order))
    return by_feature, from_feature_order


def compile_boosting(model: Any) -> CompiledTrees | None:
    """The numpy form of a binary HistGradientBoostingClassifier (None for other models): leaf
    bitvectors when every tree has at most `BITVECTOR_MAX_LEAVES` leaves, else walked trees."""
    try:
        walked = WalkedTrees.from_model(model)
    except NotCompilable:
        return None
    if walked.leaves_per_tree().max() > BITVECTOR_MAX_LEAVES:
        return walked
    return LeafBitvectors.from_trees(walked)


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
    order = (
        np.concatenate([cat_cols, num_cols]) if preprocessor is not None else np.arange(n_features)
    )
    for predictors in model._predictors:
        for tree in predictors:  # one per class of a multiclass model
            nodes = tree.nodes
            inner = nodes[~nodes["is_leaf"].astype(bool)]
            for f, t in zip(inner["feature_idx"], inner["num_threshold"]):
                pools.setdefault(int(order[f]), []).append(float(t))
    for j in range(n_features):
        if is_categorical[j] and preprocessor is not None:
            encoder = preprocessor.named_transformers_["encoder"]
            position = int(np.flatnonzero(cat_cols == j)[0])
            cats = np.asarray(encoder.categories_[position], dtype=float)
            pool = np.concatenate([cats, [np.nan, np.nanmax(cats, initial=0) + 7, -1.0]])
            X[:, j] = pool[rng.integers(0, pool.size, n)]
        elif j in pools:
            t = np.asarray(pools[j])
            t = t[np.isfinite(t)]  # an infinite threshold (all but NaN go left) has no sides
            if not t.size:
                continue
            base = t[rng.integers(0, t.size, n)]
            X[:, j] = base + rng.choice([-1e-3, 0.0, 1e-3, -10.0, 10.0], n) * np.maximum(
                1, np.abs(base)
            )
    X[rng.random(X.shape) < 0.1] = np.nan
    return X


def compile_model(model: Any, n_features: int | None = None) -> CompiledModel | None:
    """The numpy form of `model`, or None.

    None for other model kinds, for unexpected layouts, and when the compiled probabilities differ
    from `model.predict_proba` by more than `TOLERANCE` on generated rows.
    """
    compiled: CompiledModel | None
    try:
        n_features = int(n_features if n_features is not None else model.n_features_in_)
        try:
            compiled = AdditiveLogistic.from_pipeline(model, n_features)
            rows = compiled.probe_rows(400)
        except NotCompilable:
            compiled = compile_boosting(model)
            if compiled is None:
                return None
            rows = _tree_probe_rows(model, 400)
        expected = model.predict_proba(rows)[:, 1]
        worst = float(np.max(np.abs(compiled.raw_proba(rows) - expected)))
    except Exception as error:  # an unexpected estimator layout: keep scikit-learn
        log.warning("model not compiled (%s: %s): scikit-learn path", type(error).__name__, error)
        return None
    if not worst <= TOLERANCE:
        log.warning(
            "model not compiled (differs from scikit-learn by %.2e): scikit-learn path", worst
        )
        return None
    log.info("model compiled to numpy (largest difference from scikit-learn %.1e)", worst)
    return compiled


# ------------------------------------------------------------------------------------------------
# Multiclass boosted trees (the time-to-close model's won / lost / still open per period)


@dataclass(eq=False)
class CompiledClasses:
    """A multiclass HistGradientBoostingClassifier: one `CompiledTrees` per class (its trees'
    sum is the class's raw score), probabilities by the softmax scikit-learn applies.

    scikit-learn calls each of the 3 x 300 trees of the timing model separately: ~80 ms for one
    lead's 6 periods; here all trees of a class are evaluated at once."""

    classes: list[CompiledTrees]
    # every class's trees in one `LeafBitvectors` (class after class, as many per class), and
    # each class's baseline: one pass of numpy calls for all classes instead of one per class
    # (a lead's 6 periods: the timing model's largest cost in a one-lead request)
    together: LeafBitvectors | None = None
    baselines: np.ndarray | None = None

    def faster_than_sklearn(self, n_rows: int) -> bool:
        return all(trees.faster_than_sklearn(n_rows) for trees in self.classes)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        raw = np.column_stack([trees.raw(X) for trees in self.classes])
        return softmax_rows(raw)

    def predict_proba_variants(
        self, X: np.ndarray, columns: np.ndarray, values: np.ndarray
    ) -> np.ndarray:
        """`predict_proba` of `variant_rows(X, columns, values)`, sharing the work of the
        columns that do not vary (`CompiledTrees.raw_variants`)."""
        together, baselines = self.together, self.baselines
        if together is None or baselines is None:
            raw = np.column_stack(
                [trees.raw_variants(X, columns, values) for trees in self.classes]
            )
            return softmax_rows(raw)
        n, k, c = np.asarray(X).shape[0], np.asarray(values).shape[0], len(self.classes)
        raw = np.empty((k, n, c))
        for start, stop, own in together.leaf_values_variants(X, columns, values):
            # each class's trees added one after another from its baseline, as scikit-learn
            # and `LeafBitvectors._raw` add them: the same bits as the per-class path
            trees = own[:, together.rank].reshape(own.shape[0], c, -1)
            terms = np.empty((own.shape[0], c, trees.shape[2] + 1))
            terms[:, :, 0] = baselines
            terms[:, :, 1:] = trees
            raw[:, start:stop] = np.add.accumulate(terms, axis=2)[:, :, -1].reshape(
                k, stop - start, c
            )
        return softmax_rows(raw.reshape(k * n, c))


def softmax_rows(raw: np.ndarray) -> np.ndarray:
    """Each row's softmax: scipy.special.softmax(raw, axis=1)'s arithmetic (the largest value
    taken off before the exponential), without its per-call array-API dispatch, which cost more
    than the arithmetic for one lead's periods."""
    shifted = np.exp(raw - np.max(raw, axis=1, keepdims=True))
    return shifted / np.sum(shifted, axis=1, keepdims=True)


def compile_classes(model: Any) -> CompiledClasses | None:
    """The numpy form of a multiclass HistGradientBoostingClassifier, or None (another model, an
    unexpected layout, or `predict_proba` not matched within `TOLERANCE` on generated rows)."""
    try:
        per_iteration = int(getattr(model, "n_trees_per_iteration_", 0))
        if type(model).__name__ != "HistGradientBoostingClassifier" or per_iteration < 2:
            return None
        classes: list[CompiledTrees] = []
        for k in range(per_iteration):
            walked = WalkedTrees.from_model(model, class_index=k)
            fits = walked.leaves_per_tree().max() <= BITVECTOR_MAX_LEAVES
            classes.append(LeafBitvectors.from_trees(walked) if fits else walked)
        compiled = CompiledClasses(classes)
        tables = [trees for trees in classes if isinstance(trees, LeafBitvectors)]
        if len(tables) == len(classes):
            compiled.together = LeafBitvectors.from_trees(
                WalkedTrees.from_model(model, every_class=True)
            )
            compiled.baselines = np.array([trees.baseline for trees in tables])
        rows = _tree_probe_rows(model, 400)
        worst = float(np.max(np.abs(compiled.predict_proba(rows) - model.predict_proba(rows))))
    except Exception as error:  # an unexpected estimator layout: keep scikit-learn
        log.warning("classifier not compiled (%s: %s): scikit-learn path", type(error).__name__,
                    error)  # fmt: skip
        return None
    if not worst <= TOLERANCE:
        log.warning(
            "classifier not compiled (differs from scikit-learn by %.2e): scikit-learn path", worst
        )
        return None
    return compiled
