"""The model being served, and the admin reload that swaps in the current champion."""

from __future__ import annotations

import gc
from datetime import datetime

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from serving.capture.store import outcomes_since
from serving.deps import AdminKey, EngineDep, ModelDep, ModelStoreDep, ReaderKey
from serving.errors import error_responses
from serving.model_store import ModelLoadError
from serving.schemas import ModelInfo, ReloadResult

router = APIRouter(prefix="/v1", tags=["model"])


@router.get(
    "/model",
    response_model=ModelInfo,
    summary="Name, version, metrics and features of the model",
    responses=error_responses(401, 403, 503),
)
async def get_model(_: ReaderKey, loaded: ModelDep, engine: EngineDep) -> dict:
    meta = loaded.metadata
    features = meta.get("features") or []
    data_end = meta.get("training_data_end")
    since = None
    if data_end is not None:
        since = await run_in_threadpool(outcomes_since, engine, datetime.fromisoformat(data_end))
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
        "training_data_end": data_end,
        "outcomes_since_training": since,
        **value_and_timing(loaded.scorer),
    }


def value_and_timing(scorer: object) -> dict:
    """What GET /v1/model says of the fit and engagement, deal value and time-to-close models
    (None: not trained)."""
    value, timing = getattr(scorer, "value", None), getattr(scorer, "timing", None)
    subscores = getattr(scorer, "subscores", None)
    confidence = getattr(scorer, "confidence", None)
    segments = getattr(scorer, "segments", None)
    return {
        "segments": None
        if segments is None
        else {"column": segments.column, "segments": segments.labels, "metrics": segments.metrics},
        "confidence": None
        if confidence is None
        else {
            "low_below": confidence.low_below,
            "high_from": confidence.high_from,
            "axes": confidence.axes,
            "metrics": confidence.metrics,
        },
        "fit_engagement": None
        if subscores is None
        else {
            "fit_bands": subscores.fit_bands.tolist(),
            "engagement_bands": subscores.engagement_bands.tolist(),
            "metrics": subscores.metrics,
        },
        "deal_value": None
        if value is None
        else {"interval_level": value.level, "metrics": value.metrics},
        "time_to_close": None
        if timing is None
        else {
            "horizons_days": timing.horizons,
            "periods_days": timing.edges,
            "metrics": timing.metrics,
        },  # fmt: skip
    }


@router.post(
    "/admin/reload",
    response_model=ReloadResult,
    summary="Load the model at the configured URI (e.g. a new champion) and swap it in",
    responses=error_responses(
        401, 403, 502, e502="The load failed; the previous model keeps serving."
    ),
)
async def reload_model(_: AdminKey, models: ModelStoreDep) -> dict:
    previous = models.current
    try:
        loaded = await run_in_threadpool(models.load, "reload")
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
