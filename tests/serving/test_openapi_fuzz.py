"""Schemathesis: requests generated from the OpenAPI schema never get a server error."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from serving.app import create_app
from tests.serving.conftest import auth, model_settings


@pytest.fixture(scope="module")
def fuzzed_app(trained_model, tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz-db") / "leadscore.db"
    app = create_app(model_settings(trained_model, f"sqlite:///{db}"))
    with TestClient(app):  # runs the lifespan: model, database, keys
        yield app


def test_no_server_errors(fuzzed_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/score",
        "GET /v1/model",
        "POST /v1/outcomes",
        "POST /v1/admin/reload",
        "GET /readyz",
    }
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def no_server_error(case):
            for role in ("admin", "scorer"):
                case.call_and_validate(headers=auth(role), checks=[not_a_server_error])

        no_server_error()
