"""CaptureWriter: inserts the captured rows in a thread, ignoring the ones already stored.

Built on `serving.queued_writer.QueuedWriter` (the queue, batching, retries and drops). The
request queues a `Scored` or `Events` item (a reference to its validated leads: O(1)); the rows
and their hashes are built here. Inserts are `INSERT ... ON CONFLICT DO NOTHING` (SQLite and
PostgreSQL alike), so the first arrival of a fact keeps its `received_at`.

Most of what a CRM sends is already stored (a lead scored again sends its whole history), and the
writer shares the interpreter with the requests: it reads the keys the leads already have
(`lead_id`, `dedup_key`: from the unique index) and inserts only the rest, compares observed
attribute values with the stored ones as JSON text (no decoding), and recomputes the funnel rows
only of the leads that got a new row (`RETURNING`).

Most scored leads say nothing new at all: the writer remembers, per lead, the digest of the
content it last stored in full and the lead's `write_token` as that write left it. Every write
that adds or deletes a row of a lead sets a new random token in its transaction (this writer in
any worker, the retention purge) and an erasure deletes the lead's row, so an unchanged token
means the lead's rows are as they were. A write that adds nothing leaves the token alone: two
workers scoring the same leads do not make each other's remembered leads stale. `prepare` keeps a
lead with the remembered digest as a `Repeat` (no rows built); `write` reads the batch's repeats'
tokens in one query and skips a repeat only while its token is the remembered one; otherwise its
rows are built and written as any other. A write first locks its leads (PostgreSQL: `lock_leads`,
advisory locks held to the commit, taken by the purge and erasure too; SQLite: its write lock,
`hold_leads`), so what it reads afterwards no other write can change before it commits. A lead
is remembered only when, read back after the write, every attribute value it sent is the lead's
latest (as the next write would read it: SQLite may store 3.0 as 3), so a repeat would have
added nothing. At most `known_leads` leads are remembered (the oldest are forgotten); 0 turns
this off.
"""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from serving.capture.erasure import erased_since
from serving.capture.rows import CaptureRows, event_rows, scored_rows
from serving.db import as_utc, captured_leads, json_text, lead_attributes, lead_touchpoints
from serving.queued_writer import QueuedWriter, WriterMetrics
from serving.report.funnel_tables import refresh_leads

METRICS = WriterMetrics(
    pending=Gauge(
        "leadscore_capture_pending",
        "Captured requests (scored leads, events) accepted but not yet written",
        multiprocess_mode="livesum",
    ),
    written=Counter("leadscore_capture_written_total", "Captured requests written"),
    failures=Counter("leadscore_capture_write_failures_total", "Failed capture writes (retried)"),
    dropped=Counter(
        "leadscore_capture_dropped_total",
        "Captured requests given up on because the capture queue was full",
    ),
    dead_lettered=Counter(
        "leadscore_capture_dead_letter_total",
        "Captured requests (or one lead of one) the database refused, kept in dead_letters",
    ),
    spilled=Counter(
        "leadscore_capture_spilled_total",
        "Captured requests spilled to the local file at a stop (replayed at the next start)",
    ),
)

_SQLITE_MAX_VARIABLES = 999  # parameters in one statement: any SQLite build takes this many


class Scored(NamedTuple):
    """The leads of one scored request, as the route validated them."""

    leads: Sequence[Any]
    moments: np.ndarray | None
    received_at: datetime


class Events(NamedTuple):
    """The leads of one `POST /v1/events` request."""

    leads: Sequence[Any]
    received_at: datetime


def insert_ignoring_duplicates(
    connection: Connection, table: sa.Table, rows: list[dict]
) -> set[str]:
    """INSERT the rows, skipping any that collide with a stored row on a unique key; returns the
    lead ids of the rows inserted (SQLite: exactly; PostgreSQL: of every row given, since
    RETURNING would make SQLAlchemy send many-row statements psycopg splits in Python, ~3 s of
    the interpreter for 20,000 rows, instead of its executemany)."""
    if not rows:
        return set()
    name = connection.dialect.name
    if name == "sqlite":
        return _sqlite_insert_ignoring_duplicates(connection, table, rows)
    if name == "postgresql":
        connection.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
        return {row["lead_id"] for row in rows}
    # pragma: no cover - the service supports SQLite and PostgreSQL
    raise RuntimeError(f"capture: unsupported database {name!r} (SQLite or PostgreSQL)")


