"""API key administration over HTTP (admin only); the CLI `leadscore keys` does the same."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from serving import auth
from serving.bodies import documented_body, json_body
from serving.deps import AdminKey, EngineDep, KeyCacheDep
from serving.errors import error_responses
from serving.schemas import TEXT_PATTERN, CreatedKey, KeyInfo, NewKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _info(record: auth.KeyRecord) -> dict:
    return {
        "name": record.name,
        "role": record.role,
        "key_prefix": record.key_prefix,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


NewKeyBody = Annotated[NewKey, Depends(json_body(NewKey, "name"))]
KeyName = Annotated[
    str,
    Path(
        min_length=1,
        max_length=100,
        pattern=TEXT_PATTERN,
        description="The key's name (not the key).",
    ),
]


@router.get(
    "",
    response_model=list[KeyInfo],
    summary="List API keys (never the keys themselves)",
    responses=error_responses(401, 403),
)
async def list_keys(_: AdminKey, engine: EngineDep) -> list[dict]:
    return [_info(r) for r in await run_in_threadpool(auth.list_keys, engine)]


@router.post(
    "",
    response_model=CreatedKey,
    status_code=201,
    summary="Create an API key; the key is shown only in this answer",
    openapi_extra=documented_body(NewKey),
    responses=error_responses(401, 403, 408, 409, 413, 422, 503),
)
async def create_key(_: AdminKey, body: NewKeyBody, engine: EngineDep, keys: KeyCacheDep) -> dict:
    # A taken name is auth.KeyExists: 409 (serving.errors.ERROR_STATUS).
    key = await run_in_threadpool(auth.create_key, engine, body.name, body.role)
    await run_in_threadpool(keys.refresh)
    return {"name": body.name.strip(), "role": body.role, "key": key}


@router.delete(
    "/{name}",
    response_model=KeyInfo,
    summary="Revoke an API key (applies within ~1 s)",
    responses=error_responses(401, 403, 404, 422, 503),
)
async def revoke_key(_: AdminKey, name: KeyName, engine: EngineDep, keys: KeyCacheDep) -> dict:
    # An unknown name is auth.KeyNotFound: 404.
    record = await run_in_threadpool(auth.revoke_key, engine, name)
    await run_in_threadpool(keys.refresh)
    return _info(record)
