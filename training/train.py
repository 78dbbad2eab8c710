"""The training pipeline: files -> examples -> model search -> calibration -> evaluation ->
MLflow run, registered model version, champion/challenger gate.

`train(...)` is the whole job as a list of named steps (the CLI is a thin layer over it). The
fitting steps are here; what a run logs is `training.tracking`, the registry and the gate
`training.registry`, the model's files `features.model.artifact`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.config import FeatureConfig
from features.data.config import DataConfig, load_config
from features.data.loading import LeadData, load_lead_data
from features.feature import CALENDAR, DETAIL, WIDE
from features.featurizer import LeadFeaturizer
from features.model.artifact import CHALLENGER, CHAMPION, MODEL_NAME, ModelRef
from features.model.calibration import CalibratedModel
from features.model.reasons import typical_lead
from features.model.scorer import LeadScorer
from features.model.timing import lead_ages
from features.policy.rules import Policy
from training import evaluate, leakage, registry, tracking
from training.confidence import fit_confidence
from training.data import Examples, Split, build_examples, split_holdout, subsample
from training.models import (
    FEW_MINORITY_ROWS,
    Candidate,
    candidates,
    choose_calibration,
    fit_estimator,
)
from training.outlook import Outlook, fit_outlook
from training.registry import AUC_MARGIN, ECE_TOLERANCE, GateDecision
from training.search import search_models
from training.segments import compare_by_segment, fit_segments, segment_feature
from training.subscores import fit_subscores
from training.thin_data import check_enough_outcomes

LARGE_DATA_ROWS = 100_000  # above this many training examples, one validation split replaces CV
DEFAULT_TIME_BUDGET = 45.0  # seconds of model search (see `training.search`)


def training_threads(
    threads: int | None, cores: int | None = None, load: float | None = None
) -> int:
    """The cores training uses: `threads` when given, else the cores the load average leaves free
    (at least 1). A busy machine gets one: threads waiting for a core cost more than they give."""
    import os

    if threads is not None:
        return threads
    cores = cores or os.cpu_count() or 1
    load = os.getloadavg()[0] if load is None else load
    return max(1, min(cores, int(cores - load + 0.5)))


class TrainingConfig(BaseModel):
    """How the model is chosen and evaluated (the `training:` section of the config file)."""

    model_config = ConfigDict(extra="forbid")

    holdout_fraction: float = Field(
        0.2, gt=0, lt=0.9, description="Share of leads held out (most recent)."
    )
    cv_folds: int = Field(3, ge=1, le=10, description="Cross-validation folds for model selection.")
    search: str = Field("small", description="Candidate grid: small, wide, tiny or none.")
    boosting_rounds: int | None = Field(
        None,
        ge=1,
        le=5000,
        description="Boosted-tree candidates grow exactly this many trees (no early stopping, no "
        "choice of the count on the folds). None (default): the count is chosen on the folds.",
    )
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
        "the holdout). None (default): when there are at most 100,000 examples, or at most "
        "10,000 of the rarer outcome (wins or losses), where the holdout's extra data matters.",
    )
    ages_from_traffic: bool = Field(
        False,
        description="Training from the service's database (--from-database, retrain): take the "
        "snapshot ages from the ages at which the service scored leads (the score log's moments "
        "less the captured creation moments: quantiles of the most recent scores, at most 90 "
        "days), each lead seen at 3 of them unless features.snapshots_per_lead says otherwise; "
        "the configured ages when fewer than 200 scores are known. Applied by the CLI "
        "(training.database.apply_traffic_ages); a request scored with an explicit as_of counts "
        "at the age it was sent at.",
    )
    allow_suspected_leakage: bool = Field(
        False,
        description="Let the gate promote a model with strongly suspected leakage (a column that "
        "alone separates won and lost leads, or a sales-named column that separates or dominates); "
        "only when such a column is known when a lead arrives.",
    )
    min_wins: int = Field(
        30, ge=10, description="Fewest won leads to train on; fewer are refused as too thin."
    )
    min_losses: int = Field(
        30, ge=10, description="Fewest lost leads to train on; fewer are refused as too thin."
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU cores training uses (cross-validation folds fitted side by side, "
        "threads of the final fit). None (default): the cores free when training starts, by the "
        "load average; 1 keeps training to one core.",
    )
    segment_by: str | None = Field(
        None,
        description="A categorical attribute column: each of its values with at least "
        "min_wins won and min_losses lost leads gets a model of its own (kept when it does at "
        "least as well as the global model on the segment's held-out leads); the other leads "
        "are scored by the global model. Each answer's `segment` names the model.",
    )
    time_budget: float | None = Field(
        DEFAULT_TIME_BUDGET,
        gt=0,
        description="Seconds the model search may take: when they run out, the candidate being "
        "cross-validated finishes and the others are skipped (the run logs which). None: no "
        "limit.",
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
    `policy:`) with the CLI options (`data_overrides`) winning over the file.

    One reader for every command: `features.data.config.load_config` (paths in the file are
    relative to it, paths given as options to the working directory); it raises
    `DataValidationError` naming the file, the field and the fix.
    """
    loaded = load_config(
        config_file,
        sections={"features": FeatureConfig, "training": TrainingConfig, "policy": Policy},
        **data_overrides,
    )
    sections = loaded.sections
    return RunConfig(loaded.data, sections["features"], sections["training"], sections["policy"])


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
    outlook_metrics: dict[str, float] = field(default_factory=dict)  # deal value, time to close
    subscore_metrics: dict[str, float] = field(default_factory=dict)  # fit, engagement, grid
    segment_metrics: dict[str, float] = field(default_factory=dict)  # per segment (segment_by)

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
            "suspected_leakage": self.gate.leakage,
            "champion_suspected_leakage": self.gate.champion_leakage,
            "warnings": self.warnings,
            "leakage": [w.to_dict() for w in self.leakage],
            "value_and_timing_metrics": {k: _finite(v) for k, v in self.outlook_metrics.items()},
            "fit_engagement_metrics": {k: _finite(v) for k, v in self.subscore_metrics.items()},
            "segment_metrics": {k: _finite(v) for k, v in self.segment_metrics.items()},
            "seconds": round(self.seconds, 1),
        }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


