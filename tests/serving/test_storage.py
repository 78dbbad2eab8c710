"""Storage on SQLite and PostgreSQL: migrations, the batched score log, idempotent outcomes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from serving.db import (
    as_utc,
    current_revision,
    make_engine,
    metadata,
    outcomes,
    score_log,
    upgrade_database,
)
from serving.score_log import ScoreLogWriter, ScoreRows
from tests.serving.conftest import auth
from tests.serving.waiting import wait_for


def row(i: int, request_id: str = "r-1") -> dict:
    return {
        "request_id": request_id,
        "lead_id": f"L-{i}",
        "model_name": "lead-scoring",
        "model_version": "3",
        "policy_version": 0,
        "probability": i / 1000,
        "score": round(i / 10),
        "grade": "D",
        "decision": "disqualify",
        "reasons": {
            "for": [{"feature": "visits_30d", "text": "5 visits in 30 days", "effect": 4.2}],
            "against": [],
            "policy": [],
        },
        "scored_at": datetime(2026, 11, 23, 8, 0, i % 60, tzinfo=UTC),
        "api_key_name": "scorer-key",
    }


def request_rows(prefix: str, request_id: str, scored_at: datetime, n: int = 5) -> ScoreRows:
    """One request's score-log rows: leads `prefix`-0 ... as the score route queues them."""
    results = [
        {"lead_id": f"{prefix}-{i}", "probability": 0.5, "score": 50, "grade": "C",
         "decision": "nurture", "reasons_for": [], "reasons_against": [], "policy_reasons": [],
         "exploration": i == 2}
        for i in range(n)
    ]  # fmt: skip
    common = {"request_id": request_id, "model_name": "lead-scoring", "model_version": "3",
              "policy_version": 0, "scored_at": scored_at, "api_key_name": "scorer-key"}  # fmt: skip
    # each lead scored as of a day earlier than the one before (a replay of history)
    return ScoreRows(results, common, [scored_at - timedelta(days=i) for i in range(n)])


def test_migrations_create_the_tables_the_code_queries(database_url):
    upgrade_database(database_url, "0001_initial")
    engine = make_engine(database_url)
    assert current_revision(engine) == "0001_initial"
    inspector = sa.inspect(engine)
    added_later = {"score_log": {"exploration", "as_of"}}  # 0006_exploration, 0012_score_log_as_of
    for table in ("api_keys", "score_log", "outcomes"):
        migrated = {c["name"] for c in inspector.get_columns(table)}
        expected = {c.name for c in metadata.tables[table].columns} - added_later.get(table, set())
        assert migrated == expected, table
    upgrade_database(database_url)  # to head (the policy migration), and again: a no-op
    upgrade_database(database_url)
    assert current_revision(engine) != "0001_initial"
    # at head, every table the code queries has exactly the columns and indexes it declares
    inspector = sa.inspect(engine)
    for name, table in metadata.tables.items():
        migrated = {c["name"] for c in inspector.get_columns(name)}
        assert migrated == {c.name for c in table.columns}, name
        indexes = {i["name"] for i in inspector.get_indexes(name)}
        assert {i.name for i in table.indexes} <= indexes, name
    engine.dispose()


