"""POST /v1/score: validate, score with the loaded model, apply the policy in force, log, answer.

The route's signature lists what it uses (serving.deps): the key, the parsed leads, and `Scoring`
(the model and the policy in force, the batcher, the score log, the capture and the engine: one
dependency, not six, as each costs FastAPI's resolution per request). The hot path avoids pandas and per-request
I/O: the key check is a dict read, the policy is an attribute read, the score-log rows go to a
queue written by a background thread, and the answer is rendered with orjson. Concurrent
requests are scored together in one model call (`serving.batcher`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from features.policy.rules import value_needed_message
from serving import metrics
from serving.batcher import ScoringError
from serving.db import utcnow
from serving.deps import ScorerKey, ScoringDep
from serving.errors import RequestProblem, error_responses
from serving.leads import ParsedLeads, read_body, read_for_model, results_in_order
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


async def read_leads(
    request: Request,
    strict: Annotated[bool, Query(description=STRICT_DESCRIPTION)] = False,
) -> ParsedLeads:
    """The request body as validated leads, the invalid ones rejected one by one (strict: a 422
    naming each problem). A dependency listed after the key, so auth answers first and the model
    check (503) comes after the body's."""
    return read_body(await request.body(), strict)


LeadsDep = Annotated[ParsedLeads, Depends(read_leads)]

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
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}
            },
        }
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
async def score(key: ScorerKey, leads: LeadsDep, scoring: ScoringDep) -> OrjsonResponse:
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
        })  # fmt: skip
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
