"""`leadscore train --engine spark`: examples counted on Spark (the pandas path's count), then a
seeded sample of leads within the row caps trains and registers a model."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import FeatureConfig
from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.policy.rules import Policy
from features.snapshots import build_snapshots
from leadscore.cli import app as cli
from training.data import data_now
from training.train import RunConfig, TrainingConfig

pytestmark = pytest.mark.slow


def test_train_on_spark_samples_leads_within_the_caps_and_registers(spark, tmp_path, monkeypatch):
    from features.data.demo import create_demo_data

    create_demo_data(tmp_path / "demo", 1500, seed=7, formats=("parquet",))
    (tmp_path / "config.yaml").write_text(
        "leads: demo/leads.parquet\ntouchpoints: demo/touchpoints.parquet\n"
        "outcomes: demo/outcomes.parquet\ntraining:\n  search: none\n  cv_folds: 1\n"
        "  splines: false\n  max_training_rows: 1000\n  max_holdout_rows: 1000\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = load_lead_data(DataConfig.from_directory(tmp_path / "demo"))
    snapshots, _ = build_snapshots(data.leads, data.outcomes, FeatureConfig(), data_now(data))
    assert len(snapshots) > 2000  # more than the caps: the sample must be taken

    result = CliRunner().invoke(
        cli, ["train", "--engine", "spark", "--config", "config.yaml", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert f"Spark: {len(snapshots):,} examples from 1,500 leads; trained on a seeded" in (
        " ".join(result.output.split())
    )
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["version"] == "1"
    # the holdout (a fifth of the examples) comes from the sample: about half of the leads
    assert summary["metrics"]["leads"] < 0.2 * len(snapshots) * 0.75


def test_train_on_spark_refuses_the_database_source(spark):
    result = CliRunner().invoke(
        cli, ["train", "--engine", "spark", "--from-database", "sqlite:///x.db"]
    )
    assert result.exit_code == 2
    assert "--engine spark reads Parquet files: leave out --from-database" in result.output


FALL_BACK = pd.Timestamp("2026-10-25 00:30", tz="UTC")  # 02:30 in Berlin, summer time
HOUR, DAY = pd.Timedelta(hours=1), pd.Timedelta(days=1)


@pytest.fixture
def berlin_process():
    """This process on Berlin time (TZ), as a job on a machine in Berlin: Python's local time
    zone, which PySpark's `collect` gives timestamps in; the session zone stays UTC."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def _write_leads(folder, created, closed, touched, **more) -> None:
    """Leads (with a date attribute), outcomes and touchpoints as Parquet files in `folder`."""
    folder.mkdir(exist_ok=True)
    ids = list(created)
    pd.DataFrame({
        "lead_id": ids,
        "created_at": list(created.values()),
        "industry": [("Software", "Retail")[i % 2] for i in range(len(ids))],
        **more,
    }).to_parquet(folder / "leads.parquet")  # fmt: skip
    pd.DataFrame(
        [(lead, moment, won) for lead, (moment, won) in closed.items()],
        columns=["lead_id", "closed_at", "won"],
    ).to_parquet(folder / "outcomes.parquet")
    pd.DataFrame(
        [(lead, moment, "web", "page_view") for lead, moment in touched],
        columns=["lead_id", "occurred_at", "channel", "activity"],
    ).to_parquet(folder / "touchpoints.parquet")


