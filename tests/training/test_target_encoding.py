"""Target encoding cross-fitted by lead: a lead's label never enters the encodings its own
snapshots are learned from, wherever training fits a target-encoding model.

A lead gives training several snapshots with the same label. Cross-fitted by row, the other
snapshots of a lead sit in the folds that encode each of them, so a value seen by few leads is
encoded with the lead's own label: a calendar part or a category of many values with no effect
at all got a clearly positive weight (0.48-0.64 on the data below, C=0.1, 150 values)."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn

from features.feature import CALENDAR, CATEGORY, NUMBER, WIDE
from training.models import Candidate, fit_estimator

DATED = Candidate("logistic", {"C": 0.1, "calendar": "target"})
WIDE_TARGET = Candidate("logistic", {"C": 0.1, "categories": "target"})


def _snapshots(seed: int = 0, leads: int = 1500, per_lead: int = 4, values: int = 150):
    """`per_lead` snapshots of each lead, one label per lead. Columns: a category code and a
    number (per snapshot, no effect), a month (1-12, one per lead, each with its own effect),
    a part of `values` values (one per lead, no effect: the labels ignore it), and, for the
    wide code, the no-effect part's 5 commonest values with the rest as 'other' (5)."""
    rng = np.random.default_rng(seed)
    rows = leads * per_lead
    lead_ids = np.repeat(np.array([f"lead-{i:05d}" for i in range(leads)]), per_lead)
    month = rng.integers(1, 13, leads)
    effect = np.array([0, -0.6, -0.2, 0.7, -0.4, 0, 0.7, -1.0, -1.4, 0.2, 0, 0.6, 1.4])
    won = rng.random(leads) < 1 / (1 + np.exp(1.0 - effect[month]))
    noise = rng.integers(0, values, leads).astype(float)
    X = np.column_stack([
        rng.integers(0, 4, rows).astype(float),
        rng.normal(size=rows),
        np.repeat(month, per_lead).astype(float),
        np.repeat(noise, per_lead),
        np.repeat(np.minimum(noise, 5.0), per_lead),
    ])  # fmt: skip
    return X, np.repeat(won, per_lead).astype(int), lead_ids


DATED_KINDS = np.array([CATEGORY, NUMBER, CALENDAR, CALENDAR, NUMBER], dtype=np.int8)
# the wide code (column 3) right after its capped twin (column 4 moved before it)
WIDE_ORDER = [0, 1, 2, 4, 3]
WIDE_KINDS = np.array([CATEGORY, NUMBER, NUMBER, CATEGORY, WIDE], dtype=np.int8)


def _weights(model, part: str) -> np.ndarray:
    """The regression's weights of the columns `part` of the ColumnTransformer gives it."""
    return model[-1].coef_[0, model[0].output_indices_[part]]


def test_a_many_valued_calendar_part_without_effect_gets_no_weight_when_fitted_by_lead():
    X, y, leads = _snapshots()
    model = fit_estimator(DATED, DATED_KINDS, 0, X, y, groups=leads)
    month, noise = _weights(model, "calendar")
    # cross-fitted by row the no-effect part's weight was 0.60 here (0.48-0.64 over 8 seeds);
    # by lead it is noise around 0 (-0.08..0.13 over the same seeds)
    assert abs(noise) < 0.2, noise
    assert month > 0.3, month  # the month's effect is still learned


def test_a_many_valued_category_without_effect_gets_no_weight_when_fitted_by_lead():
    X, y, leads = _snapshots()
    model = fit_estimator(WIDE_TARGET, WIDE_KINDS, 0, X[:, WIDE_ORDER], y, groups=leads)
    (noise,) = _weights(model, "target")
    assert abs(noise) < 0.2, noise  # by row: 0.60 (0.48-0.64 over 8 seeds)


