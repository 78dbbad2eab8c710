"""Touchpoints read into the arrays the touchpoint core (`features.touchpoints`) works on.

One row of the core is a lead at its moment T; each (row, touchpoint) pair becomes an entry of
`TouchpointArrays`: row index, age in days (T - occurred_at), channel code, activity code,
campaign code and value. Three ways in, the same numbers out: frames (training, batch scoring),
one record (the API's single lead) and many records (an API request of several leads). They
share the normalisers below, so batch and single lead agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.data.values import datetime_ns, iso_strings_ns
from features.data.vocabulary import ACTIVITIES, CHANNELS, normalise_activity, normalise_channel
from features.touchpoints import TouchpointArrays

NS_PER_DAY = 86_400 * 10**9


_CHANNEL_CODE = {name: i for i, name in enumerate(CHANNELS)}


_ACTIVITY_CODE = {name: i for i, name in enumerate(ACTIVITIES)}


_OTHER_CHANNEL = _CHANNEL_CODE["other"]


_OTHER_ACTIVITY = _ACTIVITY_CODE["other"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_MICROSECOND = timedelta(microseconds=1)


# --- value normalisation shared by both paths (so batch and single lead agree exactly) ---------


def channel_code(value: Any) -> int:
    """Code of a channel; messy spellings via the contract's synonyms; unknown/missing: 'other'."""
    if not isinstance(value, str):
        return _OTHER_CHANNEL
    code = _CHANNEL_CODE.get(value)  # canonical names: the fast, common case
    return code if code is not None else _CHANNEL_CODE[normalise_channel(value)]


def activity_code(value: Any) -> int:
    """Code of an activity; messy spellings via the contract's synonyms; unknown/missing: 'other'."""
    if not isinstance(value, str):
        return _OTHER_ACTIVITY
    code = _ACTIVITY_CODE.get(value)
    return code if code is not None else _ACTIVITY_CODE[normalise_activity(value)]


def campaign_key(value: Any) -> str | None:
    """Campaign identity: stripped text, or None when missing or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def touch_value(value: Any) -> float:
    """A touchpoint's value as a float (NaN when missing or not a number)."""
    if value is None or isinstance(value, bool):
        return math.nan if value is None else float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def series_ns(series: pd.Series, what: str) -> np.ndarray:
    """int64 nanoseconds since the epoch (UTC) of a date-time column; NaT stays NaT (min int64)."""
    if not isinstance(series.dtype, pd.DatetimeTZDtype) and series.dtype.kind != "M":
        try:
            series = pd.to_datetime(series, utc=True, format="ISO8601")
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"column {what!r} must hold ISO 8601 date-times such as 2024-05-01T09:30:00Z "
                f"({error})"
            ) from None
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.dt.as_unit("ns").array.asi8.copy()


NAT = np.iinfo(np.int64).min


