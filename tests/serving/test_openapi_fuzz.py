"""Schemathesis with all its checks: requests generated from the OpenAPI schema (valid and
invalid ones) get the documented statuses, media types, headers and bodies, valid requests are
accepted and invalid ones refused (invalid leads of a score request: rejected in the answer),
auth is enforced, and nothing is a server error. tests/serving/schemathesis_hooks.py says what
the generation respects beyond JSON Schema, and why."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection
from schemathesis.python import asgi as schemathesis_asgi

from serving.app import create_app
from tests.serving.conftest import auth, model_settings
from tests.serving.schemathesis_hooks import negative_data_rejection_per_lead
from tests.serving.waiting import wait_for


@pytest.fixture(scope="module")
def fuzzed_app(trained_model, tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz-db") / "leadscore.db"
    app = create_app(model_settings(trained_model, f"sqlite:///{db}"))
    # Schemathesis runs the app's lifespan itself (once for the process, on its first call):
    # start it here and wait for the model, so no case meets the 503 of a model still loading.
    with schemathesis_asgi.get_client(app):
        wait_for(lambda: app.state.services.models.ready, "the fuzzed app's model did not load")
    yield app


def test_schemathesis_finds_nothing_with_all_checks(fuzzed_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/score",
        "GET /v1/model",
        "POST /v1/outcomes",
        "POST /v1/admin/reload",
        "GET /readyz",
        "PUT /v1/policy",
        "POST /v1/policy/simulate",
    }
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=15,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def all_checks(case):
                for role in ("admin", "scorer"):
                    case.call_and_validate(  # every check; invalid leads: see the hooks module
                        headers=auth(role),
                        excluded_checks=[negative_data_rejection],
                        additional_checks=[negative_data_rejection_per_lead],
                    )

            try:
                all_checks()
            except Unsatisfiable:
                # no invalid request exists for an operation without parameters or body
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as error:  # each operation: first failure
                failures.append(f"{operation.label} ({mode.value}): {error}"[:3000])
    assert not failures, "\n\n".join(failures)