Step = Callable[[str], None]
CandidateDone = Callable[[Candidate, dict[str, Any]], None]  # see `search_models`


def _noop(_: str) -> None:
    pass


@dataclass
class Fitted:
    """Everything the pipeline learned, before anything is logged."""

    scorer: LeadScorer
    examples: Examples
    split: Split  # its row indices are those of the examples before `Examples.keep`
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
    search_skipped: list[str] = field(default_factory=list)  # candidates skipped for time
    search_seconds: float = 0.0
    threads: int = 1  # cores the training used
    segment_metrics: dict[str, float] = field(default_factory=dict)  # per segment (segment_by)

    @property
    def refitted(self) -> bool:
        return self.final_estimator is not None

    @property
    def holdout_frame(self) -> pd.DataFrame:
        return self.examples.frame.iloc[self.holdout_rows]

    @property
    def holdout_labels(self) -> np.ndarray:
        return self.examples.labels[self.holdout_rows]


def fit_scorer(
    data: LeadData,
    config: RunConfig,
    seed: int,
    step: Step = _noop,
    done: CandidateDone | None = None,
    threads: int | None = None,
) -> Fitted:
    """Examples, holdout split, featurizer, model search, final fit and calibration.
    `done(candidate, row)` is called as each candidate's cross-validation ends; `threads`: the
    cores to use (default: `training_threads(config.training.threads)`)."""
    from threadpoolctl import threadpool_limits

    threads = threads or training_threads(config.training.threads)
    with threadpool_limits(limits=threads):
        return _fit_scorer(data, config, seed, step, done, threads)


