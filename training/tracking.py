"""MLflow tracking: where runs are stored, and everything a training run logs.

`MLFLOW_TRACKING_URI` wins; otherwise MLflow's embedded SQLite store `mlflow.db` in the working
directory (artifacts next to it in `mlartifacts/`), so `leadscore train` works with no server.

The run spans the whole training (`start_run` is opened before the files are read), so its
duration is the training's. It logs each model candidate as a nested run with its
cross-validation scores and duration (`log_candidate`); its parameters, holdout and
cross-validation metrics, evaluation tables and charts, the data validation report, resolved
config, data fingerprints, calibration choice, leakage findings, the cores used and the
candidates the time budget skipped (`log_training`); the model
(`log_model`, files as `features.model.artifact` defines them); the gate's decision (`log_gate`)
and the warnings (`log_warnings`). A training that fails leaves a FAILED run with the error in
its `error` tag.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from training import evaluate, leakage
from training.data import fingerprints

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

    from features.data.loading import LeadData
    from features.model.calibration import CalibratedModel
    from features.model.scorer import LeadScorer
    from training.registry import GateDecision
    from training.train import Fitted, LeakageCheck, RunConfig

DEFAULT_EXPERIMENT = "lead-scoring"


def tracking_uri() -> str:
    """The tracking URI in force: `MLFLOW_TRACKING_URI`, else sqlite:///<cwd>/mlflow.db."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure_tracking(experiment: str | None = None) -> str:
    """Point MLflow at the tracking store (and registry) and select the experiment.

    Returns the experiment id. With the default SQLite store, artifacts go to `mlartifacts/`
    beside the database.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = experiment or DEFAULT_EXPERIMENT
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        experiment_id = existing.experiment_id
    else:
        location = None
        if uri.startswith("sqlite:///"):
            location = (Path(uri[len("sqlite:///") :]).parent / "mlartifacts").resolve().as_uri()
        experiment_id = mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextmanager
def start_run(experiment: str | None = None) -> Iterator[tuple[str, str]]:
    """Configure tracking and run the block inside a new MLflow run: yields (experiment id,
    run id). An exception ends the run FAILED, its first line in the run's `error` tag."""
    import mlflow

    experiment_id = configure_tracking(experiment)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        try:
            yield experiment_id, run.info.run_id
        except BaseException as exc:
            text = str(exc).strip().splitlines()
            mlflow.set_tag("error", f"{type(exc).__name__}: {text[0] if text else ''}"[:5000])
            raise


