"""The lead data contract: canonical names, the column mapping, and `load_lead_data`.

Users keep their files as their CRM exported them; `DataConfig` says which column is which. After
`load_lead_data` every table has canonical names and dtypes (see docs/design.md):

- leads: `lead_id` (str, unique), `created_at` (datetime64[ns, UTC], absent in flat mode), attributes
- touchpoints: `lead_id`, `occurred_at` (UTC), `channel` (in CHANNELS), `activity` (in ACTIVITIES),
  `campaign` (str or missing), `value` (float or NaN)
- outcomes: `lead_id`, `closed_at` (UTC), `won` (bool), `amount` (float or NaN)
- flat mode: leads + a `label` Series of 0/1 aligned with leads, no timestamps
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features import readers, validation
from features.validation import DataValidationError, Finding, ValidationReport, format_examples

__all__ = [
    "ACTIVITIES",
    "CHANNELS",
    "HIGH_INTENT",
    "AttributeType",
    "DataConfig",
    "DataValidationError",
    "Finding",
    "LeadData",
    "LeadsSource",
    "OutcomesSource",
    "TouchpointsSource",
    "ValidationReport",
    "load_lead_data",
    "lookup_activity",
    "lookup_channel",
    "normalise_activity",
    "normalise_channel",
]

CHANNELS: tuple[str, ...] = (
    "organic_search",
    "paid_search",
    "paid_social",
    "email",
    "webinar",
    "content",
    "event",
    "referral",
    "direct",
    "print",
    "other",
)
ACTIVITIES: tuple[str, ...] = (
    "visit",
    "pricing_page_view",
    "email_open",
    "email_click",
    "form_submit",
    "download",
    "webinar_attend",
    "demo_request",
    "unsubscribe",
    "email_bounce",
    "other",
)
HIGH_INTENT: tuple[str, ...] = ("demo_request", "pricing_page_view", "form_submit")

AttributeType = Literal["categorical", "numeric", "boolean", "datetime"]
ATTRIBUTE_TYPES: tuple[str, ...] = ("categorical", "numeric", "boolean", "datetime")

# Values CRM exports use for "nobody filled this in"; read as missing (case and spaces ignored).
DEFAULT_PLACEHOLDERS: tuple[str, ...] = (
    "select",
    "n/a",
    "na",
    "none",
    "null",
    "nil",
    "-",
    "--",
    "?",
    "#n/a",
    "nan",
    "(blank)",
    "not provided",
    "not specified",
)

_CHANNEL_SYNONYMS: dict[str, tuple[str, ...]] = {
    "organic_search": (
        "organic",
        "seo",
        "organic search",
        "google organic",
        "bing organic",
        "google organic search",
        "search engine",
        "natural search",
        "google",
        "bing",
        "yahoo",
    ),
    "paid_search": (
        "paid search",
        "google ads",
        "adwords",
        "google adwords",
        "ppc",
        "sem",
        "cpc",
        "google cpc",
        "bing ads",
        "microsoft ads",
        "search ads",
        "paid search ads",
        "welingak website",
    ),
    "paid_social": (
        "paid social",
        "linkedin ads",
        "linkedin",
        "facebook ads",
        "facebook",
        "meta ads",
        "meta",
        "twitter ads",
        "twitter",
        "x ads",
        "social ads",
        "social media",
        "social",
        "instagram",
        "paid social media",
        "olark chat",
        "youtubechannel",
        "youtube",
    ),
    "email": (
        "email",
        "e mail",
        "email campaign",
        "email campaigns",
        "newsletter",
        "email marketing",
        "nurture email",
        "marketing email",
        "mailchimp",
        "hubspot email",
    ),
    "webinar": ("webinar", "webinars", "online event", "virtual event", "webcast"),
    "content": (
        "content",
        "content download",
        "content downloads",
        "ebook",
        "e book",
        "whitepaper",
        "white paper",
        "content syndication",
        "blog",
        "gated content",
        "case study",
    ),
    "event": (
        "event",
        "events",
        "trade show",
        "tradeshow",
        "trade shows",
        "events and trade shows",
        "events trade shows",
        "conference",
        "field event",
        "trade show event",
        "live event",
        "expo",
    ),
    "referral": (
        "referral",
        "referrals",
        "referral sites",
        "partner",
        "partner referral",
        "customer referral",
        "word of mouth",
        "reference",
    ),
    "direct": ("direct", "direct traffic", "direct none", "website", "web", "type in", "live chat"),
    "print": ("print", "print ad", "print ads", "magazine", "newspaper", "direct mail", "mailer"),
    "other": ("other", "others", "unknown", "misc", "miscellaneous"),
}

_ACTIVITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "visit": (
        "visit",
        "page visit",
        "page visited on website",
        "website visit",
        "web visit",
        "page view",
        "pageview",
        "session",
        "site visit",
        "visited website",
    ),
    "pricing_page_view": (
        "pricing page view",
        "pricing page",
        "viewed pricing",
        "pricing",
        "pricing page visit",
        "pricing view",
        "viewed pricing page",
    ),
    "email_open": ("email open", "email opened", "opened email", "open", "email opens"),
    "email_click": (
        "email click",
        "email clicked",
        "email link clicked",
        "clicked email",
        "click",
        "link click",
        "email clicks",
    ),
    "form_submit": (
        "form submit",
        "form submitted",
        "form fill",
        "form submission",
        "form filled",
        "contact form",
        "contact us",
        "form submitted on website",
        "signup",
        "sign up",
    ),
    "download": (
        "download",
        "content download",
        "asset download",
        "ebook download",
        "whitepaper download",
        "downloaded",
        "resource download",
    ),
    "webinar_attend": (
        "webinar attend",
        "webinar attended",
        "attended webinar",
        "webinar attendance",
        "webinar attendee",
    ),
    "demo_request": (
        "demo request",
        "demo requested",
        "requested demo",
        "request a demo",
        "book a demo",
        "demo",
        "demo booked",
        "trial request",
    ),
    "unsubscribe": (
        "unsubscribe",
        "unsubscribed",
        "email unsubscribe",
        "email unsubscribed",
        "opt out",
        "opted out",
        "unreachable",
    ),
    "email_bounce": (
        "email bounce",
        "email bounced",
        "bounced",
        "bounce",
        "hard bounce",
        "soft bounce",
    ),
    "other": ("other", "others", "unknown"),
}


def _key(value: object) -> str:
    """Case, punctuation and spacing removed: 'Google / CPC ' -> 'google cpc'."""
    return re.sub(r"[^a-z0-9]+", " ", str(value).lower()).strip()


def _build_lookup(
    canonical: tuple[str, ...], synonyms: dict[str, tuple[str, ...]]
) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for name in canonical:
        lookup[_key(name)] = name
    for name, words in synonyms.items():
        for word in words:
            lookup[_key(word)] = name
    return lookup


_CHANNEL_LOOKUP = _build_lookup(CHANNELS, _CHANNEL_SYNONYMS)
_ACTIVITY_LOOKUP = _build_lookup(ACTIVITIES, _ACTIVITY_SYNONYMS)


def _lookup(value: object, table: dict[str, str], extra: dict[str, str] | None) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    key = _key(value)
    if extra:
        for raw, name in extra.items():
            if _key(raw) == key:
                return name
    if key in table:
        return table[key]
    if key.endswith("s") and key[:-1] in table:
        return table[key[:-1]]
    return None


def lookup_channel(value: object, extra: dict[str, str] | None = None) -> str | None:
    """The canonical channel for a spelling, or None when it is not recognised."""
    return _lookup(value, _CHANNEL_LOOKUP, extra)


def lookup_activity(value: object, extra: dict[str, str] | None = None) -> str | None:
    """The canonical activity for a spelling, or None when it is not recognised."""
    return _lookup(value, _ACTIVITY_LOOKUP, extra)


def normalise_channel(value: object, extra: dict[str, str] | None = None) -> str:
    """Canonical channel name for a messy spelling ('Google Ads' -> 'paid_search'); else 'other'."""
    return lookup_channel(value, extra) or "other"


def normalise_activity(value: object, extra: dict[str, str] | None = None) -> str:
    """Canonical activity name for a messy spelling ('Email Opened' -> 'email_open'); else 'other'."""
    return lookup_activity(value, extra) or "other"


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


# --------------------------------------------------------------------------------------------------
# The loaded data


@dataclass
class LeadData:
    """Canonical frames plus the validation report (see the module docstring for the shapes)."""

    leads: pd.DataFrame
    touchpoints: pd.DataFrame | None
    outcomes: pd.DataFrame | None
    label: pd.Series | None
    attribute_types: dict[str, str]
    report: ValidationReport

    @property
    def flat(self) -> bool:
        return self.label is not None

    @property
    def attributes(self) -> list[str]:
        return list(self.attribute_types)


def load_lead_data(config: DataConfig, progress: bool = False) -> LeadData:
    """Read the files named in `config`, map columns, infer types and validate.

    Raises `DataValidationError(report)` when the report has errors; warnings are in `.report`.
    """
    report = ValidationReport()
    steps = [("leads", config.leads)]
    if config.touchpoints is not None:
        steps.append(("touchpoints", config.touchpoints))
    if config.outcomes is not None:
        steps.append(("outcomes", config.outcomes))
    _check_mode(config, report)
    if report.errors:
        raise DataValidationError(report)

    raw: dict[str, pd.DataFrame | None] = {}
    with _progress(progress, len(steps) + 1) as advance:
        for name, source in steps:
            advance(f"reading {name}")
            raw[name] = readers.read_table(
                source.path, name, report, delimiter=source.delimiter, encoding=source.encoding
            )
        if report.errors:
            raise DataValidationError(report)
        advance("checking")
        leads, label, attribute_types = _canonical_leads(raw["leads"], config, report)
        touchpoints = outcomes = None
        if raw.get("touchpoints") is not None:
            touchpoints = _canonical_touchpoints(raw["touchpoints"], config, report)
        if raw.get("outcomes") is not None:
            outcomes = _canonical_outcomes(raw["outcomes"], config, report)
        if report.errors:
            raise DataValidationError(report)
        touchpoints, outcomes = _cross_checks(leads, touchpoints, outcomes, config, report)
    if report.errors:
        raise DataValidationError(report)
    return LeadData(
        leads=leads,
        touchpoints=touchpoints,
        outcomes=outcomes,
        label=label,
        attribute_types=attribute_types,
        report=report,
    )


class _progress:
    """A rich progress bar over the loading steps, or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self._bar: Any = None

    def __enter__(self):
        if not self.enabled:
            return lambda description: None
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._bar.__enter__()
        task = self._bar.add_task("loading", total=self.total)

        def advance(description: str) -> None:
            self._bar.update(task, description=description, advance=1)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _check_mode(config: DataConfig, report: ValidationReport) -> None:
    if config.flat and (config.touchpoints is not None or config.outcomes is not None):
        report.error(
            "a label column (flat mode) cannot be combined with touchpoints or outcomes files",
            column=config.label,
            fix="either drop --label (outcomes give the labels) or drop --touchpoints/--outcomes",
        )
    if config.timezone is not None:
        try:
            pd.Timestamp("2024-01-01").tz_localize(config.timezone)
        except (KeyError, ValueError, TypeError):  # zoneinfo/pytz raise KeyError subclasses
            report.error(
                f"unknown time zone {config.timezone!r}",
                column="timezone",
                fix="use an IANA name such as UTC, Europe/Berlin or America/New_York",
            )


