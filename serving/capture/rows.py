"""The rows of the capture tables, built from validated requests (in the writer thread).

Each fact gets a `dedup_key`: a 128-bit hash of its content (a touchpoint's moment, channel,
activity, campaign and value; an attribute's name, value and change moment), unique per lead in
the database, so the same fact sent twice (a lead scored again with its whole history, an event
replayed by the CRM) is stored once, with the moment it first arrived. Moments enter the key as
microseconds since the epoch, so `2026-11-21T14:05:00+01:00` and `2026-11-21T13:05:00Z` are one
touchpoint, whichever endpoint or parsing path brought them.

Attributes come two ways:
- `attribute_changes` of `POST /v1/events`: the CRM says when the value changed; stored as given.
- `attributes` of a scored lead (or of an event's lead): the values as the CRM knows them at that
  moment, with no change moment. They are "observed" rows: the writer stores one only when it
  differs from the lead's latest stored value of that attribute, with `changed_at` = the moment
  the lead was described at (its `as_of` when scored, else the arrival).

A CRM scores the same lead again and again with its whole history, so most scored leads say
nothing new. `scored_rows` takes the writer's `known` leads (lead id -> digest of what it last
stored in full for the lead, `content_digest`): a lead whose content has that digest is kept as a
`Repeat` (a reference, no rows built); the writer builds its rows only if the database changed for
the lead since (`serving.capture.writer`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def from_ns(ns: int) -> datetime:
    """A UTC datetime (microseconds) from int64 nanoseconds since the epoch."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


_MICROSECOND = timedelta(microseconds=1)


def _microseconds(value: datetime) -> int:
    """Microseconds since the epoch: one number per instant, whatever the zone it was given in."""
    return (value - _EPOCH) // _MICROSECOND


def _hash(parts: list[Any]) -> str:
    return hashlib.blake2b(orjson.dumps(parts), digest_size=16).hexdigest()


def touch_key(
    occurred_at: datetime, channel: str, activity: str, campaign: str | None, value: float | None
) -> str:
    return _hash([_microseconds(occurred_at), channel, activity, campaign, value])


def attribute_key(name: str, value: Any, changed_at: datetime) -> str:
    # the value's JSON type is part of it: true and 1.0 are different values
    return _hash([name, type(value).__name__, value, _microseconds(changed_at)])


def content_digest(lead: Mapping[str, Any]) -> bytes | None:
    """What a scored lead says (creation moment, attributes, touchpoints; not the moment it was
    described at), as 16 bytes; None when it cannot be serialised as JSON (no shortcut then)."""
    try:
        text = orjson.dumps(
            [lead.get("created_at"), lead.get("attributes"), lead.get("touchpoints")]
        )
    except TypeError:
        return None
    return hashlib.blake2b(text, digest_size=16).digest()


@dataclass(frozen=True)
class Repeat:
    """A scored lead whose content the writer stored in full before (same `content_digest`):
    its rows are built only if the database changed for the lead since (`scored_lead_rows`)."""

    lead_id: str
    digest: bytes
    lead: Mapping[str, Any]
    moments: np.ndarray | None  # int64 ns of its touchpoints (the fast path), else None
    received_at: datetime

    def rows(self) -> CaptureRows:
        rows = CaptureRows()
        scored_lead_rows(rows, self.lead, self.moments, self.received_at)
        rows.digests.append((self.lead_id, self.digest))
        return rows


@dataclass
class CaptureRows:
    """Rows for the three capture tables (plain dicts, ready for an executemany)."""

    leads: list[dict[str, Any]] = field(default_factory=list)
    touchpoints: list[dict[str, Any]] = field(default_factory=list)
    attributes: list[dict[str, Any]] = field(default_factory=list)  # changes, stored as given
    observed: list[dict[str, Any]] = field(default_factory=list)  # stored when the value changed
    repeats: list[Repeat] = field(default_factory=list)  # scored leads known to be stored
    digests: list[tuple[str, bytes]] = field(default_factory=list)  # of the leads built in full

    def extend(self, other: CaptureRows) -> None:
        self.leads += other.leads
        self.touchpoints += other.touchpoints
        self.attributes += other.attributes
        self.observed += other.observed
        self.repeats += other.repeats
        self.digests += other.digests

    def built(self) -> CaptureRows:
        """These rows with every repeat's rows built (what a spill file or dead letter keeps)."""
        if not self.repeats:
            return self
        rows = CaptureRows(list(self.leads), list(self.touchpoints), list(self.attributes),
                           list(self.observed), [], list(self.digests))  # fmt: skip
        for repeat in self.repeats:
            rows.extend(repeat.rows())
        return rows

    def __len__(self) -> int:
        return len(self.touchpoints) + len(self.attributes) + len(self.observed)


