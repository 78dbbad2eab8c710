"""The service refuses a model version it cannot trust or that cannot score, on reload, polling
and start, and the last good model keeps serving (MLflow's real SQLite registry)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from serving.app import create_app
from tests.features.model.registered import (
    MARKER_CODE,
    log_and_register,
    recalibrated,
    svc_scorer,
    tampered,
)
from tests.features.model.test_artifact import _scorer
from tests.serving.conftest import auth, make_settings
from tests.serving.waiting import wait_for, wait_for_fresh_run, wait_for_model

LEAD = {
    "lead_id": "L-1",
    "created_at": "2024-02-20T00:00:00Z",
    "as_of": "2024-03-02T00:00:00Z",
    "attributes": {"industry": "Software", "Job Title": "CFO", "employees": 120},
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """v1 and v2: boosted trees registered as `leadscore train` does; v3: an SVC that refuses
    missing values, logged as releases before sample leads did (input example only)."""
    import mlflow

    root = tmp_path_factory.mktemp("safety-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("t", artifact_location=(root / "store").as_uri())
    versions = [
        log_and_register(experiment, _scorer(1)[0]),
        log_and_register(experiment, _scorer(2)[0]),
        log_and_register(experiment, svc_scorer(), before_checks=True),
    ]
    assert versions == ["1", "2", "3"]
    yield uri
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


def set_alias(alias: str, version: str) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias("lead-scoring", alias, version)


def failures(stage: str) -> float:
    value = REGISTRY.get_sample_value("leadscore_model_load_failures_total", {"stage": stage})
    return value or 0.0


def serving(registry: str, sqlite_url: str, alias: str, **overrides) -> TestClient:
    settings = make_settings(
        sqlite_url, registry, model_uri=f"models:/lead-scoring@{alias}", **overrides
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


def assert_version_1_serves(client: TestClient) -> None:
    scored = client.post("/v1/score", json={"leads": [LEAD]}, headers=auth("scorer"))
    assert scored.status_code == 200, scored.text
    assert scored.json()["model"]["version"] == "1"
    ready = client.get("/readyz", headers=auth("admin"))
    assert ready.status_code == 200
    assert ready.json()["checks"]["model"]["version"] == "1"


def other_estimator() -> bytes:
    """The estimator file of another model: a well-formed file, just not the registered one."""
    import skops.io as sio

    return sio.dumps(_scorer(5)[0].estimator.model)


@pytest.mark.parametrize(
    "file,content,problem",
    [
        ("artifacts/estimator.skops", "estimator",
         "artifacts/estimator.skops was changed since it was registered"),
        ("pyfunc_entry.py", "marker", "pyfunc_entry.py was changed since it was registered"),
        ("code/features/model/scorer.py", "marker",
         "code/features/model/scorer.py was changed since it was registered"),
        ("code/features/evil.py", "marker",
         "code/features/evil.py was not there when it was registered"),
    ],
)  # fmt: skip
def test_a_tampered_version_is_refused_at_reload_and_the_last_good_keeps_serving(
    registry, sqlite_url, tmp_path, file, content, problem
):
    marker = tmp_path / "ran"
    data = other_estimator() if content == "estimator" else MARKER_CODE.format(path=str(marker))
    set_alias("reload-safety", "1")
    with serving(registry, sqlite_url, "reload-safety") as client:
        wait_for_model(client)
        before = failures("reload")
        set_alias("reload-safety", "2")
        with tampered("2", file, data if isinstance(data, bytes) else data.encode()):
            response = client.post("/v1/admin/reload", headers=auth("admin"))
        assert response.status_code == 502
        assert response.json()["detail"] == (
            "reload failed, version 1 keeps serving: model v2 is refused: its files are not the "
            f"ones recorded when it was registered: {problem}; nothing of it was loaded. Restore "
            "its files from a backup, or register a new version (`leadscore train`)"
        )
        assert not marker.exists()  # the bundled code never ran
        assert failures("reload") == before + 1
        assert_version_1_serves(client)
        ready = client.get("/readyz", headers=auth("admin")).json()["checks"]["model"]
        assert ready["last_reload_error"].startswith("model v2 is refused: ")
        # the files restored, the same version loads
        reloaded = client.post("/v1/admin/reload", headers=auth("admin"))
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["version"] == "2"


def test_a_model_that_cannot_score_is_refused_at_reload(registry, sqlite_url):
    set_alias("cannot-score", "1")
    with serving(registry, sqlite_url, "cannot-score") as client:
        wait_for_model(client)
        before = failures("reload")
        set_alias("cannot-score", "3")
        response = client.post("/v1/admin/reload", headers=auth("admin"))
        assert response.status_code == 502
        assert response.json()["detail"].startswith(
            "reload failed, version 1 keeps serving: model v3 cannot score its own sample leads: "
            "ValueError: Input X contains NaN."
        )
        assert failures("reload") == before + 1
        assert_version_1_serves(client)


def test_polling_refuses_a_tampered_version_and_keeps_serving(registry, sqlite_url):
    set_alias("poll-safety", "1")
    with serving(registry, sqlite_url, "poll-safety", model_poll_seconds=0.2) as client:
        wait_for_model(client)
        models = client.app.state.services.models
        before = failures("poll")
        with tampered("2", "artifacts/scorer.json", recalibrated("2")):
            set_alias("poll-safety", "2")
            wait_for(
                lambda: failures("poll") > before or models.current.version != "1",
                "the new version was never polled",
            )
            wait_for_fresh_run(models.polling, "the alias was not polled again")
            assert_version_1_serves(client)
        assert client.get("/readyz", headers=auth("admin")).json()["checks"]["model"][
            "last_reload_error"
        ] == (
            "model v2 is refused: its files are not the ones recorded when it was registered: "
            "artifacts/scorer.json was changed since it was registered; nothing of it was "
            "loaded. Restore its files from a backup, or register a new version "
            "(`leadscore train`)"
        )


def test_a_tampered_champion_is_not_served_at_start_and_readiness_says_why(registry, sqlite_url):
    set_alias("start-safety", "2")
    with tampered("2", "code/features/__init__.py", b"raise SystemExit('ran')\n"):
        with serving(registry, sqlite_url, "start-safety") as client:
            models = client.app.state.services.models
            wait_for(lambda: models.last_error, "the first load never failed")
            response = client.get("/readyz", headers=auth("admin"))
            assert response.status_code == 503
            assert response.json()["checks"]["model"] == {
                "ok": False,
                "error": "loading model models:/lead-scoring@start-safety: model v2 is refused: "
                "its files are not the ones recorded when it was registered: "
                "code/features/__init__.py was changed since it was registered; nothing of it "
                "was loaded. Restore its files from a backup, or register a new version "
                "(`leadscore train`); retrying every 3600 s",
            }
            scored = client.post("/v1/score", json={"leads": [LEAD]}, headers=auth("scorer"))
            assert scored.status_code == 503
            assert scored.json()["detail"].startswith(
                "no model loaded yet: loading model models:/lead-scoring@start-safety: model v2 "
                "is refused: "
            )


def test_a_version_registered_without_hashes_serves_with_a_warning_in_readiness(
    registry, sqlite_url
):
    from mlflow import MlflowClient

    client = MlflowClient()
    source = client.get_model_version("lead-scoring", "1")
    old = client.create_model_version("lead-scoring", source.source, run_id=source.run_id).version
    set_alias("unhashed", old)
    try:
        with serving(registry, sqlite_url, "unhashed") as app:
            wait_for_model(app)
            assert app.get("/readyz", headers=auth("admin")).json()["checks"]["model"][
                "warnings"
            ] == [
                f"model v{old} has no file hashes in the registry (tag leadscore.hashes_sha256: "
                "registered before leadscore recorded them): its files are not checked"
            ]
        with serving(registry, sqlite_url, "unhashed", model_require_hashes=True) as app:
            models = app.app.state.services.models
            wait_for(lambda: models.last_error, "the first load never failed")
            assert models.current is None
            assert models.last_error.startswith(
                f"model v{old} is refused: the registry holds no file hashes for it"
            )
    finally:
        client.delete_model_version("lead-scoring", old)


def test_leadscore_train_registers_file_hashes_and_sample_leads(trained_model):
    import hashlib
    import json

    from features.model import artifact
    from tests.features.model.registered import version_directory

    client = trained_model.client()
    version = trained_model.versions[0]
    tags = client.get_model_version(trained_model.name, version).tags
    directory = version_directory(version)
    assert (
        tags[artifact.HASHES_TAG]
        == hashlib.sha256((directory / artifact.HASHES_FILE).read_bytes()).hexdigest()
    )
    samples = json.loads((directory / "artifacts/samples.json").read_text())
    lead_ids = samples["leads"]["lead_id"]
    assert len(lead_ids) == len(set(lead_ids)) == artifact.SAMPLE_LEADS + 1
    assert lead_ids[-1] == artifact.EMPTY_LEAD_ID
    warnings: list[str] = []
    artifact.load_model_scorer(
        f"models:/{trained_model.name}/{version}", trained_model.tracking_uri, warn=warnings.append
    )
    assert warnings == []
