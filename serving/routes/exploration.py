"""GET /v1/reports/exploration: what the threshold misses, measured on explored leads.

HTTP <-> `serving.exploration.exploration_report`. To be folded into the funnel report.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime
from starlette.concurrency import run_in_threadpool

from serving.db import utcnow
from serving.deps import EngineDep, ReaderKey
from serving.errors import RequestProblem, error_responses
from serving.exploration import exploration_report
from serving.schemas import ExplorationReport

router = APIRouter(prefix="/v1/reports", tags=["reports"])

DEFAULT_DAYS = 90


@router.get(
    "/exploration",
    response_model=ExplorationReport,
    summary="Win rate of explored leads and the wins a week the threshold forgoes (ops, scorer)",
    description="From the score log and the outcomes: the leads whose latest score in the period "
    "the threshold held back (nurture by the score alone, or sent to sales by the policy's "
    "exploration rate), the win rate of the explored ones with its 95% interval, and the wins a "
    "week the threshold forgoes (that rate times the held-back leads a week).",
    responses=error_responses(401, 403, 422),
)
async def get_exploration(
    _: ReaderKey,
    engine: EngineDep,
    start: Annotated[
        AwareDatetime | None,
        Query(
            alias="from",
            description=f"Scores from (default: {DEFAULT_DAYS} days before `to`); must be "
            "before `to` (422 otherwise).",
        ),
    ] = None,
    end: Annotated[
        AwareDatetime | None, Query(alias="to", description="Scores before (default: now).")
    ] = None,
) -> dict:
    end = end or utcnow()
    try:
        start = start or end - timedelta(days=DEFAULT_DAYS)
    except OverflowError:  # `to` in the first days of year 1
        raise RequestProblem(
            422, f"to ({end.isoformat()}) leaves no {DEFAULT_DAYS} days before it: give from"
        ) from None
    if start >= end:
        raise RequestProblem(
            422, f"from ({start.isoformat()}) must be before to ({end.isoformat()}): swap them"
        )
    estimate = await run_in_threadpool(exploration_report, engine, start, end)
    return {"from": start, "to": end, **estimate.to_dict()}
