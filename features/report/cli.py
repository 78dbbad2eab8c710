"""`leadscore report funnel`: the funnel report from CRM files, mounted by `leadscore.cli`.

The only module of `features.report` that reads files: leads, touchpoints and outcomes through the
data contract (`DataConfig` + `load_lead_data`, errors reported as `leadscore validate` does),
scores through the contract's `read_table`. The maths is `features.report.funnel.funnel`.
"""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import pandas as pd
import typer

from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.data.readers import parse_timestamps, read_table
from features.data.validation import DataValidationError, ValidationReport, format_examples
from features.data.values import to_text
from features.report import formats
from features.report.funnel import FunnelError, funnel
from features.report.measures import ATTRIBUTION_NAMES, GROUPING_NAMES

report_app = typer.Typer(
    help="Reports from CRM files: the funnel by channel, campaign, week, grade ...",
    no_args_is_help=True,
)

# The command-line option behind each parameter a FunnelError can name.
OPTIONS = {
    "by": "--by",
    "attribution": "--attribution",
    "start": "--from",
    "end": "--to",
    "leads": "--leads",
    "scores": "--scores",
}

_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def funnel_command(
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help=f"Group by: {', '.join(GROUPING_NAMES)}, or any lead attribute column "
            "(e.g. lead_source, industry).",
        ),
    ] = "channel",
    attribution: Annotated[
        str,
        typer.Option(
            "--attribution",
            help=f"Credit rule of channel and campaign reports: {', '.join(ATTRIBUTION_NAMES)}.",
        ),
    ] = "first_touch",
    leads: Annotated[
        Path | None, typer.Option("--leads", help="Leads file (CSV or Parquet).")
    ] = None,
    touchpoints: Annotated[
        Path | None, typer.Option("--touchpoints", help="Touchpoints file.")
    ] = None,
    outcomes: Annotated[Path | None, typer.Option("--outcomes", help="Outcomes file.")] = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            "--scores",
            help="Scores file (lead_id, score, grade, decision, optional scored_at), e.g. what "
            "`leadscore score --out` writes; needed by --by grade/score_band/decision.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML column mapping; options override it.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from", help="Leads created on or after this date (YYYY-MM-DD or ISO 8601)."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Leads created up to this date; a plain date includes that whole day.",
        ),
    ] = None,
    format: Annotated[
        ReportFormat, typer.Option("--format", help="table (terminals), json or csv.")
    ] = ReportFormat.table,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the report here instead of stdout.")
    ] = None,
) -> None:
    """Leads, sales, wins, revenue and days to close per channel, campaign, week ... (exit 1 on
    data errors, 2 on options the report cannot follow)."""
    if attribution not in ATTRIBUTION_NAMES:
        _usage(
            "attribution",
            f"{attribution!r} is not an attribution rule; accepted: {', '.join(ATTRIBUTION_NAMES)}",
        )
    try:
        if config is not None:
            data_config = DataConfig.from_yaml(
                config, leads=leads, touchpoints=touchpoints, outcomes=outcomes
            )
        elif leads is None:
            typer.echo(
                "error: pass --leads PATH (with --touchpoints and --outcomes) or --config FILE",
                err=True,
            )
            raise typer.Exit(2)
        else:
            data_config = DataConfig(leads=leads).with_overrides(
                touchpoints=touchpoints, outcomes=outcomes
            )
        data = load_lead_data(data_config, progress=sys.stdout.isatty())
        score_frame = _read_scores(scores, data_config) if scores is not None else None
    except DataValidationError as exc:
        typer.echo(exc.report.to_text(), err=True)
        raise typer.Exit(1) from None
    if data.report.warnings:
        typer.echo(
            f"note: reading the data gave {len(data.report.warnings)} warning(s) (rows dropped "
            "or values read as missing); `leadscore validate` lists them",
            err=True,
        )
    try:
        table = funnel(
            data.leads,
            data.touchpoints,
            data.outcomes,
            by=by,
            attribution=attribution,
            scores=score_frame,
            start=_moment(start, data_config.timezone, whole_day=False),
            end=_moment(end, data_config.timezone, whole_day=True),
        )
    except FunnelError as exc:
        _usage(exc.option, exc.message)
    render = {
        ReportFormat.table: formats.to_table,
        ReportFormat.json: formats.to_json,
        ReportFormat.csv: formats.to_csv,
    }[format]
    text = render(table)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote the funnel by {by} ({len(table) - 1} groups) to {output}", err=True)


def _usage(option: str, message: str) -> NoReturn:
    typer.echo(f"error: {OPTIONS.get(option, option)}: {message}", err=True)
    raise typer.Exit(2)


def _moment(value: str | None, timezone: str | None, *, whole_day: bool) -> Any:
    """A --from/--to value in the data's time zone (UTC unless the config sets `timezone:`);
    --to with a plain date means the end of that day."""
    if value is None:
        return None
    try:
        moment = pd.Timestamp(value)
    except (ValueError, TypeError):
        return value  # funnel() names the option and the accepted forms
    if moment.tzinfo is None:
        moment = moment.tz_localize(timezone or "UTC")
    if whole_day and _PLAIN_DATE.fullmatch(value.strip()):
        moment += pd.Timedelta(days=1)
    return moment


def _read_scores(path: Path, config: DataConfig) -> pd.DataFrame:
    """The scores file: lead ids as text, `scored_at` parsed when there; errors as a report."""
    report = ValidationReport()
    frame = read_table(path, "scores", report)
    file = str(path)
    if frame is not None:
        if "lead_id" not in frame.columns:
            report.error(
                "required lead id column 'lead_id' is missing",
                file=file,
                column="lead_id",
                examples=format_examples(frame.columns, limit=12),
                fix="the scores file needs lead_id and score, grade and/or decision columns, as "
                "`leadscore score --out` writes them; the examples are the file's columns",
            )
        elif not {"score", "grade", "decision"} & set(frame.columns):
            report.error(
                "no score, grade or decision column",
                file=file,
                examples=format_examples(frame.columns, limit=12),
                fix="write the scores with `leadscore score --out FILE`, or name the columns "
                "score, grade and decision",
            )
    if frame is None or report.errors:
        raise DataValidationError(report)
    frame["lead_id"] = to_text(frame["lead_id"]).str.strip()
    if "scored_at" in frame.columns:
        parsed, _, _ = parse_timestamps(frame["scored_at"], timezone=config.timezone)
        frame["scored_at"] = parsed
    return frame


def register(app: typer.Typer) -> None:
    """Add `leadscore report ...` to the top-level app."""
    report_app.command("funnel")(funnel_command)
    app.add_typer(report_app, name="report")
