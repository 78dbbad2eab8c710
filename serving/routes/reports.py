"""Reports from the service's database: the funnel (`serving.report.funnel`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from features.report import formats
from features.report.funnel import FunnelError
from features.report.measures import GROUPING_NAMES
from serving.deps import EngineDep, ReaderKey
from serving.errors import RequestProblem, error_responses, problem
from serving.report.funnel import funnel_from_database
from serving.report.schemas import FunnelReport
from serving.responses import OrjsonResponse

router = APIRouter(prefix="/v1", tags=["reports"])

CSV_MEDIA_TYPE = "text/csv"
EXPECTED = {
    "by": f"one of {', '.join(GROUPING_NAMES)}, or a captured lead attribute's name",
    "attribution": "first_touch, last_touch or linear",
    "from": "YYYY-MM-DD or an ISO 8601 timestamp, e.g. 2024-03-01T09:00:00+01:00",
    "to": "YYYY-MM-DD or an ISO 8601 timestamp after `from`",
}


def _wants_csv(format: str | None, accept: str | None) -> bool:
    if format is not None:
        return format == "csv"
    return accept is not None and CSV_MEDIA_TYPE in accept.lower()


@router.get(
    "/reports/funnel",
    response_model=FunnelReport,
    summary="The funnel: leads, sent to sales, won, lost, revenue and days to close per group",
    description=(
        "The funnel report of the captured leads created in [from, to), from the service's own "
        "database: the same measures, rows and totals as `leadscore report funnel` on CRM files. "
        "JSON by default; CSV with `format=csv` or `Accept: text/csv` (one row per group, then "
        "the `(total)` row)."
    ),
    responses={
        200: {
            "description": "The report (JSON), or the same rows as CSV",
            "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **error_responses(
            401, 422, e422="A parameter the report cannot follow: the problem names it"
        ),
    },
)
async def funnel_report(
    _key: ReaderKey,
    engine: EngineDep,
    by: Annotated[
        str,
        Query(
            description=f"Group by {', '.join(GROUPING_NAMES)}, or any captured lead attribute "
            "(e.g. lead_source, industry)."
        ),
    ] = "channel",
    attribution: Annotated[
        Literal["first_touch", "last_touch", "linear"],
        Query(description="How a lead's credit goes to its touchpoints (channel, campaign)."),
    ] = "first_touch",
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="Leads created from this moment on (YYYY-MM-DD or ISO "
            "8601; UTC when no zone is given).",
        ),
    ] = None,  # fmt: skip
    end: Annotated[
        str | None,
        Query(alias="to", description="Leads created before this moment (excluded)."),
    ] = None,
    format: Annotated[
        Literal["json", "csv"] | None,
        Query(
            description="json or csv; without it the Accept header decides (JSON unless "
            "it asks for text/csv)."
        ),
    ] = None,  # fmt: skip
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    try:
        frame = await run_in_threadpool(funnel_from_database, engine, by, attribution, start, end)
    except FunnelError as error:
        raise RequestProblem(
            422,
            f"{error.option}: {error.message}",
            [problem(error.message, EXPECTED.get(error.option), field=error.option)],
        ) from None
    if _wants_csv(format, accept):
        return Response(formats.to_csv(frame), media_type=CSV_MEDIA_TYPE)
    return OrjsonResponse(formats.to_records(frame))
