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
# The serving install (requirements-serving.lock, the Dockerfile's default target) has no
# training/ and no matplotlib: its commands are left out of the listing, and running one says so.
FULL_INSTALL = (
    "use the full image (`docker build --target full .`) or a full install (`make install`, "
    "`pip install leadscore`)"
)


class CommandNotInstalled(RuntimeError):
    """A command whose module (or a package it needs) is not in this install."""

    def __init__(self, command: str, module: str | None) -> None:
        super().__init__(
            f"`leadscore {command}` is not in this install: it needs the Python module "
            f"{module!r}, which is not installed (the serving image holds only what `leadscore "
            f"serve` needs); {FULL_INSTALL}"
        )


def _mount(modules: list[str] | None = None, *, skip_missing: bool = False) -> typer.Typer:
    """Register the commands of `modules` (default: every module) on the app, once each.

    With `skip_missing`, a module that cannot be imported for want of a package is left out (its
    commands are named in the help's epilog)."""
    missing = []
    for name in modules or dict.fromkeys(COMMAND_MODULES.values()):
        if name in _mounted:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            if not skip_missing:
                raise
            missing += [c for c, owner in COMMAND_MODULES.items() if owner == name]
            continue
        module.register(_app)
        _mounted.add(name)
    if missing:
        _app.info.epilog = f"Not in this install: {', '.join(missing)} ({FULL_INSTALL})."
    return _app


def _mount_command(command: str | None) -> typer.Typer:
    """The app with `command`'s module mounted (`CommandNotInstalled` naming `command` if this
    install lacks it), or, for no or an unknown command, every module this install has."""
    module = COMMAND_MODULES.get(command or "")
    if module is None:
        return _mount(skip_missing=True)
    try:
        return _mount([module])
    except ModuleNotFoundError as error:
        raise CommandNotInstalled(command or "", error.name) from error


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
        _mount_command(arguments[0])(arguments, standalone_mode=False)
    except CommandNotInstalled as error:
        typer.secho(str(error), err=True, fg="red")
        raise typer.Exit(1) from None
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
    try:
        app = _mount_command(command)
    except CommandNotInstalled as error:
        typer.secho(str(error), err=True, fg="red")
        raise SystemExit(1) from None
    app()
