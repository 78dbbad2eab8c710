"""features.data.config: which column is which (`DataConfig`), and the one reader of config files
(`load_config`), which `leadscore validate`, `train` and `score` share."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.data.validation import DataValidationError, ValidationReport
from features.data.values import DEFAULT_PLACEHOLDERS, THOUSANDS_MARKS, NumberFormat
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
    dayfirst: bool | None = Field(
        default=None,
        description="03/04/2024 is 3 April when true, 4 March when false; unset: month-first, "
        "and dates that read both ways are reported",
    )
    datetime_format: str | None = None
    decimal: Literal[".", ","] | None = Field(
        default=None, description="decimal mark of numbers; detected when unambiguous"
    )
    thousands: str | None = Field(
        default=None, description="thousands separator; any but the decimal mark when unset"
    )
    do_not_contact_columns: list[str] = Field(
        default_factory=list,
        description="lead columns whose yes means 'do not contact', beside the built-in names",
    )
    demo_request_columns: list[str] = Field(
        default_factory=list,
        description="lead columns whose yes means 'requested a demo', beside the built-in names",
    )
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

    @field_validator("thousands")
    @classmethod
    def _known_thousands(cls, value: str | None) -> str | None:
        if value is not None and value not in THOUSANDS_MARKS:
            raise ValueError(
                f"thousands separator {value!r} is not one of {list(THOUSANDS_MARKS)}; write it "
                "quoted, e.g. thousands: '.'"
            )
        return value

    @model_validator(mode="after")
    def _marks_differ(self) -> DataConfig:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(
                f"decimal and thousands are both {self.decimal!r}; a number cannot use one mark "
                "for both: set thousands to the other one or remove it"
            )
        return self

    @property
    def flat(self) -> bool:
        return self.label is not None

    @property
    def number_format(self) -> NumberFormat | None:
        """The numbers' format the config sets; None: detected from the values."""
        if self.decimal is None and self.thousands is None:
            return None
        decimal = self.decimal or ("," if self.thousands == "." else ".")
        return NumberFormat(decimal, self.thousands)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> DataConfig:
        """Read a YAML column mapping; keyword overrides (CLI options) win over the file."""
        return load_config(path, **overrides).data

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

    def with_overrides(self, **overrides: Any) -> DataConfig:
        """A copy with the CLI options that were given (None means 'not given'); see
        `apply_overrides` for the options."""
        # Only fields that were set explicitly, so optional columns (campaign, value, amount)
        # keep counting as "not asked for" and may be absent from the file.
        data = self.model_dump(exclude_unset=True)
        return self.model_validate(apply_overrides(data, **overrides))


def apply_overrides(
    data: dict[str, Any],
    *,
    leads: str | Path | None = None,
    touchpoints: str | Path | None = None,
    outcomes: str | Path | None = None,
    id: str | None = None,
    created_at: str | None = None,
    label: str | None = None,
    positive: Any = None,
    timezone: str | None = None,
    dayfirst: bool | None = None,
    datetime_format: str | None = None,
    decimal: str | None = None,
    thousands: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    exclude: list[str] | None = None,
    types: dict[str, str] | None = None,
    do_not_contact_columns: list[str] | None = None,
    demo_request_columns: list[str] | None = None,
) -> dict[str, Any]:
    """The raw config mapping `data` with the CLI options that were given (None: not given).

    Paths are kept as given: relative ones start at the working directory. Lists (`exclude`, the
    fact columns) and `types` add to the file's.
    """
    data = dict(data)
    tables = {
        "leads": {"path": leads, "lead_id": id, "created_at": created_at},
        "touchpoints": {"path": touchpoints},
        "outcomes": {"path": outcomes},
    }
    for table, fields in tables.items():
        given = {k: (Path(v) if k == "path" else v) for k, v in fields.items() if v is not None}
        if given:
            data[table] = {**_table_mapping(data.get(table)), **given}
    for table in tables:
        if data.get(table) is not None:
            csv = {"delimiter": delimiter, "encoding": encoding}
            given = {k: v for k, v in csv.items() if v is not None}
            if given:
                data[table] = {**_table_mapping(data[table]), **given}
    scalars = {
        "label": label, "positive": positive, "timezone": timezone, "dayfirst": dayfirst,
        "datetime_format": datetime_format, "decimal": decimal, "thousands": thousands,
    }  # fmt: skip
    for name, value in scalars.items():
        if value is not None:
            data[name] = value
    lists = {
        "exclude": exclude,
        "do_not_contact_columns": do_not_contact_columns,
        "demo_request_columns": demo_request_columns,
    }
    for name, values in lists.items():
        if values:
            data[name] = [*(data.get(name) or []), *values]
    if types:
        data["types"] = {**(data.get("types") or {}), **types}
    return data


def _table_mapping(value: Any) -> dict[str, Any]:
    """A table entry of a config mapping as a dict (`leads: x.csv` is `leads: {path: x.csv}`)."""
    if value is None:
        return {}
    if isinstance(value, (str, Path)):
        return {"path": value}
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    return dict(value)


