"""The serving image's contents, run for real without a Docker engine.

`scripts/serving-venv.sh` (`make serving-venv`) builds a venv the way the Dockerfile's `serving`
target does: requirements-serving.lock (mlflow-skinny, no matplotlib) and leadscore/, features/,
serving/ without training/. Here its `leadscore serve` runs against an `mlflow server` (the full
install, as the compose file's `full` image runs it) on PostgreSQL with an mlflow-artifacts root,
holding a model trained and registered by the full install's `leadscore train`: the alias
resolves, the files download over HTTP and pass their hash and sample checks, /readyz is ready,
a lead is scored exactly as the full install scores it, /ops and /docs load their files.

The venv is not built here: installing its packages takes minutes and the network (CI builds it
in `make test`, as it installs Chromium and Java). Without it the test skips saying how to build
it (and fails under CI=true).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import missing_service
from tests.serving.conftest import BOOTSTRAP, auth, demo_records, make_settings
from tests.serving.servers import free_port, server_process, wait_for_mlflow, wait_until_up
from tests.serving.waiting import wait_for, wait_for_model

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
FULL_BIN = Path(sys.executable).parent  # the full install: mlflow server, leadscore train
AS_OF = "2025-06-01T00:00:00Z"
SERVING_VENV_HINT = (
    "no serving venv at {venv}: build it with `make serving-venv` (or `bash "
    "scripts/serving-venv.sh PATH` and LEADSCORE_SERVING_VENV=PATH); it needs the network"
)
# Packages of the full install that the serving install must not hold (training-only, or the
# MLflow server's), and the modules of ours it must not hold.
NOT_IN_SERVING = {"matplotlib", "mlflow", "flask", "gunicorn", "graphene", "docker", "pyspark"}


def serving_venv() -> Path:
    """The serving venv, holding this checkout's code (else the test would run older code)."""
    venv = Path(os.environ.get("LEADSCORE_SERVING_VENV") or ROOT / ".venv-serving")
    if not (venv / "bin" / "leadscore").exists():
        missing_service(SERVING_VENV_HINT.format(venv=venv))
    site = next(venv.glob("lib/python*/site-packages"))
    stale = [
        str(path.relative_to(ROOT))
        for package in ("leadscore", "features", "serving")
        for path in sorted((ROOT / package).rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not _same_file(path, site / path.relative_to(ROOT))
    ]
    if stale:
        pytest.fail(
            f"the serving venv at {venv} holds older code ({', '.join(stale[:3])}"
            f"{'...' if len(stale) > 3 else ''} differ): `make serving-venv` installs this "
            "checkout's (quick when the lock is unchanged)",
            pytrace=False,
        )
    return venv


def _same_file(ours: Path, installed: Path) -> bool:
    return installed.is_file() and installed.read_bytes() == ours.read_bytes()


def _clean_env() -> dict[str, str]:
    """This environment without our settings and without PYTHONPATH (which names a checkout)."""
    drop = ("LEADSCORE_", "MLFLOW_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop) and k != "PYTHONPATH"}


def _installed(venv: Path) -> dict[str, str]:
    """{normalised distribution name: version} in `venv`, asked of its own interpreter."""
    code = (
        "import json, importlib.metadata as m\n"
        "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version "
        "for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        env=_clean_env(), cwd=venv, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_the_serving_venv_holds_the_serving_lock_and_no_training():
    venv = serving_venv()
    installed = _installed(venv)
    lock = {}
    for line in (ROOT / "requirements-serving.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split("==")
            lock[name] = version
    assert {k: v for k, v in installed.items() if k in lock} == lock
    assert not NOT_IN_SERVING & set(installed), sorted(NOT_IN_SERVING & set(installed))
    assert set(installed) - set(lock) <= {"leadscore", "pip", "setuptools"}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import training"],
        env=_clean_env(), cwd=venv, capture_output=True, text=True,
    )  # fmt: skip
    assert "No module named 'training'" in done.stderr


def test_serving_install_scores_against_an_mlflow_server(fresh_databases, tmp_path):
    venv = serving_venv()
    service_db, mlflow_db = fresh_databases
    full_env = {**_clean_env(), "PYTHONPATH": str(ROOT)}  # this checkout's code, full install
    port = free_port()
    tracking = f"http://127.0.0.1:{port}"
    mlflow_command = [
        str(FULL_BIN / "mlflow"), "server", "--backend-store-uri", mlflow_db,
        "--artifacts-destination", str(tmp_path / "mlartifacts"), "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with server_process(
        mlflow_command, env=full_env, cwd=tmp_path, log=tmp_path / "mlflow.log"
    ) as ml:
        wait_for_mlflow(tracking, ml, tmp_path / "mlflow.log")
        # the full install trains and registers (the compose file's `full` image does this)
        demo = tmp_path / "demo"
        config = tmp_path / "train.yaml"
        config.write_text("training:\n  search: none\n  cv_folds: 1\n  splines: false\n")
        train_env = {**full_env, "MLFLOW_TRACKING_URI": tracking}
        for command in (
            ["demo-data", "--leads", "1000", "--out", str(demo), "--seed", "3", "--format", "parquet"],
            ["train", "--leads", str(demo / "leads.parquet"),
             "--touchpoints", str(demo / "touchpoints.parquet"),
             "--outcomes", str(demo / "outcomes.parquet"), "--config", str(config), "--seed", "1"],
        ):  # fmt: skip
            done = subprocess.run(
                [str(FULL_BIN / "leadscore"), *command],
                env=train_env, cwd=tmp_path, capture_output=True, text=True,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        # the files are in the server's artifact root, reached by clients only over HTTP
        assert list((tmp_path / "mlartifacts").rglob("estimator.skops"))

        serving_env = {
            **_clean_env(),
            "LEADSCORE_DATABASE_URL": service_db,
            "MLFLOW_TRACKING_URI": tracking,
            "LEADSCORE_MODEL_URI": "models:/lead-scoring@champion",
            "LEADSCORE_API_KEYS_BOOTSTRAP": BOOTSTRAP,
            "LEADSCORE_SCORE_LOG_FLUSH_SECONDS": "0.05",
        }
        api_port = free_port()
        url = f"http://127.0.0.1:{api_port}"
        log = tmp_path / "serve.log"
        command = [str(venv / "bin" / "leadscore"), "serve", "--host", "127.0.0.1",
                   "--port", str(api_port)]  # fmt: skip
        with server_process(command, env=serving_env, cwd=tmp_path, log=log) as api:
            wait_until_up(url, api, log)
            wait_for(lambda: httpx.get(url + "/readyz").status_code == 200,
                     f"the serving install never loaded the champion:\n{log.read_text()[-3000:]}")  # fmt: skip
            model = httpx.get(url + "/v1/model", headers=auth("scorer")).json()
            assert (model["name"], model["version"]) == ("lead-scoring", "1"), model
            # registered with file hashes and sample leads: both checked on load, no warning
            assert "no file hashes" not in log.read_text()
            assert "samples" not in log.read_text()

            records = demo_records(SimpleNamespace(demo_dir=demo), 5, as_of=AS_OF)
            answer = httpx.post(url + "/v1/score", json={"leads": records},
                                headers=auth("scorer"), timeout=60)  # fmt: skip
            assert answer.status_code == 200, answer.text
            served = answer.json()["results"]

            page = httpx.get(url + "/ops")
            assert page.status_code == 200 and "<html" in page.text.lower()
            for path in ("/ops/static/plotly.min.js", "/ops/static/ops.js", "/docs"):
                assert httpx.get(url + path).status_code == 200, path
            monitoring = httpx.get(url + "/v1/ops/monitoring", headers=auth("ops"))
            assert monitoring.status_code == 200, monitoring.text
            cli = subprocess.run(
                [str(venv / "bin" / "leadscore"), "train"],
                env=serving_env, cwd=tmp_path, capture_output=True, text=True,
            )  # fmt: skip
            assert cli.returncode == 1
            assert "`leadscore train` is not in this install" in cli.stderr
            assert "--target full" in cli.stderr and "Traceback" not in cli.stderr

        # the full install, in this process, scores the same leads the same way
        from serving.app import create_app

        settings = make_settings(
            f"sqlite:///{tmp_path / 'full.db'}", tracking, model_uri="models:/lead-scoring@champion"
        )
        with TestClient(create_app(settings)) as client:
            wait_for_model(client)
            expected = client.post(
                "/v1/score", json={"leads": records}, headers=auth("scorer")
            ).json()["results"]
    assert [r["lead_id"] for r in served] == [r["lead_id"] for r in records]
    assert served == expected
