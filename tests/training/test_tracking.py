"""The MLflow run spans the whole training: reading the files, features, the search (each
candidate a nested run with its CV scores and duration), evaluation and logging."""

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.training.conftest import demo_config
from training.train import train


def test_the_run_spans_the_training_and_nests_each_candidate(demo_dir, tracking):
    steps = []

    def step(text):
        active = mlflow.active_run()
        steps.append((text, active.info.run_id if active else None))

    result = train(demo_config(demo_dir), seed=1, step=step)
    assert steps[0][0] == "reading and validating the lead files"
    assert {run_id for _, run_id in steps} == {result.run_id}  # every step inside the run

    client = MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.metrics["training_seconds"] == pytest.approx(result.seconds, abs=1e-3)
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    search = pd.read_csv(client.download_artifacts(result.run_id, "evaluation/search.csv"))
    assert sorted(c.info.run_name for c in children) == sorted(search["candidate"])
    for child in children:
        row = search[search["candidate"] == child.info.run_name].iloc[0]
        assert child.info.status == "FINISHED"
        assert run.info.start_time <= child.info.start_time <= child.info.end_time
        assert child.info.end_time <= run.info.end_time
        assert child.data.metrics["roc_auc"] == pytest.approx(row["roc_auc"])
        assert child.data.metrics["calibrated_log_loss"] == pytest.approx(
            row["calibrated_log_loss"]
        )
        assert child.data.metrics["seconds"] == pytest.approx(row["seconds"])
        assert child.data.params["kind"] in ("gradient_boosting", "logistic")
    chosen = [c.info.run_name for c in children if c.data.tags.get("selected") == "true"]
    assert chosen == [result.selected]
    assert client.get_model_version("lead-scoring", result.version).run_id == result.run_id


def test_a_training_that_fails_leaves_a_failed_run_with_the_error(tracking, tmp_path):
    from features.data.validation import DataValidationError
    from training.train import resolve_config

    config = resolve_config(None, leads=tmp_path / "nope.csv", label="won")
    with pytest.raises(DataValidationError):
        train(config)
    (run,) = MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("lead-scoring").experiment_id]
    )
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("DataValidationError: ")
    assert "nope.csv" in run.data.tags["error"]