def log_candidate(
    name: str, params: dict[str, Any], metrics: dict[str, float], started: float, seconds: float
) -> str | None:
    """One model candidate of the search as a run nested in the active training run: its
    settings, cross-validation scores and how long it took (`started`: epoch seconds), with the
    run's start and end set to when it ran. Returns the nested run's id (None outside a run)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    parent = mlflow.active_run()
    if parent is None:
        return None
    client = MlflowClient()
    start_ms, end_ms = int(started * 1000), int((started + seconds) * 1000)
    child = client.create_run(
        parent.info.experiment_id, start_time=start_ms, run_name=name[:250],
        tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id, "candidate": name[:5000]},
    )  # fmt: skip
    values = {**metrics, "seconds": seconds}
    client.log_batch(
        child.info.run_id,
        metrics=[Metric(k, float(v), end_ms, 0) for k, v in values.items() if math.isfinite(v)],
        params=[Param(k, str(v)[:500]) for k, v in params.items()],
    )
    client.set_terminated(child.info.run_id, end_time=end_ms)
    return child.info.run_id


def log_outlook(metrics: dict[str, float]) -> None:
    """The deal value and time-to-close models' holdout figures (`training.outlook`), as
    `holdout_value_*` and `holdout_timing_*` metrics of the active run."""
    import mlflow

    finite = {f"holdout_{k}": float(v) for k, v in metrics.items() if math.isfinite(float(v))}
    if finite:
        mlflow.log_metrics(finite)


def log_training(
    fitted: Fitted,
    config: RunConfig,
    data: LeadData,
    metrics: dict[str, float],
    leaks: LeakageCheck,
    seed: int,
) -> None:
    """Everything about how the model was chosen and how it did on the holdout."""
    import mlflow

    scorer, split, examples = fitted.scorer, fitted.split, fitted.examples
    mlflow.log_params(
        {
            "model": fitted.selected[:500],
            "model_kind": fitted.selected.split("(")[0],
            "calibration": scorer.estimator.calibration["method"],
            "split": split.kind,
            "seed": seed,
            "training_examples": len(fitted.train_rows),
            "holdout_examples": len(fitted.holdout_rows),
            "features": len(scorer.feature_names),
            "excluded_columns": json.dumps(config.data.exclude)[:500],
            "leads_file": str(config.data.leads.path)[:500],
            "timestamped": examples.timestamped,
            "refit_with_holdout": fitted.refitted,
            "training_data_end": None if examples.now is None else examples.now.isoformat(),
            "threads": fitted.threads,
            "time_budget": config.training.time_budget,
            "candidates_searched": len(fitted.search_table),
            # names joined, cut at MLflow's 500 characters; the whole list is the json artifact
            "search_skipped_for_time": "; ".join(fitted.search_skipped)[:500],
        }
    )
    mlflow.log_metrics(
        {
            "search_seconds": round(fitted.search_seconds, 3),
            "candidates_skipped_for_time": len(fitted.search_skipped),
        }
    )
    if fitted.search_skipped:  # the whole list, whatever its length
        mlflow.log_dict(
            {"skipped_for_time": fitted.search_skipped}, "evaluation/search_skipped.json"
        )
    mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items() if math.isfinite(v)})
    best = fitted.search_table[fitted.search_table["selected"]].iloc[0]
    mlflow.log_metrics(
        {
            "cv_log_loss": float(best["calibrated_log_loss"]),
            "cv_roc_auc": float(best["roc_auc"]),
        }
    )

    labels, probabilities = fitted.holdout_labels, fitted.holdout_probability
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tables = evaluate.evaluation_tables(
            labels, probabilities, split.holdout_weeks or 1.0, config.policy
        )
        tables["search"] = fitted.search_table
        tables["permutation_importance"] = leaks.importance
        tables["single_feature_auc"] = pd.DataFrame(
            {"column": list(leaks.single), "roc_auc": list(leaks.single.values())}
        )
        tables["features"] = scorer.featurizer.feature_table()
        holdout_frame = fitted.holdout_frame
        if "snapshot_age_days" in holdout_frame:  # timestamped: calibration at every lead age
            by_age = evaluate.calibration_by_age(
                labels, probabilities, holdout_frame["snapshot_age_days"]
            )
            tables["calibration_by_age"] = by_age
            age_metrics = evaluate.age_band_metrics(by_age)
            mlflow.log_metrics(
                {f"holdout_{k}": v for k, v in age_metrics.items() if math.isfinite(v)}
            )
        table_dir = tmp_path / "tables"
        table_dir.mkdir()
        for name, table in tables.items():
            table.to_csv(table_dir / f"{name}.csv", index=False)
        mlflow.log_artifacts(str(table_dir), "evaluation")
        evaluate.save_charts(labels, probabilities, tmp_path / "charts")
        mlflow.log_artifacts(str(tmp_path / "charts"), "charts")

    mlflow.log_text(data.report.to_text() or "no findings", "data/validation_report.txt")
    mlflow.log_dict(data.report.to_dict(), "data/validation_report.json")
    mlflow.log_dict(config.to_dict(), "config/resolved_config.json")
    mlflow.log_dict(
        {"tables": fingerprints(data), "split": split.description, "now": str(examples.now),
         "snapshots": examples.snapshot_report}, "data/fingerprints.json",
    )  # fmt: skip
    mlflow.log_dict(
        {
            "calibration": scorer.estimator.calibration["method"],
            "cross_fitted_log_loss": fitted.calibration_losses,
        },
        "evaluation/calibration_choice.json",
    )
    found = leaks.warnings
    mlflow.log_dict({"warnings": [w.to_dict() for w in found], "exclude": leakage.exclude_command(found)},
                    "leakage.json")  # fmt: skip
    if found:
        mlflow.set_tag("leakage_warning", "; ".join(w.column for w in found)[:5000])


def mark_selected(candidate_run: str | None) -> None:
    """Tag the nested run of the candidate the search chose (`selected`)."""
    from mlflow import MlflowClient

    if candidate_run is not None:
        MlflowClient().set_tag(candidate_run, "selected", "true")


def log_seconds(seconds: float) -> None:
    """How long the whole training took, as a metric (the run's own span says it too)."""
    import mlflow

    mlflow.log_metric("training_seconds", round(seconds, 3))


def log_model(
    scorer: LeadScorer,
    holdout_frame: pd.DataFrame,
    touchpoints: pd.DataFrame | None,
    evaluation_estimator: CalibratedModel | None = None,
) -> ModelInfo:
    """Log the model to serve (with a few held-out leads as its input example, and 20 more as
    the sample leads it must score again when it is loaded)."""
    from features.model.artifact import log_model, pyfunc_input_example, pyfunc_samples

    uses_touchpoints = bool(scorer.featurizer.uses_touchpoints_)
    example = pyfunc_input_example(holdout_frame, touchpoints, uses_touchpoints)
    samples = pyfunc_samples(holdout_frame, touchpoints, uses_touchpoints)
    return log_model(scorer, example, evaluation_estimator, samples)


def log_gate(gate: GateDecision, model_name: str, version: str) -> None:
    """The champion's metrics on this holdout, the decision and its reason."""
    import mlflow

    from features.model.artifact import CHALLENGER, CHAMPION
    from training.segments import metric_name

    if gate.champion:
        mlflow.log_metrics(
            {f"champion_{k}": v for k, v in gate.champion.items() if math.isfinite(v)}
        )
    for segment, figures in gate.segments.items():
        name = f"gate_segment_{metric_name(segment)}_"
        mlflow.log_metrics(
            {name + k: v for k, v in figures.items() if math.isfinite(v) and "_" in k}
        )
    mlflow.log_dict(gate.to_dict(), "promotion.json")
    mlflow.set_tags(
        {"promotion": CHAMPION if gate.promote else CHALLENGER, "promotion_reason": gate.reason[:5000],
         "model_version": version, "model_name": model_name}
    )  # fmt: skip


def log_warnings(warnings: list[str]) -> None:
    import mlflow

    if warnings:
        mlflow.log_text("\n".join(warnings), "warnings.txt")
