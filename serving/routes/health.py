"""Liveness, readiness and Prometheus metrics (no key needed: probes and scrapers call these)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from serving import metrics
from serving.db import ping
from serving.deps import EngineDep, ModelStoreDep, ScoreLogDep, SettingsDep
from serving.responses import OrjsonResponse
from serving.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> OrjsonResponse:
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Ready to score: a model is loaded and the database answers",
    responses={
        503: {"model": Readiness, "description": "Not ready; `checks` says what is missing"}
    },
)
async def readyz(
    models: ModelStoreDep, engine: EngineDep, score_log: ScoreLogDep
) -> OrjsonResponse:
    model_check = models.status()
    try:
        await run_in_threadpool(ping, engine)
        database_check: dict[str, object] = {"ok": True}
    except Exception as error:
        database_check = {
            "ok": False,
            "error": f"database unreachable: {type(error).__name__}: {error}",
        }
    checks = {
        "model": model_check,
        "database": database_check,
        "score_log": {
            "ok": True,
            "pending": score_log.pending,
            "last_error": score_log.last_error,
        },
    }
    ready = model_check["ok"] is True and database_check["ok"] is True
    return OrjsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


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
async def prometheus_metrics(settings: SettingsDep) -> Response:
    payload, content_type = metrics.metrics_payload(settings.prometheus_multiproc_dir)
    return Response(payload, media_type=content_type)
