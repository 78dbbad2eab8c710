"""The training pipeline: files -> examples -> model search -> calibration -> evaluation ->
MLflow run, registered model version, champion/challenger gate.

`train(...)` is the whole job as one function (the CLI is a thin layer over it). Every step is a
pure function elsewhere in this package; this module only orders them and records the results.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.config import FeatureConfig
from features.data.config import DataConfig
from features.data.loading import LeadData, load_lead_data
from features.featurizer import LeadFeaturizer
from features.model.artifact import CHALLENGER, CHAMPION, MODEL_NAME
from features.model.calibration import CalibratedModel
from features.model.reasons import typical_lead
from features.model.scorer import LeadScorer
from features.policy.rules import Policy
from training import evaluate, leakage
from training.data import Examples, Split, build_examples, fingerprints, split_holdout, subsample
from training.models import build_estimator, candidates, choose_calibration, search_models
from training.registry import (
    AUC_MARGIN,
    ECE_TOLERANCE,
    GateDecision,
    champion_version,
    promotion_gate,
)
from training.tracking import configure_tracking

LARGE_DATA_ROWS = 100_000  # above this many training examples, one validation split replaces CV


class TrainingConfig(BaseModel):
    """How the model is chosen and evaluated (the `training:` section of the config file)."""

    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.9, description="Share of leads held out (most recent)."
    )
    cv_folds: int = Field(3, ge=1, le=10, description="Cross-validation folds for model selection.")
    search: str = Field("small", description="Candidate grid: small, wide, tiny or none.")
    splines: bool = Field(True, description="Spline-expand numbers for the logistic regression.")
    max_training_rows: int | None = Field(300_000, ge=1000, description="Cap on training examples.")
    max_holdout_rows: int | None = Field(200_000, ge=1000, description="Cap on held-out examples.")
    now: datetime | None = Field(
        None, description="Data extraction time; default: latest timestamp."
    )
    auc_margin: float = Field(
        AUC_MARGIN, ge=0, description="ROC AUC gain needed to replace the champion."
    )
    ece_tolerance: float = Field(
        ECE_TOLERANCE, ge=0, description="Allowed calibration error increase."
    )
    refit: bool | None = Field(
        None,
        description="After evaluation, refit the chosen model on training + held-out examples "
        "and serve that (the holdout metrics and the champion gate use the model fitted without "
        "the holdout). None (default): when there are at most 100,000 examples, where the "
        "holdout's extra 25% of data matters.",
    )
    threads: int | None = Field(
        1,
        ge=1,
        description="OpenMP threads for gradient boosting; 1 avoids the large slow-down of "
        "spinning threads on a busy machine, None uses every core.",
    )


class TrainingConfigError(ValueError):
    """The config file or an option is wrong; the message names the field and the fix."""


@dataclass
class RunConfig:
    data: DataConfig
    features: FeatureConfig
    training: TrainingConfig
    policy: Policy

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": json.loads(self.data.model_dump_json()),
            "features": self.features.model_dump(mode="json"),
            "training": self.training.model_dump(mode="json"),
            "policy": self.policy.model_dump(mode="json"),
        }


def resolve_config(config_file: str | Path | None = None, **data_overrides: Any) -> RunConfig:
    """The config file's sections (data mapping at the top level, `features:`, `training:`,
    `policy:`) with the CLI options (`data_overrides`) winning over the file."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise TrainingConfigError(f"config file {path} not found: check the --config path")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TrainingConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise TrainingConfigError(f"config file {path} must be a mapping of `key: value` lines")
        base = path.parent
    sections = {}
    for name, model in (
        ("features", FeatureConfig),
        ("training", TrainingConfig),
        ("policy", Policy),
    ):
        try:
            sections[name] = model.model_validate(raw.pop(name, None) or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (name, *first["loc"]))
            raise TrainingConfigError(f"config {where}: {first['msg']}") from None
    if "leads" not in raw:
        if data_overrides.get("leads") is None:
            raise TrainingConfigError(
                "no leads file: give --leads PATH (or `leads:` in the config file)"
            )
        raw["leads"] = str(data_overrides["leads"])
    try:
        data = DataConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TrainingConfigError(
            f"config {where}: {first['msg']} (see the README's data contract for the fields)"
        ) from None
    data = data._relative_to(base).with_overrides(**data_overrides)
    return RunConfig(data, sections["features"], sections["training"], sections["policy"])


