"""schemathesis against the policy and ops endpoints of a live server: no input, valid or not,
gets a server error (the whole API's run is the serving tests' job)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serving.app import create_app
from tests.serving.policy_support import OPS_KEY, hand_model_store, serve_in_thread, settings_for

pytestmark = pytest.mark.slow


def test_policy_endpoints_never_answer_with_a_server_error(tmp_path):
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        cli = shutil.which("schemathesis")
    assert cli, "schemathesis is missing: pip install -r requirements.lock"
    app = create_app(settings_for(tmp_path), model_store=hand_model_store())
    with serve_in_thread(app) as url:
        run = subprocess.run(
            [
                str(cli),
                "run",
                url + "/openapi.json",
                "--include-path-regex",
                "^/v1/(policy|ops)",
                "-H",
                f"Authorization: Bearer {OPS_KEY}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--workers",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert "7 selected" in run.stdout  # policy x4, rollback, restore-default, ops monitoring
