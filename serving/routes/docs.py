"""/docs (Swagger UI) and /redoc (ReDoc), served from files of an installed package.

The JavaScript and CSS come from the `fastapi-offline` package (a dependency, pinned in the lock
files), never a CDN: the pages work on a network without internet and the Content-Security-Policy
(serving.metrics) allows scripts from this origin only. The pages have no inline script: Swagger
UI's start-up call is the small script served at /docs/static/swagger-init.js.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, HTTPException
from starlette.responses import FileResponse, HTMLResponse, Response

router = APIRouter(include_in_schema=False)

# What /docs/static serves, and as what (the package ships nothing else we use).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
CACHE = {"Cache-Control": "public, max-age=86400"}

SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>leadscore API - Swagger UI</title>
<link rel="icon" type="image/png" href="/docs/static/favicon.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-init.js"></script>
</body>
</html>
"""

SWAGGER_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>leadscore API - ReDoc</title>
<link rel="icon" type="image/png" href="/docs/static/favicon.png">
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/docs/static/redoc.standalone.js"></script>
</body>
</html>
"""


@lru_cache(maxsize=1)
def assets_dir() -> Path:
    """The static folder of the installed `fastapi_offline` package."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the fastapi-offline package is missing: reinstall (pip install -r requirements.lock)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@router.get("/docs")
async def swagger_page() -> HTMLResponse:
    return HTMLResponse(SWAGGER_PAGE, headers={"Cache-Control": "no-cache"})


@router.get("/redoc")
async def redoc_page() -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE, headers={"Cache-Control": "no-cache"})


@router.get("/docs/static/swagger-init.js")
async def swagger_init() -> Response:
    return Response(
        SWAGGER_INIT, media_type="text/javascript", headers={"Cache-Control": "no-cache"}
    )


@router.get("/docs/static/{name}")
async def docs_asset(name: str) -> FileResponse:
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(404, f"no such file: /docs/static/{name!r}")
    try:
        path = assets_dir() / name
    except FileNotFoundError as error:
        raise HTTPException(503, str(error)) from None
    if not path.is_file():
        raise HTTPException(503, f"{path} is missing: reinstall the fastapi-offline package")
    return FileResponse(path, media_type=media, headers=CACHE)