def _sqlite_insert_ignoring_duplicates(
    connection: Connection, table: sa.Table, rows: list[dict]
) -> set[str]:
    """Many rows per statement, values through the columns' own bind processors: the writer
    shares the interpreter with the requests, and SQLAlchemy's per-row handling of a 1,000-lead
    request's 30,000 rows took most of a second of it (`serving.score_log` does the same)."""
    dialect = connection.dialect
    keys = list(rows[0])
    processors = [table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys]
    columns = [[row[key] for row in rows] for key in keys]
    for i, processor in enumerate(processors):
        if processor is not None:  # once per distinct value: received_at is one per request
            columns[i] = _processed(processor, columns[i])
    parameters = list(zip(*columns, strict=True))
    per_statement = max(1, _SQLITE_MAX_VARIABLES // len(keys))
    names = ", ".join(f'"{key}"' for key in keys)
    one = "(" + ", ".join("?" * len(keys)) + ")"
    inserted: set[str] = set()
    for start in range(0, len(parameters), per_statement):
        chunk = parameters[start : start + per_statement]
        sql = (f'INSERT INTO "{table.name}" ({names}) VALUES {", ".join([one] * len(chunk))} '
               'ON CONFLICT DO NOTHING RETURNING "lead_id"')  # fmt: skip
        result = connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))
        inserted.update(row[0] for row in result)
    return inserted


def _processed(processor: Any, values: list) -> list:
    done: dict[tuple[type, Any], Any] = {}
    out = []
    for value in values:
        key = (type(value), value)
        try:
            out.append(done[key])
        except KeyError:
            out.append(done.setdefault(key, processor(value)))
        except TypeError:  # unhashable (a JSON value that is no scalar)
            out.append(processor(value))
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _same_text(stored: str | None, text: str, value: Any) -> bool:
    """Is `value` (whose JSON text is `text`) the stored value (JSON text, or NULL)?"""
    if stored is None:
        return False
    return stored == text or _same(json.loads(stored), value)


