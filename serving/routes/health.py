"""Liveness, readiness and Prometheus metrics (no key needed: probes and scrapers call these).

/readyz answers only ready, degraded or not ready (and the status code) to anyone; what each part
says (the model and its errors, the database, the writers) is for the admin key: it can name
servers, users and records, which an open route must not.
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from serving import metrics
from serving.db import dead_letters
from serving.deps import CaptureDep, EngineDep, ModelStoreDep, OptionalKey, ScoreLogDep, SettingsDep
from serving.redact import describe_database_error
from serving.responses import OrjsonResponse
from serving.schemas import Health, Readiness

router = APIRouter(tags=["health"])

DEAD_LETTERS_COUNTED = 1000


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


def database_status(engine: Engine) -> dict[str, object]:
    """Whether the database answers, and how many dead letters wait for an operator (counted up
    to `DEAD_LETTERS_COUNTED`: probes call this every few seconds)."""
    some = sa.select(dead_letters.c.id).limit(DEAD_LETTERS_COUNTED).subquery()
    try:
        with engine.connect() as connection:
            waiting = connection.execute(sa.select(sa.func.count()).select_from(some)).scalar_one()
    except Exception as error:
        return {"ok": False, "error": f"database unreachable: {describe_database_error(error)}"}
    return {"ok": True, "dead_letters": int(waiting)}


@router.get(
    "/readyz",
    response_model=Readiness,
    response_model_exclude_none=True,
    summary="Ready to score: a model is loaded, the database answers and the score log has room",
    description="`degraded` (200): serving, but records the database refused wait in the "
    "`dead_letters` table. `checks` (what each part says) only for the admin key.",
    responses={503: {"model": Readiness, "description": "Not ready"}},
    # The key is optional here (OpenAPI's empty requirement): without one, the status only.
    openapi_extra={"security": [{}]},
)
async def readyz(
    key: OptionalKey,
    models: ModelStoreDep,
    engine: EngineDep,
    score_log: ScoreLogDep,
    capture: CaptureDep,
) -> OrjsonResponse:
    model_check = models.status()
    database_check = await run_in_threadpool(database_status, engine)
    score_log_check = score_log.status()
    ready = (
        model_check["ok"] is True
        and database_check["ok"] is True
        and score_log.running  # a score answered must be a score written
        and score_log.has_room()
    )
    status = "not ready"
    if ready:
        status = "degraded" if database_check.get("dead_letters") else "ready"
    answer: dict[str, object] = {"status": status}
    if key is not None and key.role == "admin":
        answer["checks"] = {
            "model": model_check,
            "database": database_check,
            "score_log": score_log_check,
            "capture": capture.writer.status(),
        }
    return OrjsonResponse(answer, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "The Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def prometheus_metrics(settings: SettingsDep, models: ModelStoreDep) -> Response:
    current = models.current
    if current is not None:  # the model this process serves now (one app per process)
        metrics.record_model(current.name, current.version)
    payload, content_type = metrics.metrics_payload(settings.prometheus_multiproc_dir)
    return Response(payload, media_type=content_type)
