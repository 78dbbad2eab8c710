"""`leadscore train`, `leadscore score`, `leadscore promote`: thin layers over training/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from features.data.cli import (
    ConfigOption,
    CreatedAtOption,
    DatetimeFormatOption,
    DayfirstOption,
    DecimalOption,
    DelimiterOption,
    DemoRequestOption,
    DoNotContactOption,
    EncodingOption,
    ExcludeOption,
    IdOption,
    LabelOption,
    LeadsOption,
    OutcomesOption,
    PositiveOption,
    ThousandsOption,
    TimezoneOption,
    TouchpointsOption,
    TypeOption,
    data_overrides,
)
from features.model.artifact import MODEL_NAME

if TYPE_CHECKING:
    from training.train import RunConfig

# --------------------------------------------------------------------------------------------------
# The training options, shared by train and retrain (the config file's `training:` sets the same)

TRAINING = "Training (a --config file's training: section sets the same; options win)"

TimeBudgetOption = Annotated[
    float | None,
    typer.Option(
        "--time-budget",
        metavar="SECONDS",
        help="Seconds the model search may take (default 45; config: training.time_budget). When "
        "they run out the candidate being cross-validated finishes and the rest are skipped; the "
        "run logs which.",
        rich_help_panel=TRAINING,
    ),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU cores to train on (default: those free when training starts; config: "
        "training.threads). 1 keeps training to one core.",
        rich_help_panel=TRAINING,
    ),
]


SegmentByOption = Annotated[
    str | None,
    typer.Option(
        "--segment-by",
        metavar="COLUMN",
        help="A categorical attribute column: each of its values with enough won and lost "
        "leads (training.min_wins, min_losses) gets a model of its own, the rest the global "
        "model (config: training.segment_by).",
        rich_help_panel=TRAINING,
    ),
]


def apply_training_options(
    run_config: RunConfig,
    time_budget: float | None = None,
    threads: int | None = None,
    segment_by: str | None = None,
) -> None:
    """Put the training options given (None: not given) into `run_config.training`; raises
    TrainingConfigError naming the option and the fix."""
    from training.train import TrainingConfigError

    if time_budget is not None:
        if not time_budget > 0:
            raise TrainingConfigError(
                f"--time-budget must be a positive number of seconds, got {time_budget:g}; leave "
                "it out for the default (45), or set training.time_budget: null in the config "
                "file for no limit"
            )
        run_config.training.time_budget = time_budget
    if threads is not None:
        if threads < 1:
            raise TrainingConfigError(
                f"--threads must be 1 or more, got {threads}; leave it out to use the cores "
                "that are free"
            )
        run_config.training.threads = threads
    if segment_by is not None:
        run_config.training.segment_by = segment_by or None


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _print_json(payload: dict) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


ENGINES = ("pandas", "spark")
EngineOption = typer.Option(
    "pandas",
    "--engine",
    help="pandas (this machine) or spark: read Parquet from any path Spark can read (hdfs://, "
    "s3a://, a folder) and do the per-lead work on Spark (needs `pip install 'leadscore[spark]'` "
    "and Java 17).",
)
SparkMasterOption = typer.Option(
    "local[*]",
    "--spark-master",
    help="Spark master with --engine spark (local[*], spark://host:7077, yarn, ...); empty: "
    "what spark-submit configured.",
)


def _spark(engine: str, master: str):
    """The Spark session for --engine spark (None for pandas); exits with what to install."""
    if engine not in ENGINES:
        _fail(f"--engine {engine}: unknown engine; use one of {', '.join(ENGINES)}")
    if engine != "spark":
        return None
    from features.spark import SparkUnavailable, spark_session

    try:
        return spark_session(master or None)
    except SparkUnavailable as exc:
        _fail(f"--engine spark: {exc}")


def train_command(
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
    from_database: str | None = typer.Option(
        None,
        "--from-database",
        help="Train from what the service captured and the outcomes it was sent (the URL of "
        "its LEADSCORE_DATABASE_URL), point in time, instead of files.",
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment name."),
    model_name: str = typer.Option(MODEL_NAME, "--model-name", help="Registered model name."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same data + seed = same metrics)."),
    allow_suspected_leakage: bool = typer.Option(
        False,
        "--allow-suspected-leakage",
        help="Let the gate promote the model even with strongly suspected leakage (only when the "
        "suspected column is known when a lead arrives); config: training.allow_suspected_leakage.",
    ),
    time_budget: TimeBudgetOption = None,
    threads: ThreadsOption = None,
    segment_by: SegmentByOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
    engine: str = EngineOption,
    spark_master: str = SparkMasterOption,
) -> None:
    """Train, evaluate and register a lead scoring model in MLflow."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from features.data.validation import DataValidationError
    from features.spark import SparkInputError
    from training.data import TrainingDataError
    from training.train import TrainingConfigError, resolve_config, train

    console = _console()
    if from_database is not None and any(v is not None for v in (leads, touchpoints, outcomes)):
        _fail(
            "--from-database reads the leads, touchpoints and outcomes from the service's "
            "database: leave out --leads, --touchpoints and --outcomes"
        )
    try:
        from training.database import database_run_config, read_lead_data

        if from_database:
            run_config = database_run_config(config)
        else:
            run_config = resolve_config(config, **data_overrides(
                leads=leads, touchpoints=touchpoints, outcomes=outcomes, id=id, created_at=created_at,
                label=label, positive=positive, exclude=exclude, types=types, timezone=timezone,
                dayfirst=dayfirst, datetime_format=datetime_format, decimal=decimal,
                thousands=thousands, delimiter=delimiter, encoding=encoding,
                do_not_contact=do_not_contact, demo_request=demo_request,
            ))  # fmt: skip
        if allow_suspected_leakage:
            run_config.training.allow_suspected_leakage = True
        apply_training_options(run_config, time_budget, threads, segment_by)
        if engine == "spark" and from_database:
            _fail("--engine spark reads Parquet files: leave out --from-database")
        if run_config.training.ages_from_traffic and not from_database:
            _fail(
                "training.ages_from_traffic reads the ages at which the service scored leads "
                "from its database: train with --from-database URL (or leadscore retrain), "
                "without --engine spark, or set it to false"
            )
        if from_database:
            from training.database import apply_traffic_ages

            said = apply_traffic_ages(run_config, from_database)
            if said:
                console.print(said, highlight=False)
        spark = _spark(engine, spark_master)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=as_json,
        ) as progress:  # fmt: skip
            task = progress.add_task("starting the MLflow run", total=None)
            # files are read by train, inside the MLflow run (the run spans the training)
            data = (
                read_lead_data(from_database, run_config.data, run_config.training.now)
                if from_database
                else None
            )
            if spark is not None:
                from training.spark import train_on_spark

                result, sample = train_on_spark(
                    spark, run_config, experiment=experiment, model_name=model_name, seed=seed,
                    step=lambda text: progress.update(task, description=text),
                )  # fmt: skip
                console.print(sample.to_text(), highlight=False)
            else:
                result = train(
                    run_config, experiment=experiment, model_name=model_name, seed=seed,
                    step=lambda text: progress.update(task, description=text), data=data,
                )  # fmt: skip
            progress.update(task, description="done")
    except DataValidationError as exc:
        typer.echo(exc.report.to_text() if hasattr(exc, "report") else str(exc), err=True)
        raise typer.Exit(2) from None
    except (TrainingDataError, TrainingConfigError, SparkInputError) as exc:
        _fail(str(exc))
        return
    summary = result.summary()
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if result.leakage:
        from training.leakage import exclude_command

        console.print(
            f"to exclude every suspected column: {exclude_command(result.leakage)}", highlight=False
        )
    if as_json:
        _print_json(summary)
        return
    m = result.metrics
    typer.echo(
        f"model {result.model_name} version {result.version} ({summary['alias']}), run {result.run_id}\n"
        f"  {result.selected}"
        f"{' (served refitted on training + holdout)' if result.refit else ''}\n"
        f"  holdout: ROC AUC {m['roc_auc']:.4f}  PR AUC {m['pr_auc']:.4f}  log loss {m['log_loss']:.4f}  "
        f"Brier {m['brier']:.4f}  ECE {m['ece']:.4f}\n"
        f"  {result.gate.reason}\n"
        f"  model URI: {result.model_uri}"
    )


