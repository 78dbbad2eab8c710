"""The hand-made funnel of tests/features/report/handmade.py stored in the service's database, as
the service would have captured it (leads, an `industry` attribute, touchpoints, outcomes, scores).

The database keeps one outcome per lead (`/v1/outcomes` updates it), so L7 holds only its win of
02-14 (the file report ignores its later loss: the earliest outcome counts). `file_frames()` gives
the same data as files, for the test that both reports agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy.engine import Engine

from serving.capture.rows import attribute_key, touch_key
from serving.db import captured_leads, lead_attributes, lead_touchpoints, outcomes, score_log
from serving.report.funnel_tables import refresh_all
from tests.features.report import handmade as h

RECEIVED = datetime(2024, 3, 1, tzinfo=UTC)


def _py(moment: pd.Timestamp) -> datetime:
    return moment.to_pydatetime().astimezone(UTC)


def file_frames() -> dict[str, pd.DataFrame]:
    """The files that hold what the database holds: L7 with its earliest outcome only."""
    outcome = h.outcomes()
    outcome = outcome.sort_values("closed_at").drop_duplicates("lead_id").sort_index()
    return {
        "leads": h.leads(),
        "touchpoints": h.touchpoints(),
        "outcomes": outcome.reset_index(drop=True),
        "scores": h.scores(),
    }


def store_handmade(engine: Engine, derive: bool = True) -> None:
    """The hand-made funnel as the service stores it; `derive`: and the funnel's per-lead rows
    (as the writers keep them; False: a database from before migration 0008)."""
    frames = file_frames()
    leads, touches, outcome, scores = (frames[k] for k in ("leads", "touchpoints", "outcomes",
                                                           "scores"))  # fmt: skip
    with engine.begin() as connection:
        connection.execute(captured_leads.insert(), [
            {"lead_id": r.lead_id, "created_at": _py(r.created_at), "received_at": RECEIVED}
            for r in leads.itertuples()
        ])  # fmt: skip
        attributes = []
        for r in leads.itertuples():
            changed = _py(r.created_at)
            attributes.append({
                "lead_id": r.lead_id, "name": "industry", "value": r.industry,
                "changed_at": changed, "received_at": RECEIVED,
                "dedup_key": attribute_key("industry", r.industry, changed),
            })  # fmt: skip
        # An older value of L1's industry: the latest one counts.
        old = _py(pd.Timestamp("2023-12-01", tz="UTC"))
        attributes.append({"lead_id": "L1", "name": "industry", "value": "Retail",
                           "changed_at": old, "received_at": RECEIVED,
                           "dedup_key": attribute_key("industry", "Retail", old)})  # fmt: skip
        connection.execute(lead_attributes.insert(), attributes)
        rows = []
        for r in touches.itertuples():
            campaign = None if pd.isna(r.campaign) else r.campaign
            at = _py(r.occurred_at)
            rows.append({
                "lead_id": r.lead_id, "occurred_at": at, "channel": r.channel,
                "activity": r.activity, "campaign": campaign, "value": None,
                "received_at": RECEIVED,
                "dedup_key": touch_key(at, r.channel, r.activity, campaign, None),
            })  # fmt: skip
        connection.execute(lead_touchpoints.insert(), rows)
        connection.execute(outcomes.insert(), [
            {"lead_id": r.lead_id, "won": bool(r.won), "closed_at": _py(r.closed_at),
             "amount": None if pd.isna(r.amount) else float(r.amount), "reported_at": RECEIVED,
             "updated_at": RECEIVED, "api_key_name": "crm"}
            for r in outcome.itertuples()
        ])  # fmt: skip
        connection.execute(score_log.insert(), [
            {"request_id": str(uuid.uuid4()), "lead_id": r.lead_id, "model_name": "lead-scoring",
             "model_version": "1", "policy_version": 0, "probability": r.score / 100,
             "score": int(r.score), "grade": r.grade, "decision": r.decision, "reasons": [],
             "scored_at": _py(r.scored_at), "api_key_name": "crm"}
            for r in scores.itertuples()
        ])  # fmt: skip
        if derive:  # what the service's writers do as they write: the funnel's per-lead rows
            refresh_all(connection)
