"""The funnel's per-lead tables (`serving.report.funnel_tables`) on SQLite and PostgreSQL: what the
writers keep up to date is what a rebuild from the stored facts gives, retention and the
migration's backfill follow the facts, and the funnel report's exploration estimate is counted
by hand on the hand-made funnel (tests/features/report/handmade.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.report import formats
from features.report.funnel import funnel
from serving.app import create_app
from serving.capture.store import Capture
from serving.db import (
    lead_funnel,
    lead_funnel_attributes,
    lead_funnel_campaigns,
    lead_funnel_channels,
    make_engine,
    score_log,
    upgrade_database,
)
from serving.report.funnel import funnel_from_database
from serving.report.funnel_tables import refresh_all, refresh_leads
from tests.serving.conftest import auth, make_settings
from tests.serving.funnel_data import file_frames, store_handmade

Z = 1.959963984540054
WILSON_1_OF_2 = (0.094531, 0.905469)  # 0.5 -+ 0.40547, as tests/serving/test_funnel_report.py
FUNNEL_TABLES = (lead_funnel, lead_funnel_channels, lead_funnel_campaigns, lead_funnel_attributes)


def moment(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def snapshot(engine) -> dict[str, list]:
    """Every row of the funnel's tables, sorted (times as UTC text: SQLite drops the zone)."""

    def plain(value):
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        return round(value, 12) if isinstance(value, float) else value

    with engine.connect() as connection:
        return {
            table.name: sorted(
                (tuple(plain(v) for v in row) for row in connection.execute(sa.select(table))),
                key=repr,
            )
            for table in FUNNEL_TABLES
        }


@pytest.fixture
def client(database_url, no_registry):
    app = create_app(make_settings(database_url, no_registry))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def score_row(lead_id: str, score: int, decision: str, at: datetime, explored=False) -> dict:
    return {"request_id": "r", "lead_id": lead_id, "model_name": "lead-scoring",
            "model_version": "1", "policy_version": 0, "probability": score / 100,
            "score": score, "grade": "B", "decision": decision, "reasons": {},
            "scored_at": at, "api_key_name": "crm", "exploration": explored}  # fmt: skip


def test_what_the_writers_keep_is_what_a_rebuild_gives(client):
    """Events, scores and outcomes through the service, in an order that moves every derived
    fact: a touch after the close, a close moved later, a newer and an older score, an attribute
    changed, a lead without touches, a lead only scored."""
    services = client.app.state.services
    engine, capture, scores = services.engine, services.capture, services.score_log

    def events(leads: list[dict]) -> None:
        answer = client.post("/v1/events", json={"leads": leads}, headers=auth("scorer"))
        assert answer.status_code == 202, answer.text
        assert capture.writer.flush()

    def outcome(lead_id: str, result: str, day: int, amount=None) -> None:
        body = {"outcomes": [{"lead_id": lead_id, "outcome": result, "amount": amount,
                              "closed_at": moment(day).isoformat()}]}  # fmt: skip
        assert client.post("/v1/outcomes", json=body, headers=auth("scorer")).is_success

    def touch(day: int, channel: str, campaign=None) -> dict:
        return {"occurred_at": moment(day).isoformat(), "channel": channel, "activity": "visit",
                "campaign": campaign}  # fmt: skip

    events([
        {"lead_id": "A", "created_at": moment(1).isoformat(), "attributes": {"industry": "Retail"},
         "touchpoints": [touch(2, "email", "NL"), touch(3, "webinar", "W"), touch(9, "email")]},
        {"lead_id": "B", "created_at": moment(2).isoformat()},
    ])  # fmt: skip
    scores.submit([score_row("A", 70, "sales", moment(4)), score_row("C", 30, "nurture",
                                                                      moment(4))])  # fmt: skip
    outcome("A", "won", 5, 1000.0)  # the email of day 9 is after the close
    events([{"lead_id": "A", "attributes": {"industry": "Software"},
             "touchpoints": [touch(4, "paid_search", "S")]}])  # fmt: skip
    scores.submit(
        [
            score_row("A", 20, "nurture", moment(6), explored=True),
            score_row("A", 90, "sales", moment(3)),
        ]
    )  # an older score changes nothing
    assert scores.flush()
    outcome("A", "lost", 10)  # a later close: the email of day 9 counts now
    outcome("B", "lost", 3)

    written = snapshot(engine)
    (a,) = [r for r in written["lead_funnel"] if r[0] == "A"]
    row = dict(zip([c.name for c in lead_funnel.columns], a))
    assert (row["touches"], row["first_channel"], row["last_channel"]) == (4, "email", "email")
    assert (row["score"], row["decision"], row["exploration"], row["won"]) == (
        20, "nurture", True, False
    )  # fmt: skip
    # A: email 2 of 4 touches, webinar 1, paid_search 1; B: untouched, whole to '(none)'
    channels = sorted((r[0], r[1], r[2]) for r in written["lead_funnel_channels"])
    assert channels == [("A", "email", 0.5), ("A", "paid_search", 0.25), ("A", "webinar", 0.25),
                        ("B", None, 1.0)]  # fmt: skip
    assert {r[0] for r in written["lead_funnel"]} == {"A", "B", "C"}  # C: scored, not captured
    with engine.begin() as connection:
        refresh_all(connection)
    assert snapshot(engine) == written


