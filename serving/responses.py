"""JSON responses rendered with orjson (numpy scalars and arrays included)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

PROBLEM_MEDIA_TYPE = "application/problem+json"


class OrjsonResponse(JSONResponse):
    # A JSONResponse subclass: FastAPI documents a route's `response_model` only for those (for
    # any other response class the OpenAPI said the body was a "string").
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=_OPTIONS)
        except TypeError:  # e.g. an integer beyond 64 bits echoed from a request
            return json.dumps(content, default=str).encode()


class ProblemResponse(OrjsonResponse):
    """An error answer: RFC 9457 problem details (`serving.errors`)."""

    media_type = PROBLEM_MEDIA_TYPE
