"""The one database writer off the request path: routes queue items, a thread writes them.

The score log (`serving.score_log.ScoreLogWriter`) and the capture (`serving.capture.writer`) take
work from requests that must not wait for the database. `QueuedWriter` is that loop, once, with
the guarantees a client relies on:

- **Bounded.** `submit(item)` never blocks; it returns False when `max_pending` units (score-log
  rows, captured requests: `size`) wait already, and the caller decides (scoring answers 503 with
  Retry-After; the capture of a score is dropped and counted). Memory does not grow with an
  outage.
- **Batched.** The thread takes up to `batch_size` units, at least every `flush_seconds` (it
  waits that long after the first item, not woken by each one; a flush, a stop or a backlog of
  full batches is written at once), prepares them (`prepare`, in the thread: the request only
  queued a reference) and writes them in one transaction (`write`).
- **Never stops for one record.** A batch the database refuses is written item by item, then part
  by part (`split`: a score-log row); a part the database refuses while others go in, or refuses
  for its data (integrity, data errors), goes to the `dead_letters` table with the error
  (`describe_database_error`: no parameters) and is counted; the rest is written. While the
  database is down (every part fails to connect), nothing is given up: the writer retries every
  `retry_seconds`.
- **Nothing accepted is lost on a clean stop.** `stop(timeout)` writes what is queued; what the
  database still does not take when `timeout` runs out is spilled to a JSON-lines file in
  `spill_dir`, which `start()` replays (before new work) at the next start. Only SIGKILL (or a
  crash) loses what was queued: at most `flush_seconds` plus one write of traffic when the
  database keeps up (bench/sigkill.py measures it).

Subclasses define `prepare`, `write`, and for dead letters and spills `to_record`/`from_record`
(JSON-able forms; `encode_record`/`decode_record` carry datetimes), `size`, `split`, `lead_id`.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import Counter, Gauge
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from serving.db import dead_letters, utcnow
from serving.redact import describe_database_error

log = logging.getLogger(__name__)

_STOP = object()


class _Flush:
    __slots__ = ("done", "then")

    def __init__(self, then: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.then = then


class _Replayed:
    """A prepared item read back from a spill file (not prepared again)."""

    __slots__ = ("prepared",)

    def __init__(self, prepared: Any) -> None:
        self.prepared = prepared


@dataclass(frozen=True)
class WriterMetrics:
    pending: Gauge  # units accepted, not yet written
    written: Counter  # units written
    failures: Counter  # failed write attempts (retried)
    dropped: Counter  # units refused because the queue was full
    dead_lettered: Counter  # units the database refused, kept in the dead_letters table
    spilled: Counter  # units written to the spill file at a stop (replayed at the next start)


# Errors that say the database refused the data, not that it is away: no retry helps them.
_REFUSALS = (sa_exc.IntegrityError, sa_exc.DataError)


def _refused(error: BaseException | None) -> bool:
    """The record itself is the problem: the database refused its data, or our own code could
    not turn it into parameters (an error that is not the database's)."""
    if error is None:
        return False
    return isinstance(error, _REFUSALS) or not isinstance(error, sa_exc.SQLAlchemyError)


def encode_record(value: Any) -> bytes:
    """JSON text of a record (dead letters, spill files): NULs escaped, datetimes tagged."""
    return orjson.dumps(
        value,
        default=_tagged,
        option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SERIALIZE_NUMPY,
    )


def decode_record(text: str | bytes) -> Any:
    return json.loads(text, object_hook=_untagged)


def _tagged(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot record a {type(value).__name__}")


def _untagged(value: dict) -> Any:
    if len(value) == 1 and "$datetime" in value:
        return datetime.fromisoformat(value["$datetime"])
    return value


class QueuedWriter:
    """Subclasses define `prepare(item)` (in the thread) and `write(connection, prepared)` (one
    transaction); see the module's docstring for the rest."""

    name = "leadscore-writer"
    source = "writer"  # the dead_letters.source and the spill files' prefix

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
        spill_dir: str | Path | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._retry_seconds = retry_seconds
        self._max_attempts = max_attempts
        self.max_pending = max_pending
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._urgent = threading.Event()  # a flush or stop waits: write without gathering more
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self._give_up_at: float | None = None  # stopping: after this, spill instead of retrying
        self._last_exception: BaseException | None = None
        self.written = 0
        self.dropped = 0
        self.dead_lettered = 0
        self.spilled = 0
        self.replayed = 0
        self.last_error: str | None = None

    # ---- what subclasses define
    def prepare(self, item: Any) -> Any:
        return item

    def write(self, connection: Connection, prepared: Sequence[Any]) -> None:
        raise NotImplementedError

    def committed(self) -> None:
        """The transaction of the last `write` committed (in the writer's thread)."""

    def size(self, item: Any) -> int:
        """Units of `item` (raw or prepared) counted against `max_pending`."""
        return 1

    def split(self, prepared: Any) -> list[Any]:
        """Smaller parts of a prepared item, written alone to find the one the database refuses."""
        return [prepared]

    def to_record(self, prepared: Any) -> Any:
        """A JSON-able form of a prepared item (`encode_record` carries datetimes)."""
        return prepared

    def from_record(self, record: Any) -> Any:
        return record

    def lead_id(self, prepared: Any) -> str | None:
        """The one lead a prepared part is about (kept beside its dead letter for erasure)."""
        return None

    # ---- the request side
    @property
    def pending(self) -> int:
        return self._pending

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def has_room(self, units: int = 1) -> bool:
        """Would `submit` of `units` be accepted now (one item always is, into an empty queue)."""
        return self._pending == 0 or self._pending + units <= self.max_pending

    def admit(self, units: int) -> bool:
        """`has_room`, counting the units as refused when there is none (a route checks before
        it does the work whose result it would submit)."""
        if self.has_room(units):
            return True
        self.dropped += units
        self._metrics.dropped.inc(units)
        return False

    def start(self) -> None:
        """Replay what an earlier stop spilled (ahead of new work), then start the thread."""
        self._replay()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> bool:
        """Queue `item` (never blocks); False when the queue is full (the item is not kept)."""
        units = self.size(item)
        with self._lock:
            if not (self._pending == 0 or self._pending + units <= self.max_pending):
                full = True
            else:
                full = False
                self._pending += units
        if full:
            self.dropped += units
            self._metrics.dropped.inc(units)
            return False
        self._metrics.pending.inc(units)
        self._queue.put(item)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every item submitted before this call is written (True) or `timeout`."""
        if not self.running:
            return self._pending == 0
        marker = _Flush()
        self._queue.put(marker)
        self._urgent.set()
        return marker.done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Write everything queued so far; what the database has not taken after `timeout` is
        spilled to `spill_dir` (replayed at the next start). Then stop the thread."""
        if self._thread is None:
            return
        self._give_up_at = time.monotonic() + timeout
        self._queue.put(_STOP)
        self._urgent.set()
        # one write attempt may be under way when the time runs out: give it the engine's
        # connect timeout on top
        self._thread.join(timeout + 15)
        if self._thread.is_alive():
            log.error(
                "%s: %d records still unwritten after %.0f s", self.name, self._pending, timeout
            )
        self._thread = None

    def status(self) -> dict[str, object]:
        """This writer's part of the admin's /readyz: ok while it has room and no error."""
        return {
            "ok": self.running and self.has_room() and self.last_error is None,
            "running": self.running,
            "pending": self._pending,
            "max_pending": self.max_pending,
            "written": self.written,
            "dropped": self.dropped,
            "dead_lettered": self.dead_lettered,
            "spilled": self.spilled,
            "replayed": self.replayed,
            "last_error": self.last_error,
        }

    # ---- the thread
    def _run(self) -> None:
        backlog = False  # the last batch was full: more may wait, write it without gathering
        while True:
            items: list = []
            units = 0
            markers: list[_Flush] = []
            stopping = False
            # Idle: wait for the first item. Then let the batch gather for `flush_seconds`
            # without waking at every item: a wake-up per queued request took the interpreter
            # lock from the request that queued it (a thread switch per request and writer,
            # ~0.1-0.8 ms of each answer). A flush or a stop ends the wait at once.
            first = self._queue.get()
            if not backlog:
                self._urgent.wait(self._flush_seconds)
            self._urgent.clear()
            item = first
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if isinstance(item, _Flush):
                    markers.append(item)
                else:
                    items.append(item)
                    units += self.size(item.prepared if isinstance(item, _Replayed) else item)
                if markers or units >= self._batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            backlog = units >= self._batch_size
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
            try:
                self._write_batches(items)
            except Exception:  # a defect, not the database: say so, and keep the thread alive
                log.exception("%s: unexpected error writing %d items", self.name, len(items))
                self.last_error = "unexpected error in the writer thread (see the log)"
            for marker in markers:
                if marker.then is not None:
                    marker.then()
                marker.done.set()
            if stopping:
                return

    def _write_batches(self, items: list) -> None:
        batch: list = []
        units = 0
        for item in items:
            if isinstance(item, _Replayed):
                prepared = item.prepared
            else:
                try:
                    prepared = self.prepare(item)
                except Exception as error:  # a record no database could take
                    self._dead_letter_unprepared(item, error)
                    continue
            batch.append(prepared)
            units += self.size(prepared)
            if units >= self._batch_size:
                self._write_batch(batch)
                batch, units = [], 0
        if batch:
            self._write_batch(batch)

    def _write_batch(self, prepared: list) -> None:
        attempts = 0
        while prepared:
            if self._giving_up():
                self._spill(prepared)
                return
            if self._try(prepared):
                self._done(prepared, written=True)
                return
            attempts += 1
            if attempts >= self._max_attempts or _refused(self._last_exception):
                prepared = self._isolate(prepared)
                attempts = 0
            if prepared and not self._giving_up():
                time.sleep(self._retry_seconds)

    def _isolate(self, prepared: list) -> list:
        """Write each item alone, and each part of the ones that fail; dead-letter the parts the
        database refuses (for their data, or while others go in). Returns what to retry."""
        if _database_away(self._last_exception):
            return prepared  # it is not the rows: keep them all, retry later
        failed: list[tuple[Any, BaseException | None]] = []
        wrote = False
        for item in prepared:
            if self._try([item]):
                self._done([item], written=True)
                wrote = True
                continue
            parts = self.split(item)
            if len(parts) == 1:
                failed.append((item, self._last_exception))
                continue
            for part in parts:
                if self._try([part]):
                    self._done([part], written=True)
                    wrote = True
                else:
                    failed.append((part, self._last_exception))
        keep = []
        for part, error in failed:
            if _refused(error) or (wrote and not _database_away(error)):
                self._dead_letter(part, error)
            else:
                keep.append(part)
        return keep

    def _try(self, prepared: list) -> bool:
        try:
            with self._engine.begin() as connection:
                self.write(connection, prepared)
            self.committed()
        except Exception as error:
            self._metrics.failures.inc()
            self._last_exception = error
            message = describe_database_error(error)
            if self.last_error is None:
                log.error("%s: writing %d records failed: %s", self.name, self._units(prepared),
                          message)  # fmt: skip
            self.last_error = message
            return False
        if self.last_error is not None:
            log.info("%s: writing again", self.name)
        self.last_error = None
        self._last_exception = None
        return True

    def _giving_up(self) -> bool:
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def _units(self, prepared: list) -> int:
        return sum(self.size(p) for p in prepared)

    def _done(self, prepared: list, written: bool = False) -> None:
        count = self._units(prepared)
        with self._lock:
            self._pending -= count
        self._metrics.pending.dec(count)
        if written:
            self.written += count
            self._metrics.written.inc(count)

    # ---- dead letters
    def _dead_letter(self, part: Any, error: BaseException | None) -> None:
        message = describe_database_error(error) if error is not None else "refused"
        try:
            record = encode_record(self.to_record(part)).decode()
        except Exception as encoding_error:
            record = f"<cannot be recorded: {type(encoding_error).__name__}>"
        self._store_dead_letter(self.size(part), message, record, self.lead_id(part), part)

    def _dead_letter_unprepared(self, item: Any, error: Exception) -> None:
        message = f"cannot be prepared: {type(error).__name__}: {error}"[:300]
        self._store_dead_letter(self.size(item), message, f"<{type(item).__name__}>", None, None)

    def _store_dead_letter(
        self, units: int, message: str, record: str, lead_id: str | None, part: Any
    ) -> None:
        row = {"source": self.source, "lead_id": _storable(lead_id), "failed_at": utcnow(),
               "error": message, "record": record}  # fmt: skip
        try:
            with self._engine.begin() as connection:
                connection.execute(dead_letters.insert(), [row])
        except Exception as error:  # not even the dead letter: keep the record in the spill file
            log.error("%s: cannot store a dead letter (%s); spilling it",
                      self.name, describe_database_error(error))  # fmt: skip
            if part is not None:
                self._spill([part])
                return
        with self._lock:
            self._pending -= units
        self._metrics.pending.dec(units)
        self.dead_lettered += units
        self._metrics.dead_lettered.inc(units)
        log.error("%s: %d record(s) refused by the database, kept in dead_letters: %s",
                  self.name, units, message)  # fmt: skip

    # ---- spill at stop, replay at start
    def _spill(self, prepared: list) -> None:
        units = self._units(prepared)
        if self.spill_dir is None:
            log.error("%s: %d records lost: no spill directory", self.name, units)
            return
        path = self.spill_dir / f"{self.source}-{os.getpid()}-{time.time_ns()}.jsonl"
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as spill:
                for item in prepared:
                    spill.write(encode_record(self.to_record(item)) + b"\n")
                spill.flush()
                os.fsync(spill.fileno())
        except Exception as error:
            log.error("%s: %d records lost: cannot spill to %s: %s", self.name, units, path, error)
            return
        with self._lock:
            self._pending -= units
        self._metrics.pending.dec(units)
        self.spilled += units
        self._metrics.spilled.inc(units)
        log.warning("%s: the database did not take %d records in time: spilled to %s (written "
                    "at the next start)", self.name, units, path)  # fmt: skip

    def _replay(self) -> None:
        """Queue what earlier stops spilled; each file is deleted once its records are written
        (a file is claimed by renaming, so of several workers one replays it)."""
        if self.spill_dir is None or not self.spill_dir.is_dir():
            return
        for path in sorted(self.spill_dir.glob(f"{self.source}-*")):
            claimed = _claim(path)
            if claimed is None:
                continue
            try:
                lines = claimed.read_bytes().splitlines()
                items = [self.from_record(decode_record(line)) for line in lines if line.strip()]
            except Exception as error:
                log.error("%s: cannot replay %s (%s); left there", self.name, claimed, error)
                continue
            units = self._units(items)
            with self._lock:
                self._pending += units
            self._metrics.pending.inc(units)
            for item in items:
                self._queue.put(_Replayed(item))
            self.replayed += units
            # every record before this marker is then written, dead-lettered or spilled anew
            self._queue.put(_Flush(then=partial(claimed.unlink, missing_ok=True)))
            log.info("%s: replaying %d records spilled to %s", self.name, units, claimed)


def _claim(path: Path) -> Path | None:
    """Rename a spill file to one naming this process; None if another process has it."""
    name = path.name
    if ".replay-" in name:  # claimed before: by a live process (leave it) or a dead one
        base, _, pid = name.rpartition(".replay-")
        if pid.isdigit() and _alive(int(pid)):
            return None
        name = base
    claimed = path.with_name(f"{name}.replay-{os.getpid()}")
    try:
        path.rename(claimed)
    except OSError:
        return None
    return claimed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a file this very process claimed before is not in use now
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _database_away(error: BaseException | None) -> bool:
    """The database cannot be reached (connection refused or lost, pool exhausted)."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (sa_exc.InterfaceError, sa_exc.TimeoutError)) or (
        isinstance(error, sa_exc.OperationalError) and _connection_message(error)
    )


def _connection_message(error: BaseException) -> bool:
    text = str(getattr(error, "orig", error)).lower()
    return any(
        words in text
        for words in ("connect", "server closed", "terminat", "timeout", "timed out", "ssl")
    )


def _storable(lead_id: str | None) -> str | None:
    if lead_id is None or "\x00" in lead_id or len(lead_id) > 200:
        return None
    return lead_id