def _fit_scorer(
    data: LeadData,
    config: RunConfig,
    seed: int,
    step: Step,
    done: CandidateDone | None = None,
    threads: int = 1,
) -> Fitted:
    notes: list[str] = []
    step("building training examples")
    examples = build_examples(data, config.features, config.training.now)
    check_enough_outcomes(examples, config.training.min_wins, config.training.min_losses)
    split, train_rows, holdout_rows = fitting_rows(examples, config, seed)
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
    # from here on only the sampled rows (memory: every snapshot's attributes are let go)
    examples, (train_rows, holdout_rows) = examples.keep(train_rows, holdout_rows)
    featurizer = LeadFeaturizer(config.features).fit(
        train_leads, data.attribute_types, data.touchpoints, config.data.timezone
    )
    if config.training.segment_by:  # a wrong column is refused before the long part
        segment_feature(featurizer, config.training.segment_by)
    step(f"computing features of {len(train_rows):,} training examples")
    frame = examples.frame
    X_train = featurizer.transform(frame.iloc[train_rows], data.touchpoints)
    y_train = examples.labels[train_rows]
    mask = np.asarray(featurizer.categorical_mask_, dtype=bool)
    kinds = featurizer.column_kinds_  # the models' view: numbers, categories, calendar parts

    win_rate = float(y_train.mean())
    candidate_list = candidates(
        config.training.search,
        win_rate,
        config.training.splines,
        len(train_rows),
        bool(mask.any()),
        calendar=bool((kinds == CALENDAR).any()),
        compact=bool((kinds == DETAIL).any()),
        wide=bool((kinds == WIDE).any()),
    )
    if config.training.boosting_rounds is not None:
        fixed = {"max_iter": config.training.boosting_rounds, "early_stopping": False}
        candidate_list = [
            Candidate(c.kind, {**c.params, **fixed}) if c.kind == "gradient_boosting" else c
            for c in candidate_list
        ]
    # cheapest first: when the time budget runs out, the candidates tried are those that cost
    # least (a logistic regression fits in a fraction of a booster's time, and on the demo data
    # it is the one chosen)
    candidate_list.sort(key=lambda c: c.kind != "logistic")
    n_folds = config.training.cv_folds if len(train_rows) <= LARGE_DATA_ROWS else 1
    if n_folds != config.training.cv_folds:
        notes.append(
            f"{len(train_rows):,} training examples: one validation split instead of {config.training.cv_folds}-fold CV"
        )
    groups = frame["lead_id"].to_numpy()[train_rows]
    budget = config.training.time_budget
    selection = search_models(
        X_train, y_train, groups, kinds, candidate_list, n_folds, seed,
        progress=lambda text: step(f"cross-validating {text}"), done=done, time_budget=budget,
        workers=threads,
    )  # fmt: skip
    # the held-out examples' features after the search, so they are not held through its peak
    # (memory: a million leads' search peaked in a logistic regression's fit)
    step(f"computing features of {len(holdout_rows):,} held-out examples")
    X_holdout = featurizer.transform(frame.iloc[holdout_rows], data.touchpoints)
    if selection.skipped:
        notes.append(
            f"the search's time budget ({budget:g} s, training.time_budget or --time-budget) ran "
            f"out after {len(selection.table)} of {len(candidate_list)} candidates; skipped: "
            f"{', '.join(selection.skipped)}. Give it more seconds to try them"
        )
    unknown: set[int] = set()  # features with no value in any training example
    if selection.model is not None:  # one validation split: its model is the final one
        model = selection.model
        notes.append(
            f"the model is the one fitted on the search's training split "
            f"({int(np.isnan(selection.oof_raw).sum()):,} of {len(y_train):,} examples), "
            "calibrated on the other"
        )
    else:
        step(f"fitting {selection.candidate.name} on all training examples")
        model = fit_estimator(
            selection.candidate, kinds, seed, X_train, y_train, unknown, groups=groups
        )
    notes += empty_feature_notes(
        featurizer.get_feature_names_out(), list(data.attribute_types), X_train,
        selection.empty_columns | unknown,
    )  # fmt: skip
    seen = ~np.isnan(selection.oof_raw)
    calibration, losses = choose_calibration(selection.oof_raw[seen], y_train[seen], seed)
    estimator = CalibratedModel(model, calibration)
    scorer = LeadScorer(
        featurizer, estimator, policy=config.policy, baseline=typical_lead(X_train, kinds)
    )
    segment_metrics: dict[str, float] = {}
    if config.training.segment_by:
        segmented = fit_segments(
            featurizer, config.training.segment_by, selection.candidate, estimator, X_train,
            y_train, groups, X_holdout, examples.labels[holdout_rows], seed,
            config.training.min_wins, config.training.min_losses, step,
        )  # fmt: skip
        scorer.segments, segment_metrics = segmented.models, segmented.metrics
        notes += segmented.notes
    step("scoring the holdout")
    holdout_probability = scorer.probabilities(X_holdout)
    scorer.policy = evaluate.model_policy(config.policy, holdout_probability)  # grades by share
    step("fitting the fit and engagement scores")
    scorer.subscores, why_not = fit_subscores(
        featurizer, X_train, y_train, groups, X_holdout, examples.labels[holdout_rows], seed,
        config.training.splines,
    )  # fmt: skip
    if why_not:
        notes.append(why_not)
    step("counting similar training leads for the confidence labels")
    scorer.confidence = fit_confidence(
        scorer, X_train, scorer.probabilities(X_train), X_holdout, holdout_probability,
        examples.labels[holdout_rows],
    )  # fmt: skip
    final = None
    refit = config.training.refit
    if refit is None:
        refit = refits_by_default(np.concatenate([y_train, examples.labels[holdout_rows]]))
    if refit:
        step(f"refitting {selection.candidate.name} on training and held-out examples")
        final = _refit(
            selection.candidate, kinds, seed, X_train, y_train, X_holdout, examples.labels[holdout_rows],
            selection.oof_raw, estimator,
            np.concatenate([groups, frame["lead_id"].to_numpy()[holdout_rows]]),
        )  # fmt: skip
    return Fitted(
        scorer, examples, split, train_rows, holdout_rows, X_holdout, holdout_probability,
        selection.table, losses, selection.candidate.name, notes, final,
        search_skipped=selection.skipped, search_seconds=selection.seconds, threads=threads,
        segment_metrics=segment_metrics,
    )  # fmt: skip


