"""Batch scoring: a leads file (and touchpoints) -> one row per lead with score, grade, decision
and reasons, written as CSV or Parquet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from features.data.config import DataConfig, load_config
from features.data.loading import LeadData, load_lead_data
from features.model.reasons import format_reasons
from features.model.scorer import LeadScorer

OUTPUT_SUFFIXES = (".csv", ".parquet")


class ScoreError(ValueError):
    """Scoring cannot start; the message names the file or option and the fix."""


def check_output_path(out: str | Path) -> Path:
    path = Path(out)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ScoreError(
            f"--out {path}: unknown file type {path.suffix or '(none)'!r}; end the name with .csv "
            "or .parquet"
        )
    if not path.parent.exists():
        raise ScoreError(f"--out {path}: folder {path.parent} does not exist; create it first")
    return path


def trained_mapping(scorer: LeadScorer) -> dict[str, Any]:
    """The column mapping the model was trained with, without its files: what a leads file to
    score is read with unless a config file or options say otherwise.

    The label is excluded (a label column in the file is ignored) and outcomes are dropped.
    """
    trained = scorer.metadata.get("data_config") or {}
    lead_columns = dict(trained.get("leads") or {})
    lead_columns.pop("path", None)
    if not scorer.metadata.get("timestamped", False):
        lead_columns["created_at"] = None
    raw: dict[str, Any] = {
        "leads": lead_columns,
        "exclude": list(trained.get("exclude") or []),
        "types": dict(trained.get("types") or {}),
    }
    for key in (
        "timezone",
        "dayfirst",
        "datetime_format",
        "decimal",
        "thousands",
        "placeholders",
        "channel_map",
        "activity_map",
        "do_not_contact_columns",
        "demo_request_columns",
    ):
        if key in trained and trained[key] is not None:
            raw[key] = trained[key]
    tp_columns = dict(trained.get("touchpoints") or {})
    tp_columns.pop("path", None)
    raw["touchpoints"] = tp_columns or None
    label = trained.get("label")
    if label:
        raw["exclude"] = [*raw["exclude"], label]
    return raw


def scoring_config(
    scorer: LeadScorer,
    leads: str | Path | None = None,
    touchpoints: str | Path | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> DataConfig:
    """The mapping the model was trained with (`trained_mapping`), then a config file's data
    part, then the options, pointed at the files to score. Raises `DataValidationError`."""
    base = trained_mapping(scorer)
    loaded = load_config(
        config_file,
        base=base,
        **{**overrides, "leads": leads or overrides.get("leads"),
           "touchpoints": touchpoints or overrides.get("touchpoints")},
    )  # fmt: skip
    config = loaded.data
    if config.touchpoints is not None and config.touchpoints.path is None:
        config = config.model_copy(update={"touchpoints": None})  # the model's mapping, no file
    return config


def use_fact_columns(scorer: LeadScorer, config: DataConfig) -> None:
    """Let the scorer's hard rules also read the fact columns named for this scoring run."""
    trained = dict(scorer.metadata.get("data_config") or {})
    for key in ("do_not_contact_columns", "demo_request_columns"):
        named = list(trained.get(key) or [])
        trained[key] = named + [c for c in getattr(config, key) if c not in named]
    scorer.metadata["data_config"] = trained


def score_data(
    scorer: LeadScorer,
    data: LeadData,
    as_of: Any = None,
    explain: bool = True,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Scored leads: lead_id, probability, score, grade, decision, reasons_for, reasons_against
    (plain text), hard_rule."""
    frame = data.leads
    for column in scorer.featurizer.attributes_.columns_:
        if column["column"] not in frame.columns and column["column"] != "created_at":
            frame = frame.assign(**{column["column"]: None})
    if scorer.featurizer.timestamped_ and "created_at" not in frame.columns:
        frame = frame.assign(created_at=pd.NaT)
    scored = scorer.score_frame(
        frame, data.touchpoints, as_of=as_of, explain=explain, progress=progress
    )
    if explain:
        scored["reasons_for"] = [format_reasons(r) for r in scored["reasons_for"]]
        scored["reasons_against"] = [format_reasons(r) for r in scored["reasons_against"]]
    return scored


def write_scores(scored: pd.DataFrame, out: Path) -> None:
    if out.suffix.lower() == ".parquet":
        scored.to_parquet(out, index=False)
    else:
        scored.to_csv(out, index=False)


def load_for_scoring(config: DataConfig) -> LeadData:
    return load_lead_data(config)
