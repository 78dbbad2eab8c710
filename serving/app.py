"""The FastAPI application: `create_app(settings)` wires storage, auth, the model and the routes."""

from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import metrics
from serving.auth import KeyCache, ensure_keys
from serving.batcher import ScoringBatcher
from serving.config import Settings, get_settings
from serving.db import make_engine, upgrade_database
from serving.errors import (
    RequestProblem,
    http_exception_handler,
    request_problem_handler,
    unhandled_exception_handler,
    validation_exception_handler,
)
from serving.model_store import ModelStore, load_from_mlflow
from serving.responses import OrjsonResponse
from serving.score_log import ScoreLogWriter

log = logging.getLogger("serving")

DESCRIPTION = """
Scores leads for CRM systems: a calibrated win probability, a 0-100 score, a grade, the hand-off
decision under the current qualification policy and the reasons in plain words.

Authenticate with an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`); roles are
`scorer` (score, outcomes), `ops` (policy) and `admin` (everything, reload, keys).
"""


def create_app(settings: Settings | None = None, model_store: ModelStore | None = None) -> FastAPI:
    """The app for `settings` (default: from the environment). Tests may pass a ready ModelStore."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from threadpoolctl import threadpool_limits

        # One request scores a few rows: OpenMP thread pools only add wake-up latency.
        thread_limits = threadpool_limits(limits=settings.model_threads)
        engine = make_engine(settings.database_url)
        if settings.auto_migrate:
            upgrade_database(settings.database_url)
        if settings.bootstrap_keys():
            ensure_keys(engine, settings.bootstrap_keys())
        keys = KeyCache(engine, settings.key_cache_seconds)
        keys.start()
        writer = ScoreLogWriter(
            engine, settings.score_log_batch_size, settings.score_log_flush_seconds
        )
        writer.start()
        store = model_store or ModelStore(
            settings.model_uri,
            settings.mlflow_tracking_uri,
            retry_seconds=settings.model_retry_seconds,
            poll_seconds=settings.model_poll_seconds,
            loader=partial(load_from_mlflow, compile_model=settings.compile_model),
        )
        if model_store is None or not store.ready:
            store.start()
        app.state.engine = engine
        app.state.keys = keys
        app.state.score_log = writer
        app.state.model_store = store
        app.state.batcher = ScoringBatcher()
        # Move the start-up objects (model, libraries) out of the collector's way: full
        # collections over them took tens of milliseconds, a tail-latency spike on the request path.
        gc.freeze()
        try:
            yield
        finally:
            # Uvicorn has finished the in-flight requests by now: write every accepted score.
            writer.stop()
            store.stop()
            keys.stop()
            engine.dispose()
            thread_limits.restore_original_limits()

    app = FastAPI(
        title="leadscore",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.state.settings = settings
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(RequestProblem, request_problem_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_exception_handler)
    app.add_middleware(metrics.ServiceMiddleware, max_body_bytes=settings.max_body_bytes)

    from serving.routes import health, keys, model, ops, outcomes, policy, score

    _document_parsed_bodies(app)
    # policy's router lifespan starts app.state.policies (after this app's: it needs the engine).
    for module in (score, model, outcomes, keys, policy, ops, health):
        app.include_router(module.router)
    return app


def _document_parsed_bodies(app: FastAPI) -> None:
    """Add the schemas of bodies that routes parse themselves (POST /v1/score) to the OpenAPI."""
    from serving.schemas import ScoreRequest

    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            extra = ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in extra.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["ScoreRequest"] = extra
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _version() -> str:
    from leadscore import __version__

    return __version__


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn workers (`serving.app:create_app_from_env`): settings from the environment."""
    return create_app(Settings())