def refits_by_default(labels: np.ndarray) -> bool:
    """Whether a run that leaves `training.refit` unset refits the chosen model on training +
    held-out examples (`labels`: both parts'): with at most `LARGE_DATA_ROWS` examples, or at
    most `FEW_MINORITY_ROWS` of the rarer outcome at any size, where the holdout's extra data
    matters. On 100,000 imbalanced demo leads (2.7% winning, ~224,000 examples, ~6,000 wins)
    the chosen regression learned from the training part alone was 0.0106 below the oracle on
    fresh leads; fitted on both parts, 0.0069."""
    labels = np.asarray(labels)
    wins = int(np.count_nonzero(labels))
    return labels.size <= LARGE_DATA_ROWS or min(wins, labels.size - wins) <= FEW_MINORITY_ROWS


def fitting_rows(
    examples: Examples, config: RunConfig, seed: int
) -> tuple[Split, np.ndarray, np.ndarray]:
    """The holdout split, and the rows of `examples` the model learns from and is evaluated on:
    the split's two parts, each capped by a seeded sample (`training.max_training_rows`,
    `max_holdout_rows`). A refitted model learns from both."""
    settle = max(config.features.snapshot_ages_days) + config.features.horizon_days
    split = split_holdout(examples, config.training.holdout_fraction, seed, settle)
    train_rows = subsample(split.train, examples.labels, config.training.max_training_rows, seed)
    holdout_rows = subsample(split.holdout, examples.labels, config.training.max_holdout_rows, seed)
    return split, train_rows, holdout_rows


