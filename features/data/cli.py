"""Commands of this package, mounted on the `leadscore` app by `leadscore.cli`: `demo-data` and
`validate`. Each is a thin layer over `features.data.demo.create_demo_data` and
`features.data.loading.load_lead_data`."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.data.validation import DataValidationError


class DemoFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    both = "both"


def demo_data(
    leads: Annotated[
        int, typer.Option("--leads", min=1, help="How many leads to generate.")
    ] = 20_000,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the tables into.")] = Path(
        "demo-data"
    ),
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives the same data.")
    ] = 0,
    format: Annotated[
        DemoFormat, typer.Option("--format", help="File format of the three tables.")
    ] = DemoFormat.both,
) -> None:
    """Write demo leads, touchpoints and outcomes (and oracle.parquet, the true win probabilities)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from features.data import demo

    formats = ("parquet", "csv") if format is DemoFormat.both else (format.value,)
    if out.exists() and not out.is_dir():
        typer.echo(
            f"error: --out {out} is a file; pass a directory (it is created if missing)", err=True
        )
        raise typer.Exit(2)
    steps = demo.progress_steps(formats)
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task("generating", total=steps)

        def step(description: str) -> None:
            bar.update(task, description=description, advance=1)

        summary = demo.create_demo_data(out, leads, seed=seed, formats=formats, progress=step)
    typer.echo(
        f"wrote {summary.leads:,} leads, {summary.touchpoints:,} touchpoints and "
        f"{summary.outcomes:,} outcomes ({summary.wins:,} won) to {summary.out}/"
    )
    typer.echo(
        f"export date {summary.export_date}: leads created in the last months are still open; "
        f"mean true win probability {summary.mean_true_probability:.1%} (oracle.parquet, never a feature)"
    )
    for path in summary.files:
        typer.echo(f"  {path}")


def validate(
    leads: Annotated[
        Path | None, typer.Option("--leads", help="Leads file (CSV or Parquet).")
    ] = None,
    touchpoints: Annotated[
        Path | None, typer.Option("--touchpoints", help="Touchpoints file.")
    ] = None,
    outcomes: Annotated[Path | None, typer.Option("--outcomes", help="Outcomes file.")] = None,
    id: Annotated[
        str | None, typer.Option("--id", help="Lead id column of the leads file.")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Label column: flat mode, no timestamps.")
    ] = None,
    positive: Annotated[
        str | None,
        typer.Option("--positive", help="The label (or won) value meaning 'converted'."),
    ] = None,
    created_at: Annotated[
        str | None,
        typer.Option("--created-at", help="Creation timestamp column of the leads file."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="Zone of timestamps without an offset (UTC)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML column mapping; options override it.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read and check lead data; print what is wrong and how to fix it (exit code 1 on errors)."""

    overrides = {
        "leads": leads,
        "touchpoints": touchpoints,
        "outcomes": outcomes,
        "id": id,
        "label": label,
        "positive": positive,
        "created_at": created_at,
        "timezone": timezone,
    }
    try:
        if config is not None:
            data_config = DataConfig.from_yaml(config, **overrides)
        elif leads is None:
            typer.echo(
                "error: pass --leads PATH (and --touchpoints/--outcomes) or --config FILE", err=True
            )
            raise typer.Exit(2)
        else:
            data_config = DataConfig(leads=leads).with_overrides(**overrides)
        data = load_lead_data(data_config, progress=not as_json and sys.stdout.isatty())
        report = data.report
    except DataValidationError as exc:
        report = exc.report
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        typer.echo(report.to_text())
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level app."""
    app.command("demo-data")(demo_data)
    app.command("validate")(validate)
