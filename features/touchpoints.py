"""Touchpoint aggregates as of a moment T: each feature declared once, one pure numpy core.

Every row to featurise has its own moment T (`as_of`). A touchpoint counts for that row only if
`occurred_at < T`, so nothing that happened at or after the scoring moment can reach a feature.

`touchpoint_features(config)` is the one list of the touchpoint features: each declared with its
name, unit, description and plain words, next to the function that computes it. The core,
`touchpoint_aggregates`, writes each computation into the columns of its declaration; it works on
plain arrays (row index, age in days = T - occurred_at, channel code, activity code, campaign
code, value) for a million leads or for one. `features.touchpoint_arrays` builds those arrays
from frames (batch) and from API records (one lead or many); every path calls this core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import NamedTuple

import numpy as np

from features.config import FeatureConfig
from features.data.vocabulary import ACTIVITIES, CHANNELS, HIGH_INTENT
from features.feature import Fact, Feature, is_missing

_IS_HIGH_INTENT = np.isin(np.arange(len(ACTIVITIES)), [ACTIVITIES.index(a) for a in HIGH_INTENT])


_UNSUBSCRIBE = ACTIVITIES.index("unsubscribe")


_BOUNCE = ACTIVITIES.index("email_bounce")


class TouchpointArrays(NamedTuple):
    """Inputs of the core, one entry per (row, touchpoint) pair."""

    row: np.ndarray  # int64, index of the row (lead at its moment T) in the output
    age_days: np.ndarray  # float64, T - occurred_at in days; <= 0 means at or after T (ignored)
    channel: np.ndarray  # int64 index into CHANNELS
    activity: np.ndarray  # int64 index into ACTIVITIES
    campaign: np.ndarray  # int64 campaign code, -1 when missing; only equality matters
    value: np.ndarray  # float64, NaN when missing


# --- what several features share -----------------------------------------------------------


class Touches:
    """The touchpoints that count for each row (strictly before its moment T), and what several
    features share: each part is computed once per call of the core, when first asked for."""

    def __init__(
        self,
        arrays: TouchpointArrays,
        n_rows: int,
        lead_age_days: np.ndarray,
        config: FeatureConfig,
    ) -> None:
        row, age, channel, activity, campaign, value = arrays
        keep = age > 0  # strictly before T; also drops NaN ages
        if not keep.all():
            row, age, channel, activity = row[keep], age[keep], channel[keep], activity[keep]
            campaign, value = campaign[keep], value[keep]
        self.row, self.age, self.channel, self.activity = row, age, channel, activity
        self.campaign, self.value = campaign, value
        self.n_rows = n_rows
        self.lead_age_days = lead_age_days
        self.config = config

    @cached_property
    def _row_window(self) -> np.ndarray:
        """row * n_windows + index of the smallest window holding the touch (age <= window);
        the last window is "all time"."""
        windows = np.asarray(self.config.windows_days, dtype=np.float64)
        window = np.searchsorted(windows, self.age, side="left")
        return self.row * (len(windows) + 1) + window

    def _per_window(self, codes: np.ndarray, n_codes: int) -> np.ndarray:
        n_windows = len(self.config.windows_days) + 1
        counts = np.bincount(
            self._row_window * n_codes + codes, minlength=self.n_rows * n_windows * n_codes
        ).reshape(self.n_rows, n_windows, n_codes)
        np.cumsum(counts, axis=1, out=counts)  # windows are nested: 7d within 30d within ...
        return counts

    @cached_property
    def by_channel(self) -> np.ndarray:
        """Touches per (row, window, channel), int64."""
        return self._per_window(self.channel, len(CHANNELS))

    @cached_property
    def by_activity(self) -> np.ndarray:
        """Touches per (row, window, activity), int64."""
        return self._per_window(self.activity, len(ACTIVITIES))

    @cached_property
    def in_first_days(self) -> np.ndarray:
        """Touches per (row, activity) that occurred before the lead's creation + `first_days`
        (and before T), int64; a row with no creation date has none (its columns are NaN)."""
        first = self.config.first_days or 0
        early = self.lead_age_days[self.row] - self.age < first  # False for a NaN lead age
        return np.bincount(
            self.row[early] * len(ACTIVITIES) + self.activity[early],
            minlength=self.n_rows * len(ACTIVITIES),
        ).reshape(self.n_rows, len(ACTIVITIES))

    @cached_property
    def last_age(self) -> np.ndarray:
        """Age of each row's latest touch in days; inf when it has none."""
        last_age = np.full(self.n_rows, np.inf)
        np.minimum.at(last_age, self.row, self.age)
        return last_age

    @cached_property
    def first_age(self) -> np.ndarray:
        """Age of each row's earliest touch in days; -inf when it has none."""
        first_age = np.full(self.n_rows, -np.inf)
        np.maximum.at(first_age, self.row, self.age)
        return first_age

    @cached_property
    def touched(self) -> np.ndarray:
        return np.isfinite(self.last_age)

    def channel_at(self, target_age: np.ndarray) -> np.ndarray:
        """Channel code of the touch at `target_age` of each row; NaN for rows without touches.
        Ties (several touches at the same moment) go to the lowest code, whatever the order."""
        at_target = self.age == target_age[self.row]
        code = np.full(self.n_rows, len(CHANNELS), dtype=np.int64)
        np.minimum.at(code, self.row[at_target], self.channel[at_target])
        return np.where(self.touched, code, np.nan)


