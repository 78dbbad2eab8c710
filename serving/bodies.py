"""Request bodies, read only after the key is checked: JSON -> pydantic model, or a 422 naming
each field.

A route declares its body as a dependency listed after its key (`json_body(Model)`), so a
request without a valid key is answered 401/403 before a byte of its body is read (a FastAPI body
parameter is read and parsed before any dependency runs). The body is validated straight from
bytes, and text that no supported database stores (NUL characters) is refused here, at the
boundary, for every field, object key and route alike. `BODY_MODELS` lists the models, so the
app's OpenAPI can document them (`documented_body` gives a route's `openapi_extra`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from serving.errors import (
    NUL_ESCAPE,
    RequestProblem,
    describe_validation_errors,
    nul_problems,
    summarise,
)

M = TypeVar("M", bound=BaseModel)

BODY_MODELS: dict[str, type[BaseModel]] = {}


def loads_or_none(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def refuse_nul(raw: bytes, validated: Any) -> None:
    """422 naming every string of the validated body (its fields, not the unknown ones it
    ignores) that holds a NUL; a cheap byte search first."""
    if NUL_ESCAPE not in raw:
        return
    problems = nul_problems(loads_or_none(raw), validated)
    if problems:
        raise RequestProblem(422, summarise(problems), problems)


def parse_body(model: type[M], raw: bytes, list_field: str = "leads") -> M:
    """`raw` validated as `model`, or a RequestProblem (422) listing each problem.

    Strict: JSON types as documented (no "12" for a number, no "true" or 1.0 for a boolean or
    an integer), so the OpenAPI schema says exactly what is accepted."""
    try:
        value = model.model_validate_json(raw, strict=True)
    except ValidationError as error:
        parsed = loads_or_none(raw)
        errors = describe_validation_errors(error.errors(), parsed, list_field)
        raise RequestProblem(422, summarise(errors), errors) from None
    refuse_nul(raw, value.model_dump())
    return value


def json_body(
    model: type[M], list_field: str = "leads"
) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A dependency reading the body as `model`; list it after the route's key."""
    BODY_MODELS[model.__name__] = model

    async def read_body(request: Request) -> M:
        return parse_body(model, await request.body(), list_field)

    return read_body


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route whose body `json_body` reads: the body the OpenAPI shows."""
    BODY_MODELS[model.__name__] = model
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }
