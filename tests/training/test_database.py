"""Training from the service's database (SQLite and PostgreSQL): the same canonical frames as the
files, point in time by receipt, and the CLI's messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import FeatureConfig
from features.data.config import DataConfig
from features.data.loading import load_lead_data
from features.featurizer import LeadFeaturizer
from serving.capture.rows import touch_key
from serving.db import lead_touchpoints, make_engine, upgrade_database
from tests.serving.conftest import (  # noqa: F401 - the database fixtures, for both databases
    database_url,
    postgres_available,
    postgres_url,
    sqlite_url,
)
from tests.training.capture_support import capture_lead_data
from training.data import build_examples
from training.database import read_lead_data

NOW = pd.Timestamp("2024-12-31", tz="UTC")  # the demo data's export date
runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from features.data import demo

    out = tmp_path_factory.mktemp("capture-demo")
    demo.write(demo.generate(400, seed=11), out, formats=("parquet",))
    config = DataConfig(
        leads=out / "leads.parquet",
        touchpoints=out / "touchpoints.parquet",
        outcomes=out / "outcomes.parquet",
    )
    return load_lead_data(config)


@pytest.fixture
def engine(database_url):  # noqa: F811
    upgrade_database(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.sort_values(by, kind="stable").reset_index(drop=True)


def test_the_database_gives_the_files_canonical_frames(files, engine):
    capture_lead_data(engine, files)
    data = read_lead_data(engine, as_of=NOW)
    assert data.attribute_types == files.attribute_types
    assert data.report.ok, data.report.to_text()
    leads = _sorted(data.leads, ["lead_id"])[list(files.leads.columns)]
    pd.testing.assert_frame_equal(leads, _sorted(files.leads, ["lead_id"]))
    columns = list(files.touchpoints.columns)
    order = ["lead_id", "occurred_at", "channel", "activity"]
    pd.testing.assert_frame_equal(
        _sorted(data.touchpoints[columns], order), _sorted(files.touchpoints, order)
    )
    pd.testing.assert_frame_equal(
        _sorted(data.outcomes, ["lead_id"]), _sorted(files.outcomes, ["lead_id"])
    )


AT_1_7_30 = FeatureConfig(snapshot_ages_days=(1, 7, 30), snapshots_per_lead=None)  # every lead


def _features(data, lead_id: str) -> dict[float, np.ndarray]:
    """The lead's feature rows by snapshot age (fitted on the data itself)."""
    examples = build_examples(data, AT_1_7_30, NOW)
    featurizer = LeadFeaturizer(AT_1_7_30).fit(data.leads, data.attribute_types, data.touchpoints)
    mine = examples.frame[examples.frame["lead_id"] == lead_id]
    X = featurizer.transform(mine, data.touchpoints)
    return dict(zip(mine["snapshot_age_days"].tolist(), np.asarray(X, dtype=float), strict=True))


def _open_lead(files) -> tuple[str, pd.Timestamp]:
    """A lead created well before the export, with no outcome: every snapshot is there."""
    closed = set(files.outcomes["lead_id"])
    leads = files.leads[~files.leads["lead_id"].isin(closed)]
    lead = leads[leads["created_at"] < NOW - pd.Timedelta(days=200)].iloc[0]
    return lead["lead_id"], lead["created_at"]


