"""Dependencies that routes declare in their signatures: who is calling, and the shared services.

`ScorerKey`, `OpsKey`, `AdminKey` and `ReaderKey` authenticate the request and check its role;
`admin` may do everything, `ops` may also read (GET /v1/model). 401 for a missing or unknown key,
403 for a known key with the wrong role. The key itself is never logged or echoed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from serving.auth import ApiKey
from serving.config import Settings

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerKey",
    description="API key as `Authorization: Bearer <key>`",
)
_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="HeaderKey",
    description="API key as `X-API-Key`",
)

MISSING_KEY = (
    "missing API key: send it as `Authorization: Bearer <key>` or `X-API-Key: <key>` "
    "(create one with `leadscore keys create NAME --role scorer`)"
)
WRONG_KEY = "invalid or revoked API key: check the key, or ask an admin for a new one"


def require_role(*roles: str):
    """A dependency that lets through keys with one of `roles` (and always `admin`)."""
    allowed = frozenset(roles) | {"admin"}
    needed = " or ".join(sorted(allowed))

    async def authenticate(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_header)],
    ) -> ApiKey:
        key = bearer.credentials if bearer is not None else header_key
        if not key:
            raise HTTPException(401, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
        api_key = request.app.state.keys.lookup(key)
        if api_key is None:
            raise HTTPException(401, WRONG_KEY, headers={"WWW-Authenticate": "Bearer"})
        if api_key.role not in allowed:
            raise HTTPException(
                403, f"the key {api_key.name!r} has role {api_key.role}; this needs role {needed}"
            )
        request.state.api_key = api_key
        return api_key

    return authenticate


ScorerKey = Annotated[ApiKey, Depends(require_role("scorer"))]
OpsKey = Annotated[ApiKey, Depends(require_role("ops"))]
AdminKey = Annotated[ApiKey, Depends(require_role("admin"))]
ReaderKey = Annotated[ApiKey, Depends(require_role("scorer", "ops"))]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _engine(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
