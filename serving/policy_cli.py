"""`leadscore policy ...` commands, mounted by `leadscore.cli`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the policy commands to the top-level app."""
