"""Waiting for background work in tests without asserting how fast it is.

Timing claims live in bench/ (STYLE.md). A test waits for an event (a refresher run, a row in the
database); the long timeout only stops a broken test from hanging the suite, it is not a claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from serving.model_store import LoadedModel
from serving.refresher import Refresher

HANG_GUARD_SECONDS = 120.0


def wait_for(condition: Callable[[], object], what: str, timeout: float = HANG_GUARD_SECONDS):
    """Poll `condition` until it is true; fail naming `what` if it never is (hang guard only)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"{what} (still not after {timeout:.0f} s)"
        time.sleep(0.02)
    return result


def wait_for_fresh_run(refresher: Refresher, what: str) -> None:
    """Wait until `refresher` has finished a whole call that started after this one was made
    (the call in progress now may have read the old state, so two more runs), or has stopped
    (a refresher may stop itself once done). The caller then asserts the state it expects."""
    target = refresher.runs + 2
    wait_for(lambda: refresher.runs >= target or not refresher.running, what)


def wait_for_model(client: Any) -> LoadedModel:
    """Wait until the first model load of `client`'s app (a TestClient) has ended: it runs in the
    background, the lifespan no longer waits for it. Fails with the load error if it failed."""
    models = client.app.state.services.models
    wait_for(
        lambda: models.current is not None or models.last_error is not None,
        "the first model load never ended",
    )
    assert models.current is not None, models.last_error
    return models.current
