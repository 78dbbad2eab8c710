"""Reading one value: what "yes", "no", a number, a placeholder or a moment means.

This is the only place that decides it. File reading (`features.data.loading`, column at a
time), the featurizer (`features.attributes`, value at a time) and the hard-rule facts
(`features.policy.facts`) all call these functions, so a lead sent with `"Do Not Email": "x"`
is read the same way by the model and by the do-not-contact rule.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

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


# --------------------------------------------------------------------------------------------------
# Yes / no

# Spellings of yes and no in CRM exports and form posts (compared case-folded, spaces trimmed).
YES_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0", "x", "on", "checked"})
NO_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0", "off", "unchecked"})
BOOLEAN_WORDS: dict[str, bool] = {
    **dict.fromkeys(YES_WORDS, True),
    **dict.fromkeys(NO_WORDS, False),
}

OUTCOME_WORDS: dict[str, bool] = {
    **BOOLEAN_WORDS,
    "won": True,
    "lost": False,
    "closed won": True,
    "closed lost": False,
    "win": True,
    "loss": False,
    "converted": True,
    "not converted": False,
}


# --------------------------------------------------------------------------------------------------
# Placeholders and type inference


def placeholder_mask(series: pd.Series, placeholders: set[str]) -> tuple[pd.Series, list[str]]:
    """Rows whose text is a placeholder ('Select', 'N/A' ...), and the spellings found."""
    if not _is_text(series):
        return pd.Series(False, index=series.index), []
    uniques = series.dropna().unique()
    found = [u for u in uniques if str(u).strip().lower() in placeholders]
    if not found:
        return pd.Series(False, index=series.index), []
    return series.isin(found), found


def to_boolean(
    series: pd.Series, words: dict[str, bool] = BOOLEAN_WORDS
) -> tuple[pd.Series, pd.Series]:
    """Nullable booleans and a mask of non-missing values that are not boolean words."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean"), pd.Series(False, index=series.index)
    if pd.api.types.is_numeric_dtype(series):
        mapped = series.map({1: True, 0: False})
    else:
        text = series.astype(str).str.strip().str.casefold()
        uniques = pd.unique(text[series.notna()])
        lookup = {u: words[u] for u in uniques if u in words}
        mapped = text.map(lookup)
        mapped[series.isna()] = pd.NA
    result = mapped.astype("boolean")
    bad = series.notna() & result.isna()
    return result, bad


