"""A background refresher: a named daemon thread that calls one function every N seconds.

The key cache, the policy cache and the model store each keep something in memory fresh from the
database or the registry. They share this one loop: start, stop (from outside, or from inside the
function once there is nothing left to do), the error handling (a failing call is logged once per
outage, counted, and the next call is tried on schedule) and the counters tests and /readyz-style
checks read (`runs`, `failures`, `last_error`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Refresher:
    """Calls `function` every `interval` seconds in a daemon thread named `name` until stopped.

    The first call comes one interval after `start` (owners that need the value at once call
    their own refresh before starting), or at once with `start(immediately=True)`. An exception from `function` is logged (once until a call
    succeeds again, then the recovery is logged) and counted; the loop carries on.
    """

    def __init__(self, name: str, function: Callable[[], object], interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"refresher {name!r}: interval must be > 0 seconds, got {interval}")
        self.name = name
        self.interval = interval
        self._function = function
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.runs = 0  # calls finished, successful or not
        self.failures = 0
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, immediately: bool = False) -> None:
        """Start the thread; `immediately`: its first call comes at once, not one interval later
        (for owners that must not wait for that first call themselves)."""
        if self._thread is not None:
            raise RuntimeError(f"refresher {self.name!r} was already started")
        self._thread = threading.Thread(
            target=self._run, args=(immediately,), name=self.name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait for it (not when called from the function itself). A
        call still running after `timeout` ends unlogged: its owner and log stream may be gone."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s: still running %s s after it was asked to stop", self.name, timeout)

    def _run(self, immediately: bool) -> None:
        if immediately:
            self._call()
        while not self._stop.wait(self.interval):
            self._call()

    def _call(self) -> None:
        try:
            self._function()
        except Exception as error:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            if not self._failing and not self._stop.is_set():
                log.error(
                    "%s: refresh failed (trying again every %g s): %s",
                    self.name,
                    self.interval,
                    self.last_error,
                )
            self._failing = True
        else:
            if self._failing and not self._stop.is_set():
                log.info("%s: refreshing again", self.name)
            self._failing = False
            self.last_error = None
        finally:
            self.runs += 1
