"""Error answers: every 4xx/5xx is an RFC 9457 problem (`application/problem+json`), never a
stack trace: `{"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
"detail": "...", "errors": [...]}`.

`detail` and `errors` are the fields this API always answered with, kept as extension members so
clients written for them keep working. `errors` (validation problems only) lists each problem
with the lead index (when inside a lead), the field path inside that lead, what was wrong and
what is expected.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from serving.auth import KeyCommandError, KeyNotFound
from serving.model_store import ModelNotLoaded
from serving.policy.simulation import BasisUnavailable
from serving.policy.store import PolicyConflict, PolicyStoreError, PolicyVersionNotFound
from serving.redact import describe_database_error
from serving.responses import ProblemResponse
from serving.score_log import ScoreLogFull

log = logging.getLogger("serving")

MAX_LISTED_ERRORS = 50

# What the service's own errors answer over HTTP, by type (never by message text): the most
# specific class in the raised error's MRO decides; the answer is `{"detail": str(error)}`.
ERROR_STATUS: dict[type[Exception], int] = {
    ModelNotLoaded: 503,  # with Retry-After (every 503 has it)
    ScoreLogFull: 503,  # the database cannot keep up: refused rather than answered unrecorded
    PolicyConflict: 409,  # the policy changed since `expected_version`
    PolicyVersionNotFound: 404,
    PolicyStoreError: 422,  # e.g. no reason given
    BasisUnavailable: 409,  # nothing to simulate on yet
    KeyNotFound: 404,
    KeyCommandError: 409,  # e.g. the name is taken
}
RETRY_AFTER_SECONDS = 5


class RequestProblem(Exception):
    """A request the service understood but cannot accept (e.g. duplicate lead ids)."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


def problem(
    message: str,
    expected: str | None = None,
    lead_index: int | None = None,
    field: str | None = None,
    lead_id: Any = None,
) -> dict:
    entry: dict[str, Any] = {}
    if lead_index is not None:
        entry["lead_index"] = lead_index
    if lead_id is not None:
        entry["lead_id"] = lead_id
    if field is not None:
        entry["field"] = field
    entry["message"] = message
    if expected is not None:
        entry["expected"] = expected
    return entry


def summarise(errors: list[dict]) -> str:
    """One line naming the first problem (and how many more)."""
    first = errors[0]
    where = []
    if "lead_index" in first:
        where.append(f"lead {first['lead_index']}")
    if "field" in first:
        where.append(first["field"])
    head = (" ".join(where) + ": " if where else "") + first["message"]
    if "expected" in first:
        head += f" (expected {first['expected']})"
    more = len(errors) - 1
    return head + (f"; and {more} more problem{'s' * (more > 1)}" if more > 0 else "")


def _path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_TYPE_EXPECTATIONS = {
    "string_type": "a string",
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a JSON array",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "datetime_type": "an ISO 8601 timestamp with a zone, e.g. 2026-11-23T09:30:00Z",
    "datetime_parsing": "an ISO 8601 timestamp with a zone, e.g. 2026-11-23T09:30:00Z",
    "datetime_from_date_parsing": "an ISO 8601 timestamp with a zone, e.g. 2026-11-23T09:30:00Z",
    "timezone_aware": "a timestamp with a zone: add Z or an offset such as +02:00",
    "string_too_short": "a non-empty string",
    "none_required": "null",
    "finite_number": "a finite number",
}

# Text no supported database stores: PostgreSQL refuses NUL in text, so it is refused here.
NUL_ESCAPE = b"\\u0000"  # how a NUL can appear in a JSON body (a raw one is malformed JSON)
NUL_MESSAGE = "contains a NUL character (\\u0000), which cannot be stored"
NUL_EXPECTED = "text without NUL characters; remove them"


