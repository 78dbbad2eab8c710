"""Sales outcomes reported by the CRM: closed won or lost, idempotent per lead."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from serving.bodies import documented_body, json_body
from serving.db import as_utc, outcomes, utcnow
from serving.deps import EngineDep, ScorerKey
from serving.errors import error_responses
from serving.report.funnel_tables import refresh_leads
from serving.schemas import OutcomesRequest, OutcomesResponse

router = APIRouter(prefix="/v1", tags=["outcomes"])


def record_outcomes(engine: Engine, items: list[dict], key_name: str) -> list[dict]:
    """Insert or update one row per lead; reporting the same outcome again changes nothing."""
    for attempt in range(3):
        try:
            return _upsert(engine, items, key_name)
        except IntegrityError:
            if attempt == 2:  # another request inserted the same lead at the same moment
                raise
    raise AssertionError("unreachable")


def _same(row, item) -> bool:
    return (
        row["won"] == item["won"]
        and as_utc(row["closed_at"]) == item["closed_at"]
        and row["amount"] == item["amount"]
    )


def _upsert(engine: Engine, items: list[dict], key_name: str) -> list[dict]:
    now = utcnow()
    results = []
    with engine.begin() as connection:
        ids = [item["lead_id"] for item in items]
        existing = {
            row.lead_id: dict(row._mapping)
            for row in connection.execute(sa.select(outcomes).where(outcomes.c.lead_id.in_(ids)))
        }
        for item in items:
            row = existing.get(item["lead_id"])
            values = {"won": item["won"], "closed_at": item["closed_at"], "amount": item["amount"]}
            if row is None:
                connection.execute(
                    outcomes.insert().values(
                        lead_id=item["lead_id"],
                        reported_at=now,
                        updated_at=now,
                        api_key_name=key_name,
                        **values,
                    )
                )
                status = "created"
            elif _same(row, item):
                status = "unchanged"
            else:
                connection.execute(
                    outcomes.update()
                    .where(outcomes.c.lead_id == item["lead_id"])
                    .values(updated_at=now, api_key_name=key_name, **values)
                )
                status = "updated"
            existing[item["lead_id"]] = values  # a later item for the same lead sees this one
            results.append({"lead_id": item["lead_id"], "status": status})
        # a close changes which touches count: the funnel rows of these leads, recomputed
        refresh_leads(connection, [r["lead_id"] for r in results if r["status"] != "unchanged"])
    return results


OutcomesBody = Annotated[OutcomesRequest, Depends(json_body(OutcomesRequest, "outcomes"))]


@router.post(
    "/outcomes",
    response_model=OutcomesResponse,
    summary="Report closed won/lost deals; sending the same outcome again changes nothing",
    description="Outcomes apply in the order given, one result each: a lead given twice in one "
    "request ends with its last outcome, as if sent in two requests.",
    openapi_extra=documented_body(OutcomesRequest),
    responses=error_responses(401, 403, 408, 413, 422, 503),
)
async def post_outcomes(key: ScorerKey, body: OutcomesBody, engine: EngineDep) -> dict:
    items = []
    for outcome in body.outcomes:
        lead_id = str(outcome.lead_id)
        closed_at = outcome.closed_at.astimezone(UTC)
        items.append(
            {
                "lead_id": lead_id,
                "won": outcome.outcome == "won",
                "closed_at": closed_at,
                "amount": outcome.amount,
            }
        )
    results = await run_in_threadpool(record_outcomes, engine, items, key.name)
    return {"results": results}
