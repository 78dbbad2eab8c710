"""The capture service of a worker, and the queries on what the service holds about a lead.

- `Capture`: the writer thread (`CaptureWriter`) and the retention purge (a `Refresher`), started
  and stopped by the app's lifespan; `scored(...)` / `events(...)` only queue.
- `erase_lead`: right to erasure, everything held about one lead (captured attributes and
  touchpoints, its creation row, score log rows, outcome) in one transaction, and an audit row
  naming who and when, with the lead id only as a SHA-256 hash.
- `lead_history`: a lead's scores over time (model and policy versions) and its outcome.
- `outcomes_since`: how many outcomes arrived after a moment (retraining, `GET /v1/model`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

from serving.capture.erasure import lead_id_hash
from serving.capture.writer import (
    CaptureWriter,
    Events,
    Scored,
    lock_leads,
    new_write_token,
    set_write_token,
)
from serving.db import (
    as_utc,
    captured_leads,
    dead_letters,
    erasures,
    lead_attributes,
    lead_funnel,
    lead_funnel_attributes,
    lead_funnel_campaigns,
    lead_funnel_channels,
    lead_touchpoints,
    outcomes,
    score_log,
    utcnow,
)
from serving.refresher import Refresher
from serving.report.funnel_tables import refresh_leads

log = logging.getLogger(__name__)

# Every table that holds data about a lead, by its `lead_id` column: erasure empties them all
# (the funnel's tables hold facts derived from the others: `serving.report.funnel_tables`).
LEAD_TABLES = (
    lead_attributes, lead_touchpoints, captured_leads, score_log, outcomes, dead_letters,
    lead_funnel, lead_funnel_channels, lead_funnel_campaigns, lead_funnel_attributes,
)  # fmt: skip
# The tables whose rows arrive (each with its moment, `_ARRIVED`): the others are derived.
ARRIVING_TABLES = LEAD_TABLES[:6]
CAPTURE_TABLES = (lead_attributes, lead_touchpoints, captured_leads)


class CaptureDisabled(Exception):
    """POST /v1/events while capture is turned off."""


class CaptureBusy(Exception):
    """The capture queue is full: the events were not accepted (retry later)."""


class Capture:
    """What one worker captures. With `enabled` false nothing is queued (events are refused);
    the retention purge still runs, so turning capture off does not keep old data forever."""

    def __init__(
        self,
        engine: Engine,
        *,
        enabled: bool = True,
        retention_days: float = 0,
        purge_seconds: float = 3600,
        flush_seconds: float = 0.2,
        max_pending: int = 10_000,
        spill_dir: str | None = None,
        stop_seconds: float = 10.0,
        known_leads: int = 50_000,
    ) -> None:
        self.enabled = enabled
        self.retention_days = retention_days
        self._engine = engine
        self._stop_seconds = stop_seconds
        self.writer = CaptureWriter(
            engine, flush_seconds=flush_seconds, max_pending=max_pending, spill_dir=spill_dir,
            known_leads=known_leads,
        )  # fmt: skip
        self.purger = (
            Refresher("leadscore-capture-purge", self.purge, purge_seconds)
            if retention_days > 0
            else None
        )

    def start(self) -> None:
        if self.enabled:
            self.writer.start()
        if self.purger is not None:
            self.purger.start()

    def stop(self) -> None:
        if self.purger is not None:
            self.purger.stop()
        self.writer.stop(self._stop_seconds)

    def scored(
        self, leads: Sequence[Any], moments: np.ndarray | None, received_at: datetime
    ) -> None:
        """Queue the inputs of a scored request (dropped and counted if the queue is full: the
        scores are answered whatever happens to their capture)."""
        if self.enabled:
            self.writer.submit(Scored(leads, moments, received_at))

    def events(self, leads: Sequence[Any], received_at: datetime) -> None:
        if not self.enabled:
            raise CaptureDisabled(
                "capture is turned off on this service (LEADSCORE_CAPTURE_ENABLED=false): "
                "nothing was stored"
            )
        if not self.writer.submit(Events(leads, received_at)):
            raise CaptureBusy(
                "the capture queue is full (the database is slow or down): nothing was stored "
                "from this request; send it again later"
            )

    def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Delete captured rows received more than `retention_days` ago."""
        cutoff = (now or utcnow()) - timedelta(days=self.retention_days)
        deleted = purge_captured(self._engine, cutoff)
        if any(deleted.values()):
            log.info("capture retention: deleted %s received before %s", deleted, cutoff)
        return deleted


def purge_captured(engine: Engine, cutoff: datetime) -> dict[str, int]:
    """Delete the captured rows received before `cutoff`; the funnel rows of the leads they
    were about are recomputed from what remains (a lead nothing is held about loses its row).
    On PostgreSQL the leads are locked first (`lock_leads`, as every capture write does) and
    only their rows deleted; the leads' write tokens change (`serving.capture.writer`)."""
    cutoff = as_utc(cutoff)  # SQLite compares the UTC text
    deleted = {}
    with engine.begin() as connection:
        touched: set[str] = set()
        locked = None
        if connection.dialect.name == "postgresql":
            held = sa.union(*(
                sa.select(table.c.lead_id).where(table.c.received_at < cutoff)
                for table in CAPTURE_TABLES
            ))  # fmt: skip
            locked = sorted(connection.execute(held).scalars().all())
            lock_leads(connection, locked)
        for table in CAPTURE_TABLES:
            where = table.c.received_at < cutoff
            if locked is not None:  # rows of other leads wait for the next purge
                ids = sa.bindparam("ids", locked, type_=postgresql.ARRAY(sa.Text))
                where = sa.and_(where, table.c.lead_id == sa.any_(ids))
            result = connection.execute(table.delete().where(where).returning(table.c.lead_id))
            lead_ids = result.scalars().all()
            touched.update(lead_ids)
            deleted[table.name] = len(lead_ids)
        # the writers' remembered leads (`serving.capture.writer`) are not these any more
        set_write_token(connection, touched, new_write_token())
        refresh_leads(connection, touched)
    return deleted


