"""A clean shutdown under load writes every score that was answered (real `leadscore serve`, in
its own process group: tests.serving.servers kills it whole at the end)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from serving.db import make_engine, score_log
from tests.serving.conftest import BOOTSTRAP, KEYS, demo_records
from tests.serving.servers import free_port, server_process
from tests.serving.waiting import HANG_GUARD_SECONDS, wait_for

LEADSCORE = str(Path(sys.executable).with_name("leadscore"))


@pytest.mark.slow
def test_sigterm_under_load_loses_no_score_records(trained_model, database_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained_model.tracking_uri,
        "LEADSCORE_MODEL_URI": f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "LEADSCORE_DATABASE_URL": database_url,
        "LEADSCORE_API_KEYS_BOOTSTRAP": BOOTSTRAP,
        # Hold scores in memory for a while, so many are pending when the signal comes.
        "LEADSCORE_SCORE_LOG_FLUSH_SECONDS": "2",
        "LEADSCORE_SCORE_LOG_BATCH_SIZE": "100000",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    command = [LEADSCORE, "serve", "--port", str(port), "--workers", "2"]
    with server_process(command, env=env, cwd=tmp_path, log=log) as server:
        answers = []  # four ready answers: both workers are likely up

        def ready() -> bool:
            assert server.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                answers.append(httpx.get(f"{base}/readyz", timeout=2).status_code == 200)
            return sum(answers) >= 4

        wait_for(ready, "the service did not become ready")

        records = demo_records(trained_model, 8)
        answered: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def load(worker: int):
            with httpx.Client(base_url=base, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    leads = [
                        {**r, "lead_id": f"w{worker}-{n}-{r['lead_id']}"}
                        for r in records[: 1 + n % 4]
                    ]
                    try:
                        response = client.post(
                            "/v1/score",
                            json={"leads": leads},
                            headers={"Authorization": f"Bearer {KEYS['scorer']}"},
                        )
                    except httpx.HTTPError:
                        continue  # refused once the server stops accepting: not answered
                    if response.status_code == 200:
                        with lock:
                            answered.extend(r["lead_id"] for r in response.json()["results"])

        threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        try:
            time.sleep(2.5)
            pending = sum(
                float(line.split()[-1])
                for line in httpx.get(f"{base}/metrics").text.splitlines()
                if line.startswith("leadscore_score_log_pending")
            )
            # The signal a process manager sends, to uvicorn's main process only: it stops the
            # workers itself (the group is killed whole only afterwards, in any case).
            server.send_signal(signal.SIGTERM)
            server.wait(HANG_GUARD_SECONDS)
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert server.returncode == 0, log.read_text()[-3000:]
    assert pending > 0, "nothing was pending at shutdown: the test would prove nothing"
    assert len(answered) > 50
    engine = make_engine(database_url)
    with engine.connect() as connection:
        logged = connection.execute(sa.select(score_log.c.lead_id)).scalars().all()
    engine.dispose()
    assert sorted(logged) == sorted(answered)
