"""The score log writer: scores are queued on the request path and written in batches by a thread.

`submit` is a non-blocking append; the writer thread inserts up to `batch_size` rows at a time, at
least every `flush_seconds`. A failed write is retried (the batch is kept, the error logged and
counted). `stop` drains the queue before returning, so a clean shutdown loses nothing accepted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from sqlalchemy.engine import Engine

from serving import metrics
from serving.db import score_log

log = logging.getLogger(__name__)

_STOP = object()


class ScoreLogWriter:
    def __init__(self, engine: Engine, batch_size: int = 500, flush_seconds: float = 0.2) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self.written = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leadscore-score-log", daemon=True)
        self._thread.start()

    def submit(self, rows: list[dict]) -> None:
        """Queue rows for writing (called from the event loop: never blocks)."""
        with self._lock:
            self._pending += len(rows)
        metrics.SCORE_LOG_PENDING.inc(len(rows))
        self._queue.put(rows)

    def stop(self, timeout: float = 60.0) -> None:
        """Write everything queued so far, then stop the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("score log: %d records still unwritten after %.0f s", self._pending, timeout)
        self._thread = None

    def _run(self) -> None:
        batch: list[dict] = []
        stopping = False
        while True:
            deadline = time.monotonic() + self._flush_seconds
            while len(batch) < self._batch_size and not stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and batch:
                    break
                try:
                    item = self._queue.get(timeout=max(remaining, 0.001) if batch else None)
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.extend(item)
            if stopping:
                # Drain whatever arrived before the stop marker (and anything racing it).
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        batch.extend(item)
            while batch:
                chunk = batch[: self._batch_size * 4 if stopping else len(batch)]
                if self._write(chunk):
                    del batch[: len(chunk)]
                elif stopping and self._engine is None:
                    return
                else:
                    time.sleep(0.5)
            if stopping:
                return

    def _write(self, rows: list[dict]) -> bool:
        try:
            with self._engine.begin() as connection:
                connection.execute(score_log.insert(), rows)
        except Exception as error:
            metrics.SCORE_LOG_FAILURES.inc()
            self.last_error = str(error)
            log.error("score log: writing %d records failed, retrying: %s", len(rows), error)
            return False
        with self._lock:
            self._pending -= len(rows)
        self.written += len(rows)
        metrics.SCORE_LOG_PENDING.dec(len(rows))
        metrics.SCORE_LOG_WRITTEN.inc(len(rows))
        self.last_error = None
        return True