@dataclass
class TrainResult:
    run_id: str
    experiment_id: str
    model_uri: str
    model_name: str
    version: str
    metrics: dict[str, float]
    warnings: list[str]
    gate: GateDecision
    leakage: list[leakage.LeakageWarning] = field(default_factory=list)
    selected: str = ""
    seconds: float = 0.0
    refit: bool = False  # the served model was refitted on training + holdout

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "model_name": self.model_name,
            "version": self.version,
            "alias": CHAMPION if self.gate.promote else CHALLENGER,
            "promoted": self.gate.promote,
            "promotion": self.gate.reason,
            "model": self.selected,
            "refit": self.refit,
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "champion_metrics": self.gate.champion,
            "warnings": self.warnings,
            "leakage": [w.to_dict() for w in self.leakage],
            "seconds": round(self.seconds, 1),
        }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


Step = Callable[[str], None]


def _noop(_: str) -> None:
    pass


@dataclass
class Fitted:
    """Everything the pipeline learned, before anything is logged."""

    scorer: LeadScorer
    examples: Examples
    split: Split
    train_rows: np.ndarray
    holdout_rows: np.ndarray
    X_holdout: np.ndarray
    holdout_probability: np.ndarray  # from the evaluation model (never saw the holdout)
    search_table: pd.DataFrame
    calibration_losses: dict[str, float]
    selected: str
    notes: list[str]
    # the model to serve when it was refitted on training + holdout (None: the evaluation model)
    final_estimator: CalibratedModel | None = None

    @property
    def refitted(self) -> bool:
        return self.final_estimator is not None


