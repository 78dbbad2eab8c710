"""Training on demo data end to end: MLflow run, registry aliases, the gate both ways,
reproducibility, and the logged pyfunc scoring raw leads."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.config import FeatureConfig
from features.model.compiled import AdditiveLogistic
from tests.training.conftest import demo_config
from training.train import train

WEAK = ["industry", "company_size", "country", "region", "seniority", "email_type"]


@pytest.fixture(scope="module")
def trained(demo_dir, tmp_path_factory):
    """Weak model (no firmographics), strong model, weak model again, in one registry."""
    import os

    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        weak = demo_config(demo_dir, exclude=WEAK)
        strong = demo_config(demo_dir)
        results = [train(weak, seed=3), train(strong, seed=3), train(weak, seed=3)]
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri, results
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def test_gate_promotes_a_better_model_and_keeps_a_worse_one_challenger(trained):
    uri, (weak, strong, weak_again) = trained
    assert weak.gate.promote and "no champion yet" in weak.gate.reason
    assert strong.gate.promote, strong.gate.reason
    assert strong.metrics["roc_auc"] > weak.metrics["roc_auc"] + 0.005
    assert not weak_again.gate.promote
    assert weak_again.gate.champion_version == strong.version
    client = MlflowClient(uri)
    assert (
        str(client.get_model_version_by_alias("lead-scoring", "champion").version) == strong.version
    )
    assert (
        str(client.get_model_version_by_alias("lead-scoring", "challenger").version)
        == weak_again.version
    )
    run = client.get_run(weak_again.run_id)
    assert run.data.tags["promotion"] == "challenger"
    # Same data and seed: the same holdout, so the champion scores what it scored in its own run.
    assert run.data.metrics["champion_roc_auc"] == pytest.approx(
        strong.metrics["roc_auc"], abs=1e-9
    )
    assert "holdout_roc_auc" in run.data.metrics and "champion_ece" in run.data.metrics


def test_same_data_and_seed_give_the_same_metrics(trained):
    _, (weak, _, weak_again) = trained
    assert pd.Series(weak.metrics).equals(pd.Series(weak_again.metrics))  # NaN == NaN here


def test_run_has_the_evaluation_artifacts(trained):
    uri, (_, strong, _) = trained
    client = MlflowClient(uri)
    names = {a.path for a in client.list_artifacts(strong.run_id)}
    names |= {a.path for a in client.list_artifacts(strong.run_id, "evaluation")}
    names |= {a.path for a in client.list_artifacts(strong.run_id, "charts")}
    names |= {a.path for a in client.list_artifacts(strong.run_id, "data")}
    for expected in ("charts/roc.png", "charts/pr.png", "charts/calibration.png", "charts/gains.png",
                     "evaluation/thresholds.csv", "evaluation/gains.csv", "evaluation/grades.csv",
                     "evaluation/permutation_importance.csv", "data/fingerprints.json",
                     "data/validation_report.txt", "promotion.json", "leakage.json"):  # fmt: skip
        assert expected in names, expected
    thresholds = pd.read_csv(client.download_artifacts(strong.run_id, "evaluation/thresholds.csv"))
    assert len(thresholds) == 101 and thresholds.loc[0, "share_to_sales"] == pytest.approx(1.0)
    fingerprints = json.loads(
        open(client.download_artifacts(strong.run_id, "data/fingerprints.json")).read()
    )
    assert fingerprints["tables"]["leads"]["rows"] == 3000


def test_run_logs_calibration_at_each_age_band(trained):
    uri, (_, strong, _) = trained
    client = MlflowClient(uri)
    path = client.download_artifacts(strong.run_id, "evaluation/calibration_by_age.csv")
    table = pd.read_csv(path).set_index("age_band")
    scorer = mlflow.pyfunc.load_model(strong.model_uri).unwrap_python_model().scorer
    ages = FeatureConfig().snapshot_ages_days
    # every holdout snapshot in exactly one band, each band holding its snapshot ages
    assert table["snapshots"].sum() == len(scorer.holdout) == strong.metrics["leads"]
    assert sorted(float(a) for t in table["ages_days"] for a in str(t).split()) == sorted(ages)
    metrics = client.get_run(strong.run_id).data.metrics
    for band, row in table.iterrows():
        key = band.replace("-", "_").replace("+", "_plus")
        assert metrics[f"holdout_ece_age_{key}"] == pytest.approx(row["ece"])
        assert row["ece"] < 0.1, band
    assert metrics["holdout_ece_age_worst"] == pytest.approx(table["ece"].max())
    # the bands' snapshots weighted together are the holdout's win rate
    assert (table["wins"].sum() / table["snapshots"].sum()) == pytest.approx(
        strong.metrics["win_rate"]
    )


def test_holdout_is_calibrated_and_time_based(trained):
    _, (_, strong, _) = trained
    assert strong.metrics["ece"] < 0.05
    scorer = mlflow.pyfunc.load_model(strong.model_uri).unwrap_python_model().scorer
    assert scorer.metadata["holdout"].startswith("time-based")
    assert scorer.holdout["as_of"].notna().all()
    assert scorer.metadata["holdout_weeks"] > 1


def test_pyfunc_scores_raw_leads_with_json_touchpoints(trained, demo_dir):
    _, (_, strong, _) = trained
    model = mlflow.pyfunc.load_model(strong.model_uri)
    leads = pd.read_parquet(demo_dir / "leads.parquet").head(5)
    touches = pd.read_parquet(demo_dir / "touchpoints.parquet")
    as_of = "2024-06-01T00:00:00Z"
    frame = leads.copy()
    frame["created_at"] = frame["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame["as_of"] = as_of
    texts = []
    for lead_id in frame["lead_id"]:
        rows = touches[touches["lead_id"] == lead_id]
        texts.append(json.dumps([
            {"occurred_at": t.occurred_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "channel": t.channel,
             "activity": t.activity, "campaign": None, "value": None} for t in rows.itertuples()
        ]))  # fmt: skip
    frame["touchpoints"] = texts
    for column in frame.columns:  # what a JSON client sends: text, not Arrow dictionaries
        if frame[column].dtype.kind not in "f":
            frame[column] = [None if pd.isna(v) else str(v) for v in frame[column]]
    out = model.predict(frame)
    assert list(out.columns[:5]) == ["probability", "score", "grade", "decision", "lead_id"]
    assert out["probability"].between(0, 1).all()
    assert (out["score"] == np.rint(100 * out["probability"])).all()

    scorer = model.unwrap_python_model().scorer
    records = [
        {"lead_id": r["lead_id"], "attributes": {k: r[k] for k in leads.columns if k not in ("lead_id", "created_at")},
         "created_at": r["created_at"], "as_of": as_of, "touchpoints": json.loads(t)}
        for r, t in zip(frame.to_dict("records"), texts)
    ]  # fmt: skip
    fast = scorer.score_records(records)
    assert [r["probability"] for r in fast] == pytest.approx(out["probability"].tolist(), abs=1e-9)
    for row in fast:
        for reason in row["reasons_for"]:
            assert reason["effect"] > 0 and reason["text"]
        for reason in row["reasons_against"]:
            assert reason["effect"] < 0


def test_fast_linear_path_equals_the_scikit_learn_pipeline(trained, demo_dir):
    _, (_, strong, _) = trained
    scorer = mlflow.pyfunc.load_model(strong.model_uri).unwrap_python_model().scorer
    leads = pd.read_parquet(demo_dir / "leads.parquet")
    touches = pd.read_parquet(demo_dir / "touchpoints.parquet")
    X = scorer.features(leads, touches, as_of="2024-03-01T00:00:00Z")
    X[::7, 0] = 999.0  # a category code never seen in training
    model = scorer.estimator.model
    if not hasattr(model, "named_steps"):
        pytest.skip("the selected model is not the logistic pipeline")
    assert isinstance(scorer.estimator.compiled, AdditiveLogistic)
    np.testing.assert_allclose(
        scorer.estimator.raw_proba(X), model.predict_proba(X)[:, 1], atol=1e-12
    )


def test_the_creation_dates_calendar_parts_are_saved_and_typical_values_are_real(trained):
    # the saved featurizer knows its calendar parts, and the reasons' baseline of each is a value
    # leads have (`typical_lead` with the column kinds: the commonest)
    from features.feature import CALENDAR

    _, (_, strong, _) = trained
    scorer = mlflow.pyfunc.load_model(strong.model_uri).unwrap_python_model().scorer
    names = list(scorer.featurizer.get_feature_names_out())
    calendar = np.flatnonzero(scorer.featurizer.column_kinds_ == CALENDAR)
    assert [names[j] for j in calendar] == [
        "created_at__day_of_week", "created_at__hour", "created_at__month"
    ]  # fmt: skip
    for j in calendar:
        typical = scorer.baseline[j]
        assert typical == int(typical), names[j]


def test_served_model_is_refitted_and_the_gate_model_reproduces_the_holdout(trained):
    """Small data: the served estimator learned training + holdout; the evaluation model, kept
    beside it for the gate, is the one whose holdout scores the run reports."""
    from features.model.artifact import load_model_scorer

    uri, (_, strong, _) = trained
    served = load_model_scorer(strong.model_uri)
    evaluated = load_model_scorer(strong.model_uri, evaluation=True)
    params = MlflowClient(uri).get_run(strong.run_id).data.params
    assert served.metadata["refit"] is True and params["refit_with_holdout"] == "True"
    assert served.metadata["examples_fitted"] == int(params["training_examples"]) + int(
        params["holdout_examples"]
    )
    assert served.estimator.model is not evaluated.estimator.model
    # the evaluation model gives exactly the holdout probabilities shipped in the model
    frame, touches, holdout = _holdout_inputs(strong, served)
    np.testing.assert_allclose(
        evaluated.predict_proba(frame, touches), holdout["probability"].to_numpy(), atol=1e-12
    )
    # the refit learned the holdout too, so it scores those leads differently
    assert not np.allclose(served.predict_proba(frame, touches), holdout["probability"].to_numpy())


def _holdout_inputs(result, scorer):
    """The held-out examples of a demo run, rebuilt from its own config and split."""
    from features.config import FeatureConfig
    from features.data.config import DataConfig
    from features.data.loading import load_lead_data
    from training.data import build_examples, split_holdout, subsample

    config = DataConfig.model_validate(scorer.metadata["data_config"])
    data = load_lead_data(config)
    features = FeatureConfig()
    examples = build_examples(data, features)
    settle = max(features.snapshot_ages_days) + features.horizon_days
    split = split_holdout(examples, 0.2, scorer.metadata["seed"], settle)
    rows = subsample(split.holdout, examples.labels, 200_000, scorer.metadata["seed"])
    return examples.frame.iloc[rows], data.touchpoints, scorer.holdout


def test_refit_off_serves_the_evaluation_model(demo_dir, tracking):
    from features.model.artifact import load_model_scorer

    config = demo_config(demo_dir)
    config.training.refit = False
    result = train(config, seed=3)
    served = load_model_scorer(result.model_uri)
    params = MlflowClient(tracking).get_run(result.run_id).data.params
    assert served.metadata["refit"] is False and params["refit_with_holdout"] == "False"
    assert served.metadata["examples_fitted"] == int(params["training_examples"])
    evaluated = load_model_scorer(result.model_uri, evaluation=True)
    frame, touches, holdout = _holdout_inputs(result, served)
    np.testing.assert_allclose(
        served.predict_proba(frame, touches), holdout["probability"].to_numpy(), atol=1e-12
    )
    np.testing.assert_allclose(
        evaluated.predict_proba(frame, touches), holdout["probability"].to_numpy(), atol=1e-12
    )


def test_the_shipped_policy_grades_the_holdout_by_share(trained):
    """Probability bands left most demo leads D and almost none A (1,488 of 2,437 D, 12 A):
    the model ships bands that give each grade about a quarter of its held-out leads."""
    from collections import Counter

    from features.model.artifact import load_model_scorer
    from features.policy.rules import apply_policy, score_from_probability

    uri, (_, strong, _) = trained
    mlflow.set_tracking_uri(uri)  # a test using `tracking` may have run since the fixture set it
    mlflow.set_registry_uri(uri)
    scorer = load_model_scorer(strong.model_uri)
    scores = score_from_probability(scorer.holdout["probability"])
    grades, _, _ = apply_policy(scores, None, scorer.policy)
    counts = Counter(grades.tolist())
    for grade in "ABCD":  # about a quarter each: whole scores tie, so a cut cannot be exact
        assert 0.10 <= counts[grade] / len(grades) <= 0.40, counts
    bands = scorer.policy.grades
    assert bands.by == "share" and bands.A > bands.B > bands.C
    assert bands.basis == f"{len(scorer.holdout):,} held-out leads at training"
    client = MlflowClient(uri)
    table = pd.read_csv(client.download_artifacts(strong.run_id, "evaluation/grades.csv"))
    assert table.set_index("grade")["leads"].to_dict() == {g: counts[g] for g in "ABCD"}
