"""`leadscore train --engine spark`: examples counted on Spark (the pandas path's count), then a
seeded sample of leads within the row caps trains and registers a model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from features.config import FeatureConfig
from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.snapshots import build_snapshots
from leadscore.cli import app as cli
from training.data import data_now

pytestmark = pytest.mark.slow


def test_train_on_spark_samples_leads_within_the_caps_and_registers(spark, tmp_path, monkeypatch):
    from features.data.demo import create_demo_data

    create_demo_data(tmp_path / "demo", 1500, seed=7, formats=("parquet",))
    (tmp_path / "config.yaml").write_text(
        "leads: demo/leads.parquet\ntouchpoints: demo/touchpoints.parquet\n"
        "outcomes: demo/outcomes.parquet\ntraining:\n  search: none\n  cv_folds: 1\n"
        "  splines: false\n  max_training_rows: 1000\n  max_holdout_rows: 1000\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = load_lead_data(DataConfig.from_directory(tmp_path / "demo"))
    snapshots, _ = build_snapshots(data.leads, data.outcomes, FeatureConfig(), data_now(data))
    assert len(snapshots) > 2000  # more than the caps: the sample must be taken

    result = CliRunner().invoke(
        cli, ["train", "--engine", "spark", "--config", "config.yaml", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert f"Spark: {len(snapshots):,} examples from 1,500 leads; trained on a seeded" in (
        " ".join(result.output.split())
    )
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["version"] == "1"
    # the holdout (a fifth of the examples) comes from the sample: about half of the leads
    assert summary["metrics"]["leads"] < 0.2 * len(snapshots) * 0.75


def test_train_on_spark_refuses_the_database_source(spark):
    result = CliRunner().invoke(
        cli, ["train", "--engine", "spark", "--from-database", "sqlite:///x.db"]
    )
    assert result.exit_code == 2
    assert "--engine spark reads Parquet files: leave out --from-database" in result.output
