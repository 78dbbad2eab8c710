"""POST /v1/events: touchpoints and attribute changes streamed by the CRM, without a score.

The route validates (the vocabulary and validators of POST /v1/score) and queues: the capture
writer thread stores each fact once, with the moment the service received it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from serving.bodies import documented_body, json_body
from serving.capture.schemas import EventsAccepted, EventsRequest
from serving.capture.store import CaptureBusy, CaptureDisabled
from serving.db import utcnow
from serving.deps import CaptureDep, ScorerKey
from serving.errors import RETRY_AFTER_SECONDS, RequestProblem, error_responses

router = APIRouter(prefix="/v1", tags=["events"])

# read after the key (json_body), like every body of this API
EventsBody = Annotated[EventsRequest, Depends(json_body(EventsRequest, "leads"))]


@router.post(
    "/events",
    status_code=202,
    response_model=EventsAccepted,
    summary="Record touchpoints and attribute changes of leads (stored once each, off the "
    "request path)",
    openapi_extra=documented_body(EventsRequest),
    responses=error_responses(
        401,
        403,
        408,
        409,
        413,
        422,
        503,
        e409="Capture is turned off on this service",
        e422="Invalid events: each problem names the lead index and the field",
        e503="The capture queue is full; nothing was stored, send again later",
    ),
)
async def post_events(_: ScorerKey, body: EventsBody, capture: CaptureDep) -> dict:
    received_at = utcnow()
    try:
        capture.events(body.leads, received_at)
    except CaptureDisabled as error:
        raise RequestProblem(409, str(error)) from None
    except CaptureBusy as error:
        raise HTTPException(
            503, str(error), headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
        ) from None
    return {
        "received_at": received_at,
        "leads": len(body.leads),
        "touchpoints": sum(len(lead.get("touchpoints") or ()) for lead in body.leads),
        "attribute_changes": sum(len(lead.get("attribute_changes") or ()) for lead in body.leads),
        "attributes": sum(len(lead.get("attributes") or ()) for lead in body.leads),
    }
