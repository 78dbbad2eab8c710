"""Schemathesis with all its checks (test_openapi_fuzz.py says which, and how the operations are
shared out) over every operation that writes or reads what is held about leads: on one app and
in the schema's order, so the readers (a lead, its erasure, the reports, monitoring, simulations
on recent scores) meet what the fuzzed scores, events and outcomes stored."""

from __future__ import annotations

from tests.serving.fuzzing import fuzz_with_all_checks

OPERATIONS = (
    "POST /v1/score",
    "POST /v1/events",
    "POST /v1/outcomes",
    "GET /v1/leads/{lead_id}",
    "DELETE /v1/leads/{lead_id}",
    "GET /v1/reports/funnel",
    "POST /v1/policy/simulate",
    "GET /v1/reports/exploration",
    "GET /v1/ops/monitoring",
)


def test_schemathesis_finds_nothing_with_all_checks(fuzzed_app):
    fuzz_with_all_checks(fuzzed_app, OPERATIONS)
