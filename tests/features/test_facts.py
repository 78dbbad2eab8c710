"""Facts: which feature columns say the same thing about a lead, and how each fact reads once.

Declared beside the features (touchpoint windows of one count, a job title and what is read
from it, the parts of one date-time) or learned in fit (a column that another one decides, such
as a region of the country).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.attributes import AttributeEncoder
from features.config import FeatureConfig
from features.feature import FactColumns
from features.featurizer import LeadFeaturizer
from tests.features.test_featurizer import ATTRIBUTE_TYPES, FEATURIZER, fitted, training_leads


def fact(name: str) -> FactColumns:
    return next(f for f in FEATURIZER.facts_ if f.name == name)


def names(f: FactColumns) -> list[str]:
    return [FEATURIZER.feature_names_out_[c] for c in f.columns]


def test_the_windows_of_a_count_a_title_and_a_moment_are_one_fact_each():
    assert names(fact("demo_request_count")) == [
        "demo_request_count_7d", "demo_request_count_30d", "demo_request_count_90d",
        "demo_request_count_all",
    ]  # fmt: skip
    assert names(fact("touches")) == ["touches_7d", "touches_30d", "touches_90d", "touches_all"]
    # with the first days' counts (`first_days`, opt-in), they join their count's fact
    early = fitted(first_days=21)
    (demo,) = [f for f in early.facts_ if f.name == "demo_request_count"]
    assert [early.feature_names_out_[c] for c in demo.columns] == [
        "demo_request_count_7d", "demo_request_count_30d", "demo_request_count_90d",
        "demo_request_count_all", "demo_request_count_first21d",
    ]  # fmt: skip
    assert sorted(c for f in early.facts_ for c in f.columns) == list(
        range(len(early.feature_names_out_))
    )
    assert names(fact("email_touches"))[-1] == "email_touches_all"
    assert names(fact("unsubscribe_count"))[-1] == "unsubscribed"  # the flag read from the count
    assert names(fact("Job Title")) == [
        "Job Title",
        "Job Title__seniority",
        "Job Title__department",
    ]
    assert names(fact("created_at")) == [
        "created_at__day_of_week", "created_at__hour", "created_at__month"
    ]  # fmt: skip
    assert names(fact("days_since_last_touch")) == ["days_since_last_touch"]  # a fact of its own
    every_column = sorted(c for f in FEATURIZER.facts_ for c in f.columns)
    assert every_column == list(range(len(FEATURIZER.feature_names_out_)))
    assert fact("Job Title").blank_when_missing and fact("employees").blank_when_missing
    assert not fact("days_since_last_touch").blank_when_missing  # "No touchpoints yet" is a fact


@pytest.mark.parametrize(
    "counts, words",
    [
        ((0, 0, 0, 0), "No demo requests yet"),
        ((1, 1, 1, 1), "1 demo request in the last 7 days"),
        ((0, 1, 1, 1), "1 demo request in the last 30 days"),
        ((0, 2, 2, 2), "2 demo requests in the last 30 days"),
        ((1, 1, 3, 5), "5 demo requests, 1 in the last 7 days"),
        ((0, 0, 0, 2), "2 demo requests, none in the last 90 days"),
    ],
)
def test_a_count_is_worded_once_from_its_windows(counts, words):
    assert fact("demo_request_count").describe([float(c) for c in counts]) == words


def test_the_first_days_count_is_part_of_the_fact_not_of_its_words():
    # windows 7d, 30d, 90d, all, then the first 21 days: said once, from the windows
    assert fact("demo_request_count").describe([0.0, 0.0, 1.0, 1.0, 1.0]) == (
        "1 demo request in the last 90 days"
    )


def test_unsubscribes_read_from_the_count_not_the_flag():
    assert fact("unsubscribe_count").describe([0.0, 1.0, 1.0, 1.0, 1.0]) == (
        "1 unsubscribe in the last 30 days"
    )


def test_a_title_is_said_as_the_title_or_what_a_rare_one_reads_as():
    title = fact("Job Title")
    assert title.describe([0.0, 1.0, 3.0]) == "Job Title: VP Marketing"
    other = float(len(FEATURIZER.attributes_.columns_[1]["categories"]))  # rare or new title
    assert (
        title.describe([other, 2.0, 3.0]) == "Job Title: rare or new, reads as Director, Marketing"
    )
    assert title.describe([np.nan, np.nan, np.nan]) == "Job Title: not given"


def test_a_moment_is_said_once():
    assert fact("created_at").describe([0.0, 14.0, 3.0]) == (
        "Created on a Monday, 14:00-14:59 UTC, in March"
    )


def test_a_date_without_a_time_of_day_is_said_without_an_hour():
    # last_visit is a date (midnight UTC) in every training lead; created_at has times of day
    spec = next(c for c in FEATURIZER.attributes_.columns_ if c["column"] == "last_visit")
    assert spec.get("dates_only") is True
    assert fact("last_visit").describe([4.0, 0.0, 3.0, 12.0, 0.0]) == (
        "Last visit on a Friday, in March, 12 days after the lead was created "
        "(in the month the lead was created)"
    )
    created = next(c for c in FEATURIZER.attributes_.columns_ if c["column"] == "created_at")
    assert "dates_only" not in created
    # one value with a time of day in fit: the hour is said, as for models saved before
    leads = training_leads()
    leads.loc[3, "last_visit"] = leads.loc[3, "last_visit"] + pd.Timedelta(hours=9)
    empty = pd.DataFrame(columns=["lead_id", "occurred_at", "channel", "activity"])
    timed = LeadFeaturizer(FeatureConfig(rare_min_count=5)).fit(
        leads, ATTRIBUTE_TYPES, touchpoints=empty
    )
    (visit,) = [f for f in timed.facts_ if f.name == "last_visit"]
    assert visit.describe([4.0, 9.0, 3.0, 12.0, 0.0]).startswith(
        "Last visit on a Friday, 09:00-09:59 UTC, in March"
    )
    # and a saved featurizer (its JSON) says it the same way
    loaded = LeadFeaturizer.from_dict(json.loads(json.dumps(FEATURIZER.to_dict())))
    (saved,) = [f for f in loaded.facts_ if f.name == "last_visit"]
    assert saved.describe([4.0, 0.0, 3.0, 12.0, 0.0]).startswith("Last visit on a Friday, in March")


@pytest.mark.parametrize("days", [-1461, -0.5])
def test_a_lead_age_is_never_negative_in_words(days):
    text = FEATURIZER.describe("days_since_created", days)
    assert text == "Created after the moment it was scored (check its creation date)"


def _regions(n: int = 300) -> pd.DataFrame:
    countries = ["France", "Germany", "Spain", "Brazil", "Chile", "Japan"]
    region = {"France": "Europe", "Germany": "Europe", "Spain": "Europe", "Brazil": "LATAM",
              "Chile": "LATAM", "Japan": "APAC"}  # fmt: skip
    rng = np.random.default_rng(0)
    country = rng.choice(countries, n)
    return pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(n)],
        "country": country,
        "region": [region[c] for c in country],
        "industry": rng.choice(["Software", "Retail", "Mining"], n),
    })  # fmt: skip


def test_a_column_another_one_decides_is_the_same_fact_and_the_state_keeps_it():
    leads = _regions()
    types = {"country": "categorical", "region": "categorical", "industry": "categorical"}
    encoder = AttributeEncoder(rare_min_count=5).fit(leads, types)
    specs = {s["column"]: s for s in encoder.columns_}
    assert specs["region"]["fact_of"] == "country"  # six countries decide three regions
    assert "fact_of" not in specs["industry"] and "fact_of" not in specs["country"]
    restored = AttributeEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    featurizer = LeadFeaturizer().fit(leads, types)
    for state in (restored, featurizer.attributes_):
        assert {s["column"]: s.get("fact_of") for s in state.columns_}["region"] == "country"
    place = next(f for f in featurizer.facts_ if f.name == "country")
    assert [featurizer.feature_names_out_[c] for c in place.columns] == ["country", "region"]
    france = specs["country"]["categories"].index("france")
    assert place.describe([float(france), 0.0]) == "Country: France"
    europe = specs["region"]["categories"].index("europe")
    assert place.describe([np.nan, float(europe)]) == "Region: Europe"  # the country not given
    assert place.describe([np.nan, np.nan]) == "Country: not given"


def test_columns_that_only_lean_together_stay_apart():
    leads = _regions()
    leads["industry"] = np.where(leads["region"] == "Europe", "Software", leads["industry"])
    types = {"country": "categorical", "industry": "categorical"}
    encoder = AttributeEncoder(rare_min_count=5).fit(leads, types)
    assert all("fact_of" not in s for s in encoder.columns_)


def test_dates_are_told_from_times_by_every_value_in_any_zone():
    from features.attributes import _dates_only

    days = pd.date_range("2024-01-01", periods=400, freq="D")
    # dates read as local midnights: UTC 00:00, or New York's 05:00 / 04:00 (summer time)
    assert _dates_only(pd.Series(days.tz_localize("UTC")))
    new_york = pd.Series(days.tz_localize("America/New_York")).dt.tz_convert("UTC")
    assert set(new_york.dt.hour) == {4, 5} and _dates_only(new_york)
    # London's midnights are 00:00 and 23:00 UTC: one hour apart across midnight
    assert _dates_only(pd.Series(days.tz_localize("Europe/London")))
    # the same as text, and with gaps
    assert _dates_only(pd.Series([d.strftime("%Y-%m-%dT00:00:00Z") for d in days] + [None]))
    # one time of day anywhere in the column, even after 10,000 dates: not dates
    later = pd.Series(pd.date_range("2020-01-01", periods=12_000, freq="D", tz="UTC"))
    later.iloc[-1] += pd.Timedelta(hours=9, minutes=30)
    assert not _dates_only(later)
    # whole hours spread over the day are times, not dates
    assert not _dates_only(pd.Series(pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")))
    assert not _dates_only(pd.Series([None, None], dtype=object))
