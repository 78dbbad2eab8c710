"""How close to the ceiling `leadscore serve` could ever get: issue 18's targets against a floor.

    .venv/bin/python bench/serve_floor.py --tracking-uri sqlite:///mlflow.db \
        [--model-uri models:/lead-scoring@champion] [--duration 10] [--repeat 200]

`bench/serve.py` measures the service beside the ceiling (a bare FastAPI app that parses the same
body and answers a fixed JSON). This asks what part of the gap no server layout can close: the
work an answer needs beyond what the ceiling does, each part measured alone at the best case, so
the sum is a lower bound.

- The ceiling's CPU per request: the bare app (`bench/bare_app.py`, 2 workers) under wrk at 16
  connections; CPU seconds of its processes over the requests answered.
- Per one-lead request (the 16-connection target): validating the body beyond parsing it
  (`read_body` + `read_for_model` less `orjson.loads` of the same bytes), the model's work per
  lead with 8 leads a call (`serving.batcher.score_leads`: features, probability, reasons,
  policy, and the model's value, timing, fit/engagement and confidence parts; 16 connections over
  2 workers never give a worker more than 8 requests to batch), and rendering the answer.
- Per 1,000-lead request: the same parts for 1,000 leads at once, and parsing alone.

Left out, so the floor is lower than any real server's: HTTP and the framework (the ceiling pays
them too), the key, the trend's read, the score log's and the capture's writes, the metrics.
The best share of the ceiling's requests/s is an upper bound: both cores spent on the server
alone (wrk's own CPU, which the ceiling's run shared, counted as nothing).

Prints the machine, the command, the load average, the figures and, per target, whether the floor
already rules it out. Medians of `--repeat` calls, in this process, one thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from bench.serve import (  # noqa: E402
    BIG_BATCH,
    KEY,
    build_leads,
    cpu_seconds,
    free_port,
    leadscore_body,
    run_wrk,
    start_server,
    wait_ready,
)

CONNECTIONS = 16
WORKERS = 2
BATCH = CONNECTIONS // WORKERS  # the most one-lead requests a worker can have to score at once


def median_ms(function: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of `function()` over `repeat` calls (after two warm-ups)."""
    function()
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def ceiling_cpu(duration: int, bodies: Path, work: Path) -> tuple[float, float]:
    """(CPU ms per request, requests/s) of the bare app at 16 connections."""
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", str(port),
               "--workers", str(WORKERS)]  # fmt: skip
    process = start_server(command, {**os.environ, "PYTHONPATH": str(ROOT)}, work)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", process)
        url = f"http://127.0.0.1:{port}/v1/score"
        headers = {"Content-Type": "application/json"}
        run_wrk(url, bodies, headers, CONNECTIONS, 2)  # warm-up
        before = cpu_seconds(process.pid)
        result = run_wrk(url, bodies, headers, CONNECTIONS, duration)
        used = cpu_seconds(process.pid) - before
    finally:
        import signal

        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    return 1000 * used / result["requests"], result["rps"]


