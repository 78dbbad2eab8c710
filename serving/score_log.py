"""The score log writer: scores are queued on the request path and written in batches by a thread.

`submit` is a non-blocking append; the writer thread inserts up to `batch_size` rows at a time, at
least every `flush_seconds`. A failed write is retried (the batch is kept, the error logged and
counted). `stop` drains the queue before returning, so a clean shutdown loses nothing accepted.

The writer shares the interpreter with the requests, so its time is their time: rows are built
from a request's results in one pass (`ScoreRows`) and inserted with the statement compiled once
(`_Insert`), not through SQLAlchemy's per-row, per-column parameter handling (which was ~20 ms of a
1,000-lead request's rows).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from serving import metrics
from serving.db import score_log

log = logging.getLogger(__name__)

_STOP = object()


class ScoreRows:
    """The score-log rows of one request: its results and the values common to all of them.

    The request only queues this object (O(1) on the request path); the writer thread builds
    the rows when it takes them.
    """

    __slots__ = ("results", "common")

    def __init__(self, results: Sequence[dict], common: dict[str, Any]) -> None:
        self.results = results
        self.common = common

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):
        return iter(self.rows())

    def rows(self, process: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """One row per result; with `process` (column -> bind processor), values as the database
        driver takes them, each common value processed once."""
        process = process or {}
        common = {k: process[k](v) if k in process else v for k, v in self.common.items()}
        rows = [
            {
                **common,
                "lead_id": r["lead_id"],
                "probability": r["probability"],
                "score": r["score"],
                "grade": r["grade"],
                "decision": r["decision"],
                "reasons": {
                    "for": r["reasons_for"],
                    "against": r["reasons_against"],
                    "policy": r["policy_reasons"],
                },
                "exploration": r.get("exploration", False),
            }
            for r in self.results
        ]
        for key in _PER_ROW.intersection(process):
            convert = process[key]
            for row in rows:
                row[key] = convert(row[key])
        return rows


_SQLITE_MAX_VARIABLES = 999  # parameters in one statement: any SQLite build takes this many
_PER_ROW = frozenset(
    {"lead_id", "probability", "score", "grade", "decision", "reasons", "exploration"}
)


class _Insert:
    """The score-log INSERT compiled once for the engine's dialect, and its parameters built the
    way SQLAlchemy would (the columns' own bind processors), without its per-row overhead."""

    def __init__(self, engine: Engine) -> None:
        dialect = engine.dialect
        columns = [c for c in score_log.columns if not c.primary_key]
        self.keys = [c.key for c in columns]
        # values a plain row dict may leave out (a column added later, e.g. `exploration`)
        self.defaults = {
            c.key: c.default.arg
            for c in columns
            if isinstance(c.default, ScalarElementColumnDefault)
        }
        compiled = score_log.insert().compile(dialect=dialect, column_keys=self.keys)
        self.sql = str(compiled)
        self.process = {}
        for column in columns:
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.process[column.key] = processor
        # qmark/format drivers (SQLite) take tuples in the statement's order, others dicts
        self._arrange = itemgetter(*compiled.positiontup) if compiled.positional else None
        # SQLite: many rows in one statement. The driver lets go of the interpreter around each
        # statement it steps, and taking it back from a busy request thread is a forced switch:
        # per row, that was most of what a 1,000-row insert cost the requests running meanwhile.
        self.rows_per_statement = 1
        if dialect.paramstyle == "qmark" and compiled.positional:
            prefix, values = self.sql.rsplit("VALUES", 1)
            self._prefix, self._values = prefix + "VALUES ", values.strip()
            self.rows_per_statement = max(1, _SQLITE_MAX_VARIABLES // len(compiled.positiontup))
        self._statements: dict[int, str] = {}

    def statements(self, parameters: list) -> Iterator[tuple[str, Any]]:
        """(SQL, parameters) to execute for these rows' parameters."""
        if self.rows_per_statement == 1:
            yield self.sql, parameters
            return
        for start in range(0, len(parameters), self.rows_per_statement):
            chunk = parameters[start : start + self.rows_per_statement]
            sql = self._statements.get(len(chunk))
            if sql is None:
                if len(self._statements) > 64:
                    self._statements.clear()
                sql = self._prefix + ", ".join([self._values] * len(chunk))
                self._statements[len(chunk)] = sql
            yield sql, tuple(chain.from_iterable(chunk))

    def parameters(self, item: Iterable[dict]) -> list:
        if isinstance(item, ScoreRows):
            rows = item.rows(self.process)
        else:  # plain row dicts: every value through its column's processor
            process, defaults = self.process, self.defaults
            rows = [
                {
                    k: process[k](row.get(k, defaults.get(k)))
                    if k in process
                    else row.get(k, defaults.get(k))
                    for k in self.keys
                }
                for row in item
            ]
        return rows if self._arrange is None else list(map(self._arrange, rows))


class ScoreLogWriter:
    def __init__(self, engine: Engine, batch_size: int = 500, flush_seconds: float = 0.2) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._insert: _Insert | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.last_error: str | None = None

    @property
    def pending(self) -> int:
        return self._pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leadscore-score-log", daemon=True)
        self._thread.start()

    def submit(self, rows: ScoreRows | list[dict]) -> None:
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

    def _parameters(self, item: Iterable[dict]) -> list:
        try:
            if self._insert is None:
                self._insert = _Insert(self._engine)
            return self._insert.parameters(item)
        except Exception as error:  # rows no database could take (say, unserialisable reasons)
            metrics.SCORE_LOG_FAILURES.inc()
            self.last_error = str(error)
            log.error("score log: %d records cannot be written, dropped: %s", len(item), error)
            with self._lock:
                self._pending -= len(item)
            metrics.SCORE_LOG_PENDING.dec(len(item))
            return []

    def _run(self) -> None:
        batch: list = []  # the driver's parameters, one per row
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
                    batch.extend(self._parameters(item))
            if stopping:
                # Drain whatever arrived before the stop marker (and anything racing it).
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not _STOP:
                        batch.extend(self._parameters(item))
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

    def _write(self, rows: list) -> bool:
        try:
            with self._engine.begin() as connection:
                for sql, parameters in self._insert.statements(rows):
                    connection.exec_driver_sql(sql, parameters)
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
