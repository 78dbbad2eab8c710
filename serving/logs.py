"""The service's log lines: a timestamp, a level, a request id, and JSON when asked.

Every request gets an id: the caller's `X-Request-ID` when it is a plain token (letters, digits,
`.`, `_`, `:`, `-`, at most 36 characters: a UUID fits, and the score log stores it), otherwise a
new UUID. The id is answered in the `X-Request-ID` header, is the `request_id` of a score answer
and of its score-log rows, and is on every log line written while the request runs (uvicorn's
access line included), so one grep joins a CRM's call, the service's log and the database.

`LEADSCORE_LOG_FORMAT=json` (or `leadscore serve --log-format json`) writes one JSON object per
line: `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, `request_id`, and
`exception` when there is one. The default is text with the same fields.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID = 36  # the score log's request_id column
_TOKEN = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_REQUEST_ID}}}")

_current: ContextVar[str | None] = ContextVar("leadscore_request_id", default=None)


def request_id_for(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a plain token, else a new UUID."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _TOKEN.fullmatch(text):
                return text
            break
    return str(uuid.uuid4())


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    return _current.get()


def set_request_id(request_id: str | None):  # -> Token
    return _current.set(request_id)


def reset_request_id(token) -> None:
    _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get() or "-"
        return True


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`2026-12-02T05:30:00.123Z INFO serving [3f2a...] model lead-scoring v3 loaded`"""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_time(record)} {record.levelname} {record.name} "
            f"[{getattr(record, 'request_id', '-')}] {record.getMessage()}"
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module's docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "-")
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id == "-" else request_id,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class CurrentStream(logging.StreamHandler):
    """A StreamHandler writing to whatever `sys.stderr` (or `sys.stdout`, `which`) is when a line
    is written, not when logging was configured: a process that replaces them (a test runner
    capturing each test's output, a supervisor redirecting) never has a line go to a closed
    stream ("--- Logging error ---")."""

    def __init__(self, which: Literal["stderr", "stdout"] = "stderr") -> None:
        self.which = which
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return getattr(sys, self.which)

    @stream.setter
    def stream(self, value: Any) -> None:
        """StreamHandler sets it in __init__; the stream is always the current one."""


def logging_config(log_format: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` for uvicorn and the service: the service's messages
    (logger `serving`), uvicorn's errors and access lines, all in one format on stderr."""
    formatter = "json" if log_format == "json" else "text"
    handler = {
        "()": CurrentStream,
        "formatter": formatter,
        "filters": ["request_id"],
        "which": "stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "text": {"()": TextFormatter},
            "json": {"()": JsonFormatter},
        },
        "handlers": {"default": handler, "access": dict(handler, which="stdout")},
        "loggers": {
            "serving": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": level, "propagate": False},
        },
    }
