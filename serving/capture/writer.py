"""CaptureWriter: inserts the captured rows in a thread, ignoring the ones already stored.

Built on `serving.queued_writer.QueuedWriter` (the queue, batching, retries and drops). The
request queues a `Scored` or `Events` item (a reference to its validated leads: O(1)); the rows
and their hashes are built here. Inserts are `INSERT ... ON CONFLICT DO NOTHING` (SQLite and
PostgreSQL alike), so the first arrival of a fact keeps its `received_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from serving.capture.erasure import erased_since
from serving.capture.rows import CaptureRows, event_rows, scored_rows
from serving.db import as_utc, captured_leads, lead_attributes, lead_touchpoints
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


def insert_ignoring_duplicates(connection: Connection, table: sa.Table, rows: list[dict]) -> None:
    """INSERT the rows, skipping any that collide with a stored row on a unique key."""
    if not rows:
        return
    name = connection.dialect.name
    if name == "sqlite":
        _sqlite_insert_ignoring_duplicates(connection, table, rows)
    elif name == "postgresql":
        connection.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
    else:  # pragma: no cover - the service supports SQLite and PostgreSQL
        raise RuntimeError(f"capture: unsupported database {name!r} (SQLite or PostgreSQL)")


def _sqlite_insert_ignoring_duplicates(
    connection: Connection, table: sa.Table, rows: list[dict]
) -> None:
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
    for start in range(0, len(parameters), per_statement):
        chunk = parameters[start : start + per_statement]
        sql = (f'INSERT INTO "{table.name}" ({names}) VALUES {", ".join([one] * len(chunk))} '
               "ON CONFLICT DO NOTHING")  # fmt: skip
        connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))


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


class CaptureWriter(QueuedWriter):
    name = "leadscore-capture"
    source = "capture"

    def __init__(self, engine: Engine, **options: Any) -> None:
        super().__init__(engine, METRICS, **options)

    def prepare(self, item: Scored | Events) -> CaptureRows:
        if isinstance(item, Scored):
            return scored_rows(item.leads, item.moments, item.received_at)
        return event_rows(item.leads, item.received_at)

    def split(self, prepared: CaptureRows) -> list[CaptureRows]:
        """One part per lead: a lead the database refuses does not take the others along."""
        by_lead: dict[str, CaptureRows] = {}
        for kind in _KINDS:
            for row in getattr(prepared, kind):
                getattr(by_lead.setdefault(row["lead_id"], CaptureRows()), kind).append(row)
        return list(by_lead.values()) or [prepared]

    def to_record(self, prepared: CaptureRows) -> dict:
        return {kind: getattr(prepared, kind) for kind in _KINDS}

    def from_record(self, record: dict) -> CaptureRows:
        return CaptureRows(**{kind: record[kind] for kind in _KINDS})

    def lead_id(self, prepared: CaptureRows) -> str | None:
        ids = {row["lead_id"] for kind in _KINDS for row in getattr(prepared, kind)}
        return ids.pop() if len(ids) == 1 else None

    def write(self, connection: Connection, prepared: Sequence[CaptureRows]) -> None:
        rows = CaptureRows()
        for part in prepared:
            rows.extend(part)
        erased = erased_since(connection, [row["lead_id"] for row in rows.leads])
        if erased:  # queued before the lead was erased (maybe in another worker): not kept
            rows = _not_erased(rows, erased)
        leads = list({row["lead_id"]: row for row in reversed(rows.leads)}.values())
        insert_ignoring_duplicates(connection, captured_leads, leads)
        created: dict[str, datetime] = {}
        for row in rows.leads:
            if row["created_at"] is not None:
                created.setdefault(row["lead_id"], row["created_at"])
        dated = [
            {"id": lead_id, "created": created[lead_id]}
            for lead_id in self._undated(connection, sorted(created))
        ]
        if dated:  # a lead first heard of without its creation moment gets it when it comes
            connection.execute(
                captured_leads.update()
                .where(captured_leads.c.lead_id == sa.bindparam("id"))
                .where(captured_leads.c.created_at.is_(None))
                .values(created_at=sa.bindparam("created")),
                dated,
            )
        insert_ignoring_duplicates(connection, lead_touchpoints, _unique(rows.touchpoints))
        changes = rows.attributes + self._changed(connection, rows.attributes, rows.observed)
        insert_ignoring_duplicates(connection, lead_attributes, _unique(changes))
        # the funnel's rows of these leads, in the same transaction (`serving.report.funnel_tables`)
        refresh_leads(
            connection, {row["lead_id"] for row in chain(leads, rows.touchpoints, changes)}
        )

    def _undated(self, connection: Connection, ids: list[str]) -> list[str]:
        """The leads among `ids` stored without their creation moment."""
        undated: list[str] = []
        for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
            chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
            query = sa.select(captured_leads.c.lead_id).where(
                captured_leads.c.lead_id.in_(chunk), captured_leads.c.created_at.is_(None)
            )
            undated += connection.execute(query).scalars().all()
        return undated

    def _changed(
        self, connection: Connection, changes: list[dict], observed: list[dict]
    ) -> list[dict]:
        """The observed attribute values that differ from the lead's latest value (stored, or
        changed in this batch)."""
        if not observed:
            return []
        ids = sorted({row["lead_id"] for row in observed})
        latest: dict[tuple[str, str], tuple[datetime, Any]] = {}
        columns = (lead_attributes.c.lead_id, lead_attributes.c.name, lead_attributes.c.value,
                   lead_attributes.c.changed_at)  # fmt: skip
        order = (lead_attributes.c.changed_at, lead_attributes.c.id)
        for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
            chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
            query = sa.select(*columns).where(lead_attributes.c.lead_id.in_(chunk)).order_by(*order)
            for lead_id, name, value, changed_at in connection.execute(query):
                latest[(lead_id, name)] = (as_utc(changed_at), value)
        for row in changes:
            key = (row["lead_id"], row["name"])
            if key not in latest or latest[key][0] <= row["changed_at"]:
                latest[key] = (row["changed_at"], row["value"])
        changed = []
        for row in observed:
            key = (row["lead_id"], row["name"])
            if key in latest and _same(latest[key][1], row["value"]):
                continue
            latest[key] = (row["changed_at"], row["value"])
            changed.append(row)
        return changed


_KINDS = ("leads", "touchpoints", "attributes", "observed")


def _not_erased(rows: CaptureRows, erased: dict[str, datetime]) -> CaptureRows:
    def keep(part: list[dict]) -> list[dict]:
        return [
            row for row in part
            if row["lead_id"] not in erased or row["received_at"] > erased[row["lead_id"]]
        ]  # fmt: skip

    return CaptureRows(keep(rows.leads), keep(rows.touchpoints), keep(rows.attributes),
                       keep(rows.observed))  # fmt: skip


def _unique(rows: list[dict]) -> list[dict]:
    """One row per (lead, dedup key): the first, which arrived first."""
    seen: dict[tuple[str, str], dict] = {}
    for row in rows:
        seen.setdefault((row["lead_id"], row["dedup_key"]), row)
    return list(seen.values())
