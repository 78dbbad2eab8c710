"""Service settings, read once from the environment (prefix `LEADSCORE_`, plus `MLFLOW_TRACKING_URI`
and `PROMETHEUS_MULTIPROC_DIR`), and the one function that hands them to uvicorn's workers."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROLES = ("scorer", "ops", "admin")


class Settings(BaseSettings):
    """Everything the service needs to start; each field is `LEADSCORE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix="LEADSCORE_", extra="ignore", populate_by_name=True
    )

    model_uri: str = Field(
        "models:/lead-scoring@champion",
        description="MLflow model URI to serve; an alias URI is re-resolved on reload and polling.",
    )
    mlflow_tracking_uri: str = Field(
        "sqlite:///mlflow.db",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LEADSCORE_MLFLOW_TRACKING_URI"),
        description="Where the MLflow registry lives.",
    )
    database_url: str = Field(
        "sqlite:///leadscore.db",
        description="SQLAlchemy URL of the score log, outcomes, keys and policies "
        "(PostgreSQL in production: postgresql+psycopg://user@host/db).",
    )
    api_keys_bootstrap: str = Field(
        "",
        description="Keys to ensure at start, `name:role:key` separated by commas "
        "(e.g. for containers); the key is stored hashed.",
    )
    auto_migrate: bool = Field(True, description="Run the alembic migrations at start.")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1

    max_body_bytes: int = Field(
        8_000_000,
        description="Requests with a larger body get 413 (1,000 leads with 20 touchpoints "
        "each are about 3 MB).",
    )
    max_leads_per_request: int = 1000
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection must send a request's whole header within this time "
        "(from the connection or its first byte; else 408 and closed): slow-header clients "
        "(slowloris) cannot hold connections open.",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="A request's whole body must arrive within this time from the request's "
        "start (else 408): slow-drip bodies cannot hold a worker's memory.",
    )
    keep_alive_seconds: int = Field(
        5, ge=1, description="An idle keep-alive connection is closed after this many seconds."
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as text or as one JSON object per line (time, level, logger, "
        "message, request_id): serving.logs.",
    )
    compile_model: bool = Field(
        True,
        description="Evaluate logistic and gradient-boosting models with numpy "
        "(features.compiled), after checking they match scikit-learn; false: scikit-learn only.",
    )
    model_threads: int = Field(
        1,
        ge=1,
        description="BLAS/OpenMP threads per worker for the model (scale with --workers "
        "instead: small predictions are slower with thread pools).",
    )

    score_log_batch_size: int = Field(500, ge=1, description="Rows per INSERT of the score log.")
    score_log_flush_seconds: float = Field(
        0.2, gt=0, description="Longest time a score waits in memory before it is written."
    )
    score_log_max_pending: int = Field(
        100_000,
        ge=1,
        description="Score records that may wait in memory for the database; beyond it "
        "POST /v1/score answers 503 with Retry-After (the database cannot keep up) instead of "
        "growing memory.",
    )
    spill_dir: str = Field(
        "leadscore-spill",
        description="Directory (relative to the working directory unless absolute) where a "
        "stopping service writes the score-log and capture records the database did not take "
        "within writer_stop_seconds; the next start writes them first and deletes the file.",
    )
    writer_stop_seconds: float = Field(
        10.0,
        gt=0,
        description="At shutdown, how long the score-log and capture writers keep trying the "
        "database before spilling what is left to spill_dir.",
    )
    key_cache_seconds: float = Field(
        0.5,
        gt=0,
        description="How often the API key cache is refreshed (revocations apply within it).",
    )
    model_retry_seconds: float = Field(
        5.0, gt=0, description="Retry interval while the model cannot be loaded at start."
    )
    model_require_hashes: bool = Field(
        False,
        description="Refuse model versions registered without file hashes (before leadscore "
        "recorded them) instead of loading them with a warning.",
    )
    model_poll_seconds: float = Field(
        0.0, ge=0, description="Check the alias for a new champion this often (0 = only on reload)."
    )
    policy_refresh_seconds: float = Field(
        0.5,
        gt=0,
        description="How often each worker checks for a new policy version (a change saved "
        "through another worker or the CLI applies within it).",
    )
    capture_enabled: bool = Field(
        True,
        description="Keep the inputs of every scored lead and accept POST /v1/events "
        "(attributes, touchpoints, creation moment; each once, with when it arrived).",
    )
    capture_retention_days: float = Field(
        730,
        ge=0,
        description="Delete captured attributes and touchpoints received longer ago than this "
        "(checked every capture_purge_seconds); 0 keeps them.",
    )
    capture_purge_seconds: float = Field(
        3600, gt=0, description="How often the capture retention purge runs."
    )
    capture_max_pending: int = Field(
        10_000,
        ge=1,
        description="Requests whose capture may wait in memory; beyond it a score's capture is "
        "dropped (counted) and POST /v1/events answers 503.",
    )
    capture_known_leads: int = Field(
        50_000,
        ge=0,
        description="Leads each worker remembers as stored (a digest of what it last wrote for "
        "each, about 300 bytes a lead): scored again with nothing new, such a lead costs the "
        "capture one shared query instead of its rows; 0 turns this off.",
    )
    prometheus_multiproc_dir: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "PROMETHEUS_MULTIPROC_DIR", "LEADSCORE_PROMETHEUS_MULTIPROC_DIR"
        ),
        description="Directory where the workers' metrics are added up (prometheus_client reads "
        "it at import); `leadscore serve --workers N` creates one when it is not set.",
    )

    @field_validator("api_keys_bootstrap")
    @classmethod
    def _bootstrap_is_well_formed(cls, value: str) -> str:
        parse_bootstrap_keys(value)
        return value

    def bootstrap_keys(self) -> list[tuple[str, str, str]]:
        return parse_bootstrap_keys(self.api_keys_bootstrap)


def parse_bootstrap_keys(value: str) -> list[tuple[str, str, str]]:
    """`name:role:key,...` -> [(name, role, key)], with a message naming the bad entry."""
    keys = []
    for position, entry in enumerate(item.strip() for item in value.split(",")):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(
                f"LEADSCORE_API_KEYS_BOOTSTRAP entry {position + 1} must be name:role:key "
                f"(got {len(parts)} part(s)); separate several keys with commas"
            )
        name, role, key = parts
        if role not in ROLES:
            raise ValueError(
                f"LEADSCORE_API_KEYS_BOOTSTRAP entry {position + 1} ({name!r}) has role {role!r}; "
                f"expected one of {', '.join(ROLES)}"
            )
        if len(key) < 16:
            raise ValueError(
                f"LEADSCORE_API_KEYS_BOOTSTRAP entry {position + 1} ({name!r}) has a key shorter "
                "than 16 characters; use a long random key (e.g. `leadscore keys create`)"
            )
        keys.append((name, role, key))
    return keys


def settings_environment(settings: Settings) -> dict[str, str]:
    """Every setting as the environment variable `Settings()` reads it back from."""
    environment = {}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if value is None:
            continue
        alias = field.validation_alias
        variable = (
            str(alias.choices[0])
            if isinstance(alias, AliasChoices)
            else f"LEADSCORE_{name.upper()}"
        )
        environment[variable] = str(value).lower() if isinstance(value, bool) else str(value)
    return environment


def export_for_workers(settings: Settings) -> None:
    """Hand `settings` to the processes uvicorn starts, through this process's environment.

    `leadscore serve` runs uvicorn with the import string `serving.app:create_app_from_env`, and
    with `--workers N` each worker is a new process that builds its own `Settings()`: the
    environment is the only way to give it what the CLI decided (no migrations in the workers,
    the alias polling interval, the metrics directory). This is the one place that writes it.
    OMP_NUM_THREADS is set too (unless already set): OpenMP reads it once, when the model's
    libraries are imported.
    """
    os.environ.update(settings_environment(settings))
    os.environ.setdefault("OMP_NUM_THREADS", str(settings.model_threads))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process (cached; tests build their own `Settings(...)` instead)."""
    return Settings()
