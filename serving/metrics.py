"""Prometheus metrics and the ASGI middleware that times requests and enforces the body size limit.

With several workers (`leadscore serve --workers N`) the CLI sets `PROMETHEUS_MULTIPROC_DIR`
(the setting `prometheus_multiproc_dir`) before the workers start, and /metrics aggregates every
worker's numbers.
"""

from __future__ import annotations

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


class ServiceMiddleware:
    """Pure ASGI middleware (no per-request task overhead): body size limit, latency and counters."""

    def __init__(self, app, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        limit = self.max_body_bytes
        status = 500
        response_started = False

        async def send_wrapper(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
            await send(message)

        declared = _content_length(scope)
        try:
            if declared is not None and declared > limit:
                raise _BodyTooLarge
            if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                # Chunked upload: buffer it (up to the limit) before the app sees it.
                receive = await _buffered(receive, limit)
            await self.app(scope, receive, send_wrapper)
        except _BodyTooLarge:
            if response_started:
                raise
            body = orjson.dumps(
                {
                    "detail": f"request body is larger than the limit of {limit} bytes; "
                    f"send at most 1000 leads per request or split the batch",
                }
            )
            await send_wrapper(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send_wrapper({"type": "http.response.body", "body": body})
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            REQUESTS.labels(method, label, str(status)).inc()
            LATENCY.labels(method, label).observe(time.perf_counter() - start)
            if status >= 400:
                ERRORS.labels(label, "server" if status >= 500 else "client").inc()


async def _buffered(receive, limit: int):
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            raise _BodyTooLarge
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
