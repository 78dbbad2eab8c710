"""The numpy fast paths of CalibratedModel give scikit-learn's probabilities exactly."""

import numpy as np
import pytest

from features.model.artifact import untrusted_types
from features.model.calibration import CalibratedModel
from features.model.compiled import AdditiveLogistic, CompiledTrees
from training.models import Candidate, build_estimator, fit_estimator


def _data(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.integers(0, 6, n).astype(float),  # category codes
        rng.normal(size=n),
        rng.poisson(2, n).astype(float),
        rng.integers(0, 3, n).astype(float),  # another category
    ])  # fmt: skip
    X[rng.random(n) < 0.1, 0] = np.nan
    X[rng.random(n) < 0.1, 1] = np.nan
    logit = (X[:, 0] == 2) * 1.5 + np.nan_to_num(X[:, 1]) + 0.3 * X[:, 2] - 1
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


MASK = np.array([True, False, False, True])


@pytest.mark.parametrize("kind,params", [
    ("gradient_boosting", {"learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 20}),
    ("logistic", {"C": 1.0, "splines": True}),
])  # fmt: skip
def test_fast_path_equals_predict_proba(kind, params):
    X, y = _data()
    model = build_estimator(Candidate(kind, params), MASK, seed=0).fit(X, y)
    fast = CalibratedModel(model, {"method": "none"})
    assert isinstance(
        fast.compiled, CompiledTrees if kind == "gradient_boosting" else AdditiveLogistic
    )
    test, _ = _data(seed=1, n=200)
    test[::9, 0] = 17.0  # a category never seen in training
    test[::11, 3] = np.nan
    np.testing.assert_allclose(fast.raw_proba(test), model.predict_proba(test)[:, 1], atol=1e-12)
    np.testing.assert_allclose(
        fast.raw_proba(test[:1]), model.predict_proba(test[:1])[:, 1], atol=1e-12
    )


def test_ordinal_category_boosting_has_no_categorical_splits_and_a_fast_path():
    X, y = _data()
    candidate = Candidate("gradient_boosting", {"max_leaf_nodes": 8, "categories": "ordinal"})
    model = build_estimator(candidate, MASK, seed=0).fit(X, y)
    assert model.categorical_features is None
    assert model.is_categorical_ is None or not model.is_categorical_.any()
    native = build_estimator(
        Candidate("gradient_boosting", {"max_leaf_nodes": 8}), MASK, seed=0
    ).fit(X, y)
    assert native.is_categorical_.tolist() == MASK.tolist()
    fast = CalibratedModel(model, {"method": "none"})
    assert isinstance(fast.compiled, CompiledTrees)
    test, _ = _data(seed=2, n=100)
    np.testing.assert_allclose(fast.raw_proba(test), model.predict_proba(test)[:, 1], atol=1e-12)


def test_a_few_leads_get_the_same_logistic_contributions_as_many():
    # up to FEW_ROWS leads the one-hot weights come from a dict, not arrays: the same bits
    from features.model.compiled import FEW_ROWS

    X, y = _data()
    model = build_estimator(Candidate("logistic", {"C": 1.0}), MASK, seed=0).fit(X, y)
    fast = CalibratedModel(model, {"method": "none"}).compiled
    assert isinstance(fast, AdditiveLogistic)
    test, _ = _data(seed=1, n=200)
    test[::3, 0] = 17.0  # a category never seen in training
    test[::4, 3] = np.nan
    test[1, 0], test[2, 0] = np.inf, -0.0
    many = fast.contributions(test)
    assert many[:, [0, 3]].any(axis=0).all()
    for start in range(0, 200, FEW_ROWS):
        np.testing.assert_array_equal(fast.contributions(test[start : start + FEW_ROWS]),
                                      many[start : start + FEW_ROWS])  # fmt: skip
    np.testing.assert_array_equal(fast.contributions(test[5:6]), many[5:6])


def test_large_data_logistic_float32_and_sparse_is_the_same_model_and_fast_path(monkeypatch):
    # Large feature matrices train the logistic regression on float32 numbers and a sparse design
    # matrix (memory at a million leads); the model is the dense float64 one's up to rounding, and
    # it compiles the same way (checked at float64 against scikit-learn).
    import scipy.sparse

    import training.models as models

    X, y = _data()
    candidate = Candidate("logistic", {"C": 1.0, "splines": True})
    dense = models.fit_estimator(candidate, MASK, 0, X, y, groups=None)
    assert not scipy.sparse.issparse(dense[:-1].transform(X[:5]))
    monkeypatch.setattr(models, "SPARSE_CELLS", X.size - 1)
    sparse = models.fit_estimator(candidate, MASK, 0, X, y, groups=None)
    assert scipy.sparse.issparse(sparse[:-1].transform(X[:5]))
    test, _ = _data(seed=1, n=300)
    test[::9, 0] = 17.0  # a category never seen in training
    np.testing.assert_allclose(
        sparse.predict_proba(test)[:, 1], dense.predict_proba(test)[:, 1], atol=1e-4
    )
    fast = CalibratedModel(sparse, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    np.testing.assert_allclose(fast.raw_proba(test), sparse.predict_proba(test)[:, 1], atol=1e-12)


def test_many_rows_get_their_logistic_probabilities_in_parts_with_the_same_bits(monkeypatch):
    # memory: a logistic's probabilities for many rows are computed in parts; a row's sum is the
    # same whatever rows are beside it
    import features.model.compiled as compiled

    X, y = _data()
    model = build_estimator(Candidate("logistic", {"C": 1.0}), MASK, seed=0).fit(X, y)
    fast = CalibratedModel(model, {"method": "none"}).compiled
    assert isinstance(fast, AdditiveLogistic)
    whole = fast.raw_proba(X)
    monkeypatch.setattr(compiled, "PROBA_CHUNK_ROWS", 77)
    np.testing.assert_array_equal(fast.raw_proba(X), whole)
    np.testing.assert_allclose(whole, model.predict_proba(X)[:, 1], atol=1e-12)


def test_calendar_parts_can_be_categories_to_the_logistic_and_are_numbers_to_trees():
    # column 2 (a count in _data) stands for a calendar part: a month, a weekday, months to renewal
    from features.feature import CALENDAR, CATEGORY, NUMBER

    X, y = _data()
    kinds = np.array([CATEGORY, NUMBER, CALENDAR, CATEGORY], dtype=np.int8)
    as_categories = Candidate("logistic", {"C": 1.0, "calendar": "categories"})
    logistic = build_estimator(as_categories, kinds, seed=0).fit(X, y)
    columns = dict((name, list(cols)) for name, _, cols in logistic[0].transformers_)
    assert columns["categories"] == [0, 2, 3] and columns["numbers"] == [1]
    fast = CalibratedModel(logistic, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    test, _ = _data(seed=1, n=200)
    test[::7, 2] = 40.0  # a value never seen in training weighs nothing, as an unseen category
    test[::5, 2] = np.nan
    np.testing.assert_allclose(fast.raw_proba(test), logistic.predict_proba(test)[:, 1], atol=1e-12)
    np.testing.assert_allclose(
        fast.raw_proba(test[:1]), logistic.predict_proba(test[:1])[:, 1], atol=1e-12
    )
    trees = build_estimator(Candidate("gradient_boosting", {"max_leaf_nodes": 8}), kinds, seed=0)
    assert trees.fit(X, y).is_categorical_.tolist() == [True, False, False, True]
    # by default calendar parts are numbers to the logistic regression too
    fitted = build_estimator(Candidate("logistic", {"C": 1.0}), kinds, seed=0).fit(X, y)
    columns = dict((name, list(cols)) for name, _, cols in fitted[0].transformers_)
    assert columns["categories"] == [0, 3] and columns["numbers"] == [1, 2]
    with pytest.raises(ValueError, match="calendar='months'; use numbers, categories or target"):
        build_estimator(Candidate("logistic", {"calendar": "months"}), kinds, seed=0)
    with pytest.raises(ValueError, match="calendar=categories needs the column kinds"):
        build_estimator(as_categories, MASK, seed=0)  # a bool mask cannot say which are calendar


def _labels(rng, X, extra):
    """Outcomes drawn from the log odds of `_data`'s first two columns plus `extra` (a column's
    effect per row)."""
    logit = (X[:, 0] == 2) * 1.5 + np.nan_to_num(X[:, 1]) - 1 + extra
    return (rng.random(len(X)) < 1 / (1 + np.exp(-logit))).astype(int)


def _dated_data(seed=0, n=4000):
    """`_data`'s columns, then two calendar parts: a month (column 4, 1-12, each with its own
    effect on the outcome; NaN: no date) and an hour (column 5, 0-23, no effect)."""
    rng = np.random.default_rng(seed)
    X, _ = _data(seed, n)
    month = rng.integers(1, 13, n).astype(float)
    month[rng.random(n) < 0.05] = np.nan
    hour = rng.integers(0, 24, n).astype(float)
    effect = np.array([0, -0.3, -0.1, 0.35, -0.2, 0, 0.35, -0.5, -0.7, 0.1, 0, 0.3, 0.7])
    y = _labels(rng, X, effect[np.nan_to_num(month).astype(int)])
    return np.column_stack([X, month, hour]), y


def test_calendar_parts_can_be_target_encoded_one_column_each_and_compile():
    from features.feature import CALENDAR, CATEGORY, NUMBER

    X, y = _dated_data()
    kinds = np.array([CATEGORY, NUMBER, NUMBER, CATEGORY, CALENDAR, CALENDAR], dtype=np.int8)
    dated = Candidate("logistic", {"C": 1.0, "calendar": "target"})
    model = fit_estimator(dated, kinds, 0, X, y, groups=None)
    columns = {name: list(cols) for name, _, cols in model[0].transformers_}
    assert columns["categories"] == [0, 3] and columns["calendar"] == [4, 5]
    assert columns["numbers"] == [1, 2]
    # one encoded column per part: each month's cross-fitted win rate, as log odds
    encoded = model[0].named_transformers_["calendar"].transform(X[:50, 4:6])
    assert encoded.shape == (50, 2)
    test, _ = _dated_data(seed=1, n=300)
    test[::7, 4] = 13.0  # a value the encoder never saw: the mean win rate's weight
    fast = CalibratedModel(model, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    np.testing.assert_allclose(fast.raw_proba(test), model.predict_proba(test)[:, 1], atol=1e-12)
    for rows in (test[:1], test[7:8], test[np.isnan(test[:, 4])][:2]):  # a few leads: dict look-ups
        np.testing.assert_allclose(fast.raw_proba(rows), model.predict_proba(rows)[:, 1],
                                   atol=1e-12)  # fmt: skip
    # the month's effect is learned, the hour's (none in the truth) is small beside it
    contributions = fast.compiled.contributions(test)
    assert contributions[:, 4].std() > 3 * contributions[:, 5].std()
    assert untrusted_types(model) == []
    with pytest.raises(ValueError, match="calendar=target needs the column kinds"):
        build_estimator(dated, MASK, seed=0)


def test_the_compact_logistic_leaves_the_detail_columns_out_and_compiles():
    # column 2 (a count in _data, part of the true logit) stands for a detail column: a count per
    # channel or over another window, which features=compact leaves out
    from features.feature import CATEGORY, DETAIL, NUMBER

    X, y = _data()
    kinds = np.array([CATEGORY, NUMBER, DETAIL, CATEGORY], dtype=np.int8)
    compact = Candidate("logistic", {"C": 1.0, "features": "compact"})
    model = build_estimator(compact, kinds, seed=0).fit(X, y)
    columns = {name: list(cols) for name, _, cols in model[0].transformers_}
    assert columns["categories"] == [0, 3] and 2 not in columns["numbers"] + columns["missing"]
    test, _ = _data(seed=1, n=300)
    moved = test.copy()
    moved[:, 2] = moved[:, 2] * 10 + 5  # the detail column changes: the compact model does not
    np.testing.assert_array_equal(model.predict_proba(moved), model.predict_proba(test))
    fast = CalibratedModel(model, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    np.testing.assert_allclose(fast.raw_proba(test), model.predict_proba(test)[:, 1], atol=1e-12)
    assert not fast.compiled.contributions(test)[:, 2].any()
    # every other model reads a detail column as a number
    full = build_estimator(Candidate("logistic", {"C": 1.0}), kinds, seed=0).fit(X, y)
    assert 2 in dict((n, list(c)) for n, _, c in full[0].transformers_)["numbers"]
    trees = build_estimator(Candidate("gradient_boosting", {"max_leaf_nodes": 8}), kinds, seed=0)
    assert trees.fit(X, y).is_categorical_.tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="features='few'; use all or compact"):
        build_estimator(Candidate("logistic", {"features": "few"}), kinds, seed=0)


def _wide_data(seed=0, n=4000):
    """`_data`'s columns, then a capped code (column 4: the 5 commonest of column 5, 'other' = 5)
    and its wide code (column 5: 150 values, Zipf-like, each with its own effect; NaN: missing)."""
    rng = np.random.default_rng(seed)
    X, _ = _data(seed, n)
    share = 1.0 / np.arange(1, 151)
    wide = rng.choice(150, n, p=share / share.sum()).astype(float)
    wide[rng.random(n) < 0.05] = np.nan
    capped = np.where(wide < 5, wide, 5.0)
    capped[np.isnan(wide)] = np.nan
    effect = np.random.default_rng(99).normal(size=150)
    y = _labels(rng, X, np.where(np.isnan(wide), 0.0, effect[np.nan_to_num(wide).astype(int)]))
    return np.column_stack([X, capped, wide]), y


def test_target_encoding_reads_the_wide_code_in_place_of_its_capped_one_hot_and_compiles():
    from features.feature import CATEGORY, NUMBER, WIDE

    X, y = _wide_data()
    kinds = np.array([CATEGORY, NUMBER, NUMBER, CATEGORY, CATEGORY, WIDE], dtype=np.int8)
    target = Candidate("logistic", {"C": 1.0, "categories": "target"})
    model = fit_estimator(target, kinds, 0, X, y, groups=None)
    columns = {name: list(cols) for name, _, cols in model[0].transformers_}
    assert columns["categories"] == [0, 3] and columns["target"] == [5]
    assert 4 not in columns["numbers"]
    test, _ = _wide_data(seed=1, n=300)
    test[::7, 5] = 500.0  # a code the encoder never saw: the mean win rate's weight
    fast = CalibratedModel(model, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    np.testing.assert_allclose(fast.raw_proba(test), model.predict_proba(test)[:, 1], atol=1e-12)
    for rows in (test[:1], test[7:8], test[np.isnan(test[:, 5])][:2]):  # a few leads: dict look-ups
        np.testing.assert_allclose(fast.raw_proba(rows), model.predict_proba(rows)[:, 1],
                                   atol=1e-12)  # fmt: skip
    # the capped code weighs nothing in it; the wide code's weight is its column's contribution
    contributions = fast.compiled.contributions(test)
    assert not contributions[:, 4].any() and contributions[:, 5].std() > 0.1
    # the fitted encoder can be saved under the model's skops allow-list
    assert untrusted_types(model) == []
    # a wide code not right after its category's code is refused, with the fix
    with pytest.raises(ValueError, match="needs each wide code right after its category's code"):
        build_estimator(target, kinds[[0, 1, 5, 2, 3, 4]], seed=0)
    with pytest.raises(ValueError, match="categories='ordinal'; use onehot, target or wide_onehot"):
        build_estimator(Candidate("logistic", {"categories": "ordinal"}), kinds, seed=0)


def test_the_wide_one_hot_weighs_each_value_under_its_own_l2_strength_and_compiles():
    from features.feature import CATEGORY, NUMBER, WIDE

    X, y = _wide_data()
    kinds = np.array([CATEGORY, NUMBER, NUMBER, CATEGORY, CATEGORY, WIDE], dtype=np.int8)
    wide = Candidate("logistic", {"C": 0.05, "categories": "wide_onehot", "wide_C": 2.0})
    model = build_estimator(wide, kinds, seed=0)
    model.set_params(model__solver="newton-cholesky", model__tol=1e-12).fit(X, y)  # the optimum
    columns = {name: list(cols) for name, _, cols in model[0].transformers_}
    assert columns["categories"] == [0, 3] and columns["wide"] == [5]
    assert 4 not in columns["numbers"] + columns["missing"]  # the capped twin: left out
    fast = CalibratedModel(model, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    test, _ = _wide_data(seed=1, n=300)
    test[::7, 5] = 500.0  # a code the one-hot never saw: it weighs nothing
    np.testing.assert_allclose(fast.raw_proba(test), model.predict_proba(test)[:, 1], atol=1e-12)
    for rows in (test[:1], test[7:8], test[np.isnan(test[:, 5])][:2]):  # a few leads: dict look-ups
        np.testing.assert_allclose(fast.raw_proba(rows), model.predict_proba(rows)[:, 1],
                                   atol=1e-12)  # fmt: skip
    contributions = fast.compiled.contributions(test)
    assert not contributions[:, 4].any() and not contributions[::7, 5].any()
    # at the optimum a value's effect is -(its L2 strength) x the sum of (p - y) over its rows:
    # wide_C for the wide code's values, C for the other categories' (L2 penalty w^2 / 2C)
    residual = model.predict_proba(X)[:, 1] - y
    values = np.unique(X[:, 5])  # NaN last: missing is a value of its own
    effects = fast.compiled.contributions(np.column_stack([np.zeros((values.size, 5)), values]))
    sums = [residual[np.isnan(X[:, 5]) if np.isnan(v) else X[:, 5] == v].sum() for v in values]
    np.testing.assert_allclose(effects[:, 5], -2.0 * np.array(sums), atol=1e-6)
    codes = np.unique(X[~np.isnan(X[:, 0]), 0])
    effects = fast.compiled.contributions(np.column_stack([codes, np.zeros((codes.size, 5))]))
    sums = [residual[X[:, 0] == v].sum() for v in codes]
    np.testing.assert_allclose(effects[:, 0], -0.05 * np.array(sums), atol=1e-6)
    assert effects[:, 0].std() > 0.1  # the check is not one of zeros
    with pytest.raises(ValueError) as error:
        build_estimator(Candidate("logistic", {"categories": "wide_onehot"}), kinds, seed=0)
    assert str(error.value) == (
        "categories=wide_onehot takes wide_C, a positive L2 strength of its own for the wide "
        "codes' one-hot columns (got categories='wide_onehot', wide_C=None)"
    )
    for params in ({"wide_C": 0.3}, {"categories": "wide_onehot", "wide_C": 0.0}):
        with pytest.raises(ValueError, match="categories=wide_onehot takes wide_C, a positive"):
            build_estimator(Candidate("logistic", params), kinds, seed=0)
    with pytest.raises(ValueError, match="categories=wide_onehot needs each wide code right after"):
        build_estimator(wide, kinds[[0, 1, 5, 2, 3, 4]], seed=0)


def test_a_wide_one_hot_model_is_logged_to_mlflow_and_loads_as_fitted(tmp_path):
    import mlflow
    import pandas as pd

    from features.model import artifact
    from features.model.reasons import typical_lead
    from features.model.scorer import LeadScorer
    from tests.features.model.test_artifact import _example
    from tests.features.test_featurizer import fitted, training_leads

    featurizer = fitted(wide_min_count=2, max_categories=2)  # industry: a wide code
    kinds = featurizer.column_kinds_
    leads = training_leads().assign(as_of=pd.Timestamp("2024-04-01", tz="UTC"))
    touches = pd.DataFrame(columns=["lead_id", "occurred_at", "channel", "activity"])
    X = featurizer.transform(leads.drop(columns=["label"]), touches)
    y = ((leads["industry"] == "Mining") | (np.arange(len(leads)) % 3 == 0)).to_numpy(int)
    wide = Candidate("logistic", {"C": 0.1, "categories": "wide_onehot", "wide_C": 3.0})
    model = fit_estimator(wide, kinds, 0, X, y, groups=None)
    assert model[0].transformer_weights == {"wide": pytest.approx(30**0.5)}
    scorer = LeadScorer(
        featurizer,
        CalibratedModel(model, {"method": "sigmoid", "a": 1.1, "b": -0.2}),
        metadata={"name": "lead-scoring", "version": None, "seed": 0},
        baseline=typical_lead(X, kinds),
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("t", artifact_location=(tmp_path / "s").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = artifact.log_model(scorer, _example())
        loaded = artifact.load_model_scorer(info.model_uri, uri)
    finally:
        mlflow.set_tracking_uri(None)
    assert isinstance(loaded.estimator.compiled, AdditiveLogistic)
    expected = scorer.estimator.predict_proba(X)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), expected)
    wide_at = list(featurizer.get_feature_names_out()).index("industry__wide")
    assert loaded.estimator.compiled.contributions(X)[:, wide_at].std() > 0.05


@pytest.mark.parametrize("candidate", [
    Candidate("logistic", {"C": 1.0}),
    Candidate("gradient_boosting", {"max_leaf_nodes": 8, "max_iter": 30}),
])  # fmt: skip
def test_models_that_do_not_target_encode_ignore_the_wide_code(candidate):
    from features.feature import CATEGORY, NUMBER, WIDE

    X, y = _wide_data()
    kinds = np.array([CATEGORY, NUMBER, NUMBER, CATEGORY, CATEGORY, WIDE], dtype=np.int8)
    model = fit_estimator(candidate, kinds, 0, X, y, groups=None)
    test, _ = _wide_data(seed=1, n=300)
    moved = test.copy()
    moved[:, 5] = np.random.default_rng(3).integers(0, 150, len(test))
    np.testing.assert_array_equal(model.predict_proba(moved), model.predict_proba(test))
    # the same model as without the column
    without = fit_estimator(candidate, kinds[:5], 0, X[:, :5], y, groups=None)
    np.testing.assert_allclose(
        model.predict_proba(test), without.predict_proba(test[:, :5]), atol=1e-12
    )
