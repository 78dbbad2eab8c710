"""Spark scores the API's scores: `leadscore score --engine spark` (the project's scorer on
Spark, under the policy in force) and `mlflow.pyfunc.spark_udf` agree with `POST /v1/score`."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadscore.cli import app as cli
from serving.app import create_app
from tests.serving.conftest import auth, demo_records, model_settings
from tests.serving.waiting import wait_for_model

pytestmark = pytest.mark.slow
AS_OF = "2025-06-01T00:00:00Z"
N = 120


def _spark_score(trained_model, tmp_path, ids, *options) -> tuple[pd.DataFrame, dict]:
    leads = pq.read_table(trained_model.demo_dir / "leads.parquet").to_pandas()
    touches = pq.read_table(trained_model.demo_dir / "touchpoints.parquet").to_pandas()
    leads[leads["lead_id"].isin(ids)].to_parquet(tmp_path / "leads.parquet", index=False)
    # a folder of Parquet parts, as Spark jobs write them
    (tmp_path / "tp").mkdir(exist_ok=True)
    touches[touches["lead_id"].isin(ids)].to_parquet(
        tmp_path / "tp" / "part-0.parquet", index=False
    )
    out = tmp_path / "scores"
    result = CliRunner().invoke(cli, [
        "score", "--engine", "spark", "--model",
        f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(tmp_path / "leads.parquet"), "--touchpoints", str(tmp_path / "tp"),
        "--out", str(out), "--as-of", AS_OF, "--json", *options,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return pd.read_parquet(out), json.loads(result.stdout[result.stdout.index("{") :])


def _by_lead(rows) -> dict[str, tuple]:
    return {r["lead_id"]: (r["score"], r["grade"], r["decision"]) for r in rows}


def test_spark_scores_equal_the_api_under_the_policy_in_force(
    spark, trained_model, tmp_path, monkeypatch
):
    monkeypatch.delenv("LEADSCORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    database = f"sqlite:///{tmp_path / 'leadscore.db'}"
    records = demo_records(trained_model, N, as_of=AS_OF)
    ids = [r["lead_id"] for r in records]
    with TestClient(create_app(model_settings(trained_model, database))) as api:
        wait_for_model(api)
        before = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        scores = sorted(r["score"] for r in before["results"])
        threshold = scores[len(scores) // 2]
        saved = api.put("/v1/policy", headers=auth("ops"), json={
            "policy": {"sales_threshold": threshold, "nurture_threshold": min(threshold, 5)},
            "reason": "sales can take more leads",
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        after = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    assert _by_lead(after["results"]) != _by_lead(before["results"])  # the policy matters here

    scored, summary = _spark_score(trained_model, tmp_path, ids, "--database-url", database)
    assert summary["engine"] == "spark" and summary["policy"] == "service policy v1"
    assert set(scored["policy"]) == {"service policy v1"}
    assert sorted(scored["lead_id"]) == sorted(ids)
    rows = scored.to_dict("records")
    assert _by_lead(rows) == _by_lead(after["results"])
    api_p = {r["lead_id"]: r["probability"] for r in after["results"]}
    spread = max(abs(r["probability"] - api_p[r["lead_id"]]) for r in rows)
    assert spread < 1e-12, f"probabilities differ by up to {spread}"
    assert sum(bool(r["reasons_for"]) for r in rows) > N // 2  # reasons as text, like the CLI

    # without the database: the model's own policy, the API's decisions before the change
    scored, summary = _spark_score(trained_model, tmp_path, ids)
    assert summary["policy"] == "model default v1"
    assert _by_lead(scored.to_dict("records")) == _by_lead(before["results"])


def _api_columns(lead: dict) -> dict[str, object]:
    """The API answer's value, timing, fit/engagement and confidence in `leadscore score`'s
    column names."""
    value, timing, fe = lead["deal_value"], lead["time_to_close"], lead["fit_engagement"]
    return {
        "expected_amount": value["expected_amount"],
        "amount_low": value["interval"]["low"],
        "amount_high": value["interval"]["high"],
        "expected_value": value["expected_value"],
        "amount_reasons": "; ".join(r["text"] for r in value["reasons"]),
        **{f"win_within_{h}d": p for h, p in timing["win_within_days"].items()},
        "median_days_to_close": timing["median_days_to_close"],
        "fit_probability": fe["fit"],
        "engagement_probability": fe["engagement"],
        "fit_grade": fe["fit_grade"],
        "engagement_level": fe["engagement_level"],
        "grid": fe["grid"],
        "confidence": lead["confidence"]["label"],
        "similar_leads": lead["confidence"]["similar_leads"],
    }


def test_spark_ranks_by_expected_value_and_returns_the_apis_value_timing_and_grid_columns(
    spark, trained_model, tmp_path, monkeypatch
):
    monkeypatch.delenv("LEADSCORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    database = f"sqlite:///{tmp_path / 'leadscore.db'}"
    records = demo_records(trained_model, N, as_of=AS_OF)
    ids = [r["lead_id"] for r in records]
    with TestClient(create_app(model_settings(trained_model, database))) as api:
        wait_for_model(api)
        before = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        values = sorted(r["deal_value"]["expected_value"] for r in before["results"])
        threshold = values[len(values) * 3 // 4]  # the top quarter by expected value
        saved = api.put("/v1/policy", headers=auth("ops"), json={
            "policy": {"rank_by": "expected_value", "value_threshold": threshold},
            "reason": "fill sales' week with the most valuable leads",
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        after = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    by_value = {r["lead_id"]: r for r in after["results"]}
    # without a hard rule, sales is exactly the leads worth at least the threshold
    for lead in after["results"]:
        if not lead["policy_reasons"]:  # no hard rule (nor exploration: rate 0)
            worth = lead["deal_value"]["expected_value"] >= threshold
            assert (lead["decision"] == "sales") == worth, lead["lead_id"]
    assert _by_lead(after["results"]) != _by_lead(before["results"])  # the ranking matters

    scored, summary = _spark_score(trained_model, tmp_path, ids, "--database-url", database)
    assert summary["policy"] == "service policy v1"
    rows = scored.to_dict("records")
    assert _by_lead(rows) == _by_lead(after["results"])
    first = _api_columns(after["results"][0])
    assert set(first) <= set(scored.columns), set(first) - set(scored.columns)
    for row in rows:
        expected = _api_columns(by_value[row["lead_id"]])
        for column, want in expected.items():
            got = row[column]
            if isinstance(want, float):
                assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (row["lead_id"], column)
            else:
                assert got == want, (row["lead_id"], column)
    assert not any(scored["exploration"])  # the policy explores nothing


def test_spark_udf_of_the_logged_model_gives_the_api_probabilities(
    spark, trained_model, scoring_app
):
    from features.data.config import DataConfig
    from features.spark import read_lead_tables
    from training.spark import pyfunc_udf_probabilities

    records = demo_records(trained_model, 60, as_of=AS_OF)
    answer = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    api_p = {r["lead_id"]: r["probability"] for r in answer["results"]}
    leads, touchpoints, _ = read_lead_tables(
        spark, DataConfig.from_directory(trained_model.demo_dir)
    )
    leads = leads.where(leads.lead_id.isin(list(api_p)))
    uri = f"models:/{trained_model.name}/{trained_model.versions[0]}"
    import mlflow

    mlflow.set_tracking_uri(trained_model.tracking_uri)
    got = pyfunc_udf_probabilities(spark, leads, touchpoints, uri, as_of=AS_OF).toPandas()
    assert sorted(got["lead_id"]) == sorted(api_p)
    spread = max(abs(p - api_p[i]) for i, p in zip(got["lead_id"], got["probability"], strict=True))
    assert spread < 1e-12, f"probabilities differ by up to {spread}"


def test_spark_udf_given_the_policy_in_force_decides_as_the_api(
    spark, trained_model, tmp_path, monkeypatch
):
    """`spark_udf` decided with the model's own policy (issue 12): given GET /v1/policy's answer
    as the `policy` param it decides as `POST /v1/score` and its `policy` column says so."""
    import mlflow
    from pyspark.sql import functions as F

    from features.data.config import DataConfig
    from features.spark import JSON_TIMESTAMP, pyfunc_input, read_lead_tables

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    database = f"sqlite:///{tmp_path / 'leadscore.db'}"
    records = demo_records(trained_model, 60, as_of=AS_OF)
    with TestClient(create_app(model_settings(trained_model, database))) as api:
        wait_for_model(api)
        before = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        scores = sorted(r["score"] for r in before["results"])
        threshold = scores[len(scores) // 2]
        saved = api.put("/v1/policy", headers=auth("ops"), json={
            "policy": {"sales_threshold": threshold, "nurture_threshold": min(threshold, 5)},
            "reason": "sales can take more leads",
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        after = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        in_force = api.get("/v1/policy", headers=auth("ops")).json()
    api_before = {r["lead_id"]: r["decision"] for r in before["results"]}
    api_after = {r["lead_id"]: r["decision"] for r in after["results"]}
    assert api_after != api_before  # the policy matters for these leads

    leads, touchpoints, _ = read_lead_tables(
        spark, DataConfig.from_directory(trained_model.demo_dir)
    )
    frame = pyfunc_input(leads.where(leads.lead_id.isin(list(api_after))), touchpoints, AS_OF)
    for name, kind in frame.dtypes:  # the model's signature, as pyfunc_udf_probabilities does
        if kind == "timestamp":
            frame = frame.withColumn(name, F.date_format(F.col(name), JSON_TIMESTAMP))
        elif kind in ("boolean", "int", "bigint", "float", "smallint", "tinyint"):
            frame = frame.withColumn(name, F.col(name).cast("double"))
    columns = F.struct(*[F.col(f"`{c}`") for c in frame.columns])
    uri = f"models:/{trained_model.name}/{trained_model.versions[0]}"
    mlflow.set_tracking_uri(trained_model.tracking_uri)
    result = "decision string, policy string"

    def decided(params):
        udf = mlflow.pyfunc.spark_udf(
            spark, uri, result_type=result, env_manager="local", params=params
        )
        rows = frame.select("lead_id", udf(columns).alias("out")).toPandas()
        return {
            r["lead_id"]: (r["out"]["decision"], r["out"]["policy"]) for _, r in rows.iterrows()
        }

    given = decided({"policy": json.dumps(in_force)})
    assert {lead: d for lead, (d, _) in given.items()} == api_after
    assert {p for _, p in given.values()} == {"service policy v1"}
    own = decided(None)  # without it: the model's own policy, and the column says so
    assert {lead: d for lead, (d, _) in own.items()} == api_before
    assert all(p.startswith("model default") for _, p in own.values())


def test_an_unknown_engine_and_a_missing_folder_say_what_to_do(
    spark, trained_model, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    model = f"models:/{trained_model.name}/{trained_model.versions[0]}"
    wrong = CliRunner().invoke(cli, ["score", "--engine", "dask", "--model", model, "--leads",
                                     str(tmp_path / "x.parquet"), "--out", str(tmp_path / "o.csv")])  # fmt: skip
    assert wrong.exit_code == 2
    assert "--engine dask: unknown engine; use one of pandas, spark" in wrong.output
    missing = CliRunner().invoke(cli, ["score", "--engine", "spark", "--model", model, "--leads",
                                       str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])  # fmt: skip
    assert missing.exit_code == 2
    assert f"--leads {tmp_path / 'nowhere'}: Spark cannot read it as Parquet" in missing.output