def _console() -> Any:
    """stderr's console: wrapped to the terminal's width in one, unwrapped in a log or a pipe (at
    rich's 80 columns a warning naming a candidate was cut mid-word)."""
    from rich.console import Console

    console = Console(stderr=True)
    console.soft_wrap = not console.is_terminal
    return console


def score_command(
    model: str = typer.Option(
        ..., "--model", help="Model URI, e.g. models:/lead-scoring@champion."
    ),
    out: Path = typer.Option(..., "--out", help="Output file: .csv or .parquet."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Scoring moment (ISO 8601); default now, or the file's as_of column."
    ),
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
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="LEADSCORE_DATABASE_URL",
        help="The service's database: decide with the qualification policy in force there (what "
        "POST /v1/score applies). Default: LEADSCORE_DATABASE_URL if set, else the model's own "
        "policy. The `policy` column says which was used.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
    engine: str = EngineOption,
    spark_master: str = SparkMasterOption,
) -> None:
    """Score a leads file with a registered model: one row per lead."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from features.data.validation import DataValidationError
    from training.score import (
        ScoreError,
        check_output_path,
        load_for_scoring,
        policy_in_force,
        score_data,
        scoring_config,
        use_fact_columns,
        write_scores,
    )
    from training.tracking import tracking_uri

    console = _console()
    # the label column of a scoring file is ignored, like any excluded column
    overrides = data_overrides(
        leads=leads, touchpoints=touchpoints, id=id, created_at=created_at,
        exclude=[*(exclude or []), *([label] if label else [])], types=types, timezone=timezone, dayfirst=dayfirst,
        datetime_format=datetime_format, decimal=decimal, thousands=thousands,
        delimiter=delimiter, encoding=encoding, do_not_contact=do_not_contact,
        demo_request=demo_request,
    )  # fmt: skip
    unused = [name for name, value in (("--outcomes", outcomes), ("--positive", positive)) if value]
    if unused:
        console.print(f"note: {' and '.join(unused)} not used when scoring", highlight=False)
    if engine == "spark":
        _score_on_spark(
            model, out, as_of, config, leads, overrides, database_url, spark_master, as_json
        )
        return
    _spark(engine, spark_master)  # an unknown engine's message
    try:
        out_path = check_output_path(out)
        if config is None and leads is None:
            raise ScoreError("pass --leads PATH (the leads to score) or --config FILE with leads:")
        if leads is not None and not leads.is_file():
            raise ScoreError(f"--leads {leads}: file not found")
        if touchpoints is not None and not touchpoints.is_file():
            raise ScoreError(f"--touchpoints {touchpoints}: file not found")
        scorer = _load_scorer(model)
        applied = policy_in_force(scorer, database_url)
        data_config = scoring_config(scorer, config_file=config, **overrides)
        use_fact_columns(scorer, data_config)
        data = load_for_scoring(data_config)
        with Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=as_json,
        ) as progress:  # fmt: skip
            task = progress.add_task("scoring", total=len(data.leads))
            scored = score_data(
                scorer, data, as_of=as_of, progress=lambda n: progress.advance(task, n),
                policy=applied,
            )  # fmt: skip
        write_scores(scored, out_path)
    except DataValidationError as exc:
        typer.echo(exc.report.to_text() if hasattr(exc, "report") else str(exc), err=True)
        raise typer.Exit(2) from None
    except (ScoreError, ValueError) as exc:
        _fail(str(exc))
        return
    summary = {
        "model_uri": model,
        "model_name": scorer.metadata.get("name"),
        "version": scorer.metadata.get("version"),
        "tracking_uri": tracking_uri(),
        "leads": int(len(scored)),
        "policy": applied.label,
        "out": str(out_path),
        "decisions": {k: int(v) for k, v in scored["decision"].value_counts().items()},
        "mean_probability": float(scored["probability"].mean()) if len(scored) else None,
        "warnings": [f.to_text() for f in data.report.warnings]
        if hasattr(data.report, "warnings")
        else [],
    }
    if as_json:
        _print_json(summary)
    else:
        typer.echo(
            f"scored {len(scored):,} leads with {model} under the {applied.label} -> {out_path}"
        )


def _score_on_spark(
    model: str,
    out: Path,
    as_of: str | None,
    config: Path | None,
    leads: Path | None,
    overrides: dict,
    database_url: str | None,
    master: str,
    as_json: bool,
) -> None:
    """`score --engine spark`: Parquet in, a Parquet folder (or CSV folder for .csv) out."""
    from features.data.validation import DataValidationError
    from features.spark import SparkInputError, spark_path
    from training.score import ScoreError, policy_in_force, scoring_config, use_fact_columns
    from training.spark import score_on_spark
    from training.tracking import tracking_uri

    try:
        if config is None and leads is None:
            raise ScoreError("pass --leads PATH (the leads to score) or --config FILE with leads:")
        scorer = _load_scorer(model)
        applied = policy_in_force(scorer, database_url)
        data_config = scoring_config(scorer, config_file=config, **overrides)
        use_fact_columns(scorer, data_config)
        spark = _spark("spark", master)
        counts = score_on_spark(spark, scorer, data_config, applied, str(out), as_of)
    except DataValidationError as exc:
        typer.echo(exc.report.to_text() if hasattr(exc, "report") else str(exc), err=True)
        raise typer.Exit(2) from None
    except (ScoreError, SparkInputError) as exc:
        _fail(str(exc))
        return
    total = sum(counts.values())
    summary = {
        "model_uri": model,
        "version": scorer.metadata.get("version"),
        "tracking_uri": tracking_uri(),
        "engine": "spark",
        "leads": total,
        "policy": applied.label,
        "out": spark_path(out),
        "decisions": counts,
    }
    if as_json:
        _print_json(summary)
    else:
        typer.echo(
            f"scored {total:,} leads on Spark with {model} under the {applied.label} -> "
            f"{spark_path(out)}"
        )


def _load_scorer(model_uri: str):
    from features.model.artifact import load_model_scorer
    from training.score import ScoreError
    from training.tracking import tracking_uri

    try:
        return load_model_scorer(model_uri, tracking_uri=tracking_uri())
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types for a bad URI
        first_line = (
            str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        )
        raise ScoreError(
            f"--model {model_uri}: cannot load it from {tracking_uri()} ({first_line}); use "
            "models:/NAME@champion, models:/NAME/VERSION or runs:/RUN_ID/model, and set "
            "MLFLOW_TRACKING_URI if the model lives elsewhere"
        ) from None


def promote_command(
    version: str = typer.Argument(..., help="Model version to make champion."),
    model_name: str = typer.Option(MODEL_NAME, "--model-name", help="Registered model name."),
) -> None:
    """Make VERSION the champion, whatever the gate said."""
    import mlflow

    from training.registry import RegistryError, promote
    from training.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    try:
        promoted = promote(model_name, version)
    except RegistryError as exc:
        _fail(str(exc))
        return
    typer.echo(f"{model_name} version {promoted} is now champion")


def register(app: typer.Typer) -> None:
    """Add this package's commands to the top-level app."""
    app.command("train")(train_command)
    app.command("score")(score_command)
    app.command("promote")(promote_command)