def empty_feature_notes(
    names: Any, attributes: list[str], X_train: np.ndarray, empty: set[int]
) -> list[str]:
    """What to tell the user about features that had no value in the rows some model was fitted
    on (`training.models.fill_empty_columns`: that model does not use them), per source column."""
    known = (~np.isnan(X_train)).sum(axis=0)
    notes, named = [], set()
    for i in sorted(empty):
        name = str(names[i])
        source = name.split("__")[0]
        what = f"column '{source}'" if source in attributes else f"feature '{name}'"
        if what in named:
            continue
        named.add(what)
        if known[i] == 0:
            notes.append(
                f"{what} has no value in the {len(X_train):,} training examples: the model does "
                "not use it"
            )
        else:
            notes.append(
                f"{what} has a value in only {known[i]:,} of {len(X_train):,} training examples, "
                "none in the rows some cross-validation models were fitted on: those models do "
                "not use it"
            )
    return notes


def _refit(
    candidate: Any,
    kinds: np.ndarray,
    seed: int,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_holdout: np.ndarray,
    y_holdout: np.ndarray,
    oof_raw: np.ndarray,
    evaluated: CalibratedModel,
    groups: np.ndarray,
) -> CalibratedModel:
    """The chosen candidate (same settings, same number of boosting rounds) fitted on training +
    held-out examples (`groups`: their leads, training's then the holdout's), calibrated on
    out-of-sample scores only: the training part's out-of-fold scores and the evaluation model's
    scores of the holdout."""
    X_all = np.concatenate([X_train, X_holdout])
    y_all = np.concatenate([y_train, y_holdout])
    model = fit_estimator(candidate, kinds, seed, X_all, y_all, groups=groups)
    seen = ~np.isnan(oof_raw)
    raw = np.concatenate([oof_raw[seen], evaluated.raw_proba(X_holdout)])
    labels = np.concatenate([y_train[seen], y_holdout])
    calibration, _ = choose_calibration(raw, labels, seed)
    return CalibratedModel(model, calibration)


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

    threads = training_threads(config.training.threads)
    with threadpool_limits(limits=threads):
        return _train(config, experiment, model_name, seed, step, data, threads)


