"""The model being served, and the admin reload that swaps in the current champion."""

from __future__ import annotations

import gc

from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from serving.deps import AdminKey, ReaderKey
from serving.model_store import ModelLoadError
from serving.schemas import ModelInfo, ReloadResult

router = APIRouter(prefix="/v1", tags=["model"])


def model_not_loaded(store) -> HTTPException:
    reason = store.last_error or "it is still loading"
    return HTTPException(503, f"no model loaded yet: {reason}", headers={"Retry-After": "5"})


@router.get(
    "/model", response_model=ModelInfo, summary="Name, version, metrics and features of the model"
)
async def get_model(_: ReaderKey, request: Request) -> dict:
    store = request.app.state.model_store
    loaded = store.current
    if loaded is None:
        raise model_not_loaded(store)
    meta = loaded.metadata
    features = meta.get("features") or []
    return {
        "name": loaded.name,
        "version": loaded.version,
        "alias": loaded.alias,
        "uri": loaded.uri,
        "loaded_at": loaded.loaded_at,
        "trained_at": None if meta.get("trained_at") is None else str(meta["trained_at"]),
        "metrics": meta.get("metrics") or {},
        "features": [str(f) for f in features],
        "holdout_weeks": meta.get("holdout_weeks"),
    }


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    summary="Load the model at the configured URI (e.g. a new champion) and swap it in",
    responses={502: {"description": "The load failed; the previous model keeps serving."}},
)
async def reload_model(_: AdminKey, request: Request) -> dict:
    store = request.app.state.model_store
    previous = store.current
    try:
        loaded = await run_in_threadpool(store.load, "reload")
    except ModelLoadError as error:
        still = f"version {previous.version} keeps serving" if previous else "no model is loaded"
        raise HTTPException(502, f"reload failed, {still}: {error}") from None
    gc.freeze()  # as at start: keep the new model out of full collections
    return {
        "name": loaded.name,
        "version": loaded.version,
        "previous_version": previous.version if previous else None,
        "changed": previous is None or previous.version != loaded.version,
    }