# --- how each feature is computed: (n_rows,) for one feature, (n_rows, k) for k ----------------


def _touches_per_window(t: Touches) -> np.ndarray:
    return t.by_channel.sum(axis=2)


def _touches_by_channel(t: Touches) -> np.ndarray:
    return t.by_channel.reshape(t.n_rows, -1)  # window by window, channel by channel


def _touches_by_activity(t: Touches) -> np.ndarray:
    return t.by_activity.reshape(t.n_rows, -1)  # window by window, activity by activity


def _first_days_counts(t: Touches) -> np.ndarray:
    counts = np.column_stack([t.in_first_days.sum(axis=1), t.in_first_days]).astype(np.float64)
    return np.where(np.isnan(t.lead_age_days)[:, None], np.nan, counts)


def _days_since_last_touch(t: Touches) -> np.ndarray:
    return np.where(t.touched, t.last_age, np.nan)


def _days_since_last_high_intent(t: Touches) -> np.ndarray:
    high = _IS_HIGH_INTENT[t.activity]
    last_high = np.full(t.n_rows, np.inf)
    np.minimum.at(last_high, t.row[high], t.age[high])
    return np.where(np.isfinite(last_high), last_high, np.nan)


def _engagement_score(t: Touches) -> np.ndarray:
    weights = np.exp2(-t.age / t.config.half_life_days)
    return np.bincount(t.row, weights=weights, minlength=t.n_rows)


def _first_touch_channel(t: Touches) -> np.ndarray:
    return t.channel_at(t.first_age)


def _last_touch_channel(t: Touches) -> np.ndarray:
    return t.channel_at(t.last_age)


def _distinct_channels(t: Touches) -> np.ndarray:
    return np.count_nonzero(t.by_channel[:, -1, :], axis=1)


