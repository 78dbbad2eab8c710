"""The score log writer: scores are queued on the request path and written in batches by a thread.

`ScoreLogWriter` is a `serving.queued_writer.QueuedWriter` (the one writer loop: bounded queue,
batches, retries, dead letters, spill at stop and replay at start). `submit` is a non-blocking
append that refuses when `max_pending` rows wait (the route answers 503 with Retry-After); the
thread inserts up to `batch_size` rows at a time, at least every `flush_seconds`.

The writer shares the interpreter with the requests, so its time is their time: rows are built
from a request's results in one pass (`ScoreRows`) and inserted with the statement compiled once
(`_Insert`), not through SQLAlchemy's per-row, per-column parameter handling (which was ~20 ms of a
1,000-lead request's rows).

Each score is logged once: the writer retries a batch whose commit it did not hear back from,
and the insert skips rows already there (migration 0011's unique index; SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from serving import metrics
from serving.db import as_utc, score_log
from serving.queued_writer import QueuedWriter, WriterMetrics
from serving.report.funnel_tables import SCORE_COLUMNS, record_scores

METRICS = WriterMetrics(
    pending=metrics.SCORE_LOG_PENDING,
    written=metrics.SCORE_LOG_WRITTEN,
    failures=metrics.SCORE_LOG_FAILURES,
    dropped=metrics.SCORE_LOG_REFUSED,
    dead_lettered=metrics.SCORE_LOG_DEAD_LETTERED,
    spilled=metrics.SCORE_LOG_SPILLED,
)


class ScoreRows:
    """The score-log rows of one request: its results, the values common to all of them, and
    each lead's `as_of` (the moment it was scored as of; None: the scoring moment).

    The request only queues this object (O(1) on the request path); the writer thread builds
    the rows when it takes them.
    """

    __slots__ = ("results", "common", "as_of")

    def __init__(
        self,
        results: Sequence[dict],
        common: dict[str, Any],
        as_of: Sequence[datetime | None] | None = None,
    ) -> None:
        self.results = results
        self.common = common
        self.as_of = as_of

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
                # in UTC: SQLite keeps a datetime's wall time, not its offset
                "as_of": as_utc(as_of),
            }
            for r, as_of in zip(self.results, self.as_of or [None] * len(self.results), strict=True)
        ]
        for key in _PER_ROW.intersection(process):
            convert = process[key]
            for row in rows:
                row[key] = convert(row[key])
        return rows


# The dialects whose INSERT can skip a row that breaks a unique index (ON CONFLICT DO NOTHING).
_INSERT_ONCE = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_SQLITE_MAX_VARIABLES = 999  # parameters in one statement: any SQLite build takes this many
_PER_ROW = frozenset(
    {"lead_id", "probability", "score", "grade", "decision", "reasons", "exploration", "as_of"}
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
        # A row already there (a batch retried after a commit that did go through, or a spill
        # replayed) is skipped: with the unique (lead_id, scored_at, request_id) index of
        # migration 0011, every score lands once. `inline`: no RETURNING of the new ids.
        once = _INSERT_ONCE.get(dialect.name)
        statement = once(score_log).on_conflict_do_nothing() if once else score_log.insert()
        compiled: SQLCompiler = statement.inline().compile(dialect=dialect, column_keys=self.keys)
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
        if dialect.paramstyle == "qmark" and compiled.positiontup:
            prefix, values = self.sql.rsplit("VALUES", 1)
            values, conflict, action = values.strip().partition(" ON CONFLICT")
            self._prefix, self._values, self._suffix = prefix + "VALUES ", values, conflict + action
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
                sql = self._prefix + ", ".join([self._values] * len(chunk)) + self._suffix
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


class ScoreLogFull(Exception):
    """The score log has `max_pending` rows waiting (the database is slow or down): the request
    is refused (503 with Retry-After) rather than answered and not recorded."""


class ScoreLogWriter(QueuedWriter):
    """The score log on `serving.queued_writer.QueuedWriter`: items are `ScoreRows` (or plain row
    dicts), counted in rows; a refused row is isolated down to itself (`split`) and dead-lettered
    with its lead; what a stop cannot write is spilled and replayed."""

    name = "leadscore-score-log"
    source = "score_log"

    def __init__(
        self,
        engine: Engine,
        batch_size: int = 500,
        flush_seconds: float = 0.2,
        *,
        max_pending: int = 100_000,
        spill_dir: str | Path | None = None,
        retry_seconds: float = 0.5,
    ) -> None:
        super().__init__(
            engine, METRICS, batch_size=batch_size, flush_seconds=flush_seconds,
            max_pending=max_pending, spill_dir=spill_dir, retry_seconds=retry_seconds,
        )  # fmt: skip
        self._insert: _Insert | None = None

    def size(self, item: Any) -> int:
        return len(item)

    def prepare(self, item: ScoreRows | list[dict]) -> ScoreRows | list[dict]:
        return item  # the rows are built as they are written, with the driver's processors

    def write(self, connection: Connection, prepared: Sequence[ScoreRows | list[dict]]) -> None:
        if self._insert is None:
            self._insert = _Insert(self._engine)
        parameters: list = []
        for item in prepared:
            parameters.extend(self._insert.parameters(item))
        for sql, chunk in self._insert.statements(parameters):
            connection.exec_driver_sql(sql, chunk)
        # each lead's latest score into its funnel row (`serving.report.funnel_tables`)
        record_scores(connection, _latest_scores(prepared))

    def split(self, prepared: ScoreRows | list[dict]) -> list:
        if isinstance(prepared, ScoreRows):
            as_of = prepared.as_of or [None] * len(prepared.results)
            return [ScoreRows([result], prepared.common, [moment])
                    for result, moment in zip(prepared.results, as_of, strict=True)]  # fmt: skip
        return [[row] for row in prepared]

    def to_record(self, prepared: ScoreRows | list[dict]) -> dict:
        if isinstance(prepared, ScoreRows):
            # `exploration` too: a replayed spill kept it False before
            results = [
                {**{k: r[k] for k in _RESULT_KEYS}, "exploration": r.get("exploration", False)}
                for r in prepared.results
            ]
            return {"results": results, "common": prepared.common, "as_of": prepared.as_of}
        return {"rows": list(prepared)}

    def from_record(self, record: dict) -> ScoreRows | list[dict]:
        if "rows" in record:
            return record["rows"]
        # spills written before `as_of` have none: their rows take the scoring moment's reading
        return ScoreRows(record["results"], record["common"], record.get("as_of"))

    def lead_id(self, prepared: ScoreRows | list[dict]) -> str | None:
        rows = prepared.results if isinstance(prepared, ScoreRows) else prepared
        if len(rows) != 1 or not isinstance(rows[0].get("lead_id"), str):
            return None
        return rows[0]["lead_id"]


def _latest_scores(prepared: Sequence[ScoreRows | list[dict]]) -> Iterator[dict[str, Any]]:
    """The funnel's view of the rows: lead_id and the score columns, in the order written."""
    for item in prepared:
        if isinstance(item, ScoreRows):
            scored_at = item.common.get("scored_at")
            for r in item.results:
                yield {"lead_id": r["lead_id"], "scored_at": scored_at, "score": r["score"],
                       "grade": r["grade"], "decision": r["decision"],
                       "exploration": r.get("exploration", False)}  # fmt: skip
        else:
            for row in item:
                yield {"lead_id": row["lead_id"], **{k: row.get(k) for k in SCORE_COLUMNS}}


_RESULT_KEYS = ("lead_id", "probability", "score", "grade", "decision", "reasons_for",
                "reasons_against", "policy_reasons")  # fmt: skip
