"""A policy change made through one worker process is in force in another within a second, with
no restart: two real uvicorn processes share one database; each polls the latest version."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.policy_support import BOOTSTRAP, OPS_KEY, SCORER_KEY, auth

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_worker(tmp_path: Path, database_url: str, port: int, name: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        LEADSCORE_DATABASE_URL=database_url,
        LEADSCORE_API_KEYS_BOOTSTRAP=BOOTSTRAP,
        # No model registered: the policy API works on the built-in default meanwhile.
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        LEADSCORE_MODEL_RETRY_SECONDS="3600",
        PYTHONPATH=str(ROOT),
    )
    log = open(tmp_path / f"{name}.log", "wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "serving.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"worker at {url} exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"worker at {url} did not start within {timeout} s")


@pytest.fixture
def two_workers(tmp_path, database_url):
    # Migrate and create the keys once before both start, so they do not race to create them.
    from serving.auth import ensure_keys
    from serving.config import parse_bootstrap_keys
    from serving.db import make_engine, upgrade_database

    upgrade_database(database_url)
    engine = make_engine(database_url)
    ensure_keys(engine, parse_bootstrap_keys(BOOTSTRAP))
    engine.dispose()
    ports = free_port(), free_port()
    processes = [
        start_worker(tmp_path, database_url, port, f"worker{i}") for i, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for i, (url, process) in enumerate(zip(urls, processes)):
            wait_until_up(url, process, tmp_path / f"worker{i}.log")
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def version_seen(url: str) -> dict:
    return httpx.get(url + "/v1/policy", headers=auth(SCORER_KEY), timeout=2).json()


def test_a_change_in_one_worker_applies_in_the_other_within_a_second(two_workers):
    first, second = two_workers
    assert version_seen(second)["version"] == 0
    lags = []
    for version, threshold in ((1, 62), (2, 47), (3, 71)):
        answer = httpx.put(
            first + "/v1/policy",
            headers=auth(OPS_KEY),
            timeout=5,
            json={"policy": {"sales_threshold": threshold}, "reason": f"step {version}"},
        )
        assert answer.status_code == 200, answer.text
        saved_at = time.monotonic()
        # the worker that saved it has it at once
        assert version_seen(first)["version"] == version
        while True:
            seen = version_seen(second)
            lag = time.monotonic() - saved_at
            if seen["version"] == version:
                break
            assert lag < 1.0, f"second worker still on version {seen['version']} after {lag:.2f} s"
            time.sleep(0.02)
        assert seen["policy"]["sales_threshold"] == threshold
        assert seen["created_by"] == "marketing-ops"
        lags.append(lag)
    print(
        f"policy propagation lag between workers: {', '.join(f'{x * 1000:.0f} ms' for x in lags)}"
    )
    assert max(lags) < 1.0
