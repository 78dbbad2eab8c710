"""Load `leadscore serve` and `mlflow models serve` on the same registered model(s) with the same
leads, beside the ceiling: a bare FastAPI app on the same server stack (`bench/bare_app.py`).

    .venv/bin/python bench/serve.py [--tracking-uri sqlite:///mlflow.db]
                                    [--model-uri models:/lead-scoring@champion ...] [--workers 2]
                                    [--duration 10] [--skip-mlflow]
    .venv/bin/python bench/serve.py --capture [--rounds 2]
                                    [--postgres-url postgresql+psycopg://postgres@127.0.0.1/test]

Needs a registered model (`make demo`, or `leadscore train` then `leadscore promote`) and `wrk`
(`apt-get install -y wrk`). Each request is one lead with 20 touchpoints, rotated through 200
different leads built from the demo data; the 1,000-lead case sends 1,000 of them at once. Each
scenario runs on every server back to back, so each figure's ceiling is measured within seconds
of it. Prints the machine, the commands, a table of every server with its share of the ceiling,
and issue 18's targets for each leadscore server (held or missed). Absolute milliseconds move from
machine to machine and with other work on the CPU (the load average is printed); the shares do
not as much.

A logistic and a boosted-tree champion on demo data, with the CLI (`training.boosting_rounds`
fixes the tree count; `search: none` trains boosted trees only):

    leadscore demo-data --out demo --format parquet
    leadscore train --leads demo/leads.parquet --touchpoints demo/touchpoints.parquet \
        --outcomes demo/outcomes.parquet                      # logistic wins on the demo data
    printf 'training:\n  search: none\n  boosting_rounds: 400\n' > trees.yaml
    leadscore train ... --config trees.yaml --model-name lead-scoring-trees

`--capture` measures what keeping the inputs costs instead: `leadscore serve` with capture off and
on (LEADSCORE_CAPTURE_ENABLED), alternately for `--rounds` rounds, 16 connections each (requests/s
of each and their ratio; the target is within 10%; and the servers' CPU milliseconds per request,
steadier beside other work than requests/s); then the bytes each stored touchpoint takes
(table and indexes over rows) in the SQLite database the capture-on runs filled and, with
`--postgres-url`, in PostgreSQL (a server with capture on fed the same leads;
pg_total_relation_size over rows).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.data.vocabulary import normalise_activity, normalise_channel  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "ls_bench-scorer-key-0123456789abcdef"
N_TOUCHPOINTS = 20
N_DISTINCT = 200
BIG_BATCH = 1000

WRK_SCRIPT = r"""
local bodies = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do
    n = n + 1
    bodies[n] = line
  end
  counter = math.random(n)
end
request = function()
  counter = counter % n + 1
  return wrk.format("POST", nil, nil, bodies[counter])