class CaptureWriter(QueuedWriter):
    name = "leadscore-capture"
    source = "capture"

    def __init__(self, engine: Engine, *, known_leads: int = 50_000, **options: Any) -> None:
        super().__init__(engine, METRICS, **options)
        self.known_leads = known_leads
        # lead id -> (digest of the content last stored in full, the write token set with it)
        self._known: dict[str, tuple[bytes, int]] = {}
        self._staged: dict[str, tuple[bytes, int]] = {}  # remembered once the write commits
        self.repeats_skipped = 0

    def prepare(self, item: Scored | Events) -> CaptureRows:
        if isinstance(item, Scored):
            known = self._known if self.known_leads > 0 else None
            return scored_rows(item.leads, item.moments, item.received_at, known)
        return event_rows(item.leads, item.received_at)

    def split(self, prepared: CaptureRows) -> list[CaptureRows]:
        """One part per lead: a lead the database refuses does not take the others along."""
        by_lead: dict[str, CaptureRows] = {}
        for kind in _KINDS:
            for row in getattr(prepared, kind):
                getattr(by_lead.setdefault(row["lead_id"], CaptureRows()), kind).append(row)
        for repeat in prepared.repeats:
            by_lead.setdefault(repeat.lead_id, CaptureRows()).repeats.append(repeat)
        for lead_id, digest in prepared.digests:
            by_lead.setdefault(lead_id, CaptureRows()).digests.append((lead_id, digest))
        return list(by_lead.values()) or [prepared]

    def to_record(self, prepared: CaptureRows) -> dict:
        built = prepared.built()
        return {kind: getattr(built, kind) for kind in _KINDS}

    def from_record(self, record: dict) -> CaptureRows:
        return CaptureRows(**{kind: record[kind] for kind in _KINDS})

    def lead_id(self, prepared: CaptureRows) -> str | None:
        ids = {row["lead_id"] for kind in _KINDS for row in getattr(prepared, kind)}
        ids.update(repeat.lead_id for repeat in prepared.repeats)
        return ids.pop() if len(ids) == 1 else None

    def committed(self) -> None:
        """The write committed: remember what it staged (the oldest leads are forgotten)."""
        known = self._known
        for lead_id, entry in self._staged.items():
            known.pop(lead_id, None)
            known[lead_id] = entry
        while len(known) > self.known_leads:
            del known[next(iter(known))]
        self._staged = {}

    def write(self, connection: Connection, prepared: Sequence[CaptureRows]) -> None:
        self._staged = {}
        rows = CaptureRows()
        for part in prepared:
            rows.extend(part)
        ids = _lead_ids(rows)
        repeated = {repeat.lead_id for repeat in rows.repeats}
        # first, the leads held (the repeats' too: an erasure committing meanwhile must not see
        # a skip decided on the token it is about to delete); see the module's docstring
        lock_leads(connection, ids | repeated)
        hold_leads(connection, ids | repeated)
        if repeated:  # each part's repeats built in its place: the batch keeps arrival order
            tokens = write_tokens(connection, sorted(repeated))
            rows = CaptureRows()
            for part in prepared:
                rows.extend(self._unchanged_skipped(part, tokens, ids))
            ids = _lead_ids(rows)
        if not ids:  # every lead a repeat with nothing new: nothing to write
            return
        token = new_write_token()
        erased = erased_since(connection, [row["lead_id"] for row in rows.leads])
        if erased:  # queued before the lead was erased (maybe in another worker): not kept
            rows = _not_erased(rows, erased)
        # each lead's first row (its first arrival), with the first creation moment it came with
        leads = list({row["lead_id"]: row for row in reversed(rows.leads)}.values())
        created: dict[str, datetime] = {}
        for row in rows.leads:
            if row["created_at"] is not None:
                created.setdefault(row["lead_id"], row["created_at"])
        stored = self._stored_leads(connection, [row["lead_id"] for row in leads])
        # new leads, and stored ones without their creation moment that it came for
        new = [
            {**row, "created_at": created.get(i), "write_token": token}
            for row in leads
            if (i := row["lead_id"]) not in stored or (not stored[i] and i in created)
        ]
        written = self._add_leads(connection, new)
        touches = _unique(rows.touchpoints)
        known = self._stored_keys(connection, lead_touchpoints, touches)
        touches = [row for row in touches if (row["lead_id"], row["dedup_key"]) not in known]
        written |= insert_ignoring_duplicates(connection, lead_touchpoints, touches)
        if rows.attributes or rows.observed:
            changes = self._changes(connection, rows.attributes, rows.observed)
            written |= insert_ignoring_duplicates(connection, lead_attributes, changes)
        # the funnel's rows of the leads that got a new row, in the same transaction
        # (`serving.report.funnel_tables`): the others' facts did not change
        refresh_leads(connection, written)
        # a new token for the leads that got a row: the others are as any writer left them
        set_write_token(connection, written, token)
        if rows.digests and self.known_leads > 0:
            self._stage(connection, rows, set(erased))

    def _unchanged_skipped(
        self, part: CaptureRows, tokens: dict[str, int], busy: set[str]
    ) -> CaptureRows:
        """The part's rows without its repeats whose lead is as this writer left it (`tokens`:
        the stored leads' write tokens); the other repeats' rows built (the lead was erased,
        purged, or got a row from elsewhere since). A lead with rows elsewhere in the batch
        (`busy`) is written as if it were not known: they may change it."""
        if not part.repeats:
            return part
        rows = CaptureRows(list(part.leads), list(part.touchpoints), list(part.attributes),
                           list(part.observed), [], list(part.digests))  # fmt: skip
        for repeat in part.repeats:
            entry = self._known.get(repeat.lead_id)
            token = tokens.get(repeat.lead_id)
            if (
                entry is not None
                and token is not None
                and repeat.lead_id not in busy
                and entry == (repeat.digest, token)
            ):
                self.repeats_skipped += 1
                continue
            rows.extend(repeat.rows())
        return rows

    def _stage(self, connection: Connection, rows: CaptureRows, erased: set[str]) -> None:
        """Stage the leads written in full to be remembered (`committed`) with their token as
        this write leaves it: not a lead written twice in the batch or erased, nor one an
        attribute value of which, read back, is not the lead's latest."""
        seen: dict[str, bytes | None] = {}
        for lead_id, digest in rows.digests:
            seen[lead_id] = None if lead_id in seen or lead_id in erased else digest
        keep = {lead_id: digest for lead_id, digest in seen.items() if digest is not None}
        unsettled = _unsettled(connection, [row for row in rows.observed if row["lead_id"] in keep])
        tokens = write_tokens(connection, sorted(keep))
        self._staged = {
            lead_id: (digest, tokens[lead_id])
            for lead_id, digest in keep.items()
            if lead_id not in unsettled and lead_id in tokens
        }

    def _add_leads(self, connection: Connection, rows: list[dict]) -> set[str]:
        """Insert the leads; one already stored (by another worker, too) keeps its first arrival
        and gets its creation moment if it had none (a lead first heard of without it)."""
        if not rows:
            return set()
        c = captured_leads.c
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(captured_leads)
        upsert = insert.on_conflict_do_update(
            index_elements=[c.lead_id],
            set_={"created_at": sa.func.coalesce(c.created_at, insert.excluded.created_at),
                  "write_token": insert.excluded.write_token},
        )  # fmt: skip
        connection.execute(upsert, rows)
        return {row["lead_id"] for row in rows}

    def _stored_leads(self, connection: Connection, ids: list[str]) -> dict[str, bool]:
        """The leads among `ids` already stored: whether each has its creation moment."""
        stored: dict[str, bool] = {}
        c = captured_leads.c
        for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
            chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
            query = sa.select(c.lead_id, c.created_at.is_not(None)).where(c.lead_id.in_(chunk))
            stored.update((lead_id, bool(dated)) for lead_id, dated in connection.execute(query))
        return stored

    def _stored_keys(
        self, connection: Connection, table: sa.Table, rows: list[dict]
    ) -> set[tuple[str, str]]:
        """The (lead, dedup key) pairs of the leads of `rows` already in `table`."""
        ids = sorted({row["lead_id"] for row in rows})
        known: set[tuple[str, str]] = set()
        for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
            chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
            query = sa.select(table.c.lead_id, table.c.dedup_key).where(table.c.lead_id.in_(chunk))
            known.update(tuple(row) for row in connection.execute(query))
        return known

    def _changes(
        self, connection: Connection, changes: list[dict], observed: list[dict]
    ) -> list[dict]:
        """The attribute rows to insert: the changes, and the observed values that differ from
        the lead's latest value (stored, or changed in this batch), less those already stored.
        Values are compared as JSON text (as stored), decoded only when the texts differ."""
        ids = sorted({row["lead_id"] for row in chain(changes, observed)})
        a = lead_attributes.c
        columns = (a.lead_id, a.name, sa.cast(a.value, sa.Text), a.changed_at, a.dedup_key)
        latest: dict[tuple[str, str], tuple[datetime, str | None]] = {}
        known: set[tuple[str, str]] = set()
        for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
            chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
            query = sa.select(*columns).where(a.lead_id.in_(chunk)).order_by(a.changed_at, a.id)
            for lead_id, name, text, changed_at, key in connection.execute(query):
                latest[(lead_id, name)] = (as_utc(changed_at), text)
                known.add((lead_id, key))
        for row in changes:
            key = (row["lead_id"], row["name"])
            if key not in latest or latest[key][0] <= row["changed_at"]:
                latest[key] = (row["changed_at"], json_text(row["value"]))
        new = list(changes)
        for row in observed:
            key = (row["lead_id"], row["name"])
            text = json_text(row["value"])
            if key in latest and _same_text(latest[key][1], text, row["value"]):
                continue
            latest[key] = (row["changed_at"], text)
            new.append(row)
        return [row for row in _unique(new) if (row["lead_id"], row["dedup_key"]) not in known]