def _train(
    config: RunConfig,
    experiment: str | None,
    model_name: str,
    seed: int,
    step: Step,
    data: LeadData | None,
    threads: int = 1,
) -> TrainResult:
    started = time.perf_counter()
    # the run spans the whole training: its duration in MLflow is the training's
    with tracking.start_run(experiment) as (experiment_id, run_id):
        if data is None:
            step("reading and validating the lead files")
            data = load_lead_data(config.data)
        candidate_runs: dict[str, str | None] = {}

        def log_candidate(candidate: Candidate, row: dict[str, Any]) -> None:
            candidate_runs[candidate.name] = tracking.log_candidate(
                candidate.name,
                {"kind": candidate.kind, **candidate.params},
                {k: row[k] for k in ("calibrated_log_loss", "raw_log_loss", "roc_auc")},
                row["started"],
                row["seconds"],
            )

        fitted = fit_scorer(data, config, seed, step, done=log_candidate, threads=threads)
        tracking.mark_selected(candidate_runs.get(fitted.selected))
        metrics = evaluate.classification_metrics(
            fitted.holdout_labels, fitted.holdout_probability, config.policy
        )
        step("checking for leakage")
        leaks = check_leakage(fitted, data, seed)
        warnings = run_warnings(leaks, fitted, data)
        step("fitting the deal value and time-to-close models")
        outlook = attach_outlook(fitted, data, config, seed)
        warnings += outlook.notes
        evaluation_estimator = prepare_served_model(
            fitted, data, config, metrics, model_name, seed, run_id
        )

        step("logging to MLflow")
        tracking.log_training(fitted, config, data, metrics, leaks, seed)
        tracking.log_outlook(outlook.metrics)
        tracking.log_outlook(subscore_metrics(fitted.scorer))
        tracking.log_outlook(fitted.segment_metrics)
        step("logging the model")
        info = tracking.log_model(
            fitted.scorer, fitted.holdout_frame, data.touchpoints, evaluation_estimator
        )
        step("registering the model")
        version = registry.register(info.model_uri, model_name)
        step("comparing with the champion")
        champion = registry.score_champion(
            model_name, fitted.holdout_frame, data, config.data, config.policy,
            fitted.holdout_labels,
        )  # fmt: skip
        gate = registry.gate(
            version, metrics, champion, config.training.auc_margin, config.training.ece_tolerance,
            leaks=[w for w in leaks.warnings if w.strong],
            allow_leakage=config.training.allow_suspected_leakage,
        )  # fmt: skip
        if config.training.segment_by and champion.probability is not None:
            gate.segments = compare_by_segment(
                fitted.scorer.featurizer, config.training.segment_by, fitted.X_holdout,
                fitted.holdout_labels, fitted.holdout_probability, champion.probability,
            )  # fmt: skip
        registry.apply_gate(model_name, version, gate)
        tracking.log_gate(gate, model_name, version)
        tracking.log_warnings(warnings)
        seconds = time.perf_counter() - started
        tracking.log_seconds(seconds)

    return TrainResult(
        run_id=run_id,
        experiment_id=experiment_id,
        model_uri=ModelRef(model_name, version=version).uri,
        model_name=model_name,
        version=version,
        metrics=metrics,
        warnings=warnings,
        gate=gate,
        leakage=leaks.warnings,
        selected=fitted.selected,
        seconds=seconds,
        refit=fitted.refitted,
        outlook_metrics=outlook.metrics,
        subscore_metrics=subscore_metrics(fitted.scorer),
        segment_metrics=fitted.segment_metrics,
    )


def subscore_metrics(scorer: LeadScorer) -> dict[str, float]:
    """The fit and engagement scores' and the confidence labels' holdout figures."""
    out = {} if scorer.subscores is None else dict(scorer.subscores.metrics)
    return out | ({} if scorer.confidence is None else scorer.confidence.metrics)


def attach_outlook(fitted: Fitted, data: LeadData, config: RunConfig, seed: int) -> Outlook:
    """Fit the deal value and time-to-close models (`training.outlook`) and give them to the
    scorer, which ships and serves them beside the win probability."""
    outlook = fit_outlook(fitted, data, config, seed)
    fitted.scorer.value, fitted.scorer.timing = outlook.value, outlook.timing
    return outlook


@dataclass
class LeakageCheck:
    """Leakage signs: permutation importance on the holdout, single-column AUCs, the warnings."""

    importance: pd.DataFrame
    single: dict[str, float]
    warnings: list[leakage.LeakageWarning]


def check_leakage(fitted: Fitted, data: LeadData, seed: int) -> LeakageCheck:
    """Columns that predict the outcome too well, alone or for the model (evaluation model)."""
    scorer, examples = fitted.scorer, fitted.examples
    groups = leakage.feature_groups(list(scorer.feature_names), list(data.attribute_types))
    importance = leakage.permutation_importance_by_column(
        scorer.estimator.predict_proba, fitted.X_holdout, fitted.holdout_labels, groups, seed=seed
    )
    train_frame = examples.frame.iloc[fitted.train_rows]
    train_labels = examples.labels[fitted.train_rows]
    leak_rows = subsample(np.arange(len(train_frame)), train_labels, 200_000, seed)
    rows = train_frame.iloc[leak_rows]
    single = leakage.single_feature_aucs(
        rows, train_labels[leak_rows], data.attribute_types, seed, groups=rows["lead_id"]
    )
    return LeakageCheck(importance, single, leakage.check_leakage(single, importance))


