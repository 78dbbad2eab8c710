"""JSON responses rendered with orjson (numpy scalars and arrays included)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class OrjsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=_OPTIONS)
        except TypeError:  # e.g. an integer beyond 64 bits echoed from a request
            return json.dumps(content, default=str).encode()
