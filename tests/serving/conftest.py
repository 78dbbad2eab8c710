"""Fixtures for the serving tests: databases (SQLite and PostgreSQL), settings, keys and apps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from serving.config import Settings
from serving.db import make_engine, upgrade_database
from tests.conftest import missing_service
from tests.serving.waiting import wait_for, wait_for_model

POSTGRES_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_HINT = (
    "PostgreSQL is not reachable at 127.0.0.1:5432 (user postgres, database test): start it "
    "(e.g. `pg_ctlcluster 15 main start` or `docker run -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust "
    "-e POSTGRES_DB=test postgres`) to run the PostgreSQL variant"
)
UNREACHABLE_REGISTRY = "http://127.0.0.1:9"

KEYS = {
    "scorer": "ls_test-scorer-key-0123456789abcdef",
    "ops": "ls_test-ops-key-0123456789abcdefghij",
    "admin": "ls_test-admin-key-0123456789abcdefgh",
}
BOOTSTRAP = ",".join(f"{role}-key:{role}:{key}" for role, key in KEYS.items())


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def _postgres_available() -> bool:
    engine = sa.create_engine(POSTGRES_SERVER, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return _postgres_available()


@pytest.fixture
def postgres_url(postgres_available) -> Iterator[str]:
    """A fresh schema in the `test` database, dropped afterwards."""
    if not postgres_available:
        missing_service(POSTGRES_HINT)
    schema = "ls_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(POSTGRES_SERVER)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES_SERVER}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def fresh_databases(postgres_available):
    """Two fresh PostgreSQL databases (the service's, MLflow's), dropped afterwards."""
    if not postgres_available:
        missing_service(POSTGRES_HINT)
    names = [f"ls_replicas_{uuid.uuid4().hex[:8]}", f"ls_mlflow_{uuid.uuid4().hex[:8]}"]
    admin = sa.create_engine(POSTGRES_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in names:
            connection.execute(sa.text(f"CREATE DATABASE {name}"))
    base = POSTGRES_SERVER.rsplit("/", 1)[0]
    try:
        yield [f"{base}/{name}" for name in names]
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'leadscore.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Each storage test runs against SQLite and against the local PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(database_url):
    """An engine on `database_url`, migrated to the newest revision."""
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def no_registry(monkeypatch) -> str:
    """An MLflow registry that refuses connections, failing fast."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    return UNREACHABLE_REGISTRY


def make_settings(database_url: str, tracking_uri: str, **overrides) -> Settings:
    values = dict(
        database_url=database_url,
        mlflow_tracking_uri=tracking_uri,
        api_keys_bootstrap=BOOTSTRAP,
        key_cache_seconds=0.2,
        score_log_flush_seconds=0.05,
        model_retry_seconds=3600,
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def client_without_model(database_url, no_registry) -> Iterator[TestClient]:
    """The service with its database but no reachable model registry (readiness false)."""
    from serving.app import create_app

    app = create_app(make_settings(database_url, no_registry))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def sqlite_client_without_model(sqlite_url, no_registry) -> Iterator[TestClient]:
    from serving.app import create_app

    app = create_app(make_settings(sqlite_url, no_registry))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


AppFactory = Callable[..., TestClient]


# --------------------------------------------------------------------------------------------
# A real model: demo data -> `training.train` -> MLflow (SQLite) registry, once per session.


class TrainedModel:
    def __init__(self, root, tracking_uri: str, demo_dir, name: str, versions: list[str]) -> None:
        self.root = root
        self.tracking_uri = tracking_uri
        self.demo_dir = demo_dir
        self.name = name
        self.versions = versions

    def client(self):
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)

    def set_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(self.name, alias, version)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> Iterator[TrainedModel]:
    from features.data.demo import create_demo_data
    from training.train import TrainingConfig, resolve_config, train

    root = tmp_path_factory.mktemp("registry")
    tracking = f"sqlite:///{root / 'mlflow.db'}"
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", tracking)
    demo = root / "demo"
    create_demo_data(demo, 1000, seed=3, formats=("parquet",))
    config = resolve_config(
        None,
        leads=demo / "leads.parquet",
        touchpoints=demo / "touchpoints.parquet",
        outcomes=demo / "outcomes.parquet",
    )
    config.training = TrainingConfig(
        search="none", cv_folds=1, splines=False, max_training_rows=None
    )
    with patch.context() as inside:
        inside.chdir(root)  # MLflow puts artifacts under the working directory
        result = train(config, seed=1)
    model = TrainedModel(root, tracking, demo, result.model_name, [result.version])
    # The same model registered again: a second version to reload to.
    client = model.client()
    first = client.get_model_version(model.name, result.version)
    second = client.create_model_version(model.name, first.source, run_id=first.run_id)
    model.versions.append(str(second.version))
    try:
        yield model
    finally:
        patch.undo()