def fit_scorer(data: LeadData, config: RunConfig, seed: int, step: Step = _noop) -> Fitted:
    """Examples, holdout split, featurizer, model search, final fit and calibration."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=config.training.threads):
        return _fit_scorer(data, config, seed, step)


def _fit_scorer(data: LeadData, config: RunConfig, seed: int, step: Step) -> Fitted:
    notes: list[str] = []
    step("building training examples")
    examples = build_examples(data, config.features, config.training.now)
    settle = max(config.features.snapshot_ages_days) + config.features.horizon_days
    split = split_holdout(examples, config.training.holdout_fraction, seed, settle)
    train_rows = subsample(split.train, examples.labels, config.training.max_training_rows, seed)
    holdout_rows = subsample(split.holdout, examples.labels, config.training.max_holdout_rows, seed)
    if len(train_rows) < len(split.train):
        notes.append(
            f"trained on a random sample of {len(train_rows):,} of {len(split.train):,} training "
            f"examples (training.max_training_rows)"
        )
    if len(holdout_rows) < len(split.holdout):
        notes.append(
            f"evaluated on a random sample of {len(holdout_rows):,} of {len(split.holdout):,} held-out examples"
        )

    step("learning feature vocabularies")
    train_leads = data.leads[
        data.leads["lead_id"].isin(set(examples.frame["lead_id"].iloc[split.train]))
    ]
    featurizer = LeadFeaturizer(config.features).fit(
        train_leads, data.attribute_types, data.touchpoints
    )
    step(f"computing features of {len(train_rows) + len(holdout_rows):,} examples")
    frame = examples.frame
    X_train = featurizer.transform(frame.iloc[train_rows], data.touchpoints)
    X_holdout = featurizer.transform(frame.iloc[holdout_rows], data.touchpoints)
    y_train = examples.labels[train_rows]
    mask = np.asarray(featurizer.categorical_mask_, dtype=bool)

    win_rate = float(y_train.mean())
    candidate_list = candidates(
        config.training.search, win_rate, config.training.splines, len(train_rows), bool(mask.any())
    )
    n_folds = config.training.cv_folds if len(train_rows) <= LARGE_DATA_ROWS else 1
    if n_folds != config.training.cv_folds:
        notes.append(
            f"{len(train_rows):,} training examples: one validation split instead of {config.training.cv_folds}-fold CV"
        )
    groups = frame["lead_id"].to_numpy()[train_rows]
    total = len(candidate_list)
    counter = iter(range(1, total + 1))
    selection = search_models(
        X_train, y_train, groups, mask, candidate_list, n_folds, seed,
        progress=lambda name: step(f"cross-validating candidate {next(counter)}/{total}: {name}"),
    )  # fmt: skip
    step(f"fitting {selection.candidate.name} on all training examples")
    model = build_estimator(selection.candidate, mask, seed).fit(X_train, y_train)
    seen = ~np.isnan(selection.oof_raw)
    calibration, losses = choose_calibration(selection.oof_raw[seen], y_train[seen], seed)
    estimator = CalibratedModel(model, calibration)
    scorer = LeadScorer(
        featurizer, estimator, policy=config.policy, baseline=typical_lead(X_train, mask)
    )
    step("scoring the holdout")
    holdout_probability = estimator.predict_proba(X_holdout)
    final = None
    refit = config.training.refit
    if refit is None:
        refit = len(train_rows) + len(holdout_rows) <= LARGE_DATA_ROWS
    if refit:
        step(f"refitting {selection.candidate.name} on training and held-out examples")
        final = _refit(
            selection.candidate, mask, seed, X_train, y_train, X_holdout, examples.labels[holdout_rows],
            selection.oof_raw, estimator,
        )  # fmt: skip
    return Fitted(
        scorer, examples, split, train_rows, holdout_rows, X_holdout, holdout_probability,
        selection.table, losses, selection.candidate.name, notes, final,
    )  # fmt: skip


def _refit(
    candidate: Any,
    mask: np.ndarray,
    seed: int,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_holdout: np.ndarray,
    y_holdout: np.ndarray,
    oof_raw: np.ndarray,
    evaluated: CalibratedModel,
) -> CalibratedModel:
    """The chosen candidate (same settings, same number of boosting rounds) fitted on training +
    held-out examples, calibrated on out-of-sample scores only: the training part's out-of-fold
    scores and the evaluation model's scores of the holdout."""
    X_all = np.concatenate([X_train, X_holdout])
    y_all = np.concatenate([y_train, y_holdout])
    model = build_estimator(candidate, mask, seed).fit(X_all, y_all)
    seen = ~np.isnan(oof_raw)
    raw = np.concatenate([oof_raw[seen], evaluated.raw_proba(X_holdout)])
    labels = np.concatenate([y_train[seen], y_holdout])
    calibration, _ = choose_calibration(raw, labels, seed)
    return CalibratedModel(model, calibration)


def _champion_metrics(
    model_name: str,
    holdout_frame: pd.DataFrame,
    data: LeadData,
    config: RunConfig,
    labels: np.ndarray,
) -> tuple[str | None, dict[str, float] | None, str | None]:
    """(champion version, its metrics on this run's holdout, or why it could not be scored).

    A refitted champion is compared through its evaluation model (fitted without its holdout), as
    the challenger is: the refit may have learned this very holdout.
    The champion gets the inputs it was trained with: attribute columns this run excludes are
    read again from the leads file for the held-out leads.
    """
    from mlflow import MlflowClient

    from features.model.artifact import load_model_scorer

    version = champion_version(MlflowClient(), model_name)
    if version is None:
        return None, None, None
    try:
        # the champion's evaluation model: fitted without its own holdout, like this run's
        champion = load_model_scorer(f"models:/{model_name}/{version}", evaluation=True)
        if champion.featurizer.uses_touchpoints_ and data.touchpoints is None:
            return (
                version,
                None,
                "the champion uses touchpoints and this run has none (--touchpoints)",
            )
        needed = [
            c["column"]
            for c in champion.featurizer.attributes_.columns_
            if c["column"] != "created_at"
        ]
        absent = [c for c in needed if c not in holdout_frame.columns]
        frame = holdout_frame
        if absent:
            again = config.data.model_copy(
                update={"exclude": [c for c in config.data.exclude if c not in absent],
                        "touchpoints": None, "outcomes": None, "label": config.data.label}
            )  # fmt: skip
            extra = load_lead_data(again).leads
            lacking = [c for c in absent if c not in extra.columns]
            if lacking:
                return (
                    version,
                    None,
                    f"the champion needs column(s) {lacking} that the leads file lacks",
                )
            frame = holdout_frame.merge(extra[["lead_id", *absent]], on="lead_id", how="left")
        probability = champion.predict_proba(frame, data.touchpoints)
    except Exception as exc:  # noqa: BLE001 - any failure means the champion cannot be compared
        return version, None, f"{type(exc).__name__}: {exc}"
    return version, evaluate.classification_metrics(labels, probability, config.policy), None