@pytest.mark.parametrize(
    "candidate,kinds,order,part",
    [(DATED, DATED_KINDS, slice(None), "calendar"), (WIDE_TARGET, WIDE_KINDS, WIDE_ORDER, "target")],
)  # fmt: skip
def test_the_encoders_cross_fit_with_each_lead_on_one_side_of_every_fold(
    candidate, kinds, order, part
):
    import skops.io as sio

    from features.model.artifact import TRUSTED_TYPES, untrusted_types
    from features.model.calibration import CalibratedModel
    from features.model.compiled import AdditiveLogistic

    X, y, leads = _snapshots(seed=1, leads=400)
    X = X[:, order]
    model = fit_estimator(candidate, kinds, 0, X, y, groups=leads)
    encoder = model[0].named_transformers_[part][0]
    columns = dict((name, cols) for name, _, cols in model[0].transformers_)[part]
    folds = list(encoder.cv.split(X[:, columns], y, leads))
    assert len(folds) == 5
    # every row encoded once, by a fold that learned nothing from its lead's snapshots
    np.testing.assert_array_equal(np.sort(np.concatenate([t for _, t in folds])), np.arange(len(y)))
    shared = {str(lead) for fit, held in folds for lead in np.intersect1d(leads[fit], leads[held])}
    assert not shared, f"{len(shared)} of 400 leads on both sides of a fold"
    # the model saves under the artifact's allow-list, loads as fitted and compiles as before
    assert untrusted_types(model) == []
    loaded = sio.loads(sio.dumps(model), trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    fast = CalibratedModel(loaded, {"method": "none"})
    assert isinstance(fast.compiled, AdditiveLogistic)
    np.testing.assert_allclose(fast.raw_proba(X), model.predict_proba(X)[:, 1], atol=1e-12)


def test_one_snapshot_per_lead_cross_fits_by_row_as_before():
    from sklearn.model_selection import StratifiedKFold

    X, y, _ = _snapshots(leads=800, per_lead=1)
    leads = np.array([f"lead-{i}" for i in range(len(y))])
    with_leads = fit_estimator(DATED, DATED_KINDS, 0, X, y, groups=leads)
    without = fit_estimator(DATED, DATED_KINDS, 0, X, y, groups=None)
    encoder = with_leads[0].named_transformers_["calendar"][0]
    assert isinstance(encoder.cv, StratifiedKFold) and encoder.cv.n_splits == 5
    np.testing.assert_array_equal(with_leads.predict_proba(X), without.predict_proba(X))


@pytest.mark.parametrize("won_leads,folds", [(3, 3), (1, None)])
def test_an_outcome_of_fewer_leads_than_folds_does_not_break_the_fit(won_leads, folds):
    """Few won leads: as many folds as there are (each still learns from a win); one won lead:
    no fold of leads could encode its snapshots from a win, so by row (as before)."""
    from sklearn.model_selection import StratifiedKFold

    X, y, leads = _snapshots(seed=2, leads=60)
    won = np.unique(leads[y == 1])
    y = np.where(np.isin(leads, won[:won_leads]), 1, 0)
    model = fit_estimator(DATED, DATED_KINDS, 0, X, y, groups=leads)
    assert np.isfinite(model.predict_proba(X)).all()
    encoder = model[0].named_transformers_["calendar"][0]
    if folds is None:
        assert isinstance(encoder.cv, StratifiedKFold)
        return
    splits = list(encoder.cv.split(X[:, 2:4], y, leads))
    assert len(splits) == folds
    for fit, held in splits:
        assert y[fit].any() and not np.intersect1d(leads[fit], leads[held]).size


def test_the_search_fits_its_folds_by_lead_in_worker_threads_and_leaves_the_config_alone(
    monkeypatch,
):
    """Metadata routing is a thread-local setting: each fold's fit turns it on in the thread
    that fits (a fold fitted with its leads but without routing fails), and no thread keeps it."""
    from training import search

    X, y, leads = _snapshots(seed=3, leads=500)
    seen: list[tuple[int, np.ndarray]] = []
    real = search.fit_estimator

    def fit(*args, **kwargs):
        seen.append((len(args[4]), kwargs["groups"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "fit_estimator", fit)
    selection = search.search_models(X, y, leads, DATED_KINDS, [DATED], 3, seed=0, workers=2)
    assert not sklearn.get_config()["enable_metadata_routing"]
    folds = search.make_folds(y, leads, 3, 0)
    assert sorted(n for n, _ in seen) == sorted(len(fit) for fit, _ in folds)
    for fit_rows, _ in folds:
        assert any(np.array_equal(groups, leads[fit_rows]) for _, groups in seen)
    assert np.isfinite(selection.oof_raw).all()


@pytest.mark.slow  # a whole fit_scorer on 3,000 demo leads
def test_training_fits_the_chosen_model_and_its_refit_on_their_own_rows_leads(
    demo_dir, monkeypatch
):
    """The calendar candidate chosen on demo leads (weekday, hour and month of creation): the
    final fit learns from the training rows' leads, the refit from training's then the holdout's,
    each encoder cross-fitting by lead; every fit of the run (folds, sub-scores) gets the leads
    of the rows it learns from."""
    from sklearn.model_selection import GroupKFold

    from tests.training.conftest import demo_config
    from training import search, subscores, train

    calls: list[tuple[str, int, np.ndarray | None]] = []

    def recording(module, where: str) -> None:
        real = module.fit_estimator

        def fit(*args, **kwargs):
            calls.append((where, len(args[4]), kwargs["groups"]))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, "fit_estimator", fit)

    for module, where in ((search, "search"), (train, "train"), (subscores, "subscores")):
        recording(module, where)
    dated = Candidate("logistic", {"C": 0.1, "splines": False, "calendar": "target"})
    monkeypatch.setattr(train, "candidates", lambda *args, **kwargs: [dated])
    config = demo_config(demo_dir)
    config.training.refit = True
    fitted = train.fit_scorer(train.load_lead_data(config.data), config, seed=0, threads=1)
    lead_ids = fitted.examples.frame["lead_id"].to_numpy()
    own = lead_ids[fitted.train_rows]
    assert len(np.unique(own)) < len(own)  # snapshots: several rows per lead
    final, refit = [groups for where, _, groups in calls if where == "train"]
    np.testing.assert_array_equal(final, own)
    np.testing.assert_array_equal(refit, np.concatenate([own, lead_ids[fitted.holdout_rows]]))
    for where, rows, groups in calls:
        assert groups is not None and len(groups) == rows, where
    assert {where for where, _, _ in calls} == {"search", "train", "subscores"}
    assert fitted.final_estimator is not None
    for model in (fitted.scorer.estimator.model, fitted.final_estimator.model):
        assert isinstance(model[0].named_transformers_["calendar"][0].cv, GroupKFold)
