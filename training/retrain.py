"""`leadscore retrain`: train from the service's database when enough new outcomes arrived.

For a scheduler (cron, a Kubernetes CronJob, Airflow): each run compares the outcomes reported
since the champion's training data ended (`training_data_end` in its metadata, written by
`training.train`; `trained_at` for models from before it) with `--min-new-outcomes`. Too few:
it says so and exits 0 without training. Enough (or no champion yet): it trains from the
database (`training.database`, point in time) with `training.train.train`, which registers the
new version as challenger and promotes it only through the champion gate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import typer

from features.model.artifact import MODEL_NAME
from training.cli import (
    SegmentByOption,
    ThreadsOption,
    TimeBudgetOption,
    apply_training_options,
)


@dataclass
class RetrainDecision:
    train: bool
    reason: str
    new_outcomes: int | None  # None: no champion, every outcome is new
    min_new_outcomes: int
    champion_version: str | None
    since: str | None  # the champion's training data end (ISO 8601)
    since_basis: str | None  # "training_data_end" or "trained_at"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def champion_data_end(model_name: str) -> tuple[str | None, datetime | None, str | None]:
    """(champion version, the end of its training data, which metadata field said so); Nones
    without a champion."""
    from mlflow import MlflowClient

    from features.model.artifact import ModelRef, load_model_scorer
    from training.registry import champion_version

    version = champion_version(MlflowClient(), model_name)
    if version is None:
        return None, None, None
    metadata = load_model_scorer(ModelRef(model_name, version=version).uri).metadata
    for field in ("training_data_end", "trained_at"):
        if metadata.get(field):
            return version, datetime.fromisoformat(str(metadata[field])), field
    return version, None, None


def decide(database_url: str, model_name: str, min_new_outcomes: int) -> RetrainDecision:
    from serving.capture.store import outcomes_since
    from serving.db import make_engine

    version, since, basis = champion_data_end(model_name)
    if version is None:
        return RetrainDecision(True, "no champion yet: training the first model", None,
                               min_new_outcomes, None, None, None)  # fmt: skip
    if since is None:
        return RetrainDecision(True, f"champion v{version} does not say when its training data "
                               "ended: training", None, min_new_outcomes, version, None, None)  # fmt: skip
    engine = make_engine(database_url)
    try:
        new = outcomes_since(engine, since)
    finally:
        engine.dispose()
    moment = since.isoformat()
    if new < min_new_outcomes:
        reason = (
            f"skipped: {new} new outcome(s) since champion v{version}'s training data ended "
            f"({moment}), fewer than --min-new-outcomes {min_new_outcomes}"
        )
        return RetrainDecision(False, reason, new, min_new_outcomes, version, moment, basis)
    reason = (
        f"{new} new outcomes since champion v{version}'s training data ended ({moment}), at "
        f"least {min_new_outcomes}: training"
    )
    return RetrainDecision(True, reason, new, min_new_outcomes, version, moment, basis)


def retrain_command(
    database_url: str = typer.Option(
        ..., "--database-url", help="The service's database (its LEADSCORE_DATABASE_URL)."
    ),
    min_new_outcomes: int = typer.Option(
        100,
        "--min-new-outcomes",
        min=0,
        help="Train only when at least this many outcomes "
        "were reported since the champion's training data ended.",
    ),  # fmt: skip
    config: str | None = typer.Option(
        None, "--config", help="Config file (features:, training:, policy:, attribute settings)."
    ),
    experiment: str | None = typer.Option(None, "--experiment", help="MLflow experiment name."),
    model_name: str = typer.Option(MODEL_NAME, "--model-name", help="Registered model name."),
    seed: int = typer.Option(42, "--seed", help="Random seed."),
    time_budget: TimeBudgetOption = None,
    threads: ThreadsOption = None,
    segment_by: SegmentByOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
) -> None:
    """Retrain from the service's database when enough new outcomes arrived; the new version
    is promoted only through the champion gate. For cron, CronJobs and Airflow."""
    from features.data.validation import DataValidationError
    from training.data import TrainingDataError
    from training.database import apply_traffic_ages, database_run_config, read_lead_data
    from training.tracking import configure_tracking
    from training.train import TrainingConfigError, train

    try:
        configure_tracking(experiment)
        decision = decide(database_url, model_name, min_new_outcomes)
        summary: dict[str, Any] = {"decision": decision.to_dict()}
        if not decision.train:
            _report(summary, as_json, decision.reason)
            return
        typer.echo(decision.reason, err=True)
        run_config = database_run_config(config)
        apply_training_options(run_config, time_budget, threads, segment_by)
        said = apply_traffic_ages(run_config, database_url)
        if said:
            typer.echo(f"  {said}", err=True)
        data = read_lead_data(database_url, run_config.data, run_config.training.now)
        result = train(run_config, experiment=experiment, model_name=model_name, seed=seed,
                       step=lambda text: typer.echo(f"  {text}", err=True), data=data)  # fmt: skip
    except DataValidationError as exc:
        typer.echo(exc.report.to_text(), err=True)
        raise typer.Exit(2) from None
    except (TrainingDataError, TrainingConfigError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary["training"] = result.summary()
    m = result.metrics
    _report(
        summary,
        as_json,
        f"model {result.model_name} version {result.version} "
        f"({summary['training']['alias']}) trained on data up to {run_config.training.now}\n"
        f"  holdout: ROC AUC {m['roc_auc']:.4f}  log loss {m['log_loss']:.4f}  ECE {m['ece']:.4f}\n"
        f"  {result.gate.reason}",
    )


def _report(summary: dict[str, Any], as_json: bool, text: str) -> None:
    typer.echo(json.dumps(summary, indent=2, default=str) if as_json else text)


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain_command)
