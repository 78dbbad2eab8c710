"""features.data.config"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.data.validation import DataValidationError, ValidationReport
from features.data.values import DEFAULT_PLACEHOLDERS
from features.data.vocabulary import ACTIVITIES, CHANNELS, AttributeType

# --------------------------------------------------------------------------------------------------
# Configuration: which column is which


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Path | None = None
    delimiter: str | None = Field(default=None, description="CSV delimiter; sniffed when absent")
    encoding: str | None = Field(
        default=None, description="CSV encoding; utf-8, else cp1252 with a note"
    )

    @model_validator(mode="before")
    @classmethod
    def _path_shorthand(cls, data: Any) -> Any:
        if isinstance(data, (str, Path)):
            return {"path": data}
        return data


class LeadsSource(_Source):
    lead_id: str = "lead_id"
    created_at: str | None = "created_at"


class TouchpointsSource(_Source):
    lead_id: str = "lead_id"
    occurred_at: str = "occurred_at"
    channel: str = "channel"
    activity: str = "activity"
    campaign: str | None = "campaign"
    value: str | None = "value"


class OutcomesSource(_Source):
    lead_id: str = "lead_id"
    closed_at: str = "closed_at"
    won: str = "won"
    amount: str | None = "amount"


class DataConfig(BaseModel):
    """Where the files are and which column is which.

    A table given as a plain path uses the canonical column names. Flat mode (one leads table with a
    label column, no timestamps) is on when `label` is set. Paths in a YAML file are relative to it.
    """

    model_config = ConfigDict(extra="forbid")

    leads: LeadsSource
    touchpoints: TouchpointsSource | None = None
    outcomes: OutcomesSource | None = None
    label: str | None = Field(
        default=None, description="flat mode: the label column of the leads file"
    )
    positive: str | None = Field(
        default=None, description="flat mode: the label value meaning 'won'"
    )
    exclude: list[str] = Field(
        default_factory=list, description="lead columns never used as attributes"
    )
    types: dict[str, AttributeType] = Field(
        default_factory=dict, description="attribute type overrides"
    )
    timezone: str | None = Field(
        default=None, description="zone of timestamps without an offset (UTC)"
    )
    dayfirst: bool = False
    datetime_format: str | None = None
    placeholders: list[str] = Field(default_factory=lambda: list(DEFAULT_PLACEHOLDERS))
    channel_map: dict[str, str] = Field(
        default_factory=dict, description="extra spellings -> channel"
    )
    activity_map: dict[str, str] = Field(
        default_factory=dict, description="extra spellings -> activity"
    )

    @field_validator("positive", mode="before")
    @classmethod
    def _positive_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @field_validator("channel_map")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in CHANNELS})
        if bad:
            raise ValueError(
                f"channel_map maps to unknown channels {bad}; use one of {list(CHANNELS)}"
            )
        return value

    @field_validator("activity_map")
    @classmethod
    def _known_activities(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in ACTIVITIES})
        if bad:
            raise ValueError(
                f"activity_map maps to unknown activities {bad}; use one of {list(ACTIVITIES)}"
            )
        return value

    @property
    def flat(self) -> bool:
        return self.label is not None

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> DataConfig:
        """Read a YAML column mapping; keyword overrides (CLI options) win over the file."""
        path = Path(path)
        if not path.is_file():
            raise DataValidationError(_config_report(path, f"config file {path} not found", None))
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DataValidationError(
                _config_report(path, f"config file is not valid YAML: {exc}", None)
            ) from None
        if not isinstance(raw, dict):
            raise DataValidationError(
                _config_report(path, "config file must be a mapping (key: value lines)", None)
            )
        try:
            config = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise DataValidationError(
                _config_report(path, f"{field}: {first['msg']}", field)
            ) from None
        config = config._relative_to(path.parent)
        return config.with_overrides(**overrides)

    @classmethod
    def from_directory(cls, directory: str | Path, **overrides: Any) -> DataConfig:
        """The three tables under their canonical names (as `leadscore demo-data` writes them)."""
        directory = Path(directory)

        def pick(stem: str) -> Path | None:
            for ext in (".parquet", ".csv"):
                if (directory / f"{stem}{ext}").is_file():
                    return directory / f"{stem}{ext}"
            return None

        leads = pick("leads") or directory / "leads.parquet"
        config = cls(leads=leads, touchpoints=pick("touchpoints"), outcomes=pick("outcomes"))
        return config.with_overrides(**overrides)

    def _relative_to(self, base: Path) -> DataConfig:
        update: dict[str, Any] = {}
        for name in ("leads", "touchpoints", "outcomes"):
            source = getattr(self, name)
            if source is not None and source.path is not None and not source.path.is_absolute():
                update[name] = source.model_copy(
                    update={"path": Path(os.path.normpath(base / source.path))}
                )
        return self.model_copy(update=update)

    def with_overrides(
        self,
        *,
        leads: str | Path | None = None,
        touchpoints: str | Path | None = None,
        outcomes: str | Path | None = None,
        id: str | None = None,
        created_at: str | None = None,
        label: str | None = None,
        positive: Any = None,
        timezone: str | None = None,
        exclude: list[str] | None = None,
        types: dict[str, str] | None = None,
    ) -> DataConfig:
        """A copy with the CLI options that were given (None means 'not given')."""
        # Only fields that were set explicitly, so optional columns (campaign, value, amount)
        # keep counting as "not asked for" and may be absent from the file.
        data = self.model_dump(exclude_unset=True)
        tables = {
            "leads": {"path": leads, "lead_id": id, "created_at": created_at},
            "touchpoints": {"path": touchpoints},
            "outcomes": {"path": outcomes},
        }
        for table, fields in tables.items():
            given = {k: (Path(v) if k == "path" else v) for k, v in fields.items() if v is not None}
            if given:
                data[table] = {**(data.get(table) or {}), **given}
        for name, value in (("label", label), ("positive", positive), ("timezone", timezone)):
            if value is not None:
                data[name] = value
        if exclude:
            data["exclude"] = [*self.exclude, *exclude]
        if types:
            data["types"] = {**self.types, **types}
        return self.model_validate(data)


def _config_report(path: Path, message: str, field: str | None) -> ValidationReport:
    report = ValidationReport()
    report.error(
        message,
        file=str(path),
        column=field,
        fix="see the 'Data contract' section of the README for the config format",
    )
    return report
