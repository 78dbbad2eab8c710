"""The FastAPI application: `create_app(settings)` wires storage, auth, the model and the routes.

One lifespan starts every background service of a worker (API-key cache, score-log writer, model
store, policy cache, batcher), hands them to the routes' dependencies as `app.state.services`
(`serving.deps.Services`) and stops them in reverse order at shutdown. Nothing in it waits for the
model registry (nor imports mlflow): the model loads in the background, so the port opens and
/healthz answers at once, and /readyz says why the service is not ready yet.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from features.policy.rules import FACTS
from serving import metrics
from serving.auth import KeyCache, ensure_keys
from serving.batcher import ScoringBatcher
from serving.bodies import BODY_MODELS
from serving.capture.store import Capture
from serving.config import Settings, get_settings
from serving.db import make_engine, upgrade_database
from serving.deps import Services
from serving.errors import (
    DATABASE_UNAVAILABLE,
    ERROR_STATUS,
    RequestProblem,
    database_error_handler,
    http_exception_handler,
    request_problem_handler,
    service_error_handler,
    unhandled_exception_handler,
    validation_exception_handler,
)
from serving.model_store import ModelStore, load_from_mlflow
from serving.policy.simulation import model_default_policy
from serving.policy.store import PolicyCache
from serving.responses import PROBLEM_MEDIA_TYPE, OrjsonResponse
from serving.schemas import TEXT_PATTERN, Problem, ScoreRequest
from serving.score_log import ScoreLogWriter

log = logging.getLogger("serving")

# The collector's thresholds while a worker serves: a young collection every 50,000 new container
# objects instead of Python's 700. A 1,000-lead request holds ~150,000 dicts and lists until it is
# answered; at the default each passed through ~100 young and ~10 middle collections and, promoted,
# set off a full one every other request (13 ms of collection a request, in-process). With these,
# 1-3 ms, and the server's CPU per 1,000-lead request fell by 10-18% (bench/serve.py's body, one
# worker). Garbage without cycles is freed at once either way; cycles wait a little longer.
GC_THRESHOLDS = (50_000, 20, 10)
# The thresholds are the process's: the first app serving sets them, the last one to stop gives
# back what the process had (apps in one process, as tests run them, may stop in any order).
_serving: dict[str, Any] = {"apps": 0, "thresholds": None}
_serving_lock = threading.Lock()  # lifespans may start and stop in threads of their own


def _collect_less_often() -> None:
    with _serving_lock:
        if _serving["apps"] == 0:
            _serving["thresholds"] = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
        _serving["apps"] += 1


def _collect_as_before() -> None:
    with _serving_lock:
        _serving["apps"] -= 1
        if _serving["apps"] == 0:
            gc.set_threshold(*_serving["thresholds"])


DESCRIPTION = """
Scores leads for CRM systems: a calibrated win probability, a 0-100 score, a grade, the hand-off
decision under the current qualification policy and the reasons in plain words.

Authenticate with an API key (`Authorization: Bearer <key>` or `X-API-Key: <key>`); roles are
`scorer` (score, outcomes), `ops` (policy) and `admin` (everything, reload, keys). The key is
checked before the body is read.

Errors are RFC 9457 problems (`application/problem+json`) with `detail` (one line) and, for
invalid requests, `errors`: each problem's lead index, field, message and what is expected.
Text fields refuse NUL characters; timestamps need a zone and lie between 1970-01-01 and
2100-01-01; numbers are finite, at most 1e15 in size.
"""

_REF = "#/components/schemas/{model}"
# Answers that quote what was sent, NUL included (a problem names the text it refuses; a warning
# the unknown name it ignored): their text is not refused.
QUOTES_THE_REQUEST = frozenset(
    {"Problem", "ProblemEntry", "LeadRejected", "LeadError", "InputWarning"}
)


class ScoringAPI(FastAPI):
    """FastAPI, with what its own generator cannot see added to the OpenAPI: the bodies routes
    read themselves after auth (`serving.bodies`), error answers as problem details, and the
    refusal of NUL characters in every text field."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            models: list[type[BaseModel]] = [ScoreRequest, Problem, *BODY_MODELS.values()]
            for model in models:
                extra = model.model_json_schema(ref_template=_REF)
                for name, definition in extra.pop("$defs", {}).items():
                    components.setdefault(name, definition)
                components[model.__name__] = extra
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)  # FastAPI's 422 shape, never answered here
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    _problem_responses(operation)
            if "HardRule" in components:  # checked by its validator, listed here
                components["HardRule"]["properties"]["fact"]["enum"] = list(FACTS)
            for name, definition in components.items():
                if name not in QUOTES_THE_REQUEST:
                    _refuse_nul(definition)
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    _refuse_nul(operation.get("parameters", []))
            self.openapi_schema = schema
        return self.openapi_schema


