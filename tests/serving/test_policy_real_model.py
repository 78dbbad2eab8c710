"""The policy with a real champion (demo data -> training -> MLflow SQLite registry, conftest's
`trained_model`): default from the model, simulation on its shipped holdout, and a saved change
steering the decisions of `POST /v1/score` (hard rules included) and the score log."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.data.vocabulary import lookup_activity
from features.policy.thresholds import choose_threshold, threshold_table
from serving.app import create_app
from serving.db import score_log
from tests.serving.conftest import auth, demo_records, model_settings
from tests.serving.waiting import wait_for, wait_for_model

pytestmark = pytest.mark.slow


@pytest.fixture
def client(trained_model, tmp_path):
    app = create_app(model_settings(trained_model, f"sqlite:///{tmp_path / 'leadscore.db'}"))
    with TestClient(app) as client:
        wait_for_model(client)
        yield client


def scorer(client):
    return client.app.state.services.models.current.scorer


def test_default_policy_and_simulation_come_from_the_champion(client):
    model = scorer(client)
    body = client.get("/v1/policy", headers=auth("ops")).json()
    assert body["version"] == 0
    assert body["policy"] == model.policy.model_dump(mode="json")

    holdout = model.holdout
    assert len(holdout) > 0 and set(holdout["label"].unique()) <= {0, 1}
    weeks = float(model.metadata["holdout_weeks"])
    table = threshold_table(holdout["probability"], holdout["label"], weeks)
    # the weekly volume of sending the top half of the holdout
    median_score = int(np.median(np.rint(100 * holdout["probability"].to_numpy())))
    capacity = float(table.loc[table["threshold"] == median_score, "leads_per_week"].iloc[0])
    assert capacity > 0
    expected = choose_threshold(table, "capacity", capacity)
    answer = client.post(
        "/v1/policy/simulate",
        headers=auth("ops"),
        json={"by": "capacity", "value": capacity, "include_table": False},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["basis"]["leads"] == len(holdout)
    assert result["basis"]["wins"] == int(holdout["label"].sum())
    assert result["chosen"]["threshold"] == int(expected["threshold"])
    assert result["chosen"]["leads_per_week"] == pytest.approx(capacity, rel=1e-5)
    assert result["chosen"]["precision"] == pytest.approx(float(expected["precision"]), rel=1e-5)


def did(record: dict, activity: str) -> bool:
    """A touchpoint of this canonical activity up to `as_of` (the contract's names)."""
    as_of = datetime.fromisoformat(record["as_of"])
    return any(
        lookup_activity(t["activity"]) == activity
        and datetime.fromisoformat(t["occurred_at"]) <= as_of
        for t in record["touchpoints"]
    )


def unsubscribed(record: dict) -> bool:
    """The demo's `do_not_email` flag or an unsubscribe touchpoint, checked independently of the
    policy code."""
    flag = str(record["attributes"].get("do_not_email")).lower() in ("yes", "true", "1")
    return flag or did(record, "unsubscribe")


def test_a_saved_policy_steers_scoring_and_is_logged(client, trained_model):
    records = demo_records(trained_model, 40)
    already = [unsubscribed(r) for r in records]
    clean = [i for i, gone in enumerate(already) if not gone]
    demo, dnc = clean[0], clean[1]
    # one lead asks for a demo; another asks for one too but asked not to be contacted
    records[demo]["touchpoints"].append(
        {"occurred_at": "2025-05-30T10:00:00Z", "channel": "direct", "activity": "demo_request"}
    )
    records[dnc]["attributes"]["Do Not Email"] = "yes"
    records[dnc]["touchpoints"].append(
        {"occurred_at": "2025-05-30T10:00:00Z", "channel": "direct", "activity": "Request a Demo"}
    )
    blocked = {i for i, gone in enumerate(already) if gone} | {dnc}

    # send everything to sales: everyone goes, except the leads that asked not to be contacted
    saved = client.put(
        "/v1/policy",
        headers=auth("ops"),
        json={"policy": {"sales_threshold": 0, "nurture_threshold": 0}, "reason": "flood test"},
    ).json()
    body = client.post("/v1/score", headers=auth("scorer"), json={"leads": records}).json()
    assert body["policy_version"] == saved["version"] == 1
    results = body["results"]
    assert [r["decision"] for r in results] == [
        "disqualify" if i in blocked else "sales" for i in range(len(records))
    ]
    assert results[dnc]["policy_reasons"] == [
        "Hard rule: asked not to be contacted (do-not-contact flag or unsubscribe) -> disqualify "
        "(the score alone says sales)"
    ]

    # nothing reaches sales on the score alone: only the demo request does
    client.put(
        "/v1/policy",
        headers=auth("ops"),
        json={"policy": {"sales_threshold": 100, "nurture_threshold": 100}, "reason": "drain test"},
    )
    body = client.post("/v1/score", headers=auth("scorer"), json={"leads": records}).json()
    assert body["policy_version"] == 2
    results = body["results"]
    assert results[demo]["decision"] == "sales"
    assert results[demo]["policy_reasons"][0].startswith("Hard rule: requested a demo -> sales")
    assert results[dnc]["decision"] == "disqualify"
    expected = [
        "disqualify"
        if i in blocked
        else "sales"
        if did(r, "demo_request") or r is records[demo]
        else "sales"
        if results[i]["score"] >= 100
        else "disqualify"
        for i, r in enumerate(records)
    ]
    assert [r["decision"] for r in results] == expected
    assert expected.count("disqualify") > 20  # most leads: the score alone sends nobody
    # grades follow the bands, whatever the thresholds
    bands = scorer(client).policy.grades
    for r in results:
        s = r["score"]
        assert r["grade"] == (
            "A" if s >= bands.A else "B" if s >= bands.B else "C" if s >= bands.C else "D"
        )

    # the score log records which policy version decided
    services = client.app.state.services
    wait_for(lambda: services.score_log.pending == 0, "the score log was not written")
    with services.engine.connect() as connection:
        versions = dict(
            connection.execute(
                sa.select(score_log.c.policy_version, sa.func.count()).group_by(
                    score_log.c.policy_version
                )
            ).all()
        )
    assert versions == {1: 40, 2: 40}

    # and the page's monitoring sees those recent scores against the holdout
    monitoring = client.get("/v1/ops/monitoring", headers=auth("ops")).json()
    assert monitoring["recent_leads"] == 40 and monitoring["psi"] is not None


def test_exploration_sends_the_drawn_held_back_leads_to_sales_everywhere(
    client, trained_model, tmp_path, monkeypatch
):
    import pandas as pd
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from features.policy.exploration import exploration_draw
    from leadscore.cli import app as cli

    records = demo_records(trained_model, 120)
    # everyone is held back by the score alone (nurture); a fifth of them explored
    saved = client.put(
        "/v1/policy",
        headers=auth("ops"),
        json={
            "policy": {"sales_threshold": 100, "nurture_threshold": 0, "exploration_rate": 0.2},
            "reason": "measure what the threshold misses",
        },
    ).json()
    assert saved["changes"][-1] == "exploration_rate: 0 -> 0.2"
    version = saved["version"]
    body = client.post("/v1/score", headers=auth("scorer"), json={"leads": records}).json()
    assert body["policy_version"] == version
    results = body["results"]
    drawn = {
        r["lead_id"]
        for r, record in zip(results, records)
        if r["score"] < 100
        and not unsubscribed(record)
        and not did(record, "demo_request")
        and exploration_draw(r["lead_id"], version) < 0.2
    }
    # a fifth of the 120 at most (the hard-rule leads are never drawn): enough to mean something
    assert 5 <= len(drawn) <= 40
    explored = {r["lead_id"] for r in results if r["exploration"]}
    assert explored == drawn
    for r in results:
        if r["exploration"]:
            assert r["decision"] == "sales"
            assert r["policy_reasons"] == [
                f"Exploration: sent to sales although its score ({r['score']}) is below the sales "
                "threshold (100), one of about 1 in 5 such leads chosen at random, to measure how "
                "the leads the threshold holds back turn out; please work it as any other"
            ]
        elif not r["policy_reasons"]:
            assert r["decision"] == "nurture"
    # the same leads again: the same draw, the same leads explored
    again = client.post("/v1/score", headers=auth("scorer"), json={"leads": records}).json()
    assert {r["lead_id"] for r in again["results"] if r["exploration"]} == explored

    # the score log marks them
    services = client.app.state.services
    wait_for(lambda: services.score_log.pending == 0, "the score log was not written")
    with services.engine.connect() as connection:
        logged = connection.execute(
            sa.select(score_log.c.lead_id, score_log.c.decision).where(
                score_log.c.exploration.is_(True)
            )
        ).all()
    assert sorted(logged) == sorted([(i, "sales") for i in explored] * 2)

    # batch scoring with the service's policy: the same draw, the same leads
    ids = [r["lead_id"] for r in records]
    leads = pq.read_table(trained_model.demo_dir / "leads.parquet").to_pandas()
    touches = pq.read_table(trained_model.demo_dir / "touchpoints.parquet").to_pandas()
    leads[leads["lead_id"].isin(ids)].to_parquet(tmp_path / "leads.parquet", index=False)
    touches[touches["lead_id"].isin(ids)].to_parquet(tmp_path / "tp.parquet", index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(cli, [
        "score", "--model", f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(tmp_path / "leads.parquet"), "--touchpoints", str(tmp_path / "tp.parquet"),
        "--out", str(out), "--as-of", records[0]["as_of"],
        "--database-url", str(services.engine.url.render_as_string(hide_password=False)),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out)
    assert set(batch.loc[batch["exploration"], "lead_id"]) == explored
    assert dict(zip(batch["lead_id"], batch["decision"])) == {
        r["lead_id"]: r["decision"] for r in results
    }


def test_cli_simulates_on_the_champions_holdout_from_mlflow(trained_model, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from leadscore.cli import app
    from serving.model_store import load_from_mlflow

    uri = f"models:/{trained_model.name}/{trained_model.versions[0]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    monkeypatch.setenv("LEADSCORE_MODEL_URI", uri)
    monkeypatch.setenv("LEADSCORE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    model = load_from_mlflow(uri, trained_model.tracking_uri).scorer
    table = threshold_table(
        model.holdout["probability"], model.holdout["label"], float(model.metadata["holdout_weeks"])
    )
    expected = choose_threshold(table, "recall", 0.8)

    result = CliRunner().invoke(
        app, ["policy", "simulate", "--by", "recall", "--value", "0.8", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["basis"]["leads"] == len(model.holdout)
    assert body["chosen"]["threshold"] == int(expected["threshold"])
    assert body["chosen"]["recall"] == pytest.approx(float(expected["recall"]), rel=1e-5)
    assert body["chosen"]["recall"] >= 0.8
    # version 0 is the model's own policy
    shown = json.loads(CliRunner().invoke(app, ["policy", "show", "--json"]).stdout)
    assert shown["version"] == 0 and shown["policy"] == model.policy.model_dump(mode="json")