def _lead_ids(values: pd.Series) -> pd.Series:
    """Lead ids as stripped text; integral floats (ids read next to missing values) lose '.0'."""
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if (whole == whole.round()).all():
            values = values.astype("Int64")
    text = readers.to_text(values).str.strip()
    return text.where(text != "", other=pd.NA)


def _timestamps(
    values: pd.Series,
    config: DataConfig,
    report: ValidationReport,
    file: str,
    column: str,
    *,
    what: str,
) -> tuple[pd.Series, pd.Series]:
    """Parsed UTC timestamps and the mask of rows to keep; findings for bad and naive values."""
    parsed, bad, naive = readers.parse_timestamps(
        values,
        timezone=config.timezone,
        dayfirst=config.dayfirst,
        datetime_format=config.datetime_format,
    )
    n_bad = int(bad.sum())
    if n_bad:
        share = n_bad / len(values)
        hint = (
            "the dates look day-first: set 'dayfirst: true' in the config"
            if not config.dayfirst and readers.dayfirst_helps(values, bad)
            else "write them as YYYY-MM-DD HH:MM:SS (ISO 8601), or set 'datetime_format:' "
            "(e.g. '%d/%m/%Y %H:%M') in the config"
        )
        if share > validation.BAD_SHARE_FOR_ERROR:
            report.error(
                f"{share:.0%} of {what} timestamps cannot be read as dates",
                file=file,
                column=column,
                rows=n_bad,
                examples=readers.bad_value_examples(values, bad),
                fix=hint,
            )
        else:
            report.warning(
                f"rows whose {what} timestamp cannot be read as a date were dropped",
                file=file,
                column=column,
                rows=n_bad,
                examples=readers.bad_value_examples(values, bad),
                fix=hint,
            )
    missing = values.isna()
    if missing.any():
        report.warning(
            f"rows without a {what} timestamp were dropped",
            file=file,
            column=column,
            rows=int(missing.sum()),
            examples=validation.row_examples(values.index[missing.to_numpy()]),
            fix=f"fill in the {what} date in the CRM export",
        )
    if naive and config.timezone is None and (~missing).any():
        report.warning(
            "timestamps have no time zone; read as UTC",
            file=file,
            column=column,
            fix="if they are local times, set 'timezone:' (e.g. Europe/Berlin) in the config",
        )
    return parsed, ~(bad | missing)


