"""SIGKILL `leadscore serve` under scoring load: how many answered scores are missing from the log.

    .venv/bin/python bench/sigkill.py [--tracking-uri sqlite:///mlflow.db] [--database-url URL]
                                      [--runs 3] [--load-seconds 5] [--clients 4] [--leads 10]

Without `--tracking-uri` a small model is trained on demo data in a temporary directory first.
Each run starts `leadscore serve` (its own process group), loads it with scoring requests from
`--clients` threads (unique lead ids), SIGKILLs the whole group, restarts the service on the same
database (to show it comes back and writes what a clean stop would have spilled: nothing here),
and counts the answered scores missing from the score log. The window is how long before the kill
the oldest missing score was answered: what a client can lose to a SIGKILL (a clean stop loses
nothing: the writers write or spill what is queued). Prints the machine, the command and a table.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine  # noqa: E402
from serving.redact import redact_text  # noqa: E402

BIN = Path(sys.executable).parent
KEY = "ls_bench-sigkill-scorer-key-0123456789"


def train_model(workdir: Path) -> str:
    """A small registered model (demo data, no search): its tracking URI."""
    from features.data.demo import create_demo_data
    from training.train import TrainingConfig, resolve_config, train

    tracking = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    demo = workdir / "demo"
    create_demo_data(demo, 600, seed=3, formats=("parquet",))
    config = resolve_config(None, leads=demo / "leads.parquet",
                            touchpoints=demo / "touchpoints.parquet",
                            outcomes=demo / "outcomes.parquet")  # fmt: skip
    config.training = TrainingConfig(search="none", cv_folds=1, splines=False,
                                     max_training_rows=None)  # fmt: skip
    here = os.getcwd()
    os.chdir(workdir)  # MLflow puts artifacts under the working directory
    try:
        train(config, seed=1)
    finally:
        os.chdir(here)
    return tracking


def lead_template() -> dict:
    return {
        "lead_id": "x",
        "created_at": "2025-05-01T09:00:00Z",
        "as_of": "2025-06-01T00:00:00Z",
        "attributes": {"industry": "retail", "Lead Source": "Google"},
        "touchpoints": [
            {"occurred_at": "2025-05-20T10:00:00Z", "channel": "email", "activity": "email_open"},
            {"occurred_at": "2025-05-25T10:00:00Z", "channel": "paid_search",
             "activity": "pricing_page_view"},
        ],
    }  # fmt: skip


def start(env: dict, port: int, workdir: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as output:
        return subprocess.Popen(
            [str(BIN / "leadscore"), "serve", "--port", str(port)],
            env=env, cwd=workdir, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server was not ready in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def kill_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass
    process.wait()


def one_run(run: int, env: dict, port: int, workdir: Path, args) -> dict:
    import sqlalchemy as sa

    from serving.db import make_engine, score_log

    base, log = f"http://127.0.0.1:{port}", workdir / f"server-{run}.log"
    answered: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()
    template = lead_template()

    def load(client_number: int) -> None:
        n = 0
        with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
            while not stop.is_set():
                ids = [f"R{run}-C{client_number}-{n}-{i}" for i in range(args.leads)]
                n += 1
                leads = [{**template, "lead_id": lead_id} for lead_id in ids]
                try:
                    response = client.post(base + "/v1/score", json={"leads": leads})
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    moment = time.monotonic()
                    with lock:
                        for lead_id in ids:
                            answered[lead_id] = moment

    server = start(env, port, workdir, log)
    try:
        wait_ready(base, server, log)
        threads = [threading.Thread(target=load, args=(c,)) for c in range(args.clients)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.load_seconds)
        killed_at = time.monotonic()
        kill_group(server, signal.SIGKILL)
        stop.set()
        for thread in threads:
            thread.join()
    finally:
        kill_group(server, signal.SIGKILL)
    server = start(env, port, workdir, log)  # the same database: it comes back
    try:
        wait_ready(base, server, log)
    finally:
        kill_group(server, signal.SIGTERM)
    engine = make_engine(env["LEADSCORE_DATABASE_URL"])
    with engine.connect() as connection:
        logged = set(
            connection.execute(
                sa.select(score_log.c.lead_id).where(score_log.c.lead_id.like(f"R{run}-%"))
            ).scalars()
        )
    engine.dispose()
    missing = [lead_id for lead_id in answered if lead_id not in logged]
    window = max((killed_at - answered[lead_id] for lead_id in missing), default=0.0)
    return {
        "answered": len(answered),
        "missing": len(missing),
        "window_ms": window * 1000,
        "leads_per_s": len(answered) / (killed_at - began),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--model-uri", default="models:/lead-scoring/1")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load-seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--leads", type=int, default=10, help="leads per request")
    parser.add_argument("--port", type=int, default=8093)
    args = parser.parse_args()

    machine = describe_machine()
    with tempfile.TemporaryDirectory(prefix="leadscore-sigkill-") as directory:
        workdir = Path(directory)
        tracking = args.tracking_uri or train_model(workdir)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking,
            "LEADSCORE_MODEL_URI": args.model_uri,
            "LEADSCORE_DATABASE_URL": args.database_url or f"sqlite:///{workdir / 'ls.db'}",
            "LEADSCORE_API_KEYS_BOOTSTRAP": f"bench:scorer:{KEY}",
            "LEADSCORE_SPILL_DIR": str(workdir / "spill"),
            "OMP_NUM_THREADS": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        results = [one_run(run, env, args.port, workdir, args) for run in range(args.runs)]

    print(f"machine: {machine}")
    print(f"command: {redact_text(' '.join([Path(sys.executable).name, *sys.argv]))}")
    print(f"database: {'PostgreSQL' if args.database_url else 'SQLite'}; "
          f"{args.clients} clients, {args.leads} leads per request, SIGKILL after "
          f"{args.load_seconds:g} s; score_log_flush_seconds at its default")  # fmt: skip
    print()
    print(
        "| run | leads answered | leads/s | missing after SIGKILL | window before the kill (ms) |"
    )
    print("|---:|---:|---:|---:|---:|")
    for run, r in enumerate(results, 1):
        print(f"| {run} | {r['answered']:,} | {r['leads_per_s']:,.0f} | {r['missing']:,} | "
              f"{r['window_ms']:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