def _codes_via_uniques(series: pd.Series, mapper, missing) -> np.ndarray:
    """Apply a python mapper to the distinct values only, then broadcast (fast on big columns)."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    table = np.array([mapper(u) for u in uniques] + [missing])
    return table[codes]  # code -1 (missing) picks the last entry


def touchpoint_arrays_from_frames(
    row_lead_ids: pd.Series,
    as_of_ns: np.ndarray,
    touchpoints: pd.DataFrame,
) -> TouchpointArrays:
    """Pair every row (a lead at its moment T) with the touchpoints of its lead.

    A lead may appear in several rows (snapshots at several ages): its touchpoints are repeated
    for each. Touchpoints of leads not in the rows are dropped. With a `received_at` column (data
    the service captured), a touchpoint received after a row's moment does not count in that row:
    it was not known then, whenever it happened.
    """
    row_code, lead_uniques = pd.factorize(row_lead_ids.astype(str))
    # Factorise the (long) touchpoint column first, then match only its distinct ids: much faster
    # than hashing 10M strings against the rows' index.
    touch_lead, touch_uniques = pd.factorize(touchpoints["lead_id"].astype(str))
    lookup = np.append(pd.Index(lead_uniques).get_indexer(touch_uniques), -1)
    touch_code = lookup[touch_lead]  # -1: a lead that is not among the rows
    mine = np.flatnonzero(touch_code >= 0)
    touch_code = touch_code[mine]
    rows_per_lead = np.bincount(row_code, minlength=len(lead_uniques))
    if len(rows_per_lead) == 0 or rows_per_lead.max() <= 1:
        row_of_lead = np.empty(len(lead_uniques), dtype=np.int64)
        row_of_lead[row_code] = np.arange(len(row_code))
        row = row_of_lead[touch_code]
        touch = mine
    else:
        order = np.argsort(row_code, kind="stable")
        first_row = np.concatenate([[0], np.cumsum(rows_per_lead)[:-1]])
        repeats = rows_per_lead[touch_code]
        touch = np.repeat(mine, repeats)
        start = np.repeat(first_row[touch_code], repeats)
        offset = np.arange(len(touch)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
        row = order[start + offset]

    occurred = series_ns(touchpoints["occurred_at"], "occurred_at")[touch]
    valid = occurred != NAT
    if "received_at" in touchpoints.columns:
        received = series_ns(touchpoints["received_at"], "received_at")[touch]
        valid &= (received == NAT) | (received <= as_of_ns[row])
    age = np.where(valid, (as_of_ns[row] - occurred) / NS_PER_DAY, np.nan)
    channel = _codes_via_uniques(touchpoints["channel"], channel_code, _OTHER_CHANNEL)[touch]
    activity = _codes_via_uniques(touchpoints["activity"], activity_code, _OTHER_ACTIVITY)[touch]
    if "campaign" in touchpoints.columns:
        keys = _codes_via_uniques(touchpoints["campaign"], campaign_key, None)
        campaign = pd.factorize(keys, use_na_sentinel=True)[0].astype(np.int64)[touch]
    else:
        campaign = np.full(len(touch), -1, dtype=np.int64)
    if "value" in touchpoints.columns:
        raw = touchpoints["value"]
        if raw.dtype.kind in "iuf":
            value = raw.to_numpy(dtype=np.float64, na_value=np.nan)[touch]
        else:
            value = _codes_via_uniques(raw, touch_value, math.nan).astype(np.float64)[touch]
    else:
        value = np.full(len(touch), np.nan)
    return TouchpointArrays(
        row.astype(np.int64), age, channel.astype(np.int64), activity.astype(np.int64),
        campaign, value,
    )  # fmt: skip


def touchpoint_arrays_from_record(
    touchpoints: Iterable[dict[str, Any]],
    as_of_ns: int,
    lead_id: Any = None,
    moments: np.ndarray | None = None,
) -> TouchpointArrays:
    """Arrays for one lead (row 0) from a list of touchpoint dicts; no pandas on this path.
    `moments`: the touchpoints' int64 ns already parsed (`record_touchpoints`' `moments`)."""
    ages, channels, activities, campaigns, values = [], [], [], [], []
    campaign_codes: dict[str, int] = {}
    touchpoints = list(touchpoints)
    parsed = moments.tolist() if moments is not None and len(moments) == len(touchpoints) else None
    for i, touch in enumerate(touchpoints):
        if parsed is not None:
            occurred = None if parsed[i] == NAT else parsed[i]
        else:
            occurred = datetime_ns(
                touch.get("occurred_at"), f"lead {lead_id!r} touchpoint {i} occurred_at"
            )
        # float(int) rounds like numpy's int64 -> float64 cast, so ages match the batch path bit for bit
        ages.append(math.nan if occurred is None else float(as_of_ns - occurred) / NS_PER_DAY)
        channels.append(channel_code(touch.get("channel")))
        activities.append(activity_code(touch.get("activity")))
        key = campaign_key(touch.get("campaign"))
        campaigns.append(-1 if key is None else campaign_codes.setdefault(key, len(campaign_codes)))
        values.append(touch_value(touch.get("value")))
    n = len(ages)
    return TouchpointArrays(
        np.zeros(n, dtype=np.int64),
        np.array(ages, dtype=np.float64),
        np.array(channels, dtype=np.int64),
        np.array(activities, dtype=np.int64),
        np.array(campaigns, dtype=np.int64),
        np.array(values, dtype=np.float64),
    )


class RecordTouchpoints(NamedTuple):
    """The touchpoints of many records as core arrays, and what the policy's facts need to know."""

    arrays: TouchpointArrays
    canonical_activities: bool  # every activity was a canonical name (no spelling was mapped)


def touchpoint_arrays_from_records(
    touch_lists: list[Any], as_of_ns: np.ndarray, lead_ids: list[Any]
) -> TouchpointArrays | None:
    """Arrays for many leads (row i = lead i) in one pass over all their touchpoint dicts.

    Same numbers as `touchpoint_arrays_from_record` per lead. Returns None when a moment is
    outside numpy's int64 nanosecond range (years before 1678 or after 2261): the caller then
    uses the per-lead path, whose python integers do not overflow.
    """
    touches = record_touchpoints(touch_lists, as_of_ns, lead_ids)
    return None if touches is None else touches.arrays