def _canonical_leads(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport
) -> tuple[pd.DataFrame, pd.Series | None, dict[str, str]]:
    source = config.leads
    file = str(source.path)
    required = {"lead id": source.lead_id}
    if config.flat:
        required["label"] = config.label
    elif source.created_at is not None:
        required["created at"] = source.created_at
    if not validation.check_required_columns(raw, required, file, report, table="leads"):
        return raw.iloc[:0], None, {}
    rows_read = len(raw)
    keep = pd.Series(True, index=raw.index)

    ids = _lead_ids(raw[source.lead_id])
    missing_id = ids.isna()
    if missing_id.any():
        report.warning(
            "rows without a lead id were dropped",
            file=file,
            column=source.lead_id,
            rows=int(missing_id.sum()),
            examples=validation.row_examples(ids.index[missing_id.to_numpy()]),
            fix="every lead needs an id; check the export or map the id column with --id",
        )
        keep &= ~missing_id
    validation.check_duplicate_ids(ids, file, source.lead_id, report)

    created = None
    if not config.flat and source.created_at is not None:
        created, ok = _timestamps(
            raw[source.created_at], config, report, file, source.created_at, what="created_at"
        )
        keep &= ok

    label = None
    if config.flat:
        label = validation.parse_label(
            raw[config.label],
            config.positive,
            file,
            config.label,
            report,
            words=readers.OUTCOME_WORDS,
        )
        if label is not None:
            no_label = label.isna()
            if no_label.any():
                report.warning(
                    "rows without a label were dropped",
                    file=file,
                    column=config.label,
                    rows=int(no_label.sum()),
                    examples=validation.row_examples(label.index[no_label.to_numpy()]),
                    fix="fill in the label, or drop these leads from the export",
                )
                keep &= ~no_label

    used = {source.lead_id, config.label, source.created_at if not config.flat else None}
    missing_excluded = [c for c in config.exclude if c not in raw.columns]
    if missing_excluded:
        report.warning(
            "columns to exclude are not in the file",
            file=file,
            examples=format_examples(missing_excluded),
            fix="check the spelling against the file's header",
        )
    attribute_columns = [c for c in raw.columns if c not in used and c not in config.exclude]
    unknown_types = [c for c in config.types if c not in raw.columns]
    if unknown_types:
        report.warning(
            "type overrides name columns that are not in the file",
            file=file,
            examples=format_examples(unknown_types),
            fix="check the spelling of the columns under 'types:' against the file's header",
        )

    kept = keep.to_numpy()
    out: dict[str, pd.Series] = {"lead_id": ids[kept]}
    if created is not None:
        out["created_at"] = created[kept]
    attributes, attribute_types = _attributes(
        raw.loc[kept, attribute_columns], config, report, file
    )
    frame = pd.DataFrame(out)
    for name in attributes.columns:
        frame[name] = attributes[name]
    frame = frame.reset_index(drop=True)
    if label is not None:
        label = label[kept].astype("int64").reset_index(drop=True).rename("label")
        if label.nunique() < 2:
            report.warning(
                f"every lead has label {int(label.iloc[0]) if len(label) else '-'}; a model needs both",
                file=file,
                column=config.label,
                rows=len(label),
                fix="check --label and --positive, or export a longer period with conversions",
            )
    report.record_table("leads", file, rows_read, len(frame))
    return frame, label, attribute_types


