"""Lead attributes to numbers: categories (normalised, rare grouped), numbers, yes/no, date-times.

Categorical outputs are integer codes in a float matrix (NaN = missing) so HistGradientBoosting can
use native categorical support and a linear pipeline can one-hot them (see `categorical_mask_`).
The code after the learned categories means "other": rare in fit, or never seen before.

Batch and single-lead paths share the python normalisers below: the batch path applies them to the
distinct values of a column only, so both give exactly the same numbers.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
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

# Columns that are never features: the key, the moments, and outcome fields (they would leak).
NOT_FEATURES = ("lead_id", "as_of", "snapshot_age_days")


OUTCOME_COLUMNS = ("label", "won", "closed_at")


SENIORITY_LEVELS = ("c_level", "vp", "director", "manager", "individual_contributor")


SENIORITY_LABELS = ("C-level", "VP", "Director", "Manager", "Individual contributor")


DEPARTMENTS = (
    "engineering", "it", "product", "marketing", "sales", "customer_success", "finance",
    "operations", "hr", "legal", "executive", "other",
)  # fmt: skip


DEPARTMENT_LABELS = (
    "Engineering", "IT", "Product", "Marketing", "Sales", "Customer success", "Finance",
    "Operations", "HR", "Legal", "Executive", "Other",
)  # fmt: skip


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


# --- the encoder -------------------------------------------------------------------------------


class AttributeEncoder:
    """Learns attribute vocabularies in `fit`; turns frames or single records into float rows."""

    def __init__(self, rare_min_count: int = 20, max_categories: int = 100) -> None:
        self.rare_min_count = rare_min_count
        self.max_categories = max_categories

    # fit ------------------------------------------------------------------------------------
    def fit(self, leads: pd.DataFrame, attribute_types: dict[str, str]) -> AttributeEncoder:
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
        for column, kind in types.items():
            spec: dict[str, Any] = {"column": column, "type": kind}
            if kind == "categorical":
                spec.update(self._learn_categories(leads[column]))
                spec["title"] = is_title_column(column)
            columns.append(spec)
        self.columns_ = columns
        self._build_outputs()
        return self

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
        kept = sorted((k for k, n in by_key.items() if n >= self.rare_min_count),
                      key=lambda k: (-by_key[k], k))[: self.max_categories]  # fmt: skip
        return {"categories": kept, "labels": [spelling[k][1] for k in kept]}

    def _build_outputs(self) -> None:
        names, mask, info = [], [], []
        for spec in self.columns_:
            column, kind = spec["column"], spec["type"]
            label = "Created" if column == "created_at" else _label(column)
            if kind == "categorical":
                names.append(column)
                mask.append(True)
                info.append({"name": column, "kind": "category", "label": label,
                             "labels": [*spec["labels"], "other"],
                             "other_code": len(spec["labels"]),
                             "description": f"{label} (category; 'other' = rare or new value)",
                             "unit": "category"})  # fmt: skip
                if spec.get("title"):
                    names += [f"{column}__seniority", f"{column}__department"]
                    mask += [True, True]
                    info.append({"name": f"{column}__seniority", "kind": "category",
                                 "label": "Seniority", "labels": list(SENIORITY_LABELS),
                                 "description": f"Seniority read from {label}",
                                 "unit": "category"})  # fmt: skip
                    info.append({"name": f"{column}__department", "kind": "category",
                                 "label": "Department", "labels": list(DEPARTMENT_LABELS),
                                 "description": f"Department read from {label}",
                                 "unit": "category"})  # fmt: skip
            elif kind == "numeric":
                names.append(column)
                mask.append(False)
                info.append(
                    {
                        "name": column,
                        "kind": "number",
                        "label": label,
                        "description": f"{label} (number as given)",
                        "unit": "as given",
                    }
                )
            elif kind == "boolean":
                names.append(column)
                mask.append(False)
                info.append(
                    {
                        "name": column,
                        "kind": "yes_no",
                        "label": label,
                        "description": f"{label} (1 = yes, 0 = no)",
                        "unit": "yes/no",
                    }
                )
            else:
                for part, unit, what in (
                    ("day_of_week", "0 = Monday ... 6 = Sunday", "day of the week"),
                    ("hour", "hour of day, UTC", "hour of the day (UTC)"),
                    ("month", "1 = January ... 12 = December", "month"),
                ):
                    names.append(f"{column}__{part}")
                    mask.append(False)
                    info.append(
                        {
                            "name": f"{column}__{part}",
                            "kind": part,
                            "label": label,
                            "description": f"{label}: {what}",
                            "unit": unit,
                        }
                    )
        self.feature_names_out_ = names
        self.categorical_mask_ = np.array(mask, dtype=bool)
        self.feature_info_ = info

    # transform ------------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Float matrix (len(frame), n_features); every fitted column must be in the frame."""
        absent = [s["column"] for s in self.columns_ if s["column"] not in frame.columns]
        if absent:
            raise ValueError(
                f"the frame to score lacks column(s) {absent} that the model was trained with; "
                "add them (empty values are allowed and count as missing)"
            )
        out = np.empty((len(frame), len(self.feature_names_out_)), dtype=np.float64)
        col = 0
        for spec in self.columns_:
            series = frame[spec["column"]]
            kind = spec["type"]
            if kind == "categorical":
                out[:, col] = _map_uniques(series, self._category_mapper(spec))
                col += 1
                if spec.get("title"):
                    out[:, col] = _map_uniques(series, _nan_if_none(seniority_of))
                    out[:, col + 1] = _map_uniques(series, _nan_if_none(department_of))
                    col += 2
            elif kind == "numeric":
                if series.dtype.kind in "iuf":
                    out[:, col] = series.to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    out[:, col] = _map_uniques(series, to_number)
                col += 1
            elif kind == "boolean":
                if series.dtype.kind == "b":  # numpy bool or the contract's nullable "boolean"
                    out[:, col] = series.to_numpy(dtype=np.float64, na_value=np.nan)
                else:
                    out[:, col] = _map_uniques(series, to_yes_no)
                col += 1
            else:
                out[:, col : col + 3] = _datetime_parts(series)
                col += 3
        return out

    def transform_record(self, attributes: dict[str, Any], created_at: Any = None) -> np.ndarray:
        """One row for one lead; attributes absent from the dict are missing (NaN)."""
        row = np.empty(len(self.feature_names_out_), dtype=np.float64)
        col = 0
        for spec in self.columns_:
            column, kind = spec["column"], spec["type"]
            value = created_at if column == "created_at" else attributes.get(column)
            if kind == "categorical":
                row[col] = self._category_mapper(spec)(value)
                col += 1
                if spec.get("title"):
                    row[col] = _nan_if_none(seniority_of)(value)
                    row[col + 1] = _nan_if_none(department_of)(value)
                    col += 2
            elif kind == "numeric":
                row[col] = to_number(value)
                col += 1
            elif kind == "boolean":
                row[col] = to_yes_no(value)
                col += 1
            else:
                moment = to_utc_datetime(value)
                if moment is None:
                    row[col : col + 3] = np.nan
                else:
                    row[col : col + 3] = (moment.weekday(), moment.hour, moment.month)
                col += 3
        return row

    def transform_records(
        self, attributes: list[dict[str, Any]], created_at: list[Any] | None = None
    ) -> np.ndarray:
        """Rows for many leads at once, column by column; equal to `transform_record` per lead."""
        n = len(attributes)
        out = np.empty((n, len(self.feature_names_out_)), dtype=np.float64)
        col = 0
        for spec in self.columns_:
            column, kind = spec["column"], spec["type"]
            if column == "created_at":
                values = list(created_at) if created_at is not None else [None] * n
            else:
                values = [a.get(column) for a in attributes]
            if kind == "categorical":
                out[:, col] = _map_values(values, self._category_mapper(spec))
                col += 1
                if spec.get("title"):
                    out[:, col] = _map_values(values, _nan_if_none(seniority_of))
                    out[:, col + 1] = _map_values(values, _nan_if_none(department_of))
                    col += 2
            elif kind == "numeric":
                out[:, col] = _map_values(values, to_number)
                col += 1
            elif kind == "boolean":
                out[:, col] = _map_values(values, to_yes_no)
                col += 1
            else:
                if n:
                    out[:, col : col + 3] = np.array(
                        _map_values(values, _moment_parts, as_array=False), dtype=np.float64
                    )
                col += 3
        return out

    def _category_mapper(self, spec: dict[str, Any]):
        lookup = spec.get("_lookup")
        if lookup is None:
            lookup = spec["_lookup"] = {k: float(i) for i, k in enumerate(spec["categories"])}
        other = float(len(spec["categories"]))

        def code(value: Any) -> float:
            key = normalise_category(value)
            return math.nan if key is None else lookup.get(key, other)

        return code

    # state ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "rare_min_count": self.rare_min_count,
            "max_categories": self.max_categories,
            "columns": [
                {k: v for k, v in s.items() if not k.startswith("_")} for s in self.columns_
            ],
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> AttributeEncoder:
        encoder = cls(state["rare_min_count"], state["max_categories"])
        encoder.columns_ = [dict(s) for s in state["columns"]]
        encoder._build_outputs()
        return encoder