def train(
    config: RunConfig,
    experiment: str | None = None,
    model_name: str = MODEL_NAME,
    seed: int = 42,
    step: Step = _noop,
    data: LeadData | None = None,
) -> TrainResult:
    """Train, evaluate, log, register and gate one model. Raises DataValidationError,
    TrainingDataError or TrainingConfigError with a message for the user on bad input."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=config.training.threads):
        return _train(config, experiment, model_name, seed, step, data)


def _train(
    config: RunConfig,
    experiment: str | None,
    model_name: str,
    seed: int,
    step: Step,
    data: LeadData | None,
) -> TrainResult:
    import mlflow

    from features.model.artifact import log_model, pyfunc_input_example

    started = time.perf_counter()
    if data is None:
        step("reading and validating the lead files")
        data = load_lead_data(config.data)
    fitted = fit_scorer(data, config, seed, step)
    scorer, examples, split = fitted.scorer, fitted.examples, fitted.split
    y_holdout = examples.labels[fitted.holdout_rows]
    p_holdout = fitted.holdout_probability
    metrics = evaluate.classification_metrics(y_holdout, p_holdout, config.policy)

    step("checking for leakage")
    feature_names = list(scorer.feature_names)
    groups = leakage.feature_groups(feature_names, list(data.attribute_types))
    importance = leakage.permutation_importance_by_column(
        scorer.estimator.predict_proba, fitted.X_holdout, y_holdout, groups, seed=seed
    )
    train_frame = examples.frame.iloc[fitted.train_rows]
    leak_rows = subsample(
        np.arange(len(train_frame)), examples.labels[fitted.train_rows], 200_000, seed
    )
    single = leakage.single_feature_aucs(
        train_frame.iloc[leak_rows],
        examples.labels[fitted.train_rows][leak_rows],
        data.attribute_types,
        seed,
    )
    leaks = leakage.check_leakage(single, importance)
    warnings = [w.to_text() for w in leaks] + fitted.notes
    # identifier-like columns are dropped by the loader: say so, and how to keep one
    warnings += [
        f"column '{f.column}' looks like an identifier and is not used as a feature; {f.fix}"
        for f in getattr(data.report, "findings", [])
        if f.level == "warning" and "looks like an identifier" in f.message
    ]

    holdout_frame = examples.frame.iloc[fitted.holdout_rows]
    holdout_as_of = (
        holdout_frame["as_of"]
        if "as_of" in holdout_frame
        else pd.Series(pd.NaT, index=holdout_frame.index)
    )
    scorer.holdout = pd.DataFrame(
        {
            "probability": p_holdout,
            "label": y_holdout.astype(np.int64),
            "as_of": holdout_as_of.to_numpy(),
        }
    )
    trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    scorer.metadata = {
        "name": model_name,
        "version": None,
        "trained_at": trained_at,
        "metrics": {k: _finite(v) for k, v in metrics.items()},
        "holdout_weeks": split.holdout_weeks,
        "holdout": split.description,
        "features": feature_names,
        "attributes": list(data.attribute_types),
        "model": fitted.selected,
        "calibration": scorer.estimator.calibration["method"],
        "timestamped": examples.timestamped,
        "uses_touchpoints": bool(scorer.featurizer.uses_touchpoints_),
        "seed": seed,
        "data_config": json.loads(config.data.model_dump_json()),
    }

    evaluation_estimator = scorer.estimator
    if fitted.refitted:
        scorer.estimator = fitted.final_estimator
    scorer.metadata["refit"] = fitted.refitted
    scorer.metadata["examples_fitted"] = len(fitted.train_rows) + fitted.refitted * len(
        fitted.holdout_rows
    )

    step("logging to MLflow")
    experiment_id = configure_tracking(experiment)
    with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        run_id = run.info.run_id
        mlflow.log_params(
            {
                "model": fitted.selected[:500],
                "model_kind": fitted.selected.split("(")[0],
                "calibration": scorer.estimator.calibration["method"],
                "split": split.kind,
                "seed": seed,
                "training_examples": len(fitted.train_rows),
                "holdout_examples": len(fitted.holdout_rows),
                "features": len(feature_names),
                "excluded_columns": json.dumps(config.data.exclude)[:500],
                "leads_file": str(config.data.leads.path)[:500],
                "timestamped": examples.timestamped,
                "refit_with_holdout": fitted.refitted,
            }
        )
        mlflow.log_metrics({f"holdout_{k}": v for k, v in metrics.items() if math.isfinite(v)})
        best = fitted.search_table[fitted.search_table["selected"]].iloc[0]
        mlflow.log_metrics(
            {
                "cv_log_loss": float(best["calibrated_log_loss"]),
                "cv_roc_auc": float(best["roc_auc"]),
            }
        )

        tables = evaluate.evaluation_tables(
            y_holdout, p_holdout, split.holdout_weeks or 1.0, config.policy
        )
        tables["search"] = fitted.search_table
        tables["permutation_importance"] = importance
        tables["single_feature_auc"] = pd.DataFrame(
            {"column": list(single), "roc_auc": list(single.values())}
        )
        tables["features"] = scorer.featurizer.feature_table()
        table_dir = tmp_path / "tables"
        table_dir.mkdir()
        for name, table in tables.items():
            table.to_csv(table_dir / f"{name}.csv", index=False)
        mlflow.log_artifacts(str(table_dir), "evaluation")
        evaluate.save_charts(y_holdout, p_holdout, tmp_path / "charts")
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
        mlflow.log_dict({"warnings": [w.to_dict() for w in leaks], "exclude": leakage.exclude_command(leaks)},
                        "leakage.json")  # fmt: skip
        if leaks:
            mlflow.set_tag("leakage_warning", "; ".join(w.column for w in leaks)[:5000])

        step("logging the model")
        example = pyfunc_input_example(
            holdout_frame, data.touchpoints, bool(scorer.featurizer.uses_touchpoints_)
        )
        info = log_model(scorer, example, evaluation_estimator if fitted.refitted else None)
        step("registering the model")
        version = mlflow.register_model(info.model_uri, model_name).version
        client = mlflow.MlflowClient()
        client.set_registered_model_alias(model_name, CHALLENGER, version)

        step("comparing with the champion")
        champ_version, champ_metrics, champ_error = _champion_metrics(
            model_name, holdout_frame, data, config, y_holdout
        )
        if champ_error is not None:
            gate = GateDecision(
                False,
                f"stays challenger: champion v{champ_version} could not score this holdout "
                f"({champ_error[:300]}); promote by hand with `leadscore promote {version}`",
                metrics, None, champ_version,
            )  # fmt: skip
        else:
            gate = promotion_gate(metrics, champ_metrics, champ_version, config.training.auc_margin,
                                  config.training.ece_tolerance)  # fmt: skip
        if gate.promote:
            client.set_registered_model_alias(model_name, CHAMPION, version)
        if champ_metrics:
            mlflow.log_metrics(
                {f"champion_{k}": v for k, v in champ_metrics.items() if math.isfinite(v)}
            )
        mlflow.log_dict(gate.to_dict(), "promotion.json")
        mlflow.set_tags(
            {"promotion": CHAMPION if gate.promote else CHALLENGER, "promotion_reason": gate.reason[:5000],
             "model_version": version, "model_name": model_name}
        )  # fmt: skip
        client.set_model_version_tag(model_name, version, "promotion", gate.reason[:5000])
        if warnings:
            mlflow.log_text("\n".join(warnings), "warnings.txt")

    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_uri=f"models:/{model_name}/{version}",
        model_name=model_name,
        version=str(version),
        metrics=metrics,
        warnings=warnings,
        gate=gate,
        leakage=leaks,
        selected=fitted.selected,
        seconds=time.perf_counter() - started,
        refit=fitted.refitted,
    )
