"""Reading one value: what "yes", "no", a number, a placeholder or a moment means.

This is the only place that decides it. File reading (`features.data.loading`, column at a
time), the featurizer (`features.attributes`, value at a time) and the hard-rule facts
(`features.policy.facts`) all call these functions, so a lead sent with `"Do Not Email": "x"`
is read the same way by the model and by the do-not-contact rule.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# The plausible moments of a lead's life: files and the API refuse a created_at, as_of,
# touchpoint or closed_at outside EARLIEST_MOMENT..LATEST_MOMENT, both included (a typo such as
# 0202 or 2202, or a zero/sentinel date), instead of scoring an age of 1,800 years.
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_MOMENT_NS = 0
LATEST_MOMENT_NS = ((LATEST_MOMENT - _EPOCH) // _MICROSECOND) * 1000
MOMENT_RANGE = f"between {EARLIEST_MOMENT:%Y-%m-%d} and {LATEST_MOMENT:%Y-%m-%d}"


def is_plausible_moment(moment: datetime) -> bool:
    """Whether an aware date-time lies in EARLIEST_MOMENT..LATEST_MOMENT (both included)."""
    return EARLIEST_MOMENT <= moment <= LATEST_MOMENT


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

# Spellings of yes and no in CRM exports and form posts (compared case-folded, spaces trimmed):
# English, then the words European CRMs export in French, German, Spanish, Italian, Portuguese,
# Dutch, the Scandinavian languages and Polish.
YES_WORDS = frozenset(
    {
        "true", "t", "yes", "y", "1", "1.0", "x", "on", "checked",
        "oui", "vrai",  # fr
        "ja", "wahr",  # de, nl, sv, da, no
        "sí", "si", "sì", "verdadero", "vero", "sim", "verdadeiro",  # es, it, pt
        "waar", "sant", "sann", "tak", "prawda",  # nl, sv, no, pl
    }
)  # fmt: skip
NO_WORDS = frozenset(
    {
        "false", "f", "no", "n", "0", "0.0", "off", "unchecked",
        "non", "faux",  # fr
        "nein", "falsch",  # de
        "falso", "não", "nao",  # es, it, pt ("no" is English too)
        "nee", "onwaar", "nej", "nei", "falskt", "usann", "nie", "fałsz",  # nl, sv, da, no, pl
    }
)  # fmt: skip
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
    "gagné": True,  # fr
    "perdu": False,
    "gewonnen": True,  # de, nl
    "verloren": False,
    "ganado": True,  # es
    "perdido": False,  # es, pt
    "ganho": True,  # pt
    "vinto": True,  # it
    "perso": False,
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


def to_numeric(
    series: pd.Series, number_format: NumberFormat | None = None
) -> tuple[pd.Series, pd.Series]:
    """float64 values and a mask of non-missing values that are not numbers.

    Without `number_format`, plain numbers only (1234.5, 1e3); with it, numbers written the way it
    says ('1.234,5' with a decimal comma), thousands separators only in groups of three digits.
    """
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float), pd.Series(False, index=series.index)
    if number_format is None or pd.api.types.is_numeric_dtype(series):
        numbers = pd.to_numeric(series, errors="coerce").astype("float64")
        return numbers, series.notna() & numbers.isna()
    numbers = _formatted_numbers(to_text(series).str.strip(), number_format)
    return numbers, series.notna() & numbers.isna()


# --------------------------------------------------------------------------------------------------
# Numbers written with decimal commas and thousands separators

DECIMAL_MARKS = (".", ",")
# Thousands separators seen in exports: comma, point, spaces (French exports use a no-break or a
# narrow no-break space) and the Swiss apostrophe.
THOUSANDS_MARKS = (",", ".", " ", "\u00a0", "\u202f", "'", "\u2019")


@dataclass(frozen=True)
class NumberFormat:
    """How a file writes numbers: its decimal mark and thousands separator.

    `thousands=None`: any separator other than the decimal mark, between groups of three digits.
    """

    decimal: str = "."
    thousands: str | None = None

    def describe(self) -> str:
        mark = {".": "decimal point", ",": "decimal comma"}[self.decimal]
        return f"{mark} ({_EXAMPLE[self.decimal]})"


_EXAMPLE = {".": "1,234.5 = 1234.5", ",": "1.234,5 = 1234.5"}
POINT = NumberFormat(".")
COMMA = NumberFormat(",")


def _number_pattern(number_format: NumberFormat) -> str:
    marks = [number_format.thousands] if number_format.thousands else THOUSANDS_MARKS
    groups = "".join(re.escape(m) for m in marks if m != number_format.decimal)
    point = re.escape(number_format.decimal)
    # no back-references: Arrow's regex engine (RE2) has none
    return (
        rf"[+-]?(?:(?:[0-9]{{1,3}}(?:[{groups}][0-9]{{3}})+|[0-9]+)(?:{point}[0-9]+)?"
        rf"|{point}[0-9]+)"
    )


def _formatted_numbers(text: pd.Series, number_format: NumberFormat) -> pd.Series:
    """float64 of stripped texts written in `number_format`; NaN for anything else."""
    valid = text.str.fullmatch(_number_pattern(number_format)).fillna(False).astype(bool)
    groups = "".join(re.escape(m) for m in THOUSANDS_MARKS if m != number_format.decimal)
    cleaned = text.where(valid).str.replace(f"[{groups}]", "", regex=True)
    if number_format.decimal != ".":
        cleaned = cleaned.str.replace(number_format.decimal, ".", regex=False)
    numbers = pd.to_numeric(cleaned, errors="coerce").astype("float64")
    if number_format.decimal == ".":
        # plain forms the pattern leaves out (1e3, 5.) read as before
        plain = pd.to_numeric(text.where(~valid), errors="coerce").astype("float64")
        numbers = numbers.fillna(plain)
    return numbers


@dataclass(frozen=True)
class NumberReading:
    """How a column's numbers are written, as far as its values tell.

    `kind`: "plain" (no separators: 12, 3.5, 1e3), "decimal_point" (1,234.5), "decimal_comma"
    (1,5 or 1.234,5), "ambiguous" (only values such as 1,234 or 1.500 that both marks read, as
    different numbers), "mixed" (both 2.5 and 2,5) or "text" (not all numbers either way).
    `examples`: the values that decided it. `default`: the format an ambiguous column is read in
    when nothing else decides (None: not read as numbers).
    """

    kind: str
    examples: tuple[str, ...] = ()
    default: NumberFormat | None = None

    @property
    def number_format(self) -> NumberFormat | None:
        return {"plain": None, "decimal_point": POINT, "decimal_comma": COMMA}.get(self.kind)


_NOT_NUMBER_CHARACTERS = "[^0-9.,+\\- '\u00a0\u202f\u2019]"

# a point between groups of three digits (1.500, 12.000.000): thousands in Europe
_DOTTED_THOUSANDS = r"[+-]?[1-9][0-9]{0,2}(?:\.[0-9]{3})+"


def number_reading(values: pd.Series) -> NumberReading:
    """How the numbers in a text column are written (see `NumberReading`)."""
    distinct = pd.Series(pd.unique(values.dropna()))  # a million touchpoints: ~1,500 values
    text = pd.Series(pd.unique(to_text(distinct).str.strip()), dtype="str")
    text = text[text != ""]
    if text.empty or text.str.contains(_NOT_NUMBER_CHARACTERS).any():
        return NumberReading("text")  # words, and 1e3 (read as a plain number)
    plain = pd.to_numeric(text, errors="coerce")
    point = _formatted_numbers(text, POINT)
    comma = _formatted_numbers(text, COMMA)
    if (point.isna() & comma.isna()).any():
        return NumberReading("text")
    point_only, comma_only = comma.isna(), point.isna()
    if point_only.any() and comma_only.any():
        return NumberReading(
            "mixed", _examples(text[point_only], 2) + _examples(text[comma_only], 2)
        )
    if comma_only.any():
        return NumberReading("decimal_comma", _examples(text[comma_only]))
    if point_only.any():
        separated = point_only & plain.isna()
        if separated.any():
            return NumberReading("decimal_point", _examples(text[separated]))
        return NumberReading("plain")
    differ = point != comma
    with_comma = differ & text.str.contains(",", regex=False)
    if with_comma.any():  # 1,234: a thousand or one and a bit; never guessed
        return NumberReading("ambiguous", _examples(text[with_comma]), default=None)
    dotted = text[text.str.contains(".", regex=False)]
    if len(dotted) >= 2 and dotted.str.fullmatch(_DOTTED_THOUSANDS).all():
        # 1.500 and 2.750 only: decimals read as before, but they may be thousands
        return NumberReading("ambiguous", _examples(dotted), default=POINT)
    return NumberReading("plain")


def _examples(values: pd.Series, limit: int = 3) -> tuple[str, ...]:
    return tuple(values.head(limit).tolist())


_NUMBER_PATTERNS = tuple((re.compile(_number_pattern(f)), f) for f in (POINT, COMMA))
_GROUPS = {
    d: re.compile("[" + "".join(re.escape(m) for m in THOUSANDS_MARKS if m != d) + "]")
    for d in DECIMAL_MARKS
}


# The contract's list (DataConfig.placeholders) plus web-form defaults such as 'Please select'.
PLACEHOLDERS = frozenset(DEFAULT_PLACEHOLDERS) | frozenset(
    {
        "", "select", "select one", "select...", "please select", "choose", "choose one",
        "n/a", "na", "n.a.", "none", "null", "nil", "nan", "undefined", "unknown",
        "not provided", "not specified", "not set", "-", "--", "?", "#n/a", "(blank)", "blank",
    }
)  # fmt: skip


# --- column names ---------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _column_key_text(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _KEY_JUNK.sub("", plain.lower())


_KEY_JUNK = re.compile(r"[^a-z0-9]")


def column_key(name: Any) -> str:
    """How a column name is compared with a list of names: case, accents, spaces and punctuation
    ignored ('Ne pas contacter', 'NE_PAS_CONTACTER' and 'né pas contacter' are one name)."""
    # Cached: the same attribute names come with every lead (15,000 in a 1,000-lead request).
    return _column_key_text(name if name.__class__ is str else str(name))


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
    text = str(value).strip()
    if text.casefold() in PLACEHOLDERS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        pass
    # 1,200 and 1,234.5 (thousands), else 1,5 and 1.234,5 (decimal comma): never 1,5 -> 15
    for pattern, number_format in _NUMBER_PATTERNS:
        if pattern.fullmatch(text):
            digits = _GROUPS[number_format.decimal].sub("", text)
            return float(digits.replace(number_format.decimal, "."))
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


def to_utc_datetime(value: Any, zone: tzinfo | None = None) -> datetime | None:
    """A date-time attribute in UTC; naive values are local times of `zone` (None: UTC's), as
    files are read in the data's `timezone`; None when missing or unreadable."""
    if _is_missing(value):
        return None
    if isinstance(value, np.datetime64):  # as a frame's column holds it: the same moment
        value = pd.Timestamp(value)
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
        if zone is None:
            return value.replace(tzinfo=UTC)
        first, second = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
        if first.utcoffset() != second.utcoffset():
            # a time the zone's clocks repeat (no moment) or skip (the moment they jump), as
            # the files path reads it (`readers.in_zone`)
            local = pd.Timestamp(value).tz_localize(
                zone, ambiguous="NaT", nonexistent="shift_forward"
            )
            return None if local is pd.NaT else local.to_pydatetime().astimezone(UTC)
        return first.astimezone(UTC)
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
