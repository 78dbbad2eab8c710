"""Schemathesis with all its checks: requests generated from the OpenAPI schema (valid and
invalid ones) get the documented statuses, media types, headers and bodies, valid requests are
accepted and invalid ones refused (invalid leads of a score request: rejected in the answer),
auth is enforced, and nothing is a server error. tests/serving/schemathesis_hooks.py says what
the generation respects beyond JSON Schema, and why.

The operations are shared out between this file and test_openapi_fuzz_leads.py, each fuzzing
its own app (`fuzzed_app`) with the same loop (tests/serving/fuzzing.py), so that xdist runs
them side by side: as one test on one worker they were the suite's longest tail. The leads file
owns every operation that writes or reads what is held about leads, on one app in the schema's
order, so its readers still meet what the fuzzed writes stored (a lead found and erased with its
score-log rows, monitoring over the fuzzed scores). This file owns the rest, and a test checks
that every operation of the schema is fuzzed by exactly one file.
"""

from __future__ import annotations

import schemathesis

from serving.app import create_app
from tests.serving import test_openapi_fuzz_leads
from tests.serving.conftest import UNREACHABLE_REGISTRY, make_settings
from tests.serving.fuzzing import fuzz_with_all_checks, operation_labels

# The model, keys, the policy and its history, health: none reads or writes lead data.
OPERATIONS = (
    "GET /v1/model",
    "POST /v1/admin/reload",
    "GET /v1/keys",
    "POST /v1/keys",
    "DELETE /v1/keys/{name}",
    "GET /v1/policy",
    "PUT /v1/policy",
    "POST /v1/policy/rollback",
    "POST /v1/policy/restore-default",
    "GET /v1/policy/history",
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
)
FUZZ_FILES = {
    __name__: OPERATIONS,
    test_openapi_fuzz_leads.__name__: test_openapi_fuzz_leads.OPERATIONS,
}


def test_every_operation_is_fuzzed_by_exactly_one_file(sqlite_url):
    # The schema as served, without starting the app (no model, no lifespan).
    app = create_app(make_settings(sqlite_url, UNREACHABLE_REGISTRY))
    schema = operation_labels(schemathesis.openapi.from_dict(app.openapi()))
    owners: dict[str, list[str]] = {label: [] for label in schema}
    for module, owned in FUZZ_FILES.items():
        for label in owned:
            owners.setdefault(label, []).append(module)
    unowned = sorted(label for label, modules in owners.items() if not modules)
    assert not unowned, (
        f"fuzzed by no file: {unowned}; add each to the OPERATIONS of "
        "test_openapi_fuzz_leads.py if it writes or reads lead data, else of test_openapi_fuzz.py"
    )
    shared = {label: modules for label, modules in owners.items() if len(modules) > 1}
    assert not shared, f"owned more than once: {shared}"
    gone = sorted(set(owners) - set(schema))
    assert not gone, f"owned but not operations of the schema: {gone}"


def test_schemathesis_finds_nothing_with_all_checks(fuzzed_app):
    fuzz_with_all_checks(fuzzed_app, OPERATIONS)
