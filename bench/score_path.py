"""Where the time of one POST /v1/score goes, stage by stage, in-process (no network).

    .venv/bin/python bench/score_path.py --tracking-uri sqlite:///mlflow.db \
        [--model-uri models:/lead-scoring@champion] [--leads 1 1000] [--repeat 200]

Each stage is the function the route calls, timed alone (median wall time over `--repeat` calls,
with the score log holding earlier scores of the same leads, as under load): reading the key,
validating the body, reading names with the model's vocabulary, the features, the model (with
the occlusion effects behind the reasons), the reasons in words, the policy and the answer's
rows, the trend's previous-score lookup, handing the rows to the score log and the inputs to the
capture, the metrics and rendering the answer. Then the whole request through the app (ASGI,
the same body, middleware and dependencies included): what it costs beyond the stages' sum is
the framework's. The leads are `bench/serve.py`'s (one lead with 20 touchpoints, rotated through
200; 1,000 at once).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402

KEY = "ls_bench-scorer-key-0123456789abcdef"


def timed(function: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of `function()` over `repeat` calls (after two warm-ups)."""
    function()
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def asgi_post(app: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """One POST /v1/score through the app: its status."""
    status = 0
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/score", "raw_path": b"/v1/score", "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("t", 80),
        "state": {},
    }  # fmt: skip
    await app(scope, receive, send)
    return status


def stages(services: Any, bodies: list[bytes], repeat: int) -> dict[str, float]:
    """Milliseconds per stage for these bodies (rotated), each stage alone."""
    from serving import metrics
    from serving.batcher import score_leads
    from serving.db import utcnow
    from serving.leads import read_body, read_for_model
    from serving.responses import OrjsonResponse
    from serving.score_log import ScoreRows
    from serving.trend import SqliteHistory, add_trend, latest_scores, sqlite_history

    loaded = services.models.require()
    scorer = loaded.scorer
    in_force = services.policies.current()
    turn = {"i": 0}

    def parsed_leads():
        turn["i"] = (turn["i"] + 1) % len(bodies)
        parsed = read_body(bodies[turn["i"]])
        read_for_model(parsed, loaded, False)
        return parsed

    ready = [parsed_leads() for _ in range(len(bodies))]
    now = utcnow()
    for parsed in ready:
        for lead in parsed.leads:
            if lead["as_of"] is None:
                lead["as_of"] = now

    def one(function: Callable[[Any], Any]) -> float:
        def call():
            turn["i"] = (turn["i"] + 1) % len(ready)
            function(ready[turn["i"]])

        return timed(call, repeat)

    out: dict[str, float] = {}
    out["auth (key lookup)"] = timed(lambda: services.keys.lookup(KEY), repeat)

    def validate():
        turn["i"] = (turn["i"] + 1) % len(bodies)
        read_body(bodies[turn["i"]])

    out["validation (body -> leads)"] = timed(validate, repeat)
    out["names (model vocabulary)"] = (
        timed(parsed_leads, repeat) - out["validation (body -> leads)"]
    )
    features = scorer.featurizer.transform_records
    out["features"] = one(lambda p: features(p.leads, return_touchpoints=True,
                                             touch_moments=p.moments))  # fmt: skip
    matrices = [features(p.leads, touch_moments=p.moments) for p in ready]
    k = {"i": 0}

    def each_matrix(function):
        def call():
            k["i"] = (k["i"] + 1) % len(matrices)
            function(matrices[k["i"]])

        return timed(call, repeat)

    out["model (probabilities + occlusion)"] = each_matrix(scorer._effects)
    effects = [scorer._effects(X)[1] for X in matrices]
    writer = scorer._reason_writer()

    def reasons():
        k["i"] = (k["i"] + 1) % len(matrices)
        writer.write(matrices[k["i"]], effects[k["i"]], 3)

    out["reasons (words)"] = timed(reasons, repeat)
    columns = one(lambda p: scorer.score_columns(p.leads, policy=in_force.policy,
                                                 touch_moments=p.moments))  # fmt: skip
    out["policy, value, timing (rest of the scorer)"] = columns - sum(
        out[s] for s in ("features", "model (probabilities + occlusion)", "reasons (words)")
    )
    scored_all = [score_leads(loaded, p.leads, in_force.policy, p.moments) for p in ready]
    out["answer rows (batcher)"] = (
        one(lambda p: score_leads(loaded, p.leads, in_force.policy, p.moments)) - columns
    )
    # the score log holds earlier scores of these leads (as under load)
    for scored in scored_all:
        services.score_log.submit(ScoreRows(scored, {
            "request_id": "r", "model_name": loaded.name, "model_version": loaded.version,
            "policy_version": 0, "scored_at": now, "api_key_name": "bench"}))  # fmt: skip
    services.score_log.flush()
    later = utcnow()
    # what the route reads with: SQLite's own reader (`SqliteHistory`), else the engine's path
    history = sqlite_history(services.engine) if SqliteHistory.usable(services.engine) else None

    def previous(p):
        ids = [lead["lead_id"] for lead in p.leads]
        if history is not None:
            return history.latest(ids, later)
        return latest_scores(services.engine, ids, later)

    j = {"i": 0}

    def add():
        j["i"] = (j["i"] + 1) % len(ready)
        add_trend(scored_all[j["i"]], previous(ready[j["i"]]), 5.0)

    out["trend (previous scores)"] = timed(add, repeat)

    class _Null:  # hand-offs measured without the writer threads' own work
        def put(self, item):
            pass

    real_log_queue, real_capture_queue = services.score_log._queue, services.capture.writer._queue
    services.score_log._queue = services.capture.writer._queue = _Null()
    try:

        def log_rows():
            j["i"] = (j["i"] + 1) % len(ready)
            services.score_log.submit(ScoreRows(scored_all[j["i"]], {
                "request_id": "r", "model_name": loaded.name, "model_version": loaded.version,
                "policy_version": 0, "scored_at": now, "api_key_name": "bench"}))  # fmt: skip

        out["score log hand-off"] = timed(log_rows, repeat)
        out["capture hand-off"] = one(lambda p: services.capture.scored(p.leads, p.moments, now))
    finally:
        services.score_log._queue, services.capture.writer._queue = (
            real_log_queue, real_capture_queue
        )  # fmt: skip

    def count():
        j["i"] = (j["i"] + 1) % len(ready)
        scored = scored_all[j["i"]]
        metrics.LEADS_SCORED.inc(len(scored))
        metrics.observe_many(metrics.SCORES, [r["score"] for r in scored])
        for decision, n in Counter(r["decision"] for r in scored).items():
            metrics.DECISIONS.labels(decision).inc(n)

    out["metrics"] = timed(count, repeat)

    def render():
        j["i"] = (j["i"] + 1) % len(ready)
        OrjsonResponse({
            "request_id": "r", "scored_at": now,
            "model": {"name": loaded.name, "version": loaded.version}, "policy_version": 0,
            "results": scored_all[j["i"]], "rejected": 0,
            "warnings": ready[j["i"]].warnings.answer(),
        })  # fmt: skip

    out["rendering (orjson)"] = timed(render, repeat)
    return out


