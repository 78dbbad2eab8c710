"""Each scored lead's previous score and trend, read from the score log in one query per request.

`POST /v1/score` starts `PreviousScores.start` before scoring, so the query runs in a thread while
the model scores (on SQLite, for up to `INLINE_LEADS` leads, at once on the event loop: cheaper
than the thread hop), and awaits it after: the latest earlier score of every lead of the request
comes from one statement (`latest_statement`: the leads' ids as a VALUES list, each one's newest
row found by a step in the unique (lead_id, scored_at, request_id) index of migration 0011, so its
cost does not grow with the lead's history), not one per lead (two for more than 900 leads). When
the database does not answer the leads are still scored, with trend `unknown`.

On SQLite the reads go through `SqliteHistory`: a connection of its own per reading thread
(detached from the pool: no checkout and no rollback-on-return per request) and the statement compiled once per
number of ids, with the column type's own conversions of the moments. SQLAlchemy's execution
path cost ~145 us of CPU per one-lead read on a loaded 2-core box, this ~20 us.

The score log is written off the request path (`serving.score_log`, within its flush interval,
0.2 s by default): a lead scored again before its previous row is written sees the one before
that, or `new`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from features.policy.trend import UNKNOWN, score_trend
from serving import metrics
from serving.db import as_utc, score_log

log = logging.getLogger(__name__)

# Ids per statement: SQLite builds before 3.32 take at most 999 parameters in one statement.
IDS_PER_QUERY = 900
SIZE_STEP = 16  # statement sizes: 1-16 ids, then 32, 48, ... (padded), and IDS_PER_QUERY
INLINE_LEADS = 64  # up to this many leads, SQLite is read on the event loop (no thread hop)


@functools.lru_cache(maxsize=2 * (SIZE_STEP + IDS_PER_QUERY // SIZE_STEP + 1))
def latest_statement(n: int) -> sa.Select:
    """The latest earlier row of each of `n` leads (binds id_0 ... id_{n-1}, then `before`).

    Driven by the ids: per id, its newest moment is one backward step in the unique
    (lead_id, scored_at, request_id) index (a correlated max(), which SQLite and PostgreSQL
    answer from the index alone), then its row(s) by the same index. Grouping the leads' rows
    (`max ... GROUP BY lead_id`) read every earlier score of each lead: a lead scored 5,000
    times cost ~1.3 ms per request on SQLite, this ~8 us whatever its history."""
    wanted = (
        sa.values(sa.column("lead_id", sa.String), name="wanted")
        .data([(sa.bindparam(f"id_{i}", type_=sa.String),) for i in range(n)])
        .cte("wanted")
    )
    earlier = score_log.alias("earlier")
    newest_moment = (
        sa.select(sa.func.max(earlier.c.scored_at))
        .where(earlier.c.lead_id == wanted.c.lead_id, earlier.c.scored_at < sa.bindparam("before"))
        .scalar_subquery()
    )
    newest = sa.select(wanted.c.lead_id, newest_moment.label("scored_at")).subquery("newest")
    return sa.select(
        score_log.c.lead_id, score_log.c.score, score_log.c.scored_at, score_log.c.id
    ).join(
        newest,
        sa.and_(
            score_log.c.lead_id == newest.c.lead_id, score_log.c.scored_at == newest.c.scored_at
        ),
    )


def _bound(chunk: list[str], before: Any) -> dict[str, Any]:
    return {"before": before, **{f"id_{i}": lead_id for i, lead_id in enumerate(chunk)}}


def latest_scores(
    engine: Engine, lead_ids: Iterable[str], before: datetime
) -> dict[str, tuple[int, datetime]]:
    """Each lead's latest score logged before `before`: lead id -> (score, scored_at)."""
    ids = list(dict.fromkeys(lead_ids))
    if not ids:
        return {}
    with engine.connect() as connection:
        return _newest_rows(
            connection.execute(latest_statement(len(chunk)), _bound(chunk, before))
            for chunk in _chunks(ids)
        )


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    """The ids in statements of at most IDS_PER_QUERY, each padded (its last id repeated, which
    reads the same row again) to one of a few sizes: exact up to SIZE_STEP, then multiples of it.
    Building and compiling the statement for a new size costs 1.5-5 ms, so the sizes stay few
    enough to keep every one built (`latest_statement`'s cache)."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        size = min(-(-len(chunk) // SIZE_STEP) * SIZE_STEP, IDS_PER_QUERY)
        yield chunk + chunk[-1:] * (size - len(chunk)) if len(chunk) > SIZE_STEP else chunk


def _newest_rows(
    results: Iterable[Iterable[Any]], moment: Callable[[Any], Any] | None = None
) -> dict[str, tuple[int, datetime]]:
    """LATEST's rows (lead_id, score, scored_at, id), one result per chunk of ids, as lead id ->
    (score, scored_at in UTC); `moment` reads a stored moment first (SQLite's own reader)."""
    found: dict[str, tuple[int, datetime]] = {}
    newest_id: dict[str, int] = {}
    for rows in results:
        for lead_id, score, scored_at, row_id in rows:
            # a lead twice in one request: two rows at the same moment, the later one wins
            if row_id > newest_id.get(lead_id, -1):
                newest_id[lead_id] = row_id
                found[lead_id] = (
                    int(score), as_utc(scored_at if moment is None else moment(scored_at))
                )  # fmt: skip
    return found


class SqliteHistory:
    """`latest_scores` on a SQLite file with connections of its own, one per thread that reads
    (the event loop's; the thread pool's for large requests). Any error closes the thread's
    connection (its next read opens another) and propagates: `PreviousScores.result` answers
    trend `unknown`, as for the engine's path."""

    _EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        dialect = engine.dialect
        moment = score_log.c.scored_at.type.dialect_impl(dialect)
        identity: Callable[[Any], Any] = lambda value: value  # noqa: E731
        self._bind: Callable[[Any], Any] = moment.bind_processor(dialect) or identity
        self._result: Callable[[Any], Any] = moment.result_processor(dialect, None) or identity
        self._sql: dict[int, str] = {}
        self._local = threading.local()  # each thread's connection (the loop's, the pool's)

    @staticmethod
    def usable(engine: Engine) -> bool:
        """A SQLite file (an in-memory database lives in its pool's one connection)."""
        database = engine.url.database
        return engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")

    def _statement(self, n: int) -> str:
        sql = self._sql.get(n)
        if sql is None:
            compiled = latest_statement(n).compile(dialect=self.engine.dialect)
            order = [f"id_{i}" for i in range(n)] + ["before"]
            if list(compiled.positiontup or ()) != order:  # the parameters are bound by position
                raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
            if len(self._sql) > 2 * IDS_PER_QUERY:
                self._sql.clear()
            sql = self._sql[n] = compiled.string
        return sql

    def latest(self, lead_ids: Iterable[str], before: datetime) -> dict[str, tuple[int, datetime]]:
        """What `latest_scores` answers, read with this reader's connection."""
        ids = list(dict.fromkeys(lead_ids))
        if not ids:
            return {}
        connection: Any = getattr(self._local, "connection", None)
        if connection is None:
            raw = self.engine.raw_connection()  # the engine's connect events (WAL) included
            connection = self._local.connection = raw.driver_connection
            raw.detach()
        bound_before = self._bind(before)
        try:
            cursor = connection.cursor()
            found = _newest_rows(
                (
                    cursor.execute(self._statement(len(chunk)), (*chunk, bound_before)).fetchall()
                    for chunk in _chunks(ids)
                ),
                self._result,
            )
            cursor.close()
        except Exception:
            self.close()
            raise
        return found

    def close(self) -> None:
        """Close the calling thread's connection (the others close when their thread ends)."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # noqa: BLE001, S110 - a broken connection is dropped either way
                pass


_HISTORIES: weakref.WeakKeyDictionary[Engine, SqliteHistory] = weakref.WeakKeyDictionary()


def sqlite_history(engine: Engine) -> SqliteHistory:
    """The engine's `SqliteHistory` (one per engine, built at its first read)."""
    history = _HISTORIES.get(engine)
    if history is None:
        history = _HISTORIES[engine] = SqliteHistory(engine)
    return history


class PreviousScores:
    """The previous scores of one request's leads, read while the model scores them."""

    def __init__(self, task: asyncio.Future) -> None:
        self._task = task

    @classmethod
    def start(cls, engine: Engine, lead_ids: Sequence[str], before: datetime) -> PreviousScores:
        if SqliteHistory.usable(engine) and len(lead_ids) <= INLINE_LEADS:
            # A few leads from a local file by the index: ~0.02 ms, less than a thread hop (and
            # the interpreter lock taken back from the scoring); WAL: the writers never block it.
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            try:
                future.set_result(sqlite_history(engine).latest(lead_ids, before))
            except Exception as error:  # noqa: BLE001 - result() says what happened
                future.set_exception(error)
            return cls(future)
        read = sqlite_history(engine).latest if SqliteHistory.usable(engine) else None
        if read is None:
            return cls(
                asyncio.ensure_future(run_in_threadpool(latest_scores, engine, lead_ids, before))
            )
        return cls(asyncio.ensure_future(run_in_threadpool(read, lead_ids, before)))

    def cancel(self) -> None:
        if self._task.done() and not self._task.cancelled():
            self._task.exception()  # read: no "exception never retrieved" at collection
        self._task.cancel()

    async def result(self) -> dict[str, tuple[int, datetime]] | None:
        """The previous scores, or None when the score log could not be read (logged, counted)."""
        try:
            return await self._task
        except Exception as error:  # noqa: BLE001 - scoring goes on without the history
            metrics.SCORE_HISTORY_FAILURES.inc()
            log.error("score log: previous scores unavailable, trend unknown: %s", error)
            return None


def add_trend(
    results: Sequence[dict], previous: dict[str, tuple[int, datetime]] | None, points: float
) -> None:
    """Give each scored lead `previous_score`, `previous_scored_at` and `trend` (in place)."""
    for result in results:
        if previous is None:
            result["previous_score"] = result["previous_scored_at"] = None
            result["trend"] = UNKNOWN
            continue
        before = previous.get(result["lead_id"])
        if before is None:
            result["previous_score"] = result["previous_scored_at"] = None
            result["trend"] = "new"
        else:
            result["previous_score"], result["previous_scored_at"] = before
            result["trend"] = score_trend(result["score"], before[0], points)
