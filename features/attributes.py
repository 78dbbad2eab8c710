"""Lead attributes to numbers: categories (normalised, rare grouped), numbers, yes/no, date-times.

Categorical outputs are integer codes in a float matrix (NaN = missing) so HistGradientBoosting can
use native categorical support and a linear pipeline can one-hot them (see `categorical_mask_`).
The code after the learned categories means "other": rare in fit, or never seen before.
A column of more values than the one-hot can keep (`max_categories`), whose values seen a few
times in fit (`wide_min_count`) outnumber the categories it keeps, also yields a *wide* code over
all of them (`features.feature.WIDE`), right after its own code: what a target encoder reads
where a one-hot of hundreds of rare values would learn noise.

Each attribute type declares once the features a column of it yields (name, unit, description,
plain words) and how they are computed (`_ColumnFeatures` and its subclasses); the encoder only
lays the columns side by side. Batch and single-lead paths share the python normalisers below:
the batch path applies them to the distinct values of a column only, so both give exactly the
same numbers.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache, partial
from typing import Any

import numpy as np
import pandas as pd

from features.data.values import (
    _plain_text,
    normalise_category,
    to_number,
    to_utc_datetime,
    to_yes_no,
)
from features.data.vocabulary import ATTRIBUTE_TYPES
from features.feature import Fact, Feature, is_missing

# Columns that are never features: the key, the moments, and outcome fields (they would leak).
NOT_FEATURES = ("lead_id", "as_of", "snapshot_age_days")


OUTCOME_COLUMNS = ("label", "won", "closed_at")


# Seniority and department read from a job title: (code name, label shown to sales), in code order.
_SENIORITY = (
    ("c_level", "C-level"), ("vp", "VP"), ("director", "Director"), ("manager", "Manager"),
    ("individual_contributor", "Individual contributor"),
)  # fmt: skip


_DEPARTMENT = (
    ("engineering", "Engineering"), ("it", "IT"), ("product", "Product"),
    ("marketing", "Marketing"), ("sales", "Sales"), ("customer_success", "Customer success"),
    ("finance", "Finance"), ("operations", "Operations"), ("hr", "HR"), ("legal", "Legal"),
    ("executive", "Executive"), ("other", "Other"),
)  # fmt: skip


SENIORITY_LEVELS = tuple(key for key, _ in _SENIORITY)


SENIORITY_LABELS = tuple(label for _, label in _SENIORITY)


DEPARTMENTS = tuple(key for key, _ in _DEPARTMENT)


DEPARTMENT_LABELS = tuple(label for _, label in _DEPARTMENT)


_SENIORITY_PATTERNS = (  # first match wins: "Vice President" before "President"
    ("vp", r"\b(vp|svp|evp|avp|vice president)\b"),
    (
        "c_level",
        r"\b(chief|ceo|cfo|cto|coo|cmo|cio|ciso|cro|cpo|cdo|founder|cofounder|owner|"
        r"president|managing partner)\b",
    ),  # fmt: skip
    ("director", r"\b(director|head|dir)\b"),
    ("manager", r"\b(manager|mgr|lead|leader|supervisor|team lead)\b"),
)


_DEPARTMENT_PATTERNS = (  # functional words first, so "CFO" is finance and "VP Sales" is sales
    ("marketing", r"\b(marketing|cmo|brand|growth|demand|seo|communications|pr)\b"),
    (
        "sales",
        r"\b(sales|account executive|account manager|business development|bdr|sdr|cro|"
        r"revenue)\b",
    ),  # fmt: skip
    ("customer_success", r"\b(customer success|support|customer service|cx)\b"),
    (
        "engineering",
        r"\b(engineer|engineering|developer|software|cto|devops|architect|"
        r"programmer|data scientist)\b",
    ),  # fmt: skip
    (
        "it",
        r"\b(it|information technology|cio|ciso|security|systems|network|infrastructure|"
        r"sysadmin)\b",
    ),  # fmt: skip
    ("product", r"\b(product|cpo|ux|designer|design)\b"),
    ("finance", r"\b(finance|financial|cfo|accounting|accountant|controller|treasurer)\b"),
    ("operations", r"\b(operations|coo|ops|procurement|supply chain|logistics)\b"),
    ("hr", r"\b(hr|human resources|people|talent|recruiting|recruiter)\b"),
    ("legal", r"\b(legal|counsel|lawyer|attorney|compliance)\b"),
    (
        "executive",
        r"\b(ceo|chief executive|founder|cofounder|owner|president|managing director|"
        r"general manager)\b",
    ),  # fmt: skip
)


_SENIORITY_RE = tuple((name, re.compile(p)) for name, p in _SENIORITY_PATTERNS)


_DEPARTMENT_RE = tuple((name, re.compile(p)) for name, p in _DEPARTMENT_PATTERNS)


_TITLE_COLUMN_NAMES = frozenset(
    {"title", "job_title", "jobtitle", "job", "position", "job_position", "job_role", "role_title"}
)


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _title_words(title: Any) -> str | None:
    key = normalise_category(title)
    if key is None:
        return None
    return " ".join(re.sub(r"[^a-z0-9]+", " ", key).split())


def seniority_of(title: Any) -> int | None:
    """Index into SENIORITY_LEVELS of a job title; None when the title is missing."""
    words = _title_words(title)
    if words is None:
        return None
    words = words.replace("co founder", "cofounder")
    for i, (_, pattern) in enumerate(_SENIORITY_RE):
        if pattern.search(words):
            return SENIORITY_LEVELS.index(_SENIORITY_PATTERNS[i][0])
    return SENIORITY_LEVELS.index("individual_contributor")


def department_of(title: Any) -> int | None:
    """Index into DEPARTMENTS of a job title; None when the title is missing."""
    words = _title_words(title)
    if words is None:
        return None
    words = words.replace("co founder", "cofounder")
    for name, pattern in _DEPARTMENT_RE:
        if pattern.search(words):
            return DEPARTMENTS.index(name)
    return DEPARTMENTS.index("other")


def is_title_column(name: str) -> bool:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") in _TITLE_COLUMN_NAMES


def _map_uniques(series: pd.Series, mapper) -> np.ndarray:
    """Apply a python mapper to each distinct value, broadcast to the column; missing -> mapper(None)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.array([mapper(u) for u in uniques] + [mapper(None)], dtype=np.float64)
    return table[codes]


