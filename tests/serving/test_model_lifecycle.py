"""Loading, reloading and retrying the model from a real MLflow registry."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import auth, demo_records, model_settings
from tests.serving.waiting import wait_for, wait_for_fresh_run, wait_for_model


def test_unreachable_registry_means_not_ready_and_a_clear_message(client_without_model):
    models = client_without_model.app.state.services.models
    wait_for(lambda: models.last_error, "the first model load never failed")
    response = client_without_model.get("/readyz", headers=auth("admin"))
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == {"ok": True, "dead_letters": 0}
    assert checks["model"]["ok"] is False
    assert checks["model"]["error"].startswith(
        "loading model models:/lead-scoring@champion: registry unreachable, retrying every "
        "3600 s (cannot load models:/lead-scoring@champion from the MLflow registry at "
        "http://127.0.0.1:9: "
    )
    assert client_without_model.get("/healthz").json() == {"status": "ok"}
    assert (
        'leadscore_model_load_failures_total{stage="start"}'
        in client_without_model.get("/metrics").text
    )


def test_loading_is_retried_until_the_alias_exists(trained_model, sqlite_url):
    alias = "retry-test"
    settings = model_settings(
        trained_model,
        sqlite_url,
        model_uri=f"models:/{trained_model.name}@{alias}",
        model_retry_seconds=0.2,
    )
    with TestClient(create_app(settings)) as client:
        models = client.app.state.services.models
        wait_for(lambda: models.last_error, "the first model load never failed")
        response = client.get("/readyz", headers=auth("admin"))
        assert response.status_code == 503
        error = response.json()["checks"]["model"]["error"]
        assert error.startswith(
            f"loading model models:/lead-scoring@{alias}: cannot load "
            f"models:/lead-scoring@{alias} from the MLflow registry"
        )
        assert error.endswith("; retrying every 0.2 s")
        assert alias in error.split("registry at", 1)[1]
        retrying = models.retrying
        assert retrying.running and retrying.interval == 0.2
        trained_model.set_alias(alias, trained_model.versions[0])
        wait_for_fresh_run(retrying, "the model load was not retried")
        ready = client.get("/readyz", headers=auth("admin"))
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["model"]["version"] == trained_model.versions[0]
        assert not retrying.running  # loaded: nothing left to retry


def test_reload_swaps_in_the_new_champion_without_dropping_requests(trained_model, sqlite_url):
    alias = "reload-test"
    trained_model.set_alias(alias, trained_model.versions[0])
    settings = model_settings(
        trained_model, sqlite_url, model_uri=f"models:/{trained_model.name}@{alias}"
    )
    records = demo_records(trained_model, 3)
    # (sent, answered, status, version) of each request, in the order they were answered; the
    # moments are only compared with each other (which came first), never with a duration
    answers: list[tuple[float, float, int, str | None]] = []
    with TestClient(create_app(settings)) as client:
        wait_for_model(client)
        stop = threading.Event()

        def traffic():
            while not stop.is_set():
                sent = time.monotonic()
                response = client.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
                ok = response.status_code == 200
                version = response.json()["model"]["version"] if ok else None
                answers.append((sent, time.monotonic(), response.status_code, version))

        workers = [threading.Thread(target=traffic) for _ in range(3)]
        for w in workers:
            w.start()
        wait_for(lambda: len(answers) >= 5, "no traffic")
        trained_model.set_alias(alias, trained_model.versions[1])
        reload_sent = time.monotonic()
        response = client.post("/v1/admin/reload", headers=auth("admin"))
        reloaded = time.monotonic()
        assert response.status_code == 200, response.text
        assert response.json() == {
            "name": "lead-scoring",
            "version": trained_model.versions[1],
            "previous_version": trained_model.versions[0],
            "changed": True,
        }
        wait_for(
            lambda: sum(sent > reloaded for sent, *_ in answers) >= 5, "no traffic after the reload"
        )
        stop.set()
        for w in workers:
            w.join()
    assert {status for _, _, status, _ in answers} == {200}  # nothing dropped
    # answered before the reload was asked: the old version; sent after it answered: the new one.
    # A request in flight across the swap keeps the model it started with (chosen at its start),
    # so it may be answered by the old version after a later request was answered by the new.
    before = {version for _, answered, _, version in answers if answered < reload_sent}
    after = {version for sent, _, _, version in answers if sent > reloaded}
    assert before == {trained_model.versions[0]}
    assert after == {trained_model.versions[1]}


def test_failed_reload_keeps_the_last_good_model(trained_model, sqlite_url):
    alias = "failing-reload-test"
    trained_model.set_alias(alias, trained_model.versions[0])
    settings = model_settings(
        trained_model, sqlite_url, model_uri=f"models:/{trained_model.name}@{alias}"
    )
    records = demo_records(trained_model, 2)
    with TestClient(create_app(settings)) as client:
        wait_for_model(client)
        trained_model.client().delete_registered_model_alias(trained_model.name, alias)
        response = client.post("/v1/admin/reload", headers=auth("admin"))
        assert response.status_code == 502
        detail = response.json()["detail"]
        assert detail.startswith(
            f"reload failed, version {trained_model.versions[0]} keeps serving: cannot load"
        )
        scored = client.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
        assert scored.status_code == 200
        assert scored.json()["model"]["version"] == trained_model.versions[0]
        ready = client.get("/readyz", headers=auth("admin")).json()
        assert ready["status"] == "ready"
        assert "cannot load" in ready["checks"]["model"]["last_reload_error"]
        assert 'leadscore_model_load_failures_total{stage="reload"}' in client.get("/metrics").text


@pytest.mark.parametrize("role", ["scorer", "ops"])
def test_only_admins_reload(sqlite_client_without_model, role):
    response = sqlite_client_without_model.post("/v1/admin/reload", headers=auth(role))
    assert response.status_code == 403


def test_polling_follows_the_alias(trained_model, sqlite_url):
    alias = "poll-test"
    trained_model.set_alias(alias, trained_model.versions[0])
    settings = model_settings(
        trained_model,
        sqlite_url,
        model_uri=f"models:/{trained_model.name}@{alias}",
        model_poll_seconds=0.2,
    )
    with TestClient(create_app(settings)) as client:
        wait_for_model(client)
        version = lambda: client.get("/v1/model", headers=auth("scorer")).json()["version"]  # noqa: E731
        assert version() == trained_model.versions[0]
        polling = client.app.state.services.models.polling
        assert polling is not None and polling.interval == 0.2
        trained_model.set_alias(alias, trained_model.versions[1])
        wait_for_fresh_run(polling, "the alias was not polled")
        assert version() == trained_model.versions[1]


def test_a_python_model_without_a_lead_scorer_fails_at_load_with_what_to_do():
    from serving.model_store import ModelLoadError, _find_scorer

    class OldScorer:  # has the per-lead method only, not the batcher's score_columns
        def score_records(self, records):
            return []

    class Wrapper:
        def __init__(self):
            self.scorer = OldScorer()

    with pytest.raises(ModelLoadError) as error:
        _find_scorer(Wrapper())
    assert str(error.value) == (
        "the MLflow model's python model (Wrapper) holds no LeadScorer; register a model trained "
        "with `leadscore train`"
    )