def run_warnings(leaks: LeakageCheck, fitted: Fitted, data: LeadData) -> list[str]:
    """What the user should read: columns left out of the features (empty, unreadable, constant,
    as `validate` reports them), leakage, sampling and fitting notes, identifier-like columns."""
    from features.data.loading import unused_columns

    report = data.report
    left_out = [
        f"column '{f.column}': {f.message}"
        for f in (unused_columns(report) if hasattr(report, "findings") else [])
        if "identifier" not in f.message  # said below, with how to keep one
    ]
    warnings = left_out + [w.to_text() for w in leaks.warnings] + fitted.notes
    # identifier-like columns are dropped by the loader: say so, and how to keep one
    warnings += [
        f"column '{f.column}' looks like an identifier and is not used as a feature; {f.fix}"
        for f in getattr(data.report, "findings", [])
        if f.level == "warning" and "looks like an identifier" in f.message
    ]
    return warnings


def prepare_served_model(
    fitted: Fitted,
    data: LeadData,
    config: RunConfig,
    metrics: dict[str, float],
    model_name: str,
    seed: int,
    run_id: str | None = None,
) -> CalibratedModel | None:
    """Give the scorer what it ships with (holdout scores, metadata) and the estimator to serve;
    returns the evaluation estimator to ship beside a refit (None without one)."""
    scorer, examples, split = fitted.scorer, fitted.examples, fitted.split
    holdout_frame = fitted.holdout_frame
    holdout_as_of = (
        holdout_frame["as_of"]
        if "as_of" in holdout_frame
        else pd.Series(pd.NaT, index=holdout_frame.index)
    )
    scorer.holdout = pd.DataFrame(
        {
            "probability": fitted.holdout_probability,
            "label": fitted.holdout_labels.astype(np.int64),
            "as_of": holdout_as_of.to_numpy(),
        }
    )
    if scorer.value is not None:  # ranking the hand-off by expected value is simulated on these
        amount = scorer.value.predict(fitted.X_holdout)[0]
        scorer.holdout["expected_value"] = fitted.holdout_probability * amount
    if scorer.timing is not None and "created_at" in holdout_frame:  # /ops: time by grade
        ages = lead_ages(holdout_frame["created_at"], holdout_as_of)
        chances, median = scorer.timing.predict(fitted.X_holdout, ages, fitted.holdout_probability)
        for horizon, chance in chances.items():
            scorer.holdout[f"win_within_{horizon}d"] = chance
        scorer.holdout["median_days_to_close"] = median
    trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    scorer.metadata = {
        "name": model_name,
        "version": None,
        "run_id": run_id,
        "trained_at": trained_at,
        # the data's end (outcomes known by then): retraining counts the outcomes that came after
        "training_data_end": None if examples.now is None else examples.now.isoformat(),
        "metrics": {k: _finite(v) for k, v in metrics.items()},
        "holdout_weeks": split.holdout_weeks,
        "holdout": split.description,
        "features": list(scorer.feature_names),
        "attributes": list(data.attribute_types),
        "model": fitted.selected,
        "calibration": scorer.estimator.calibration["method"],
        "timestamped": examples.timestamped,
        "uses_touchpoints": bool(scorer.featurizer.uses_touchpoints_),
        "seed": seed,
        "data_config": json.loads(config.data.model_dump_json()),
    }
    evaluation_estimator = scorer.estimator
    if fitted.final_estimator is not None:
        scorer.estimator = fitted.final_estimator
    scorer.metadata["refit"] = fitted.refitted
    scorer.metadata["examples_fitted"] = len(fitted.train_rows) + fitted.refitted * len(
        fitted.holdout_rows
    )
    return evaluation_estimator if fitted.refitted else None