def test_a_touch_received_after_a_snapshot_does_not_change_it(files, engine):
    lead_id, created = _open_lead(files)
    capture_lead_data(engine, files)
    before = _features(read_lead_data(engine, as_of=NOW), lead_id)

    occurred = (created + pd.Timedelta(days=3)).to_pydatetime()  # before the day-7 snapshot
    received = (created + pd.Timedelta(days=10)).to_pydatetime()  # after it
    late = {"lead_id": lead_id, "occurred_at": occurred, "channel": "direct",
            "activity": "demo_request", "campaign": None, "value": None,
            "received_at": received,
            "dedup_key": touch_key(occurred, "direct", "demo_request", None, None)}  # fmt: skip
    with engine.begin() as connection:
        connection.execute(lead_touchpoints.insert(), [late])
    after = _features(read_lead_data(engine, as_of=NOW), lead_id)

    assert sorted(before) == sorted(after) == [1.0, 7.0, 30.0]
    np.testing.assert_array_equal(after[1.0], before[1.0])
    np.testing.assert_array_equal(after[7.0], before[7.0])  # it happened on day 3: not seen
    assert not np.array_equal(after[30.0], before[30.0])  # received on day 10: counts from then

    # Had it arrived in time, the day-7 snapshot would have seen it (the check above can fail).
    with engine.begin() as connection:
        connection.execute(
            lead_touchpoints.update()
            .where(lead_touchpoints.c.dedup_key == late["dedup_key"])
            .values(received_at=occurred)
        )
    in_time = _features(read_lead_data(engine, as_of=NOW), lead_id)
    assert not np.array_equal(in_time[7.0], before[7.0])
    # ... and where both count it, it counts with its true moment (day 3), not its arrival
    np.testing.assert_array_equal(after[30.0], in_time[30.0])


def test_nothing_received_after_the_data_end_is_read(files, engine):
    capture_lead_data(engine, files, reported_at=datetime(2025, 3, 1, tzinfo=UTC))
    data = read_lead_data(engine, as_of=NOW)
    assert data.outcomes is not None and len(data.outcomes) == 0  # reported after NOW
    first = files.leads["created_at"].min().to_pydatetime()
    early = read_lead_data(engine, as_of=first + timedelta(days=30))
    assert early.leads["created_at"].max() <= first + timedelta(days=30)
    assert early.touchpoints["occurred_at"].max() <= first + timedelta(days=30)


def test_snapshots_get_the_attributes_known_at_their_moment(files, engine):
    from serving.capture.rows import attribute_key
    from serving.db import captured_leads, lead_attributes

    lead_id, created = _open_lead(files)
    capture_lead_data(engine, files)
    changed = (created + pd.Timedelta(days=2)).to_pydatetime()
    received = (created + pd.Timedelta(days=12)).to_pydatetime()  # after day 7, before day 30
    with engine.begin() as connection:
        connection.execute(lead_attributes.insert(), [{
            "lead_id": lead_id, "name": "industry", "value": "Aerospace", "changed_at": changed,
            "received_at": received, "dedup_key": attribute_key("industry", "Aerospace", changed),
        }])  # fmt: skip
        # the service first heard of the lead on day 3: no day-1 snapshot
        connection.execute(
            captured_leads.update()
            .where(captured_leads.c.lead_id == lead_id)
            .values(received_at=(created + pd.Timedelta(days=3)).to_pydatetime())
        )
    data = read_lead_data(engine, as_of=NOW)
    examples = build_examples(data, AT_1_7_30, NOW)
    mine = examples.frame[examples.frame["lead_id"] == lead_id].set_index("snapshot_age_days")
    original = files.leads.set_index("lead_id").loc[lead_id, "industry"]
    assert mine["industry"].to_dict() == {7.0: original, 30.0: "Aerospace"}
    assert examples.snapshot_report["skipped_before_received"] == 1
    assert data.leads.set_index("lead_id").loc[lead_id, "industry"] == "Aerospace"  # latest


