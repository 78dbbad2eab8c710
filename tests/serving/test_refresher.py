"""The one background-refresh loop used by the key cache, the policy cache and the model store."""

from __future__ import annotations

import logging
import threading

import pytest

from serving.refresher import Refresher
from tests.serving.waiting import HANG_GUARD_SECONDS, wait_for


def test_calls_the_function_in_a_named_thread_until_stopped():
    threads: list[str] = []
    refresher = Refresher(
        "test-refresher", lambda: threads.append(threading.current_thread().name), 0.01
    )
    assert not refresher.running and refresher.runs == 0
    refresher.start()
    wait_for(lambda: refresher.runs >= 3, "the function was not called three times")
    refresher.stop()
    assert not refresher.running
    stopped_at = refresher.runs
    assert set(threads) == {"test-refresher"}
    assert len(threads) == stopped_at and refresher.failures == 0
    assert refresher.runs == stopped_at  # nothing runs after stop() returned


def test_a_failing_call_is_counted_and_logged_once_per_outage(caplog):
    outcomes = iter([ValueError("database away")] * 3 + [None] + [OSError("away again")])

    def refresh():
        error = next(outcomes, None)
        if error is not None:
            raise error

    refresher = Refresher("test-flaky", refresh, 0.01)
    with caplog.at_level(logging.INFO, logger="serving.refresher"):
        refresher.start()
        wait_for(lambda: refresher.runs >= 7, "the loop did not carry on after failures")
        refresher.stop()
    assert refresher.failures == 4
    assert refresher.last_error is None  # the calls after the last failure succeeded
    messages = [r.getMessage() for r in caplog.records if r.name == "serving.refresher"]
    assert messages == [
        "test-flaky: refresh failed (trying again every 0.01 s): ValueError: database away",
        "test-flaky: refreshing again",
        "test-flaky: refresh failed (trying again every 0.01 s): OSError: away again",
        "test-flaky: refreshing again",
    ]


def test_the_last_error_is_kept_while_failing():
    refresher = Refresher("test-down", lambda: 1 / 0, 0.01)
    refresher.start()
    wait_for(lambda: refresher.failures >= 2, "the failures were not counted")
    refresher.stop()
    assert refresher.last_error == "ZeroDivisionError: division by zero"
    assert refresher.failures == refresher.runs


def test_the_function_may_stop_its_own_refresher():
    calls = []

    def once():
        calls.append(1)
        refresher.stop()  # from inside its own thread: no join on itself

    refresher = Refresher("test-once", once, 0.01)
    refresher.start()
    wait_for(lambda: not refresher.running, "the refresher did not stop itself")
    assert calls == [1] and refresher.runs == 1
    refresher.stop()  # and again from outside: a no-op


def test_bad_use_is_refused_with_a_message():
    with pytest.raises(ValueError, match="refresher 'x': interval must be > 0 seconds, got 0"):
        Refresher("x", lambda: None, 0)
    refresher = Refresher("twice", lambda: None, 60)
    refresher.start()
    try:
        with pytest.raises(RuntimeError, match="refresher 'twice' was already started"):
            refresher.start()
    finally:
        refresher.stop()
    assert not refresher.running


def test_started_immediately_the_first_call_does_not_wait_an_interval():
    called = threading.Event()
    refresher = Refresher("test-now", called.set, 3600)
    refresher.start(immediately=True)
    wait_for(called.is_set, "the first call waited for the interval")
    refresher.stop()
    assert refresher.runs == 1
    later = Refresher("test-later", called.clear, 3600)
    later.start()
    later.stop()
    assert later.runs == 0 and called.is_set()  # without it: one interval first


def test_a_call_that_outlives_stop_fails_without_a_word(caplog):
    # stop() waits `timeout` seconds; a call still running then (a database or registry that
    # does not answer) may end after its owner, and its log stream, are gone: it says nothing.
    started, answered = threading.Event(), threading.Event()

    def refresh():
        started.set()
        answered.wait(HANG_GUARD_SECONDS)
        raise OSError("registry away")

    refresher = Refresher("test-slow", refresh, 3600)
    refresher.start(immediately=True)
    assert started.wait(HANG_GUARD_SECONDS), "the call never started"
    refresher.stop(timeout=0.05)
    assert refresher.running, "the call should still be waiting for its answer"
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        answered.set()
        refresher.join(HANG_GUARD_SECONDS)
    assert not refresher.running
    assert caplog.messages == []