def erase_lead(engine: Engine, lead_id: str, erased_by: str) -> tuple[int, dict[str, int]]:
    """Delete every row about `lead_id` and write the audit row, in one transaction; returns
    (the audit row's id, rows deleted per table). The audit row is written even when nothing was
    held (the request itself is recorded); it is also the tombstone the capture writers check."""
    deleted = {}
    with engine.begin() as connection:
        lock_leads(connection, [lead_id])  # no capture write of the lead runs meanwhile
        for table in LEAD_TABLES:
            result = connection.execute(table.delete().where(table.c.lead_id == lead_id))
            deleted[table.name] = int(result.rowcount or 0)
        inserted = connection.execute(
            erasures.insert()
            .values(lead_id_sha256=lead_id_hash(lead_id), erased_at=utcnow(), erased_by=erased_by,
                    rows_deleted=deleted)
        ).inserted_primary_key  # fmt: skip
    assert inserted is not None
    return int(inserted[0]), deleted


# The moment each table's rows arrived: a row from before the erasure, written late by another
# worker's queue, is found by it (a score requested after the erasure is new data and stays).
_ARRIVED = {
    "lead_attributes": lead_attributes.c.received_at,
    "lead_touchpoints": lead_touchpoints.c.received_at,
    "captured_leads": captured_leads.c.received_at,
    "score_log": score_log.c.scored_at,
    "outcomes": outcomes.c.reported_at,
    "dead_letters": dead_letters.c.failed_at,
}


def sweep_erased(engine: Engine, audit_id: int, lead_id: str) -> dict[str, int]:
    """Delete the lead's rows that arrived before its erasure but were written after it (queued
    in another worker), and add them to the audit row; returns rows deleted per table."""
    with engine.begin() as connection:
        lock_leads(connection, [lead_id])
        audit = connection.execute(sa.select(erasures).where(erasures.c.id == audit_id)).one()
        erased_at = as_utc(audit.erased_at)
        late = {}
        for table in ARRIVING_TABLES:
            arrived = _ARRIVED[table.name]
            result = connection.execute(
                table.delete().where(table.c.lead_id == lead_id, arrived <= erased_at)
            )
            late[table.name] = int(result.rowcount or 0)
        if any(late.values()):  # its funnel rows: from what arrived after the erasure, or none
            set_write_token(connection, [lead_id], new_write_token())
            refresh_leads(connection, [lead_id])
            total = {k: int(v) + late.get(k, 0) for k, v in dict(audit.rows_deleted).items()}
            connection.execute(
                erasures.update().where(erasures.c.id == audit_id).values(rows_deleted=total)
            )
    return late


def lead_history(engine: Engine, lead_id: str) -> dict[str, Any] | None:
    """The lead's scores (oldest first), outcome and what was captured; None if nothing is held."""
    with engine.connect() as connection:
        scores = connection.execute(
            sa.select(score_log)
            .where(score_log.c.lead_id == lead_id)
            .order_by(score_log.c.scored_at, score_log.c.id)
        ).all()
        outcome = connection.execute(
            sa.select(outcomes).where(outcomes.c.lead_id == lead_id)
        ).first()
        lead = connection.execute(
            sa.select(captured_leads).where(captured_leads.c.lead_id == lead_id)
        ).first()
        counts = {
            table.name: connection.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.lead_id == lead_id)
            ).scalar_one()
            for table in (lead_attributes, lead_touchpoints)
        }
    if not scores and outcome is None and lead is None:
        return None
    return {
        "lead_id": lead_id,
        "scores": [
            {
                "scored_at": as_utc(row.scored_at),
                "score": row.score,
                "probability": row.probability,
                "grade": row.grade,
                "decision": row.decision,
                "model": {"name": row.model_name, "version": row.model_version},
                "policy_version": row.policy_version,
                "request_id": row.request_id,
            }
            for row in scores
        ],
        "outcome": None
        if outcome is None
        else {
            "outcome": "won" if outcome.won else "lost",
            "closed_at": as_utc(outcome.closed_at),
            "amount": outcome.amount,
            "reported_at": as_utc(outcome.reported_at),
        },
        "captured": None
        if lead is None
        else {
            "created_at": as_utc(lead.created_at),
            "first_received_at": as_utc(lead.received_at),
            "attribute_changes": counts["lead_attributes"],
            "touchpoints": counts["lead_touchpoints"],
        },
    }


def outcomes_since(engine: Engine, moment: datetime) -> int:
    """Outcomes first reported after `moment`."""
    moment = as_utc(moment)
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(outcomes)
        return connection.execute(query.where(outcomes.c.reported_at > moment)).scalar_one()
