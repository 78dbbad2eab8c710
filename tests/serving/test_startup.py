"""The port opens at once: `leadscore serve` answers /healthz while the model registry does not
answer, and /readyz says why it is not ready (no credentials shown). How fast it opens is
measured in bench/startup.py, not here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import BOOTSTRAP, UNREACHABLE_REGISTRY, auth
from tests.serving.servers import SilentRegistry, free_port, server_process, wait_until_up
from tests.serving.waiting import wait_for

LEADSCORE = str(Path(sys.executable).with_name("leadscore"))


@pytest.mark.slow
def test_healthz_answers_while_the_registry_holds_the_first_model_load(tmp_path):
    registry = SilentRegistry()
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"http://leadscore:s3cret@127.0.0.1:{registry.port}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",  # longer than the test: the registry holds it
        "LEADSCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'leadscore.db'}",
        "LEADSCORE_API_KEYS_BOOTSTRAP": BOOTSTRAP,
        "LEADSCORE_MODEL_RETRY_SECONDS": "3600",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    base, log = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    command = [LEADSCORE, "serve", "--port", str(port)]
    try:
        with server_process(command, env=env, cwd=tmp_path, log=log) as server:
            wait_until_up(base, server, log)
            # The first model load is out at the registry, unanswered, and yet:
            wait_for(lambda: registry.connections >= 1, "the model load never reached the registry")
            assert httpx.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
            waiting = httpx.get(f"{base}/readyz", headers=auth("admin"), timeout=5)
            assert not registry.released
            assert waiting.status_code == 503
            assert waiting.json()["checks"]["model"] == {
                "ok": False,
                "error": "loading model models:/lead-scoring@champion: the first attempt is in "
                "progress",
            }

            registry.release()  # it hangs up: the attempt fails as "unreachable"
            wait_for(lambda: "in progress" not in model_error(base), "the attempt never ended")
            failed = httpx.get(f"{base}/readyz", headers=auth("admin"), timeout=5)
            assert failed.status_code == 503
            error = failed.json()["checks"]["model"]["error"]
            assert error.startswith(
                "loading model models:/lead-scoring@champion: registry unreachable, retrying "
                "every 3600 s (cannot load models:/lead-scoring@champion from the MLflow registry "
                f"at http://leadscore:***@127.0.0.1:{registry.port}: "
            )
            assert "s3cret" not in failed.text
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        assert "s3cret" not in log.read_text()
    finally:
        registry.close()


def model_error(base: str) -> str:
    return httpx.get(f"{base}/readyz", headers=auth("admin"), timeout=5).json()["checks"]["model"][
        "error"
    ]


@pytest.mark.slow
def test_a_database_that_cannot_be_opened_stops_serve_with_the_reason_and_no_password(tmp_path):
    port = free_port()
    closed = free_port()  # nothing listens there
    env = {
        **os.environ,
        "LEADSCORE_DATABASE_URL": f"postgresql+psycopg://app:hunter2@127.0.0.1:{closed}/leads",
        "MLFLOW_TRACKING_URI": UNREACHABLE_REGISTRY,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    log = tmp_path / "server.log"
    with server_process(
        [LEADSCORE, "serve", "--port", str(port)], env=env, cwd=tmp_path, log=log
    ) as server:
        wait_for(lambda: server.poll() is not None, "serve kept running without its database")
    text = log.read_text()
    assert server.returncode == 2, text
    assert "the service could not start: cannot open the database" in text
    assert f"postgresql+psycopg://app:***@127.0.0.1:{closed}/leads" in text
    assert "hunter2" not in text
    assert "Traceback" not in text


def test_while_the_service_loads_health_answers_and_the_rest_asks_to_retry():
    """serving/boot.py before the service is up: what uvicorn serves from its first moment."""
    import asyncio

    from serving.boot import BootingApp

    async def call(path: str) -> tuple[int, dict[str, str], bytes]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        app = BootingApp()  # not started: its lifespan never ran
        await app({"type": "http", "path": path, "method": "GET"}, receive, send)
        headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
        return sent[0]["status"], headers, sent[1]["body"]

    status, _, body = asyncio.run(call("/healthz"))
    assert (status, body) == (200, b'{"status": "ok"}')
    status, _, body = asyncio.run(call("/readyz"))
    assert (status, body) == (503, b'{"status": "not ready", "reason": "starting"}')
    status, headers, body = asyncio.run(call("/v1/score"))
    assert status == 503
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/problem+json"
    assert b"the service is starting" in body


def test_a_serving_worker_collects_less_often_and_gives_the_thresholds_back(
    sqlite_url, no_registry, monkeypatch
):
    """While the app serves, the collector runs at `GC_THRESHOLDS` (a 1,000-lead request's
    objects no longer set off collections all along it: bench/serve.py); after, as before."""
    import gc

    from fastapi.testclient import TestClient

    import serving.app
    from serving.app import GC_THRESHOLDS, create_app
    from tests.serving.conftest import make_settings

    # a process of its own: no other test's app serving in it
    monkeypatch.setattr(serving.app, "_serving", {"apps": 0, "thresholds": None})
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # Python's defaults
    try:
        first = TestClient(create_app(make_settings(sqlite_url, no_registry)))
        second = TestClient(create_app(make_settings(sqlite_url, no_registry)))
        with first:
            assert first.get("/healthz").status_code == 200
            assert gc.get_threshold() == GC_THRESHOLDS
            second.__enter__()
        # the first stopped before the second: the second still serves at its thresholds
        assert gc.get_threshold() == GC_THRESHOLDS
        second.__exit__(None, None, None)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