def test_score_log_writes_everything_submitted_from_many_threads(engine):
    writer = ScoreLogWriter(engine, batch_size=64, flush_seconds=0.05)
    inserts = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda conn, cursor, statement, *a: (
            inserts.append(1) if statement.startswith("INSERT INTO score_log") else None
        ),
    )
    writer.start()

    def submit(thread: int):
        for j in range(50):
            writer.submit(
                [
                    row(thread * 1000 + j * 2, f"t{thread}"),
                    row(thread * 1000 + j * 2 + 1, f"t{thread}"),
                ]
            )

    threads = [threading.Thread(target=submit, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.stop()
    with engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(score_log)).scalar_one()
        stored = connection.execute(
            sa.select(score_log).where(score_log.c.lead_id == "L-3001")
        ).one()
    assert count == 8 * 50 * 2
    assert writer.pending == 0 and writer.written == 800
    assert len(inserts) < 400 / 2, "rows were not batched"
    assert stored.reasons["for"][0]["text"] == "5 visits in 30 days"
    assert stored.probability == pytest.approx(3.001)
    assert as_utc(stored.scored_at) == datetime(2026, 11, 23, 8, 0, 3001 % 60, tzinfo=UTC)


def test_score_log_keeps_and_retries_rows_while_the_table_is_unavailable(engine):
    writer = ScoreLogWriter(engine, batch_size=10, flush_seconds=0.02)
    writer.start()
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE score_log RENAME TO score_log_away"))
    writer.submit([row(1), row(2)])
    wait_for(lambda: writer.last_error is not None, "the failed write was not reported")
    assert writer.pending == 2
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE score_log_away RENAME TO score_log"))
    writer.stop()
    with engine.connect() as connection:
        ids = (
            connection.execute(sa.select(score_log.c.lead_id).order_by(score_log.c.lead_id))
            .scalars()
            .all()
        )
    assert ids == ["L-1", "L-2"]
    assert writer.last_error is None


def test_a_batch_retried_after_a_commit_that_went_through_is_logged_once(engine, monkeypatch):
    """The database takes the commit and the connection drops before the driver hears so: the
    writer cannot tell, and writes the batch again. Each score must still be in the log once."""
    do_commit = engine.dialect.do_commit
    failed: list[int] = []

    def commit_then_lose_the_connection(dbapi_connection):
        do_commit(dbapi_connection)
        if not failed:
            failed.append(1)
            raise sa.exc.OperationalError(
                "COMMIT", {}, Exception("server closed the connection unexpectedly")
            )

    monkeypatch.setattr(engine.dialect, "do_commit", commit_then_lose_the_connection)
    writer = ScoreLogWriter(engine, batch_size=10, flush_seconds=0.02, retry_seconds=0.05)
    writer.start()
    writer.submit(request_rows("L", "r-7", datetime(2026, 12, 3, 9, 0, 0, 250000, tzinfo=UTC)))
    writer.submit([row(1, "r-8"), row(2, "r-8")])
    writer.stop()
    monkeypatch.undo()
    assert failed, "the commit did not fail: the test did not exercise the retry"
    with engine.connect() as connection:
        logged = connection.execute(
            sa.select(score_log.c.request_id, score_log.c.lead_id).order_by(score_log.c.id)
        ).all()
    assert sorted(logged) == sorted(
        [("r-7", f"L-{i}") for i in range(5)] + [("r-8", "L-1"), ("r-8", "L-2")]
    )
    assert writer.pending == 0 and writer.last_error is None


def test_the_migration_to_one_score_per_row_keeps_the_first_copy(database_url):
    upgrade_database(database_url, "0010_score_log_lead_index")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                score_log.insert(),
                [row(1), row(2), row(1), row(1, "r-2"), row(2)],
            )
            before = connection.execute(
                sa.select(score_log.c.id, score_log.c.request_id, score_log.c.lead_id).order_by(
                    score_log.c.id
                )
            ).all()
        upgrade_database(database_url)
        with engine.connect() as connection:
            kept = connection.execute(
                sa.select(score_log.c.id, score_log.c.request_id, score_log.c.lead_id).order_by(
                    score_log.c.id
                )
            ).all()
            with pytest.raises(sa.exc.IntegrityError):
                connection.execute(score_log.insert(), [row(1)])
        indexes = {i["name"]: i for i in sa.inspect(engine).get_indexes("score_log")}
    finally:
        engine.dispose()
    first: dict[tuple, int] = {}
    for r in before:
        first.setdefault((r.request_id, r.lead_id), r.id)
    assert len(before) == 5 and len(first) == 3
    assert [(r.request_id, r.lead_id) for r in kept] == list(first)
    assert [r.id for r in kept] == list(first.values())  # the first copy of each
    assert indexes["uq_score_log_lead_scored_request"]["column_names"] == [
        "lead_id", "scored_at", "request_id"
    ]  # fmt: skip
    assert indexes["uq_score_log_lead_scored_request"]["unique"]
    assert "ix_score_log_lead_id_scored_at" not in indexes