def _label(name: str) -> str:
    """'lead_source' -> 'Lead source'; 'Lead Source' stays."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else name


# --- the features each attribute type yields, and how they are computed ------------------------


class _ColumnFeatures(ABC):
    """The features one attribute column yields and how they are computed: from one value (a lead
    from the API), a list of values (many API leads) or a pandas column (files). Each writes its
    `len(features)` columns into `out` from column `at` on."""

    features: tuple[Feature, ...]

    def __init__(self, column: str) -> None:
        self.column = column
        self.label = "Created" if column == "created_at" else _label(column)

    def words(self, values: Sequence[float]) -> str:
        """The column's values (one per feature) in plain words, said once."""
        return self.features[0].describe(values[0])

    def says_something(self, values: Sequence[float]) -> bool:
        """Whether the values tell sales anything (not missing, not a rare or new category)."""
        return not all(is_missing(v) for v in values)

    @abstractmethod
    def value(self, value: Any, row: np.ndarray, at: int) -> None: ...

    @abstractmethod
    def values(self, values: list[Any], out: np.ndarray, at: int) -> None: ...

    @abstractmethod
    def series(self, series: pd.Series, out: np.ndarray, at: int) -> None: ...


class _Mapped(_ColumnFeatures):
    """Features computed value by value, one python mapper (value -> float) per feature."""

    mappers: tuple[Callable[[Any], float], ...]

    def value(self, value: Any, row: np.ndarray, at: int) -> None:
        for i, mapper in enumerate(self.mappers):
            row[at + i] = _remembered(mapper, value)

    def values(self, values: list[Any], out: np.ndarray, at: int) -> None:
        for i, mapper in enumerate(self.mappers):
            out[:, at + i] = _map_values(values, partial(_remembered, mapper))

    def series(self, series: pd.Series, out: np.ndarray, at: int) -> None:
        for i, mapper in enumerate(self.mappers):
            out[:, at + i] = _map_uniques(series, mapper)


def _remembered(mapper: Callable[[Any], float], value: Any) -> float:
    """`mapper(value)`, what it made of a text remembered (`_text_mapped`): the same
    industries, sizes and titles arrive lead after lead, and a mapper is a pure function.
    Other values are mapped each time (True, 1 and 1.0 are one key but not the same input)."""
    return _text_mapped(mapper, value) if value.__class__ is str else mapper(value)


@lru_cache(maxsize=16_384)
def _text_mapped(mapper: Callable[[Any], float], text: str) -> float:
    return mapper(text)


