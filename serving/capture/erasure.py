"""Erased leads as the writers see them: the audit row of an erasure is also its tombstone.

A request received before a lead was erased may still sit in a writer's queue (this worker's is
flushed before erasing; another worker's is not). Its rows must not bring the lead back, so
writers drop rows of a lead that arrived at or before its latest erasure (`erased_since`). Rows
that arrived after it are new data: the CRM sent the lead again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from serving.db import as_utc, erasures

_CHUNK = 900  # parameters per IN (): any SQLite build takes 999


def lead_id_hash(lead_id: str) -> str:
    """How the audit names a lead: SHA-256 of its id (the id itself is not kept)."""
    return hashlib.sha256(lead_id.encode()).hexdigest()


def erased_since(connection: Connection, lead_ids: Iterable[str]) -> dict[str, datetime]:
    """The latest erasure moment of each of `lead_ids` that was ever erased."""
    by_hash = {lead_id_hash(lead_id): lead_id for lead_id in set(lead_ids)}
    found: dict[str, datetime] = {}
    hashes = sorted(by_hash)
    for start in range(0, len(hashes), _CHUNK):
        chunk = hashes[start : start + _CHUNK]
        query = (
            sa.select(erasures.c.lead_id_sha256, sa.func.max(erasures.c.erased_at))
            .where(erasures.c.lead_id_sha256.in_(chunk))
            .group_by(erasures.c.lead_id_sha256)
        )
        for digest, moment in connection.execute(query):
            found[by_hash[digest]] = as_utc(moment)
    return found
