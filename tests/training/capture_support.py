"""Lead data put into the service's capture tables as if the CRM had streamed it: each lead
received at its creation, each touchpoint at the moment it happened (or as `receipt` says), each
outcome reported at its close (or at `reported_at`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pandas as pd
from sqlalchemy.engine import Engine

from features.data.loading import LeadData
from serving.capture.rows import CaptureRows, attribute_key, touch_key
from serving.capture.writer import CaptureWriter
from serving.db import outcomes as outcomes_table


def _value(value):
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def capture_rows(data: LeadData, receipt: Callable[[dict], datetime] | None = None) -> CaptureRows:
    rows = CaptureRows()
    names = [c for c in data.leads.columns if c not in ("lead_id", "created_at")]
    for lead in data.leads.to_dict("records"):
        created = lead["created_at"].to_pydatetime()
        rows.leads.append(
            {"lead_id": lead["lead_id"], "created_at": created, "received_at": created}
        )
        for name in names:
            value = _value(lead[name])
            rows.attributes.append({
                "lead_id": lead["lead_id"], "name": name, "value": value, "changed_at": created,
                "received_at": created, "dedup_key": attribute_key(name, value, created),
            })  # fmt: skip
    for touch in (data.touchpoints if data.touchpoints is not None else pd.DataFrame()).to_dict(
        "records"
    ):
        occurred = touch["occurred_at"].to_pydatetime()
        campaign, value = _value(touch["campaign"]), _value(touch["value"])
        rows.touchpoints.append({
            "lead_id": touch["lead_id"], "occurred_at": occurred, "channel": touch["channel"],
            "activity": touch["activity"], "campaign": campaign, "value": value,
            "received_at": receipt(touch) if receipt else occurred,
            "dedup_key": touch_key(occurred, touch["channel"], touch["activity"], campaign, value),
        })  # fmt: skip
    return rows


def capture_lead_data(
    engine: Engine,
    data: LeadData,
    receipt: Callable[[dict], datetime] | None = None,
    reported_at: datetime | None = None,
    outcomes: bool = True,
) -> None:
    """Write `data` into the capture tables (and the outcomes table) in one transaction."""
    with engine.begin() as connection:
        CaptureWriter(engine).write(connection, [capture_rows(data, receipt)])
        if outcomes and data.outcomes is not None and len(data.outcomes):
            connection.execute(outcomes_table.insert(), outcome_rows(data.outcomes, reported_at))


def outcome_rows(outcomes: pd.DataFrame, reported_at: datetime | None = None) -> list[dict]:
    rows = []
    for row in outcomes.to_dict("records"):
        closed = row["closed_at"].to_pydatetime()
        rows.append({
            "lead_id": row["lead_id"], "won": bool(row["won"]), "closed_at": closed,
            "amount": _value(row["amount"]), "reported_at": reported_at or closed,
            "updated_at": reported_at or closed,
        })  # fmt: skip
    return rows