class _Category(_Mapped):
    """The code of a learned category (the code after the last is "other": rare or new); with a
    wide vocabulary (`spec["wide"]`) also its code among those (`features.feature.WIDE`, right
    after it); a job title also yields the seniority and the department it states."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec["column"])
        self.other_code = len(spec["labels"])
        self.features = (
            Feature(name=self.column, unit="category", categorical=True,
                    description=f"{self.label} (category; 'other' = rare or new value)",
                    describe=_category_words(self.label, [*spec["labels"], "other"],
                                             other_code=self.other_code),
                    blank_when_missing=True),
        )  # fmt: skip
        self.mappers = (_category_code(spec["categories"]),)
        wide = spec.get("wide")
        self.wide_other_code = len(wide) if wide else None
        if wide:
            self.features += (
                Feature(name=f"{self.column}__wide", unit="category", wide=True,
                        description=f"{self.label} (category among the {len(wide)} seen at "
                        "least a few times in fit, for target encoding; 'other' = rare or new)",
                        describe=_category_words(self.label, [*spec["wide_labels"], "other"],
                                                 other_code=self.wide_other_code),
                        blank_when_missing=True),
            )  # fmt: skip
            self.mappers += (_category_code(wide),)
        title = bool(spec.get("title"))
        if title:
            self.features += (
                Feature(name=f"{self.column}__seniority", unit="category", categorical=True,
                        description=f"Seniority read from {self.label}",
                        describe=_category_words("Seniority", SENIORITY_LABELS),
                        blank_when_missing=True),
                Feature(name=f"{self.column}__department", unit="category", categorical=True,
                        description=f"Department read from {self.label}",
                        describe=_category_words("Department", DEPARTMENT_LABELS),
                        blank_when_missing=True),
            )  # fmt: skip
            self.mappers += (_nan_if_none(seniority_of), _nan_if_none(department_of))
        if len(self.features) > 1:
            # the codes, the seniority and the department are one fact: said once
            fact = Fact(name=self.column, describe=self.words)
            self.features = tuple(replace(f, fact=fact) for f in self.features)
        self._title_at = len(self.features) - 2 if title else None

    def _is_other(self, value: float) -> bool:
        return not is_missing(value) and int(value) == self.other_code

    def _wide_known(self, values: Sequence[float]) -> bool:
        """A value rare for the one-hot but in the wide vocabulary."""
        if self.wide_other_code is None or len(values) < 2:
            return False
        return not is_missing(values[1]) and int(values[1]) != self.wide_other_code

    def says_something(self, values: Sequence[float]) -> bool:
        if self._is_other(values[0]):
            return self._wide_known(values)
        return not is_missing(values[0])

    def words(self, values: Sequence[float]) -> str:
        if not self._is_other(values[0]):
            return self.features[0].describe(values[0])
        if self._wide_known(values):
            return self.features[1].describe(values[1])
        if self._title_at is None:
            return self.features[0].describe(values[0])
        # a rare or new job title: what it reads as is what sales can use
        seniority, department = values[self._title_at], values[self._title_at + 1]
        parts = []
        if not is_missing(seniority) and 0 <= int(seniority) < len(SENIORITY_LABELS):
            parts.append(SENIORITY_LABELS[int(seniority)])
        if not is_missing(department) and 0 <= int(department) < len(DEPARTMENT_LABELS):
            if DEPARTMENTS[int(department)] != "other":
                parts.append(DEPARTMENT_LABELS[int(department)])
        said = f", reads as {', '.join(parts)}" if parts else ""
        return f"{self.label}: rare or new{said}"


def _category_code(categories: Sequence[str]) -> Callable[[Any], float]:
    """A value's code among `categories` (their count: "other"); NaN when missing."""
    lookup = {key: float(i) for i, key in enumerate(categories)}
    other = float(len(categories))

    def code(value: Any) -> float:
        key = normalise_category(value)
        return math.nan if key is None else lookup.get(key, other)

    return code


class _Number(_Mapped):
    """A number as given."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec["column"])
        self.features = (
            Feature(name=self.column, unit="as given",
                    description=f"{self.label} (number as given)",
                    describe=_given_words(self.label, lambda v: f"{self.label}: {v:g}"),
                    blank_when_missing=True),
        )  # fmt: skip
        self.mappers = (to_number,)

    def series(self, series: pd.Series, out: np.ndarray, at: int) -> None:
        if series.dtype.kind in "iuf":
            out[:, at] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            super().series(series, out, at)


class _YesNo(_Mapped):
    """1 for yes, 0 for no, in any of the spellings `features.data.values` reads."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec["column"])
        self.features = (
            Feature(name=self.column, unit="yes/no",
                    description=f"{self.label} (1 = yes, 0 = no)",
                    describe=_given_words(
                        self.label, lambda v: f"{self.label}: {'yes' if v >= 0.5 else 'no'}"),
                    blank_when_missing=True),
        )  # fmt: skip
        self.mappers = (to_yes_no,)

    def series(self, series: pd.Series, out: np.ndarray, at: int) -> None:
        if series.dtype.kind == "b":  # numpy bool or the contract's nullable "boolean"
            out[:, at] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            super().series(series, out, at)