def test_retention_and_erasure_leave_no_funnel_row_of_what_is_gone(database_url):
    upgrade_database(database_url)
    engine = make_engine(database_url)
    capture = Capture(engine, retention_days=30, flush_seconds=0.02)
    capture.writer.start()
    try:
        capture.events(
            [
                {
                    "lead_id": "OLD",
                    "touchpoints": [
                        {"occurred_at": moment(1), "channel": "email", "activity": "visit"}
                    ],
                }
            ],
            moment(1),
        )
        capture.events(
            [
                {
                    "lead_id": "NEW",
                    "attributes": {"industry": "Retail"},
                    "touchpoints": [
                        {"occurred_at": moment(25), "channel": "webinar", "activity": "visit"}
                    ],
                }
            ],
            moment(25),
        )
        assert capture.writer.flush()
    finally:
        capture.writer.stop()
    assert {r[0] for r in snapshot(engine)["lead_funnel"]} == {"OLD", "NEW"}
    capture.purge(now=moment(25) + timedelta(days=20))
    kept = snapshot(engine)
    for table in FUNNEL_TABLES:
        assert all("OLD" not in repr(row) for row in kept[table.name]), table.name
    assert [r[1] for r in kept["lead_funnel_channels"]] == ["webinar"]
    engine.dispose()


def test_the_migration_backfills_the_funnel_tables_from_what_is_stored(database_url):
    """A database at 0007 holding the hand-made funnel: after the upgrade, the report answers
    what it answered before the tables existed (the figures the funnel tests count by hand)."""
    from alembic import command

    from serving.db import alembic_config

    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        command.downgrade(alembic_config(database_url), "0007_funnel_indexes")
        store_handmade(engine, derive=False)
        upgrade_database(database_url)
        report = formats.to_records(funnel_from_database(engine, "channel", "linear"))
        frames = file_frames()
        expected = formats.to_records(funnel(frames["leads"], frames["touchpoints"],
                                             frames["outcomes"], by="channel",
                                             attribution="linear", scores=frames["scores"]))  # fmt: skip
        assert report["rows"] == [pytest.approx(r, abs=1e-9) for r in expected["rows"]]
        assert report["total"]["leads"] == 8 and report["total"]["won"] == 4
    finally:
        engine.dispose()


def explore_l2_and_l7(engine) -> None:
    """L2's score (sales, lost) and L7's latest (sales, won) were exploration's."""
    with engine.begin() as connection:
        connection.execute(
            score_log.update().where(score_log.c.lead_id == "L2").values(exploration=True)
        )
        connection.execute(
            score_log.update()
            .where(score_log.c.lead_id == "L7", score_log.c.score == 65)
            .values(exploration=True)
        )
        refresh_leads(connection, ["L2", "L7"])


def test_the_funnel_report_shows_what_the_threshold_misses_counted_by_hand(client):
    engine = client.app.state.services.engine
    store_handmade(engine)
    explore_l2_and_l7(engine)
    answer = client.get("/v1/reports/funnel", params={"by": "decision"}, headers=auth("ops"))
    assert answer.status_code == 200, answer.text
    figures = answer.json()["exploration"]
    # held back: L4, L6 (nurture), L2, L7 (explored); explored: L2 lost, L7 won
    # weeks: Mon 01-01 (L1's week) to Mon 01-22 (the end of L8's week) = 3
    low, high = WILSON_1_OF_2
    assert figures == pytest.approx({
        "weeks": 3.0, "held_back": 4, "held_back_per_week": 4 / 3, "explored": 2,
        "explored_won": 1, "explored_lost": 1, "explored_open": 0, "win_rate": 0.5,
        "win_rate_low": low, "win_rate_high": high, "forgone_wins_per_week": 0.5 * 4 / 3,
        "forgone_wins_per_week_low": low * 4 / 3, "forgone_wins_per_week_high": high * 4 / 3,
    }, abs=1e-6)  # fmt: skip
    # the week of 01-08: L4, L5, L6; held back L4, L6, none explored: no win rate to estimate
    answer = client.get(
        "/v1/reports/funnel",
        params={"by": "channel", "from": "2024-01-08", "to": "2024-01-15"},
        headers=auth("ops"),
    )
    figures = answer.json()["exploration"]
    assert (figures["weeks"], figures["held_back"], figures["held_back_per_week"]) == (1.0, 2, 2.0)
    assert figures["explored"] == 0 and figures["win_rate"] is None
    assert figures["forgone_wins_per_week"] is None
    # the exploration route still answers, over scores of a period
    route = client.get(
        "/v1/reports/exploration",
        params={"from": "2024-01-01T00:00:00Z", "to": "2024-03-01T00:00:00Z"},
        headers=auth("ops"),
    )
    assert route.status_code == 200 and route.json()["explored"] == 2


def test_the_file_report_and_its_table_show_the_same_estimate(client):
    engine = client.app.state.services.engine
    store_handmade(engine)
    explore_l2_and_l7(engine)
    frames = file_frames()
    scores = frames["scores"].copy()
    scores["exploration"] = (scores["lead_id"] == "L2") | (
        (scores["lead_id"] == "L7") & (scores["score"] == 65)
    )
    frame = funnel(frames["leads"], frames["touchpoints"], frames["outcomes"], by="channel",
                   scores=scores)  # fmt: skip
    database = formats.to_records(funnel_from_database(engine, "channel"))
    assert formats.to_records(frame)["exploration"] == pytest.approx(database["exploration"])
    table = formats.to_table(frame)
    assert "What the threshold misses: 4 lead(s) held back (1.3 a week over 3.0 weeks), 2 of " in (
        table
    )
    assert (
        "Explored win rate 50.0% (95% CI 9.5-90.5%): the threshold forgoes about 0.7 wins a "
        in (table)
    )
    # CSV stays one row per group
    assert "held_back" not in formats.to_csv(frame)