def _problem_responses(operation: dict[str, Any]) -> None:
    """Every 4xx/5xx of an operation is a Problem, unless it documents a body of its own."""
    for status, response in operation.get("responses", {}).items():
        if not status.isdigit() or int(status) < 400:
            continue
        content = response.get("content") or {}
        own = [
            media
            for media in content.values()
            if "schema" in media and "ValidationError" not in str(media["schema"])
        ]
        if own:
            continue  # e.g. /readyz's 503: a Readiness body
        media = {"schema": {"$ref": _REF.format(model="Problem")}}
        for old in content.values():
            if "example" in old:
                media["example"] = old["example"]
        response["content"] = {PROBLEM_MEDIA_TYPE: media}


def _refuse_nul(node: Any) -> None:
    """Say in the schema what the service does: no text (nor object key) holds a NUL."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(node):
            node["pattern"] = TEXT_PATTERN
        if node.get("type") == "object" and "properties" not in node:
            if node.get("additionalProperties") not in (None, False):  # a map: its keys are data
                node.setdefault("propertyNames", {"pattern": TEXT_PATTERN})
        for value in node.values():
            _refuse_nul(value)
    elif isinstance(node, list):
        for value in node:
            _refuse_nul(value)


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
            _collect_less_often()
            try:
                yield
            finally:
                _collect_as_before()
            # Uvicorn has finished the in-flight requests by now; the score-log writer's stop
            # writes every accepted score before the engine goes.

    app = ScoringAPI(
        title="leadscore",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
        # /docs and /redoc come from routes/docs.py: files of an installed package, no CDN
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, validation_exception_handler)
    app.add_exception_handler(RequestProblem, request_problem_handler)
    for error_type in ERROR_STATUS:
        app.add_exception_handler(error_type, service_error_handler)
    for error_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(error_type, database_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(Exception, unhandled_exception_handler)
    app.add_middleware(
        metrics.ServiceMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_seconds=settings.body_timeout_seconds,
    )

    from serving.routes import (
        docs,
        events,
        exploration,
        health,
        keys,
        leads,
        model,
        ops,
        outcomes,
        policy,
        reports,
        score,
    )  # fmt: skip

    for module in (
        score, events, model, outcomes, leads, reports, keys, policy, exploration, ops, health,
        docs,
    ):  # fmt: skip
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
        engine, settings.score_log_batch_size, settings.score_log_flush_seconds,
        max_pending=settings.score_log_max_pending, spill_dir=settings.spill_dir,
    )  # fmt: skip
    score_log.start()  # first what the last stop spilled, if anything
    started.callback(score_log.stop, settings.writer_stop_seconds)
    models = model_store or ModelStore(
        settings.model_uri,
        settings.mlflow_tracking_uri,
        retry_seconds=settings.model_retry_seconds,
        poll_seconds=settings.model_poll_seconds,
        loader=partial(
            load_from_mlflow,
            compile_model=settings.compile_model,
            require_hashes=settings.model_require_hashes,
        ),
    )
    if model_store is None or not models.ready:
        models.start()  # in the background: the port opens without waiting for the registry
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
        spill_dir=settings.spill_dir, stop_seconds=settings.writer_stop_seconds,
        known_leads=settings.capture_known_leads,
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