class _Moment(_ColumnFeatures):
    """Day of the week, hour and month of a date-time, read once for the three, on the clocks of
    the data's zone (`zone` in the spec: the data config's `timezone`; UTC without one, as
    models saved before read them): a date-only renewal in Berlin is on its own weekday, not the
    UTC evening before, and a lead created at 09:00 in Berlin is a 09:00 lead.

    A model fitted since issue 17 reads a date other than `created_at` also as days after the
    lead's creation (`from_created` in the column's spec: a renewal due in the weeks after a lead
    arrives is a reason to buy; its month alone is not), and, in models fitted since the calendar
    parts (`months_from_created` in the spec), as calendar months from the lead's creation month
    (a renewal "this quarter" is a window of months, which days through a smooth curve blur).
    The weekday, hour, month and months are calendar parts (`Feature.calendar`): the search's
    calendar candidate target-encodes each part (`calendar=target`), trees split them as
    numbers (as native categories a tiny booster overfit them: see the commit that took
    categories back). Models saved before keep the numbers they learned from. A column whose
    values in fit are all dates (`dates_only` in the spec: no time of day) is said without
    its hour."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec["column"])
        label = self.label
        self.from_created = bool(spec.get("from_created"))
        self.months = self.from_created and bool(spec.get("months_from_created"))
        # every value in fit a date without a time of day (a renewal date): its words name no
        # hour; the hour column stays (models saved before read the same columns)
        self.dates_only = bool(spec.get("dates_only"))
        self.zone = _zone(spec.get("zone"))
        clock = self.clock = spec.get("zone") or "UTC"
        fact = Fact(name=self.column, describe=self.words)  # one moment, said once
        self.features = (
            Feature(name=f"{self.column}__day_of_week", unit="0 = Monday ... 6 = Sunday",
                    description=f"{label}: day of the week",
                    describe=_given_words(label, lambda v: f"{label} on a {_day_name(int(v))}"),
                    fact=fact, blank_when_missing=True, calendar=True),
            Feature(name=f"{self.column}__hour", unit=f"hour of day, {clock}",
                    description=f"{label}: hour of the day ({clock})",
                    describe=_given_words(label, lambda v: f"{label} at {_hours(int(v))} {clock}"),
                    fact=fact, blank_when_missing=True, calendar=True),
            Feature(name=f"{self.column}__month", unit="1 = January ... 12 = December",
                    description=f"{label}: month",
                    describe=_given_words(label, lambda v: f"{label} in {_month_name(int(v))}"),
                    fact=fact, blank_when_missing=True, calendar=True),
        )  # fmt: skip
        if self.from_created:
            self.features += (
                Feature(name=f"{self.column}__days_from_created",
                        unit="days (negative: before the lead was created)",
                        description=f"{label}: days after the lead was created",
                        describe=_given_words(label, lambda v: _days_from_created(label, v)),
                        fact=fact, blank_when_missing=True),
            )  # fmt: skip
        if self.months:
            self.features += (
                Feature(name=f"{self.column}__months_from_created",
                        unit=f"calendar months from the lead's creation month (negative: before; "
                        f"+-{MONTHS_CAP}: that many or more)",
                        description=f"{label}: calendar months after the lead was created",
                        describe=_given_words(label, lambda v: _months_from_created(label, v)),
                        fact=fact, blank_when_missing=True, calendar=True),
            )  # fmt: skip

    def words(self, values: Sequence[float]) -> str:
        day, hour, month = values[:3]
        if is_missing(day) or is_missing(hour) or is_missing(month):
            return f"{self.label}: not given"
        hours = "" if self.dates_only else f"{_hours(int(hour))} {self.clock}, "
        said = f"{self.label} on a {_day_name(int(day))}, {hours}in {_month_name(int(month))}"
        if len(values) > 3 and not is_missing(values[3]):
            said += f", {_days_words(values[3])}"
        if len(values) > 4 and not is_missing(values[4]):
            said += f" ({_months_words(values[4])})"
        return said

    def value(self, value: Any, row: np.ndarray, at: int, created: Any = None) -> None:
        row[at : at + 3] = _moment_parts(value, self.zone)
        if self.from_created:
            row[at + 3] = _days_between(
                _moment_us(value, self.zone), _moment_us(created, self.zone)
            )
        if self.months:
            zone = self.zone
            row[at + 4] = _months_between(_month_number(value, zone), _month_number(created, zone))

    def values(
        self, values: list[Any], out: np.ndarray, at: int, created: list[Any] | None = None
    ) -> None:
        if values:
            parts = _map_values(values, partial(_moment_parts, zone=self.zone), as_array=False)
            out[:, at : at + 3] = np.array(parts, dtype=np.float64)
            if self.from_created:
                created = created if created is not None else [None] * len(values)
                out[:, at + 3] = [
                    _days_between(_moment_us(v, self.zone), _moment_us(c, self.zone))
                    for v, c in zip(values, created, strict=True)
                ]
                if self.months:
                    out[:, at + 4] = [
                        _months_between(_month_number(v, self.zone), _month_number(c, self.zone))
                        for v, c in zip(values, created, strict=True)
                    ]

    def series(self, series: pd.Series, out: np.ndarray, at: int, created: Any = None) -> None:
        out[:, at : at + 3] = _datetime_parts(series, self.zone)
        if self.from_created:
            if created is None:
                out[:, at + 3] = np.nan
            else:
                out[:, at + 3] = _series_days_between(series, created, self.zone)
        if self.months:
            if created is None:
                out[:, at + 4] = np.nan
            else:
                months = _series_month_number(series, self.zone) - _series_month_number(
                    created, self.zone
                )
                out[:, at + 4] = np.clip(months, -MONTHS_CAP, MONTHS_CAP)


_US_PER_DAY = 86_400_000_000


def _moment_us(value: Any, zone: tzinfo | None = None) -> int | None:
    """Microseconds since the epoch (UTC) of a date-time attribute; None when missing or unreadable
    (as `to_utc_datetime` reads it, values without an offset in `zone`). Integers, so every path
    gets the same days."""
    moment = to_utc_datetime(value, zone)
    if moment is None:
        return None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _days_between(later: int | None, earlier: int | None) -> float:
    if later is None or earlier is None:
        return math.nan
    return float(later - earlier) / _US_PER_DAY


def _utc_moments(series: pd.Series, zone: tzinfo | None = None) -> pd.Series | None:
    """A date-time series in UTC (naive ones: local times of `zone`, None: UTC; as the files
    path reads them, a time the clocks repeat is missing, one they skip the moment they jump);
    None for text and other values."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC")
    if series.dtype.kind == "M":
        if zone is None:
            return series.dt.tz_localize("UTC")
        local = series.dt.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
        return local.dt.tz_convert("UTC")
    return None


