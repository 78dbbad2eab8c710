"""Attribute encoding: normalised categories, rare and unseen values, numbers, yes/no, dates, titles."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from features.attributes import (
    DEPARTMENTS,
    MONTHS_CAP,
    SENIORITY_LEVELS,
    AttributeEncoder,
    department_of,
    seniority_of,
)
from features.data.values import normalise_category, to_number, to_yes_no
from features.feature import CALENDAR, NUMBER


def encode(values, rare_min_count=1, kind="categorical", name="industry", **kwargs):
    frame = pd.DataFrame({"lead_id": [str(i) for i in range(len(values))], name: values})
    encoder = AttributeEncoder(rare_min_count=rare_min_count, **kwargs).fit(frame, {name: kind})
    return encoder, encoder.transform(frame)


@pytest.mark.parametrize(
    "placeholder",
    [
        "Select",
        " select ",
        "N/A",
        "none",
        "",
        "  ",
        "NULL",
        "-- Select --",
        "Please select",
        None,
        float("nan"),
    ],
)
def test_placeholders_mean_missing(placeholder):
    assert normalise_category(placeholder) is None


def test_case_and_white_space_do_not_make_new_categories():
    encoder, x = encode(["Software", " software", "SOFTWARE  ", "Retail", "Select", None])
    assert encoder.columns_[0]["categories"] == ["software", "retail"]
    assert encoder.columns_[0]["labels"] == ["Software", "Retail"]
    assert x[:, 0].tolist()[:4] == [0, 0, 0, 1]
    assert np.isnan(x[4:, 0]).all()


def test_rare_and_unseen_categories_share_the_other_code():
    encoder, x = encode(["a"] * 3 + ["b"] * 2 + ["c"], rare_min_count=2)
    other = 2.0
    assert encoder.columns_[0]["categories"] == ["a", "b"]
    assert x[-1, 0] == other
    unseen = encoder.transform(pd.DataFrame({"industry": ["never seen", "B"]}))
    assert unseen[:, 0].tolist() == [other, 1.0]
    assert encoder.transform_record({"industry": "never seen"})[0] == other


def test_category_cap_keeps_the_most_frequent():
    encoder, _ = encode(["x"] * 5 + ["y"] * 4 + ["z"] * 3, max_categories=2)
    assert encoder.columns_[0]["categories"] == ["x", "y"]


def test_numbers_and_yes_no_values_are_read_leniently():
    assert [to_number(v) for v in ("1,200", " 3.5 ", 7, True)] == [1200.0, 3.5, 7.0, 1.0]
    assert all(math.isnan(to_number(v)) for v in ("many", "N/A", None, ""))
    assert [to_yes_no(v) for v in ("Yes", "n", True, 0, "1")] == [1.0, 0.0, 1.0, 0.0, 1.0]
    assert all(math.isnan(to_yes_no(v)) for v in ("maybe", None, 2))
    _, x = encode(["10", "abc", None], kind="numeric", name="employees")
    assert x[0, 0] == 10 and np.isnan(x[1:, 0]).all()


def test_nullable_dtypes_from_the_contract_keep_missing_values_missing():
    _, x = encode(pd.array([True, None, False], dtype="boolean"), kind="boolean", name="opted_in")
    assert x[[0, 2], 0].tolist() == [1.0, 0.0] and np.isnan(x[1, 0])
    _, x = encode(pd.array([5, None, 7], dtype="Int64"), kind="numeric", name="employees")
    assert x[[0, 2], 0].tolist() == [5.0, 7.0] and np.isnan(x[1, 0])


def test_datetimes_expand_to_day_of_week_hour_and_month_in_utc():
    moments = pd.to_datetime(["2024-03-05T14:30:00+02:00", None], utc=True)  # a Tuesday
    encoder, x = encode(moments, kind="datetime", name="last_visit")
    assert encoder.feature_names_out_ == ["last_visit__day_of_week", "last_visit__hour",
                                          "last_visit__month"]  # fmt: skip
    assert x[0].tolist() == [1.0, 12.0, 3.0]
    assert np.isnan(x[1]).all()
    record = encoder.transform_record({"last_visit": datetime(2024, 3, 5, 12, 30, tzinfo=UTC)})
    assert record.tolist() == [1.0, 12.0, 3.0]


def test_calendar_parts_are_read_on_the_clocks_of_the_data_zone_on_every_path():
    # Local dates in Berlin are 22:00 or 23:00 UTC the evening before: read in UTC, a renewal on
    # Monday 1 July was "a Sunday, 22:00-22:59 UTC, in June". On Berlin's clocks it is itself.
    berlin = pd.Series(pd.to_datetime(["2024-07-01", "2024-12-02", "2025-03-31"]))
    berlin = berlin.dt.tz_localize("Europe/Berlin").dt.tz_convert("UTC")  # as files load them
    frame = pd.DataFrame({
        "lead_id": ["a", "b", "c"],
        # 09:30 in Berlin; 09:30 UTC on 31 December is already 1 January there
        "created_at": pd.to_datetime(["2024-06-03T07:30Z", "2024-11-18T08:30Z",
                                      "2024-12-31T23:30Z"], utc=True),
        "renewal": berlin,
    })  # fmt: skip
    encoder = AttributeEncoder().fit(frame, {"renewal": "datetime"}, "Europe/Berlin")
    names = encoder.feature_names_out_
    x = encoder.transform(frame)
    column = {name: x[:, names.index(name)].tolist() for name in names}
    assert column["renewal__day_of_week"] == [0.0, 0.0, 0.0]  # every one a Monday
    assert column["renewal__month"] == [7.0, 12.0, 3.0]
    assert column["created_at__hour"] == [9.0, 9.0, 0.0]
    assert column["created_at__month"] == [6.0, 11.0, 1.0]
    # calendar months on Berlin's calendar too: created January 2025, renewal March 2025
    assert column["renewal__months_from_created"] == [1.0, 1.0, 2.0]
    # a local date is a date there: said without an hour; the hour's words name the zone
    spec = next(c for c in encoder.columns_ if c["column"] == "renewal")
    assert spec["zone"] == "Europe/Berlin" and spec["dates_only"] is True
    renewal = next(f for f in encoder.features_ if f.name == "renewal__day_of_week").fact
    assert renewal.describe(x[0, :5].tolist()).startswith("Renewal on a Monday, in July")
    hour = next(f for f in encoder.features_ if f.name == "created_at__hour")
    assert hour.unit == "hour of day, Europe/Berlin"
    assert hour.describe(9.0) == "Created at 09:00-09:59 Europe/Berlin"
    # the API's records (ISO text with any offset, datetimes) and a saved encoder read the same
    records = [{"renewal": v.isoformat()} for v in frame["renewal"]]
    created = [v.to_pydatetime() for v in frame["created_at"]]
    np.testing.assert_array_equal(encoder.transform_records(records, created), x)
    for i, record in enumerate(records):
        np.testing.assert_array_equal(encoder.transform_record(record, created[i]), x[i])
    again = AttributeEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    np.testing.assert_array_equal(again.transform(frame), x)
    # a value without an offset is a local time there, as the files were read: the same numbers
    # from "2024-07-01" (an API attribute), a naive datetime and a naive frame column
    local = ["2024-07-01", "2024-12-02", "2025-03-31"]
    naive = [{"renewal": v} for v in local]
    np.testing.assert_array_equal(encoder.transform_records(naive, created), x)
    np.testing.assert_array_equal(
        encoder.transform_record({"renewal": datetime(2024, 7, 1)}, created[0]), x[0]
    )
    np.testing.assert_array_equal(encoder.transform(frame.assign(renewal=pd.to_datetime(local))), x)
    # without a zone (and for models saved before: no "zone" in the spec) UTC, as before
    utc = AttributeEncoder().fit(frame, {"renewal": "datetime"})
    assert "zone" not in next(c for c in utc.columns_ if c["column"] == "renewal")
    assert utc.transform(frame)[:, names.index("renewal__day_of_week")].tolist() == [6.0] * 3


@pytest.mark.parametrize(
    "zone, hour",
    [
        ("utc", 7.0),
        ("Etc/UTC", 7.0),
        ("+02:00", 9.0),
        ("UTC+02:00", 9.0),
        ("dateutil/Europe/Berlin", 9.0),
        ("Africa/Sao_Tome", 7.0),
    ],
)
def test_every_zone_name_the_data_config_takes_is_a_clock(zone, hour):
    # the files are read with pandas, which takes these spellings; UTC in any of them keeps the
    # spec as models without a zone have it
    frame = pd.DataFrame({"lead_id": ["a"], "created_at": pd.to_datetime(["2024-06-03T07:30Z"])})
    encoder = AttributeEncoder().fit(frame, {}, zone)
    (spec,) = encoder.columns_
    # a zone at UTC's offset today but not always (Sao Tome: +01 in 2018) stays a zone
    assert ("zone" in spec) is (hour != 7.0 or zone == "Africa/Sao_Tome")
    x = encoder.transform(frame)
    assert x[0, encoder.feature_names_out_.index("created_at__hour")] == hour
    again = AttributeEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    np.testing.assert_array_equal(again.transform_records([{}], [frame["created_at"][0]]), x)


@pytest.mark.parametrize("zone, repeated, skipped", [
    ("Europe/Berlin", "2024-10-27T02:30:00", "2024-03-31T02:30:00"),
    ("America/New_York", "2024-11-03T01:30:00", "2024-03-10T02:30:00"),
])  # fmt: skip
def test_a_local_time_the_clocks_repeat_or_skip_reads_alike_on_every_path(zone, repeated, skipped):
    # without an offset: a time the clocks repeat is no moment, one they skip is the moment they
    # jump, as the files path reads them (`readers.in_zone`), on the frame and record paths alike
    from features.data.readers import in_zone

    frame = pd.DataFrame({
        "lead_id": ["a", "b"],
        "created_at": pd.to_datetime(["2024-01-10T12:00Z", "2024-01-10T12:00Z"], utc=True),
        "renewal": [repeated, skipped],
    })  # fmt: skip
    encoder = AttributeEncoder().fit(frame, {"renewal": "datetime"}, zone)
    files = frame.assign(renewal=in_zone(pd.to_datetime(frame["renewal"]), zone))
    x = encoder.transform(files)
    assert np.isnan(x[0, :5]).all() and not np.isnan(x[1, :5]).any()
    created = list(frame["created_at"])
    records = [{"renewal": v} for v in frame["renewal"]]
    np.testing.assert_array_equal(encoder.transform_records(records, created), x)
    for i, record in enumerate(records):
        np.testing.assert_array_equal(encoder.transform_record(record, created[i]), x[i])
    naive = frame.assign(renewal=pd.to_datetime(frame["renewal"]))
    np.testing.assert_array_equal(encoder.transform(naive), x)


def test_created_at_is_expanded_and_lead_id_is_never_a_feature():
    frame = pd.DataFrame({"lead_id": ["a", "b"], "created_at": pd.to_datetime(
        ["2024-01-01T09:00Z", "2024-01-02T10:00Z"]), "size": [1.0, 2.0]})  # fmt: skip
    encoder = AttributeEncoder().fit(frame, {"lead_id": "categorical", "size": "numeric"})
    assert encoder.feature_names_out_ == ["size", "created_at__day_of_week", "created_at__hour",
                                          "created_at__month"]  # fmt: skip


def test_a_date_is_also_read_as_days_after_creation():
    frame = pd.DataFrame({
        "lead_id": ["a", "b", "c"],
        "created_at": pd.to_datetime(["2024-01-01T00:00Z", "2024-01-02T12:00Z", None], utc=True),
        "renewal": ["2024-03-01T00:00:00Z", "2023-12-31T12:00:00+00:00", "2024-02-01"],
    })  # fmt: skip
    encoder = AttributeEncoder().fit(frame, {"renewal": "datetime"})
    names = encoder.feature_names_out_
    assert names[:4] == ["renewal__day_of_week", "renewal__hour", "renewal__month",
                         "renewal__days_from_created"]  # fmt: skip
    assert "created_at__days_from_created" not in names
    assert not encoder.categorical_mask_.any()
    x = encoder.transform(frame)
    days = x[:, names.index("renewal__days_from_created")]
    assert days[:2].tolist() == [60.0, -2.0] and math.isnan(days[2])  # no creation date: unknown
    records = [{"renewal": v} for v in frame["renewal"]]
    created = list(frame["created_at"])
    np.testing.assert_array_equal(encoder.transform_records(records, created), x)
    for i, record in enumerate(records):
        np.testing.assert_array_equal(encoder.transform_record(record, created[i]), x[i])
    assert "60 days after the lead was created" in encoder.features_[3].describe(60.0)


def test_a_date_is_also_read_as_calendar_months_after_creation_a_calendar_part():
    # a renewal "this quarter" is a window of calendar months: 31 Jan -> 1 Feb is one month,
    # 1 Jan -> 31 Jan none; beyond MONTHS_CAP either way reads as the cap
    frame = pd.DataFrame({
        "lead_id": ["a", "b", "c", "d", "e"],
        "created_at": pd.to_datetime(["2024-01-31T23:00Z", "2024-01-01T00:00Z", "2024-01-02T12:00Z",
                                      "2024-06-15T00:00Z", None], utc=True),
        "renewal": ["2024-02-01T00:00:00Z", "2024-01-31T23:59:00Z", "2023-12-31T12:00:00+00:00",
                    "2031-01-01", "2024-02-01"],
    })  # fmt: skip
    encoder = AttributeEncoder().fit(frame, {"renewal": "datetime"})
    names = encoder.feature_names_out_
    assert names[:5] == ["renewal__day_of_week", "renewal__hour", "renewal__month",
                         "renewal__days_from_created", "renewal__months_from_created"]  # fmt: skip
    kinds = {f.name: f.kind for f in encoder.features_}
    assert [kinds[n] for n in names[:5]] == [CALENDAR, CALENDAR, CALENDAR, NUMBER, CALENDAR]
    assert kinds["created_at__month"] == CALENDAR
    x = encoder.transform(frame)
    months = x[:, names.index("renewal__months_from_created")]
    assert months[:4].tolist() == [1.0, 0.0, -1.0, float(MONTHS_CAP)] and math.isnan(months[4])
    # the three paths read the same months, from text and from timestamps
    records = [{"renewal": v} for v in frame["renewal"]]
    created = list(frame["created_at"])
    np.testing.assert_array_equal(encoder.transform_records(records, created), x)
    for i, record in enumerate(records):
        np.testing.assert_array_equal(encoder.transform_record(record, created[i]), x[i])
    as_timestamps = frame.assign(renewal=pd.to_datetime(frame["renewal"], utc=True, format="mixed"))
    np.testing.assert_array_equal(encoder.transform(as_timestamps), x)
    words = encoder.features_[4].describe
    assert words(2.0) == "Renewal: 2 calendar months after the lead was created"
    assert words(-1.0) == "Renewal: 1 calendar month before the lead was created"
    assert words(0.0) == "Renewal: in the month the lead was created"
    assert words(float(MONTHS_CAP)) == (
        f"Renewal: {MONTHS_CAP}+ calendar months after the lead was created"
    )


def test_a_model_saved_before_months_after_creation_keeps_its_features():
    frame = pd.DataFrame({
        "lead_id": ["a"], "created_at": pd.to_datetime(["2024-01-01T00:00Z"], utc=True),
        "renewal": ["2024-03-01T00:00:00Z"],
    })  # fmt: skip
    state = AttributeEncoder().fit(frame, {"renewal": "datetime"}).to_dict()
    for spec in state["columns"]:
        spec.pop("months_from_created", None)
    before = AttributeEncoder.from_dict(state)
    now = AttributeEncoder.from_dict({**state, "columns": [
        {**spec, "months_from_created": True} if spec["column"] == "renewal" else spec
        for spec in state["columns"]]})  # fmt: skip
    names = now.feature_names_out_
    months = names.index("renewal__months_from_created")
    assert before.feature_names_out_ == names[:months] + names[months + 1 :]
    assert "renewal__days_from_created" in before.feature_names_out_
    np.testing.assert_array_equal(
        before.transform(frame), np.delete(now.transform(frame), months, axis=1)
    )
    record = before.transform_record({"renewal": "2024-03-01"}, frame["created_at"][0])
    np.testing.assert_array_equal(record, before.transform(frame)[0])


def test_a_datetime64_value_reads_as_the_same_moment_on_every_path():
    # a frame column of objects can hold numpy datetime64 values: the records paths read them too
    moment = np.datetime64("2024-02-01T10:00")
    frame = pd.DataFrame({
        "lead_id": ["a", "b"],
        "created_at": pd.to_datetime(["2024-01-15T00:00Z", "2024-01-15T00:00Z"], utc=True),
        "renewal": pd.Series([moment, pd.Timestamp("2024-02-01T10:00")], dtype=object),
    })  # fmt: skip
    encoder = AttributeEncoder().fit(frame, {"renewal": "datetime"})
    x = encoder.transform(frame)
    records = [{"renewal": v} for v in frame["renewal"]]
    created = list(frame["created_at"])
    np.testing.assert_array_equal(encoder.transform_records(records, created), x)
    assert x[0].tolist() == x[1].tolist()
    assert x[0, :5].tolist() == [3.0, 10.0, 2.0, 17 + 10 / 24, 1.0]


@pytest.mark.parametrize(
    ("title", "seniority", "department"),
    [
        ("Chief Executive Officer", "c_level", "executive"),
        ("CFO", "c_level", "finance"),
        ("Co-Founder & CTO", "c_level", "engineering"),
        ("VP of Sales", "vp", "sales"),
        ("Vice President, Marketing", "vp", "marketing"),
        ("Head of IT", "director", "it"),
        ("Director, Customer Success", "director", "customer_success"),
        ("Marketing Manager", "manager", "marketing"),
        ("HR Team Lead", "manager", "hr"),
        ("Software Engineer", "individual_contributor", "engineering"),
        ("Accountant", "individual_contributor", "finance"),
        ("Astronaut", "individual_contributor", "other"),
    ],
)
def test_job_titles_map_to_seniority_and_department(title, seniority, department):
    assert SENIORITY_LEVELS[seniority_of(title)] == seniority
    assert DEPARTMENTS[department_of(title)] == department


def test_title_columns_are_detected_by_name_and_get_two_extra_features():
    encoder, x = encode(["VP Sales", "Select", "Engineer"], name="Job Title")
    assert encoder.feature_names_out_ == ["Job Title", "Job Title__seniority",
                                          "Job Title__department"]  # fmt: skip
    assert encoder.categorical_mask_.tolist() == [True, True, True]
    assert x[0, 1:].tolist() == [SENIORITY_LEVELS.index("vp"), DEPARTMENTS.index("sales")]
    assert np.isnan(x[1, 1:]).all()  # a placeholder title is no title
    other, _ = encode(["VP Sales"], name="industry")
    assert other.feature_names_out_ == ["industry"]


def test_errors_name_the_column_and_the_fix():
    frame = pd.DataFrame({"lead_id": ["a"], "industry": ["x"]})
    with pytest.raises(ValueError, match=r"unknown types \{'industry': 'text'\}; use one of "
                       r"categorical, numeric, boolean, datetime"):  # fmt: skip
        AttributeEncoder().fit(frame, {"industry": "text"})
    with pytest.raises(ValueError, match=r"names column\(s\) \['region'\] that the leads frame "
                       r"does not have"):  # fmt: skip
        AttributeEncoder().fit(frame, {"region": "categorical"})


def test_state_round_trips_through_json():
    encoder, x = encode(["Software", "retail", "Software", None], name="Job Title")
    restored = AttributeEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    frame = pd.DataFrame({"Job Title": ["Software", "retail", "Software", None]})
    np.testing.assert_array_equal(restored.transform(frame), x)
    assert restored.feature_names_out_ == encoder.feature_names_out_


def test_a_column_of_many_rare_values_also_gets_a_wide_code_for_target_encoding():
    from features.feature import WIDE

    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] * 2 + ["e"]
    encoder, x = encode(values, rare_min_count=5, max_categories=4, wide_min_count=3,
                        max_wide_categories=10)  # fmt: skip
    assert encoder.feature_names_out_ == ["industry", "industry__wide"]
    assert [f.kind for f in encoder.features_] == [1, WIDE]
    assert encoder.categorical_mask_.tolist() == [True, False]  # trees and one-hots: not a category
    # the one-hot's code keeps "a"; the wide code keeps every value seen 3 times, the rest "other"
    assert x[:, 0].tolist() == [0.0] * 5 + [1.0] * 9
    assert x[:, 1].tolist() == [0.0] * 5 + [1.0] * 3 + [2.0] * 3 + [3.0] * 3
    records = encoder.transform_records([{"industry": v} for v in ("C", "new", None)])
    assert records[:, 1].tolist()[:2] == [2.0, 3.0] and np.isnan(records[2]).all()
    np.testing.assert_array_equal(encoder.transform_record({"industry": "C"}), records[0])
    # one fact: a value the one-hot calls "other" is named when the wide code knows it
    fact = encoder.features_[0].fact
    assert fact is not None and encoder.features_[1].fact is fact
    assert fact.describe([1.0, 2.0]) == "Industry: c"
    assert fact.describe([1.0, 3.0]) == "Industry: other (rare or new value)"
    assert fact.describe([0.0, 0.0]) == "Industry: a"
    restored = AttributeEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    np.testing.assert_array_equal(restored.transform(pd.DataFrame({"industry": values})), x)


def test_no_wide_code_when_the_one_hot_keeps_every_value_or_none_is_asked_for():
    wide = {
        "rare_min_count": 5,
        "max_categories": 2,
        "wide_min_count": 3,
        "max_wide_categories": 10,
    }
    encoder, _ = encode(["a"] * 5 + ["b"] * 5 + ["c"] * 2 + ["d"], **wide)
    assert encoder.feature_names_out_ == ["industry"]  # "c" and "d" are too rare for it too
    encoder, _ = encode(["a"] * 5 + ["b"] * 3 + ["c"] * 3, **{**wide, "max_categories": 3})
    assert encoder.feature_names_out_ == ["industry"]  # no more values than the one-hot can keep
    encoder, _ = encode(["a"] * 5 + ["b"] * 3 + ["c"], rare_min_count=5, max_categories=2)
    assert encoder.feature_names_out_ == ["industry"]  # max_wide_categories=0


def test_a_job_title_keeps_its_seniority_and_department_words_beside_a_wide_code():
    titles = ["VP Sales"] * 4 + ["Engineer"] * 2 + ["Chief Marketing Officer"]
    encoder, x = encode(titles, rare_min_count=4, max_categories=2, name="title",
                        wide_min_count=2, max_wide_categories=10)  # fmt: skip
    assert encoder.feature_names_out_ == [
        "title",
        "title__wide",
        "title__seniority",
        "title__department",
    ]
    say = encoder.features_[0].fact.describe
    assert say(x[4]) == "Title: Engineer"  # rare for the one-hot, known to the wide code
    assert say(x[6]) == "Title: rare or new, reads as C-level, Marketing"
