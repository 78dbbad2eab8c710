"""POST /v1/score: validate, score with the loaded model, apply the policy in force, log, answer.

The route takes the request alone and reads what it uses in order: the key (`serving.deps.key_checker`:
401/403 first), the `strict` query flag and the body (422), then `Scoring` (the model and the
policy in force, the batcher, the score log, the capture and the engine; 503 without a model).
FastAPI's dependency resolution of the same three was ~10% of a one-lead request; the key's
schemes and the flag are declared in `openapi_extra`, so the documentation is unchanged. The hot
path avoids pandas and per-request I/O: the key check is a dict read, the policy is an attribute read, the score-log rows go to a
queue written by a background thread, and the answer is rendered with orjson. Concurrent
requests are scored together in one model call (`serving.batcher`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from features.policy.rules import value_needed_message
from serving import metrics
from serving.batcher import ScoringError
from serving.db import utcnow
from serving.deps import KEY_SECURITY, key_checker, scoring_of
from serving.errors import RequestProblem, error_responses
from serving.leads import read_body, read_for_model, results_in_order
from serving.logs import current_request_id
from serving.responses import OrjsonResponse
from serving.schemas import STRICT_DESCRIPTION, ScoreResponse
from serving.score_log import ScoreLogFull, ScoreRows
from serving.trend import PreviousScores, add_trend

router = APIRouter(prefix="/v1", tags=["score"])

ERROR_EXAMPLE = {
    "type": "about:blank",
    "title": "Unprocessable Entity",
    "status": 422,
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


_scorer_key = key_checker("scorer")
_STRICT = TypeAdapter(bool)  # what FastAPI reads a bool query parameter with ("true", "1", "no"...)

STRICT_PARAMETER: dict[str, Any] = {
    "name": "strict",
    "in": "query",
    "required": False,
    "description": STRICT_DESCRIPTION,
    "schema": {"type": "boolean", "default": False, "title": "Strict",
               "description": STRICT_DESCRIPTION},
}  # fmt: skip


def strict_flag(request: Request) -> bool:
    """The `strict` query flag; an unreadable one is a 422 naming it, as FastAPI answers."""
    raw = request.query_params.get("strict")
    if raw is None:
        return False
    try:
        return _STRICT.validate_python(raw)
    except ValidationError as error:
        errors = [{**e, "loc": ("query", "strict")} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from None


FULL = (
    "the score log is full (the database is slow or down): these leads were not scored; send "
    "them again after the Retry-After seconds"
)


@router.post(
    "/score",
    response_model=ScoreResponse,
    summary="Score 1 to 1,000 leads",
    description="Each lead is scored, or rejected alone with its problems (`rejected` counts "
    "them); values read otherwise than sent (unknown channels and activities: 'other') and "
    "names ignored (unknown attributes and fields) are listed in `warnings`. With `strict` "
    "(query or body) any of the former refuses the request (422).",
    # The body is parsed in the route (from bytes, after auth); this documents it.
    openapi_extra={
        "parameters": [STRICT_PARAMETER],
        "security": KEY_SECURITY,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}
            },
        },
    },
    responses={
        **error_responses(401, 403, 408, 413, 503, e403="The key's role may not score"),
        422: {
            "description": "The body as a whole is invalid (or, strict, a lead or a channel): "
            "each problem names the lead index, the field and what is expected",
            "content": {"application/problem+json": {"example": ERROR_EXAMPLE}},
        },
    },
)
async def score(request: Request) -> OrjsonResponse:
    key = _scorer_key(request)
    leads = read_body(await request.body(), strict_flag(request))
    scoring = scoring_of(request)
    loaded, in_force, score_log = scoring.model, scoring.policy, scoring.score_log
    read_for_model(leads, loaded, leads.strict)
    if in_force.policy.rank_by == "expected_value" and loaded.scorer.value is None:
        leads.warnings.add(
            "ranked_by_probability_instead", "policy.rank_by", "expected_value", "probability",
            None, f"{value_needed_message(loaded.scorer.model_words())}; until then these leads "
            f"go to sales from score {in_force.policy.sales_threshold:g} (sales_threshold)",
            count=len(leads.leads),
        )  # fmt: skip
    if not score_log.admit(len(leads.leads)):
        raise ScoreLogFull(FULL)
    now = utcnow()
    for lead in leads.leads:
        if lead["as_of"] is None:
            lead["as_of"] = now
    scored: list[dict] = []
    if leads.leads:
        # the leads' previous scores are read while the model scores them
        previous = PreviousScores.start(
            scoring.engine, [lead["lead_id"] for lead in leads.leads], now
        )
        try:
            scored = await scoring.batcher.score(
                loaded, leads.leads, in_force.policy, leads.moments, in_force.version
            )
        except ScoringError as error:
            previous.cancel()
            raise RequestProblem(422, f"the model cannot score these leads: {error}") from None
        except BaseException:
            previous.cancel()
            raise
        add_trend(scored, await previous.result(), in_force.policy.trend_points)

    # the request's id (serving.logs): in the X-Request-ID header, the log lines and the score log
    request_id = current_request_id() or str(uuid.uuid4())
    if scored:
        rows = ScoreRows(scored, {
            "request_id": request_id, "model_name": loaded.name, "model_version": loaded.version,
            "policy_version": in_force.version, "scored_at": now, "api_key_name": key.name,
        }, [lead["as_of"] for lead in leads.leads])  # fmt: skip
        if not score_log.submit(rows):  # filled up while these were scored
            raise ScoreLogFull(FULL)
        metrics.LEADS_SCORED.inc(len(scored))
        metrics.observe_many(metrics.SCORES, [r["score"] for r in scored])
        for decision, count in Counter(r["decision"] for r in scored).items():
            metrics.DECISIONS.labels(decision).inc(count)
    if leads.leads:
        # queued: the inputs, each fact once
        scoring.capture.scored(leads.leads, leads.moments, now)
    return OrjsonResponse(
        {
            "request_id": request_id,
            "scored_at": now,
            "model": {"name": loaded.name, "version": loaded.version},
            "policy_version": in_force.version,
            "results": results_in_order(leads, scored),
            "rejected": len(leads.rejected),
            "warnings": leads.warnings.answer(),
        }
    )
