"""How fast a change reaches every worker: a policy saved through one worker, and an API key
created or revoked in the database, as seen by a second worker process.

    .venv/bin/python bench/propagation.py [--changes 10] [--database-url URL]

Starts two uvicorn processes of `serving.app:create_app_from_env` on one database (a temporary
SQLite file unless --database-url is given; no model is needed), then for each change measures
the time from the change to the first answer of the other worker that reflects it (polled every
10 ms). The settings that bound it are `LEADSCORE_POLICY_REFRESH_SECONDS` and
`LEADSCORE_KEY_CACHE_SECONDS` (0.5 s each by default), so expect up to about that plus a
request. Prints one table with the command and the machine. (The unit tests only check that a
change arrives, never how fast: tests/serving/test_policy_workers.py, test_auth.py.)
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine as machine  # noqa: E402

OPS_KEY = "ls_bench-ops-key-0123456789abcdef"
BOOTSTRAP = f"bench-ops:ops:{OPS_KEY}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app_from_env",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with open(cwd / f"worker-{port}.log", "wb") as log:
        # Its own process group: killed whole at the end, whatever happens.
        return subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_worker(process: subprocess.Popen) -> None:
    """SIGTERM to the worker's process group, then SIGKILL to whatever is left of it."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass


def wait_up(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker at {url} exited with {process.returncode} (see its log)")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"worker at {url} did not start within {timeout:.0f} s")


def lag_until(check, timeout: float = 30) -> float:
    """Seconds until `check()` is true (polled every 10 ms)."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"the change did not arrive within {timeout:.0f} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10, help="Changes of each kind.")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    from serving.auth import create_key, ensure_keys, revoke_key
    from serving.config import Settings, parse_bootstrap_keys
    from serving.db import make_engine, upgrade_database

    work = Path(tempfile.mkdtemp(prefix="leadscore-propagation-"))
    url = args.database_url or f"sqlite:///{work / 'leadscore.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    ensure_keys(engine, parse_bootstrap_keys(BOOTSTRAP))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LEADSCORE_DATABASE_URL": url,
        "LEADSCORE_AUTO_MIGRATE": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",  # no model: not needed here
        "LEADSCORE_MODEL_RETRY_SECONDS": "3600",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    settings = Settings(database_url=url)  # the refresh intervals the workers read too
    ports = [free_port(), free_port()]
    workers = [start_worker(port, env, work) for port in ports]
    first, second = (f"http://127.0.0.1:{port}" for port in ports)
    ops = {"Authorization": f"Bearer {OPS_KEY}"}
    policy_lags, key_lags, revoke_lags = [], [], []
    try:
        for url_, process in zip((first, second), workers):
            wait_up(url_, process)
        with httpx.Client(timeout=10) as client:

            def version(base: str) -> int:
                return client.get(base + "/v1/policy", headers=ops).json()["version"]

            for n in range(args.changes):
                answer = client.put(
                    first + "/v1/policy",
                    headers=ops,
                    json={"policy": {"sales_threshold": 40 + n}, "reason": f"bench {n}"},
                )
                answer.raise_for_status()
                saved = answer.json()["version"]
                policy_lags.append(lag_until(lambda: version(second) == saved))  # noqa: B023

            for n in range(args.changes):
                name = f"bench-{n}-{time.time_ns()}"
                key = create_key(engine, name, "ops")
                headers = {"Authorization": f"Bearer {key}"}

                def status() -> int:
                    return client.get(second + "/v1/policy", headers=headers).status_code  # noqa: B023

                key_lags.append(lag_until(lambda: status() == 200))
                revoke_key(engine, name)
                revoke_lags.append(lag_until(lambda: status() == 401))
    finally:
        for process in workers:
            stop_worker(process)
        engine.dispose()

    rows = [
        ("policy saved via worker 1, in force in worker 2", policy_lags,
         f"policy_refresh_seconds={settings.policy_refresh_seconds:g}"),
        ("key created in the database, accepted by worker 2", key_lags,
         f"key_cache_seconds={settings.key_cache_seconds:g}"),
        ("key revoked in the database, refused by worker 2", revoke_lags,
         f"key_cache_seconds={settings.key_cache_seconds:g}"),
    ]  # fmt: skip
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"database: {'sqlite (temporary file)' if args.database_url is None else url}")
    print(f"worker logs: {work}")
    headers = ("change", "runs", "median", "max", "setting")
    table = [
        (name, str(len(lags)), f"{statistics.median(lags) * 1000:.0f} ms",
         f"{max(lags) * 1000:.0f} ms", setting)
        for name, lags, setting in rows
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in [headers, *table]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
