"""Each answer of POST /v1/score carries the lead's previous score and trend, read from the score
log in one query (SQLite and PostgreSQL); the index that query walks exists on both."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.db import score_log
from serving.trend import (
    IDS_PER_QUERY,
    SqliteHistory,
    latest_scores,
    latest_statement,
    sqlite_history,
)
from tests.serving.conftest import auth, demo_records, model_settings
from tests.serving.waiting import wait_for, wait_for_model

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def row(lead_id: str, score: int, at: datetime, **extra) -> dict:
    return {
        "request_id": "r-" + lead_id,
        "lead_id": lead_id,
        "model_name": "lead-scoring",
        "model_version": "1",
        "policy_version": 0,
        "probability": score / 100,
        "score": score,
        "grade": "B",
        "decision": "nurture",
        "reasons": {"for": [], "against": [], "policy": []},
        "scored_at": at,
        "api_key_name": "crm",
        **extra,
    }


def test_latest_earlier_score_of_each_lead_in_one_query(engine):
    with engine.begin() as connection:
        connection.execute(
            score_log.insert(),
            [
                row("L-1", 30, T0),
                row("L-1", 42, T0 + timedelta(days=2)),  # the latest before the request
                row("L-1", 90, T0 + timedelta(days=9)),  # at or after it: not "previous"
                row("L-2", 55, T0 + timedelta(hours=1)),
                row("L-3", 10, T0 + timedelta(days=20)),  # only after: L-3 is new
            ],
        )
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    found = latest_scores(engine, ["L-1", "L-2", "L-3", "L-4", "L-1"], T0 + timedelta(days=9))
    assert found == {
        "L-1": (42, T0 + timedelta(days=2)),
        "L-2": (55, T0 + timedelta(hours=1)),
    }
    assert len([s for s in statements if "score_log" in s]) == 1
    # the new row has the exploration flag's default
    with engine.connect() as connection:
        flags = connection.execute(sa.select(score_log.c.exploration).distinct()).scalars().all()
    assert flags == [False]


def test_a_request_beyond_one_statements_ids_takes_one_more(engine):
    ids = [f"L-{i}" for i in range(IDS_PER_QUERY + 5)]
    with engine.begin() as connection:
        connection.execute(score_log.insert(), [row(i, 20, T0) for i in ids[::100]])
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    found = latest_scores(engine, ids, T0 + timedelta(seconds=1))
    assert found == {i: (20, T0) for i in ids[::100]}
    assert len(statements) == 2


def test_statements_come_in_few_sizes_and_padding_reads_the_same(engine):
    """Each new statement size costs milliseconds to build and compile: requests of 1 to 2,000
    leads use a bounded set of sizes, and a padded statement answers as an exact one."""
    from serving.trend import SIZE_STEP, _chunks

    sizes = {len(c) for n in range(1, 2001) for c in _chunks([f"L-{i}" for i in range(n)])}
    assert len(sizes) <= SIZE_STEP + IDS_PER_QUERY // SIZE_STEP + 1
    ids = [f"L-{i}" for i in range(37)]  # 37 ids: a statement of 48
    with engine.begin() as connection:
        connection.execute(score_log.insert(), [row(i, 30 + n, T0) for n, i in enumerate(ids[::3])])
    found = latest_scores(engine, ids, T0 + timedelta(seconds=1))
    assert found == {i: (30 + n, T0) for n, i in enumerate(ids[::3])}
    assert latest_scores(engine, ids[-1:], T0 + timedelta(seconds=1)) == {ids[-1]: (42, T0)}


# SQLite alone: the reader of its own connection is SQLite's
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_event_loops_sqlite_reader_answers_as_the_engine_does(engine):
    assert SqliteHistory.usable(engine)
    ids = [f"L-{i}" for i in range(IDS_PER_QUERY + 5)]
    with engine.begin() as connection:
        connection.execute(
            score_log.insert(),
            [row(i, 20 + n % 50, T0 + timedelta(minutes=n)) for n, i in enumerate(ids[::7])]
            + [row("L-0", 99, T0 + timedelta(days=30))],  # after the request: not "previous"
        )
    history = sqlite_history(engine)
    assert sqlite_history(engine) is history
    for asked in (["L-0"], ["L-7", "L-1", "L-7"], ids):  # one id, a repeat, two statements
        before = T0 + timedelta(days=1)
        expected = latest_scores(engine, asked, before)
        assert history.latest(asked, before) == expected
    assert history.latest(["L-0"], T0 + timedelta(days=1)) == {"L-0": (20, T0)}
    assert history.latest([], T0) == {}
    # a broken connection is dropped, the error propagates, and the next read opens another
    history._local.connection.close()
    with pytest.raises(Exception, match="closed"):
        history.latest(["L-0"], T0 + timedelta(days=1))
    assert history.latest(["L-0"], T0 + timedelta(days=1)) == {"L-0": (20, T0)}
    # a score written by another connection is seen at once (no transaction held open)
    with engine.begin() as connection:
        connection.execute(score_log.insert(), [row("L-0", 61, T0 + timedelta(hours=2))])
    found = history.latest(["L-0"], T0 + timedelta(days=1))
    assert found == {"L-0": (61, T0 + timedelta(hours=2))}
    # another thread reads on a connection of its own
    seen: list = []
    reader = threading.Thread(
        target=lambda: seen.append(history.latest(["L-0"], T0 + timedelta(days=1)))
    )
    reader.start()
    reader.join()
    assert seen == [found]
    history.close()


def _rows_with_history(heavy: int) -> list[dict]:
    """L-heavy scored `heavy` times, L-light 3 times, 50 other leads twice."""
    rows = [row("L-heavy", n % 100, T0 + timedelta(minutes=n), request_id=f"h{n}")
            for n in range(heavy)]  # fmt: skip
    rows += [
        row("L-light", 10 + n, T0 + timedelta(minutes=n), request_id=f"l{n}") for n in range(3)
    ]
    rows += [row(f"L-{k}", 5, T0 + timedelta(minutes=n), request_id=f"o{k}-{n}")
             for k in range(50) for n in range(2)]  # fmt: skip
    return rows


def _sqlite_steps(engine, lead_ids: list[str], before: datetime) -> int:
    """SQLite virtual-machine steps (in hundreds) of the read for these leads."""
    steps = [0]
    with engine.connect() as connection:
        raw = connection.connection.driver_connection

        def count() -> int:
            steps[0] += 1
            return 0

        raw.set_progress_handler(count, 100)
        try:
            latest_scores_on(connection, lead_ids, before)
        finally:
            raw.set_progress_handler(None, 100)
    return steps[0]


def latest_scores_on(connection, lead_ids: list[str], before: datetime) -> list:
    return connection.execute(
        latest_statement(len(lead_ids)),
        {"before": before, **{f"id_{i}": v for i, v in enumerate(lead_ids)}},
    ).all()


def test_the_read_does_not_grow_with_a_leads_history(engine):
    """A lead scored hourly for months must not make each request read all its scores: the
    newest earlier score is one step back in the index, whatever the lead's history."""
    with engine.begin() as connection:
        connection.execute(score_log.insert(), _rows_with_history(4000))
    before = T0 + timedelta(days=30)
    found = latest_scores(engine, ["L-heavy", "L-light"], before)
    assert found == {"L-heavy": (3999 % 100, T0 + timedelta(minutes=3999)),
                     "L-light": (12, T0 + timedelta(minutes=2))}  # fmt: skip
    if engine.dialect.name == "sqlite":
        heavy = _sqlite_steps(engine, ["L-heavy"], before)
        light = _sqlite_steps(engine, ["L-light"], before)
        # grouping the lead's rows took ~1,000 times the steps for 4,000 scores against 3
        assert heavy <= 2 * light + 2, (heavy, light)
    else:
        with engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE score_log")
            compiled = latest_statement(1).compile(dialect=engine.dialect)
            plan = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + compiled.string,
                {"id_0": "L-heavy", "before": before},
            ).scalar_one()
        nodes, read = [plan[0]["Plan"]], []
        while nodes:
            node = nodes.pop()
            nodes.extend(node.get("Plans", []))
            if "Scan" in node["Node Type"]:
                read.append((node["Node Type"], node["Actual Rows"] * node["Actual Loops"]))
        assert read and all(rows <= 5 for _, rows in read), read