@pytest.mark.parametrize("n", [3, 83, 84, 167])  # SQLite: 83 rows per INSERT statement
def test_a_requests_score_rows_are_stored_as_sqlalchemy_stores_its_row_dicts(engine, n):
    results = [
        {"lead_id": f"L-{i}", "probability": i / 7 % 1, "score": i % 101, "grade": "C",
         "decision": "nurture",
         "reasons_for": [{"feature": "visits_30d", "text": "5 visits in 30 days", "effect": 4.2}],
         "reasons_against": [],
         "policy_reasons": ["Hard rule: requested a demo -> sales"] if i == 2 else []}
        for i in range(n)
    ]  # fmt: skip
    common = {"request_id": "r-9", "model_name": "lead-scoring", "model_version": "3",
              "policy_version": 4, "scored_at": datetime(2026, 11, 23, 8, 0, 5, 123456, tzinfo=UTC),
              "api_key_name": "scorer-key"}  # fmt: skip
    writer = ScoreLogWriter(engine, batch_size=10, flush_seconds=0.02)
    writer.start()
    writer.submit(ScoreRows(results, common))
    writer.stop()
    with engine.begin() as connection:
        # the reference: SQLAlchemy's own insert of the same rows as dicts
        rows = [dict(r, request_id="ref") for r in ScoreRows(results, common)]
        connection.execute(score_log.insert(), rows)
        stored = connection.execute(sa.select(score_log).order_by(score_log.c.id)).all()
    assert writer.written == n and writer.pending == 0
    mine, reference = stored[:n], stored[n:]
    assert [r.lead_id for r in mine] == [f"L-{i}" for i in range(n)]  # complete, in order
    assert [(r.probability, r.score) for r in mine] == [
        (x["probability"], x["score"]) for x in results
    ]
    for a, b in zip(mine, reference, strict=True):
        assert a._mapping["request_id"] == "r-9"
        assert {k: v for k, v in a._mapping.items() if k not in ("id", "request_id")} == {
            k: v for k, v in b._mapping.items() if k not in ("id", "request_id")
        }
    assert mine[2].reasons == {
        "for": results[2]["reasons_for"],
        "against": [],
        "policy": ["Hard rule: requested a demo -> sales"],
    }
    assert as_utc(mine[0].scored_at) == common["scored_at"] and mine[1].probability == 1 / 7


def outcome(lead_id="L-1", result="won", closed_at="2026-12-02T10:00:00Z", amount=12500.0):
    return {"lead_id": lead_id, "outcome": result, "closed_at": closed_at, "amount": amount}


def test_outcomes_are_idempotent_per_lead(client_without_model, database_url):
    client = client_without_model

    def send(*items):
        response = client.post(
            "/v1/outcomes", json={"outcomes": list(items)}, headers=auth("scorer")
        )
        assert response.status_code == 200, response.text
        return [r["status"] for r in response.json()["results"]]

    assert send(outcome("L-1"), outcome("L-2", "lost", amount=None)) == ["created", "created"]
    assert send(outcome("L-1"), outcome("L-2", "lost", amount=None)) == ["unchanged", "unchanged"]
    # Same moment written with another offset is the same outcome.
    assert send(outcome("L-1", closed_at="2026-12-02T11:00:00+01:00")) == ["unchanged"]
    assert send(outcome("L-1", amount=14000.0)) == ["updated"]
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.select(outcomes).order_by(outcomes.c.lead_id)).all()
    engine.dispose()
    assert [(r.lead_id, r.won, r.amount) for r in rows] == [
        ("L-1", True, 14000.0),
        ("L-2", False, None),
    ]
    assert as_utc(rows[0].closed_at) == datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert rows[0].api_key_name == "scorer-key"


def test_outcomes_of_one_lead_apply_in_order(client_without_model):
    client = client_without_model
    response = client.post(
        "/v1/outcomes",
        json={"outcomes": [outcome("L-1"), outcome("L-1"), outcome("L-1", "lost")]},
        headers=auth("scorer"),
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["created", "unchanged", "updated"]


def test_outcome_errors_name_the_item_and_field(client_without_model):
    client = client_without_model
    response = client.post(
        "/v1/outcomes",
        json={"outcomes": [outcome("L-1", "maybe", closed_at="2026-12-02T10:00:00")]},
        headers=auth("scorer"),
    )
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert errors["outcome"]["lead_index"] == 0
    assert "'won' or 'lost'" in errors["outcome"]["message"]
    assert errors["closed_at"]["message"] == "timestamp '2026-12-02T10:00:00' has no time zone"
