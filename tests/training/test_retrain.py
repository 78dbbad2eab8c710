"""The closed loop with a real MLflow SQLite registry: `train --from-database`, then `retrain`
skipping while too few outcomes arrived, `GET /v1/model` counting them, and `retrain` training
and gating once enough did."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.data.config import DataConfig
from features.data.loading import load_lead_data
from serving.db import make_engine, outcomes, upgrade_database
from tests.serving.conftest import auth, make_settings
from tests.serving.waiting import wait_for_model
from tests.training.capture_support import capture_lead_data, outcome_rows

runner = CliRunner()
HELD_BACK = 60  # outcomes the CRM reports only after the first model was trained


@pytest.fixture
def service_database(tmp_path):
    """800 demo leads captured as they happened; the last 60 closed deals not reported yet."""
    from features.data import demo

    out = tmp_path / "demo"
    demo.write(demo.generate(800, seed=5), out, formats=("parquet",))
    data = load_lead_data(DataConfig(
        leads=out / "leads.parquet", touchpoints=out / "touchpoints.parquet",
        outcomes=out / "outcomes.parquet",
    ))  # fmt: skip
    closed = data.outcomes.sort_values("closed_at", kind="stable")
    data.outcomes, later = closed.iloc[:-HELD_BACK], closed.iloc[-HELD_BACK:]
    url = f"sqlite:///{tmp_path / 'leadscore.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    capture_lead_data(engine, data)
    yield url, engine, later
    engine.dispose()


def _versions(tracking: str) -> dict[str, list[str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking, registry_uri=tracking)
    aliases = client.get_registered_model("lead-scoring").aliases  # alias -> version
    return {
        str(v.version): sorted(
            a for a, version in aliases.items() if str(version) == str(v.version)
        )
        for v in client.search_model_versions("name = 'lead-scoring'")
    }


def test_retrain_waits_for_new_outcomes_then_trains_through_the_gate(
    tracking, tmp_path, service_database
):
    from leadscore.cli import app

    url, engine, later = service_database
    config = tmp_path / "leadscore.yaml"
    config.write_text(
        "training:\n  search: none\n  cv_folds: 1\n  splines: false\n  ages_from_traffic: true\n"
    )

    first = runner.invoke(app, ["train", "--from-database", url, "--config", str(config), "--json"])
    assert first.exit_code == 0, first.output
    # nothing scored yet: the configured snapshot ages, and the run says why
    assert "snapshot ages: the configured 1, 7, 30 days" in first.output
    summary = json.loads(first.stdout[first.stdout.index("{") :])
    assert summary["promoted"] is True  # the first model becomes champion
    assert _versions(tracking) == {"1": ["challenger", "champion"]}

    retrain = [
        "retrain",
        "--database-url",
        url,
        "--config",
        str(config),
        "--min-new-outcomes",
        "50",
    ]
    skipped = runner.invoke(app, retrain)
    assert skipped.exit_code == 0, skipped.output
    assert "skipped: 0 new outcome(s) since champion v1's training data ended" in skipped.output
    assert "fewer than --min-new-outcomes 50" in skipped.output
    assert set(_versions(tracking)) == {"1"}

    with engine.begin() as connection:
        connection.execute(outcomes.insert(), outcome_rows(later, datetime.now(UTC)))
    settings = make_settings(url, tracking, model_uri="models:/lead-scoring/1")
    from serving.app import create_app

    with TestClient(create_app(settings)) as client:
        wait_for_model(client)
        model = client.get("/v1/model", headers=auth("ops")).json()
    assert model["outcomes_since_training"] == HELD_BACK
    from mlflow import MlflowClient

    run = MlflowClient(tracking).get_run(summary["run_id"])
    assert run.data.params["training_data_end"] == model["training_data_end"]

    trained = runner.invoke(app, retrain)
    assert trained.exit_code == 0, trained.output
    assert "snapshot ages: the configured 1, 7, 30 days" in trained.output
    assert f"{HELD_BACK} new outcomes since champion v1's training data ended" in trained.output
    assert "model lead-scoring version 2" in trained.output
    assert "promoted: beats champion v1" in trained.output or "stays challenger" in trained.output
    versions = _versions(tracking)
    assert set(versions) == {"1", "2"}
    assert "challenger" in versions["2"]
