"""Shared set-up for the policy tests: a service on a temporary SQLite database whose champion
carries the 10-lead holdout worked out by hand in tests/features/test_policy.py.

    probability  0.95 0.85 0.75 0.65 0.55 0.45 0.35 0.25 0.15 0.05   (two weeks of leads)
    won             1    1    0    1    0    1    0    0    0    0
    expected value  95  850 1500 6500  550 4500  350 1000  150   50   (`value_holdout`)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.policy.rules import Policy
from serving.config import Settings
from serving.model_store import LoadedModel, ModelStore
from tests.serving.waiting import HANG_GUARD_SECONDS

PROBABILITIES = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05]
LABELS = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
WEEKS = 2.0
MODEL_POLICY = Policy(sales_threshold=55, nurture_threshold=25)

OPS_KEY = "ops-key-0123456789abcdef"
SCORER_KEY = "scorer-key-0123456789abcdef"
ADMIN_KEY = "admin-key-0123456789abcdef"
BOOTSTRAP = f"marketing-ops:ops:{OPS_KEY},crm:scorer:{SCORER_KEY},root:admin:{ADMIN_KEY}"


def hand_holdout() -> pd.DataFrame:
    as_of = pd.date_range("2026-01-05", periods=10, freq="34h", tz="UTC")
    return pd.DataFrame({"probability": PROBABILITIES, "label": LABELS, "as_of": as_of})


EXPECTED_VALUES = [95.0, 850.0, 1500.0, 6500.0, 550.0, 4500.0, 350.0, 1000.0, 150.0, 50.0]


def value_holdout() -> pd.DataFrame:
    """The hand holdout with each lead's expected value (probability x expected deal amount)."""
    return hand_holdout().assign(expected_value=EXPECTED_VALUES)


@dataclass
class HoldoutModel:
    """The parts of a trained LeadScorer that policy simulation reads: its holdout scores, its
    metadata and its default policy (data only: nothing here is scored)."""

    holdout: pd.DataFrame = field(default_factory=hand_holdout)
    metadata: dict = field(
        default_factory=lambda: {"name": "lead-scoring", "version": "7", "holdout_weeks": WEEKS}
    )
    policy: Policy = MODEL_POLICY
    value: object | None = None  # a deal value model (only whether there is one is read)


def settings_for(tmp_path: Path, database_url: str | None = None, **overrides) -> Settings:
    values = dict(
        database_url=database_url or f"sqlite:///{tmp_path / 'leadscore.db'}",
        api_keys_bootstrap=BOOTSTRAP,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        model_retry_seconds=3600,
    )
    values.update(overrides)
    return Settings(**values)


def hand_model_store(model: HoldoutModel | None = None) -> ModelStore:
    model = model or HoldoutModel()

    def loader(uri: str, tracking_uri: str) -> LoadedModel:
        return LoadedModel(
            scorer=model, name="lead-scoring", version="7", alias="champion", uri=uri
        )

    store = ModelStore("models:/lead-scoring@champion", "sqlite://", loader=loader)
    store.load("start")  # loaded before the app starts: no background load to wait for
    return store


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run `app` with uvicorn on a free local port in a thread; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
