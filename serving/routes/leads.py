"""One lead: its score history (GET) and the right to erasure (DELETE)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from starlette.concurrency import run_in_threadpool

from serving.capture.schemas import Erased, LeadHistory
from serving.capture.store import erase_lead, lead_history, sweep_erased
from serving.deps import AdminKey, CaptureDep, EngineDep, ReaderKey, ScoreLogDep, SettingsDep
from serving.errors import error_responses
from serving.schemas import ID_PATTERN, MAX_ID_LENGTH, _id_as_text
from serving.score_log import ScoreLogWriter

router = APIRouter(prefix="/v1", tags=["leads"])

DRAIN_SECONDS = 30.0

# The lead id in the path: the rules of a lead id in a body (not blank, no NUL, at most 200).
LeadIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="The CRM's id of the lead.",
    ),
]


def _lead_id(value: str) -> str:
    try:
        return _id_as_text(value)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


@router.get(
    "/leads/{lead_id}",
    response_model=LeadHistory,
    summary="A lead's scores over time (model and policy versions) and its outcome",
    responses=error_responses(401, 403, 404, 422, e404="Nothing is held about this lead"),
)
async def get_lead(lead_id: LeadIdPath, _: ReaderKey, engine: EngineDep) -> dict:
    lead_id = _lead_id(lead_id)
    history = await run_in_threadpool(lead_history, engine, lead_id)
    if history is None:
        raise HTTPException(
            404, f"nothing is held about lead {lead_id!r}: it was never scored, captured or "
            "given an outcome (or it was erased)",
        )  # fmt: skip
    return history


def _drained(score_log: ScoreLogWriter, deadline: float) -> bool:
    while score_log.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    return not score_log.pending


@router.delete(
    "/leads/{lead_id}",
    response_model=Erased,
    summary="Erase everything held about a lead (captured data, scores, outcome); audited",
    responses=error_responses(
        401, 403, 422, 503, e503="Queued writes could not be finished first; nothing erased"
    ),
)
async def delete_lead(
    lead_id: LeadIdPath,
    key: AdminKey,
    engine: EngineDep,
    capture: CaptureDep,
    score_log: ScoreLogDep,
    settings: SettingsDep,
) -> dict:
    lead_id = _lead_id(lead_id)
    # What this worker accepted before the request is written first, so it is erased too.
    deadline = time.monotonic() + DRAIN_SECONDS
    flushed = await run_in_threadpool(capture.writer.flush, DRAIN_SECONDS)
    drained = await run_in_threadpool(_drained, score_log, deadline)
    if not (flushed and drained):
        raise HTTPException(
            503, "queued scores or captured data are still being written (is the database "
            "down?); nothing was erased, send the request again", headers={"Retry-After": "5"},
        )  # fmt: skip
    audit, deleted = await run_in_threadpool(erase_lead, engine, lead_id, key.name)
    # Other workers write what they queued before the erasure within their flush interval:
    # sweep once more for rows that arrived before it (new arrivals are new data and stay).
    await asyncio.sleep(max(1.0, 5 * settings.score_log_flush_seconds))
    late = await run_in_threadpool(sweep_erased, engine, audit, lead_id)
    return {"lead_id": lead_id, "rows_deleted": {k: v + late.get(k, 0) for k, v in deleted.items()}}
