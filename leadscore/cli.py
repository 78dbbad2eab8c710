"""The `leadscore` command: a thin layer that mounts each package's commands.

Each package exposes `register(app)` in its own `cli.py`, so the packages stay independent and
serving/ never imports training/.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="leadscore",
    help="Lead scoring: train calibrated models from CRM history and serve scores over HTTP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _mount() -> None:
    from features import cli as features_cli
    from serving import cli as serving_cli
    from serving import policy_cli
    from training import cli as training_cli

    for module in (features_cli, training_cli, serving_cli, policy_cli):
        module.register(app)


_mount()


@app.command()
def version() -> None:
    """Print the leadscore version."""
    from leadscore import __version__

    typer.echo(__version__)


def main() -> None:
    app()
