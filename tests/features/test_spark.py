"""Spark's feature table and snapshots are the pandas path's, bit for bit (Spark local mode)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.config import FeatureConfig
from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.featurizer import LeadFeaturizer
from features.snapshots import attach_attributes, build_snapshots
from tests.features.test_featurizer import (
    BASE,
    MICROSECONDS_PER_DAY,
    frames_from_records,
    records_from,
    touch_strategy,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from features.data.demo import create_demo_data

    folder = tmp_path_factory.mktemp("spark-demo")
    create_demo_data(folder, 300, seed=11, formats=("parquet",))
    data = load_lead_data(DataConfig.from_directory(folder))
    return folder, data


def _table(X: np.ndarray, names, rows: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(X, columns=list(names))
    out.insert(0, "lead_id", rows["lead_id"].astype(str).to_numpy())
    out.insert(1, "as_of", pd.to_datetime(rows["as_of"], utc=True).dt.as_unit("ns").to_numpy())
    return out.sort_values(["lead_id", "as_of"], kind="stable").reset_index(drop=True)


def _from_spark(frame) -> pd.DataFrame:
    """A Spark table in pandas, its timestamps as UTC moments. They travel as microseconds since
    the epoch: `toPandas` gives the session zone's naive local times, one for two moments in the
    hour the clocks go back."""
    from pyspark.sql import functions as F

    stamps = [name for name, kind in frame.dtypes if kind == "timestamp"]
    out = frame.withColumns({c: F.unix_micros(c) for c in stamps}).toPandas()
    for column in stamps:
        micros = out[column].astype("Int64")
        out[column] = pd.to_datetime(micros, unit="us", utc=True).dt.as_unit("ns")
    out["lead_id"] = out["lead_id"].astype(str)
    order = [c for c in ("lead_id", "as_of") if c in out.columns]
    return out.sort_values(order, kind="stable").reset_index(drop=True)


def assert_same_table(spark_table: pd.DataFrame, pandas_table: pd.DataFrame) -> None:
    assert list(spark_table.columns) == list(pandas_table.columns)
    assert spark_table["lead_id"].tolist() == pandas_table["lead_id"].tolist()
    assert (spark_table["as_of"].to_numpy() == pandas_table["as_of"].to_numpy()).all()
    left = spark_table.drop(columns=["lead_id", "as_of"]).to_numpy(dtype=np.float64)
    right = pandas_table.drop(columns=["lead_id", "as_of"]).to_numpy(dtype=np.float64)
    # every bit: NaN where NaN, the same float64 everywhere else
    np.testing.assert_array_equal(left.view(np.int64), right.view(np.int64))


def pandas_expectation(data) -> tuple[pd.DataFrame, LeadFeaturizer, pd.DataFrame, Any]:
    """The files path's snapshots (at the last outcome), fitted featurizer, feature table and
    that moment."""
    now = data.outcomes["closed_at"].max()
    snapshots, _ = build_snapshots(data.leads, data.outcomes, FeatureConfig(), now)
    rows = attach_attributes(snapshots, data.leads)
    featurizer = LeadFeaturizer().fit(rows, data.attribute_types, data.touchpoints)
    expected = _table(
        featurizer.transform(rows, data.touchpoints), featurizer.feature_names_out_, rows
    )
    return snapshots, featurizer, expected, now


def assert_spark_as_pandas(spark, tables, data) -> pd.DataFrame:
    """Spark's snapshots and feature table of `tables` (leads, touchpoints, outcomes) are the
    files path's of `data`, in the session's time zone; the expected feature table."""
    from features.spark import feature_table, training_snapshots, with_attributes

    snapshots, featurizer, expected, now = pandas_expectation(data)
    leads, touchpoints, outcomes = tables
    spark_snapshots = training_snapshots(spark, leads, outcomes, now=now, buckets=3)
    got = _from_spark(spark_snapshots).sort_values(["lead_id", "as_of"]).reset_index(drop=True)
    want = snapshots.sort_values(["lead_id", "as_of"]).reset_index(drop=True)
    assert got["lead_id"].tolist() == want["lead_id"].tolist()
    assert (got["as_of"].to_numpy() == want["as_of"].dt.as_unit("ns").to_numpy()).all()
    assert (got["created_at"].to_numpy() == want["created_at"].dt.as_unit("ns").to_numpy()).all()
    assert got["label"].tolist() == want["label"].tolist()
    assert got["snapshot_age_days"].tolist() == want["snapshot_age_days"].tolist()
    table = feature_table(
        spark, with_attributes(spark_snapshots, leads), touchpoints, featurizer, buckets=3
    )
    assert_same_table(_from_spark(table), expected)
    return expected


def test_demo_snapshots_and_features_on_spark_equal_pandas(spark, demo):
    from features.spark import read_lead_tables

    folder, data = demo
    # the canonical frames handed to Spark, and the Parquet files read by Spark itself
    from_frames = [spark.createDataFrame(t) for t in (data.leads, data.touchpoints, data.outcomes)]
    from_files = read_lead_tables(spark, DataConfig.from_directory(folder))
    for tables in (from_frames, from_files):
        expected = assert_spark_as_pandas(spark, tables, data)
    assert len(expected) > 300 and expected["touches_all"].sum() > 0


spark_attributes = st.fixed_dictionaries({
    "industry": st.sampled_from(["Software", " software", "Retail", "mining", "Select", "N/A", None]),
    "Job Title": st.sampled_from(["VP Sales", "Chief Financial Officer", "Engineer", None, "CFO"]),
    "employees": st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
    "opted_in": st.sampled_from([True, False, None]),
    "last_visit": st.none(),
})  # fmt: skip
spark_lead = st.fixed_dictionaries({
    "attributes": spark_attributes,
    "as_of_offset": st.integers(0, 365 * MICROSECONDS_PER_DAY),
    "created_offset": st.one_of(st.none(), st.integers(-10 * MICROSECONDS_PER_DAY, 500 * MICROSECONDS_PER_DAY)),
    "touches": st.lists(touch_strategy, max_size=12),
})  # fmt: skip


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(spark_lead, min_size=1, max_size=25))
def test_generated_leads_get_the_same_features_on_spark(spark, leads):
    from features.spark import feature_table
    from tests.features.test_featurizer import ATTRIBUTE_TYPES, training_leads

    featurizer = LeadFeaturizer(FeatureConfig(rare_min_count=5)).fit(
        training_leads(),
        ATTRIBUTE_TYPES,
        touchpoints=pd.DataFrame(columns=["lead_id", "occurred_at", "channel", "activity"]),
    )
    records = records_from(leads)
    # the first lead at a second moment too: a lead's touchpoints serve several rows
    records.append(
        dict(
            records[0], lead_id=records[0]["lead_id"], as_of=records[0]["as_of"] - timedelta(days=3)
        )
    )
    frame, touchpoints = frames_from_records(records)
    frame["employees"] = frame["employees"].astype("float64")
    frame["opted_in"] = frame["opted_in"].astype("boolean")
    frame["last_visit"] = pd.to_datetime(frame["last_visit"], utc=True)
    expected = _table(
        featurizer.transform(frame, touchpoints), featurizer.feature_names_out_, frame
    )
    rows = spark.createDataFrame(frame)
    touches = spark.createDataFrame(touchpoints) if len(touchpoints) else None
    table = feature_table(spark, rows, touches, featurizer, buckets=2)
    assert_same_table(_from_spark(table), expected)
    assert BASE.tzinfo is not None


def test_a_missing_file_or_column_names_the_option_and_the_fix(spark, tmp_path, demo):
    from features.spark import SparkInputError, read_table

    with pytest.raises(SparkInputError) as missing:
        read_table(spark, tmp_path / "nowhere.parquet", "--leads", {"lead_id": "lead_id"})
    assert "--leads" in str(missing.value) and "nowhere.parquet" in str(missing.value)
    assert "Parquet file or folder that Spark can reach" in str(missing.value)
    folder, _ = demo
    with pytest.raises(SparkInputError) as mapped:
        read_table(spark, folder / "leads.parquet", "--leads", {"lead_id": "Lead Number"})
    assert "no column 'Lead Number'" in str(mapped.value)
    assert "fix the column mapping" in str(mapped.value)


def test_paths_keep_their_url_scheme():
    from pathlib import Path

    from features.spark import spark_path

    assert spark_path(Path("s3a://bucket/leads")) == "s3a://bucket/leads"
    assert spark_path("hdfs://namenode:8020/x") == "hdfs://namenode:8020/x"
    assert spark_path(Path("/data/leads.parquet")) == "/data/leads.parquet"
    assert spark_path("file:/tmp/leads") == "file:/tmp/leads"
    assert spark_path(Path("data/leads.parquet")) == str(Path.cwd() / "data/leads.parquet")


def test_without_java_spark_says_what_to_install(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("pyspark")
    code = (
        "from features.spark import SparkUnavailable, spark_session\n"
        "try:\n    spark_session('local[1]')\nexcept SparkUnavailable as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}  # a Java that is not there
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Spark cannot start" in done.stdout, done.stdout + done.stderr
    assert "apt-get install openjdk-17-jre-headless" in done.stdout
    assert "pip install 'leadscore[spark]'" in done.stdout


def test_each_bucket_is_one_whole_task_and_the_cogroup_shuffles_once(spark):
    from pyspark.sql import functions as F

    from features.spark import BUCKET, partition_keys, with_bucket

    leads = spark.createDataFrame(pd.DataFrame({"lead_id": [f"L{i}" for i in range(4000)]}))
    keys = partition_keys(spark, 8)
    assert len(set(keys)) == 8
    bucketed = with_bucket(leads, keys)
    per_task = (
        bucketed.groupBy(F.spark_partition_id().alias("task"))
        .agg(F.countDistinct(BUCKET).alias("buckets"), F.count("*").alias("leads"))
        .toPandas()
    )
    # 8 tasks, each with exactly one bucket (hashing the numbers 0..7 gives some tasks none)
    assert sorted(per_task["task"]) == list(range(8))
    assert per_task["buckets"].tolist() == [1] * 8
    assert per_task["leads"].sum() == 4000 and per_task["leads"].min() > 4000 / 8 * 0.8
    # a lead's bucket depends on its id only: the touchpoints' side meets it in the same task
    again = with_bucket(leads.select(F.col("lead_id")), keys).select("lead_id", BUCKET)
    assert bucketed.select("lead_id", BUCKET).exceptAll(again).count() == 0
    cogrouped = bucketed.groupBy(BUCKET).cogroup(with_bucket(leads, keys).groupBy(BUCKET))
    plan = cogrouped.applyInPandas(lambda a, b: a, bucketed.schema)
    explained = plan._jdf.queryExecution().executedPlan().toString()
    assert explained.count("Exchange hashpartitioning") == 2, explained


@pytest.mark.parametrize("written_as", ["text", "timestamps without a zone"])
def test_local_times_are_read_in_the_configured_zone_as_files_are(
    spark, demo, tmp_path, written_as
):
    """Moments written as local times without an offset (a CRM export: text, or Parquet
    timestamps without a zone) are read in the config's `timezone` by Spark as by the files
    path: the same snapshots and features."""
    from features.spark import read_lead_tables

    source, data = demo
    zone = "America/New_York"  # five hours off UTC in winter, four in summer
    for table, column in (("leads", "created_at"), ("touchpoints", "occurred_at"),
                          ("outcomes", "closed_at")):  # fmt: skip
        frame = pd.read_parquet(source / f"{table}.parquet")
        moments = pd.to_datetime(frame[column], utc=True).dt.tz_convert(zone)
        if written_as == "text":
            text = moments.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
            frame[column] = text.where(moments.notna(), None)
        else:
            frame[column] = moments.dt.tz_localize(None)
        frame.to_parquet(tmp_path / f"{table}.parquet")
    config = DataConfig.from_directory(tmp_path, timezone=zone)
    local = load_lead_data(config)
    # the files path reads them as the moments they were
    assert local.leads["created_at"].equals(data.leads["created_at"])
    assert local.touchpoints["occurred_at"].equals(data.touchpoints["occurred_at"])
    assert_spark_as_pandas(spark, read_lead_tables(spark, config), local)


def test_date_attributes_read_the_same_in_a_session_of_another_time_zone(spark, tmp_path):
    """A Spark session in another time zone hands pandas its timestamps as naive local times:
    a renewal date is read as the moment it is (weekday, hour, days and months after creation),
    as created_at is, the same features as the files path."""
    from features.data import demo

    demo.write(demo.generate(300, seed=11, shape="date_driven"), tmp_path, formats=("parquet",))
    data = load_lead_data(DataConfig.from_directory(tmp_path))
    assert str(data.leads["contract_renewal"].dtype) == "datetime64[ns, UTC]"
    tables = [spark.createDataFrame(t) for t in (data.leads, data.touchpoints, data.outcomes)]
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        expected = assert_spark_as_pandas(spark, tables, data)
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    assert expected["contract_renewal__months_from_created"].notna().sum() > 100


FALL_BACK = pd.Timestamp("2026-10-25 00:30", tz="UTC")  # 02:30 in Berlin, summer time
HOUR = pd.Timedelta(hours=1)  # FALL_BACK + HOUR: 02:30 in Berlin again, the clocks gone back


class _EveryFeatureMatters:
    """A model whose probability moves with every feature: an hour off anywhere shows."""

    def predict_proba(self, X):
        mix = np.nan_to_num(X, nan=-1.0) @ np.linspace(1.0, 2.0, X.shape[1])
        return 0.05 + 0.9 * np.abs(np.sin(mix))


def _fall_back_leads() -> Any:
    """Leads created, touched, closed and renewing in the hour Berlin's clocks go back, each
    moment both at 00:30-ish and at 01:30-ish UTC (the same Berlin time); and the pandas frames."""
    from types import SimpleNamespace

    day = pd.Timedelta(days=1)
    created = {
        "A0": FALL_BACK, "A1": FALL_BACK + HOUR,  # created in the hour
        # the 1-day snapshot in the hour: open at 00:45 and won at 01:30 (a positive, gone if
        # 01:30 were read as 00:30); closed at 00:30 before 01:15 (no snapshot, unless 00:30
        # were read as 01:30); open at 01:20 and never closed
        "B0": FALL_BACK - day + pd.Timedelta(minutes=15),
        "B1": FALL_BACK - day + pd.Timedelta(minutes=45),
        "B2": FALL_BACK - day + pd.Timedelta(minutes=50),
        **{f"C{i}": FALL_BACK - (i + 2) * 3 * day + i * HOUR for i in range(12)},
    }  # fmt: skip
    ids = list(created)
    leads = pd.DataFrame({
        "lead_id": ids,
        "created_at": pd.to_datetime(list(created.values()), utc=True),
        "renewal": pd.to_datetime(
            [FALL_BACK + (i % 3) * HOUR if i % 4 else None for i in range(len(ids))], utc=True
        ),
        "industry": [("Software", "Retail", "Mining")[i % 3] for i in range(len(ids))],
    })  # fmt: skip
    kinds = [("email", "email_open"), ("web", "page_view"), ("paid_search", "form_submit")]
    touches = (
        [
            (lead, FALL_BACK + k * HOUR / 2, channel, activity)  # 00:30, 01:00 and 01:30 UTC
            for n, lead in enumerate(ids)
            for k, (channel, activity) in enumerate(kinds[: 1 + n % 3])
        ]
        + [(lead, FALL_BACK - 2 * day, "web", "page_view") for lead in ids[::2]]
    )
    touchpoints = pd.DataFrame(touches, columns=["lead_id", "occurred_at", "channel", "activity"])
    touchpoints["occurred_at"] = pd.to_datetime(touchpoints["occurred_at"], utc=True)
    closed = {
        "A0": (FALL_BACK + 30 * day, True), "A1": (FALL_BACK + 10 * day, False),
        "B0": (FALL_BACK + HOUR, True), "B1": (FALL_BACK, False),
        **{f"C{i}": (FALL_BACK + (i % 2) * HOUR, i % 3 == 0) for i in range(12)},
        "C11": (pd.Timestamp("2027-03-01", tz="UTC"), True),  # the latest: `now`
    }  # fmt: skip
    outcomes = pd.DataFrame(
        [(lead, moment, won) for lead, (moment, won) in closed.items()],
        columns=["lead_id", "closed_at", "won"],
    )
    outcomes["closed_at"] = pd.to_datetime(outcomes["closed_at"], utc=True)
    attribute_types = {"renewal": "datetime", "industry": "categorical"}
    return SimpleNamespace(
        leads=leads, touchpoints=touchpoints, outcomes=outcomes, attribute_types=attribute_types
    )


def test_the_hour_the_clocks_go_back_reads_each_moment_once_in_a_berlin_session(spark):
    """In a Europe/Berlin session 00:30 and 01:30 UTC on 2026-10-25 are both 02:30 local time:
    leads created, touched, closed and renewing in that hour get the files path's snapshots
    (created_at and as_of the same moments), features and scores, bit for bit."""
    from features.model.scorer import LeadScorer
    from features.policy.applied import AppliedPolicy
    from features.policy.rules import Policy
    from features.spark import score_leads

    data = _fall_back_leads()
    _, featurizer, _, _ = pandas_expectation(data)
    scorer = LeadScorer(featurizer, _EveryFeatureMatters())
    policy = AppliedPolicy(Policy(), "test policy")
    # scored at moments in the hour too: a lead's as_of is one of its two readings
    leads = data.leads.assign(as_of=FALL_BACK + HOUR * (np.arange(len(data.leads)) % 2))
    want = scorer.score_frame(
        leads, data.touchpoints, explain=False, policy=policy.policy, policy_version=0
    ).sort_values("lead_id", ignore_index=True)
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Europe/Berlin")
    try:
        tables = [spark.createDataFrame(t) for t in (data.leads, data.touchpoints, data.outcomes)]
        expected = assert_spark_as_pandas(spark, tables, data)
        scored = score_leads(
            spark, spark.createDataFrame(leads), tables[1], scorer, policy, explain=False
        )
        got = scored.toPandas().sort_values("lead_id", ignore_index=True)
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    # the hour is in the data: snapshots at 00:45 and 01:20 UTC (B1 closed before its own)
    in_hour = expected["as_of"].between(FALL_BACK - HOUR / 2, FALL_BACK + HOUR)
    assert sorted(expected.loc[in_hour, "lead_id"]) == ["B0", "B2"]
    assert set(expected["renewal__hour"].dropna()) == {0, 1, 2}  # 00:30, 01:30, 02:30 UTC
    assert expected["touches_all"].sum() > 10
    assert got["lead_id"].tolist() == want["lead_id"].tolist() == sorted(data.leads["lead_id"])
    np.testing.assert_array_equal(
        got["probability"].to_numpy().view(np.int64), want["probability"].to_numpy().view(np.int64)
    )
    for column in ("score", "grade", "decision"):
        assert got[column].tolist() == want[column].tolist()
    assert want["probability"].nunique() == len(want)  # every lead its own probability


ZONELESS = [  # local times without a zone, as a CRM exports them
    "2026-10-25T00:30:00",  # in a Berlin session: 02:30, summer time
    "2026-10-25T01:30:00",  # in a Berlin session: 02:30 again, the clocks gone back
    "2026-10-25T02:30:00",  # in Berlin: two moments (the clocks go back from 03:00 to 02:00)
    "2026-03-29T02:30:00",  # in Berlin: none (the clocks jump from 02:00 to 03:00)
    "2026-07-01T12:00:00.123456",
    None,
]
WITH_ZONE = [
    "2026-10-25T02:30:00+02:00",
    "2026-10-25T02:30:00+01:00",
    "2026-10-25T00:30:00Z",
    "2026-03-29T02:30:00+0100",
    "2026-07-01T12:00:00.123456-04:00",
    None,
]


@pytest.mark.parametrize(
    "zone, session_zone",
    [(None, "Europe/Berlin"), ("Europe/Berlin", "UTC"), ("Europe/Berlin", "America/New_York")],
)
def test_zoneless_times_are_read_in_the_config_zone_whatever_the_session_zone(
    spark, tmp_path, zone, session_zone
):
    """Text without an offset and Parquet timestamps without a zone (a date attribute too) are
    local times in the config's `timezone` (UTC when unset) in any session zone, as the files
    path reads them: each moment once; in Berlin a time of the hour the clocks go back is two
    moments and is read as none (missing), and a time they skip as the moment they jump. Text
    with an offset and timestamps with a zone keep their moment."""
    from pyspark.sql import functions as F

    from features.data.readers import parse_timestamps
    from features.spark import read_table

    table = pd.DataFrame({
        "lead_id": [f"L{i}" for i in range(len(ZONELESS))],
        "created_at": ZONELESS,  # text
        "renewal": pd.to_datetime(pd.Series(ZONELESS), format="ISO8601").dt.as_unit("us"),
        "closed_at": WITH_ZONE,  # text
        "seen_at": pd.to_datetime(pd.Series(WITH_ZONE), format="ISO8601", utc=True).dt.as_unit("us"),
    })  # fmt: skip
    table.to_parquet(tmp_path / "leads.parquet")
    stamps = ["created_at", "renewal", "closed_at", "seen_at"]
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", session_zone)
    try:
        frame = read_table(
            spark, tmp_path / "leads.parquet", "--leads", {"lead_id": "lead_id"},
            ("created_at", "closed_at", "seen_at"), zone=zone,
        )  # fmt: skip
        kinds = dict(frame.dtypes)
        micros = frame.select("lead_id", *[F.unix_micros(c).alias(c) for c in stamps]).toPandas()
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    got = micros.sort_values("lead_id", ignore_index=True)
    moments = {
        c: pd.to_datetime(got[c].astype("Int64"), unit="us", utc=True).dt.as_unit("ns")
        for c in stamps
    }
    utc = pd.to_datetime(pd.Series(ZONELESS), format="ISO8601").dt.tz_localize("UTC")
    if zone is None:
        zoneless = utc  # UTC: every time its own moment, 00:30 and 01:30 too
    else:  # Berlin in summer time, two hours ahead; 02:30 on 25 October none, on 29 March 03:00
        behind = pd.to_timedelta([2, 2, None, None, 2, None], unit="h")
        zoneless = (utc - behind).where(utc.index != 3, pd.Timestamp("2026-03-29 01:00", tz="UTC"))
    with_zone = pd.Series(pd.to_datetime([
        "2026-10-25 00:30", "2026-10-25 01:30", "2026-10-25 00:30", "2026-03-29 01:30",
        "2026-07-01 16:00:00.123456", None,
    ], format="ISO8601", utc=True))  # fmt: skip
    for column, want in (("created_at", zoneless), ("renewal", zoneless),
                         ("closed_at", with_zone), ("seen_at", with_zone)):  # fmt: skip
        files_path, _, _ = parse_timestamps(table[column], timezone=zone)
        assert moments[column].astype(str).tolist() == want.dt.as_unit("ns").astype(str).tolist()
        assert moments[column].equals(files_path), column
        assert kinds[column] == "timestamp"