end
done = function(summary, latency, requests)
  local out = io.open(os.getenv("WRK_RESULT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"non_2xx": %d, "socket_errors": %d}',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  out:close()
end
"""


from bench.machine import describe_machine as machine  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_leads(n: int, seed: int = 7) -> list[dict]:
    """`n` demo leads scored 21 days after creation, each with exactly 20 touchpoints in that time
    (its own, topped up with others' channels and activities at random moments)."""
    import numpy as np

    from features.data.demo import generate

    data = generate(max(3 * n, 600), seed=seed)
    touches = data.touchpoints.to_pylist()
    rng = np.random.default_rng(seed)
    by_lead: dict[str, list[dict]] = {}
    for t in touches:
        by_lead.setdefault(str(t["lead_id"]), []).append(t)
    out = []
    for lead in data.leads.slice(0, n).to_pylist():
        lead_id = str(lead["lead_id"])
        created = lead["created_at"].astimezone(UTC)
        as_of = created + timedelta(days=21)
        own = [t for t in by_lead.get(lead_id, []) if t["occurred_at"] <= as_of][:N_TOUCHPOINTS]
        extra = [touches[i] for i in rng.integers(0, len(touches), N_TOUCHPOINTS - len(own))]
        touchpoints = [
            {
                "occurred_at": t["occurred_at"].astimezone(UTC).isoformat(),
                "channel": normalise_channel(t["channel"]),
                "activity": normalise_activity(t["activity"]),
                "campaign": t["campaign"],
                "value": t["value"],
            }
            for t in own
        ] + [
            {
                "occurred_at": (
                    created + timedelta(seconds=int(rng.integers(0, 21 * 86400)))
                ).isoformat(),
                "channel": normalise_channel(t["channel"]),
                "activity": normalise_activity(t["activity"]),
                "campaign": t["campaign"],
                "value": t["value"],
            }
            for t in extra
        ]
        attributes = {k: v for k, v in lead.items() if k not in ("lead_id", "created_at")}
        out.append(
            {
                "lead_id": lead_id,
                "attributes": attributes,
                "touchpoints": touchpoints,
                "created_at": created.isoformat(),
                "as_of": as_of.isoformat(),
            }
        )
    return out


def leadscore_body(leads: list[dict]) -> bytes:
    return json.dumps({"leads": leads}).encode()


def mlflow_body(leads: list[dict]) -> bytes:
    records = []
    for lead in leads:
        row = {
            "lead_id": lead["lead_id"],
            **lead["attributes"],
            "created_at": lead["created_at"],
            "as_of": lead["as_of"],
            "touchpoints": json.dumps(lead["touchpoints"]),
        }
        records.append(row)
    return json.dumps({"dataframe_records": records}).encode()


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode} before it was ready ({url})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):  # the server is in its own process group
        os.killpg(process.pid, signal.SIGKILL)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (mlflow runs bash -> uvicorn -> workers)."""
    pids, seen = [pid], 0
    while seen < len(pids):
        children = subprocess.run(
            ["pgrep", "-P", str(pids[seen])], capture_output=True, text=True
        ).stdout
        pids += [int(p) for p in children.split()]
        seen += 1
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its living descendants."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its descendants (sum of VmHWM), in MB."""
    total = 0
    pids = process_tree(pid)
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run_wrk(url: str, bodies_file: Path, headers: dict, connections: int, duration: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "stream.lua"
        script.write_text(WRK_SCRIPT)
        result = Path(tmp) / "result.json"
        command = [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
        ]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        command += [url, "--", str(bodies_file)]
        subprocess.run(
            command, check=True, capture_output=True, env={**os.environ, "WRK_RESULT": str(result)}
        )
        data = json.loads(result.read_text())
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["command"] = " ".join(command).replace(KEY, "<key>")
    return data


def big_request(url: str, body: bytes, headers: dict, repeats: int) -> list[float]:
    times = []
    with httpx.Client(timeout=120) as client:
        client.post(url, content=body, headers=headers)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            response = client.post(url, content=body, headers=headers)
            times.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{url} answered {response.status_code}: {response.text[:300]}")
    return times


def check_one(url: str, body: bytes, headers: dict) -> dict:
    # /readyz answers from one worker while another may still load the model (503): retry until
    # 8 answers in a row are 200 (every worker has its model), for up to 3 minutes
    deadline = time.monotonic() + 180
    answered = 0
    while True:
        response = httpx.post(url, content=body, headers=headers, timeout=30)
        if response.status_code == 503 and time.monotonic() < deadline:
            answered = 0
            time.sleep(0.2)
            continue
        if response.status_code != 200 or answered >= 7:
            break
        answered += 1
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}: {response.text[:500]}")
    return response.json()


def start_leadscore(env: dict, work: Path, workers: int, **settings: str) -> tuple:
    """`leadscore serve` with extra LEADSCORE_* settings, in its own process group."""
    port = free_port()
    command = [str(BIN / "leadscore"), "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        command,
        env={**env, **{f"LEADSCORE_{k.upper()}": v for k, v in settings.items()}},
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz", process)
    return process, f"http://127.0.0.1:{port}/v1/score", " ".join(command)


def stop_leadscore(process: subprocess.Popen) -> None:
    """SIGTERM the server's group (it drains the score log and the capture queue), wait for it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def touchpoint_bytes(url: str) -> tuple[int, int]:
    """(stored touchpoints, bytes of the lead_touchpoints table and its indexes)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT count(*) FROM lead_touchpoints")).scalar_one()
            if engine.dialect.name == "sqlite":
                size = connection.execute(
                    sa.text(
                        "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM "
                        "sqlite_master WHERE tbl_name = 'lead_touchpoints')"
                    )
                ).scalar_one()
            else:
                size = connection.execute(
                    sa.text("SELECT pg_total_relation_size('lead_touchpoints')")
                ).scalar_one()
    finally:
        engine.dispose()
    return int(rows), int(size or 0)


def capture_bench(args, env: dict, work: Path, leads: list[dict], one: Path) -> None:
    """Requests/s with capture off and on at 16 connections; bytes per stored touchpoint."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    rps: dict[str, list[float]] = {"off": [], "on": []}
    cpu_ms: dict[str, list[float]] = {"off": [], "on": []}  # server CPU per request
    commands = {}
    db = {"off": work / "capture-off.db", "on": work / "capture-on.db"}
    probe = one.read_text().splitlines()[0].encode()
    for _round in range(args.rounds):
        for mode in ("off", "on"):
            process, url, command = start_leadscore(
                env, work, args.workers,
                capture_enabled="true" if mode == "on" else "false",
                database_url=f"sqlite:///{db[mode]}",
            )  # fmt: skip
            try:
                check_one(url, probe, headers)
                time.sleep(1)  # the probe's capture written
                cpu = cpu_seconds(process.pid)
                result = run_wrk(url, one, headers, 16, args.duration)
                time.sleep(1)  # what the requests queued for the writers is written
                cpu = cpu_seconds(process.pid) - cpu
            finally:
                stop_leadscore(process)
            rps[mode].append(result["rps"])
            cpu_ms[mode].append(1000 * cpu / max(1, result["requests"]))
            commands[mode] = command
            print(f"capture {mode}, 16 connections: {result['command']}")
    print(f"servers: {commands['on']} (LEADSCORE_CAPTURE_ENABLED=false / true)")
    off, on = statistics.median(rps["off"]), statistics.median(rps["on"])
    print(f"\nworkers: {args.workers}; wrk {args.duration} s per run, {args.rounds} rounds")
    print("| 16 connections, one lead with 20 touchpoints | capture off | capture on | on / off |")
    print("|---|---|---|---|")
    for i, (a, b) in enumerate(zip(rps["off"], rps["on"], strict=True)):
        print(f"| round {i + 1}: requests/s | {a:.1f} | {b:.1f} | {b / a:.3f} |")
    print(f"| median requests/s (target: on within 10% of off) | {off:.1f} | {on:.1f} | "
          f"{on / off:.3f} |")  # fmt: skip
    ratios = [b / a for a, b in zip(rps["off"], rps["on"], strict=True)]
    print(f"| median of the rounds' on / off | | | {statistics.median(ratios):.3f} |")
    cpu_off, cpu_on = statistics.median(cpu_ms["off"]), statistics.median(cpu_ms["on"])
    print(f"| median server CPU ms per request (steadier than requests/s beside other work) | "
          f"{cpu_off:.3f} | {cpu_on:.3f} | {cpu_on / cpu_off:.3f} |")  # fmt: skip

    stores = [("SQLite", f"sqlite:///{db['on']}")]
    if args.postgres_url:
        process, url, _ = start_leadscore(
            env, work, args.workers, capture_enabled="true", database_url=args.postgres_url
        )
        try:
            check_one(url, probe, headers)
            with httpx.Client(timeout=120) as client:
                for line in one.read_text().splitlines():
                    client.post(url, content=line, headers=headers).raise_for_status()
                client.post(
                    url, content=leadscore_body(leads[:BIG_BATCH]), headers=headers
                ).raise_for_status()
        finally:
            stop_leadscore(process)
        stores.append(("PostgreSQL", args.postgres_url))
    print("\n| database | touchpoints stored | bytes (table + indexes) | bytes per touchpoint |")
    print("|---|---|---|---|")
    for name, url in stores:
        rows, size = touchpoint_bytes(url)
        per = f"{size / rows:.0f}" if rows else "-"
        print(f"| {name} | {rows} | {size} | {per} |")
    print(f"\nload average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def describe_model(uri: str, tracking_uri: str) -> str:
    """What the model is: logistic, or boosted trees and how many."""
    from features.model.artifact import load_model_scorer
    from features.model.compiled import AdditiveLogistic, CompiledTrees

    compiled = load_model_scorer(uri, tracking_uri).estimator.compiled
    if isinstance(compiled, AdditiveLogistic):
        return "logistic"
    if isinstance(compiled, CompiledTrees):
        return f"boosted trees ({compiled.n_trees} trees)"
    return type(compiled).__name__


def start_server(command: list[str], env: dict, work: Path) -> subprocess.Popen:
    """A server in its own process group (stopped with the whole group)."""
    return subprocess.Popen(
        command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def stop_servers(servers: dict[str, dict]) -> None:
    for server in servers.values():
        try:
            os.killpg(server["process"].pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for server in servers.values():
        try:
            server["process"].wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server["process"].pid, signal.SIGKILL)
            server["process"].wait()


def targets(bare: dict, ls: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, holds) of issue 18 for one leadscore server against the bare app."""
    share = ls[16]["rps"] / bare[16]["rps"]
    p50, bare_p50 = ls[1]["p50_us"] / 1000, bare[1]["p50_us"] / 1000
    big, bare_big = statistics.median(ls["big"]), statistics.median(bare["big"])
    per_1000 = (big - bare_big) * 1000 / BIG_BATCH
    return [
        ("16 conn: requests/s >= 50% of the bare app's", f"{share:.0%}", share >= 0.5),
        ("16 conn: p99 <= 50 ms", f"{ls[16]['p99_us'] / 1000:.1f} ms", ls[16]["p99_us"] <= 50_000),
        (
            "1 conn: p50 <= bare p50 + 1.5 ms",
            f"{p50:.2f} ms (bare + {p50 - bare_p50:.2f})",
            p50 <= bare_p50 + 1.5,
        ),
        ("1 conn: p99 <= 10 ms", f"{ls[1]['p99_us'] / 1000:.1f} ms", ls[1]["p99_us"] <= 10_000),
        (f"{BIG_BATCH} leads: median <= 100 ms", f"{big:.1f} ms", big <= 100),
        (
            f"{BIG_BATCH} leads: <= 25 ms per 1,000 leads above the bare app",
            f"+{per_1000:.1f} ms per 1,000",
            per_1000 <= 25,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument(
        "--model-uri",
        action="append",
        help="Registered model to serve (repeat for several; default "
        "models:/lead-scoring@champion).",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=10, help="Seconds per wrk run.")
    parser.add_argument("--big-repeats", type=int, default=10)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--capture", action="store_true", help="Capture off vs on, and bytes per touchpoint."
    )
    parser.add_argument("--rounds", type=int, default=2, help="--capture: off/on pairs to run.")
    parser.add_argument(
        "--postgres-url", help="--capture: also measure storage in this PostgreSQL database."
    )
    args = parser.parse_args()
    args.model_uris = args.model_uri or ["models:/lead-scoring@champion"]
    args.model_uri = args.model_uris[0]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install -y wrk`")

    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    leads = build_leads(max(N_DISTINCT, BIG_BATCH))
    work = Path(tempfile.mkdtemp(prefix="leadscore-bench-"))
    one_ls = work / "one-lead-leadscore.jsonl"
    one_ml = work / "one-lead-mlflow.jsonl"
    one_ls.write_text(
        "\n".join(leadscore_body([lead]).decode() for lead in leads[:N_DISTINCT]) + "\n"
    )
    one_ml.write_text("\n".join(mlflow_body([lead]).decode() for lead in leads[:N_DISTINCT]) + "\n")

    if args.tracking_uri.startswith("sqlite:///") and not args.tracking_uri.startswith(
        "sqlite:////"
    ):  # the servers run in a temporary folder: a relative SQLite path is this folder's
        args.tracking_uri = f"sqlite:///{Path(args.tracking_uri[10:]).resolve()}"
    # `mlflow models serve` runs `uvicorn` from PATH: use this environment's.
    env: dict[str, str] = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": args.tracking_uri,
        "LEADSCORE_MODEL_URI": args.model_uri,
        "LEADSCORE_DATABASE_URL": f"sqlite:///{work / 'leadscore.db'}",
        "LEADSCORE_API_KEYS_BOOTSTRAP": f"bench:scorer:{KEY}",
    }
    if args.capture:
        try:
            capture_bench(args, env, work, leads, one_ls)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    kinds = {uri: describe_model(uri, args.tracking_uri) for uri in args.model_uris}
    big_ls = leadscore_body(leads[:BIG_BATCH])
    ls_headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    servers: dict[str, dict] = {}
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", str(port),
               "--workers", str(args.workers)]  # fmt: skip
    servers["bare"] = {
        "command": " ".join(command),
        "process": start_server(command, {**env, "PYTHONPATH": str(ROOT)}, work),
        "ready": f"http://127.0.0.1:{port}/readyz",
        "url": f"http://127.0.0.1:{port}/v1/score",
        "headers": {"Content-Type": "application/json"},
        "one": one_ls,
        "big": big_ls,
    }
    for m, uri in enumerate(args.model_uris):
        tag = chr(ord("A") + m)
        port = free_port()
        command = [str(BIN / "leadscore"), "serve", "--port", str(port),
                   "--workers", str(args.workers)]  # fmt: skip
        database = f"sqlite:///{work / f'leadscore-{tag}.db'}"
        servers[f"leadscore {tag}"] = {
            "command": f"LEADSCORE_MODEL_URI={uri} {' '.join(command)}",
            "process": start_server(
                command,
                {**env, "LEADSCORE_MODEL_URI": uri, "LEADSCORE_DATABASE_URL": database},
                work,
            ),  # fmt: skip
            "ready": f"http://127.0.0.1:{port}/readyz",
            "url": f"http://127.0.0.1:{port}/v1/score",
            "headers": ls_headers,
            "one": one_ls,
            "big": big_ls,
            "uri": uri,
        }
        if args.skip_mlflow:
            continue
        port = free_port()
        command = [str(BIN / "mlflow"), "models", "serve", "-m", uri, "-p", str(port),
                   "--env-manager", "local", "--workers", str(args.workers)]  # fmt: skip
        servers[f"mlflow {tag}"] = {
            "command": " ".join(command),
            "process": start_server(command, env, work),
            "ready": f"http://127.0.0.1:{port}/ping",
            "url": f"http://127.0.0.1:{port}/invocations",
            "headers": {"Content-Type": "application/json"},
            "one": one_ml,
            "big": mlflow_body(leads[:BIG_BATCH]),
            "uri": uri,
        }
    results: dict[str, dict] = {name: {} for name in servers}
    try:
        for name, server in servers.items():
            wait_ready(server["ready"], server["process"])
            print(f"{name}: {server['command']}")
        # Same leads, same probabilities: check before timing anything (and every worker ready).
        probe = leads[:5]
        for name, server in servers.items():
            if name.startswith("leadscore"):
                answer = check_one(server["url"], leadscore_body(probe), server["headers"])
                server["probabilities"] = [r["probability"] for r in answer["results"]]
                model = answer["model"]
                print(f"{name}: {server['uri']} = {model['name']} version {model['version']}, "
                      f"{kinds[server['uri']]}")  # fmt: skip
            elif name.startswith("mlflow"):
                ml = check_one(server["url"], mlflow_body(probe), server["headers"])["predictions"]
                ml_p = [row["probability"] for row in ml]
                ls_p = servers["leadscore" + name.removeprefix("mlflow")]["probabilities"]
                worst = max(abs(a - b) for a, b in zip(ls_p, ml_p, strict=True))
                print(f"{name}: same 5 leads as leadscore{name.removeprefix('mlflow')}, largest "
                      f"probability difference {worst:.2e}")  # fmt: skip
            else:
                check_one(server["url"], leadscore_body(probe), server["headers"])
        # Scenario by scenario, every server back to back: each figure's ceiling is measured
        # within seconds of it, under the same background load.
        for connections in (1, 16):
            for name, server in servers.items():
                result = run_wrk(
                    server["url"], server["one"], server["headers"], connections, args.duration
                )
                results[name][connections] = result
                print(f"{name}, {connections} connection(s): {result['command']}")
        for name, server in servers.items():
            results[name]["big"] = big_request(
                server["url"], server["big"], server["headers"], args.big_repeats
            )
            results[name]["rss"] = peak_rss_mb(server["process"].pid)
    finally:
        stop_servers(servers)

    rows = [
        ("1 conn: p50 ms", lambda r: r[1]["p50_us"] / 1000, "lower"),
        ("1 conn: p99 ms", lambda r: r[1]["p99_us"] / 1000, "lower"),
        ("1 conn: requests/s", lambda r: r[1]["rps"], "higher"),
        ("16 conn: requests/s", lambda r: r[16]["rps"], "higher"),
        ("16 conn: p50 ms", lambda r: r[16]["p50_us"] / 1000, "lower"),
        ("16 conn: p99 ms", lambda r: r[16]["p99_us"] / 1000, "lower"),
        ("16 conn: non-2xx + socket errors", lambda r: r[16]["non_2xx"] + r[16]["socket_errors"],
         None),
        (f"{BIG_BATCH}-lead request: median ms", lambda r: statistics.median(r["big"]), "lower"),
        (f"{BIG_BATCH}-lead request: max ms", lambda r: max(r["big"]), "lower"),
        ("peak RSS of the server processes, MB", lambda r: r["rss"], None),
    ]  # fmt: skip
    names = list(results)
    print()
    print(f"workers: {args.workers} each; wrk {args.duration} s per run, 2 threads; "
          f"{BIG_BATCH}-lead request {args.big_repeats} times")  # fmt: skip
    print("bare = bench/bare_app.py (the ceiling: FastAPI + orjson parsing the same body, a fixed "
          "answer, same uvicorn options)")  # fmt: skip
    for m, uri in enumerate(args.model_uris):
        print(f"{chr(ord('A') + m)} = {uri}: {kinds[uri]}")
    print("share of the ceiling in brackets: bare / server for times, server / bare for rates\n")
    print(f"| one lead with 20 touchpoints per request | {' | '.join(names)} |")
    print(f"|---|{'---|' * len(names)}")
    for label, get, better in rows:
        bare_value = get(results["bare"])
        cells = []
        for name in names:
            value = get(results[name])
            cell = f"{value:.1f}" if not float(value).is_integer() or better else f"{value:.0f}"
            if better and name != "bare" and value and bare_value:
                share = bare_value / value if better == "lower" else value / bare_value
                cell += f" ({share:.0%})"
            cells.append(cell)
        print(f"| {label} | {' | '.join(cells)} |")
    print()
    ls_names = [n for n in names if n.startswith("leadscore")]
    checks = {name: targets(results["bare"], results[name]) for name in ls_names}
    print(f"| target (issue 18) | {' | '.join(ls_names)} |")
    print(f"|---|{'---|' * len(ls_names)}")
    for i, (label, _, _) in enumerate(checks[ls_names[0]]):
        cells = [f"{checks[n][i][1]} {'holds' if checks[n][i][2] else 'MISSED'}" for n in ls_names]
        print(f"| {label} | {' | '.join(cells)} |")
    print(
        f"\nbench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
        f" MB; load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
