"""POST /v1/score: validate, score with the loaded model, apply the policy in force, log, answer.

The hot path avoids pandas and per-request I/O: the key check is a dict read, the policy is an
attribute read, the score-log rows go to a queue written by a background thread, and the answer is
rendered with orjson. Concurrent requests are scored together in one model call
(`serving.batcher`).
"""

from __future__ import annotations

import uuid
from collections import Counter

import numpy as np
import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError

from features.data.values import iso_strings_ns
from features.policy.rules import Policy
from serving import metrics
from serving.batcher import ScoringError
from serving.db import utcnow
from serving.deps import ScorerKey
from serving.errors import RequestProblem, describe_validation_errors, problem, summarise
from serving.responses import OrjsonResponse
from serving.routes.model import model_not_loaded
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


def _duplicates(leads: list[dict]) -> list[dict]:
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


def _moments(leads: list[dict]) -> np.ndarray | None:
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
async def score(key: ScorerKey, request: Request) -> OrjsonResponse:
    state = request.app.state
    body, moments = parse_leads(await request.body())
    leads = body.leads  # plain dicts (TypedDicts)
    duplicates = _duplicates(leads)
    if duplicates:
        raise RequestProblem(
            422, f"duplicate lead ids in one request: {duplicates[0]['message']}", duplicates
        )
    loaded = state.model_store.current
    if loaded is None:
        raise model_not_loaded(state.model_store)
    policies = getattr(state, "policies", None)
    if policies is not None:
        in_force = policies.current()
        policy, policy_version = in_force.policy, in_force.version
    else:
        policy, policy_version = getattr(loaded.scorer, "policy", None) or Policy(), 0
    now = utcnow()
    for lead in leads:
        if lead["as_of"] is None:
            lead["as_of"] = now
    try:
        results = await state.batcher.score(loaded, leads, policy, moments)
    except ScoringError as error:
        raise RequestProblem(422, f"the model cannot score these leads: {error}") from None

    request_id = str(uuid.uuid4())
    state.score_log.submit(ScoreRows(results, {
        "request_id": request_id, "model_name": loaded.name, "model_version": loaded.version,
        "policy_version": policy_version, "scored_at": now, "api_key_name": key.name,
    }))  # fmt: skip
    metrics.LEADS_SCORED.inc(len(results))
    metrics.observe_many(metrics.SCORES, [r["score"] for r in results])
    for decision, count in Counter(r["decision"] for r in results).items():
        metrics.DECISIONS.labels(decision).inc(count)
    return OrjsonResponse(
        {
            "request_id": request_id,
            "scored_at": now,
            "model": {"name": loaded.name, "version": loaded.version},
            "policy_version": policy_version,
            "results": results,
        }
    )
