"""The FastAPI application: `create_app(settings)` wires storage, auth, the model and the routes.

One lifespan starts every background service of a worker (API-key cache, score-log writer, model
store, policy cache, batcher), hands them to the routes' dependencies as `app.state.services`
(`serving.deps.Services`) and stops them in reverse order at shutdown.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import metrics
from serving.auth import KeyCache, ensure_keys
from serving.batcher import ScoringBatcher
from serving.capture.store import Capture
from serving.config import Settings, get_settings
from serving.db import make_engine, upgrade_database
from serving.deps import Services
from serving.errors import (
    ERROR_STATUS,
    RequestProblem,
    http_exception_handler,
    request_problem_handler,
    service_error_handler,
    unhandled_exception_handler,
    validation_exception_handler,
)
from serving.model_store import ModelStore, load_from_mlflow
from serving.policy.simulation import model_default_policy
from serving.policy.store import PolicyCache
from serving.responses import OrjsonResponse
from serving.schemas import ScoreRequest
from serving.score_log import ScoreLogWriter

log = logging.getLogger("serving")

DESCRIPTION = """
Scores leads for CRM systems: a calibrated win probability, a 0-100 score, a grade, the hand-off
decision under the current qualification policy and the reasons in plain words.

Authenticate with an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`); roles are
`scorer` (score, outcomes), `ops` (policy) and `admin` (everything, reload, keys).
"""


class ScoringAPI(FastAPI):
    """FastAPI, with the schema of the body POST /v1/score parses itself in its OpenAPI."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            extra = ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in extra.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["ScoreRequest"] = extra
            self.openapi_schema = schema
        return self.openapi_schema


def create_app(settings: Settings | None = None, model_store: ModelStore | None = None) -> FastAPI:
    """The app for `settings` (default: from the environment). Tests may pass a ready ModelStore."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as started:  # stopped in reverse order, even if start fails
            app.state.services = _start_services(settings, model_store, started)
            # Move the start-up objects (model, libraries) out of the collector's way: full
            # collections over them took tens of milliseconds, a tail-latency spike.
            gc.freeze()
            yield
            # Uvicorn has finished the in-flight requests by now; the score-log writer's stop
            # writes every accepted score before the engine goes.

    app = ScoringAPI(
        title="leadscore",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(RequestProblem, request_problem_handler)
    for error_type in ERROR_STATUS:
        app.add_exception_handler(error_type, service_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_exception_handler)
    app.add_middleware(metrics.ServiceMiddleware, max_body_bytes=settings.max_body_bytes)

    from serving.routes import events, health, keys, leads, model, ops, outcomes, policy, score

    for module in (score, events, model, outcomes, leads, keys, policy, ops, health):
        app.include_router(module.router)
    return app


def _start_services(
    settings: Settings, model_store: ModelStore | None, started: AsyncExitStack
) -> Services:
    """Start each service and register its stop on `started`."""
    from threadpoolctl import threadpool_limits

    # One request scores a few rows: OpenMP thread pools only add wake-up latency.
    thread_limits = threadpool_limits(limits=settings.model_threads)
    started.callback(thread_limits.restore_original_limits)
    engine = make_engine(settings.database_url)
    started.callback(engine.dispose)
    if settings.auto_migrate:
        upgrade_database(settings.database_url)
    if settings.bootstrap_keys():
        ensure_keys(engine, settings.bootstrap_keys())
    keys = KeyCache(engine, settings.key_cache_seconds)
    keys.start()
    started.callback(keys.stop)
    score_log = ScoreLogWriter(
        engine, settings.score_log_batch_size, settings.score_log_flush_seconds
    )
    score_log.start()
    started.callback(score_log.stop)
    models = model_store or ModelStore(
        settings.model_uri,
        settings.mlflow_tracking_uri,
        retry_seconds=settings.model_retry_seconds,
        poll_seconds=settings.model_poll_seconds,
        loader=partial(load_from_mlflow, compile_model=settings.compile_model),
    )
    if model_store is None or not models.ready:
        models.start()
    started.callback(models.stop)
    # Version 0 is the model's own policy: read from the model serving at the time.
    policies = PolicyCache(
        engine,
        default=lambda: model_default_policy(models.current),
        refresh_seconds=settings.policy_refresh_seconds,
    )
    policies.start()
    started.callback(policies.stop)
    capture = Capture(
        engine, enabled=settings.capture_enabled, retention_days=settings.capture_retention_days,
        purge_seconds=settings.capture_purge_seconds,
        flush_seconds=settings.score_log_flush_seconds, max_pending=settings.capture_max_pending,
    )  # fmt: skip
    capture.start()
    started.callback(capture.stop)
    batcher = ScoringBatcher()
    started.push_async_callback(batcher.stop)
    return Services(settings, engine, keys, models, policies, score_log, batcher, capture)


def _version() -> str:
    from leadscore import __version__

    return __version__


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`serving.app:create_app_from_env`): settings from the environment."""
    return create_app(Settings())
