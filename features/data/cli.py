"""Commands of this package, mounted on the `leadscore` app by `leadscore.cli`: `demo-data` and
`validate`. Each is a thin layer over `features.data.demo.create_demo_data` and
`features.data.loading.load_lead_data`.

The data options (`--leads` ... `--config`) are declared once here, as `Annotated` aliases, and
every command that reads lead data (`validate`, `train`, `score`) lists them in its signature and
turns them into `load_config` overrides with `data_overrides`.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_args

import typer

from features.data.config import load_config
from features.data.demo.process import SHAPES
from features.data.loading import load_lead_data
from features.data.validation import DataValidationError
from features.data.vocabulary import AttributeType

# --------------------------------------------------------------------------------------------------
# The data options, shared by validate, train and score

DATA = "Data (the column mapping; a --config file sets the same, options win)"


class DecimalMark(StrEnum):
    point = "."
    comma = ","


class ThousandsMark(StrEnum):
    comma = ","
    point = "."
    space = " "
    apostrophe = "'"


LeadsOption = Annotated[
    Path | None, typer.Option("--leads", help="Leads file (CSV or Parquet).", rich_help_panel=DATA)
]
TouchpointsOption = Annotated[
    Path | None, typer.Option("--touchpoints", help="Touchpoints file.", rich_help_panel=DATA)
]
OutcomesOption = Annotated[
    Path | None,
    typer.Option(
        "--outcomes", help="Outcomes file (lead_id, closed_at, won).", rich_help_panel=DATA
    ),
]
IdOption = Annotated[
    str | None,
    typer.Option("--id", help="Lead id column of the leads file.", rich_help_panel=DATA),
]
CreatedAtOption = Annotated[
    str | None,
    typer.Option(
        "--created-at", help="Creation time column of the leads file.", rich_help_panel=DATA
    ),
]
LabelOption = Annotated[
    str | None,
    typer.Option("--label", help="Label column: flat mode, no timestamps.", rich_help_panel=DATA),
]
PositiveOption = Annotated[
    str | None,
    typer.Option(
        "--positive", help="The label (or won) value meaning 'converted'.", rich_help_panel=DATA
    ),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude", help="Lead column never used as an attribute (repeat).", rich_help_panel=DATA
    ),
]
TypeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--type",
        help="COLUMN=TYPE: the type of an attribute (categorical, numeric, boolean, datetime) "
        "instead of the inferred one (repeat).",
        rich_help_panel=DATA,
    ),
]
TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone", help="Zone of timestamps without an offset (UTC).", rich_help_panel=DATA
    ),
]
DayfirstOption = Annotated[
    bool | None,
    typer.Option(
        "--dayfirst/--no-dayfirst",
        help="03/04/2024 is 3 April (--dayfirst) or 4 March (--no-dayfirst); unset: month-first, "
        "and dates that read both ways are reported.",
        rich_help_panel=DATA,
        show_default=False,
    ),
]
DatetimeFormatOption = Annotated[
    str | None,
    typer.Option(
        "--datetime-format",
        help="strftime format of the timestamps, e.g. '%d/%m/%Y %H:%M'.",
        rich_help_panel=DATA,
    ),
]
DecimalOption = Annotated[
    DecimalMark | None,
    typer.Option(
        "--decimal",
        help="Decimal mark of numbers; detected when the values are unambiguous.",
        rich_help_panel=DATA,
    ),
]
ThousandsOption = Annotated[
    ThousandsMark | None,
    typer.Option(
        "--thousands",
        help="Thousands separator; default: any mark but the decimal one, in groups of three.",
        rich_help_panel=DATA,
    ),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option(
        "--delimiter",
        help="CSV delimiter of every file; sniffed when absent.",
        rich_help_panel=DATA,
    ),
]
EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        help="CSV encoding of every file; UTF-8, else cp1252 with a warning.",
        rich_help_panel=DATA,
    ),
]
DoNotContactOption = Annotated[
    list[str] | None,
    typer.Option(
        "--do-not-contact",
        help="Lead column whose yes means 'do not contact', beside the built-in names (repeat).",
        rich_help_panel=DATA,
    ),
]
DemoRequestOption = Annotated[
    list[str] | None,
    typer.Option(
        "--demo-request",
        help="Lead column whose yes means 'requested a demo', beside the built-in names (repeat).",
        rich_help_panel=DATA,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML config file (column mapping; for train also features:, training:, policy:); "
        "options win over it.",
        rich_help_panel=DATA,
    ),
]


def data_overrides(
    *,
    leads: Path | None = None,
    touchpoints: Path | None = None,
    outcomes: Path | None = None,
    id: str | None = None,
    created_at: str | None = None,
    label: str | None = None,
    positive: str | None = None,
    exclude: list[str] | None = None,
    types: list[str] | None = None,
    timezone: str | None = None,
    dayfirst: bool | None = None,
    datetime_format: str | None = None,
    decimal: DecimalMark | None = None,
    thousands: ThousandsMark | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    do_not_contact: list[str] | None = None,
    demo_request: list[str] | None = None,
) -> dict[str, Any]:
    """The data options as `load_config` overrides (None: not given)."""
    return {
        "leads": leads, "touchpoints": touchpoints, "outcomes": outcomes, "id": id,
        "created_at": created_at, "label": label, "positive": positive,
        "exclude": exclude or None, "types": parse_types(types), "timezone": timezone,
        "dayfirst": dayfirst, "datetime_format": datetime_format,
        "decimal": None if decimal is None else decimal.value,
        "thousands": None if thousands is None else thousands.value,
        "delimiter": delimiter, "encoding": encoding,
        "do_not_contact_columns": do_not_contact or None,
        "demo_request_columns": demo_request or None,
    }  # fmt: skip


ATTRIBUTE_TYPES = get_args(AttributeType)


def parse_types(values: list[str] | None) -> dict[str, str] | None:
    """`--type 'Postal Code=categorical'` options as a mapping; a usage error names a bad one."""
    if not values:
        return None
    types: dict[str, str] = {}
    for value in values:
        column, sep, kind = value.rpartition("=")
        kind = kind.strip().lower()
        if not sep or not column.strip() or kind not in ATTRIBUTE_TYPES:
            raise typer.BadParameter(
                f"{value!r}: write COLUMN=TYPE with TYPE one of {', '.join(ATTRIBUTE_TYPES)}, "
                "e.g. --type 'Postal Code=categorical'",
                param_hint="--type",
            )
        types[column.strip()] = kind
    return types


# --------------------------------------------------------------------------------------------------
# Commands


# The shapes of `process.SHAPES`, as the option's choices.
DemoShape = StrEnum("DemoShape", {name: name for name in SHAPES})  # type: ignore[misc]


class DemoFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    both = "both"


def demo_data(
    leads: Annotated[
        int | None,
        typer.Option(
            "--leads",
            min=1,
            help="How many leads to generate; default: the shape's (20,000; small: 3,000).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the tables into.")] = Path(
        "demo-data"
    ),
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed; the same seed gives the same data.")
    ] = 0,
    format: Annotated[
        DemoFormat, typer.Option("--format", help="File format of the three tables.")
    ] = DemoFormat.both,
    shape: Annotated[
        DemoShape,
        typer.Option(
            "--shape",
            help="Variation of the known process, its truth in oracle.parquet as for the "
            "default (README, 'Demo data').",
        ),
    ] = DemoShape("default"),
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
    shape_name = str(shape.value)
    n_leads = SHAPES[shape_name].leads if leads is None else leads
    steps = demo.progress_steps(formats)
    with Progress(
        TextColumn("{task.description:<28}"), BarColumn(), TimeElapsedColumn(), transient=True
    ) as bar:
        task = bar.add_task("generating", total=steps)

        def step(description: str) -> None:
            bar.update(task, description=description, advance=1)

        summary = demo.create_demo_data(
            out, n_leads, seed=seed, formats=formats, progress=step, shape=shape_name
        )
    typer.echo(
        f"wrote {summary.leads:,} leads, {summary.touchpoints:,} touchpoints and "
        f"{summary.outcomes:,} outcomes ({summary.wins:,} won) to {summary.out}/"
        + ("" if shape_name == "default" else f" (shape {shape_name})")
    )
    typer.echo(
        f"export date {summary.export_date}: leads created in the last months are still open; "
        f"mean true win probability {summary.mean_true_probability:.1%} (oracle.parquet, never a feature)"
    )
    if shape_name != "default":  # its truth needs the shape: oracle_from_observables(..., shape)
        typer.echo(f"shape {shape_name}: {SHAPES[shape_name].description}")
    for path in summary.files:
        typer.echo(f"  {path}")


def validate(
    leads: LeadsOption = None,
    touchpoints: TouchpointsOption = None,
    outcomes: OutcomesOption = None,
    id: IdOption = None,
    created_at: CreatedAtOption = None,
    label: LabelOption = None,
    positive: PositiveOption = None,
    exclude: ExcludeOption = None,
    types: TypeOption = None,
    timezone: TimezoneOption = None,
    dayfirst: DayfirstOption = None,
    datetime_format: DatetimeFormatOption = None,
    decimal: DecimalOption = None,
    thousands: ThousandsOption = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    do_not_contact: DoNotContactOption = None,
    demo_request: DemoRequestOption = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read and check lead data; print what is wrong and how to fix it (exit code 1 on errors)."""
    overrides = data_overrides(
        leads=leads, touchpoints=touchpoints, outcomes=outcomes, id=id, created_at=created_at,
        label=label, positive=positive, exclude=exclude, types=types, timezone=timezone,
        dayfirst=dayfirst, datetime_format=datetime_format, decimal=decimal,
        thousands=thousands, delimiter=delimiter, encoding=encoding,
        do_not_contact=do_not_contact, demo_request=demo_request,
    )  # fmt: skip
    if config is None and leads is None:
        typer.echo(
            "error: pass --leads PATH (and --touchpoints/--outcomes) or --config FILE", err=True
        )
        raise typer.Exit(2)
    try:
        data_config = load_config(config, **overrides).data
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
