"""The /ops page for marketing ops, its scripts, and the monitoring numbers it shows.

The page itself is public (it holds no data); it asks for an API key, keeps it in the browser's
session storage only, and calls the policy API with it. plotly.js comes from the installed
`plotly` Python package (never a CDN, never a copy in this repository).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, HTMLResponse

from serving.deps import EngineDep, ModelStoreDep, PolicyDep, ReaderKey
from serving.errors import error_responses
from serving.policy.simulation import (
    BasisUnavailable,
    holdout_basis,
    holdout_by_grade,
    monitoring,
    read_outcomes_with_grades,
    read_recent_scores,
)
from serving.responses import OrjsonResponse
from serving.schemas import Monitoring

router = APIRouter(tags=["ops"])

HERE = Path(__file__).resolve().parent.parent
TEMPLATE = HERE / "templates" / "ops.html"
STATIC = HERE / "static"
CACHE = {"Cache-Control": "public, max-age=86400"}


@lru_cache(maxsize=1)
def plotly_js_path() -> Path:
    """plotly.min.js bundled inside the installed `plotly` package."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: reinstall the `plotly` package (pip install -r requirements.lock)"
        )
    return path


@router.get("/ops", include_in_schema=False, response_class=HTMLResponse)
async def ops_page() -> HTMLResponse:
    return HTMLResponse(TEMPLATE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.get("/ops/static/plotly.min.js", include_in_schema=False)
async def plotly_js() -> FileResponse:
    try:
        path = plotly_js_path()
    except FileNotFoundError as error:
        raise HTTPException(503, str(error)) from None
    return FileResponse(path, media_type="text/javascript", headers=CACHE)


@lru_cache(maxsize=1)
def static_files() -> frozenset[str]:
    """The files of serving/static: the only names /ops/static serves."""
    return frozenset(path.name for path in STATIC.iterdir() if path.is_file())


@router.get("/ops/static/{name}", include_in_schema=False)
async def ops_static(name: str) -> FileResponse:
    # A lookup, not a path: '..', '/' and NUL ('ops.js%00.css' was a 500) name no file.
    if name not in static_files():
        raise HTTPException(404, f"no such file: /ops/static/{name!r}")
    path = STATIC / name
    media = (
        "text/javascript" if name.endswith(".js") else "text/css" if name.endswith(".css") else None
    )
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})


@router.get(
    "/v1/ops/monitoring",
    response_model=Monitoring,
    summary="Recent score distribution against the holdout (PSI), win rate by grade, and what "
    "each grade holds on the holdout (value, time to close)",
    responses=error_responses(401, 403, 422),
)
async def ops_monitoring(
    _key: ReaderKey,
    models: ModelStoreDep,
    engine: EngineDep,
    in_force: PolicyDep,
    days: Annotated[
        float, Query(gt=0, le=3650, description="How far back to look at scores.")
    ] = 28,
) -> OrjsonResponse:
    def run() -> dict:
        try:
            holdout = holdout_basis(models.current)
        except BasisUnavailable:
            holdout = None
        result = monitoring(
            holdout, read_recent_scores(engine, days), read_outcomes_with_grades(engine), days
        )
        result["holdout_by_grade"] = holdout_by_grade(models.current, in_force.policy)
        result["currency"] = in_force.policy.currency
        return result

    return OrjsonResponse(await run_in_threadpool(run))
