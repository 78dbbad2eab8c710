"""How soon `leadscore serve` answers /healthz when the model registry is down or silent.

    .venv/bin/python bench/startup.py [--runs 3] [--give-up 60]

For each registry case, starts `leadscore serve` (one worker, a temporary SQLite database, its own
process group) and measures, from the moment the process is started:

- the first /healthz 200 (the port is open: what Docker's health check needs), and the same
  from the moment uvicorn logs "Waiting for application startup." (the app is imported; what is
  left is the lifespan, where the first model load used to run, and the bind),
- the first /readyz from the service itself (serving/boot.py answers "starting" until the
  service is imported, migrated and started in the background),
- the first /readyz that states a reason (the first model load is under way or has failed),
- the slowest /healthz answer in the first `--watch` seconds, polled every 50 ms while the
  model loads in the background (imports of mlflow and scikit-learn compete with the server),

with MLflow's default HTTP retries (7, backoff factor 2: one load attempt against a refusing
registry takes minutes, which is what kept the port closed before the load moved to the
background). Registry cases: a port that refuses connections; one that accepts and never answers;
a reachable SQLite registry that has no such model. `--give-up`: a run whose port is still closed
after that many seconds is reported as "> N s". Prints one table with the command and the machine.
(tests/serving/test_startup.py checks that /healthz answers while the registry holds the load,
never how fast.)
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
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import describe_machine as machine  # noqa: E402

LEADSCORE = str(Path(sys.executable).with_name("leadscore"))
ADMIN_KEY = "ls_bench-startup-admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
STARTUP_LINE = "Waiting for application startup."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentRegistry:
    """Accepts connections and never answers (a registry behind a dead proxy)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        for connection in self.held:
            connection.close()
        self.listener.close()


def refused_port() -> int:
    """A local port nobody listens on."""
    return free_port()


def measure(tracking_uri: str, give_up: float, watch: float, workdir: Path) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "LEADSCORE_DATABASE_URL": f"sqlite:///{workdir / f'leadscore-{port}.db'}",
        "LEADSCORE_MODEL_URI": "models:/lead-scoring@champion",
        # /readyz names the reason to the admin key only
        "LEADSCORE_API_KEYS_BOOTSTRAP": f"bench-admin:admin:{ADMIN_KEY}",
    }
    for variable in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        env.pop(variable, None)  # MLflow's defaults, as in production
    log = workdir / f"server-{port}.log"
    started = time.perf_counter()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [LEADSCORE, "serve", "--port", str(port)],
            env=env, cwd=workdir, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    result = {
        "healthz": float("inf"),
        "service": float("inf"),
        "reason": float("inf"),
        "slowest": float("nan"),
    }
    lifespan_at = float("inf")
    try:
        with httpx.Client(timeout=5) as client:
            while time.perf_counter() - started < give_up:
                if process.poll() is not None:
                    raise SystemExit(f"leadscore serve exited: {log.read_text()[-2000:]}")
                if lifespan_at == float("inf") and STARTUP_LINE in log.read_text():
                    lifespan_at = time.perf_counter()
                try:
                    if client.get(base + "/healthz").status_code == 200:
                        result["healthz"] = time.perf_counter() - started
                        result["after_startup"] = time.perf_counter() - min(
                            lifespan_at, time.perf_counter()
                        )
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.01)
            if result["healthz"] == float("inf"):
                return result
            slowest = 0.0
            while time.perf_counter() - started < result["healthz"] + watch:
                asked = time.perf_counter()
                answer = client.get(base + "/healthz")
                slowest = max(slowest, time.perf_counter() - asked)
                assert answer.status_code == 200, answer.text
                if result["reason"] == float("inf"):
                    readiness = client.get(base + "/readyz", headers=ADMIN).json()
                    if readiness.get("reason") == "starting":  # serving/boot.py: still loading
                        continue
                    if result["service"] == float("inf"):
                        result["service"] = time.perf_counter() - started
                    ready = readiness["checks"]["model"]
                    if ready.get("error"):
                        result["reason"] = time.perf_counter() - started
                        result["reason_text"] = ready["error"]  # type: ignore[assignment]
                time.sleep(0.05)
            result["slowest"] = slowest
    finally:
        for signum in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                pass
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                pass
    return result


def _python_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--give-up", type=float, default=60.0)
    parser.add_argument("--watch", type=float, default=10.0)
    args = parser.parse_args()
    silent = SilentRegistry()
    rows = []
    python_start = statistics.median(_python_start() for _ in range(args.runs * 3))
    try:
        with tempfile.TemporaryDirectory(prefix="leadscore-startup-") as tmp:
            workdir = Path(tmp)
            cases = {
                "refuses connections": f"http://127.0.0.1:{refused_port()}",
                "accepts, never answers": f"http://127.0.0.1:{silent.port}",
                "SQLite, no such model": f"sqlite:///{workdir / 'mlflow.db'}",
            }
            for case, uri in cases.items():
                runs = [measure(uri, args.give_up, args.watch, workdir) for _ in range(args.runs)]
                rows.append((case, runs))
    finally:
        silent.close()

    def seconds(values: list[float]) -> str:
        finite = [v for v in values if v != float("inf")]
        if len(finite) < len(values):
            return f"> {args.give_up:.0f} s ({len(values) - len(finite)} of {len(values)} runs)"
        return f"{statistics.median(values):.2f} s (max {max(values):.2f})"

    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"runs per case: {args.runs}; figures from process start, median (max)")
    print(
        f"anchor: Python start (`{sys.executable} -c pass`, median of {args.runs * 3}): "
        f"{python_start * 1000:.0f} ms"
    )
    print()
    header = (
        "registry",
        "/healthz 200",
        "x Python start",
        "of which after app startup began",
        "service started",
        "/readyz gives a reason",
        "slowest /healthz while loading",
    )
    print(f"| {' | '.join(header)} |")
    print(f"|{'|'.join('---' for _ in header)}|")
    for case, runs in rows:
        slowest = [r["slowest"] for r in runs if r["slowest"] == r["slowest"]]
        healthz = [r["healthz"] for r in runs]
        print(
            f"| {case} | {seconds(healthz)} | "
            f"{statistics.median(healthz) / python_start:.1f} x | "
            f"{seconds([r.get('after_startup', float('inf')) for r in runs])} | "
            f"{seconds([r['service'] for r in runs])} | "
            f"{seconds([r['reason'] for r in runs])} | "
            f"{(max(slowest) * 1000 if slowest else float('nan')):.0f} ms |"
        )
    print()
    for case, runs in rows:
        texts = {str(r.get("reason_text", "")) for r in runs} - {""}
        for text in sorted(texts):
            print(f"{case}: /readyz said: {text[:300]}")


if __name__ == "__main__":
    main()
