"""The `leadscore` command: a thin layer that mounts each package's commands.

Each package exposes `register(app)` in its own `cli.py`, so the packages stay independent and
serving/ never imports training/.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
import typer

# Threads waiting for work sleep instead of spinning: with other work on the machine, spinning
# OpenMP threads made a two-thread gradient boosting fit 40x slower. Set before any OpenMP
# library loads (it reads the variable once); a value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_app = typer.Typer(
    name="leadscore",
    help="Lead scoring: train calibrated models from CRM history and serve scores over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# The module that registers each command (its `register(app)`). `leadscore serve` imports only
# serving/cli.py, so its port opens sooner (features/data/cli.py alone brings pandas in);
# tests/test_cli_mount.py checks this table against what each module registers.
COMMAND_MODULES = {
    "demo-data": "features.data.cli",
    "validate": "features.data.cli",
    "report": "features.report.cli",
    "train": "training.cli",
    "score": "training.cli",
    "promote": "training.cli",
    "retrain": "training.retrain",
    "serve": "serving.cli",
    "keys": "serving.cli",
    "policy": "serving.policy.cli",
}
_mounted: set[str] = set()


def _mount(modules: list[str] | None = None) -> typer.Typer:
    """Register the commands of `modules` (default: every module) on the app, once each."""
    for name in modules or dict.fromkeys(COMMAND_MODULES.values()):
        if name not in _mounted:
            importlib.import_module(name).register(_app)
            _mounted.add(name)
    return _app


def __getattr__(name: str) -> Any:
    """`leadscore.cli.app`: the app with every command (for CliRunner and in-process calls)."""
    if name == "app":
        return _mount()
    raise AttributeError(name)


@_app.command()
def version() -> None:
    """Print the leadscore version."""
    from leadscore import __version__

    typer.echo(__version__)


@_app.command()
def quickstart(
    leads: int = typer.Option(20_000, "--leads", help="How many demo leads to generate."),
    out: Path = typer.Option(Path("demo-data"), "--out", help="Where the demo tables go."),
    seed: int = typer.Option(0, "--seed", help="Seed of the demo data and of training."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the API at the end."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port"),
) -> None:
    """The README's main job: demo data -> train and register in MLflow -> keys -> serve."""
    out = out.resolve()
    tables = [out / f"{name}.parquet" for name in ("leads", "touchpoints", "outcomes")]
    _say(f"1/4 demo data: {leads:,} leads in {out}/")
    if all(path.exists() for path in tables):
        typer.echo(f"    already there (delete {out} to regenerate)")
    else:
        _run(
            [
                "demo-data",
                "--leads",
                str(leads),
                "--out",
                str(out),
                "--seed",
                str(seed),
                "--format",
                "parquet",
            ]
        )

    _say("2/4 train, evaluate and register the model in MLflow")
    _run(
        [
            "train",
            "--leads",
            str(tables[0]),
            "--touchpoints",
            str(tables[1]),
            "--outcomes",
            str(tables[2]),
            "--seed",
            str(seed),
        ]
    )

    _say("3/4 API keys for trying the service (stored hashed; shown only now)")
    keys = _demo_keys()
    for role, key in keys.items():
        typer.echo(f"    {role:<7} {key}")

    tracking = os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    base = f"http://{host}:{port}"
    _say("4/4 where to look")
    typer.echo(
        f"    API docs      {base}/docs\n"
        f"    ops page      {base}/ops   (paste the ops key)\n"
        f"    metrics       {base}/metrics\n"
        f"    MLflow UI     mlflow ui --backend-store-uri {tracking}   (then http://127.0.0.1:5000)\n"
        f"    score a lead  curl -s {base}/v1/score -H 'X-API-Key: {keys['scorer']}' "
        f"-H 'Content-Type: application/json' -d '{_example_request()}'"
    )
    if serve:
        _say(f"serving on {base} (Ctrl-C to stop)")
        _run(["serve", "--host", host, "--port", str(port)])


def _example_request() -> str:
    """A lead like the demo data's, created ten days ago, with a recent pricing visit and demo request."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)

    def ago(days: float) -> str:
        return (now - timedelta(days=days)).isoformat().replace("+00:00", "Z")

    lead = {
        "lead_id": "L-1",
        "created_at": ago(10),
        "attributes": {
            "industry": "Software",
            "company_size": "201-500",
            "country": "United States",
            "job_title": "VP Marketing",
            "lead_source": "Webinar",
        },
        "touchpoints": [
            {"occurred_at": ago(9), "channel": "webinar", "activity": "webinar_attend"},
            {"occurred_at": ago(3), "channel": "organic_search", "activity": "pricing_page_view"},
            {"occurred_at": ago(1), "channel": "direct", "activity": "demo_request"},
        ],
    }
    return json.dumps({"leads": [lead]})


def _say(message: str) -> None:
    typer.secho(f"==> {message}", bold=True)


def _run(arguments: list[str]) -> None:
    """Run one of our own sub-commands in-process, stopping quickstart if it fails."""
    try:
        _mount()(arguments, standalone_mode=False)
    except SystemExit as done:  # typer.Exit inside standalone_mode=False surfaces as an exit code
        if done.code:
            raise typer.Exit(done.code if isinstance(done.code, int) else 1) from None
    except click.exceptions.Exit as done:
        if done.exit_code:
            raise typer.Exit(done.exit_code) from None


def _demo_keys() -> dict[str, str]:
    from serving.auth import create_key
    from serving.config import Settings
    from serving.db import make_engine, upgrade_database

    url = Settings().database_url
    upgrade_database(url)
    engine = make_engine(url)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        return {
            role: create_key(engine, f"quickstart-{role}-{stamp}", role)
            for role in ("scorer", "ops", "admin")
        }
    finally:
        engine.dispose()


def main() -> None:
    command = next((word for word in sys.argv[1:] if not word.startswith("-")), None)
    module = COMMAND_MODULES.get(command or "")
    _mount([module] if module else None)()