def _lead_row(lead: Mapping[str, Any], received_at: datetime) -> dict[str, Any]:
    created = lead.get("created_at")
    return {
        "lead_id": str(lead["lead_id"]),
        "created_at": None if created is None else utc(created),
        "received_at": received_at,
    }


def _touch_rows(
    lead_id: str, touches: Iterable[Mapping[str, Any]], moments: Iterable[datetime], received_at
) -> list[dict[str, Any]]:
    rows = []
    for touch, occurred_at in zip(touches, moments, strict=True):
        channel, activity = touch["channel"], touch["activity"]
        campaign, value = touch.get("campaign"), touch.get("value")
        rows.append({
            "lead_id": lead_id, "occurred_at": occurred_at, "channel": channel,
            "activity": activity, "campaign": campaign, "value": value,
            "received_at": received_at,
            "dedup_key": touch_key(occurred_at, channel, activity, campaign, value),
        })  # fmt: skip
    return rows


def _observed_rows(
    lead_id: str, attributes: Mapping[str, Any] | None, described_at: datetime, received_at
) -> list[dict[str, Any]]:
    return [
        {"lead_id": lead_id, "name": name, "value": value, "changed_at": described_at,
         "received_at": received_at, "dedup_key": attribute_key(name, value, described_at)}
        for name, value in (attributes or {}).items()
    ]  # fmt: skip


def scored_rows(
    leads: Sequence[Mapping[str, Any]],
    moments: np.ndarray | None,
    received_at: datetime,
    known: Mapping[str, tuple[bytes, Any]] | None = None,
) -> CaptureRows:
    """Rows of the leads of one `POST /v1/score` request. `moments`: every touchpoint's moment
    as int64 ns in request order when the fast path parsed them (their `occurred_at` is then
    text), else None (`occurred_at` is a datetime). With `known` (lead id -> (digest, ...)), a
    lead whose content has its known digest is a `Repeat`, and each lead built in full has its
    digest in `digests`."""
    rows = CaptureRows()
    position = 0
    twice = _listed_twice(leads) if known is not None else set()
    for lead in leads:
        count = len(lead.get("touchpoints") or [])
        own = None if moments is None else moments[position : position + count]
        position += count
        if known is not None and (digest := content_digest(lead)) is not None:
            lead_id = str(lead["lead_id"])
            entry = known.get(lead_id)
            # a lead listed twice in the request is built in full both times: in request order
            if entry is not None and entry[0] == digest and lead_id not in twice:
                rows.repeats.append(Repeat(lead_id, digest, lead, own, received_at))
                continue
            rows.digests.append((lead_id, digest))
        scored_lead_rows(rows, lead, own, received_at)
    return rows


def _listed_twice(leads: Sequence[Mapping[str, Any]]) -> set[str]:
    if len(leads) < 2:
        return set()
    ids = [str(lead["lead_id"]) for lead in leads]
    return {lead_id for lead_id, n in Counter(ids).items() if n > 1}


def scored_lead_rows(
    rows: CaptureRows, lead: Mapping[str, Any], moments: np.ndarray | None, received_at: datetime
) -> None:
    """Add one scored lead's rows; `moments`: its touchpoints' int64 ns, or None."""
    lead_id = str(lead["lead_id"])
    touches = lead.get("touchpoints") or []
    if moments is not None:
        times = [from_ns(ns) for ns in moments.tolist()]
    else:
        times = [utc(t["occurred_at"]) for t in touches]
    rows.leads.append(_lead_row(lead, received_at))
    rows.touchpoints += _touch_rows(lead_id, touches, times, received_at)
    as_of = lead.get("as_of")
    described_at = received_at if as_of is None else utc(as_of)
    rows.observed += _observed_rows(lead_id, lead.get("attributes"), described_at, received_at)


def event_rows(leads: Sequence[Mapping[str, Any]], received_at: datetime) -> CaptureRows:
    """Rows of the leads of one `POST /v1/events` request (validated `serving.capture.schemas`)."""
    rows = CaptureRows()
    for lead in leads:
        lead_id = str(lead["lead_id"])
        touches = lead.get("touchpoints") or []
        rows.leads.append(_lead_row(lead, received_at))
        times = [utc(t["occurred_at"]) for t in touches]
        rows.touchpoints += _touch_rows(lead_id, touches, times, received_at)
        rows.observed += _observed_rows(lead_id, lead.get("attributes"), received_at, received_at)
        for change in lead.get("attribute_changes") or []:
            changed_at = utc(change["changed_at"])
            name, value = change["name"], change.get("value")
            rows.attributes.append({
                "lead_id": lead_id, "name": name, "value": value, "changed_at": changed_at,
                "received_at": received_at, "dedup_key": attribute_key(name, value, changed_at),
            })  # fmt: skip
    return rows
