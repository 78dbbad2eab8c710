"""Two `leadscore serve` processes against one PostgreSQL and one `mlflow server` (PostgreSQL back
end, its own artifact root): the topology of deploy/docker-compose.yml, run as processes.

A policy change, a key revocation and a new champion made through one replica (or the registry)
reach both; every score either replica gave is in the one score log; both replicas' captures land
in the one capture table.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.serving.conftest import (
    BOOTSTRAP,
    auth,
    demo_records,
)
from tests.serving.servers import free_port, server_process, wait_for_mlflow, wait_until_up
from tests.serving.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
AS_OF = "2025-06-01T00:00:00Z"
BIN = Path(sys.executable).parent


def _score(url: str, records: list[dict], key: str = "scorer") -> dict:
    answer = httpx.post(url + "/v1/score", json={"leads": records}, headers=auth(key), timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_two_replicas_share_policy_keys_champion_and_one_score_log(
    fresh_databases, trained_model, tmp_path
):
    import mlflow
    from mlflow import MlflowClient

    service_db, mlflow_db = fresh_databases
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADSCORE_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # this checkout's code
    mlflow_port = free_port()
    tracking = f"http://127.0.0.1:{mlflow_port}"
    mlflow_command = [
        str(BIN / "mlflow"), "server", "--backend-store-uri", mlflow_db,
        "--artifacts-destination", str(tmp_path / "artifacts"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
    ]  # fmt: skip
    with server_process(mlflow_command, env=env, cwd=tmp_path, log=tmp_path / "mlflow.log") as ml:
        wait_for_mlflow(tracking, ml, tmp_path / "mlflow.log")
        # the trained model's files, registered in the shared registry as version 1 and 2
        mlflow.set_tracking_uri(trained_model.tracking_uri)
        source = trained_model.client().get_model_version(trained_model.name, "1")
        local = mlflow.artifacts.download_artifacts(source.source, dst_path=str(tmp_path / "m"))
        mlflow.set_tracking_uri(tracking)
        client = MlflowClient(tracking, tracking)
        client.create_registered_model(trained_model.name)
        run = client.create_run(client.create_experiment("replicas"))
        client.log_artifacts(run.info.run_id, local, "model")
        client.set_terminated(run.info.run_id)
        for _ in range(2):
            client.create_model_version(
                trained_model.name, f"runs:/{run.info.run_id}/model", run.info.run_id
            )
        client.set_registered_model_alias(trained_model.name, "champion", "1")

        replica_env = {
            **env,
            "LEADSCORE_DATABASE_URL": service_db,
            "MLFLOW_TRACKING_URI": tracking,
            "LEADSCORE_MODEL_URI": f"models:/{trained_model.name}@champion",
            "LEADSCORE_API_KEYS_BOOTSTRAP": BOOTSTRAP,
            "LEADSCORE_MODEL_POLL_SECONDS": "1",
            "LEADSCORE_KEY_CACHE_SECONDS": "0.2",
            "LEADSCORE_POLICY_REFRESH_SECONDS": "0.2",
            "LEADSCORE_SCORE_LOG_FLUSH_SECONDS": "0.05",
        }
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        # both start at once against the empty database: the migrations must not race
        commands = [[str(BIN / "leadscore"), "serve", "--host", "127.0.0.1", "--port", str(p)]
                    for p in ports]  # fmt: skip
        logs = [tmp_path / f"replica-{i}.log" for i in range(2)]
        with (
            server_process(commands[0], env=replica_env, cwd=tmp_path, log=logs[0]) as a,
            server_process(commands[1], env=replica_env, cwd=tmp_path, log=logs[1]) as b,
        ):
            for url, process, log in zip(urls, (a, b), logs, strict=True):
                wait_until_up(url, process, log)
                wait_for(lambda u=url: httpx.get(u + "/readyz").status_code == 200,
                         f"{url} never loaded the champion")  # fmt: skip
            records = demo_records(trained_model, 40, as_of=AS_OF)
            first, second = records[:20], records[20:]
            given: list[dict] = []  # every answer either replica gave

            def score(url: str, part: list[dict], key: str = "scorer") -> dict:
                answer = _score(url, part, key)
                given.append(answer)
                return answer

            before = [score(url, first) for url in urls]
            assert {a["policy_version"] for a in before} == {0}
            assert {a["model"]["version"] for a in before} == {"1"}

            # 1. a policy change saved through replica A reaches replica B
            threshold = sorted(r["score"] for r in before[0]["results"])[10]
            saved = httpx.put(urls[0] + "/v1/policy", headers=auth("ops"), json={
                "policy": {"sales_threshold": threshold, "nurture_threshold": min(threshold, 5)},
                "reason": "replica test",
            })  # fmt: skip
            assert saved.status_code == 200, saved.text
            wait_for(lambda: score(urls[1], second)["policy_version"] == 1,
                     "replica B never applied the policy saved through replica A")  # fmt: skip
            decided = [score(url, first) for url in urls]
            # the same decisions; the trend differs by design (B sees the score A just gave)
            history = {"previous_score", "previous_scored_at", "trend"}
            assert [
                {k: v for k, v in r.items() if k not in history} for r in decided[0]["results"]
            ] == [{k: v for k, v in r.items() if k not in history} for r in decided[1]["results"]]
            assert {r["trend"] for r in decided[1]["results"]} <= {
                "steady",
                "improving",
                "declining",
            }
            assert decided[0]["results"] != before[0]["results"]  # the policy changed decisions

            # 2. a key made on A works on B; revoked on A, B refuses it
            made = httpx.post(urls[0] + "/v1/keys", headers=auth("admin"),
                              json={"name": "crm-sync", "role": "scorer"})  # fmt: skip
            assert made.status_code == 201, made.text
            new_key = {"Authorization": f"Bearer {made.json()['key']}"}

            def status_on_b() -> int:
                answer = httpx.post(urls[1] + "/v1/score", json={"leads": second[:2]},
                                    headers=new_key, timeout=60)  # fmt: skip
                if answer.status_code == 200:
                    given.append(answer.json())
                return answer.status_code

            wait_for(lambda: status_on_b() == 200, "replica B never accepted the new key")
            revoked = httpx.delete(urls[0] + "/v1/keys/crm-sync", headers=auth("admin"))
            assert revoked.status_code == 200, revoked.text
            wait_for(lambda: status_on_b() == 401, "replica B still accepts a revoked key")

            # 3. a new champion in the registry reaches both
            client.set_registered_model_alias(trained_model.name, "champion", "2")
            for url in urls:
                wait_for(lambda u=url: score(u, second)["model"]["version"] == "2",
                         f"{url} never loaded the new champion")  # fmt: skip

            # 4. every score from both replicas is in the one score log
            engine = sa.create_engine(service_db)
            try:
                expected = sum(len(a["results"]) for a in given)
                with_request = {
                    a["request_id"]: len(a["results"]) for a in given if "request_id" in a
                }

                def logged() -> dict[str, int]:
                    with engine.connect() as connection:
                        rows = connection.execute(sa.text(
                            "SELECT request_id, count(*) FROM score_log GROUP BY request_id"
                        )).all()  # fmt: skip
                    return {r[0]: int(r[1]) for r in rows}

                wait_for(lambda: sum(logged().values()) >= expected,
                         "the score log never held every score")  # fmt: skip
                counts = logged()
                assert sum(counts.values()) == expected
                assert {k: counts[k] for k in with_request} == with_request
                with engine.connect() as connection:
                    versions = dict(connection.execute(sa.text(
                        "SELECT model_version, count(*) FROM score_log GROUP BY model_version"
                    )).all())  # fmt: skip
                    captured = connection.execute(
                        sa.text("SELECT count(DISTINCT lead_id) FROM captured_leads")
                    ).scalar_one()
                assert set(versions) == {"1", "2"}
                # the closed loop's capture: each scored lead stored once, whichever replica saw it
                wait_for(lambda: _captured(engine) == len(records), "capture incomplete")
                assert captured <= len(records)
            finally:
                engine.dispose()


def _captured(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text("SELECT count(DISTINCT lead_id) FROM captured_leads")
            ).scalar_one()
        )