def to_numeric(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """float64 values and a mask of non-missing values that are not numbers."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float), pd.Series(False, index=series.index)
    numbers = pd.to_numeric(series, errors="coerce").astype("float64")
    return numbers, series.notna() & numbers.isna()


# The contract's list (DataConfig.placeholders) plus web-form defaults such as 'Please select'.
PLACEHOLDERS = frozenset(DEFAULT_PLACEHOLDERS) | frozenset(
    {
        "", "select", "select one", "select...", "please select", "choose", "choose one",
        "n/a", "na", "n.a.", "none", "null", "nil", "nan", "undefined", "unknown",
        "not provided", "not specified", "not set", "-", "--", "?", "#n/a", "(blank)", "blank",
    }
)  # fmt: skip


# --- normalisers shared by both paths ----------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return (
        value is None
        or value is pd.NA
        or value is pd.NaT
        or (isinstance(value, float) and math.isnan(value))
    )


def _plain_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 5.0 read from a CSV and "5" typed in a form are one category
    return " ".join(str(value).split())


def normalise_category(value: Any) -> str | None:
    """Category key: case and white space folded; placeholders such as 'Select' are missing."""
    if _is_missing(value):
        return None
    text = _plain_text(value.item() if isinstance(value, np.generic) else value).casefold()
    if text in PLACEHOLDERS or text.strip(" -_.*()[]") in PLACEHOLDERS:
        return None
    return text


def to_number(value: Any) -> float:
    """A numeric attribute as float; NaN when missing or not a number."""
    if _is_missing(value):
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    text = str(value).strip().replace(",", "")
    if text.casefold() in PLACEHOLDERS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


def yes_no(value: Any) -> bool | None:
    """True for a yes, False for a no, None when missing or not a yes/no (e.g. 'maybe', 2)."""
    if _is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return bool(value) if value in (0, 1) else None
    return BOOLEAN_WORDS.get(str(value).strip().casefold())


def is_yes(value: Any) -> bool:
    """Whether the value says yes (missing and unrecognisable values do not)."""
    return yes_no(value) is True


def to_yes_no(value: Any) -> float:
    """A boolean attribute as 1.0/0.0; NaN when missing or not recognisable."""
    answer = yes_no(value)
    return math.nan if answer is None else float(answer)


def to_utc_datetime(value: Any) -> datetime | None:
    """A date-time attribute in UTC (naive values are taken as UTC); None when missing/unreadable."""
    if _is_missing(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime(warn=False)
    elif isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def datetime_ns(value: Any, what: str = "timestamp") -> int | None:
    """Nanoseconds since the epoch (UTC; naive times are taken as UTC); None when missing.

    Exact integer arithmetic, so the single-lead path gets the same ages as the batch path.
    """
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.as_unit("ns").value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{what} {text!r} is not an ISO 8601 date-time; use e.g. 2024-05-01T09:30:00Z"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return ((value - _EPOCH) // _MICROSECOND) * 1000
    if isinstance(value, date):
        return datetime_ns(datetime(value.year, value.month, value.day), what)
    raise ValueError(f"{what} {value!r} is not a date-time; use e.g. 2024-05-01T09:30:00Z")


# The plain ISO 8601 form every client sends (seconds, optional fraction of up to 6 digits, Z or
# an offset): pyarrow and datetime.fromisoformat read it to the same microsecond.
_PLAIN_ISO = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


_PLAIN_ISO_MATCH = re.compile(_PLAIN_ISO).fullmatch


_NS_SAFE_US = (np.iinfo(np.int64).max // 1000) - 1


def iso_strings_ns(values: list[Any]) -> np.ndarray | None:
    """int64 ns since the epoch of many ISO 8601 strings with a zone (one vectorised parse).

    Same numbers as `datetime_ns` per string. None (the caller then takes the per-value path)
    unless every value is a `str` in the plain form, a real moment, within int64 nanoseconds.
    """
    if len(values) <= 32:  # a lead or two: python beats pyarrow's fixed cost
        micros_list = []
        for value in values:
            if value.__class__ is not str or _PLAIN_ISO_MATCH(value) is None:
                return None
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return None
            micros_list.append((moment - _EPOCH) // _MICROSECOND)
        if any(m < -_NS_SAFE_US or m > _NS_SAFE_US for m in micros_list):
            return None
        return np.array(micros_list, dtype=np.int64) * 1000

    try:
        texts = pa.array(values, type=pa.string())
    except (pa.ArrowException, TypeError, ValueError):
        return None
    pattern = f"^{_PLAIN_ISO}$"
    if texts.null_count or not pc.all(pc.match_substring_regex(texts, pattern)).as_py():
        return None
    try:
        micros = pc.cast(texts, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
    except pa.ArrowException:  # e.g. 2026-02-30: the per-value path names the bad one
        return None
    if micros.min() < -_NS_SAFE_US or micros.max() > _NS_SAFE_US:
        return None
    return micros * 1000


def _is_text(series: pd.Series) -> bool:
    return (
        pd.api.types.is_string_dtype(series)
        or series.dtype == object
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def isin(values: pd.Series, known: pd.Series) -> pd.Series:
    """`values.isin(known)` for text, via Arrow (pandas' is a Python loop for Arrow strings)."""
    try:
        mask = pc.is_in(pa.array(to_text(values).array), value_set=pa.array(to_text(known).array))
        return pd.Series(mask.to_numpy(zero_copy_only=False), index=values.index)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return values.isin(known)


def to_text(series: pd.Series) -> pd.Series:
    """The `str` dtype with missing values kept missing."""
    if series.dtype == "str":
        return series
    if isinstance(series.dtype, pd.CategoricalDtype):
        # Parquet dictionary columns: decoding in Arrow is ten times faster than astype.
        try:
            decoded = pc.cast(pa.array(series), pa.string())
            return pd.Series(decoded.to_pandas(), index=series.index, name=series.name).astype(
                "str"
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            series = series.astype(object)
    return series.astype("str").where(series.notna(), other=pd.NA).astype("str")
