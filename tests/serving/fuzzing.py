"""The fuzz loop of tests/serving/test_openapi_fuzz*.py: Schemathesis with all its checks over the
operations one test file owns (test_openapi_fuzz.py says what is checked and how the operations
are shared out between the files)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection

from tests.serving.conftest import auth
from tests.serving.schemathesis_hooks import negative_data_rejection_per_lead


def operation_labels(schema: Any) -> list[str]:
    """Every operation of a loaded schema as "METHOD /path", in the schema's order."""
    return [result.ok().label for result in schema.get_all_operations()]


def fuzz_with_all_checks(app: Any, owned: Collection[str]) -> None:
    """Fuzz the `owned` operations of `app` in the schema's order, valid and invalid requests,
    each as admin and as scorer; fail listing every operation's first failure in each mode."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    unknown = set(owned) - {operation.label for operation in operations}
    assert not unknown, f"owned but not operations of the schema: {sorted(unknown)}"
    failures: list[str] = []
    for operation in (operation for operation in operations if operation.label in owned):
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
