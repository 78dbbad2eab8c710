"""The ASGI app `leadscore serve` hands to uvicorn: the port opens before the service is loaded.

Importing the service (FastAPI, pydantic, SQLAlchemy, numpy, pandas), migrating the database and
starting the writers takes about a second on a quiet machine and several on a busy one, and
uvicorn binds its port only after the app is imported and started. A container health check
counts from the process start, so `BootingApp` is what uvicorn imports: it needs only the
standard library, completes uvicorn's start-up at once, and loads the service in the background
(imports in a thread, then the service's own lifespan). Until the service is up, `/healthz`
answers 200, `/readyz` 503 "not ready" with the reason "starting", and every other request 503
with Retry-After; then every request goes to the service unchanged, and a stop runs the
service's own shutdown (the writers' flush and spill).

If the service cannot start (the database cannot be opened, a bad setting), the reason is logged
as one line, kept in `failure()` for `leadscore serve` to print, and the process stops.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICE_FACTORY = "serving.app:create_app_from_env"
RETRY_AFTER_SECONDS = 1

log = logging.getLogger("leadscore.boot")

# The app of this process (one per process: uvicorn's factory is called once per worker).
_current: BootingApp | None = None


def _stop_by_signal() -> None:
    signal.raise_signal(signal.SIGTERM)  # uvicorn's own graceful stop (a worker process)


# How a process whose service could not start stops: `leadscore serve` with one process sets
# its uvicorn server's `should_exit` instead, so it can print the reason and exit 2.
stop_server: Callable[[], None] = _stop_by_signal


def create_booting_app() -> BootingApp:
    """Factory for uvicorn (`serving.boot:create_booting_app`)."""
    global _current
    _current = BootingApp()
    return _current


def failure() -> str | None:
    """Why the service of this process could not start, or None."""
    return _current.failure if _current is not None else None


class StartFailed(Exception):
    """The service's lifespan refused to start."""


class BootingApp:
    def __init__(self, factory: str = SERVICE_FACTORY) -> None:
        self._factory = factory
        self._service: ASGIApp | None = None
        self._lifespan: _ServiceLifespan | None = None
        self._boot: asyncio.Task[None] | None = None
        self.failure: str | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self._service
        if service is not None:
            await service(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
        elif scope["type"] == "http":
            await _starting(scope, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup: answered at once, the service loads behind it
        self._boot = asyncio.create_task(self._start())
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self._boot  # a stop during the load waits for it, then stops what started
        if self._lifespan is not None:
            await self._lifespan.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def _start(self) -> None:
        try:
            # Imports and the app's construction take the GIL in a thread; /healthz still answers.
            app = await asyncio.to_thread(_build, self._factory)
            lifespan = _ServiceLifespan(app)
            await lifespan.startup()
        except Exception as error:  # noqa: BLE001 - any reason: said in one line, then stop
            self.failure = _describe(error)
            log.error("the service could not start: %s", self.failure)
            stop_server()
            return
        self._lifespan = lifespan
        self._service = app
        log.info("the service is started (process %d)", os.getpid())


def _build(factory: str) -> ASGIApp:
    module_name, _, name = factory.partition(":")
    make: Callable[[], ASGIApp] = getattr(importlib.import_module(module_name), name)
    return make()


def _describe(error: BaseException) -> str:
    """One line, credentials masked (a database driver may quote the URL it was given)."""
    from serving.redact import describe_database_error

    if isinstance(error, StartFailed) and error.__cause__ is not None:
        error = error.__cause__
    if type(error).__module__.startswith("sqlalchemy"):
        from serving.config import Settings
        from serving.redact import redact_url

        url = redact_url(Settings().database_url)  # valid: the service read it already
        return (
            f"cannot open the database {url!r}: {describe_database_error(error)}; "
            "check LEADSCORE_DATABASE_URL and that the database server is running"
        )
    return describe_database_error(error)


class _ServiceLifespan:
    """The service's ASGI lifespan, run in a task of its own (start-up and shutdown messages)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self._task = asyncio.ensure_future(self._app(scope, self._inbox.get, self._outbox.put))
        await self._inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply["type"] != "lifespan.startup.complete":
            # Starlette says "failed" with a traceback as text, then raises the error itself.
            assert self._task is not None
            await asyncio.wait({self._task})
            error = None if self._task.cancelled() else self._task.exception()
            if error is not None:
                raise StartFailed(str(error)) from error
            raise StartFailed("the service's start-up failed")

    async def shutdown(self) -> None:
        await self._inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if reply["type"] != "lifespan.shutdown.complete":
            log.error("the service's shutdown failed: %s", reply.get("message", ""))

    async def _reply(self) -> Message:
        """The service's next lifespan message; an exception it raised instead, re-raised."""
        assert self._task is not None
        getting = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({getting, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if getting.done():
            return getting.result()
        getting.cancel()
        error = self._task.exception()
        if error is None:
            raise StartFailed("the service's lifespan ended without answering")
        raise StartFailed(str(error)) from error


async def _starting(scope: Scope, send: Send) -> None:
    path = scope.get("path", "")
    headers = [(b"content-type", b"application/json")]
    body: dict[str, object]
    if path == "/healthz":
        status, body = 200, {"status": "ok"}
    elif path == "/readyz":
        status, body = 503, {"status": "not ready", "reason": "starting"}
    else:
        status = 503
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        ]
        body = {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "the service is starting; retry after Retry-After seconds",
        }
    payload = json.dumps(body).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
