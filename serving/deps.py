"""Dependencies that routes declare in their signatures: who is calling, and the shared services.

`ScorerKey`, `OpsKey`, `AdminKey` and `ReaderKey` authenticate the request and check its role;
`admin` may do everything, `ops` may also read (GET /v1/model). 401 for a missing or unknown key,
403 for a known key with the wrong role. The key itself is never logged or echoed.

The services (`Services`) are started and stopped by the app's lifespan (`serving.app`), which
puts them on `app.state.services`. The functions below are the only readers of `app.state`:
routes name what they use (`ModelDep`, `PolicyDep`, `ScoreLogDep`, ...) in their signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.engine import Engine

from serving.auth import ApiKey, KeyCache
from serving.batcher import ScoringBatcher
from serving.capture.store import Capture
from serving.config import Settings
from serving.model_store import LoadedModel, ModelStore
from serving.policy.store import PolicyCache, PolicyVersion
from serving.score_log import ScoreLogWriter


@dataclass(frozen=True)
class Services:
    """What one worker runs while it serves, from start-up to shutdown."""

    settings: Settings
    engine: Engine
    keys: KeyCache
    models: ModelStore
    policies: PolicyCache
    score_log: ScoreLogWriter
    batcher: ScoringBatcher
    capture: Capture


def services(request: Request) -> Services:
    return request.app.state.services


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


def _check_key(request: Request, key: str | None, allowed: frozenset[str], needed: str) -> ApiKey:
    """The checks every keyed route makes: 401 without a key or with an unknown one, 403 for
    a role not in `allowed`."""
    if not key:
        raise HTTPException(401, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
    api_key = services(request).keys.lookup(key)
    if api_key is None:
        raise HTTPException(401, WRONG_KEY, headers={"WWW-Authenticate": "Bearer"})
    if api_key.role not in allowed:
        raise HTTPException(
            403, f"the key {api_key.name!r} has role {api_key.role}; this needs role {needed}"
        )
    return api_key


def _allowed(roles: tuple[str, ...]) -> tuple[frozenset[str], str]:
    allowed = frozenset(roles) | {"admin"}
    return allowed, " or ".join(sorted(allowed))


def require_role(*roles: str):
    """A dependency that lets through keys with one of `roles` (and always `admin`)."""
    allowed, needed = _allowed(roles)

    async def authenticate(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
        header_key: Annotated[str | None, Security(_header)],
    ) -> ApiKey:
        key = bearer.credentials if bearer is not None else header_key
        return _check_key(request, key, allowed, needed)

    return authenticate


def key_checker(*roles: str) -> Callable[[Request], ApiKey]:
    """`require_role` as a plain function of the request, for the one route that does not let
    FastAPI resolve dependencies (POST /v1/score: their resolution was ~10% of a one-lead
    request). The key is read from the same headers as `_bearer` and `_header` read it; the
    route declares `KEY_SECURITY` so its documentation is the same."""
    allowed, needed = _allowed(roles)

    def check(request: Request) -> ApiKey:
        key: str | None = None
        authorization = request.headers.get("authorization")
        if authorization:
            scheme, credentials = get_authorization_scheme_param(authorization)
            if scheme.lower() == "bearer" and credentials:
                key = credentials
        if key is None:
            key = request.headers.get("x-api-key")
        return _check_key(request, key, allowed, needed)

    return check


# The OpenAPI security requirement of a route authenticated by `require_role` (either scheme).
KEY_SECURITY: list[dict[str, list[str]]] = [{_bearer.scheme_name: []}, {_header.scheme_name: []}]


async def _optional_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
) -> ApiKey | None:
    """The caller's key when it sent a valid one, else None (open routes that show more to an
    admin: /readyz)."""
    key = bearer.credentials if bearer is not None else header_key
    return services(request).keys.lookup(key) if key else None


ScorerKey = Annotated[ApiKey, Depends(require_role("scorer"))]
OpsKey = Annotated[ApiKey, Depends(require_role("ops"))]
AdminKey = Annotated[ApiKey, Depends(require_role("admin"))]
ReaderKey = Annotated[ApiKey, Depends(require_role("scorer", "ops"))]
OptionalKey = Annotated[ApiKey | None, Depends(_optional_key)]


# async: FastAPI would run plain functions in the thread pool, a hop per dependency per request.
async def _settings(request: Request) -> Settings:
    return services(request).settings


async def _engine(request: Request) -> Engine:
    return services(request).engine


async def _key_cache(request: Request) -> KeyCache:
    return services(request).keys


async def _model_store(request: Request) -> ModelStore:
    return services(request).models


async def _model(request: Request) -> LoadedModel:
    """The model serving now (one reference for the whole request: a reload never mixes two);
    `ModelNotLoaded` (503) while there is none."""
    return services(request).models.require()


async def _policy_cache(request: Request) -> PolicyCache:
    return services(request).policies


async def _policy(request: Request) -> PolicyVersion:
    return services(request).policies.current()


async def _score_log(request: Request) -> ScoreLogWriter:
    return services(request).score_log


async def _batcher(request: Request) -> ScoringBatcher:
    return services(request).batcher


async def _capture(request: Request) -> Capture:
    return services(request).capture


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
KeyCacheDep = Annotated[KeyCache, Depends(_key_cache)]
ModelStoreDep = Annotated[ModelStore, Depends(_model_store)]
ModelDep = Annotated[LoadedModel, Depends(_model)]
PolicyCacheDep = Annotated[PolicyCache, Depends(_policy_cache)]
PolicyDep = Annotated[PolicyVersion, Depends(_policy)]
ScoreLogDep = Annotated[ScoreLogWriter, Depends(_score_log)]
BatcherDep = Annotated[ScoringBatcher, Depends(_batcher)]
CaptureDep = Annotated[Capture, Depends(_capture)]


@dataclass(frozen=True)
class Scoring:
    """What `POST /v1/score` uses, as one dependency: the model serving now and the policy in
    force (one reference each for the whole request), the batcher, the score log, the capture
    and the engine (the trend's previous scores), read by the route with `scoring_of`."""

    model: LoadedModel
    policy: PolicyVersion
    batcher: ScoringBatcher
    score_log: ScoreLogWriter
    capture: Capture
    engine: Engine


def scoring_of(request: Request) -> Scoring:
    """`ModelNotLoaded` (503) while there is no model."""
    running = services(request)
    return Scoring(
        running.models.require(),
        running.policies.current(),
        running.batcher,
        running.score_log,
        running.capture,
        running.engine,
    )
