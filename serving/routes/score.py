"""POST /v1/score: validate, score with the loaded model, apply the policy in force, log, answer.

The route's signature lists what it uses (serving.deps): the key, the parsed leads, the model and
the policy in force, the batcher and the score log. The hot path avoids pandas and per-request
I/O: the key check is a dict read, the policy is an attribute read, the score-log rows go to a
queue written by a background thread, and the answer is rendered with orjson. Concurrent
requests are scored together in one model call (`serving.batcher`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NamedTuple

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from features.data.values import iso_strings_ns
from serving import metrics
from serving.batcher import ScoringError
from serving.db import utcnow
from serving.deps import BatcherDep, CaptureDep, ModelDep, PolicyDep, ScoreLogDep, ScorerKey
from serving.errors import RequestProblem, describe_validation_errors, problem, summarise
from serving.responses import OrjsonResponse
from serving.schemas import ScoreRequest, ScoreRequestText, ScoreResponse
from serving.score_log import ScoreRows

router = APIRouter(prefix="/v1", tags=["score"])

ERROR_EXAMPLE = {
    "detail": "lead 0 touchpoints[1].channel: unknown channel 'tv' (expected one of organic_search, "
    "paid_search, ...)",
    "errors": [
        {
            "lead_index": 0,
            "lead_id": "L-10023",
            "field": "touchpoints[1].channel",
            "message": "unknown channel 'tv'",
            "expected": "one of organic_search, paid_search, ...",
        }
    ],
}


def _duplicates(leads: Sequence[Mapping[str, Any]]) -> list[dict]:
    first: dict[str, int] = {}
    errors = []
    for index, lead in enumerate(leads):
        lead_id = lead["lead_id"]
        if lead_id in first:
            errors.append(
                problem(
                    f"lead_id {lead_id!r} was already given for lead {first[lead_id]}",
                    expected="each lead at most once per request",
                    lead_index=index,
                    field="lead_id",
                    lead_id=lead_id,
                )
            )
        else:
            first[lead_id] = index
    return errors


def _moments(leads: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """int64 ns of every touchpoint moment in order, when each is a plain ISO 8601 string with a
    zone and a real date (else None)."""
    moments = [t["occurred_at"] for lead in leads for t in lead["touchpoints"]]
    return iso_strings_ns(moments) if moments else np.empty(0, dtype=np.int64)


def parse_leads(raw: bytes) -> tuple[ScoreRequest | ScoreRequestText, np.ndarray | None]:
    """Validate the body straight from bytes (one pass in pydantic-core, no `json.loads` first).

    Fast path: touchpoint moments stay text and are checked in one vectorised call (a 1,000-lead
    request has ~20,000 of them), which the scorer then uses. Any body that path refuses is
    validated again by `ScoreRequest`, so answers and error messages are exactly its own.
    Returns the request and the parsed moments (None on the `ScoreRequest` path).
    """
    try:
        fast = ScoreRequestText.model_validate_json(raw)
    except ValidationError:
        fast = None
    if fast is not None:
        moments = _moments(fast.leads)
        if moments is not None:
            return fast, moments
    try:
        return ScoreRequest.model_validate_json(raw), None
    except ValidationError as error:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        errors = describe_validation_errors(error.errors(), parsed)
        raise RequestProblem(422, summarise(errors), errors) from None


class ParsedLeads(NamedTuple):
    leads: list[Any]  # the validated leads as plain dicts (TypedDicts)
    moments: np.ndarray | None  # every touchpoint's moment, when the fast path parsed them


async def read_leads(request: Request) -> ParsedLeads:
    """The request body as validated leads, or a 422 naming each problem: bad fields, then
    duplicate ids. A dependency listed after the key, so auth answers first and the model
    check (503) comes after the body's."""
    body, moments = parse_leads(await request.body())
    duplicates = _duplicates(body.leads)
    if duplicates:
        raise RequestProblem(
            422, f"duplicate lead ids in one request: {duplicates[0]['message']}", duplicates
        )
    return ParsedLeads(body.leads, moments)


LeadsDep = Annotated[ParsedLeads, Depends(read_leads)]


@router.post(
    "/score",
    response_model=ScoreResponse,
    summary="Score 1 to 1,000 leads",
    # The body is parsed in the route (from bytes, after auth); this documents it.
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}
            },
        }
    },
    responses={
        401: {"description": "Missing or unknown API key"},
        403: {"description": "The key's role may not score"},
        413: {"description": "Body over the size limit"},
        422: {
            "description": "Invalid leads: each problem names the lead index, the field and what "
            "is expected",
            "content": {"application/json": {"example": ERROR_EXAMPLE}},
        },
        503: {"description": "No model loaded yet"},
    },
)
async def score(
    key: ScorerKey,
    leads: LeadsDep,
    loaded: ModelDep,
    in_force: PolicyDep,
    batcher: BatcherDep,
    score_log: ScoreLogDep,
    capture: CaptureDep,
) -> OrjsonResponse:
    now = utcnow()
    for lead in leads.leads:
        if lead["as_of"] is None:
            lead["as_of"] = now
    try:
        results = await batcher.score(loaded, leads.leads, in_force.policy, leads.moments)
    except ScoringError as error:
        raise RequestProblem(422, f"the model cannot score these leads: {error}") from None

    request_id = str(uuid.uuid4())
    score_log.submit(ScoreRows(results, {
        "request_id": request_id, "model_name": loaded.name, "model_version": loaded.version,
        "policy_version": in_force.version, "scored_at": now, "api_key_name": key.name,
    }))  # fmt: skip
    capture.scored(leads.leads, leads.moments, now)  # queued: the inputs, each fact once
    metrics.LEADS_SCORED.inc(len(results))
    metrics.observe_many(metrics.SCORES, [r["score"] for r in results])
    for decision, count in Counter(r["decision"] for r in results).items():
        metrics.DECISIONS.labels(decision).inc(count)
    return OrjsonResponse(
        {
            "request_id": request_id,
            "scored_at": now,
            "model": {"name": loaded.name, "version": loaded.version},
            "policy_version": in_force.version,
            "results": results,
        }
    )
