"""Fixtures for the serving tests: databases (SQLite and PostgreSQL), settings, keys and apps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from serving.config import Settings

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
        pytest.skip(POSTGRES_HINT)
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
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'leadscore.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Each storage test runs against SQLite and against the local PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


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