def record_touchpoints(
    touch_lists: list[Any],
    as_of_ns: np.ndarray,
    lead_ids: list[Any],
    moments: np.ndarray | None = None,
) -> RecordTouchpoints | None:
    """`touchpoint_arrays_from_records`, with whether the activities were canonical names.

    `moments`: int64 ns of every touchpoint in order, when the caller has parsed them already
    (`iso_strings_ns` of their `occurred_at`: the API checks them so before scoring)."""
    touch_lists = [ts or () for ts in touch_lists]
    counts = np.fromiter(map(len, touch_lists), dtype=np.int64, count=len(touch_lists))
    flat = [t for ts in touch_lists for t in ts]
    row = np.repeat(np.arange(len(touch_lists), dtype=np.int64), counts)
    if not flat:
        empty = TouchpointArrays(
            row,
            *(np.empty(0, dtype=t) for t in (np.float64, np.int64, np.int64, np.int64, np.float64)),
        )
        return RecordTouchpoints(empty, True)
    # One C-level pass per field (20,000 touchpoints in a 1,000-lead request).
    if moments is None or len(moments) != len(flat):
        occurred = _field(flat, "occurred_at")
        # The API passes the strings on: one vectorised parse (else the per-value python path).
        moments = iso_strings_ns(occurred) if occurred[0].__class__ is str else None
    if moments is None:
        ns: list[int | None]
        if all(v.__class__ is datetime and v.tzinfo is not None for v in occurred):
            ns = [((v - _EPOCH) // _MICROSECOND) * 1000 for v in occurred]
        else:  # strings, naive or missing moments: the shared parser, naming the lead on an error
            ns = []
            for i, touches in enumerate(touch_lists):
                for j, touch in enumerate(touches):
                    value = touch.get("occurred_at")
                    try:
                        ns.append(datetime_ns(value))
                    except ValueError:
                        datetime_ns(value, f"lead {lead_ids[i]!r} touchpoint {j} occurred_at")
        try:
            moments = np.array([NAT if v is None else v for v in ns], dtype=np.int64)
        except OverflowError:
            return None
    valid = moments != NAT
    cut = as_of_ns[row]
    diff = cut - moments
    # int64 subtraction wraps silently: operands of different signs whose result flips sign.
    if (((cut ^ moments) & (cut ^ diff))[valid] < 0).any():
        return None
    age = np.where(valid, diff / NS_PER_DAY, np.nan)
    channel = _codes(_field(flat, "channel"), _CHANNEL_CODE, channel_code)
    activity, canonical = _codes(_field(flat, "activity"), _ACTIVITY_CODE, activity_code, True)
    campaign = _campaign_codes(_field(flat, "campaign"))
    raw_values = _field(flat, "value")
    if set(map(type, raw_values)) <= _FLOAT_OR_NONE:
        value = np.array(raw_values, dtype=np.float64)  # None -> NaN, as touch_value does
    else:
        value = np.array([touch_value(v) for v in raw_values], dtype=np.float64)
    arrays = TouchpointArrays(row, age, channel, activity, campaign, value)
    return RecordTouchpoints(arrays, canonical)


_FLOAT_OR_NONE = frozenset({float, type(None)})


_STR_OR_NONE = frozenset({str, type(None)})


def _field(touches: list[Any], name: str) -> list[Any]:
    """One field of every touchpoint (None where a touchpoint lacks it)."""
    try:
        return list(map(itemgetter(name), touches))
    except (KeyError, TypeError):
        return [t.get(name) for t in touches]


def _campaign_codes(values: list[Any]) -> np.ndarray:
    """int64 campaign codes, -1 when missing; equality only, so one numbering for all leads."""
    codes: dict[str, int] = {}
    if set(map(type, values)) <= _STR_OR_NONE:  # the API's case: each distinct text keyed once
        keys = {v: campaign_key(v) for v in set(values)}
        code_of = {v: -1 if k is None else codes.setdefault(k, len(codes)) for v, k in keys.items()}
        return np.fromiter(map(code_of.__getitem__, values), dtype=np.int64, count=len(values))
    return np.array(
        [
            -1 if k is None else codes.setdefault(k, len(codes))
            for k in _mapped(values, campaign_key)
        ],  # fmt: skip
        dtype=np.int64,
    )


def _codes(values: list[Any], canonical: dict[str, int], mapper, tell: bool = False):
    """int64 codes of channel or activity names: canonical names (what the API passes on) by one
    dict lookup each, anything else through `mapper`. With `tell`, also whether all were
    canonical."""
    try:
        array = np.fromiter(map(canonical.__getitem__, values), dtype=np.int64, count=len(values))
        all_canonical = True
    except (KeyError, TypeError):  # a spelling to map, or an unhashable value
        array = np.array(_mapped(values, mapper), dtype=np.int64)
        all_canonical = False
    return (array, all_canonical) if tell else array


def _mapped(values: list[Any], mapper) -> list[Any]:
    """`mapper` over a list, each distinct text computed once (True, 1, 1.0 are not cached)."""
    table = {v: mapper(v) for v in {v for v in values if v.__class__ is str}}
    return [table[v] if v.__class__ is str else mapper(v) for v in values]