def _zoned_moments(series: pd.Series, zone: tzinfo | None) -> pd.Series | None:
    """`_utc_moments` on `zone`'s clocks (None: UTC's)."""
    moments = _utc_moments(series, zone)
    return moments if moments is None or zone is None else moments.dt.tz_convert(zone)


@lru_cache(maxsize=64)
def _zone(name: str | None) -> tzinfo | None:
    """The zone whose clocks calendar parts are read on: any name the data config takes (the
    files are read with pandas: 'Europe/Berlin', 'utc', '+02:00', 'dateutil/Europe/Berlin');
    None for UTC in any spelling (and a zone always at UTC's offset), as models saved before."""
    if name is None:
        return None
    zone = pd.Timestamp(0, tz=name).tzinfo
    # UTC's clock in every season of every year a lead could be from (Africa/Sao_Tome, at +0 now,
    # was at +1 in 2018: a zone, not UTC)
    seasons = (datetime(year, month, 15, tzinfo=UTC) for year in range(1970, 2101)
               for month in (1, 4, 7, 10))  # fmt: skip
    if all(moment.astimezone(zone).utcoffset() == timedelta(0) for moment in seasons):
        return None
    return zone


def _local(value: Any, zone: tzinfo | None) -> datetime | None:
    """A date-time attribute as `to_utc_datetime` reads it (a value without an offset is a local
    time of `zone`, as the data's files are read), on `zone`'s clocks (None: UTC)."""
    moment = to_utc_datetime(value, zone)
    return moment if moment is None or zone is None else moment.astimezone(zone)