async def floor_parts(args: argparse.Namespace, leads: list[dict]) -> dict[str, float]:
    """Milliseconds of each part of the floor (see the module docstring)."""
    from serving.app import create_app
    from serving.batcher import score_leads
    from serving.config import Settings
    from serving.db import utcnow
    from serving.leads import read_body, read_for_model
    from serving.responses import OrjsonResponse

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            mlflow_tracking_uri=args.tracking_uri,
            model_uri=args.model_uri,
            api_keys_bootstrap=f"bench:scorer:{KEY}",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            services = app.state.services
            deadline = time.monotonic() + 300
            while not services.models.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            loaded = services.models.require()
            policy = services.policies.current().policy
            now = utcnow()

            def parsed(body: bytes):
                leads_read = read_body(body)
                read_for_model(leads_read, loaded, False)
                for lead in leads_read.leads:
                    lead["as_of"] = lead["as_of"] or now
                return leads_read

            def answer(results: list[dict]) -> None:
                OrjsonResponse({"request_id": "r", "scored_at": now,
                                "model": {"name": loaded.name, "version": loaded.version},
                                "policy_version": 0, "results": results, "rejected": 0,
                                "warnings": []})  # fmt: skip

            ones = [leadscore_body([lead]) for lead in leads[:200]]
            turn = {"i": 0}

            def next_one() -> bytes:
                turn["i"] = (turn["i"] + 1) % len(ones)
                return ones[turn["i"]]

            out["one: parsing (orjson)"] = median_ms(lambda: orjson.loads(next_one()), args.repeat)
            out["one: validation"] = median_ms(lambda: parsed(next_one()), args.repeat)
            batches = [[parsed(ones[i + j]) for j in range(BATCH)]
                       for i in range(0, len(ones) - BATCH + 1, BATCH)]  # fmt: skip

            def batch_call(k: int) -> list[dict]:
                group = batches[k % len(batches)]
                together = [lead for p in group for lead in p.leads]
                moments = np.concatenate([p.moments for p in group])
                return score_leads(loaded, together, policy, moments)

            counter = {"k": 0}

            def one_batch() -> None:
                counter["k"] += 1
                batch_call(counter["k"])

            out[f"one: the model's work, {BATCH} leads a call"] = (
                median_ms(one_batch, args.repeat) / BATCH
            )
            single = batch_call(0)[:1]
            out["one: rendering the answer"] = median_ms(lambda: answer(single), args.repeat)

            big = leadscore_body(leads[:BIG_BATCH])
            few = max(5, args.repeat // 20)
            out["1000: parsing (orjson)"] = median_ms(lambda: orjson.loads(big), few)
            out["1000: validation"] = median_ms(lambda: parsed(big), few)
            big_read = parsed(big)
            scored = score_leads(loaded, big_read.leads, policy, big_read.moments)
            out["1000: the model's work"] = median_ms(
                lambda: score_leads(loaded, big_read.leads, policy, big_read.moments), few
            )
            out["1000: rendering the answer"] = median_ms(lambda: answer(scored), few)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument("--model-uri", default="models:/lead-scoring@champion")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"machine: {describe_machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"model: {args.model_uri}")

    leads = build_leads(max(200, BIG_BATCH))
    parts = asyncio.run(floor_parts(args, leads))
    with tempfile.TemporaryDirectory() as tmp:
        bodies = Path(tmp) / "one-lead.jsonl"
        bodies.write_text("\n".join(leadscore_body([lead]).decode() for lead in leads[:200]))
        bare_ms, bare_rps = ceiling_cpu(args.duration, bodies, Path(tmp))

    one_floor = (
        parts["one: validation"] - parts["one: parsing (orjson)"]
        + parts[f"one: the model's work, {BATCH} leads a call"]
        + parts["one: rendering the answer"]
    )  # fmt: skip
    # both cores on the server alone, each request at least the ceiling's CPU plus the floor
    best_rps = WORKERS * 1000 / (bare_ms + one_floor)
    best_share = best_rps / bare_rps
    big_floor = (
        parts["1000: validation"] - parts["1000: parsing (orjson)"]
        + parts["1000: the model's work"] + parts["1000: rendering the answer"]
    )  # fmt: skip
    big_whole = parts["1000: parsing (orjson)"] + big_floor

    print()
    print("| part (medians, ms) | ms |")
    print("|---|---|")
    print(f"| ceiling: bare app CPU per request at {CONNECTIONS} connections "
          f"({bare_rps:,.0f} requests/s) | {bare_ms:.3f} |")  # fmt: skip
    for name, value in parts.items():
        print(f"| {name} | {value:.3f} |")
    print(f"| one: floor beyond the ceiling (validation beyond parsing + model + answer) | "
          f"{one_floor:.3f} |")  # fmt: skip
    print(f"| 1000: floor beyond the ceiling (validation beyond parsing + model + answer) | "
          f"{big_floor:.3f} |")  # fmt: skip
    print()
    print("| target (issue 18) | best the floor allows | verdict |")
    print("|---|---|---|")
    rows = [
        (f"{CONNECTIONS} conn: requests/s >= 50% of the bare app's",
         f"{best_share:.0%} ({best_rps:,.0f} requests/s)", best_share >= 0.5),
        ("1000 leads: <= 25 ms above the bare app", f"+{big_floor:.1f} ms", big_floor <= 25),
        ("1000 leads: median <= 100 ms", f"{big_whole:.1f} ms (+ HTTP)", big_whole <= 100),
    ]  # fmt: skip
    for target, best, possible in rows:
        verdict = "not ruled out by the floor" if possible else "RULED OUT by the floor"
        print(f"| {target} | {best} | {verdict} |")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