def test_the_default_now_is_the_latest_moment_on_a_machine_in_another_time_zone(
    spark, tmp_path, berlin_process
):
    """Without `training.now`, Spark counts the examples at the latest moment in any table,
    the files path's `now`: on a Berlin machine too, where a timestamp collected from Spark is
    a Berlin local time (00:30 UTC came back as 02:30, and counted as 02:30 UTC)."""
    from training.spark import latest_moment, sample_leads

    iso = "%Y-%m-%dT%H:%M:%SZ"
    created = {
        "open": FALL_BACK - 91 * DAY + HOUR,  # the 1-day snapshot's horizon ends at 01:30
        "over": FALL_BACK - 91 * DAY - HOUR,  # ... at 23:30 the evening before: a negative
        "won": FALL_BACK - 10 * DAY,
        **{f"L{i}": FALL_BACK - (20 + 5 * i) * DAY for i in range(8)},
    }
    closed = {"won": (FALL_BACK, True), **{f"L{i}": (FALL_BACK - i * DAY, i % 2 == 0) for i in range(8)}}  # fmt: skip
    touched = [(lead, moment + HOUR) for lead, moment in created.items()]
    _write_leads(
        tmp_path,
        {lead: moment.strftime(iso) for lead, moment in created.items()},
        {lead: (moment.strftime(iso), won) for lead, (moment, won) in closed.items()},
        [(lead, moment.strftime(iso)) for lead, moment in touched],
    )
    config = RunConfig(
        DataConfig.from_directory(tmp_path), FeatureConfig(), TrainingConfig(), Policy()
    )
    data = load_lead_data(config.data)
    now = data_now(data)
    snapshots, _ = build_snapshots(data.leads, data.outcomes, FeatureConfig(), now)
    assert now == FALL_BACK and time.localtime(FALL_BACK.timestamp()).tm_hour == 2  # Berlin
    # at 01:30 or later the open lead's 1-day snapshot would be a negative: one example more
    later, _ = build_snapshots(data.leads, data.outcomes, FeatureConfig(), now + 2 * HOUR)
    assert len(later) == len(snapshots) + 1

    sample, leads, touchpoints, outcomes = sample_leads(spark, config, seed=1)
    assert sample.examples == len(snapshots)
    assert latest_moment(leads, touchpoints, outcomes) == FALL_BACK


@pytest.mark.parametrize("zone, session_zone", [("Europe/Berlin", "UTC"), (None, "Europe/Berlin")])
def test_the_sample_trains_on_the_moments_spark_read(spark, tmp_path, zone, session_zone):
    """The sample Spark brings to this machine is loaded with the moments Spark read, the files
    path's: whatever the config's `timezone` (the local files' naive times were read in it, an
    hour or two off where it is not UTC) and the session's zone (it gave its local times)."""
    from features.spark import read_lead_tables
    from training.spark import write_sample

    wall = "%Y-%m-%dT%H:%M:%S"  # local times without a zone, in the config's zone
    created = {f"L{i:02}": FALL_BACK - (5 * i + 1) * DAY + (i % 4) * HOUR for i in range(24)}
    created["L00"] = FALL_BACK + 2 * HOUR  # 02:30 when the config's zone is Berlin: two moments
    closed = {lead: (moment + 3 * DAY + HOUR, i % 3 == 0) for i, (lead, moment) in enumerate(created.items())}  # fmt: skip
    touched = [(lead, moment + k * HOUR) for lead, moment in created.items() for k in (0, 1, 2)]
    renewal = [moment + 300 * DAY + HOUR for moment in created.values()]
    _write_leads(
        tmp_path / "crm",
        {lead: moment.strftime(wall) for lead, moment in created.items()},
        {lead: (moment.strftime(wall), won) for lead, (moment, won) in closed.items()},
        [(lead, moment.strftime(wall)) for lead, moment in touched],
        renewal=pd.to_datetime(renewal).tz_localize(None).as_unit("us"),  # zoneless
    )
    config = DataConfig.from_directory(tmp_path / "crm", timezone=zone)
    files = load_lead_data(config)
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", session_zone)
    try:
        (tmp_path / "sample").mkdir()
        local = write_sample(config, *read_lead_tables(spark, config), tmp_path / "sample")
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)
    sample = load_lead_data(local)
    assert str(files.leads["renewal"].dtype) == "datetime64[ns, UTC]"  # a date attribute

    def ordered(frame, *keys):
        return frame.sort_values(list(keys), ignore_index=True)

    for table, keys, moments in (("leads", ["lead_id"], ["created_at", "renewal"]),
                                 ("touchpoints", ["lead_id", "occurred_at"], ["occurred_at"]),
                                 ("outcomes", ["lead_id"], ["closed_at"])):  # fmt: skip
        want, got = ordered(getattr(files, table), *keys), ordered(getattr(sample, table), *keys)
        assert got["lead_id"].tolist() == want["lead_id"].tolist(), table
        for column in moments:
            assert got[column].astype(str).tolist() == want[column].astype(str).tolist(), column
    # the files path's moments: Berlin's 02:30 of the hour the clocks go back is no moment
    in_berlin = zone == "Europe/Berlin"
    assert ("L00" not in set(files.leads["lead_id"])) == in_berlin
    first = files.leads.set_index("lead_id")["created_at"]["L01"]
    assert first == created["L01"] - (2 * HOUR if in_berlin else pd.Timedelta(0))