def _distinct_campaigns(t: Touches) -> np.ndarray:
    known = t.campaign >= 0
    if not known.any():
        return np.zeros(t.n_rows)
    span = int(t.campaign.max()) + 1
    keys = np.sort(t.row[known] * span + t.campaign[known])
    new = np.empty(len(keys), dtype=bool)
    new[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    return np.bincount(keys[new] // span, minlength=t.n_rows).astype(np.float64)


def _touch_velocity(t: Touches) -> np.ndarray:
    recent, prior = t.config.velocity_recent_days, t.config.velocity_prior_days
    n_recent = np.bincount(t.row[t.age <= recent], minlength=t.n_rows)
    n_prior = np.bincount(t.row[(t.age > recent) & (t.age <= recent + prior)], minlength=t.n_rows)
    return 7.0 * (n_recent / recent - n_prior / prior)  # touches per week, change


def _unsubscribed(t: Touches) -> np.ndarray:
    return t.by_activity[:, -1, _UNSUBSCRIBE] > 0


def _bounced(t: Touches) -> np.ndarray:
    return t.by_activity[:, -1, _BOUNCE] > 0


def _touch_value_total(t: Touches) -> np.ndarray:
    has_value = ~np.isnan(t.value)
    return np.bincount(t.row[has_value], weights=t.value[has_value], minlength=t.n_rows)


def _days_since_created(t: Touches) -> np.ndarray:
    return t.lead_age_days


# --- how a value reads to sales ---------------------------------------------------------------

CHANNEL_LABELS = {
    "organic_search": "organic search", "paid_search": "paid search", "paid_social": "paid social",
    "email": "email", "webinar": "webinars", "content": "content", "event": "events",
    "referral": "referrals", "direct": "direct visits", "print": "print", "other": "other channels",
}  # fmt: skip


ACTIVITY_NOUNS = {
    "visit": ("website visit", "website visits"),
    "pricing_page_view": ("pricing-page visit", "pricing-page visits"),
    "email_open": ("email open", "email opens"),
    "email_click": ("email click", "email clicks"),
    "form_submit": ("form submission", "form submissions"),
    "download": ("download", "downloads"),
    "webinar_attend": ("webinar attended", "webinars attended"),
    "demo_request": ("demo request", "demo requests"),
    "unsubscribe": ("unsubscribe", "unsubscribes"),
    "email_bounce": ("bounced email", "bounced emails"),
    "other": ("other activity", "other activities"),
}


def channel_label(channel: str) -> str:
    return CHANNEL_LABELS.get(channel, channel.replace("_", " "))


def activity_nouns(activity: str) -> tuple[str, str]:
    text = activity.replace("_", " ")
    return ACTIVITY_NOUNS.get(activity, (text, text + "s"))


def window_label(days: int | None) -> str:
    return "all" if days is None else f"{days}d"


def window_phrase(days: int | None) -> str:
    return "in total" if days is None else f"in the last {days} days"


def first_days_phrase(days: int) -> str:
    return f"in its first {days} days"


def _number_words(value: float) -> str:
    """'3' for whole numbers, '2.5' otherwise."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def _days_words(days: int) -> str:
    """'1 day', '12 days'."""
    return f"{days} day{'s' if days != 1 else ''}"


def _count_words(one: str, many: str, days: int | str | None) -> Callable[[float], str]:
    window = days if isinstance(days, str) else window_phrase(days)

    def words(value: float) -> str:
        if is_missing(value) or value == 0:
            return f"No {many} {window}"
        return f"{_number_words(value)} {one if value == 1 else many} {window}"

    return words


def _windowed_count_words(
    one: str, many: str, windows: Sequence[int | None]
) -> Callable[[Sequence[float]], str]:
    """One sentence for the nested window counts of one thing (7 days within 30 within ... within
    all time), read in the windows' order: the narrowest window that holds any, and the total
    when it holds more, e.g. '1 demo request in the last 7 days', '5 demo requests, 1 in the last
    7 days', '2 demo requests, none in the last 90 days'. Extra values (a flag derived from the
    same touches) are ignored."""
    n = len(windows)

    def noun(count: float) -> str:
        return one if count == 1 else many

    def words(values: Sequence[float]) -> str:
        counts = [0.0 if is_missing(v) else float(v) for v in values[:n]]
        total = counts[-1]
        if total <= 0:
            return f"No {many} yet"
        days, count = next((d, c) for d, c in zip(windows, counts) if c > 0)
        if days is None:
            if n == 1:
                return f"{_number_words(total)} {noun(total)} in total"
            return f"{_number_words(total)} {noun(total)}, none in the last {windows[-2]} days"
        if count == total:
            return f"{_number_words(count)} {noun(count)} in the last {days} days"
        return (
            f"{_number_words(total)} {noun(total)}, {_number_words(count)} in the last {days} days"
        )

    return words


def _distinct_words(one: str, many: str) -> Callable[[float], str]:
    def words(value: float) -> str:
        n = int(value)
        return f"Touched through {n} different {one if n == 1 else many}"

    return words


def _channel_words(label: str) -> Callable[[float], str]:
    labels = [channel_label(c) for c in CHANNELS]

    def words(value: float) -> str:
        return f"{label}: none yet" if is_missing(value) else f"{label}: {labels[int(value)]}"

    return words


def _flag_words(yes: str, no: str) -> Callable[[float], str]:
    return lambda value: yes if value >= 0.5 else no


def _days_since_last_touch_words(value: float) -> str:
    if is_missing(value):
        return "No touchpoints yet"
    if value < 1:
        return "Last touch less than a day ago"
    return f"No touch for {_days_words(int(value))}"


_HIGH_INTENT_NOUNS = [activity_nouns(a)[0] for a in HIGH_INTENT]


def _days_since_last_high_intent_words(value: float) -> str:
    if is_missing(value):
        return f"No {', '.join(_HIGH_INTENT_NOUNS[:-1])} or {_HIGH_INTENT_NOUNS[-1]} yet"
    if value < 1:
        return "High-intent action (demo request, pricing page or form) less than a day ago"
    return f"Last high-intent action {_days_words(int(value))} ago"


def _engagement_words(value: float) -> str:
    return f"Engagement score {value:.1f} (recent touches count most)"


def _velocity_words(value: float) -> str:
    if value > 0:
        return f"{value:.1f} more touches per week than in the month before"
    if value < 0:
        return f"{-value:.1f} fewer touches per week than in the month before"
    return "Same touch pace as in the month before"


def _touch_value_words(value: float) -> str:
    return f"Total touchpoint value: {value:g}"


def _lead_age_words(value: float) -> str:
    if is_missing(value):
        return "Creation date unknown"
    if value < 0:  # scored before it was created: never a negative age in front of sales
        return "Created after the moment it was scored (check its creation date)"
    return f"Lead created {_days_words(int(value))} ago"


# --- the touchpoint features, in column order ---------------------------------------------------

Computation = Callable[[Touches], np.ndarray]


def compact_window(windows_days: Sequence[int]) -> int:
    """The one look-back window of the compact candidates' counts: the longest up to 30 days
    (the shortest when all are longer)."""
    short = [w for w in windows_days if w <= 30]
    return max(short) if short else min(windows_days)


def _declarations(config: FeatureConfig) -> Iterator[tuple[Computation, tuple[Feature, ...]]]:
    """Each computation with the features whose columns it fills, in column order."""
    windows = [*config.windows_days, None]
    # the compact candidates' view of a count (`features.feature.DETAIL`): all time and one
    # window, the longest up to 30 days; counts per channel and over other windows are detail
    compact = (None, compact_window(config.windows_days))
    # The windows of one count are one fact (a lead's reasons say it once), and so are the
    # unsubscribed / bounced flags and the counts they are read from.
    all_touches = Fact(name="touches", describe=_windowed_count_words("touch", "touches", windows))
    by_channel = {
        ch: Fact(name=f"{ch}_touches",
                 describe=_windowed_count_words(f"touch from {channel_label(ch)}",
                                                f"touches from {channel_label(ch)}", windows))
        for ch in CHANNELS
    }  # fmt: skip
    by_activity = {
        act: Fact(
            name=f"{act}_count", describe=_windowed_count_words(*activity_nouns(act), windows)
        )
        for act in ACTIVITIES
    }
    yield _touches_per_window, tuple(
        Feature(name=f"touches_{window_label(w)}", unit="touches",
                description=f"Marketing touches {window_phrase(w)}",
                describe=_count_words("touch", "touches", w), fact=all_touches,
                detail=w not in compact)
        for w in windows
    )  # fmt: skip
    yield _touches_by_channel, tuple(
        Feature(name=f"{ch}_touches_{window_label(w)}", unit="touches",
                description=f"Touches from {channel_label(ch)} {window_phrase(w)}",
                describe=_count_words(f"touch from {channel_label(ch)}",
                                      f"touches from {channel_label(ch)}", w),
                fact=by_channel[ch], detail=True)
        for w in windows
        for ch in CHANNELS
    )  # fmt: skip
    yield _touches_by_activity, tuple(
        Feature(name=f"{act}_count_{window_label(w)}", unit=many.split()[-1],
                description=f"{many[:1].upper()}{many[1:]} {window_phrase(w)}",
                describe=_count_words(one, many, w), fact=by_activity[act],
                detail=w not in compact)
        for w in windows
        for act in ACTIVITIES
        for one, many in [activity_nouns(act)]
    )  # fmt: skip
    if config.first_days is not None:
        first = config.first_days
        yield _first_days_counts, (
            Feature(name=f"touches_first{first}d", unit="touches",
                    description=f"Marketing touches {first_days_phrase(first)} (those before "
                                "the scoring moment); empty without a creation date",
                    describe=_count_words("touch", "touches", first_days_phrase(first)),
                    fact=all_touches),
            *(Feature(name=f"{act}_count_first{first}d", unit=many.split()[-1],
                      description=f"{many[:1].upper()}{many[1:]} {first_days_phrase(first)} "
                                  "(those before the scoring moment)",
                      describe=_count_words(one, many, first_days_phrase(first)),
                      fact=by_activity[act])  # a lead's reasons say its demo requests once
              for act in ACTIVITIES
              for one, many in [activity_nouns(act)]),
        )  # fmt: skip
    yield _days_since_last_touch, (
        Feature(name="days_since_last_touch", unit="days",
                description="Days since the last touch before the scoring moment (empty if none)",
                describe=_days_since_last_touch_words),
    )  # fmt: skip
    yield _days_since_last_high_intent, (
        Feature(name="days_since_last_high_intent", unit="days",
                description=f"Days since the last high-intent action "
                            f"({', '.join(_HIGH_INTENT_NOUNS)}); empty if none",
                describe=_days_since_last_high_intent_words),
    )  # fmt: skip
    half_life = config.half_life_days
    yield _engagement_score, (
        Feature(name="engagement_score", unit="decayed touches",
                description=f"Touches weighted by recency: a touch counts 1 now, 1/2 after "
                            f"{half_life:g} days, 1/4 after {2 * half_life:g}",
                describe=_engagement_words),
    )  # fmt: skip
    yield _first_touch_channel, (
        Feature(name="first_touch_channel", unit="category", categorical=True,
                description="Channel of the first touch", describe=_channel_words("First touch")),
    )  # fmt: skip
    yield _last_touch_channel, (
        Feature(name="last_touch_channel", unit="category", categorical=True,
                description="Channel of the most recent touch",
                describe=_channel_words("Last touch")),
    )  # fmt: skip
    yield _distinct_channels, (
        Feature(name="distinct_channels", unit="channels",
                description="Number of different channels that touched the lead",
                describe=_distinct_words("channel", "channels")),
    )  # fmt: skip
    yield _distinct_campaigns, (
        Feature(name="distinct_campaigns", unit="campaigns",
                description="Number of different campaigns that touched the lead",
                describe=_distinct_words("campaign", "campaigns")),
    )  # fmt: skip
    recent, prior = config.velocity_recent_days, config.velocity_prior_days
    yield _touch_velocity, (
        Feature(name="touch_velocity", unit="touches per week",
                description=f"Touches per week in the last {recent} days minus touches per "
                            f"week in the {prior} days before",
                describe=_velocity_words),
    )  # fmt: skip
    yield _unsubscribed, (
        Feature(name="unsubscribed", unit="yes/no",
                description="1 if the lead ever unsubscribed before the scoring moment",
                describe=_flag_words("Unsubscribed from email", "Has not unsubscribed"),
                fact=by_activity["unsubscribe"]),
    )  # fmt: skip
    yield _bounced, (
        Feature(name="bounced", unit="yes/no",
                description="1 if an email to the lead ever bounced before the scoring moment",
                describe=_flag_words("An email to this lead bounced", "No bounced email"),
                fact=by_activity["email_bounce"]),
    )  # fmt: skip
    yield _touch_value_total, (
        Feature(name="touch_value_total", unit="unit of the touchpoint 'value' column",
                description="Sum of the touchpoints' value column (e.g. minutes, amount)",
                describe=_touch_value_words),
    )  # fmt: skip
    yield _days_since_created, (
        Feature(name="days_since_created", unit="days",
                description="Days between the lead's creation and the scoring moment",
                describe=_lead_age_words),
    )  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    features: tuple[Feature, ...]
    columns: tuple[tuple[int | slice, Computation], ...]  # where each computation writes


@lru_cache(maxsize=32)
def _layout(config: FeatureConfig) -> _Layout:
    features: list[Feature] = []
    columns: list[tuple[int | slice, Computation]] = []
    for compute, declared in _declarations(config):
        start = len(features)
        features += declared
        where = start if len(declared) == 1 else slice(start, len(features))
        columns.append((where, compute))
    return _Layout(tuple(features), tuple(columns))


def touchpoint_features(config: FeatureConfig) -> tuple[Feature, ...]:
    """The touchpoint features, in the order of the columns `touchpoint_aggregates` returns."""
    return _layout(config).features


def touchpoint_feature_names(config: FeatureConfig) -> list[str]:
    """Names of the columns `touchpoint_aggregates` returns, in order."""
    return [feature.name for feature in _layout(config).features]


def touchpoint_aggregates(
    arrays: TouchpointArrays,
    n_rows: int,
    lead_age_days: np.ndarray,
    config: FeatureConfig,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Aggregate touchpoints per row as of each row's moment T.

    `lead_age_days[i]` is T - created_at of row i in days (NaN when unknown). Returns a float64
    array (n_rows, len(touchpoint_features(config))), written into `out` when given (e.g. a
    column slice of a bigger feature table, to save a copy). Pure: no state, inputs untouched.
    """
    layout = _layout(config)
    shape = (n_rows, len(layout.features))
    if out is None:
        out = np.empty(shape, dtype=np.float64)
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    touches = Touches(arrays, n_rows, lead_age_days, config)
    for where, compute in layout.columns:
        out[:, where] = compute(touches)
    return out