def _attributes(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport, file: str
) -> tuple[pd.DataFrame, dict[str, str]]:
    placeholders = {p.strip().lower() for p in config.placeholders}
    columns: dict[str, pd.Series] = {}
    types: dict[str, str] = {}
    for name in raw.columns:
        values = raw[name]
        mask, found = readers.placeholder_mask(values, placeholders)
        if found:
            report.warning(
                "placeholder values read as missing",
                file=file,
                column=name,
                rows=int(mask.sum()),
                examples=format_examples(found),
                fix="nothing to do if they mean 'not filled in'; otherwise remove them from "
                "'placeholders:' in the config",
            )
            values = values.where(~mask)
        if values.isna().all():
            report.warning(
                "column is empty and is not used",
                file=file,
                column=name,
                rows=len(values),
                fix="nothing to do, or add it to 'exclude:'",
            )
            continue
        kind = config.types.get(name) or readers.infer_type(values)
        converted, bad = _convert(values, kind, config)
        if bad.any():
            report.warning(
                f"values that are not {kind} read as missing",
                file=file,
                column=name,
                rows=int(bad.sum()),
                examples=format_examples(values[bad].head(100)),
                fix=f"fix the values, or set 'types: {{{name}: categorical}}' in the config",
            )
        present = converted.dropna()
        if present.nunique() == 1:
            report.note(
                "column has a single value and carries no information",
                file=file,
                column=name,
                examples=format_examples(present.head(1)),
            )
        integral = kind == "numeric" and bool((present == present.round()).all())
        every_row = len(values) >= 50 and len(present) == len(values)
        if (kind == "categorical" or integral) and every_row and present.is_unique and name not in config.types:
            # An id is no attribute: a sequential one encodes time (it flatters random CV by
            # interpolating drift and cannot extrapolate to new leads), a random one is noise.
            report.warning(
                "every value is different: this looks like an identifier and is not used as a feature",
                file=file,
                column=name,
                rows=len(values),
                examples=format_examples(present.head(3)),
                fix=f"add '{name}' to 'exclude:' to silence this; to use it anyway, set "
                f"'types: {{{name}: {kind}}}' in the config",
            )
            continue
        columns[name] = converted
        types[name] = kind
    if types:
        by_kind: dict[str, list[str]] = {}
        for name, kind in types.items():
            by_kind.setdefault(kind, []).append(name)
        report.note(
            "attribute types: "
            + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(by_kind.items())),
            file=file,
            fix="override any of them with 'types: {column: categorical|numeric|boolean|datetime}'",
        )
    frame = pd.DataFrame(columns, index=raw.index)
    return frame, types