def _nan_if_none(function):
    def wrapped(value: Any) -> float:
        result = function(value)
        return math.nan if result is None else float(result)

    return wrapped


_NO_MOMENT = (math.nan, math.nan, math.nan)


def _moment_parts(value: Any) -> tuple[float, float, float]:
    moment = to_utc_datetime(value)
    return _NO_MOMENT if moment is None else (moment.weekday(), moment.hour, moment.month)


def _map_values(values: list[Any], mapper, as_array: bool = True):
    """`mapper` over a list, each distinct text computed once (texts repeat across leads).

    Only exact `str` values are cached: True, 1 and 1.0 are equal dict keys but not the same input.
    """
    table = {v: mapper(v) for v in {v for v in values if v.__class__ is str}}
    mapped = [table[v] if v.__class__ is str else mapper(v) for v in values]
    return np.array(mapped, dtype=np.float64) if as_array else mapped


def _datetime_parts(series: pd.Series) -> np.ndarray:
    """(day of week, hour, month) in UTC per row; NaN where missing."""
    if isinstance(series.dtype, pd.DatetimeTZDtype) or series.dtype.kind == "M":
        moments = (
            series if isinstance(series.dtype, pd.DatetimeTZDtype) else series.dt.tz_localize("UTC")
        )
        moments = moments.dt.tz_convert("UTC")
        parts = np.column_stack(
            [moments.dt.day_of_week.to_numpy(dtype=np.float64, na_value=np.nan),
             moments.dt.hour.to_numpy(dtype=np.float64, na_value=np.nan),
             moments.dt.month.to_numpy(dtype=np.float64, na_value=np.nan)]
        )  # fmt: skip
        return parts
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.full((len(uniques) + 1, 3), np.nan)
    for i, raw in enumerate(uniques):
        moment = to_utc_datetime(raw)
        if moment is not None:
            table[i] = (moment.weekday(), moment.hour, moment.month)
    return table[codes]


def describe_attribute(info: dict[str, Any], value: float) -> str:
    """Plain words for one attribute feature value, e.g. 'Industry: Software'."""
    label, kind = info["label"], info["kind"]
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if kind == "category":
        if missing:
            return f"{label}: not given"
        index = int(value)
        if index == info.get("other_code") or not 0 <= index < len(info["labels"]):
            return f"{label}: other (rare or new value)"
        return f"{label}: {info['labels'][index]}"
    if missing:
        return f"{label}: not given"
    if kind == "yes_no":
        return f"{label}: {'yes' if value >= 0.5 else 'no'}"
    if kind == "day_of_week":
        return f"{label} on a {_DAY_NAMES[int(value) % 7]}"
    if kind == "hour":
        return f"{label} at {int(value):02d}:00-{int(value):02d}:59 UTC"
    if kind == "month":
        return f"{label} in {datetime(2000, int(value), 1):%B}"
    return f"{label}: {value:g}"
