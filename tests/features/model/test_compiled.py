"""Boosted trees as leaf bitvectors: scikit-learn's probabilities exactly, and the occluded leads'
log-odds that re-predicting each changed lead gives."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

import features.model.compiled as compiled
from features.model.compiled import compile_boosting, compile_classes


def _data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.integers(0, 6, n).astype(float),  # category codes
        rng.normal(size=n),
        rng.poisson(2, n).astype(float),
        rng.integers(0, 3, n).astype(float),  # another category
        rng.exponential(size=n),
    ])  # fmt: skip
    X[rng.random(n) < 0.1, 0] = np.nan
    X[rng.random(n) < 0.1, 1] = np.nan
    logit = (X[:, 0] == 2) * 1.5 + np.nan_to_num(X[:, 1]) + 0.3 * X[:, 2] - X[:, 4] - 1
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def _model(max_leaf_nodes: int, categorical: bool) -> HistGradientBoostingClassifier:
    X, y = _data(0, 3000)
    mask = np.array([True, False, False, True, False]) if categorical else None
    return HistGradientBoostingClassifier(
        max_iter=60,
        max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=5,
        categorical_features=mask,
        early_stopping=False,
        random_state=0,
    ).fit(X, y)


def _leads() -> np.ndarray:
    X, _ = _data(1, 300)
    X[::9, 0] = 17.0  # a category never seen in training
    X[::11, 3] = np.nan
    X[::13, 1] = np.inf
    return X


@pytest.mark.parametrize(
    "max_leaf_nodes,categorical", [(8, True), (31, True), (31, False), (63, True)]
)
def test_bitvectors_give_scikit_learns_probabilities_and_the_occluded_log_odds(
    max_leaf_nodes, categorical
):
    model = _model(max_leaf_nodes, categorical)
    fast = compile_boosting(model)
    assert isinstance(fast, compiled.LeafBitvectors)
    X = _leads()
    # the same bits, any batch size
    assert np.array_equal(fast.raw_proba(X), model.predict_proba(X)[:, 1])
    assert np.array_equal(fast.raw_proba(X[:1]), model.predict_proba(X[:1])[:, 1])
    assert np.array_equal(
        fast.raw_proba(X[:100]), model.predict_proba(X[:100])[:, 1]
    )  # a last pass of 36 leads
    typical = np.array([2.0, 0.0, 2.0, np.nan, 1.0])
    lead, column = np.nonzero(np.ones(X.shape, dtype=bool))
    raw, occluded = fast.occluded_raw(X, typical, lead, column)
    rows = X[lead].copy()
    rows[np.arange(lead.size), column] = typical[column]
    np.testing.assert_array_equal(raw, model.decision_function(X))
    np.testing.assert_allclose(occluded, model.decision_function(rows), rtol=0, atol=1e-12)
    walked_raw, walked = fast.walked.occluded_raw(X, typical, lead, column)
    np.testing.assert_allclose(occluded, walked, rtol=0, atol=1e-12)
    assert np.abs(occluded - raw[lead]).max() > 0.1  # occlusion changes something


def test_trees_with_more_leaves_than_a_bitvector_holds_are_walked(monkeypatch):
    monkeypatch.setattr(compiled, "BITVECTOR_MAX_LEAVES", 4)
    model = _model(8, True)
    walked = compile_boosting(model)
    assert isinstance(walked, compiled.WalkedTrees)
    X = _leads()
    assert np.array_equal(walked.raw_proba(X), model.predict_proba(X)[:, 1])


@pytest.mark.parametrize("max_leaf_nodes,bitvectors", [(15, True), (8, False)])
def test_a_multiclass_model_gives_scikit_learns_probabilities(
    max_leaf_nodes, bitvectors, monkeypatch
):
    # the time-to-close model's classifier: won / lost / still open, categories and NaN
    if not bitvectors:
        monkeypatch.setattr(compiled, "BITVECTOR_MAX_LEAVES", 4)
    X, y = _data(0, 3000)
    y = y + (np.nan_to_num(X[:, 4]) > 1.2)  # three classes
    model = HistGradientBoostingClassifier(
        max_iter=40, max_leaf_nodes=max_leaf_nodes, min_samples_leaf=5,
        categorical_features=np.array([True, False, False, True, False]), early_stopping=False,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    fast = compile_classes(model)
    assert fast is not None
    kind = compiled.LeafBitvectors if bitvectors else compiled.WalkedTrees
    assert [type(trees) for trees in fast.classes] == [kind] * 3
    X = _leads()
    np.testing.assert_allclose(fast.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        fast.predict_proba(X[:1]), model.predict_proba(X[:1]), rtol=0, atol=1e-12
    )
    assert compile_classes(_model(8, True)) is None  # a binary model: compile_boosting's


@pytest.mark.parametrize("categorical", [True, False])
def test_interval_indices_of_a_few_rows_equal_the_per_feature_path(categorical):
    fast = compile_boosting(_model(15, categorical))
    X = _leads()
    X[::7, 2] = -np.inf
    for rows in (X[:1], X[:16], X[100:116]):
        np.testing.assert_array_equal(fast._few_intervals(rows), fast._intervals(rows))


@pytest.mark.parametrize("max_leaf_nodes,categorical", [(8, True), (31, False), (63, True)])
def test_slots_copied_feature_by_feature_equal_the_slot_by_slot_look_ups(
    max_leaf_nodes, categorical
):
    fast = compile_boosting(_model(max_leaf_nodes, categorical))
    X = _leads()
    X[::7, 2] = -np.inf
    intervals = fast._intervals(X)
    by_feature = fast._slots_by_feature(intervals)
    expected = fast._slots(intervals)
    np.testing.assert_array_equal(by_feature[:, fast.from_feature_order], expected)
    assert len(np.unique(expected, axis=0)) > 10  # the leads' slots differ


@pytest.mark.parametrize("max_leaf_nodes,bitvectors", [(15, True), (8, False)])
@pytest.mark.parametrize("leads", [1, 5, 70])  # one pass, a few rows, more than LEAD_CHUNK
def test_variants_sharing_the_fixed_columns_give_the_stacked_rows_probabilities(
    max_leaf_nodes, bitvectors, leads, monkeypatch
):
    # the time-to-close model scores each lead once per period, the periods differing in two
    # columns (a category and a number here): the shared work must give the same bits
    if not bitvectors:
        monkeypatch.setattr(compiled, "BITVECTOR_MAX_LEAVES", 4)
    X, y = _data(0, 3000)
    y = y + (np.nan_to_num(X[:, 4]) > 1.2)
    model = HistGradientBoostingClassifier(
        max_iter=40, max_leaf_nodes=max_leaf_nodes, min_samples_leaf=5,
        categorical_features=np.array([True, False, False, True, False]), early_stopping=False,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    fast = compile_classes(model)
    assert fast is not None
    # bitvectors: every class's trees in one table (`together`), the same bits as class by class
    assert (fast.together is not None) == bitvectors
    base = _leads()[:leads]
    rng = np.random.default_rng(leads)
    columns = np.array([3, 4])
    values = np.stack([
        rng.integers(0, 4, (6, leads)).astype(float),  # a category, one never seen (3)
        rng.exponential(size=(6, leads)),
    ], axis=2)  # fmt: skip
    values[0, 0, 1] = np.nan
    rows = compiled.variant_rows(base, columns, values)
    assert rows.shape == (6 * leads, base.shape[1])
    np.testing.assert_array_equal(rows[leads:, :3], np.tile(base[:, :3], (5, 1)))
    want = model.predict_proba(rows)
    got = fast.predict_proba_variants(base, columns, values)
    np.testing.assert_array_equal(got, fast.predict_proba(rows))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # columns no tree splits on: every variant scores as its row
    unused = np.array([X.shape[1]])
    wide = np.column_stack([base, np.zeros(leads)])
    same = fast.classes[0].raw_variants(wide, unused, rng.normal(size=(3, leads, 1)))
    np.testing.assert_array_equal(same, np.tile(fast.classes[0].raw(wide), 3))


def test_softmax_rows_is_scipys_softmax_bit_for_bit():
    from scipy.special import softmax

    from features.model.compiled import softmax_rows

    rng = np.random.default_rng(5)
    for rows in (1, 6, 300):
        raw = rng.normal(scale=rng.choice([0.1, 3.0, 40.0]), size=(rows, 3))
        assert np.array_equal(softmax_rows(raw), softmax(raw, axis=1))


@pytest.mark.parametrize("knots,degree", [("uniform", 3), ("quantile", 3), ("quantile", 2)])
def test_spline_sums_equal_the_weighted_spline_features(knots, degree):
    """Every column's B-splines times their weights, evaluated in one pass, as SplineTransformer
    and the weights give them: inside the knots, at them, beyond them (constant), at infinity."""
    from sklearn.preprocessing import SplineTransformer

    rng = np.random.default_rng(3)
    train = np.column_stack(
        [rng.normal(size=500), rng.exponential(size=500), rng.uniform(size=500)]
    )
    splines = SplineTransformer(
        n_knots=6, degree=degree, knots=knots, extrapolation="constant"
    ).fit(train)
    width = splines.bsplines_[0].c.shape[1]
    coef = rng.normal(size=3 * width)
    z = np.column_stack([rng.normal(scale=3, size=400), rng.exponential(size=400) * 3,
                         rng.uniform(-1, 2, size=400)])  # fmt: skip
    z[:6] = [[np.inf, -np.inf, 0.0]] * 6
    z[6] = [spline.t[degree] for spline in splines.bsplines_]  # the knots themselves
    z[7] = [spline.t[-degree - 1] for spline in splines.bsplines_]
    z[8] = [spline.t[degree + 2] for spline in splines.bsplines_]

    features = splines.transform(np.nan_to_num(z, posinf=1e300, neginf=-1e300))
    expected = (features.reshape(len(z), 3, width) * coef.reshape(3, width)).sum(axis=2)
    got = compiled.SplineSums.from_bsplines(splines.bsplines_, coef)(z)

    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_a_logistic_pipelines_transformer_weights_weigh_its_columns_when_compiled():
    """ColumnTransformer(transformer_weights=...) multiplies a part's output: the wide codes'
    one-hot (`categories=wide_onehot`) is scaled so, to be penalised less."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import MissingIndicator, SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = _data(0, 2000)
    columns = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), [0, 3]),
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), [1, 2, 4]),
            ("missing", MissingIndicator(features="missing-only", error_on_new=False), [1]),
        ],
        sparse_threshold=0.0,
        transformer_weights={"categories": 3.0, "missing": 0.5},
    )
    model = Pipeline([("features", columns), ("model", LogisticRegression(C=0.1))]).fit(X, y)
    fast = compiled.compile_model(model)
    assert isinstance(fast, compiled.AdditiveLogistic)
    leads, _ = _data(1, 300)
    leads[::9, 0] = 17.0  # a category never seen in training: it weighs nothing
    np.testing.assert_allclose(fast.raw_proba(leads), model.predict_proba(leads)[:, 1], atol=1e-12)
    # category code 2 of column 0 (its third one-hot column) weighs 3 x its coefficient
    row = np.array([[2.0, 0.0, 0.0, 0.0, 0.0]])
    assert fast.contributions(row)[0, 0] == pytest.approx(3.0 * model[-1].coef_[0, 2])