# --------------------------------------------------------------------------------------------------
# The config file

# Top-level keys of a config file that other packages own (the feature, training and policy
# settings): split off here, validated by whoever passes their model to `load_config`.
SECTIONS = ("features", "training", "policy")


@dataclass(frozen=True)
class ConfigFile:
    """A config file read once: the data mapping with the CLI options applied, and the other
    sections (validated models for those `load_config` was given a model for, else raw)."""

    data: DataConfig
    sections: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_config(
    path: str | Path | None,
    *,
    sections: Mapping[str, type[BaseModel]] | None = None,
    base: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> ConfigFile:
    """Read a YAML config file (or none) and apply the CLI options (`apply_overrides`).

    Paths written in the file are relative to the file; paths given as options are relative to
    the working directory. `base`: a mapping the file and the options apply to (when scoring, the
    one the model was trained with); the file's tables add to its tables, its other keys replace
    them. Raises `DataValidationError` whose finding names the file, the field and the fix.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path)
    parsed: dict[str, Any] = {}
    for name in SECTIONS:
        value = raw.pop(name, None)
        model = (sections or {}).get(name)
        if model is None:
            parsed[name] = value
            continue
        try:
            parsed[name] = model.model_validate(value or {})
        except ValidationError as exc:
            raise DataValidationError(_field_report(path, exc, prefix=(name,))) from None
    if path is not None:
        raw = _relative_to(raw, path.parent)
    if base is not None:
        raw = _merged(base, raw)
    data = apply_overrides(raw, **overrides)
    if data.get("leads") is None:
        where = f"'leads: PATH' in {path}" if path is not None else "--config FILE with 'leads:'"
        report = ValidationReport()
        report.error(
            "no leads file given",
            file=None if path is None else str(path),
            column="leads",
            fix=f"pass --leads PATH, or set {where}",
        )
        raise DataValidationError(report)
    try:
        config = DataConfig.model_validate(data)
    except ValidationError as exc:
        raise DataValidationError(_field_report(path, exc)) from None
    return ConfigFile(config, parsed, path)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataValidationError(
            _config_report(
                path,
                f"config file {path} not found",
                None,
                fix=f"check the --config path (relative paths start at {Path.cwd()})",
            )
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataValidationError(
            _config_report(path, f"config file is not valid YAML: {exc}", None)
        ) from None
    except UnicodeDecodeError as exc:
        raise DataValidationError(
            _config_report(
                path,
                f"config file is not UTF-8 text (byte {exc.start})",
                None,
                fix="save the config file as UTF-8",
            )
        ) from None
    if not isinstance(raw, dict):
        raise DataValidationError(
            _config_report(path, "config file must be a mapping (key: value lines)", None)
        )
    return raw


def _merged(base: Mapping[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for name, value in raw.items():
        if name in ("leads", "touchpoints", "outcomes") and out.get(name) is not None:
            out[name] = {**_table_mapping(out[name]), **_table_mapping(value)}
        else:
            out[name] = value
    return out


def _relative_to(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """The raw mapping with the tables' relative paths resolved from `base` (the file's folder)."""
    out = dict(raw)
    for name in ("leads", "touchpoints", "outcomes"):
        value = out.get(name)
        if isinstance(value, (str, Path)):
            value = {"path": value}
        if isinstance(value, dict) and isinstance(value.get("path"), (str, Path)):
            table_path = Path(value["path"])
            if not table_path.is_absolute():
                table_path = Path(os.path.normpath(base / table_path))
            out[name] = {**value, "path": table_path}
    return out


_DATA_FIELDS = tuple(DataConfig.model_fields)


def _field_report(
    path: Path | None, exc: ValidationError, prefix: tuple[str, ...] = ()
) -> ValidationReport:
    """The first pydantic error as a finding naming the field and the fix."""
    first = exc.errors()[0]
    loc = [*prefix, *(str(p) for p in first["loc"])]
    field_name = ".".join(loc) or None
    message = first["msg"].removeprefix("Value error, ")
    fix = "see the 'Data contract' section of the README for the config format"
    if prefix:
        fix = f"see the README for the '{prefix[0]}:' settings"
    if first["type"] == "extra_forbidden":
        known = list(_DATA_FIELDS) + list(SECTIONS) if not prefix and len(loc) == 1 else []
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        fix = f"{hint}remove '{loc[-1]}' or check its spelling; " + fix
    where = f"config {field_name}" if field_name else "config"
    return _config_report(path, f"{where}: {message}", field_name, fix=fix)


def _config_report(
    path: Path | None, message: str, field_name: str | None, fix: str | None = None
) -> ValidationReport:
    report = ValidationReport()
    report.error(
        message,
        file=None if path is None else str(path),
        column=field_name,
        fix=fix or "see the 'Data contract' section of the README for the config format",
    )
    return report
