"""Capture on SQLite and PostgreSQL: the tables, each fact stored once with its arrival, the
events route (validation, off the request path, turned off), retention, a lead's history and
the right to erasure."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from serving.capture.erasure import lead_id_hash
from serving.capture.store import Capture, erase_lead, outcomes_since, sweep_erased
from serving.capture.writer import CaptureWriter, Events, Scored
from serving.db import (
    as_utc,
    captured_leads,
    erasures,
    lead_attributes,
    lead_funnel,
    lead_touchpoints,
    make_engine,
    metadata,
    score_log,
    upgrade_database,
)
from tests.serving.conftest import auth, make_settings
from tests.serving.waiting import wait_for

CAPTURE_TABLES = ("captured_leads", "lead_attributes", "lead_touchpoints", "erasures")


@pytest.fixture
def capture(engine):
    capture = Capture(engine, flush_seconds=0.02)
    capture.start()
    yield capture
    capture.stop()


@pytest.fixture
def client(database_url, no_registry):
    """The service without a model: capture, events, history and erasure need none."""
    from serving.app import create_app

    with TestClient(create_app(make_settings(database_url, no_registry))) as client:
        yield client


def moment(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def touch(day: int, channel: str = "paid_search", **extra) -> dict:
    return {"occurred_at": moment(day), "channel": channel, "activity": "visit", **extra}


def rows(engine, table) -> list:
    with engine.connect() as connection:
        return connection.execute(sa.select(table)).all()


def test_migration_creates_the_capture_tables_the_code_queries(engine):
    inspector = sa.inspect(engine)
    for table in CAPTURE_TABLES:
        migrated = {c["name"] for c in inspector.get_columns(table)}
        assert migrated == {c.name for c in metadata.tables[table].columns}, table
    for table in ("lead_attributes", "lead_touchpoints"):
        unique = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        assert ("lead_id", "dedup_key") in unique, table


def test_the_capture_migration_downgrades(database_url, engine):
    from alembic import command
    from alembic.script import ScriptDirectory

    from serving.db import alembic_config, current_revision

    # at head: down through every later migration, then below the capture
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    assert current_revision(engine) == head and head != "0003_policy_actor"
    command.downgrade(alembic_config(database_url), "0004_capture")  # below the dead letters
    assert "dead_letters" not in sa.inspect(engine).get_table_names()
    assert current_revision(engine) == "0004_capture"
    command.downgrade(alembic_config(database_url), "0003_policy_actor")
    assert not set(CAPTURE_TABLES) & set(sa.inspect(engine).get_table_names())
    assert current_revision(engine) == "0003_policy_actor"
    upgrade_database(database_url)  # and up again
    assert set(CAPTURE_TABLES) <= set(sa.inspect(engine).get_table_names())


def test_the_same_touchpoint_is_stored_once_with_its_first_arrival(engine, capture):
    first, later = moment(22), moment(23)
    lead = {"lead_id": "L-1", "touchpoints": [touch(20, campaign=None), touch(21, value=None)]}
    capture.events([lead], first)
    capture.events([lead, {"lead_id": "L-1", "touchpoints": [touch(20)]}], later)  # again
    # the same moment in another zone, through the score path's int64 nanoseconds
    same = dict(touch(21), occurred_at="2026-11-21T10:00:00+01:00")
    ns = int(moment(21).timestamp()) * 10**9
    capture.writer.submit(Scored([{"lead_id": "L-1", "touchpoints": [same]}], [ns], later))
    assert capture.writer.flush()
    stored = sorted(rows(engine, lead_touchpoints), key=lambda r: r.occurred_at)
    assert [(as_utc(r.occurred_at), r.campaign, r.value) for r in stored] == [
        (moment(20), None, None),
        (moment(21), None, None),
    ]
    assert {as_utc(r.received_at) for r in stored} == {first}
    # a touchpoint differing in one field is another touchpoint
    capture.events([{"lead_id": "L-1", "touchpoints": [touch(21, campaign="q4")]}], later)
    assert capture.writer.flush()
    assert len(rows(engine, lead_touchpoints)) == 3


def test_attribute_changes_once_and_observed_values_only_when_they_change(engine, capture):
    change = {"name": "stage", "value": "MQL", "changed_at": moment(20)}
    capture.events([{"lead_id": "L-1", "attribute_changes": [change]}], moment(21))
    capture.events([{"lead_id": "L-1", "attribute_changes": [change]}], moment(22))
    scored = {"lead_id": "L-1", "attributes": {"stage": "MQL", "visits": 3.0}, "as_of": moment(23)}
    capture.writer.submit(Scored([scored], None, moment(23)))
    capture.writer.submit(Scored([dict(scored, as_of=moment(24))], None, moment(24)))
    changed = dict(scored, attributes={"stage": "SQL", "visits": 3.0}, as_of=moment(25))
    capture.writer.submit(Scored([changed], None, moment(25)))
    # true is not 1.0: a type change is a change
    capture.events([{"lead_id": "L-1", "attributes": {"visits": True}}], moment(26))
    assert capture.writer.flush()
    stored = sorted(rows(engine, lead_attributes), key=lambda r: (r.changed_at, r.name))
    assert [(r.name, r.value, as_utc(r.changed_at), as_utc(r.received_at)) for r in stored] == [
        ("stage", "MQL", moment(20), moment(21)),
        ("visits", 3.0, moment(23), moment(23)),
        ("stage", "SQL", moment(25), moment(25)),
        ("visits", True, moment(26), moment(26)),
    ]


def test_a_lead_keeps_its_first_arrival_and_gets_its_creation_when_it_comes(engine, capture):
    capture.events([{"lead_id": "L-1"}], moment(20))
    capture.events([{"lead_id": "L-1", "created_at": moment(19)}], moment(21))
    capture.events([{"lead_id": "L-1", "created_at": moment(2)}], moment(22))  # not replaced
    assert capture.writer.flush()
    (lead,) = rows(engine, captured_leads)
    assert (as_utc(lead.created_at), as_utc(lead.received_at)) == (moment(19), moment(20))


def test_a_value_stored_as_other_json_text_is_no_change_and_a_new_type_is(engine, capture):
    """Observed values are compared as JSON text first: the same value written another way (an
    escaped character, as another JSON writer stores it) is still the same value."""
    with engine.begin() as connection:
        connection.execute(lead_attributes.insert(), [
            {"lead_id": "L-1", "name": name, "value": value, "changed_at": moment(20),
             "received_at": moment(20), "dedup_key": name}
            for name, value in (("city", "Curaçao"), ("visits", 3))
        ])  # fmt: skip
        json = "CAST(:text AS JSON)" if engine.dialect.name == "postgresql" else ":text"
        connection.execute(
            sa.text(f"UPDATE lead_attributes SET value = {json} WHERE name = 'city'"),
            {"text": '"Cura\\u00e7ao"'},
        )
        assert (
            connection.execute(
                sa.select(sa.cast(lead_attributes.c.value, sa.Text)).where(
                    lead_attributes.c.name == "city"
                )
            ).scalar_one()
            == '"Cura\\u00e7ao"'
        )
    seen = {"lead_id": "L-1", "attributes": {"city": "Curaçao", "visits": 3}}
    capture.events([seen], moment(21))
    capture.events([dict(seen, attributes={"city": "Curaçao", "visits": 3.0})], moment(22))
    assert capture.writer.flush()
    stored = sorted(rows(engine, lead_attributes), key=lambda r: (r.changed_at, r.name))
    assert [(r.name, r.value, as_utc(r.changed_at)) for r in stored] == [
        ("city", "Curaçao", moment(20)),
        ("visits", 3, moment(20)),
        ("visits", 3.0, moment(22)),  # 3.0 is not 3: a float where an integer was
    ]


def test_a_creation_moment_later_in_the_same_batch_is_kept_and_reaches_the_funnel(engine):
    writer = CaptureWriter(engine)
    without = Events([{"lead_id": "L-1", "touchpoints": [touch(20)]}], moment(21))
    later = Events([{"lead_id": "L-1", "created_at": moment(19)}], moment(22))
    with engine.begin() as connection:
        writer.write(connection, [writer.prepare(without), writer.prepare(later)])
    (lead,) = rows(engine, captured_leads)
    assert (as_utc(lead.created_at), as_utc(lead.received_at)) == (moment(19), moment(21))
    # stored without it first, then it comes alone: the funnel's row gets it too
    other = Events([{"lead_id": "L-2", "touchpoints": [touch(20)]}], moment(21))
    dated = Events([{"lead_id": "L-2", "created_at": moment(18)}], moment(23))
    for item in (other, dated):
        with engine.begin() as connection:
            writer.write(connection, [writer.prepare(item)])
    funnel = {r.lead_id: (as_utc(r.created_at), r.touches) for r in rows(engine, lead_funnel)}
    assert funnel == {"L-1": (moment(19), 1), "L-2": (moment(18), 1)}


def test_retention_deletes_what_arrived_before_the_cutoff(engine):
    capture = Capture(engine, retention_days=30, flush_seconds=0.02)
    capture.writer.start()
    capture.events([{"lead_id": "OLD", "touchpoints": [touch(1)]}], moment(1))
    capture.events([{"lead_id": "NEW", "touchpoints": [touch(25)]}], moment(25))
    assert capture.writer.flush()
    capture.writer.stop()
    deleted = capture.purge(now=moment(25) + timedelta(days=20))
    assert deleted == {"lead_attributes": 0, "lead_touchpoints": 1, "captured_leads": 1}
    assert [r.lead_id for r in rows(engine, lead_touchpoints)] == ["NEW"]
    assert [r.lead_id for r in rows(engine, captured_leads)] == ["NEW"]


def test_events_are_validated_like_scores(client, engine):
    """The vocabulary of files and /v1/score: synonyms mapped, an unknown channel read as other."""
    bad = {"lead_id": "L-7", "touchpoints": [
        {"occurred_at": "2026-11-20T09:00:00Z", "channel": "tv", "activity": "visit"},
        {"occurred_at": "2026-11-20T10:00:00Z", "channel": "Google Ads", "activity": "Chat Started"},
    ]}  # fmt: skip
    response = client.post("/v1/events", json={"leads": [bad]}, headers=auth("scorer"))
    assert response.status_code == 202, response.text
    client.app.state.services.capture.writer.flush()
    stored = sorted((r.channel, r.activity) for r in rows(engine, lead_touchpoints))
    assert stored == [("other", "visit"), ("paid_search", "other")]
    no_zone = {"lead_id": "L-7", "attribute_changes": [
        {"name": "stage", "value": "SQL", "changed_at": "2026-11-20T09:00:00"}]}  # fmt: skip
    response = client.post("/v1/events", json={"leads": [no_zone]}, headers=auth("scorer"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "attribute_changes[0].changed_at"
    assert "has no time zone" in response.json()["detail"]
    assert client.post("/v1/events", json={"leads": [bad]}).status_code == 401


def test_events_route_only_queues_the_writes(client, engine):
    writer = client.app.state.services.capture.writer
    release = threading.Event()
    write = writer.write

    def held_write(connection, prepared):
        release.wait(60)
        write(connection, prepared)

    writer.write = held_write  # the database "takes" as long as the test wants
    body = {"leads": [{"lead_id": "L-9", "created_at": "2026-11-19T08:00:00Z",
                       "touchpoints": [{"occurred_at": "2026-11-20T09:00:00+01:00",
                                        "channel": "Google Ads", "activity": "visit"}]}]}  # fmt: skip
    try:
        response = client.post("/v1/events", json=body, headers=auth("scorer"))
        assert response.status_code == 202, response.text
        assert response.json()["touchpoints"] == 1
        assert rows(engine, lead_touchpoints) == []  # answered while nothing is written
    finally:
        release.set()
    wait_for(lambda: rows(engine, lead_touchpoints), "the queued touchpoint is written")
    (stored,) = rows(engine, lead_touchpoints)
    assert (stored.channel, as_utc(stored.occurred_at)) == ("paid_search", moment(20, 8))
    assert as_utc(stored.received_at) == datetime.fromisoformat(response.json()["received_at"])


def test_capture_turned_off_stores_nothing_and_refuses_events(sqlite_url, no_registry):
    from serving.app import create_app

    settings = make_settings(sqlite_url, no_registry, capture_enabled=False)
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/v1/events", json={"leads": [{"lead_id": "L-1"}]}, headers=auth("scorer")
        )
        assert response.status_code == 409
        assert "LEADSCORE_CAPTURE_ENABLED=false" in response.json()["detail"]
    engine = make_engine(sqlite_url)
    assert rows(engine, captured_leads) == []
    engine.dispose()


def score_row(lead_id: str, day: int, version: str, policy: int) -> dict:
    return {
        "request_id": f"r-{lead_id}-{day}", "lead_id": lead_id, "model_name": "lead-scoring",
        "model_version": version, "policy_version": policy, "probability": day / 100,
        "score": day, "grade": "C", "decision": "nurture",
        "reasons": {"for": [], "against": [], "policy": []}, "scored_at": moment(day),
        "api_key_name": "scorer-key",
    }  # fmt: skip


def test_a_leads_history_lists_its_scores_and_outcome(client, engine):
    with engine.begin() as connection:
        connection.execute(score_log.insert(), [
            score_row("L-1", 21, "3", 1), score_row("L-1", 20, "2", 0),
            score_row("L-2", 22, "3", 1),
        ])  # fmt: skip
    outcome = {"lead_id": "L-1", "outcome": "won", "closed_at": "2026-11-25T10:00:00Z",
               "amount": 1200.0}  # fmt: skip
    assert client.post(
        "/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer")
    ).is_success
    response = client.get("/v1/leads/L-1", headers=auth("ops"))
    assert response.status_code == 200, response.text
    history = response.json()
    assert [
        (s["score"], s["model"]["version"], s["policy_version"]) for s in history["scores"]
    ] == [
        (20, "2", 0),
        (21, "3", 1),
    ]
    assert history["outcome"]["outcome"] == "won"
    assert history["outcome"]["amount"] == 1200.0
    assert history["captured"] is None
    missing = client.get("/v1/leads/L-404", headers=auth("scorer"))
    assert missing.status_code == 404
    assert "nothing is held about lead 'L-404'" in missing.json()["detail"]
    assert client.get("/v1/leads/L-1").status_code == 401


def _every_row(engine) -> dict[str, list]:
    """Every row of every table in the database, whatever the code knows of it."""
    inspector = sa.inspect(engine)
    found = {}
    with engine.connect() as connection:
        for table in inspector.get_table_names():
            found[table] = connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
    return found


def test_erasure_removes_the_lead_from_every_table_and_is_audited(client, engine):
    lead = {"lead_id": "L-GONE", "created_at": "2026-11-19T08:00:00Z",
            "attributes": {"email": "someone@example.com"},
            "attribute_changes": [{"name": "stage", "value": "SQL",
                                   "changed_at": "2026-11-21T08:00:00Z"}],
            "touchpoints": [{"occurred_at": "2026-11-20T09:00:00Z", "channel": "email",
                             "activity": "email_open", "campaign": "L-GONE-nurture"}]}  # fmt: skip
    other = dict(lead, lead_id="L-STAYS", attributes={"email": "other@example.com"},
                 touchpoints=[dict(lead["touchpoints"][0], campaign="nurture")])  # fmt: skip
    response = client.post("/v1/events", json={"leads": [lead, other]}, headers=auth("scorer"))
    assert response.status_code == 202
    outcomes = [{"lead_id": i, "outcome": "lost", "closed_at": "2026-11-25T10:00:00Z"}
                for i in ("L-GONE", "L-STAYS")]  # fmt: skip
    assert client.post(
        "/v1/outcomes", json={"outcomes": outcomes}, headers=auth("scorer")
    ).is_success
    client.app.state.services.score_log.submit([score_row("L-GONE", 20, "1", 0),
                                                score_row("L-STAYS", 20, "1", 0)])  # fmt: skip
    assert client.delete("/v1/leads/L-GONE", headers=auth("scorer")).status_code == 403

    response = client.delete("/v1/leads/L-GONE", headers=auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["rows_deleted"] == {
        "lead_attributes": 2, "lead_touchpoints": 1, "captured_leads": 1, "score_log": 1,
        "outcomes": 1, "dead_letters": 0,
        # the funnel's: its row, its channel and its campaign credit, its latest email and stage
        "lead_funnel": 1, "lead_funnel_channels": 1, "lead_funnel_campaigns": 1,
        "lead_funnel_attributes": 2,
    }  # fmt: skip
    everything = _every_row(engine)
    assert {"score_log", "outcomes", *CAPTURE_TABLES} <= set(everything)
    for table, table_rows in everything.items():
        for row in table_rows:
            assert not any("L-GONE" in str(value) for value in row), (table, row)
            assert not any("someone@example.com" in str(value) for value in row), (table, row)
    for table in ("captured_leads", "lead_attributes", "lead_touchpoints", "score_log", "outcomes"):
        assert any("L-STAYS" in str(row) for row in everything[table]), table
    assert len(everything["erasures"]) == 1
    (audit,) = rows(engine, erasures)
    assert audit.lead_id_sha256 == lead_id_hash("L-GONE")
    assert audit.erased_by == "admin-key"
    assert audit.rows_deleted["score_log"] == 1
    assert client.get("/v1/leads/L-GONE", headers=auth("admin")).status_code == 404


def test_outcomes_since_counts_what_was_reported_after_a_moment(client, engine):
    before = datetime.now(UTC)
    outcome = {"lead_id": "L-1", "outcome": "lost", "closed_at": "2026-11-25T10:00:00Z"}
    assert client.post(
        "/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer")
    ).is_success
    assert outcomes_since(engine, before) == 1
    assert outcomes_since(engine, datetime.now(UTC)) == 0


def test_events_answer_503_when_the_capture_queue_is_full(engine):
    capture = Capture(engine, max_pending=1)  # not started: nothing is taken off the queue
    capture.events([{"lead_id": "L-1"}], moment(20))
    with pytest.raises(Exception, match="the capture queue is full"):
        capture.events([{"lead_id": "L-2"}], moment(20))
    capture.scored([{"lead_id": "L-3"}], None, moment(20))  # a score's capture: dropped, counted
    assert capture.writer.dropped == 2


def test_scored_leads_are_captured_once_with_their_inputs(trained_model, sqlite_url):
    from serving.app import create_app
    from tests.serving.conftest import demo_records, model_settings
    from tests.serving.waiting import wait_for_model

    records = demo_records(trained_model, 5)
    touches = sum(len(r["touchpoints"]) for r in records)
    with TestClient(create_app(model_settings(trained_model, sqlite_url))) as client:
        wait_for_model(client)
        for _ in range(2):  # the CRM scores the same leads again: nothing new to keep
            response = client.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
            assert response.status_code == 200, response.text
        assert client.app.state.services.capture.writer.flush()
        score_log_writer = client.app.state.services.score_log
        wait_for(lambda: score_log_writer.pending == 0, "the scores are written")
        history = client.get(f"/v1/leads/{records[0]['lead_id']}", headers=auth("scorer")).json()
    engine = make_engine(sqlite_url)
    assert len(rows(engine, captured_leads)) == 5
    assert len(rows(engine, lead_touchpoints)) == touches
    attributes = sum(len(r["attributes"]) for r in records)
    assert len(rows(engine, lead_attributes)) == attributes
    engine.dispose()
    assert len(history["scores"]) == 2
    assert history["scores"][0]["model"]["version"] == trained_model.versions[0]
    assert history["captured"]["touchpoints"] == len(records[0]["touchpoints"])


def test_rows_queued_before_an_erasure_do_not_bring_the_lead_back(engine):
    """Another worker's queue still holds the lead when it is erased: its capture rows are not
    written, and its late score-log row is swept; what arrives after the erasure is kept."""
    other_worker = Capture(engine, flush_seconds=0.02)
    before = datetime.now(UTC) - timedelta(seconds=5)
    other_worker.events([{"lead_id": "L-GONE", "touchpoints": [touch(20)]}], before)
    audit, _ = erase_lead(engine, "L-GONE", "admin-key")
    with engine.begin() as connection:  # written late by another worker's score log
        connection.execute(score_log.insert(), [
            dict(score_row("L-GONE", 20, "1", 0), scored_at=before),
            dict(score_row("L-GONE", 21, "1", 0), scored_at=datetime.now(UTC) + timedelta(hours=1)),
        ])  # fmt: skip
    other_worker.writer.start()
    assert other_worker.writer.flush()
    other_worker.events([{"lead_id": "L-GONE", "touchpoints": [touch(22)]}], datetime.now(UTC))
    assert other_worker.writer.flush()
    other_worker.stop()

    late = sweep_erased(engine, audit, "L-GONE")
    assert late["score_log"] == 1
    assert [r.score for r in rows(engine, score_log)] == [21]  # scored after the erasure
    assert [as_utc(r.occurred_at) for r in rows(engine, lead_touchpoints)] == [moment(22)]
    (audit_row,) = rows(engine, erasures)
    assert audit_row.rows_deleted["score_log"] == 1