_KINDS = ("leads", "touchpoints", "attributes", "observed")


# PostgreSQL advisory locks of capture: (this class, a bucket of lead ids); the two-key space is
# apart from the migrations' one-key lock. Buckets, not one lock per lead: a transaction holds at
# most LEAD_LOCK_BUCKETS locks, however many leads it writes or purges (PostgreSQL's lock table
# has room for max_locks_per_transaction x max_connections, 6,400 by default).
_LEAD_LOCK_CLASS = 0x1EAD
LEAD_LOCK_BUCKETS = 256


def lead_lock_bucket(lead_id: str) -> int:
    return zlib.crc32(lead_id.encode()) % LEAD_LOCK_BUCKETS


def lock_leads(connection: Connection, lead_ids: Iterable[str]) -> None:
    """PostgreSQL: lock the leads' buckets until the transaction ends (in order: no deadlock),
    whether or not the leads' rows exist yet: every write of a lead's captured rows (the
    writers, the purge, an erasure) takes it first, so none reads what another has not
    committed. SQLite needs none: one transaction writes at a time."""
    if connection.dialect.name != "postgresql":
        return
    buckets = sorted({lead_lock_bucket(lead_id) for lead_id in lead_ids})
    if buckets:
        connection.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(:class, bucket) "
                "FROM unnest(CAST(:buckets AS int[])) WITH ORDINALITY AS t(bucket, n) ORDER BY n"
            ),
            {"class": _LEAD_LOCK_CLASS, "buckets": buckets},
        )


