"""The ceiling of `bench/serve.py`: a bare FastAPI app on the same server stack as `leadscore serve`.

    .venv/bin/python bench/bare_app.py --port 8100 [--workers 2]

`POST /v1/score` reads the body, parses it with orjson (the same one-lead or 1,000-lead body
leadscore gets) and answers a fixed small JSON with the number of leads; no auth, validation,
model or database. uvicorn runs it as `leadscore serve` runs the service: the same number of
workers, uvloop, httptools, no access log. What `leadscore serve` does beyond this is the cost of
scoring a lead; what this does is the cost of HTTP, JSON and the framework on this machine.
"""

from __future__ import annotations

import argparse

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/v1/score")
async def score(request: Request) -> Response:
    body = orjson.loads(await request.body())
    answer = {"model": {"name": "bare", "version": "0"}, "scored": len(body["leads"])}
    return Response(orjson.dumps(answer), media_type="application/json")


@app.get("/readyz")
async def ready() -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(
        "bench.bare_app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
