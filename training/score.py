"""Batch scoring: a leads file (and touchpoints) -> one row per lead with score, grade, decision,
reasons and the policy that decided, written as CSV or Parquet.

The decision uses the policy in force in the service when given its database (`policy_in_force`
reads it with `serving.policy.store`, the one reader of the policy table: the same version the
API applies), otherwise the model's own; the `policy` column says which
(`features.policy.applied`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from features.data.config import DataConfig, load_config
from features.data.loading import LeadData, load_lead_data
from features.model.reasons import format_reasons
from features.model.scorer import LeadScorer
from features.policy.applied import AppliedPolicy, model_default, service_policy

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


def policy_in_force(scorer: LeadScorer, database_url: str | None = None) -> AppliedPolicy:
    """The policy to decide with: the newest version saved in the service database at
    `database_url` (version 0, nothing saved: the model's own, as the service does), or without a
    database the model's own. Raises ScoreError naming the database and the fix."""
    default = model_default(scorer.policy, scorer.metadata)
    if not database_url:
        return default
    import sqlalchemy as sa
    from sqlalchemy.exc import SQLAlchemyError

    from serving.db import make_engine
    from serving.policy.store import current_policy, policy_versions

    shown = _hide_password(database_url)
    try:
        engine = make_engine(database_url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise ScoreError(
            f"--database-url {shown}: not a database URL ({_first_line(exc)})"
        ) from None
    try:
        if not sa.inspect(engine).has_table(policy_versions.name):
            raise ScoreError(
                f"--database-url {shown}: no policy table there; give the URL of the service's "
                "database (its LEADSCORE_DATABASE_URL), which the service sets up when it starts"
            )
        current = current_policy(engine, scorer.policy)
    except SQLAlchemyError as exc:
        raise ScoreError(
            f"--database-url {shown}: cannot read the policy in force ({_first_line(exc)}); check "
            "the URL and that the database server is running"
        ) from None
    finally:
        engine.dispose()
    return service_policy(current.version, current.policy, default)


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: shown as given
        return url


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def score_data(
    scorer: LeadScorer,
    data: LeadData,
    as_of: Any = None,
    explain: bool = True,
    progress: Callable[[int], None] | None = None,
    policy: AppliedPolicy | None = None,
) -> pd.DataFrame:
    """Scored leads: lead_id, probability, score, grade, decision, reasons_for, reasons_against
    (plain text), hard_rule, exploration (sent to sales by the policy's exploration rate, drawn
    as the API draws it under the same policy version) and policy (which one decided: `policy`,
    default the model's own); with the model's fit and engagement scores also fit_probability,
    engagement_probability, fit_grade (A-D), engagement_level (1-4), grid (A1-D4); with its
    deal value and time-to-close parts also expected_amount, amount_low, amount_high,
    expected_value, amount_reasons, win_within_30d/60d/90d, median_days_to_close."""
    policy = policy or model_default(scorer.policy, scorer.metadata)
    frame = data.leads
    for column in scorer.featurizer.attributes_.columns_:
        if column["column"] not in frame.columns and column["column"] != "created_at":
            frame = frame.assign(**{column["column"]: None})
    if scorer.featurizer.timestamped_ and "created_at" not in frame.columns:
        frame = frame.assign(created_at=pd.NaT)
    scored = scorer.score_frame(
        frame, data.touchpoints, as_of=as_of, explain=explain, progress=progress,
        policy=policy.policy, policy_version=policy.version,
    )  # fmt: skip
    if explain:
        scored["reasons_for"] = [format_reasons(r) for r in scored["reasons_for"]]
        scored["reasons_against"] = [format_reasons(r) for r in scored["reasons_against"]]
    if "amount_reasons" in scored:  # their texts say the factor ("typical deals about 3.1x")
        scored["amount_reasons"] = [
            "; ".join(r["text"] for r in rs) for rs in scored["amount_reasons"]
        ]
    scored["policy"] = policy.label
    return scored


def write_scores(scored: pd.DataFrame, out: Path) -> None:
    if out.suffix.lower() == ".parquet":
        scored.to_parquet(out, index=False)
    else:
        scored.to_csv(out, index=False)


def load_for_scoring(config: DataConfig) -> LeadData:
    return load_lead_data(config)
