"""Load `leadscore serve` and `mlflow models serve` on the same registered model with the same leads.

    .venv/bin/python bench/serve.py [--tracking-uri sqlite:///mlflow.db]
                                    [--model-uri models:/lead-scoring@champion] [--workers 2]
                                    [--duration 10] [--skip-mlflow]
    .venv/bin/python bench/serve.py --capture [--rounds 2]
                                    [--postgres-url postgresql+psycopg://postgres@127.0.0.1/test]

Needs a registered model (`make demo`, or `leadscore train` then `leadscore promote`) and `wrk`
(`apt-get install -y wrk`). Each request is one lead with 20 touchpoints, rotated through 200
different leads built from the demo data; the 1,000-lead case sends 1,000 of them at once. Prints
the machine, the commands, and a table with both servers and their ratio. Numbers are noisy when
other work shares the CPU: the load average before the run is printed with them.

`--capture` measures what keeping the inputs costs instead: `leadscore serve` with capture off and
on (LEADSCORE_CAPTURE_ENABLED), alternately for `--rounds` rounds, 16 connections each (requests/s
of each and their ratio; the target is within 10%); then the bytes each stored touchpoint takes
(table and indexes over rows) in the SQLite database the capture-on runs filled and, with
`--postgres-url`, in PostgreSQL (a server with capture on fed the same leads;
pg_total_relation_size over rows).
"""

from __future__ import annotations

import argparse
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
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process and its descendants (sum of VmHWM), in MB."""
    total = 0
    pids, seen = [pid], 0
    while seen < len(pids):  # the whole process tree (mlflow runs bash -> uvicorn -> workers)
        children = subprocess.run(
            ["pgrep", "-P", str(pids[seen])], capture_output=True, text=True
        ).stdout
        pids += [int(p) for p in children.split()]
        seen += 1
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
                result = run_wrk(url, one, headers, 16, args.duration)
            finally:
                stop_leadscore(process)
            rps[mode].append(result["rps"])
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument("--model-uri", default="models:/lead-scoring@champion")
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
    servers: dict[str, dict] = {}
    ls_port = free_port()
    ls_cmd = [
        str(BIN / "leadscore"),
        "serve",
        "--port",
        str(ls_port),
        "--workers",
        str(args.workers),
    ]
    servers["leadscore serve"] = {
        "command": " ".join(ls_cmd),
        "process": subprocess.Popen(
            ls_cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ),
        "ready": f"http://127.0.0.1:{ls_port}/readyz",
        "url": f"http://127.0.0.1:{ls_port}/v1/score",
        "headers": {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        "one": one_ls,
        "big": leadscore_body(leads[:BIG_BATCH]),
    }
    if not args.skip_mlflow:
        ml_port = free_port()
        ml_cmd = [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            args.model_uri,
            "-p",
            str(ml_port),
            "--env-manager",
            "local",
            "--workers",
            str(args.workers),
        ]
        servers["mlflow models serve"] = {
            "command": " ".join(ml_cmd),
            "process": subprocess.Popen(
                ml_cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            ),
            "ready": f"http://127.0.0.1:{ml_port}/ping",
            "url": f"http://127.0.0.1:{ml_port}/invocations",
            "headers": {"Content-Type": "application/json"},
            "one": one_ml,
            "big": mlflow_body(leads[:BIG_BATCH]),
        }
    results: dict[str, dict] = {}
    try:
        for name, server in servers.items():
            wait_ready(server["ready"], server["process"])
            print(f"{name}: {server['command']}")
        # Same leads, same probabilities: check before timing anything.
        probe = leads[:5]
        ls_p = [
            r["probability"]
            for r in check_one(
                servers["leadscore serve"]["url"],
                leadscore_body(probe),
                servers["leadscore serve"]["headers"],
            )["results"]
        ]
        if "mlflow models serve" in servers:
            ml = check_one(
                servers["mlflow models serve"]["url"],
                mlflow_body(probe),
                servers["mlflow models serve"]["headers"],
            )["predictions"]
            ml_p = [row["probability"] for row in ml]
            worst = max(abs(a - b) for a, b in zip(ls_p, ml_p, strict=True))
            print(
                f"same 5 leads, largest probability difference between the two servers: {worst:.2e}"
            )
        for name, server in servers.items():
            r: dict = {}
            for connections in (1, 16):
                r[connections] = run_wrk(
                    server["url"], server["one"], server["headers"], connections, args.duration
                )
                print(f"{name}, {connections} connection(s): {r[connections]['command']}")
            r["big"] = big_request(
                server["url"], server["big"], server["headers"], args.big_repeats
            )
            r["rss"] = peak_rss_mb(server["process"].pid)
            results[name] = r
    finally:
        for server in servers.values():
            server["process"].send_signal(signal.SIGTERM)
        for server in servers.values():
            try:
                server["process"].wait(60)
            except subprocess.TimeoutExpired:
                server["process"].kill()

    rows = [
        ("1 conn: p50 ms (target <= 3)", lambda r: r[1]["p50_us"] / 1000, "lower"),
        ("1 conn: p99 ms (target <= 10)", lambda r: r[1]["p99_us"] / 1000, "lower"),
        ("1 conn: requests/s", lambda r: r[1]["rps"], "higher"),
        ("16 conn: requests/s (target >= 1000)", lambda r: r[16]["rps"], "higher"),
        ("16 conn: p50 ms", lambda r: r[16]["p50_us"] / 1000, "lower"),
        ("16 conn: p99 ms (target <= 50)", lambda r: r[16]["p99_us"] / 1000, "lower"),
        (
            "16 conn: non-2xx + socket errors",
            lambda r: r[16]["non_2xx"] + r[16]["socket_errors"],
            None,
        ),
        (
            f"{BIG_BATCH}-lead request: median ms (target <= 100)",
            lambda r: statistics.median(r["big"]),
            "lower",
        ),
        (f"{BIG_BATCH}-lead request: max ms", lambda r: max(r["big"]), "lower"),
        ("peak RSS of the server processes, MB", lambda r: r["rss"], None),
    ]
    names = list(results)
    header = f"| {'one lead with 20 touchpoints per request':<48} | " + " | ".join(
        f"{n:>19}" for n in names
    )
    if len(names) == 2:
        header += " | leadscore advantage"
    print()
    print(f"workers: {args.workers} each; wrk {args.duration} s per run; model {args.model_uri}")
    print(header)
    print("|" + "-" * (len(header) - 2) + "|")
    for label, get, better in rows:
        values = [get(results[n]) for n in names]
        line = f"| {label:<48} | " + " | ".join(f"{v:>19.1f}" for v in values)
        if len(values) == 2 and better and values[0] and values[1]:
            ratio = values[1] / values[0] if better == "lower" else values[0] / values[1]
            line += f" | {ratio:>8.1f}x"
        elif len(values) == 2:
            line += " |"
        print(line)
    print(
        f"\nbench process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
        f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