def _per_distinct(series: pd.Series, mapper: Callable[[Any], Any], missing: Any) -> np.ndarray:
    """`mapper` of each distinct value (as the one-record path maps it), spread to the rows;
    `missing` for the rows with none."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    return np.array([*(mapper(u) for u in uniques), missing], dtype=np.float64)[codes]


def _series_us(series: pd.Series, zone: tzinfo | None = None) -> np.ndarray:
    """`_moment_us` of each row as float64 microseconds (NaN where missing), exact below 2**53."""
    moments = _utc_moments(series, zone)
    if moments is not None:
        ns = moments.dt.tz_localize(None).dt.as_unit("ns").array.asi8
        return np.where(ns == np.iinfo(np.int64).min, np.nan, (ns // 1000).astype(np.float64))
    return _per_distinct(
        series, lambda u: math.nan if (us := _moment_us(u, zone)) is None else float(us), math.nan
    )


def _series_days_between(
    later: pd.Series, earlier: pd.Series, zone: tzinfo | None = None
) -> np.ndarray:
    return (_series_us(later, zone) - _series_us(earlier, zone)) / _US_PER_DAY


MONTHS_CAP = 24  # calendar months from creation beyond this (either way) read as this many


def _month_number(value: Any, zone: tzinfo | None = None) -> int | None:
    """Months since January 1970 (on `zone`'s calendar; None: UTC's) of a date-time attribute;
    None when missing or unreadable."""
    moment = _local(value, zone)
    return None if moment is None else (moment.year - 1970) * 12 + moment.month - 1


def _months_between(later: int | None, earlier: int | None) -> float:
    if later is None or earlier is None:
        return math.nan
    return float(min(max(later - earlier, -MONTHS_CAP), MONTHS_CAP))


def _series_month_number(series: pd.Series, zone: tzinfo | None = None) -> np.ndarray:
    """`_month_number` of each row as float64 (NaN where missing)."""
    moments = _zoned_moments(series, zone)
    if moments is not None:
        years = moments.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
        return (
            (years - 1970) * 12 + moments.dt.month.to_numpy(dtype=np.float64, na_value=np.nan) - 1
        )
    return _per_distinct(
        series, lambda u: math.nan if (m := _month_number(u, zone)) is None else float(m), math.nan
    )


def _months_words(months: float) -> str:
    if months == 0:
        return "in the month the lead was created"
    n = abs(int(months))
    plural = "month" if n == 1 else "months"
    side = "after" if months > 0 else "before"
    return f"{n}{'+' if n >= MONTHS_CAP else ''} calendar {plural} {side} the lead was created"


def _months_from_created(label: str, months: float) -> str:
    return f"{label}: {_months_words(months)}"


def _days_words(days: float) -> str:
    if days >= 0:
        return f"{days:.0f} days after the lead was created"
    return f"{-days:.0f} days before the lead was created"


def _days_from_created(label: str, days: float) -> str:
    return f"{label}: {_days_words(days)}"


_FEATURES_OF_TYPE: dict[str, Callable[[dict[str, Any]], _ColumnFeatures]] = {
    "categorical": _Category,
    "numeric": _Number,
    "boolean": _YesNo,
    "datetime": _Moment,
}


def _category_words(
    label: str, labels: list[str] | tuple[str, ...], other_code: int | None = None
) -> Callable[[float], str]:
    def words(value: float) -> str:
        if is_missing(value):
            return f"{label}: not given"
        index = int(value)
        if index == other_code or not 0 <= index < len(labels):
            return f"{label}: other (rare or new value)"
        return f"{label}: {labels[index]}"

    return words


def _given_words(label: str, say: Callable[[float], str]) -> Callable[[float], str]:
    """'{label}: not given' for a missing value, else what `say` makes of it."""

    def words(value: float) -> str:
        return f"{label}: not given" if is_missing(value) else say(value)

    return words


def _day_name(day: int) -> str:
    return _DAY_NAMES[day % 7]


def _hours(hour: int) -> str:
    return f"{hour:02d}:00-{hour:02d}:59"


def _month_name(month: int) -> str:
    return f"{datetime(2000, month, 1):%B}"


# --- the encoder -------------------------------------------------------------------------------


class AttributeEncoder:
    """Learns attribute vocabularies in `fit`; turns frames or single records into float rows."""

    def __init__(
        self,
        rare_min_count: int = 20,
        max_categories: int = 100,
        wide_min_count: int = 3,
        max_wide_categories: int = 0,
    ) -> None:
        self.rare_min_count = rare_min_count
        self.max_categories = max_categories
        # 0: no wide codes (an encoder built without them, as models saved before they existed)
        self.wide_min_count = wide_min_count
        self.max_wide_categories = max_wide_categories

    # fit ------------------------------------------------------------------------------------
    def fit(
        self, leads: pd.DataFrame, attribute_types: dict[str, str], timezone: str | None = None
    ) -> AttributeEncoder:
        """`timezone`: the data's zone (the data config's), whose clocks and calendar the date
        attributes' weekday, hour and month are read on (None: UTC)."""
        bad = {c: t for c, t in attribute_types.items() if t not in ATTRIBUTE_TYPES}
        if bad:
            raise ValueError(
                f"attribute_types has unknown types {bad}; use one of {', '.join(ATTRIBUTE_TYPES)}"
            )
        leaking = [c for c in attribute_types if c in OUTCOME_COLUMNS]
        if leaking:
            raise ValueError(
                f"attribute column(s) {leaking} are outcome fields and would leak the label into "
                "the features; exclude them from the attributes (DataConfig.exclude)"
            )
        missing = [c for c in attribute_types if c not in leads.columns and c not in NOT_FEATURES]
        if missing:
            raise ValueError(
                f"attribute_types names column(s) {missing} that the leads frame does not have; "
                f"the leads columns are {list(leads.columns)}"
            )
        columns: list[dict[str, Any]] = []
        types = {c: t for c, t in attribute_types.items() if c not in NOT_FEATURES}
        if "created_at" in leads.columns:
            types["created_at"] = "datetime"  # when a lead arrives (weekday, hour) is a feature
        zone = _zone(timezone)
        for column, kind in types.items():
            spec: dict[str, Any] = {"column": column, "type": kind}
            if kind == "datetime" and zone is not None:
                spec["zone"] = timezone
            if kind == "categorical":
                spec.update(self._learn_categories(leads[column]))
                spec["title"] = is_title_column(column)
            if kind == "datetime" and column != "created_at" and "created_at" in leads.columns:
                spec["from_created"] = True
                spec["months_from_created"] = True
            if kind == "datetime" and _dates_only(leads[column], zone):
                spec["dates_only"] = True  # its reasons name no hour ("00:00-00:59 UTC")
            columns.append(spec)
        self.columns_ = columns
        self._build_outputs()
        main_of = self._same_facts(leads.head(SAME_FACT_SAMPLE_ROWS))
        if main_of:
            for spec in columns:
                if spec["column"] in main_of:
                    spec["fact_of"] = main_of[spec["column"]]
            self._build_outputs()
        return self

    def _same_facts(self, leads: pd.DataFrame) -> dict[str, str]:
        """Columns that say the same thing as another one in the training leads (a region and
        its country, a CRM seniority and the seniority read from the job title): column -> the
        main column of its fact (the one with the most categories, else the first).

        Two columns are one fact when a categorical feature of one decides a categorical feature
        of the other: Goodman and Kruskal's lambda >= 0.9 (knowing the first removes at least 90%
        of the errors of guessing the second's commonest value), on at least 100 leads where both
        are given and are learned categories (seen `rare_min_count` times: a near-unique column
        such as a company name decides nothing)."""
        X = self.transform(leads)
        codes: list[tuple[int, np.ndarray, int]] = []  # (column index, codes or -1, categories)
        for index, (column, at) in enumerate(self._columns):
            if not isinstance(column, _Category):
                continue
            for i, feature in enumerate(column.features):
                if feature.wide:  # hundreds of values: not a small category that decides another
                    continue
                values = X[:, at + i]
                n = column.other_code if i == 0 else int(np.nanmax(values, initial=-1)) + 1
                known = ~np.isnan(values) & (values < n)
                if n >= 2:
                    codes.append((index, np.where(known, values, -1).astype(np.int64), n))
        root = list(range(len(self._columns)))

        def find(i: int) -> int:
            while root[i] != i:
                i = root[i]
            return i

        for p, a, na in codes:
            for q, b, nb in codes:
                if p == q or find(p) == find(q):
                    continue
                both = (a >= 0) & (b >= 0)
                n = int(both.sum())
                if n < 100:
                    continue
                table = np.bincount(a[both] * nb + b[both], minlength=na * nb).reshape(na, nb)
                guess = table.sum(axis=0).max()
                if n > guess and (table.max(axis=1).sum() - guess) >= SAME_FACT_LAMBDA * (
                    n - guess
                ):
                    root[find(q)] = find(p)
        groups: dict[int, list[int]] = {}
        for index in range(len(self._columns)):
            groups.setdefault(find(index), []).append(index)
        main_of = {}
        for members in groups.values():
            if len(members) < 2:
                continue
            sizes = [len(self.columns_[i].get("categories", ())) for i in members]
            main = members[sizes.index(max(sizes))]
            for i in members:
                if i != main:
                    main_of[self.columns_[i]["column"]] = self.columns_[main]["column"]
        return main_of

    def _learn_categories(self, series: pd.Series) -> dict[str, Any]:
        counts = series.value_counts(dropna=True)
        by_key: dict[str, int] = {}
        spelling: dict[str, tuple[int, str]] = {}
        for raw, n in counts.items():
            key = normalise_category(raw)
            if key is None:
                continue
            by_key[key] = by_key.get(key, 0) + int(n)
            if key not in spelling or n > spelling[key][0]:
                spelling[key] = (int(n), _plain_text(raw))  # label shown to people: commonest form
        by_count = sorted(by_key, key=lambda k: (-by_key[k], k))
        kept = [k for k in by_count if by_key[k] >= self.rare_min_count][: self.max_categories]
        learned: dict[str, Any] = {"categories": kept, "labels": [spelling[k][1] for k in kept]}
        wide = [k for k in by_count if by_key[k] >= self.wide_min_count][: self.max_wide_categories]
        # more values than the one-hot can ever keep (hundreds, thousands), of which it loses
        # some a target encoder can read; a column of a few dozen keeps every model as it was
        if len(by_key) > self.max_categories and len(wide) > len(kept):
            learned.update(wide=wide, wide_labels=[spelling[k][1] for k in wide])
        return learned

    def _build_outputs(self) -> None:
        # Each column's features, and the output column its first one goes to.
        self._columns: list[tuple[_ColumnFeatures, int]] = []
        at = 0
        for spec in self.columns_:
            column = _FEATURES_OF_TYPE[spec["type"]](spec)
            self._columns.append((column, at))
            at += len(column.features)
        self._join_derived_facts()
        self.features_ = tuple(f for column, _ in self._columns for f in column.features)
        self.feature_names_out_ = [f.name for f in self.features_]
        self.categorical_mask_ = np.array([f.categorical for f in self.features_], dtype=bool)

    def _join_derived_facts(self) -> None:
        """A column learned to be derived from another (`fact_of`: a region from the country, a
        CRM seniority from the job title) is one fact with it: its reasons are said once, by the
        first of the columns that says something (the main column first)."""
        placed = {column.column: (column, at) for column, at in self._columns}
        parts: dict[str, list[tuple[_ColumnFeatures, int]]] = {}
        for spec, (column, at) in zip(self.columns_, self._columns):
            main = spec.get("fact_of")
            if main in placed and main != column.column:
                parts.setdefault(main, [placed[main]]).append((column, at))
        for main, members in parts.items():
            starts = sorted(at + i for column, at in members for i in range(len(column.features)))
            where = [
                (column, [starts.index(at + i) for i in range(len(column.features))])
                for column, at in members
            ]
            fact = Fact(name=main, describe=_first_saying(where))
            for column, _ in members:
                column.features = tuple(replace(f, fact=fact) for f in column.features)

    # transform ------------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Float matrix (len(frame), n_features); every fitted column must be in the frame."""
        absent = [c.column for c, _ in self._columns if c.column not in frame.columns]
        if absent:
            raise ValueError(
                f"the frame to score lacks column(s) {absent} that the model was trained with; "
                "add them (empty values are allowed and count as missing)"
            )
        out = np.empty((len(frame), len(self.features_)), dtype=np.float64)
        created = frame["created_at"] if "created_at" in frame.columns else None
        for column, at in self._columns:
            if isinstance(column, _Moment) and column.from_created:
                column.series(frame[column.column], out, at, created)
            else:
                column.series(frame[column.column], out, at)
        return out

    def transform_record(self, attributes: dict[str, Any], created_at: Any = None) -> np.ndarray:
        """One row for one lead; attributes absent from the dict are missing (NaN)."""
        row = np.empty(len(self.features_), dtype=np.float64)
        for column, at in self._columns:
            name = column.column
            if isinstance(column, _Moment) and column.from_created:
                column.value(attributes.get(name), row, at, created_at)
            else:
                column.value(created_at if name == "created_at" else attributes.get(name), row, at)
        return row

    def transform_records(
        self, attributes: list[dict[str, Any]], created_at: list[Any] | None = None
    ) -> np.ndarray:
        """Rows for many leads at once, column by column; equal to `transform_record` per lead."""
        n = len(attributes)
        out = np.empty((n, len(self.features_)), dtype=np.float64)
        for column, at in self._columns:
            name = column.column
            if name == "created_at":
                values = list(created_at) if created_at is not None else [None] * n
            else:
                values = [a.get(name) for a in attributes]
            if isinstance(column, _Moment) and column.from_created:
                column.values(values, out, at, created_at)
            else:
                column.values(values, out, at)
        return out

    # state ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "rare_min_count": self.rare_min_count,
            "max_categories": self.max_categories,
            "wide_min_count": self.wide_min_count,
            "max_wide_categories": self.max_wide_categories,
            "columns": [
                {k: v for k, v in s.items() if not k.startswith("_")} for s in self.columns_
            ],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> AttributeEncoder:
        encoder = cls(
            state["rare_min_count"],
            state["max_categories"],
            state.get("wide_min_count", 3),
            state.get("max_wide_categories", 0),  # saved before wide codes: none were learned
        )
        encoder.columns_ = [dict(s) for s in state["columns"]]
        encoder._build_outputs()
        return encoder