def _describe_input(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _lead_id(body: Any, list_field: str, index: int) -> Any:
    try:
        value = body[list_field][index]["lead_id"]
    except (KeyError, IndexError, TypeError):
        return None
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None


LEAD_LISTS = ("leads", "outcomes")


def describe_validation_errors(
    raw_errors: Sequence[Mapping[str, Any]], body: Any, list_field: str = "leads"
) -> list[dict]:
    """Turn pydantic/FastAPI errors into problems naming the lead index, field and expectation.
    `list_field`: the body's main field, named in the messages about the body as a whole."""
    errors = []
    for error in raw_errors:
        loc = list(error.get("loc", ()))
        kind = error.get("type", "")
        if loc and loc[0] in ("body", "path", "query"):
            loc = loc[1:]
        if kind == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            position = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
            errors.append(
                problem(
                    f"malformed JSON{position}: {reason}",
                    expected=f'a JSON object such as {{"{list_field}": [...]}}',
                )
            )
            continue
        lead_index = None
        if loc and loc[0] in LEAD_LISTS:
            list_field = loc[0]
        if len(loc) >= 2 and loc[0] in LEAD_LISTS and isinstance(loc[1], int):
            lead_index, field_parts = loc[1], loc[2:]
        else:
            field_parts = loc
        # Drop pydantic's union/function tags (e.g. 'str', 'function-after[...]').
        field_parts = [p for p in field_parts if isinstance(p, int) or not _is_tag(p)]
        field = _path(field_parts) if field_parts else None
        if kind == "missing":
            message, expected = "is required but missing", None
            name = field_parts[-1] if field_parts else "body"
            if not field_parts:
                message = "the request body is empty"
                expected = f'a JSON object such as {{"{list_field}": [...]}}'
            else:
                message = f"{name} is required but missing"
        elif kind == "timezone_aware":
            message = f"timestamp {error.get('input')!r} has no time zone"
            expected = _TYPE_EXPECTATIONS[kind]
        elif kind == "too_long" and field == list_field:
            count = (error.get("ctx") or {}).get("actual_length")
            limit = (error.get("ctx") or {}).get("max_length")
            message = f"too many {list_field}: got {count}, the limit is {limit} per request"
            expected = f"at most {limit} {list_field}; split the batch into several requests"
        elif kind == "too_short" and field == list_field:
            message = f"no {list_field} given"
            expected = f"between 1 and 1000 {list_field}"
        elif kind in ("value_error", "assertion_error"):
            ctx_error = (error.get("ctx") or {}).get("error")
            text = str(ctx_error) if ctx_error is not None else error.get("msg", "")
            message, _, expected = text.partition("; expected ")
            expected = expected or None
        elif kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
            ctx = error.get("ctx") or {}
            bound = next(iter(ctx.values()), None)
            word = {"less_than_equal": "at most", "greater_than_equal": "at least"}.get(
                kind, "below" if kind == "less_than" else "above"
            )
            message = f"got {_describe_input(error.get('input'))}"
            expected = f"{_number_word(error.get('input'))} {word} {_bound(bound)}"
        elif kind == "string_pattern_mismatch":
            message, expected = NUL_MESSAGE, NUL_EXPECTED
            text = error.get("input")
            if isinstance(text, str) and "\x00" not in text and not text.strip():
                message, expected = "is blank", "text with a visible character"
        elif kind == "string_too_long":
            limit = (error.get("ctx") or {}).get("max_length")
            message = f"is longer than {limit} characters"
            expected = f"at most {limit} characters"
        elif kind == "extra_forbidden":
            message, expected = f"unknown field {field_parts[-1]!r}", "only the documented fields"
        else:
            expected = _TYPE_EXPECTATIONS.get(kind)
            if expected is not None:
                message = f"got {_describe_input(error.get('input'))}"
            else:
                message = error.get("msg", "invalid value")
        if field and field.startswith("attributes.") and len(field_parts) == 2:
            expected = "a string, a number, a boolean or null"
        if not field_parts and kind in ("model_attributes_type", "dict_type", "model_type"):
            message = f"the body must be a JSON object, got {_describe_input(error.get('input'))}"
            expected = f'a JSON object such as {{"{list_field}": [...]}}'
        errors.append(
            problem(
                message,
                expected=expected,
                lead_index=lead_index,
                field=field,
                lead_id=_lead_id(body, list_field, lead_index) if lead_index is not None else None,
            )
        )
    return _merge_union_errors(errors)


def _number_word(value: Any) -> str:
    return "a number" if isinstance(value, (int, float)) else "a value"


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def nul_problems(body: Any, known: Any) -> list[dict]:
    """A problem for every string (value or object key) of a parsed JSON body holding a NUL,
    named by lead index and field like the validation problems. Only the parts the service
    keeps are looked at: `known` is the validated body (unknown fields, ignored, are not)."""
    found: list[tuple[list[Any], str | None]] = []

    def walk(value: Any, kept: Any, path: list[Any]) -> None:
        if isinstance(value, str):
            if "\x00" in value:
                found.append((path, None))
        elif isinstance(value, dict) and isinstance(kept, dict):
            for key, item in value.items():
                if key in kept:
                    if "\x00" in key:
                        found.append((path, key))
                    walk(item, kept[key], [*path, key])
        elif isinstance(value, list) and isinstance(kept, list):
            for index, (item, kept_item) in enumerate(zip(value, kept)):
                walk(item, kept_item, [*path, index])

    walk(body, known, [])
    problems = []
    for path, key in found:
        lead_index = None
        if len(path) >= 2 and path[0] in LEAD_LISTS and isinstance(path[1], int):
            lead_index, parts = path[1], path[2:]
        else:
            parts = path
        field = _path(parts) if parts else None
        if key is None:
            message = NUL_MESSAGE if field else f"the body {NUL_MESSAGE}"
        else:
            message = f"the name {key!r} {NUL_MESSAGE}"
        lead_id = _lead_id(body, path[0], lead_index) if lead_index is not None else None
        problems.append(
            problem(message, NUL_EXPECTED, lead_index=lead_index, field=field, lead_id=lead_id)
        )
    return problems


def _merge_union_errors(errors: list[dict]) -> list[dict]:
    """A value matching no member of a union gives one error per member: report it once (and
    without the "or null" of an optional field: the value given was not null)."""
    valued = {(e.get("lead_index"), e.get("field")) for e in errors if e.get("expected") != "null"}
    errors = [
        e
        for e in errors
        if e.get("expected") != "null" or (e.get("lead_index"), e.get("field")) not in valued
    ]
    merged: list[dict] = []
    index: dict[tuple, dict] = {}
    for error in errors:
        key = (error.get("lead_index"), error.get("field"), error["message"])
        if key in index and "expected" in error:
            first = index[key]
            if error["expected"] not in first.get("expected", ""):
                first["expected"] = (
                    f"{first['expected']} or {error['expected']}"
                    if "expected" in first
                    else error["expected"]
                )
            continue
        index[key] = error
        merged.append(error)
    return merged


def _is_tag(part: Any) -> bool:
    text = str(part)
    return (
        "[" in text
        or text in {"str", "int", "float", "bool", "none", "list", "dict"}
        or text.startswith(
            ("function-", "union", "nullable", "lax-", "json-or-python", "constrained-")
        )
    )


def problem_body(status: int, detail: str, errors: list[dict] | None = None) -> dict[str, Any]:
    """RFC 9457 problem details; `detail`, `errors` and `errors_omitted` as before."""
    content: dict[str, Any] = {
        "type": "about:blank",
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if errors:
        content["errors"] = errors[:MAX_LISTED_ERRORS]
        if len(errors) > MAX_LISTED_ERRORS:
            content["errors_omitted"] = len(errors) - MAX_LISTED_ERRORS
    return content


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _answer(
    status: int,
    detail: str,
    errors: list[dict] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    return ProblemResponse(
        problem_body(status, detail, errors), status_code=status, headers=headers
    )


# Handlers take `exc: Exception` (Starlette's signature) and are registered for the type named.
ERROR_DESCRIPTIONS = {
    401: "Missing, unknown or revoked API key",
    403: "The key's role may not do this",
    404: "Not found",
    408: "The body did not arrive within the body timeout (LEADSCORE_BODY_TIMEOUT_SECONDS)",
    409: "Conflict with the current state",
    413: "Body over the size limit (LEADSCORE_MAX_BODY_BYTES)",
    422: "Invalid request: each problem names the lead index, the field and what is expected",
    502: "Upstream failure",
    503: "Cannot take the request now (no model loaded yet, the database unavailable or the "
    "score log full): nothing was stored; retry after Retry-After seconds",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route answering `statuses` with problems (the app's OpenAPI gives
    them the `application/problem+json` Problem schema). `descriptions`: `e409="..."`."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": descriptions.get(f"e{status}", ERROR_DESCRIPTIONS[status])
        }
        if status == 503:
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = entry
    return responses


async def validation_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = describe_validation_errors(list(exc.errors()), getattr(exc, "body", None))
    if not errors:
        errors = [problem("invalid request")]
    return _answer(422, summarise(errors), errors)


async def request_problem_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestProblem)
    return _answer(exc.status, exc.detail, exc.errors)


async def service_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """One of the `ERROR_STATUS` types: its status, and its message as the detail."""
    status = next(ERROR_STATUS[cls] for cls in type(exc).__mro__ if cls in ERROR_STATUS)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return _answer(status, str(exc), headers=headers)


# Errors that mean the database cannot be reached or cannot take the request now (a connection
# refused or lost, the pool exhausted, SQLite locked): a write route answers 503 with Retry-After.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)
DATABASE_UNAVAILABLE_DETAIL = (
    "the database is unavailable: nothing was stored from this request; send it again after "
    "the Retry-After seconds"
)


async def database_error_handler(request: Request, exc: Exception) -> ProblemResponse:
    """One log line (no statement, no parameters) and a 503 the client can retry."""
    log.error("database unavailable on %s %s: %s", request.method, request.url.path,
              describe_database_error(exc))  # fmt: skip
    return _answer(
        503, DATABASE_UNAVAILABLE_DETAIL, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def http_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such endpoint: {request.method} {request.url.path}; see /docs"
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route on the path only.
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        if detail == "Method Not Allowed":
            detail = (
                f"{request.method} is not allowed on {request.url.path} "
                f"(allowed: {', '.join(allowed)}); see /docs"
            )
    return _answer(exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    methods = set()
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)


async def unhandled_exception_handler(request: Request, exc: Exception) -> ProblemResponse:
    # Logged with the path only: headers (and so API keys) never reach the logs.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _answer(500, "internal error while handling the request; it has been logged")
