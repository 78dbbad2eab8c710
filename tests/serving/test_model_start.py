"""ModelStore.start returns at once; until the first load succeeds, its status says why there is
no model (with a stand-in loader: the real registry is in test_startup and test_model_safety)."""

from __future__ import annotations

import logging
import queue
import threading

import pytest

from serving.model_store import LoadedModel, ModelLoadError, ModelNotLoaded, ModelStore
from tests.serving.waiting import HANG_GUARD_SECONDS, wait_for

URI = "models:/lead-scoring@champion"


def test_start_returns_while_the_first_load_waits_and_status_says_why():
    calls = threading.Semaphore(0)
    outcomes: queue.Queue[Exception | None] = queue.Queue()

    def loader(uri: str, tracking_uri: str) -> LoadedModel:
        calls.release()
        outcome = outcomes.get(timeout=HANG_GUARD_SECONDS)  # what "the registry" answers
        if outcome is not None:
            raise outcome
        return LoadedModel(scorer=None, name="lead-scoring", version="7", alias="champion", uri=uri)

    store = ModelStore(URI, "http://ops:s3cret@mlflow:5000", retry_seconds=0.05, loader=loader)
    store.start()  # returns with the load still waiting on the registry
    try:
        assert calls.acquire(timeout=HANG_GUARD_SECONDS), "the first load never started"
        assert store.status() == {
            "ok": False,
            "error": "loading model models:/lead-scoring@champion: the first attempt is in "
            "progress",
        }
        outcomes.put(
            ModelLoadError(
                "cannot load models:/lead-scoring@champion from the MLflow registry at "
                "http://ops:***@mlflow:5000: connection refused",
                registry_unreachable=True,
            )
        )
        assert calls.acquire(timeout=HANG_GUARD_SECONDS), "the load was not retried"
        assert store.status() == {
            "ok": False,
            "error": "loading model models:/lead-scoring@champion: registry unreachable, "
            "retrying every 0.05 s (cannot load models:/lead-scoring@champion from the MLflow "
            "registry at http://ops:***@mlflow:5000: connection refused)",
        }
        outcomes.put(None)
        wait_for(lambda: store.ready, "the retry never loaded the model")
        assert store.status() == {"ok": True, "name": "lead-scoring", "version": "7"}
        wait_for(lambda: not store.retrying.running, "the retry loop did not stop once loaded")
    finally:
        outcomes.put(None)
        store.stop()


def test_a_failure_that_is_not_the_registry_is_shown_as_it_is_and_credentials_never():
    def loader(uri: str, tracking_uri: str) -> LoadedModel:
        raise RuntimeError(f"cannot open {tracking_uri}/api")

    store = ModelStore(
        "runs:/abc/model", "https://u:s3cret@mlflow", retry_seconds=3600, loader=loader
    )
    store.start()
    try:
        wait_for(lambda: store.last_error, "the first load never failed")
        reason = (
            "loading model runs:/abc/model: cannot load runs:/abc/model: RuntimeError: cannot "
            "open https://u:***@mlflow/api; retrying every 3600 s"
        )
        assert store.status() == {"ok": False, "error": reason}
        with pytest.raises(ModelNotLoaded) as error:
            store.require()
        assert str(error.value) == f"no model loaded yet: {reason}"
    finally:
        store.stop()


@pytest.mark.parametrize("answer", ["refused", "loaded"])
def test_a_load_that_outlives_stop_ends_without_a_word_or_a_model(answer, caplog):
    # Shutdown waits a few seconds for the retry thread; a load that takes longer (a registry
    # that does not answer) must end quietly: its app, its test and its log stream may be gone.
    started, answered = threading.Event(), threading.Event()

    def loader(uri: str, tracking_uri: str) -> LoadedModel:
        started.set()
        answered.wait(HANG_GUARD_SECONDS)
        if answer == "refused":
            raise ModelLoadError("cannot load: connection refused", registry_unreachable=True)
        return LoadedModel(scorer=None, name="lead-scoring", version="7", alias="champion", uri=uri)

    store = ModelStore(URI, "http://mlflow:5000", retry_seconds=3600, loader=loader)
    store.start()
    assert started.wait(HANG_GUARD_SECONDS), "the first load never started"
    store.stop(timeout=0.05)  # gives up waiting, as shutdown does after 5 s
    assert store.retrying.running, "the load should still be waiting for its answer"
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        answered.set()
        store.retrying.join(HANG_GUARD_SECONDS)
    assert not store.retrying.running
    assert caplog.messages == []
    assert store.current is None and store.last_error is None
