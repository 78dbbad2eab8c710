"""The compiled (numpy) model paths give scikit-learn's probabilities and reasons on served leads."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from features.model.compiled import AdditiveLogistic, CompiledTrees
from serving.schemas import ScoreRequest
from tests.serving.conftest import demo_records


@pytest.fixture(scope="module")
def logistic_scorer(trained_model):
    """The session model's featurizer with a spline logistic regression fitted on the demo leads,
    compiled and not compiled (the scikit-learn reference)."""
    from features.data.config import DataConfig
    from features.data.loading import load_lead_data
    from features.model.artifact import load_model_scorer
    from features.model.calibration import CalibratedModel
    from features.model.reasons import typical_lead
    from features.model.scorer import LeadScorer
    from training.data import build_examples
    from training.models import Candidate, build_estimator

    trained_model.client()
    hgb = load_model_scorer(f"models:/{trained_model.name}/{trained_model.versions[0]}")
    demo = trained_model.demo_dir
    data = load_lead_data(
        DataConfig(
            leads=demo / "leads.parquet",
            touchpoints=demo / "touchpoints.parquet",
            outcomes=demo / "outcomes.parquet",
        )
    )
    examples = build_examples(data, hgb.featurizer.config)
    X = hgb.featurizer.transform(examples.frame, data.touchpoints)
    mask = hgb.featurizer.categorical_mask_
    pipeline = build_estimator(Candidate("logistic", {"C": 1.0, "splines": True}), mask, seed=0)
    pipeline.fit(X, examples.labels)
    calibration = {"method": "isotonic", "x": [0.0, 0.2, 0.5, 1.0], "y": [0.0, 0.1, 0.6, 1.0]}

    def scorer(featurizer, model, calibration, compile):
        return LeadScorer(
            featurizer,
            CalibratedModel(model, calibration, compile=compile),
            policy=hgb.policy,
            baseline=typical_lead(X, mask),
        )

    return {
        "logistic": scorer(hgb.featurizer, pipeline, calibration, True),
        "logistic_sklearn": scorer(hgb.featurizer, pipeline, calibration, False),
        "hgb": hgb,
        "hgb_sklearn": LeadScorer(
            hgb.featurizer,
            CalibratedModel(hgb.estimator.model, hgb.estimator.calibration, compile=False),
            policy=hgb.policy,
            baseline=hgb.baseline,
        ),
    }


def records(trained_model, n):
    return ScoreRequest.model_validate({"leads": demo_records(trained_model, n)}).model_dump()[
        "leads"
    ]


def _same_scores(fast, slow, probability_tolerance):
    assert (
        max(abs(a["probability"] - b["probability"]) for a, b in zip(fast, slow, strict=True))
        <= probability_tolerance
    )
    assert [a["score"] for a in fast] == [b["score"] for b in slow]
    assert [a["decision"] for a in fast] == [b["decision"] for b in slow]
    for a, b in zip(fast, slow, strict=True):
        for mine, theirs in (
            (a["reasons_for"], b["reasons_for"]),
            (a["reasons_against"], b["reasons_against"]),
        ):
            assert [r["effect"] for r in mine] == pytest.approx(
                [r["effect"] for r in theirs], abs=0.1
            )
    assert len({round(a["probability"], 4) for a in fast}) > 20


def test_logistic_model_is_compiled_and_scores_the_same(logistic_scorer, trained_model):
    fast, slow = logistic_scorer["logistic"], logistic_scorer["logistic_sklearn"]
    assert isinstance(fast.estimator.compiled, AdditiveLogistic)
    assert slow.estimator.compiled is None
    leads = records(trained_model, 200)
    _same_scores(fast.score_records(leads), slow.score_records(leads), 1e-12)
    assert any(a["reasons_for"] for a in fast.score_records(leads))


def test_gradient_boosting_is_compiled_and_scores_the_same(logistic_scorer, trained_model):
    fast, slow = logistic_scorer["hgb"], logistic_scorer["hgb_sklearn"]
    assert isinstance(fast.estimator.compiled, CompiledTrees)
    leads = records(trained_model, 40)
    one_by_one = [fast.score_records([r])[0] for r in leads]  # few variant rows: numpy trees
    _same_scores(one_by_one, slow.score_records(leads), 0.0)
    many = records(trained_model, 200)
    _same_scores(fast.score_records(many), slow.score_records(many), 0.0)


def test_contributions_add_up_to_the_pipeline_logit(logistic_scorer, trained_model):
    scorer = logistic_scorer["logistic"]
    pipeline = scorer.estimator.model
    compiled = AdditiveLogistic.from_pipeline(pipeline, len(scorer.feature_names))
    X = scorer.featurizer.transform_records(records(trained_model, 50))
    logit = compiled.intercept + compiled.contributions(X).sum(axis=1)
    assert np.allclose(logit, pipeline.decision_function(X), atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", ["logistic", "hgb"])
def test_many_leads_get_the_facts_and_decisions_of_the_lead_by_lead_path(
    logistic_scorer, trained_model, monkeypatch, kind
):
    import features.model.scorer as scoring

    scorer = logistic_scorer[kind]
    leads = records(trained_model, 120)
    for i, lead in enumerate(leads):
        if i % 7 == 0:
            lead["attributes"]["Do Not Email"] = i % 14 == 0
        if i % 5 == 0:  # a rule touchpoint before, at or after the scoring moment
            moment = lead["as_of"] + (i % 3 - 1) * timedelta(hours=1)
            activity = "demo_request" if i % 10 == 0 else "unsubscribe"
            lead["touchpoints"].append(
                {
                    "occurred_at": moment,
                    "channel": "email",
                    "activity": activity,
                    "campaign": None,
                    "value": None,
                }
            )
    fast = scorer.score_columns(leads)
    monkeypatch.setattr(scoring, "FEW_RECORDS", 10**9)  # every lead through lead_facts + decide
    reference = scorer.score_columns(leads)
    assert fast == reference
    assert set(fast["decision"]) >= {"sales", "disqualify"}
    assert sum(r is not None for r in fast["hard_rule"]) >= 20


def _varied(trained_model, n):
    """`n` demo leads with what a request can hold: no touchpoints, few attributes, unknown
    categories, no creation date, rule touchpoints (before and after the scoring moment)."""
    leads = records(trained_model, n)
    for i, lead in enumerate(leads):
        kind = i % 8
        if kind == 1:
            lead["touchpoints"] = []
        elif kind == 2:
            lead["attributes"] = dict(list(lead["attributes"].items())[::3])
        elif kind == 3:
            lead["created_at"] = None
        elif kind == 4:
            lead["attributes"] = {k: "Something never seen" for k in lead["attributes"]}
        elif kind == 5:
            lead["attributes"]["Do Not Email"] = True
        elif kind in (6, 7):
            moment = lead["as_of"] + (kind * 2 - 13) * timedelta(hours=1)
            lead["touchpoints"].append(
                {"occurred_at": moment, "channel": "email", "activity": "demo_request",
                 "campaign": "Spring", "value": 3.0}
            )  # fmt: skip
    return leads


def _exactly(columns):
    """The columns as text that tells every float bit (NaN equal to NaN, -0.0 not to 0.0)."""
    return {name: repr(values) for name, values in columns.items()}


@pytest.mark.parametrize("kind", ["logistic", "hgb"])
def test_one_lead_and_a_few_score_exactly_as_a_thousand_do(logistic_scorer, trained_model, kind):
    """The API's one-lead and few-lead paths (per-lead features, facts and decisions, small
    arrays through every model part) give every column of the batch path bit for bit."""
    from features.model.scorer import LeadScorer
    from features.policy.rules import Policy

    hgb = logistic_scorer["hgb"]
    assert hgb.value is not None and hgb.timing is not None and hgb.subscores is not None
    model = logistic_scorer[kind]
    scorer = LeadScorer(
        model.featurizer, model.estimator, policy=model.policy, baseline=model.baseline,
        value=hgb.value, timing=hgb.timing, subscores=hgb.subscores, confidence=hgb.confidence,
    )  # fmt: skip
    leads = _varied(trained_model, 1000)
    policy = Policy(exploration_rate=0.2)
    together = scorer.score_columns(leads, policy=policy)
    assert set(together["decision"]) >= {"sales", "nurture", "disqualify"}
    assert any(together["exploration"]) and any(r is not None for r in together["hard_rule"])
    assert any(together["amount_reasons"]) and any(together["reasons_against"])
    for size in (1, 8):
        apart: dict[str, list] = {}
        for start in range(0, 240, size):
            for name, values in scorer.score_columns(leads[start : start + size], policy).items():
                apart.setdefault(name, []).extend(values)
        head = {name: values[:240] for name, values in together.items()}
        assert _exactly(apart) == _exactly(head)