def test_the_query_walks_the_lead_and_time_index(engine):
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("score_log")}
    assert indexes["uq_score_log_lead_scored_request"][:2] == ["lead_id", "scored_at"]


@pytest.fixture
def client(trained_model, database_url):
    app = create_app(model_settings(trained_model, database_url))
    with TestClient(app) as client:
        wait_for_model(client)
        yield client


@pytest.mark.slow
def test_answers_carry_previous_score_and_trend(client, trained_model):
    records = demo_records(trained_model, 4)
    first = client.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    for result in first["results"]:
        assert result["trend"] == "new"
        assert result["previous_score"] is None and result["previous_scored_at"] is None
    services = client.app.state.services
    wait_for(lambda: services.score_log.pending == 0, "the score log was not written")

    # The same leads again, their previous scores placed by hand: 10 points under the score
    # now, 10 over it, 4 under it (the default step is 5 points); the 4th lead keeps its own.
    scores = [r["score"] for r in first["results"]]
    earlier = datetime.fromisoformat(first["scored_at"].replace("Z", "+00:00"))
    placed = [scores[0] - 10, scores[1] + 10, scores[2] - 4]
    with services.engine.begin() as connection:
        connection.execute(
            score_log.insert(),
            [
                row(records[i]["lead_id"], placed[i], earlier + timedelta(milliseconds=1))
                for i in range(3)
            ],
        )
    second = client.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    results = second["results"]
    assert [r["score"] for r in results] == scores  # same leads, same as_of: same scores
    assert [r["previous_score"] for r in results] == [*placed, scores[3]]
    assert [r["trend"] for r in results] == ["improving", "declining", "steady", "steady"]
    moment = datetime.fromisoformat(results[3]["previous_scored_at"].replace("Z", "+00:00"))
    assert moment == earlier

    # with a step of 3 points in the policy, the same 4-point rise is improving
    wait_for(lambda: services.score_log.pending == 0, "the score log was not written")
    saved = client.put(
        "/v1/policy",
        headers=auth("ops"),
        json={"policy": {"trend_points": 3}, "reason": "alert reps sooner"},
    ).json()
    assert saved["changes"] == ["trend_points: 5 -> 3"]
    later = datetime.fromisoformat(second["scored_at"].replace("Z", "+00:00"))
    with services.engine.begin() as connection:
        connection.execute(
            score_log.insert(),
            [row(records[2]["lead_id"], scores[2] - 4, later + timedelta(milliseconds=1))],
        )
    third = client.post("/v1/score", json={"leads": records[2:3]}, headers=auth("scorer")).json()
    assert third["results"][0]["previous_score"] == scores[2] - 4
    assert third["results"][0]["trend"] == "improving"


def test_openapi_documents_the_trend_fields(sqlite_client_without_model):
    schema = sqlite_client_without_model.get("/openapi.json").json()["components"]["schemas"]
    lead = schema["LeadScore"]["properties"]
    assert lead["trend"]["enum"] == ["improving", "steady", "declining", "new", "unknown"]
    assert lead["trend"]["examples"] == ["improving"]
    assert lead["previous_score"]["examples"] == [41]
    assert "previous_scored_at" in lead and lead["exploration"]["examples"] == [False]
    assert "trend_points" in lead["trend"]["description"]