def _first_saying(
    parts: list[tuple[_ColumnFeatures, list[int]]],
) -> Callable[[Sequence[float]], str]:
    """Words of a fact made of several columns (each with its value positions): the first column
    whose values say something, else the first column's words ("not given")."""

    def words(values: Sequence[float]) -> str:
        for column, positions in parts:
            own = [values[i] for i in positions]
            if column.says_something(own):
                return column.words(own)
        column, positions = parts[0]
        return column.words([values[i] for i in positions])

    return words


SAME_FACT_LAMBDA = 0.9


SAME_FACT_SAMPLE_ROWS = 200_000


def _nan_if_none(function):
    def wrapped(value: Any) -> float:
        result = function(value)
        return math.nan if result is None else float(result)

    return wrapped


_NO_MOMENT = (math.nan, math.nan, math.nan)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dates_only(values: pd.Series, zone: tzinfo | None = None) -> bool:
    """Whether every given value of the column is a date without a time of day: on `zone`'s
    clocks (None: UTC's) a whole hour, and at most two hours in all, one apart (a local midnight
    read in another zone than the data's is one hour there, or two where the clocks change)."""
    given = values.dropna()
    if given.empty:
        return False
    if pd.api.types.is_datetime64_any_dtype(given) and getattr(given.dt, "tz", None) is not None:
        moments = given.dt.tz_convert(zone or "UTC")
        # the parts, not `floor("h")`, which fails on an hour the zone's clocks repeat
        clock = moments.dt
        if (clock.minute | clock.second | clock.microsecond | clock.nanosecond).to_numpy().any():
            return False
        hours = set(moments.dt.hour.unique().tolist())
    else:
        parsed = [_local(v, zone) for v in set(given.tolist())]
        if any(m is None or (m.minute, m.second, m.microsecond) != (0, 0, 0) for m in parsed):
            return False
        hours = {m.hour for m in parsed if m is not None}
    return len(hours) == 1 or (len(hours) == 2 and max(hours) - min(hours) in (1, 23))