def new_write_token() -> int:
    """A random token for one write (62 bits: a BIGINT on every database)."""
    return secrets.randbits(62)


def hold_leads(connection: Connection, lead_ids: set[str]) -> None:
    """SQLite: take the database's write lock now, before the write reads what is stored (the
    driver begins a transaction at the first statement that writes; an UPDATE that changes
    nothing is one). PostgreSQL: nothing, `lock_leads` holds the leads."""
    if connection.dialect.name != "sqlite":
        return
    if lead_ids:  # an UPDATE of no row takes the lock as well, and writes nothing to the WAL
        connection.execute(
            captured_leads.update()
            .where(sa.false())
            .values(write_token=captured_leads.c.write_token)
        )


def set_write_token(connection: Connection, lead_ids: Iterable[str], token: int) -> None:
    """Set the stored leads' token (and, on PostgreSQL, lock their rows until the commit)."""
    ids = sorted(set(lead_ids))  # one order for every writer: no deadlock between two
    c = captured_leads.c
    for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
        chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
        connection.execute(
            captured_leads.update().where(c.lead_id.in_(chunk)).values(write_token=token)
        )


def write_tokens(connection: Connection, ids: list[str]) -> dict[str, int]:
    """The write token of each stored lead of `ids`."""
    c = captured_leads.c
    tokens: dict[str, int] = {}
    for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
        chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
        query = sa.select(c.lead_id, c.write_token).where(c.lead_id.in_(chunk))
        tokens.update((lead_id, int(token)) for lead_id, token in connection.execute(query))
    return tokens


def _unsettled(connection: Connection, observed: list[dict]) -> set[str]:
    """The leads an observed value of which is not, read back now, the lead's latest value of
    that attribute (by moment, then row: as `_changes` reads it)."""
    ids = sorted({row["lead_id"] for row in observed})
    a = lead_attributes.c
    latest: dict[tuple[str, str], str | None] = {}
    for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
        chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
        query = (
            sa.select(a.lead_id, a.name, sa.cast(a.value, sa.Text))
            .where(a.lead_id.in_(chunk))
            .order_by(a.changed_at, a.id)
        )
        for lead_id, name, text in connection.execute(query):
            latest[(lead_id, name)] = text
    return {
        row["lead_id"]
        for row in observed
        if not _same_text(latest.get((row["lead_id"], row["name"])), json_text(row["value"]),
                          row["value"])
    }  # fmt: skip


def _lead_ids(rows: CaptureRows) -> set[str]:
    return {row["lead_id"] for kind in _KINDS for row in getattr(rows, kind)}


def _not_erased(rows: CaptureRows, erased: dict[str, datetime]) -> CaptureRows:
    def keep(part: list[dict]) -> list[dict]:
        return [
            row for row in part
            if row["lead_id"] not in erased or row["received_at"] > erased[row["lead_id"]]
        ]  # fmt: skip

    return CaptureRows(keep(rows.leads), keep(rows.touchpoints), keep(rows.attributes),
                       keep(rows.observed), [], rows.digests)  # fmt: skip


def _unique(rows: list[dict]) -> list[dict]:
    """One row per (lead, dedup key): the first, which arrived first."""
    seen: dict[tuple[str, str], dict] = {}
    for row in rows:
        seen.setdefault((row["lead_id"], row["dedup_key"]), row)
    return list(seen.values())
