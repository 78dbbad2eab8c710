"""Prometheus metrics, and the ASGI middleware that times requests, adds the security headers and
the request id (serving.logs), and enforces the body size limit and the body read timeout.

With several workers (`leadscore serve --workers N`) the CLI sets `PROMETHEUS_MULTIPROC_DIR`
(the setting `prometheus_multiproc_dir`) before the workers start, and /metrics aggregates every
worker's numbers.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import ClientDisconnect

from serving.logs import request_id_for, reset_request_id, set_request_id

log = logging.getLogger("serving")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "leadscore_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "leadscore_http_request_duration_seconds",
    "Time from request start to the end of the response",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
ERRORS = Counter(
    "leadscore_http_errors_total",
    "Requests answered with an error (kind: client for 4xx, server for 5xx)",
    ["route", "kind"],
)
LEADS_SCORED = Counter("leadscore_leads_scored_total", "Leads scored")
BATCH_LEADS = Histogram(
    "leadscore_model_call_leads",
    "Leads per model call: the leads of the requests scored together (serving.batcher)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)
SCORES = Histogram(
    "leadscore_lead_score",
    "Distribution of the 0-100 scores given",
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
)
DECISIONS = Counter("leadscore_decisions_total", "Decisions given", ["decision"])
MODEL_INFO = Gauge(
    "leadscore_model_info",
    "The model being served (value 1), by name and version",
    ["name", "version"],
    multiprocess_mode="liveall",
)
MODEL_LOADED = Gauge(
    "leadscore_model_loaded", "1 when a model is loaded and serving", multiprocess_mode="livemin"
)
MODEL_LOAD_FAILURES = Counter(
    "leadscore_model_load_failures_total",
    "Failed model loads (stage: start, reload or poll); the last good model keeps serving",
    ["stage"],
)
SCORE_LOG_PENDING = Gauge(
    "leadscore_score_log_pending",
    "Score records accepted but not yet written to the database",
    multiprocess_mode="livesum",
)
SCORE_LOG_WRITTEN = Counter("leadscore_score_log_written_total", "Score records written")
SCORE_LOG_FAILURES = Counter(
    "leadscore_score_log_write_failures_total", "Failed score-log writes (retried)"
)
SCORE_LOG_REFUSED = Counter(
    "leadscore_score_log_refused_total",
    "Score records refused because the score log was full (the request answered 503)",
)
SCORE_LOG_DEAD_LETTERED = Counter(
    "leadscore_score_log_dead_letter_total",
    "Score records the database refused, kept in the dead_letters table",
)
SCORE_LOG_SPILLED = Counter(
    "leadscore_score_log_spilled_total",
    "Score records spilled to the local file at a stop (replayed at the next start)",
)
SCORE_HISTORY_FAILURES = Counter(
    "leadscore_score_history_failures_total",
    "Requests answered with trend 'unknown': the score log could not be read",
)
INPUT_WARNINGS = Counter(
    "leadscore_input_warnings_total",
    "Values read otherwise than sent or names ignored in score requests, by kind "
    "(unknown_channel, unknown_activity: read as 'other'; unknown_attribute, unknown_field)",
    ["kind"],
)
LEADS_REJECTED = Counter(
    "leadscore_leads_rejected_total", "Leads of score requests rejected (not scored) as invalid"
)
CLIENT_DISCONNECTS = Counter(
    "leadscore_http_client_disconnects_total",
    "Requests whose client went away before the whole body arrived (no answer sent)",
    ["method", "route"],
)
BODY_TIMEOUTS = Counter(
    "leadscore_http_body_timeouts_total",
    "Requests whose body did not arrive within body_timeout_seconds (answered 408)",
    ["method", "route"],
)


def metrics_payload(multiprocess_dir: str | None = None) -> tuple[bytes, str]:
    """The exposition text of this process, or of all workers when `multiprocess_dir` is set."""
    if multiprocess_dir:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def observe_many(histogram: Histogram, values: list[float]) -> None:
    """`histogram.observe(v)` for every value, one increment per bucket: a 1,000-lead request's
    scores cost 1,000 locked (and, with workers, memory-mapped) updates one by one."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values:  # a prometheus_client without these internals
            histogram.observe(value)
        return
    # observe() counts a value in the first bucket whose upper bound is >= the value
    counts = np.bincount(np.searchsorted(bounds, values), minlength=len(bounds))
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(int(count))
    total.inc(float(sum(values)))


