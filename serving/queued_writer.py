"""A database writer off the request path: routes queue items, a thread writes them in batches.

The score log (`serving.score_log.ScoreLogWriter`) and the capture (`serving.capture`) both take
work from requests that must not wait for the database. `QueuedWriter` is that loop once, with the
score log writer's interface (`start`, `submit`, `stop`, `pending`, `written`, `last_error`) so
the two can converge on it:

- `submit(item)` never blocks: it returns False when the queue is full (`max_pending` items), and
  the caller decides (the capture of a score is dropped and counted; `POST /v1/events` answers 503).
- The thread takes up to `batch_size` items, at least every `flush_seconds`, prepares them
  (`prepare`, in the thread: the request only queued a reference) and writes them in one
  transaction (`write`). A failed write is retried every `retry_seconds`; after `max_attempts`
  the batch is written item by item and the items that fail alone are dropped and counted (a
  row no database takes must not stop the others). When every item fails alone the database is
  down: nothing is dropped, the writer keeps retrying.
- `flush()` waits until everything submitted before it is written; `stop()` drains the queue.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

_STOP = object()


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


@dataclass(frozen=True)
class WriterMetrics:
    pending: Gauge  # items accepted, not yet written
    written: Counter  # items written
    failures: Counter  # failed write attempts
    dropped: Counter  # items given up on (queue full, or a row the database refuses)


class QueuedWriter:
    """Subclasses define `prepare(item)` (in the thread, may raise: the item is dropped) and
    `write(connection, prepared)` (one transaction; may raise: retried)."""

    name = "leadscore-writer"

    def __init__(
        self,
        engine: Engine,
        metrics: WriterMetrics,
        *,
        batch_size: int = 100,
        flush_seconds: float = 0.2,
        max_pending: int = 10_000,
        retry_seconds: float = 0.5,
        max_attempts: int = 5,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._max_attempts = max_attempts
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self.written = 0
        self.dropped = 0
        self.last_error: str | None = None

    # ---- what subclasses define
    def prepare(self, item: Any) -> Any:
        return item

    def write(self, connection: Connection, prepared: Sequence[Any]) -> None:
        raise NotImplementedError

    # ---- the request side
    @property
    def pending(self) -> int:
        return self._pending

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue `item` (never blocks); False when the queue is full (the item is not kept)."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._count_dropped(1, "the queue is full")
            return False
        with self._lock:
            self._pending += 1
        self._metrics.pending.inc()
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every item submitted before this call is written (True) or `timeout`."""
        if not self.running:
            return self._pending == 0
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Write everything queued so far, then stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.error("%s: queue still full after %.0f s; stopping anyway", self.name, timeout)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "%s: %d items still unwritten after %.0f s", self.name, self._pending, timeout
            )
        self._thread = None

    # ---- the thread
    def _run(self) -> None:
        while True:
            items: list = []
            markers: list[_Flush] = []
            stopping = False
            deadline = time.monotonic() + self._flush_seconds
            while len(items) < self._batch_size:
                remaining = deadline - time.monotonic()
                if (remaining <= 0 and items) or markers:
                    break
                try:
                    item = self._queue.get(timeout=max(remaining, 0.001) if items else None)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, _Flush):
                    markers.append(item)
                else:
                    items.append(item)
            if stopping:  # whatever arrived before the stop marker (and anything racing it)
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _Flush):
                        markers.append(item)
                    elif item is not _STOP:
                        items.append(item)
            for start in range(0, len(items), self._batch_size):
                self._write_batch(items[start : start + self._batch_size])
            for marker in markers:
                marker.done.set()
            if stopping:
                return

    def _write_batch(self, items: list) -> None:
        prepared = []
        for item in items:
            try:
                prepared.append(self.prepare(item))
            except Exception as error:  # an item no database could take
                self._done(1)
                self._count_dropped(1, f"cannot be prepared: {error}")
        attempts = 0
        while prepared:
            if self._try(prepared):
                self._done(len(prepared), written=True)
                return
            attempts += 1
            if attempts >= self._max_attempts:
                prepared = self._one_by_one(prepared)
                attempts = 0
            if prepared:
                time.sleep(self._retry_seconds)

    def _one_by_one(self, prepared: list) -> list:
        """Write each item alone: drop the ones that fail while others succeed; keep all when
        every one fails (the database is down, not the rows)."""
        failed = []
        for item in prepared:
            if self._try([item]):
                self._done(1, written=True)
            else:
                failed.append(item)
        if failed and len(failed) < len(prepared):
            self._done(len(failed))
            self._count_dropped(len(failed), f"refused by the database: {self.last_error}")
            return []
        return failed

    def _try(self, prepared: list) -> bool:
        try:
            with self._engine.begin() as connection:
                self.write(connection, prepared)
        except Exception as error:
            self._metrics.failures.inc()
            if self.last_error is None:
                log.error(
                    "%s: writing %d items failed, retrying: %s", self.name, len(prepared), error
                )
            self.last_error = f"{type(error).__name__}: {error}"
            return False
        if self.last_error is not None:
            log.info("%s: writing again", self.name)
        self.last_error = None
        return True

    def _done(self, count: int, written: bool = False) -> None:
        with self._lock:
            self._pending -= count
        self._metrics.pending.dec(count)
        if written:
            self.written += count
            self._metrics.written.inc(count)

    def _count_dropped(self, count: int, why: str) -> None:
        self.dropped += count
        self._metrics.dropped.inc(count)
        log.error("%s: %d item(s) dropped: %s", self.name, count, why)
