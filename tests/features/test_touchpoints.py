"""The touchpoint core: hand-computed aggregates, the point-in-time cut, row expansion."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from features.config import FeatureConfig
from features.data.values import datetime_ns
from features.data.vocabulary import ACTIVITIES, CHANNELS
from features.touchpoint_arrays import (
    NS_PER_DAY,
    series_ns,
    touchpoint_arrays_from_frames,
    touchpoint_arrays_from_record,
)
from features.touchpoints import (
    TouchpointArrays,
    touchpoint_aggregates,
    touchpoint_feature_names,
    touchpoint_features,
)

T = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = FeatureConfig()
NAMES = touchpoint_feature_names(CONFIG)


def touch(days_before: float, channel="email", activity="email_open", campaign=None, value=None):
    return {
        "occurred_at": T - timedelta(days=days_before),
        "channel": channel,
        "activity": activity,
        "campaign": campaign,
        "value": value,
    }


FIRST_DAYS = FeatureConfig(first_days=21)  # the first days' counts are opt-in


def features_of(
    touches, created_days_before: float | None = 100.0, config: FeatureConfig = CONFIG
) -> dict[str, float]:
    arrays = touchpoint_arrays_from_record(touches, datetime_ns(T))
    lead_age = np.array([math.nan if created_days_before is None else created_days_before])
    row = touchpoint_aggregates(arrays, 1, lead_age, config)[0]
    return dict(zip(touchpoint_feature_names(config), row))


HISTORY = [
    touch(2, "paid_search", "pricing_page_view", "spring", 3.0),
    touch(2, "email", "email_open", "spring"),  # same moment as the one above: a tie
    touch(7, "email", "email_click", "newsletter", 1.5),  # exactly on the 7-day edge
    touch(10, "webinar", "webinar_attend", "webinar-q2"),
    touch(20, "organic_search", "demo_request", None),
    touch(45, "email", "unsubscribe", " "),  # blank campaign counts as no campaign
    touch(200, "event", "visit", "spring"),
]


def test_counts_per_window_channel_and_activity():
    f = features_of(HISTORY)
    assert (f["touches_7d"], f["touches_30d"], f["touches_90d"], f["touches_all"]) == (3, 5, 6, 7)
    assert f["email_touches_7d"] == 2
    assert f["email_touches_all"] == 3
    assert f["paid_search_touches_7d"] == 1
    assert f["event_touches_90d"] == 0 and f["event_touches_all"] == 1
    assert f["pricing_page_view_count_7d"] == 1
    assert f["demo_request_count_7d"] == 0 and f["demo_request_count_30d"] == 1
    assert f["unsubscribe_count_all"] == 1


def test_recency_engagement_and_channels():
    f = features_of(HISTORY)
    assert f["days_since_last_touch"] == pytest.approx(2.0)
    assert f["days_since_last_high_intent"] == pytest.approx(2.0)  # the pricing page visit
    expected = sum(0.5 ** (d / 14.0) for d in (2, 2, 7, 10, 20, 45, 200))
    assert f["engagement_score"] == pytest.approx(expected)
    # Tie at day 2 between paid_search (code 1) and email (code 3): the lowest code wins.
    assert f["last_touch_channel"] == CHANNELS.index("paid_search")
    assert f["first_touch_channel"] == CHANNELS.index("event")
    assert f["distinct_channels"] == 5
    assert f["distinct_campaigns"] == 3  # spring, newsletter, webinar-q2
    # 3 touches in 7 days; 2 in the 30 days before (days 10 and 20): 3 - 2*7/30 per week.
    assert f["touch_velocity"] == pytest.approx(3 - 2 * 7 / 30)
    assert f["unsubscribed"] == 1 and f["bounced"] == 0
    assert f["touch_value_total"] == pytest.approx(4.5)
    assert f["days_since_created"] == 100


def test_every_count_column_counts_what_its_name_says():
    """Each windowed count, computed from the history by its name alone, is in its column."""
    config = FeatureConfig(windows_days=(5, 15))  # windows that cut HISTORY differently
    arrays = touchpoint_arrays_from_record(HISTORY, datetime_ns(T))
    row = touchpoint_aggregates(arrays, 1, np.array([100.0]), config)[0]
    features = touchpoint_features(config)
    assert len(row) == len(features) == len({f.name for f in features})
    checked = 0
    for window, days in (("5d", 5), ("15d", 15), ("all", math.inf)):
        counted = [t for t in HISTORY if (T - t["occurred_at"]).days <= days]
        expected = {f"touches_{window}": len(counted)}
        for channel in CHANNELS:
            expected[f"{channel}_touches_{window}"] = sum(t["channel"] == channel for t in counted)
        for activity in ACTIVITIES:
            expected[f"{activity}_count_{window}"] = sum(t["activity"] == activity for t in counted)
        for name, count in expected.items():
            assert row[touchpoint_feature_names(config).index(name)] == count, name
            checked += 1
    assert checked == 3 * (1 + len(CHANNELS) + len(ACTIVITIES))


def test_descriptions_follow_the_configured_windows_and_half_life():
    config = FeatureConfig(
        windows_days=(3,), half_life_days=7.5, velocity_prior_days=21, first_days=10
    )
    by_name = {f.name: f for f in touchpoint_features(config)}
    assert [n for n in by_name if n.startswith("touches_")] == [
        "touches_3d", "touches_all", "touches_first10d"
    ]  # fmt: skip
    assert by_name["demo_request_count_first10d"].description == (
        "Demo requests in its first 10 days (those before the scoring moment)"
    )
    assert (
        by_name["demo_request_count_first10d"].describe(1) == "1 demo request in its first 10 days"
    )
    assert by_name["email_touches_3d"].description == "Touches from email in the last 3 days"
    assert by_name["engagement_score"].description == (
        "Touches weighted by recency: a touch counts 1 now, 1/2 after 7.5 days, 1/4 after 15"
    )
    assert by_name["touch_velocity"].description.endswith("touches per week in the 21 days before")
    assert by_name["demo_request_count_all"].describe(2) == "2 demo requests in total"
    assert by_name["first_touch_channel"].categorical
    assert not by_name["distinct_channels"].categorical


def test_first_days_counts_are_the_touches_before_creation_plus_n_days_and_before_t():
    # Created 30 days before T: the first 21 days end 9 days before T.
    f = features_of(HISTORY, created_days_before=30.0, config=FIRST_DAYS)
    assert f["webinar_attend_count_first21d"] == 1  # 10 days before T: the lead's day 20
    assert f["demo_request_count_first21d"] == 1  # day 10
    assert f["unsubscribe_count_first21d"] == 1  # day -15: before creation counts as early
    assert f["visit_count_first21d"] == 1  # day -170
    assert f["email_click_count_first21d"] == 0  # day 23
    assert f["pricing_page_view_count_first21d"] == 0  # day 28
    assert f["touches_first21d"] == 4
    # Created 5 days before T: every touch before T is in its first 21 days.
    young = features_of(HISTORY, created_days_before=5.0, config=FIRST_DAYS)
    assert young["touches_first21d"] == young["touches_all"] == 7
    later = HISTORY + [touch(0, "paid_search", "demo_request"), touch(-3, "event", "form_submit")]
    assert features_of(later, created_days_before=5.0, config=FIRST_DAYS) == young


def test_first_days_counts_are_empty_without_a_creation_date_and_absent_when_off():
    f = features_of(HISTORY, created_days_before=None, config=FIRST_DAYS)
    assert math.isnan(f["touches_first21d"]) and math.isnan(f["visit_count_first21d"])
    on = touchpoint_feature_names(FIRST_DAYS)
    off = touchpoint_feature_names(FeatureConfig(first_days=None))
    assert off == NAMES  # off by default
    assert off == [n for n in on if not n.endswith("_first21d")]
    assert len(on) - len(off) == 1 + len(ACTIVITIES)


def test_a_lead_without_touches_has_zero_counts_and_empty_recency():
    f = features_of([], created_days_before=None)
    assert f["touches_all"] == 0 and f["engagement_score"] == 0 and f["distinct_campaigns"] == 0
    for name in ("days_since_last_touch", "days_since_last_high_intent", "first_touch_channel",
                 "last_touch_channel", "days_since_created"):  # fmt: skip
        assert math.isnan(f[name]), name


def test_touches_at_or_after_the_moment_are_ignored():
    before = features_of(HISTORY)
    later = HISTORY + [touch(0, "paid_search", "demo_request", "x", 9.0),  # exactly at T
                       touch(-3, "event", "form_submit", "y", 1.0)]  # fmt: skip
    after = features_of(later)
    assert before == after


def test_order_of_touches_does_not_matter():
    forward, backward = features_of(HISTORY), features_of(list(reversed(HISTORY)))
    assert forward.keys() == backward.keys()
    # Sums may differ in the last bit with the order of addition; everything else is exact.
    np.testing.assert_allclose(list(forward.values()), list(backward.values()), rtol=1e-12)
    assert forward["last_touch_channel"] == backward["last_touch_channel"]


def test_several_leads_in_one_call_equal_one_lead_at_a_time():
    rng = np.random.default_rng(7)
    n_rows, n = 40, 600
    arrays = TouchpointArrays(
        rng.integers(0, n_rows, n), rng.uniform(-5, 150, n), rng.integers(0, len(CHANNELS), n),
        rng.integers(0, len(ACTIVITIES), n), rng.integers(-1, 6, n), rng.uniform(0, 3, n),
    )  # fmt: skip
    lead_age = rng.uniform(0, 200, n_rows)
    together = touchpoint_aggregates(arrays, n_rows, lead_age, CONFIG)
    for i in range(n_rows):
        mine = arrays.row == i
        one = TouchpointArrays(np.zeros(mine.sum(), dtype=np.int64), *(a[mine] for a in arrays[1:]))
        alone = touchpoint_aggregates(one, 1, lead_age[i : i + 1], CONFIG)[0]
        np.testing.assert_array_equal(together[i], alone)


def test_frames_repeat_touches_for_every_row_of_a_lead_and_drop_unknown_leads():
    rows = pd.Series(["a", "b", "a"])
    as_of = series_ns(pd.Series(pd.to_datetime(["2024-01-10", "2024-01-10", "2024-01-20"], utc=True)),
                      "as_of")  # fmt: skip
    touches = pd.DataFrame({
        "lead_id": ["a", "a", "zz"],
        "occurred_at": pd.to_datetime(["2024-01-05", "2024-01-15", "2024-01-01"], utc=True),
        "channel": ["email", "Google Ads", "email"],
        "activity": ["email_open", "Demo Request", "visit"],
    })  # fmt: skip
    arrays = touchpoint_arrays_from_frames(rows, as_of, touches)
    pairs = sorted(zip(arrays.row.tolist(), arrays.age_days.tolist()))
    assert pairs == [(0, -5.0), (0, 5.0), (2, 5.0), (2, 15.0)]  # the unknown lead 'zz' is gone
    # Messy spellings go through the contract's synonyms, in the batch path as in the record path.
    assert set(arrays.channel.tolist()) == {CHANNELS.index("email"), CHANNELS.index("paid_search")}
    assert set(arrays.activity.tolist()) == {ACTIVITIES.index("email_open"),
                                             ACTIVITIES.index("demo_request")}  # fmt: skip
    out = touchpoint_aggregates(arrays, 3, np.full(3, np.nan), CONFIG)
    total = NAMES.index("touches_all")
    assert out[:, total].tolist() == [1, 0, 2]  # row 0 sees one touch before 10 Jan; row 2 both


def test_ages_are_exact_integer_nanoseconds():
    occurred = datetime(2023, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert (
        datetime_ns(T) - datetime_ns(occurred)
        == ((T - occurred) // timedelta(microseconds=1)) * 1000
    )
    assert datetime_ns("2024-06-01T12:00:00Z") == datetime_ns(T)
    assert datetime_ns(datetime(2024, 6, 1, 12)) == datetime_ns(T)  # naive is UTC
    assert datetime_ns(pd.Timestamp(T)) == datetime_ns(T)
    assert NS_PER_DAY == 86_400_000_000_000


def test_unreadable_timestamp_names_the_lead_and_the_fix():
    with pytest.raises(ValueError, match=r"lead 'L9' touchpoint 0 occurred_at 'yesterday' is not an "
                       r"ISO 8601 date-time; use e\.g\. 2024-05-01T09:30:00Z"):  # fmt: skip
        touchpoint_arrays_from_record([{"occurred_at": "yesterday"}], datetime_ns(T), "L9")


def test_config_rejects_bad_windows_with_a_message():
    with pytest.raises(ValueError, match=r"windows_days must be positive numbers of days"):
        FeatureConfig(windows_days=(0, 7))
    with pytest.raises(ValueError, match=r"windows_days.0\n  Input should be a valid integer"):
        FeatureConfig(windows_days=(7.5,))
    assert FeatureConfig(windows_days=(30, 7, 7)).windows_days == (7, 30)


def test_many_iso_strings_parse_like_one_at_a_time():
    from features.data.values import iso_strings_ns

    rng = np.random.default_rng(5)
    base = datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)
    texts = []
    for i in range(100):
        moment = base + timedelta(
            seconds=int(rng.integers(-(10**9), 10**9)), microseconds=int(rng.integers(0, 10**6))
        )
        zone = timezone(timedelta(minutes=int(rng.integers(-14 * 60, 14 * 60))))
        text = moment.astimezone(zone).isoformat()
        texts.append(text.replace("+00:00", "Z") if i % 3 == 0 else text)
    expected = [datetime_ns(t) for t in texts]
    assert iso_strings_ns(texts).tolist() == expected  # pyarrow path
    assert iso_strings_ns(texts[:5]).tolist() == expected[:5]  # small-list python path
    # Anything outside the plain form or range is left to the per-value path (None).
    for odd in (
        "2026-11-20T09:30:00",
        "2026-11-20 09:30:00Z",
        "2026-02-30T09:30:00Z",
        "2026-11-20T09:30:00Z\n",
        "1500-01-01T00:00:00Z",
        None,
        1795167000,
    ):
        assert iso_strings_ns([odd]) is None, odd
        assert iso_strings_ns(texts + [odd]) is None, odd


@pytest.mark.parametrize("windows,kept", [((7, 30, 90), 30), ((14, 60), 14), ((45, 90), 45)])
def test_the_detail_columns_are_the_counts_per_channel_and_over_other_windows(windows, kept):
    from features.feature import DETAIL, NUMBER
    from features.touchpoints import touchpoint_features, window_label

    config = FeatureConfig(windows_days=windows, first_days=21)
    kinds = {f.name: f.kind for f in touchpoint_features(config)}
    detail = {name for name, kind in kinds.items() if kind == DETAIL}
    every = [*windows, None]
    expected = {f"{ch}_touches_{window_label(w)}" for ch in CHANNELS for w in every}
    for w in every:
        if w not in (kept, None):
            expected |= {f"touches_{window_label(w)}"}
            expected |= {f"{act}_count_{window_label(w)}" for act in ACTIVITIES}
    assert detail == expected
    compact = {f"touches_{window_label(kept)}", "touches_all", "touches_first21d",
               "demo_request_count_all", "days_since_last_touch", "engagement_score"}  # fmt: skip
    assert {kinds[name] for name in compact} == {NUMBER}
