"""GET /v1/reports/exploration: what the threshold misses, measured on explored leads.

HTTP <-> `serving.exploration.exploration_report`. To be folded into the funnel report.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BeforeValidator
from starlette.concurrency import run_in_threadpool

from serving.db import utcnow
from serving.deps import EngineDep, ReaderKey
from serving.errors import RequestProblem, error_responses
from serving.exploration import exploration_report
from serving.schemas import ExplorationReport, Moment

router = APIRouter(prefix="/v1/reports", tags=["reports"])

DEFAULT_DAYS = 90


def _iso_text(value: object) -> object:
    """A moment given as ISO 8601 text only: pydantic would read `to=0.5`, `from=2026` or
    `from=4.79e-116` as Unix seconds (a moment in 1970). Whatever Python reads as a number is
    refused."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(
            f"{value!r} is a number; expected an ISO 8601 moment with a zone, "
            "e.g. 2026-11-01T00:00:00Z"
        )
    return value


# An ISO 8601 moment with a zone, within the plausible range (as every moment of this API).
QueryMoment = Annotated[Moment, BeforeValidator(_iso_text)]


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
        QueryMoment | None,
        Query(
            alias="from",
            description=f"Scores from (default: {DEFAULT_DAYS} days before `to`); must be "
            "before `to` (422 otherwise).",
        ),
    ] = None,
    end: Annotated[
        QueryMoment | None, Query(alias="to", description="Scores before (default: now).")
    ] = None,
) -> dict:
    end = end or utcnow()
    start = start or end - timedelta(days=DEFAULT_DAYS)  # `to` is 1970 or later: no overflow
    if start >= end:
        raise RequestProblem(
            422, f"from ({start.isoformat()}) must be before to ({end.isoformat()}): swap them"
        )
    estimate = await run_in_threadpool(exploration_report, engine, start, end)
    return {"from": start, "to": end, **estimate.to_dict()}
