"""The compiled (numpy) path for additive models gives scikit-learn's probabilities and reasons."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from serving.fast_model import AdditiveLogistic, accelerate
from serving.schemas import ScoreRequest
from tests.serving.conftest import demo_records


@pytest.fixture(scope="module")
def logistic_scorer(trained_model):
    """The session model's featurizer with a spline logistic regression fitted on the demo leads."""
    from features.contract import DataConfig, load_lead_data
    from features.pyfunc_model import load_model_scorer
    from features.scoring import CalibratedModel, LeadScorer, typical_lead
    from training.data import build_examples
    from training.models import Candidate, build_estimator

    trained_model.client()
    hgb = load_model_scorer(f"models:/{trained_model.name}/{trained_model.versions[0]}")
    demo = trained_model.demo_dir
    data = load_lead_data(DataConfig(
        leads=demo / "leads.parquet", touchpoints=demo / "touchpoints.parquet", outcomes=demo / "outcomes.parquet",
    ))
    examples = build_examples(data, hgb.featurizer.config)
    X = hgb.featurizer.transform(examples.frame, data.touchpoints)
    mask = hgb.featurizer.categorical_mask_
    pipeline = build_estimator(Candidate("logistic", {"C": 1.0, "splines": True}), mask, seed=0)
    pipeline.fit(X, examples.labels)
    calibration = {"method": "isotonic", "x": [0.0, 0.2, 0.5, 1.0], "y": [0.0, 0.1, 0.6, 1.0]}
    scorer = LeadScorer(hgb.featurizer, CalibratedModel(pipeline, calibration), policy=hgb.policy,
                        baseline=typical_lead(X, mask))
    return scorer, hgb


def records(trained_model, n):
    return ScoreRequest.model_validate({"leads": demo_records(trained_model, n)}).model_dump()["leads"]


def test_logistic_model_is_compiled_and_scores_the_same(logistic_scorer, trained_model):
    scorer, _ = logistic_scorer
    reference = copy.deepcopy(scorer)
    assert accelerate(scorer) is True
    leads = records(trained_model, 200)
    fast, slow = scorer.score_records(leads), reference.score_records(leads)
    assert max(abs(a["probability"] - b["probability"]) for a, b in zip(fast, slow, strict=True)) < 1e-12
    assert [a["score"] for a in fast] == [b["score"] for b in slow]
    assert [a["decision"] for a in fast] == [b["decision"] for b in slow]
    for a, b in zip(fast, slow, strict=True):
        for mine, theirs in ((a["reasons_for"], b["reasons_for"]), (a["reasons_against"], b["reasons_against"])):
            assert [r["effect"] for r in mine] == pytest.approx([r["effect"] for r in theirs], abs=0.1)
    assert len({round(a["probability"], 4) for a in fast}) > 20


def test_contributions_add_up_to_the_pipeline_logit(logistic_scorer, trained_model):
    scorer, _ = logistic_scorer
    pipeline = scorer.estimator.model
    compiled = AdditiveLogistic(pipeline, len(scorer.feature_names))
    X = scorer.featurizer.transform_records(records(trained_model, 50))
    logit = compiled.intercept + compiled.contributions(X).sum(axis=1)
    assert np.allclose(logit, pipeline.decision_function(X), atol=1e-10, rtol=0)


def test_gradient_boosting_keeps_the_scikit_learn_path(logistic_scorer):
    _, hgb = logistic_scorer
    estimator, method = hgb.estimator, hgb._predict_explained
    assert accelerate(hgb) is False
    assert hgb.estimator is estimator and hgb._predict_explained == method
