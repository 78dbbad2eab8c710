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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.validation import DataValidationError, Finding, ValidationReport

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
        "organic", "seo", "organic search", "google organic", "bing organic", "google organic search",
        "search engine", "natural search", "google", "bing", "yahoo",
    ),
    "paid_search": (
        "paid search", "google ads", "adwords", "google adwords", "ppc", "sem", "cpc", "google cpc",
        "bing ads", "microsoft ads", "search ads", "paid search ads", "welingak website",
    ),
    "paid_social": (
        "paid social", "linkedin ads", "linkedin", "facebook ads", "facebook", "meta ads", "meta",
        "twitter ads", "twitter", "x ads", "social ads", "social media", "social", "instagram",
        "paid social media", "olark chat", "youtubechannel", "youtube",
    ),
    "email": (
        "email", "e mail", "email campaign", "email campaigns", "newsletter", "email marketing",
        "nurture email", "marketing email", "mailchimp", "hubspot email",
    ),
    "webinar": ("webinar", "webinars", "online event", "virtual event", "webcast"),
    "content": (
        "content", "content download", "content downloads", "ebook", "e book", "whitepaper",
        "white paper", "content syndication", "blog", "gated content", "case study",
    ),
    "event": (
        "event", "events", "trade show", "tradeshow", "trade shows", "events and trade shows",
        "events trade shows", "conference", "field event", "trade show event", "live event", "expo",
    ),
    "referral": (
        "referral", "referrals", "referral sites", "partner", "partner referral", "customer referral",
        "word of mouth", "reference",
    ),
    "direct": ("direct", "direct traffic", "direct none", "website", "web", "type in", "live chat"),
    "print": ("print", "print ad", "print ads", "magazine", "newspaper", "direct mail", "mailer"),
    "other": ("other", "others", "unknown", "misc", "miscellaneous"),
}

_ACTIVITY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "visit": (
        "visit", "page visit", "page visited on website", "website visit", "web visit", "page view",
        "pageview", "session", "site visit", "visited website",
    ),
    "pricing_page_view": (
        "pricing page view", "pricing page", "viewed pricing", "pricing", "pricing page visit",
        "pricing view", "viewed pricing page",
    ),
    "email_open": ("email open", "email opened", "opened email", "open", "email opens"),
    "email_click": (
        "email click", "email clicked", "email link clicked", "clicked email", "click", "link click",
        "email clicks",
    ),
    "form_submit": (
        "form submit", "form submitted", "form fill", "form submission", "form filled", "contact form",
        "contact us", "form submitted on website", "signup", "sign up",
    ),
    "download": (
        "download", "content download", "asset download", "ebook download", "whitepaper download",
        "downloaded", "resource download",
    ),
    "webinar_attend": (
        "webinar attend", "webinar attended", "attended webinar", "webinar attendance",
        "webinar attendee",
    ),
    "demo_request": (
        "demo request", "demo requested", "requested demo", "request a demo", "book a demo", "demo",
        "demo booked", "trial request",
    ),
    "unsubscribe": (
        "unsubscribe", "unsubscribed", "email unsubscribe", "email unsubscribed", "opt out",
        "opted out", "unreachable",
    ),
    "email_bounce": ("email bounce", "email bounced", "bounced", "bounce", "hard bounce", "soft bounce"),
    "other": ("other", "others", "unknown"),
}


def _key(value: object) -> str:
    """Case, punctuation and spacing removed: 'Google / CPC ' -> 'google cpc'."""
    return re.sub(r"[^a-z0-9]+", " ", str(value).lower()).strip()


def _build_lookup(canonical: tuple[str, ...], synonyms: dict[str, tuple[str, ...]]) -> dict[str, str]:
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
    if value is None or (isinstance(value, float) and value != value):
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
    encoding: str | None = Field(default=None, description="CSV encoding; utf-8, else cp1252 with a note")

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
    label: str | None = Field(default=None, description="flat mode: the label column of the leads file")
    positive: str | None = Field(default=None, description="flat mode: the label value meaning 'won'")
    exclude: list[str] = Field(default_factory=list, description="lead columns never used as attributes")
    types: dict[str, AttributeType] = Field(default_factory=dict, description="attribute type overrides")
    timezone: str | None = Field(default=None, description="zone of timestamps without an offset (UTC)")
    dayfirst: bool = False
    datetime_format: str | None = None
    placeholders: list[str] = Field(default_factory=lambda: list(DEFAULT_PLACEHOLDERS))
    channel_map: dict[str, str] = Field(default_factory=dict, description="extra spellings -> channel")
    activity_map: dict[str, str] = Field(default_factory=dict, description="extra spellings -> activity")

    @field_validator("positive", mode="before")
    @classmethod
    def _positive_as_text(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @field_validator("channel_map")
    @classmethod
    def _known_channels(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in CHANNELS})
        if bad:
            raise ValueError(f"channel_map maps to unknown channels {bad}; use one of {list(CHANNELS)}")
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
                update[name] = source.model_copy(update={"path": base / source.path})
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
        update: dict[str, Any] = {}
        lead_update: dict[str, Any] = {}
        if leads is not None:
            lead_update["path"] = Path(leads)
        if id is not None:
            lead_update["lead_id"] = id
        if created_at is not None:
            lead_update["created_at"] = created_at
        if lead_update:
            update["leads"] = self.leads.model_copy(update=lead_update)
        for name, value, kind in (
            ("touchpoints", touchpoints, TouchpointsSource),
            ("outcomes", outcomes, OutcomesSource),
        ):
            if value is not None:
                current = getattr(self, name) or kind()
                update[name] = current.model_copy(update={"path": Path(value)})
        if label is not None:
            update["label"] = label
        if positive is not None:
            update["positive"] = str(positive)
        if timezone is not None:
            update["timezone"] = timezone
        if exclude:
            update["exclude"] = [*self.exclude, *exclude]
        if types:
            update["types"] = {**self.types, **types}
        return self.model_validate({**self.model_dump(), **{k: _dump(v) for k, v in update.items()}})


def _dump(value: Any) -> Any:
    return value.model_dump() if isinstance(value, BaseModel) else value


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
    from features.readers import read_lead_files

    return read_lead_files(config, progress=progress)