def _convert(values: pd.Series, kind: str, config: DataConfig) -> tuple[pd.Series, pd.Series]:
    if kind == "numeric":
        return readers.to_numeric(values)
    if kind == "boolean":
        return readers.to_boolean(values)
    if kind == "datetime":
        parsed, bad, _ = readers.parse_timestamps(
            values,
            timezone=config.timezone,
            dayfirst=config.dayfirst,
            datetime_format=config.datetime_format,
        )
        return parsed, bad
    return readers.to_text(values), pd.Series(False, index=values.index)


def _explicit_optional(source: BaseModel, field: str) -> bool:
    """An optional column the user mapped to a name of their own (so it must be in the file)."""
    value = getattr(source, field)
    return value is not None and value != type(source).model_fields[field].default


def _canonical_touchpoints(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport
) -> pd.DataFrame | None:
    source = config.touchpoints
    file = str(source.path)
    required = {
        "lead id": source.lead_id,
        "occurred at": source.occurred_at,
        "channel": source.channel,
        "activity": source.activity,
    }
    for role, field in (("campaign", "campaign"), ("value", "value")):
        if _explicit_optional(source, field):
            required[role] = getattr(source, field)
    if not validation.check_required_columns(raw, required, file, report, table="touchpoints"):
        return None
    keep = pd.Series(True, index=raw.index)
    ids = _lead_ids(raw[source.lead_id])
    keep &= _drop_missing_ids(ids, file, source.lead_id, report, what="touchpoints")
    occurred, ok = _timestamps(
        raw[source.occurred_at], config, report, file, source.occurred_at, what="occurred_at"
    )
    keep &= ok
    channel = _normalised(
        raw[source.channel],
        lookup_channel,
        config.channel_map,
        file,
        source.channel,
        report,
        what="channel",
        key="channel_map",
        allowed=CHANNELS,
    )
    activity = _normalised(
        raw[source.activity],
        lookup_activity,
        config.activity_map,
        file,
        source.activity,
        report,
        what="activity",
        key="activity_map",
        allowed=ACTIVITIES,
    )
    kept = keep.to_numpy()
    frame = pd.DataFrame(
        {
            "lead_id": ids[kept],
            "occurred_at": occurred[kept],
            "channel": channel[kept],
            "activity": activity[kept],
        }
    )
    placeholders = {p.strip().lower() for p in config.placeholders}
    if source.campaign is not None and source.campaign in raw.columns:
        campaign = raw[source.campaign]
        mask, _ = readers.placeholder_mask(campaign, placeholders)
        frame["campaign"] = readers.to_text(campaign.where(~mask))[kept]
    else:
        frame["campaign"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    if source.value is not None and source.value in raw.columns:
        value, bad = readers.to_numeric(raw[source.value])
        if bad.any():
            report.warning(
                "values that are not numbers read as missing",
                file=file,
                column=source.value,
                rows=int(bad.sum()),
                examples=format_examples(raw[source.value][bad].head(100)),
                fix="the touchpoint value must be a number (seconds, pages viewed ...)",
            )
        frame["value"] = value[kept]
    else:
        frame["value"] = np.nan
    frame = frame.reset_index(drop=True)
    report.record_table("touchpoints", file, len(raw), len(frame))
    return frame


def _drop_missing_ids(
    ids: pd.Series, file: str, column: str, report: ValidationReport, *, what: str
) -> pd.Series:
    missing = ids.isna()
    if missing.any():
        report.warning(
            f"{what} without a lead id were dropped",
            file=file,
            column=column,
            rows=int(missing.sum()),
            examples=validation.row_examples(ids.index[missing.to_numpy()]),
            fix="check the export, or map the lead id column in the config",
        )
    return ~missing


def _normalised(
    values: pd.Series,
    lookup: Any,
    extra: dict[str, str],
    file: str,
    column: str,
    report: ValidationReport,
    *,
    what: str,
    key: str,
    allowed: tuple[str, ...],
) -> pd.Series:
    """Canonical names via the unique values only (touchpoint files have millions of rows)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = [lookup(u, extra) for u in uniques]
    unknown = [(u, i) for i, (u, m) in enumerate(zip(uniques, mapped)) if m is None]
    canonical = np.array([allowed.index(m or "other") for m in mapped] + [allowed.index("other")])
    result = readers.to_text(
        pd.Series(
            pd.Categorical.from_codes(canonical[codes], categories=list(allowed)),
            index=values.index,
        )
    )
    n_missing = int((codes == -1).sum())
    if unknown:
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        unknown.sort(key=lambda item: -counts[item[1]])
        n_unknown = int(sum(counts[i] for _, i in unknown))
        report.warning(
            f"unrecognised {what} values read as 'other'",
            file=file,
            column=column,
            rows=n_unknown,
            examples=tuple(f"{u!r} ({counts[i]:,} rows)" for u, i in unknown[:5]),
            fix=f"map them in the config, e.g. '{key}: {{{unknown[0][0]!r}: ...}}', to one of: "
            + ", ".join(allowed),
        )
    if n_missing:
        report.warning(
            f"rows without a {what} read as 'other'",
            file=file,
            column=column,
            rows=n_missing,
            examples=validation.row_examples(values.index[codes == -1]),
            fix=f"fill in the {what} in the export",
        )
    return result


def _canonical_outcomes(
    raw: pd.DataFrame, config: DataConfig, report: ValidationReport
) -> pd.DataFrame | None:
    source = config.outcomes
    file = str(source.path)
    required = {"lead id": source.lead_id, "closed at": source.closed_at, "won": source.won}
    if _explicit_optional(source, "amount"):
        required["amount"] = source.amount
    if not validation.check_required_columns(raw, required, file, report, table="outcomes"):
        return None
    keep = pd.Series(True, index=raw.index)
    ids = _lead_ids(raw[source.lead_id])
    keep &= _drop_missing_ids(ids, file, source.lead_id, report, what="outcomes")
    closed, ok = _timestamps(
        raw[source.closed_at], config, report, file, source.closed_at, what="closed_at"
    )
    keep &= ok
    won = validation.parse_label(
        raw[source.won],
        config.positive,
        file,
        source.won,
        report,
        words=readers.OUTCOME_WORDS,
        role="won",
    )
    if won is None:
        return None
    no_won = won.isna()
    if no_won.any():
        report.warning(
            "outcomes without a won value were dropped (those leads count as open)",
            file=file,
            column=source.won,
            rows=int(no_won.sum()),
            examples=validation.row_examples(won.index[no_won.to_numpy()]),
            fix="fill in won/lost in the export",
        )
        keep &= ~no_won
    if source.amount is not None and source.amount in raw.columns:
        amount, bad = readers.to_numeric(raw[source.amount])
        if bad.any():
            report.warning(
                "amounts that are not numbers read as missing",
                file=file,
                column=source.amount,
                rows=int(bad.sum()),
                examples=format_examples(raw[source.amount][bad].head(100)),
                fix="write amounts as plain numbers (1234.5) without currency signs",
            )
    else:
        amount = pd.Series(np.nan, index=raw.index)
    kept = keep.to_numpy()
    frame = pd.DataFrame(
        {
            "lead_id": ids[kept],
            "closed_at": closed[kept],
            "won": won[kept].astype(bool),
            "amount": amount[kept].astype("float64"),
        }
    ).reset_index(drop=True)
    # One outcome per lead: the first win, else the last loss (re-opened and lost again).
    if frame["lead_id"].duplicated().any():
        order = frame.assign(_rank=np.where(frame["won"], 0, 1)).sort_values(
            ["lead_id", "_rank", "closed_at"], ascending=[True, True, True]
        )
        wins_first = order[order["won"]].drop_duplicates("lead_id", keep="first")
        losses = order[~order["won"] & ~order["lead_id"].isin(wins_first["lead_id"])]
        last_loss = losses.drop_duplicates("lead_id", keep="last")
        deduped = pd.concat([wins_first, last_loss]).drop(columns="_rank")
        n_extra = len(frame) - len(deduped)
        report.warning(
            "leads with several outcomes: kept the first win, else the last loss",
            file=file,
            column=source.lead_id,
            rows=n_extra,
            examples=format_examples(frame["lead_id"][frame["lead_id"].duplicated()].head(100)),
            fix="nothing to do if deals were re-opened; otherwise remove the duplicate rows",
        )
        frame = deduped.sort_index().reset_index(drop=True)
    report.record_table("outcomes", file, len(raw), len(frame))
    return frame


def _cross_checks(
    leads: pd.DataFrame,
    touchpoints: pd.DataFrame | None,
    outcomes: pd.DataFrame | None,
    config: DataConfig,
    report: ValidationReport,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    ids = leads["lead_id"]
    if touchpoints is not None and len(touchpoints):
        file = str(config.touchpoints.path)
        known = validation.check_unknown_leads(
            touchpoints["lead_id"],
            ids,
            file,
            config.touchpoints.lead_id,
            report,
            table="touchpoints",
        )
        if not known.all():
            touchpoints = touchpoints[known.to_numpy()].reset_index(drop=True)
            report.tables["touchpoints"]["rows_kept"] = len(touchpoints)
    if outcomes is not None and len(outcomes):
        file = str(config.outcomes.path)
        known = validation.check_unknown_leads(
            outcomes["lead_id"], ids, file, config.outcomes.lead_id, report, table="outcomes"
        )
        if not known.all():
            outcomes = outcomes[known.to_numpy()].reset_index(drop=True)
        if "created_at" in leads and len(outcomes):
            created = leads.set_index("lead_id")["created_at"]  # stays datetime64, not objects
            ok = validation.check_outcomes_before_created(outcomes, created, file, report)
            if not ok.all():
                outcomes = outcomes[ok.to_numpy()].reset_index(drop=True)
        report.tables["outcomes"]["rows_kept"] = len(outcomes)
    if not config.flat and config.outcomes is None:
        report.note(
            "no outcomes file: every lead is open (fine for scoring; training needs outcomes)",
            file=str(config.leads.path),
        )
    return touchpoints, outcomes