def model_settings(trained_model: TrainedModel, database_url: str, **overrides) -> Settings:
    return make_settings(
        database_url,
        trained_model.tracking_uri,
        model_uri=overrides.pop(
            "model_uri", f"models:/{trained_model.name}/{trained_model.versions[0]}"
        ),
        **overrides,
    )


@pytest.fixture(scope="session")
def scoring_app(trained_model, tmp_path_factory):
    """One app serving version 1 on SQLite, shared by the read-mostly API tests."""
    from serving.app import create_app

    db = tmp_path_factory.mktemp("scoring-db") / "leadscore.db"
    app = create_app(model_settings(trained_model, f"sqlite:///{db}"))
    with TestClient(app, raise_server_exceptions=False) as client:
        wait_for_model(client)
        yield client


@pytest.fixture(scope="module")
def fuzzed_app(trained_model, tmp_path_factory):
    """An app serving version 1 on SQLite for one fuzz test file (tests/serving/fuzzing.py): each
    file fuzzes its own, so xdist can run the files side by side."""
    from schemathesis.python import asgi as schemathesis_asgi

    from serving.app import create_app

    db = tmp_path_factory.mktemp("fuzz-db") / "leadscore.db"
    app = create_app(model_settings(trained_model, f"sqlite:///{db}"))
    # Schemathesis runs the app's lifespan itself (from its first call to the test's teardown):
    # start it here and wait for the model, so no case meets the 503 of a model still loading.
    with schemathesis_asgi.get_client(app):
        wait_for(lambda: app.state.services.models.ready, "the fuzzed app's model did not load")
    yield app


def demo_records(
    trained_model: TrainedModel,
    n: int,
    as_of: str = "2025-06-01T00:00:00Z",
    as_exported: bool = False,
) -> list[dict]:
    """`n` demo leads as API records. Touchpoint spellings are kept as exported except the ones the
    contract does not know (files and the API read them as `other`, the API with a warning): sent
    as `other`, unless `as_exported`."""
    import pyarrow.parquet as pq

    from features.data.vocabulary import lookup_activity, lookup_channel

    leads = pq.read_table(trained_model.demo_dir / "leads.parquet").slice(0, n).to_pylist()
    touches = pq.read_table(trained_model.demo_dir / "touchpoints.parquet").to_pylist()
    by_lead: dict[str, list[dict]] = {}
    for t in touches:
        by_lead.setdefault(t["lead_id"], []).append(t)
    records = []
    for lead in leads:
        records.append(
            {
                "lead_id": lead["lead_id"],
                "created_at": lead["created_at"].isoformat(),
                "as_of": as_of,
                "attributes": {k: v for k, v in lead.items() if k not in ("lead_id", "created_at")},
                "touchpoints": [
                    {
                        "occurred_at": t["occurred_at"].isoformat(),
                        "channel": t["channel"]
                        if as_exported or lookup_channel(t["channel"])
                        else "other",
                        "activity": t["activity"]
                        if as_exported or lookup_activity(t["activity"])
                        else "other",
                        "campaign": t["campaign"],
                        "value": t["value"],
                    }
                    for t in by_lead.get(lead["lead_id"], [])
                ],
            }
        )
    return records