def record_model(name: str, version: str) -> None:
    MODEL_INFO.clear()
    MODEL_INFO.labels(name=name, version=version).set(1)
    MODEL_LOADED.set(1)


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


# Security headers of every answer. API answers are data, never a page: nothing may run, frame or
# sniff them. The HTML pages (/ops, /docs, /redoc) get PAGE_CSP: scripts from this origin only (no
# inline script: the pages load theirs from files), inline styles (the /ops page, plotly and
# ReDoc style elements), images from data: URLs (Swagger UI's icons) and ReDoc's blob: worker.
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
PAGE_CSP = (
    b"content-security-policy",
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    b"worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'",
)
PAGE_PREFIXES = ("/ops", "/docs", "/redoc")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ServiceMiddleware:
    """Pure ASGI middleware (no per-request task overhead): security headers, body size limit,
    body read timeout, client disconnects, latency and counters.

    The body is counted as the app reads it (never read ahead): routes read it only after the
    API key is checked. `body_timeout_seconds` bounds the time from the request's start until
    the last byte of its body (a slow-drip client gets 408); a client that goes away before the
    body is complete is logged in one line and counted (`leadscore_http_client_disconnects_total`).
    """

    def __init__(self, app, max_body_bytes: int, body_timeout_seconds: float = 30.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_seconds = body_timeout_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_for(scope.get("headers", ()))
        id_header = (b"x-request-id", request_id.encode())
        token = set_request_id(request_id)  # on every log line of this request
        limit = self.max_body_bytes
        status = 500
        response_started = False
        path = scope.get("path", "")
        csp = PAGE_CSP if path.startswith(PAGE_PREFIXES) else API_CSP

        async def send_wrapper(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", ()), *SECURITY_HEADERS, csp, id_header
                ]  # fmt: skip
            await send(message)

        received = 0
        body_done = scope.get("method") not in BODY_METHODS
        deadline = start + self.body_timeout_seconds

        async def counted_receive():
            nonlocal received, body_done
            if body_done:
                return await receive()  # e.g. waiting for a disconnect: no deadline
            try:
                async with asyncio.timeout(max(deadline - time.perf_counter(), 0.0)):
                    message = await receive()
            except TimeoutError:
                raise _BodyTimeout from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
                body_done = not message.get("more_body", False)
            return message

        declared = _content_length(scope)
        try:
            if declared is not None and declared > limit:
                raise _BodyTooLarge
            await self.app(scope, counted_receive, send_wrapper)
        except _BodyTooLarge:
            if response_started:
                raise
            await _problem(
                send_wrapper,
                413,
                f"request body is larger than the limit of {limit} bytes; "
                "send at most 1000 leads per request or split the batch",
            )
        except _BodyTimeout:
            BODY_TIMEOUTS.labels(scope.get("method", ""), _route(scope)).inc()
            if response_started:
                raise
            await _problem(
                send_wrapper,
                408,
                f"the request body did not arrive within {self.body_timeout_seconds:g} s "
                f"({received} bytes received); send the whole body at once",
            )
        except ClientDisconnect:
            # The client is gone: nobody to answer. One line, not a traceback.
            status = 499  # the usual code for "client closed the request" in access logs
            CLIENT_DISCONNECTS.labels(scope.get("method", ""), _route(scope)).inc()
            log.warning(
                "client disconnected before sending the whole body: %s %s (%d bytes received)",
                scope.get("method", ""),
                path,
                received,
            )
        finally:
            reset_request_id(token)
            label = _route(scope)
            method = scope.get("method", "")
            REQUESTS.labels(method, label, str(status)).inc()
            LATENCY.labels(method, label).observe(time.perf_counter() - start)
            if status >= 400:
                ERRORS.labels(label, "server" if status >= 500 else "client").inc()


def _route(scope) -> str:
    return getattr(scope.get("route"), "path", None) or "unmatched"


async def _problem(send, status: int, detail: str) -> None:
    from serving.errors import problem_body

    body = orjson.dumps(problem_body(status, detail))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
