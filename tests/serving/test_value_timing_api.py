"""How much and how soon, everywhere a score goes: POST /v1/score, its OpenAPI schema, GET
/v1/model, the MLflow run and `leadscore score`, with a real model trained in MLflow."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.serving.conftest import auth, demo_records


def test_each_scored_lead_carries_its_deal_value_and_time_to_close(scoring_app, trained_model):
    records = demo_records(trained_model, 12)  # more than 8: the array path too
    body = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    assert len(body["results"]) == 12
    for lead in body["results"]:
        value, timing = lead["deal_value"], lead["time_to_close"]
        assert value["expected_amount"] > 0
        assert value["interval"]["low"] < value["interval"]["high"]
        assert value["interval"]["level"] == 0.8
        assert value["expected_value"] == pytest.approx(
            lead["probability"] * value["expected_amount"]
        )
        for reason in value["reasons"]:
            assert "typical deals about" in reason["text"]
            assert reason["effect"] >= 1.15 or reason["effect"] <= 1 / 1.15  # else no reason
        chances = timing["win_within_days"]
        assert list(chances) == ["30", "60", "90"]
        assert 0 <= chances["30"] <= chances["60"] <= chances["90"] <= 1
        assert chances["90"] == pytest.approx(lead["probability"])  # the model's 90-day horizon
        assert 0 < timing["median_days_to_close"] <= 90
    # one lead alone (the per-lead path) gets the same answer as in the batch
    alone = scoring_app.post("/v1/score", json={"leads": records[:1]}, headers=auth("scorer"))
    [first] = alone.json()["results"]
    assert first["deal_value"]["expected_amount"] == pytest.approx(
        body["results"][0]["deal_value"]["expected_amount"]
    )
    batch = body["results"][0]["time_to_close"]
    assert first["time_to_close"]["win_within_days"] == pytest.approx(batch["win_within_days"])
    assert first["time_to_close"]["median_days_to_close"] == pytest.approx(
        batch["median_days_to_close"]
    )


def test_the_openapi_schema_documents_the_value_and_timing_fields(scoring_app):
    schemas = scoring_app.get("/openapi.json").json()["components"]["schemas"]
    lead = schemas["LeadScore"]["properties"]
    assert "deal_value" in lead and "time_to_close" in lead
    assert "if won" in lead["deal_value"]["description"]
    value = schemas["DealValue"]["properties"]
    assert set(value) == {"expected_amount", "interval", "expected_value", "reasons"}
    assert value["expected_value"]["description"] == "probability x expected_amount."
    assert (
        "Factor on the typical lead's deal amount"
        in (schemas["AmountReason"]["properties"]["effect"]["description"])
    )
    timing = schemas["TimeToClose"]["properties"]
    assert "never lower for a longer horizon" in timing["win_within_days"]["description"]
    assert "Median days" in timing["median_days_to_close"]["description"]
    model = schemas["ModelInfo"]["properties"]
    assert "deal_value" in model and "time_to_close" in model


def test_get_model_and_the_mlflow_run_report_value_and_timing_figures(scoring_app, trained_model):
    info = scoring_app.get("/v1/model", headers=auth("scorer")).json()
    value, timing = info["deal_value"], info["time_to_close"]
    assert value["interval_level"] == 0.8
    assert -1 <= value["metrics"]["value_spearman"] <= 1
    assert timing["horizons_days"] == [30.0, 60.0, 90.0]
    assert timing["metrics"]["timing_non_monotone_share"] == 0.0
    version = trained_model.client().get_model_version(
        trained_model.name, trained_model.versions[0]
    )
    run_id = version.run_id
    logged = trained_model.client().get_run(run_id).data.metrics
    assert logged["holdout_value_spearman"] == pytest.approx(value["metrics"]["value_spearman"])
    for horizon in (30, 60, 90):
        assert logged[f"holdout_timing_ece_{horizon}d"] == pytest.approx(
            timing["metrics"][f"timing_ece_{horizon}d"]
        )


def test_batch_scoring_writes_value_and_timing_columns(trained_model, tmp_path, monkeypatch):
    from leadscore.cli import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    demo = trained_model.demo_dir
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--model", f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(demo / "leads.parquet"), "--touchpoints", str(demo / "touchpoints.parquet"),
        "--as-of", "2025-01-15", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    for column in ("expected_amount", "amount_low", "amount_high", "expected_value",
                   "amount_reasons", "win_within_30d", "win_within_60d", "win_within_90d",
                   "median_days_to_close"):  # fmt: skip
        assert scores[column].notna().any(), column
    assert (scores["win_within_30d"] <= scores["win_within_60d"]).all()
    assert (scores["win_within_60d"] <= scores["win_within_90d"]).all()
    assert scores["expected_value"].to_numpy() == pytest.approx(
        (scores["probability"] * scores["expected_amount"]).to_numpy()
    )
    assert scores["amount_reasons"].dropna().str.contains("typical deals about").all()


def test_each_answer_says_how_much_to_trust_it_and_the_model_what_the_labels_mean(
    scoring_app, trained_model, tmp_path, monkeypatch
):
    from leadscore.cli import app

    records = demo_records(trained_model, 12)
    body = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    info = scoring_app.get("/v1/model", headers=auth("scorer")).json()["confidence"]
    assert (info["low_below"], info["high_from"]) == (30, 150)
    assert info["axes"] == ["probability", "fit", "engagement"]
    shares = [info["metrics"].get(f"confidence_{label}_share", 0.0)
              for label in ("low", "medium", "high")]  # fmt: skip
    assert sum(shares) == pytest.approx(1.0)
    for lead in body["results"]:
        confidence = lead["confidence"]
        similar = confidence["similar_leads"]
        expected = "low" if similar < 30 else "medium" if similar < 150 else "high"
        assert confidence["label"] == expected
    # 1,000 demo leads are thin: most leads have few like them
    assert sum(r["confidence"]["label"] == "low" for r in body["results"]) >= 6

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    demo = trained_model.demo_dir
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--model", f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(demo / "leads.parquet"), "--touchpoints", str(demo / "touchpoints.parquet"),
        "--as-of", "2025-01-15", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert set(scores["confidence"]) <= {"low", "medium", "high"}
    assert scores["similar_leads"].ge(0).all()
    assert (scores.loc[scores["similar_leads"] < 30, "confidence"] == "low").all()


def test_the_trained_models_holdout_simulates_ranking_by_expected_value(scoring_app):
    """The holdout shipped with a model that has a deal value model carries each lead's expected
    value, so the capacity can be filled by it; by construction it brings at least the revenue
    of ranking by probability at the same leads a week."""
    answer = scoring_app.post(
        "/v1/policy/simulate",
        json={"rank_by": "expected_value", "by": "capacity", "value": 5, "include_table": False},
        headers=auth("scorer"),
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["basis"]["expected_values"] is True
    chosen = result["chosen"]
    assert 0 < chosen["leads_per_week"] <= 5
    assert chosen["value_threshold"] > 0 and chosen["expected_revenue"] > 0
    rankings = result["rankings"]
    assert rankings["leads_per_week"] == 5
    by_value, by_probability = rankings["expected_value"], rankings["probability"]
    # expected values hardly tie, integer scores do: ranked by value, at least as many leads fit
    assert by_value["leads_per_week"] >= by_probability["leads_per_week"]
    assert by_value["expected_revenue"] >= by_probability["expected_revenue"]


def test_ops_monitoring_says_what_each_grade_of_the_trained_model_holds(scoring_app):
    body = scoring_app.get("/v1/ops/monitoring", headers=auth("scorer")).json()
    grades = [g for g in body["holdout_by_grade"] if g["leads"]]
    assert sum(g["share"] for g in body["holdout_by_grade"]) == pytest.approx(1)
    for g in grades:
        assert g["expected_value"] > 0
        assert 0 <= g["win_within_30d"] <= g["win_within_60d"] <= g["win_within_90d"] <= 1
        assert 0 < g["median_days_to_close"] <= 90
    assert sum(g["leads"] for g in grades) == sum(g["leads"] for g in body["holdout_by_grade"])
    empty = [g for g in body["holdout_by_grade"] if not g["leads"]]
    assert all(g["expected_value"] is None and g["win_rate"] is None for g in empty)


def test_batch_scoring_ranks_by_expected_value_as_the_api_does(
    trained_model, tmp_path, monkeypatch
):
    """A service policy ranked by expected value decides `leadscore score` (pandas engine, reading
    the policy in force from the database) exactly as it decides the API's answers."""
    from fastapi.testclient import TestClient

    from leadscore.cli import app
    from serving.app import create_app
    from tests.serving.conftest import model_settings
    from tests.serving.waiting import wait_for_model

    monkeypatch.delenv("LEADSCORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    database = f"sqlite:///{tmp_path / 'leadscore.db'}"
    as_of = "2025-06-01T00:00:00Z"
    records = demo_records(trained_model, 60, as_of=as_of)
    with TestClient(create_app(model_settings(trained_model, database))) as api:
        wait_for_model(api)
        before = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        values = sorted(r["deal_value"]["expected_value"] for r in before["results"])
        threshold = values[len(values) * 3 // 4]
        saved = api.put("/v1/policy", headers=auth("ops"), json={
            "policy": {"rank_by": "expected_value", "value_threshold": threshold},
            "reason": "the most valuable quarter goes to sales",
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        after = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    plain = [r for r in after["results"] if not r["policy_reasons"]]
    assert sum(r["decision"] == "sales" for r in plain) == sum(
        r["deal_value"]["expected_value"] >= threshold for r in plain
    )
    ids = {r["lead_id"] for r in records}
    leads = pd.read_parquet(trained_model.demo_dir / "leads.parquet")
    leads[leads["lead_id"].isin(ids)].to_parquet(tmp_path / "leads.parquet", index=False)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, [
        "score", "--model", f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(tmp_path / "leads.parquet"),
        "--touchpoints", str(trained_model.demo_dir / "touchpoints.parquet"),
        "--as-of", as_of, "--out", str(out), "--database-url", database,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert set(scores["policy"]) == {"service policy v1"}
    batch = dict(zip(scores["lead_id"].astype(str), scores["decision"]))
    assert batch == {r["lead_id"]: r["decision"] for r in after["results"]}