async def run(args: argparse.Namespace) -> None:
    from bench.serve import build_leads, leadscore_body
    from serving.app import create_app
    from serving.config import Settings

    leads = build_leads(max(200, max(args.leads)))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            mlflow_tracking_uri=args.tracking_uri,
            model_uri=args.model_uri,
            api_keys_bootstrap=f"bench:scorer:{KEY}",
            capture_enabled=not args.no_capture,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            services = app.state.services
            deadline = time.monotonic() + 300
            while not services.models.ready and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            loaded = services.models.require()
            print(f"model: {args.model_uri} ({type(loaded.scorer.estimator.compiled).__name__})")
            headers = [(b"authorization", f"Bearer {KEY}".encode()),
                       (b"content-type", b"application/json")]  # fmt: skip
            table: dict[int, dict[str, float]] = {}
            for n in args.leads:
                if n == 1:
                    bodies = [leadscore_body([lead]) for lead in leads[:200]]
                else:
                    bodies = [leadscore_body(leads[:n])]
                repeat = args.repeat if n == 1 else max(10, args.repeat // 20)
                row = stages(services, bodies, repeat)
                row["sum of the stages"] = sum(row.values())
                i = {"i": 0}
                times = []
                for step in range(repeat + 2):
                    i["i"] = (i["i"] + 1) % len(bodies)
                    start = time.perf_counter()
                    status = await asgi_post(app, bodies[i["i"]], headers)
                    if step >= 2:
                        times.append(time.perf_counter() - start)
                    if status != 200:
                        raise SystemExit(f"POST /v1/score answered {status}")
                row["whole request through the app (ASGI)"] = statistics.median(times) * 1000
                row["framework (whole - sum)"] = (
                    row["whole request through the app (ASGI)"] - row["sum of the stages"]
                )
                table[n] = row
    names = list(next(iter(table.values())))
    print(f"| stage, median ms | {' | '.join(f'{n} lead(s)' for n in table)} |")
    print(f"|---|{'---|' * len(table)}")
    for name in names:
        print(f"| {name} | {' | '.join(f'{table[n][name]:.3f}' for n in table)} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument("--model-uri", default="models:/lead-scoring@champion")
    parser.add_argument("--leads", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--no-capture", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"machine: {describe_machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    asyncio.run(run(args))
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