def test_train_from_an_unreadable_database_says_which_and_how(tmp_path):
    from leadscore.cli import app

    missing = f"sqlite:///{tmp_path / 'nothing-here.db'}"
    result = runner.invoke(app, ["train", "--from-database", missing])
    assert result.exit_code == 2
    assert "cannot read the service's database" in result.output
    assert "LEADSCORE_DATABASE_URL" in result.output
    result = runner.invoke(
        app, ["train", "--from-database", missing, "--leads", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2
    assert "leave out --leads, --touchpoints and --outcomes" in result.output


def test_train_from_an_empty_database_says_what_to_do(tmp_path):
    from leadscore.cli import app

    url = f"sqlite:///{tmp_path / 'leadscore.db'}"
    upgrade_database(url)
    result = runner.invoke(app, ["train", "--from-database", url])
    assert result.exit_code == 2
    assert "holds no captured lead" in result.output
    assert "POST /v1/events" in result.output


def test_an_emptied_attribute_is_missing_from_then_on(engine):
    from serving.capture.store import Capture

    capture = Capture(engine, flush_seconds=0.02)
    capture.writer.start()
    created = datetime(2024, 3, 1, tzinfo=UTC)
    for i in range(3):
        capture.events([{"lead_id": f"L-{i}", "created_at": created,
                         "attributes": {"industry": "Software", "visits": 2.0 + i}}], created)  # fmt: skip
    emptied = created + timedelta(days=5)
    capture.events([{"lead_id": "L-0", "attribute_changes": [
        {"name": "industry", "value": None, "changed_at": emptied},
        {"name": "visits", "value": None, "changed_at": emptied}]}], emptied)  # fmt: skip
    assert capture.writer.flush()
    capture.stop()
    data = read_lead_data(engine, as_of=datetime(2024, 6, 1, tzinfo=UTC))
    latest = data.leads.set_index("lead_id")
    assert pd.isna(latest.loc["L-0", "industry"]) and pd.isna(latest.loc["L-0", "visits"])
    assert latest.loc["L-1", "visits"] == 3.0
    history = data.attribute_history
    mine = history[history["lead_id"] == "L-0"].sort_values("known_at")
    assert mine["industry"].isna().tolist() == [False, True]
    assert mine["visits"].tolist()[0] == 2.0 and pd.isna(mine["visits"].tolist()[1])
    assert mine["known_at"].tolist() == [pd.Timestamp(created), pd.Timestamp(emptied)]


# ---- snapshot ages from the service's traffic (training.ages_from_traffic) ---------------------


def _scored_at_ages(
    engine, files, ages_of: dict[str, list[float]], batch: str, replayed_at: float | None = None
) -> None:
    """Score-log rows of the captured leads, each at the given ages (days after creation); with
    `replayed_at`, scored that many days after creation as of those ages (a replay), else
    without `as_of` (rows logged before migration 0012)."""
    from serving.db import score_log

    created = files.leads.set_index("lead_id")["created_at"]

    def moment(lead: str, days: float):
        return (created[lead] + pd.Timedelta(days=days)).to_pydatetime()

    rows = [
        {"request_id": f"{batch}-{lead}-{k}", "lead_id": lead, "model_name": "lead-scoring",
         "model_version": "1", "policy_version": 0, "probability": 0.2, "score": 20,
         "grade": "C", "decision": "nurture", "reasons": [],
         "scored_at": moment(lead, age if replayed_at is None else replayed_at),
         "as_of": None if replayed_at is None else moment(lead, age)}
        for lead, ages in ages_of.items() for k, age in enumerate(ages)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(score_log.insert(), rows)


def test_snapshot_ages_follow_the_ages_the_service_scored_leads_at(files, engine):
    from training.database import MAX_TRAFFIC_AGE_DAYS, apply_traffic_ages, traffic_ages
    from training.train import resolve_config

    capture_lead_data(engine, files)
    leads = files.leads["lead_id"].tolist()
    end = NOW + pd.Timedelta(days=400)  # every score below is before it
    # too few scores: nothing changes, and the words say why
    _scored_at_ages(engine, files, {lead: [3.0] for lead in leads[:150]}, "first")
    assert traffic_ages(engine, end).ages == ()
    config = resolve_config(None, leads="x.csv")
    config.training.ages_from_traffic = True
    config.training.now = end.to_pydatetime()
    said = apply_traffic_ages(config, engine)
    assert config.features.snapshot_ages_days == (1, 7, 30)
    assert "150 scores" in said and "fewer than the 200" in said
    # 400 leads: half scored on the day they arrive, the others on days 3 and 14, a tenth of
    # them also long after
    ages_of = {
        lead: [0.1] if i % 2 == 0 else [3.0, 14.0, 200.0] if i % 10 == 1 else [3.0, 14.0]
        for i, lead in enumerate(leads)
    }
    _scored_at_ages(engine, files, ages_of, "second")
    traffic = traffic_ages(engine, end)
    assert traffic.scores == 150 + sum(map(len, ages_of.values()))
    # the quantiles 0.1 ... 0.9 of what was scored, in half days, past the cap counted at it
    days = np.array([3.0] * 150 + [a for ages in ages_of.values() for a in ages])
    expected = np.quantile(np.minimum(days, MAX_TRAFFIC_AGE_DAYS), [0.1, 0.3, 0.5, 0.7, 0.9])
    assert traffic.ages == tuple(sorted({max(0.5, round(q * 2) / 2) for q in expected}))
    assert traffic.ages == (0.5, 3.0, 14.0)
    assert traffic.older == pytest.approx((days > MAX_TRAFFIC_AGE_DAYS).mean())
    said = apply_traffic_ages(config, engine)
    assert config.features.snapshot_ages_days == traffic.ages
    assert config.features.snapshots_per_lead == (3 if len(traffic.ages) > 3 else None)
    assert "snapshot ages from the service's traffic" in said and "older than 90 days" in said
    # a score before the data's end only: the same rows read at an earlier end give fewer
    assert traffic_ages(engine, NOW.to_pydatetime()).scores < traffic.scores
    # not asked for: nothing read, nothing changed
    config.training.ages_from_traffic = False
    assert apply_traffic_ages(config, engine) is None


def test_a_replayed_score_counts_at_the_age_it_was_scored_as_of(files, engine):
    """A CRM backfilling history scores leads as of past moments: the score log's `as_of`, not
    the day it was replayed, is the age (read today, every one was past the 90-day cap)."""
    from training.database import traffic_ages

    capture_lead_data(engine, files)
    leads = files.leads["lead_id"].tolist()
    _scored_at_ages(
        engine, files, {lead: [2.0] if i % 2 else [10.0] for i, lead in enumerate(leads)},
        "replay", replayed_at=500.0,
    )  # fmt: skip
    traffic = traffic_ages(engine, NOW + pd.Timedelta(days=1000))
    assert traffic.scores == len(leads) and traffic.older == 0.0
    assert traffic.ages == (2.0, 6.0, 10.0)  # quantiles 0.1-0.9 of half 2s and half 10s


def test_ages_from_traffic_without_the_database_says_how(tmp_path):
    from leadscore.cli import app

    config = tmp_path / "config.yaml"
    config.write_text("training:\n  ages_from_traffic: true\n")
    result = runner.invoke(
        app, ["train", "--config", str(config), "--leads", str(tmp_path / "leads.csv")]
    )
    assert result.exit_code == 2
    assert "train with --from-database URL (or leadscore retrain)" in result.output


def test_many_traffic_ages_see_each_lead_at_three_of_them(files, engine):
    from training.database import apply_traffic_ages
    from training.train import resolve_config

    capture_lead_data(engine, files)
    leads = files.leads["lead_id"].tolist()
    # ages spread from 1 to 60 days: five distinct quantiles
    _scored_at_ages(engine, files, {lead: [1.0 + (i % 60)] for i, lead in enumerate(leads)}, "s")
    config = resolve_config(None, leads="x.csv")
    config.training.ages_from_traffic = True
    config.training.now = (NOW + pd.Timedelta(days=400)).to_pydatetime()
    apply_traffic_ages(config, engine)
    assert len(config.features.snapshot_ages_days) == 5
    assert config.features.snapshots_per_lead == 3  # rows as for three fixed ages
    # a configured number of ages per lead is kept
    config = resolve_config(None, leads="x.csv")
    config.training.ages_from_traffic = True
    config.training.now = (NOW + pd.Timedelta(days=400)).to_pydatetime()
    config.features = config.features.model_copy(update={"snapshots_per_lead": 2})
    apply_traffic_ages(config, engine)
    assert len(config.features.snapshot_ages_days) == 5
    assert config.features.snapshots_per_lead == 2