def _moment_parts(value: Any, zone: tzinfo | None = None) -> tuple[float, float, float]:
    moment = _local(value, zone)
    return _NO_MOMENT if moment is None else (moment.weekday(), moment.hour, moment.month)


def _map_values(values: list[Any], mapper, as_array: bool = True):
    """`mapper` over a list, each distinct text computed once (texts repeat across leads).

    Only exact `str` values are cached: True, 1 and 1.0 are equal dict keys but not the same input.
    """
    table = {v: mapper(v) for v in {v for v in values if v.__class__ is str}}
    mapped = [table[v] if v.__class__ is str else mapper(v) for v in values]
    return np.array(mapped, dtype=np.float64) if as_array else mapped


def _datetime_parts(series: pd.Series, zone: tzinfo | None = None) -> np.ndarray:
    """(day of week, hour, month) on `zone`'s clocks (None: UTC) per row; NaN where missing."""
    moments = _zoned_moments(series, zone)
    if moments is not None:
        return np.column_stack(
            [moments.dt.day_of_week.to_numpy(dtype=np.float64, na_value=np.nan),
             moments.dt.hour.to_numpy(dtype=np.float64, na_value=np.nan),
             moments.dt.month.to_numpy(dtype=np.float64, na_value=np.nan)]
        )  # fmt: skip
    return _per_distinct(series, partial(_moment_parts, zone=zone), _NO_MOMENT)
