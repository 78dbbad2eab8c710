"""A policy change made through one worker process is in force in another, with no restart: two
real uvicorn processes share one database; each polls the latest version. How fast it spreads is
measured by bench/propagation.py, not asserted here."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.serving.policy_support import BOOTSTRAP, OPS_KEY, SCORER_KEY, auth
from tests.serving.servers import free_port, server_process, wait_until_up
from tests.serving.waiting import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def worker_command(port: int) -> list[str]:
    return [
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
    ]


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
    env = dict(
        os.environ,
        LEADSCORE_DATABASE_URL=database_url,
        LEADSCORE_API_KEYS_BOOTSTRAP=BOOTSTRAP,
        # No model registered: the policy API works on the built-in default meanwhile.
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        LEADSCORE_MODEL_RETRY_SECONDS="3600",
        PYTHONPATH=str(ROOT),
    )
    with ExitStack() as running:  # each worker's process group is killed at the end
        urls = []
        for i in range(2):
            port, log = free_port(), tmp_path / f"worker{i}.log"
            process = running.enter_context(
                server_process(worker_command(port), env=env, cwd=tmp_path, log=log)
            )
            urls.append((f"http://127.0.0.1:{port}", process, log))
        for url, process, log in urls:
            wait_until_up(url, process, log)
        yield [url for url, _, _ in urls]


def version_seen(url: str) -> dict:
    return httpx.get(url + "/v1/policy", headers=auth(SCORER_KEY), timeout=5).json()


def seen_at(url: str, version: int) -> dict | None:
    """The policy `url` answers with, once it is `version`."""
    seen = version_seen(url)
    return seen if seen["version"] == version else None


def test_a_change_in_one_worker_applies_in_the_other_without_a_restart(two_workers):
    first, second = two_workers
    assert version_seen(second)["version"] == 0
    for version, threshold in ((1, 62), (2, 47), (3, 71)):
        answer = httpx.put(
            first + "/v1/policy",
            headers=auth(OPS_KEY),
            timeout=5,
            json={"policy": {"sales_threshold": threshold}, "reason": f"step {version}"},
        )
        assert answer.status_code == 200, answer.text
        # the worker that saved it has it at once
        assert version_seen(first)["version"] == version
        # the other one once its policy cache has refreshed
        seen = wait_for(
            partial(seen_at, second, version), f"the second worker never applied version {version}"
        )
        assert seen["policy"]["sales_threshold"] == threshold
        assert seen["created_by"] == "marketing-ops"
        assert seen["reason"] == f"step {version}"
