"""One policy everywhere: after marketing ops change the policy, `leadscore score --database-url`,
`POST /v1/score` and the MLflow pyfunc given that policy decide the same for the same leads, and
each says which policy it used (before, batch scoring silently kept the model's own policy)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadscore.cli import app as cli
from serving.app import create_app
from tests.serving.conftest import auth, demo_records, model_settings, trained_model  # noqa: F401
from tests.serving.waiting import wait_for_model

pytestmark = pytest.mark.slow
AS_OF = "2025-06-01T00:00:00Z"
N = 150


def _batch(trained_model, tmp_path, ids, *options, text=False) -> tuple[pd.DataFrame, dict]:  # noqa: F811
    leads = pq.read_table(trained_model.demo_dir / "leads.parquet").to_pandas()
    touches = pq.read_table(trained_model.demo_dir / "touchpoints.parquet").to_pandas()
    leads[leads["lead_id"].isin(ids)].to_parquet(tmp_path / "leads.parquet", index=False)
    touches[touches["lead_id"].isin(ids)].to_parquet(tmp_path / "tp.parquet", index=False)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(cli, [
        "score", "--model", f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "--leads", str(tmp_path / "leads.parquet"), "--touchpoints", str(tmp_path / "tp.parquet"),
        "--out", str(out), "--as-of", AS_OF, *([] if text else ["--json"]), *options,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    if text:
        return pd.read_csv(out), {"output": result.stdout}
    return pd.read_csv(out), json.loads(result.stdout[result.stdout.index("{") :])


def _decisions(rows) -> dict[str, str]:
    return {r["lead_id"]: r["decision"] for r in rows}


def test_batch_api_and_pyfunc_decide_with_the_policy_in_force(
    trained_model,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    import mlflow

    monkeypatch.delenv("LEADSCORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    database = f"sqlite:///{tmp_path / 'leadscore.db'}"
    records = demo_records(trained_model, N, as_of=AS_OF)
    ids = [r["lead_id"] for r in records]
    with TestClient(create_app(model_settings(trained_model, database))) as api:
        wait_for_model(api)
        before = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        assert before["policy_version"] == 0
        scored, summary = _batch(trained_model, tmp_path, ids, "--database-url", database)
        assert summary["policy"] == "model default v1"
        assert set(scored["policy"]) == {"model default v1"}
        assert _decisions(scored.to_dict("records")) == _decisions(before["results"])

        # marketing ops send more leads to sales: the threshold at the median score
        scores = sorted(r["score"] for r in before["results"])
        threshold = scores[len(scores) // 2]
        saved = api.put("/v1/policy", headers=auth("ops"), json={
            "policy": {"sales_threshold": threshold, "nurture_threshold": min(threshold, 5)},
            "reason": "sales can take more leads",
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        after = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        in_force = api.get("/v1/policy", headers=auth("ops")).json()
    assert after["policy_version"] == in_force["version"] == 1
    api_decisions = _decisions(after["results"])
    changed = {i for i in ids if api_decisions[i] != _decisions(before["results"])[i]}
    assert changed, "the new policy must change some decisions for this test to mean anything"

    # batch scoring given the service database: the API's decisions, and it says which policy
    scored, summary = _batch(trained_model, tmp_path, ids, "--database-url", database)
    assert summary["policy"] == "service policy v1"
    assert set(scored["policy"]) == {"service policy v1"}
    assert _decisions(scored.to_dict("records")) == api_decisions
    assert summary["decisions"] == {
        d: sum(v == d for v in api_decisions.values()) for d in set(api_decisions.values())
    }
    # ... also when the database comes from the service's environment variable
    monkeypatch.setenv("LEADSCORE_DATABASE_URL", database)
    scored, printed = _batch(trained_model, tmp_path, ids, text=True)
    assert printed["output"] == (
        f"scored {N} leads with models:/lead-scoring/1 under the service policy v1 -> "
        f"{tmp_path / 'scores.csv'}\n"
    )
    assert set(scored["policy"]) == {"service policy v1"}
    monkeypatch.delenv("LEADSCORE_DATABASE_URL")

    # without the database: the model's own policy, and the output says so
    scored, summary = _batch(trained_model, tmp_path, ids)
    assert summary["policy"] == "model default v1" and set(scored["policy"]) == {"model default v1"}
    assert {i for i, d in _decisions(scored.to_dict("records")).items() if d != api_decisions[i]}

    # the pyfunc (`mlflow models serve`, `spark_udf`) given GET /v1/policy's answer
    mlflow.set_tracking_uri(trained_model.tracking_uri)
    frame = pd.DataFrame([
        {"lead_id": r["lead_id"], **r["attributes"], "created_at": r["created_at"],
         "as_of": r["as_of"], "touchpoints": json.dumps(r["touchpoints"])}
        for r in records
    ])  # fmt: skip
    model = mlflow.pyfunc.load_model(f"models:/{trained_model.name}/{trained_model.versions[0]}")
    given = model.predict(frame, params={"policy": json.dumps(in_force)})
    assert set(given["policy"]) == {"service policy v1"}
    assert _decisions(given.to_dict("records")) == api_decisions
    own = model.predict(frame)
    assert set(own["policy"]) == {"model default (run " + _run_id(trained_model) + ")"}
    assert _decisions(own.to_dict("records")) == _decisions(before["results"])


def _run_id(trained_model) -> str:  # noqa: F811
    client = trained_model.client()
    return client.get_model_version(trained_model.name, trained_model.versions[0]).run_id


def test_mlflow_models_serve_decides_with_the_policy_it_is_given(trained_model, tmp_path):  # noqa: F811
    """`mlflow models serve` (a real server process) decided with the model's own policy (issue
    12): given GET /v1/policy's answer as the `policy` param of a request it decides as
    `POST /v1/score` does, and each prediction says which policy decided."""
    import contextlib
    import os
    import sys
    from pathlib import Path

    import httpx

    from tests.serving.servers import free_port, server_process
    from tests.serving.waiting import wait_for

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
    assert _decisions(after["results"]) != _decisions(before["results"])

    port = free_port()
    bin_dir = Path(sys.executable).parent  # `mlflow models serve` runs uvicorn from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained_model.tracking_uri,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}  # fmt: skip
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m",
               f"models:/{trained_model.name}/{trained_model.versions[0]}", "-p", str(port),
               "--env-manager", "local", "--workers", "1"]  # fmt: skip
    rows = [
        {"lead_id": r["lead_id"], **r["attributes"], "created_at": r["created_at"],
         "as_of": r["as_of"], "touchpoints": json.dumps(r["touchpoints"])}
        for r in records
    ]  # fmt: skip
    log = tmp_path / "mlflow-serve.log"
    with server_process(command, env=env, cwd=tmp_path, log=log) as server:

        def ready() -> bool:
            assert server.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
            return False

        wait_for(ready, "mlflow models serve did not become ready")

        def predict(**params):
            body = {"dataframe_records": rows, **({"params": params} if params else {})}
            answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
            assert answer.status_code == 200, answer.text
            return answer.json()["predictions"]

        given = predict(policy=json.dumps(in_force))
        own = predict()
    assert _decisions(given) == _decisions(after["results"])
    assert {p["policy"] for p in given} == {"service policy v1"}
    assert _decisions(own) == _decisions(before["results"])
    assert {p["policy"] for p in own} == {"model default (run " + _run_id(trained_model) + ")"}
