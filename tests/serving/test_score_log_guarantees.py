"""What a client can rely on from the score log (and the capture, through the same writer), on
SQLite and PostgreSQL: a record the database refuses is isolated and kept as a dead letter (the
rest is written, the writer goes on), the queue is bounded (503 with Retry-After), a clean stop
spills what the database did not take and the next start writes it, and a database outage loses
nothing and answers no 500. The outage goes through a TCP proxy the test cuts (tests/serving/
proxy.py): the shared PostgreSQL server is never stopped.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from serving.capture.rows import CaptureRows
from serving.capture.writer import CaptureWriter
from serving.db import captured_leads, dead_letters, make_engine, score_log, upgrade_database
from serving.queued_writer import decode_record
from serving.score_log import ScoreLogWriter
from tests.serving.conftest import (
    POSTGRES_SERVER,
    auth,
    demo_records,
    make_settings,
    model_settings,
)
from tests.serving.proxy import CuttableProxy
from tests.serving.test_hardening import NUL_CASES
from tests.serving.test_storage import request_rows, row
from tests.serving.waiting import wait_for, wait_for_model

NUL = "\x00"


def count(engine, table) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def letters(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(sa.select(dead_letters).order_by(dead_letters.c.id)).all()


def metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


# --- a row the database refuses: isolated, dead-lettered, the rest written --------------------


def poison(kind: str) -> dict:
    if kind == "null lead_id":  # NOT NULL: refused by SQLite and PostgreSQL alike
        return {**row(0), "lead_id": None}
    return {**row(0), "lead_id": f"L{NUL}poison"}  # PostgreSQL refuses NUL in text


def test_a_refused_row_is_dead_lettered_and_the_next_1000_are_written(engine, caplog):
    dead_letter_then_1000(engine, "null lead_id", caplog)


@pytest.mark.postgres
def test_a_nul_row_postgres_refuses_is_dead_lettered_and_the_next_1000_written(
    postgres_url, caplog
):
    # PostgreSQL only: SQLite stores NUL in text, so it refuses no such row.
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    try:
        dead_letter_then_1000(engine, "nul lead_id", caplog)
    finally:
        engine.dispose()


def dead_letter_then_1000(engine, kind: str, caplog) -> None:
    writer = ScoreLogWriter(engine, batch_size=500, flush_seconds=0.02, retry_seconds=0.05)
    writer.start()
    writer.submit([poison(kind), row(1, "poisoned-request"), row(2, "poisoned-request")])
    for start in range(3, 1001, 100):  # then 1,000 ordinary scores in all
        writer.submit([row(i, f"r-{start}") for i in range(start, min(start + 100, 1001))])
    writer.stop()
    assert count(engine, score_log) == 1000  # the poison's own batch-mates included
    assert writer.written == 1000 and writer.dead_lettered == 1 and writer.pending == 0
    [letter] = letters(engine)
    assert letter.source == "score_log"
    assert letter.error.split(":")[0] in ("IntegrityError", "NotNullViolation", "DataError")
    # the error names the problem, never the row's values (hide_parameters, no DETAIL line)
    for value in ("poison", "scorer-key", "5 visits in 30 days", "lead-scoring"):
        assert value not in letter.error
        assert value not in caplog.text
    record = decode_record(letter.record)
    assert record["rows"][0]["lead_id"] == poison(kind)["lead_id"]  # kept, NUL escaped
    assert record["rows"][0]["scored_at"] == row(0)["scored_at"]
    assert letter.lead_id is None  # no storable lead id (null or NUL)


class RowsWriter(CaptureWriter):
    """The capture writer fed its rows directly (the routes queue validated leads)."""

    def prepare(self, item):
        return item


@pytest.mark.postgres
def test_a_capture_lead_the_database_refuses_does_not_stop_the_others(postgres_url):
    # PostgreSQL only: SQLite stores NUL in text, so it has no such lead to refuse.
    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    writer = RowsWriter(engine, flush_seconds=0.02, retry_seconds=0.05)
    writer.start()

    def lead(lead_id: str) -> CaptureRows:
        return CaptureRows(leads=[{"lead_id": lead_id, "created_at": None, "received_at": now}])

    both = lead("C-1")
    both.extend(lead(f"C{NUL}2"))
    writer.submit(both)
    writer.submit(lead("C-3"))
    writer.stop()
    with engine.connect() as connection:
        stored = connection.execute(sa.select(captured_leads.c.lead_id)).scalars().all()
    assert sorted(stored) == ["C-1", "C-3"]
    [letter] = letters(engine)
    assert letter.source == "capture" and writer.dead_lettered == 1
    assert decode_record(letter.record)["leads"][0]["lead_id"] == f"C{NUL}2"
    engine.dispose()


# --- spill at a stop, replay at the next start -----------------------------------------------


def test_what_a_stop_cannot_write_is_spilled_and_written_at_the_next_start(engine, tmp_path):
    spill = tmp_path / "spill"
    rows = request_rows("S", "r-s", datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    with engine.begin() as connection:  # the database cannot take score rows now
        connection.execute(sa.text("ALTER TABLE score_log RENAME TO score_log_away"))
    first = ScoreLogWriter(engine, flush_seconds=0.02, spill_dir=spill, retry_seconds=0.05)
    first.start()
    assert first.submit(rows)
    first.submit([row(7)])
    wait_for(lambda: first.last_error is not None, "the failed write was not reported")
    first.stop(timeout=0.5)
    assert first.spilled == 6 and first.pending == 0 and first.dead_lettered == 0
    assert len(list(spill.iterdir())) == 1
    with engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE score_log_away RENAME TO score_log"))
        assert connection.execute(sa.select(sa.func.count()).select_from(score_log)).scalar() == 0

    second = ScoreLogWriter(engine, flush_seconds=0.02, spill_dir=spill)
    second.start()
    assert second.replayed == 6
    assert second.flush()
    second.stop()
    with engine.connect() as connection:
        stored = connection.execute(sa.select(score_log).order_by(score_log.c.id)).all()
    assert [r.lead_id for r in stored] == [f"S-{i}" for i in range(5)] + ["L-7"]
    assert stored[0].request_id == "r-s" and stored[0].api_key_name == "scorer-key"
    assert stored[0].scored_at.replace(tzinfo=UTC) == rows.common["scored_at"]
    # each score's as_of and exploration flag come back from the spill file as they went in
    assert [r.as_of.replace(tzinfo=UTC) for r in stored[:5]] == rows.as_of
    assert [r.exploration for r in stored[:5]] == [i == 2 for i in range(5)]
    assert list(spill.iterdir()) == []  # replayed once: a third start writes nothing again


# --- bounded: 503 with Retry-After instead of growing memory ---------------------------------


def test_a_full_score_log_answers_503_with_retry_after(trained_model, sqlite_url, tmp_path):
    from serving.app import create_app

    settings = model_settings(
        trained_model, sqlite_url, score_log_max_pending=5, spill_dir=str(tmp_path / "spill")
    )
    leads = demo_records(trained_model, 10)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_for_model(client)
        writer = client.app.state.services.score_log
        locker = make_engine(sqlite_url)
        with locker.connect() as connection:  # the database takes no writes meanwhile
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
            first = client.post("/v1/score", json={"leads": leads[:5]}, headers=auth("scorer"))
            assert first.status_code == 200, first.text
            wait_for(lambda: writer.last_error is not None, "the writer never met the lock")
            full = client.post("/v1/score", json={"leads": leads[5:]}, headers=auth("scorer"))
            assert full.status_code == 503, full.text
            assert full.headers["Retry-After"] == "5"
            assert "score log is full" in full.json()["detail"]
            assert client.get("/readyz").json() == {"status": "not ready"}
            connection.exec_driver_sql("ROLLBACK")
        locker.dispose()
        assert writer.flush()
        again = client.post("/v1/score", json={"leads": leads[5:]}, headers=auth("scorer"))
        assert again.status_code == 200
        assert metric(client, "leadscore_score_log_refused_total") >= 5
        assert writer.flush()
        engine = client.app.state.services.engine
        with engine.connect() as connection:
            ids = connection.execute(sa.select(score_log.c.lead_id)).scalars().all()
    assert sorted(ids) == sorted(lead["lead_id"] for lead in leads)  # the refused 5, sent again


# --- the boundary: NUL refused with a 422 naming the field, on both databases ----------------


@pytest.mark.parametrize(("method", "path", "role", "body", "index", "field"), NUL_CASES)
def test_nul_is_refused_naming_the_field_on_both_databases(
    client_without_model, method, path, role, body, index, field
):
    response = client_without_model.request(method, path, json=body, headers=auth(role))
    assert response.status_code == 422, response.text
    nul = [e for e in response.json()["errors"] if "NUL" in e["message"]]
    assert nul and nul[0]["field"] == field and nul[0].get("lead_index") == index


def test_the_nul_poison_is_422_and_the_next_1000_scores_are_logged(
    trained_model, database_url, tmp_path
):
    from serving.app import create_app

    settings = model_settings(trained_model, database_url, spill_dir=str(tmp_path / "spill"))
    records = demo_records(trained_model, 100)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_for_model(client)
        poisoned = {**records[0], "lead_id": f"{records[0]['lead_id']}{NUL}"}
        strict = client.post(
            "/v1/score?strict=true", json={"leads": [poisoned]}, headers=auth("scorer")
        )
        assert strict.status_code == 422
        assert strict.json()["errors"][0]["field"] == "lead_id"
        assert "NUL" in strict.json()["errors"][0]["message"]
        # by default the lead is rejected alone, with the same problem, and not scored
        alone = client.post("/v1/score", json={"leads": [poisoned]}, headers=auth("scorer"))
        assert alone.status_code == 200 and alone.json()["rejected"] == 1
        assert "NUL" in alone.text and "lead_id" in alone.text
        for batch in range(10):
            leads = [{**r, "lead_id": f"{r['lead_id']}-{batch}"} for r in records]
            answer = client.post("/v1/score", json={"leads": leads}, headers=auth("scorer"))
            assert answer.status_code == 200
        services = client.app.state.services
        assert services.score_log.flush()
        assert count(services.engine, score_log) == 1000
        assert letters(services.engine) == []
        assert client.get("/readyz").json() == {"status": "ready"}


# --- readiness: only ready or not without the admin key --------------------------------------


def test_readyz_shows_details_to_the_admin_only_and_degraded_with_dead_letters(
    database_url, no_registry
):
    from serving.app import create_app

    tracking = "http://leadscore:s3cret@127.0.0.1:9"
    with TestClient(create_app(make_settings(database_url, tracking)),
                    raise_server_exceptions=False) as client:  # fmt: skip
        models = client.app.state.services.models
        wait_for(lambda: models.last_error, "the first model load never failed")
        for headers in ({}, auth("scorer"), auth("ops"), {"X-API-Key": "wrong"}):
            answer = client.get("/readyz", headers=headers)
            assert answer.status_code == 503
            assert answer.json() == {"status": "not ready"}
        admin = client.get("/readyz", headers=auth("admin"))
        assert admin.status_code == 503
        assert "s3cret" not in admin.text and "leadscore:***@" in admin.text
        checks = admin.json()["checks"]
        assert checks["database"] == {"ok": True, "dead_letters": 0}
        assert checks["score_log"]["ok"] is True and checks["capture"]["ok"] is True

        # a dead letter: the score log keeps serving, readiness says degraded
        writer = client.app.state.services.score_log
        writer.submit([{**row(0), "lead_id": None}, row(1)])
        assert writer.flush()
        assert writer.dead_lettered == 1
        assert metric(client, "leadscore_score_log_dead_letter_total") >= 1
        checks = client.get("/readyz", headers=auth("admin")).json()["checks"]
        assert checks["database"]["dead_letters"] == 1
        assert checks["score_log"]["dead_lettered"] == 1


def test_readyz_is_degraded_while_dead_letters_wait(trained_model, database_url, tmp_path):
    from serving.app import create_app

    settings = model_settings(trained_model, database_url, spill_dir=str(tmp_path / "spill"))
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_for_model(client)
        assert client.get("/readyz").json() == {"status": "ready"}
        writer = client.app.state.services.score_log
        writer.submit([{**row(0), "lead_id": None}, row(1)])
        assert writer.flush()
        answer = client.get("/readyz")
        assert answer.status_code == 200 and answer.json() == {"status": "degraded"}
        with client.app.state.services.engine.begin() as connection:
            connection.execute(dead_letters.delete())  # an operator dealt with it
        assert client.get("/readyz").json() == {"status": "ready"}


# --- no password in what `leadscore serve` prints ---------------------------------------------


def test_serve_never_prints_the_database_password(monkeypatch, tmp_path):
    from leadscore.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "LEADSCORE_DATABASE_URL", "postgresql+psycopg://leadscore:s3cret@127.0.0.1:9/leadscore"
    )
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "s3cret" not in result.output
    flat = "".join(result.output.split())  # rich wraps lines at the terminal width
    assert "database'postgresql+psycopg://leadscore:***@127.0.0.1:9/leadscore'" in flat
    assert "OperationalError" in flat and "LEADSCORE_DATABASE_URL" in flat


# --- a 10 s database outage under load: nothing lost, no 500 ---------------------------------


@pytest.mark.postgres
def test_a_10_s_database_outage_under_load_loses_nothing_and_answers_no_500(
    trained_model, postgres_url, tmp_path
):
    from serving.app import create_app

    upgrade_database(postgres_url)
    proxy = CuttableProxy("127.0.0.1", 5432)
    through_proxy = proxy.url_for(postgres_url)
    assert through_proxy != postgres_url and POSTGRES_SERVER.split("@")[0] in through_proxy
    settings = model_settings(trained_model, through_proxy, spill_dir=str(tmp_path / "spill"),
                              auto_migrate=False)  # fmt: skip
    records = demo_records(trained_model, 20)
    answered: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            wait_for_model(client)

            def load(worker: int) -> None:
                n = 0
                while not stop.is_set():
                    leads = [{**r, "lead_id": f"{r['lead_id']}-{worker}-{n}"} for r in records[:5]]
                    n += 1
                    response = client.post("/v1/score", json={"leads": leads},
                                           headers=auth("scorer"))  # fmt: skip
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        answered.extend(r["lead_id"] for r in response.json()["results"])
                    outcome = {"lead_id": leads[0]["lead_id"], "outcome": "won",
                               "closed_at": "2026-11-20T10:00:00Z"}  # fmt: skip
                    response = client.post("/v1/outcomes", json={"outcomes": [outcome]},
                                           headers=auth("scorer"))  # fmt: skip
                    statuses.append(response.status_code)
                    if response.status_code == 503:
                        assert response.headers["Retry-After"]
                    time.sleep(0.02)

            threads = [threading.Thread(target=load, args=(w,)) for w in range(3)]
            for thread in threads:
                thread.start()
            time.sleep(2)
            proxy.cut()
            time.sleep(10)  # the outage: the length is the scenario, not a timing claim
            during = len(answered)
            proxy.restore()
            time.sleep(3)
            stop.set()
            for thread in threads:
                thread.join()
            assert 500 not in statuses and set(statuses) <= {200, 503}, sorted(set(statuses))
            assert 503 in statuses  # the outcomes met the outage
            writer = client.app.state.services.score_log
            assert writer.flush(60)
    finally:
        proxy.close()
    assert during > 0 and len(answered) > during  # scored through the outage and after it
    direct = make_engine(postgres_url)
    with direct.connect() as connection:
        logged = connection.execute(sa.select(score_log.c.lead_id)).scalars().all()
    direct.dispose()
    assert sorted(logged) == sorted(answered)  # every answered score, once


@pytest.mark.postgres
def test_a_stop_during_an_outage_spills_and_the_next_start_writes_it(
    trained_model, postgres_url, tmp_path
):
    from serving.app import create_app

    upgrade_database(postgres_url)
    proxy = CuttableProxy("127.0.0.1", 5432)
    spill = tmp_path / "spill"
    settings = model_settings(trained_model, proxy.url_for(postgres_url), spill_dir=str(spill),
                              auto_migrate=False, writer_stop_seconds=1)  # fmt: skip
    records = demo_records(trained_model, 30)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            wait_for_model(client)
            proxy.cut()
            answer = client.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
            assert answer.status_code == 200
        assert [p.name.split("-")[0] for p in spill.iterdir()].count("score_log") == 1
        proxy.restore()
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            writer = client.app.state.services.score_log
            assert writer.replayed == 30
            assert writer.flush(60)
            assert writer.written >= 30
    finally:
        proxy.close()
    direct = make_engine(postgres_url)
    with direct.connect() as connection:
        logged = connection.execute(sa.select(score_log.c.lead_id)).scalars().all()
    direct.dispose()
    assert sorted(logged) == sorted(r["lead_id"] for r in records)
    assert not [p for p in spill.iterdir() if p.name.startswith("score_log")]


def test_dead_letter_records_are_json_text_without_raw_nul():
    from serving.queued_writer import encode_record

    text = encode_record({"lead_id": f"L{NUL}", "at": datetime(2026, 1, 1, tzinfo=UTC)})
    assert b"\x00" not in text
    assert decode_record(text) == {"lead_id": f"L{NUL}", "at": datetime(2026, 1, 1, tzinfo=UTC)}
    assert orjson.loads(text)["at"] == {"$datetime": "2026-01-01T00:00:00+00:00"}


def test_nul_in_a_key_name_of_the_path_is_422_on_both_databases(client_without_model):
    response = client_without_model.delete("/v1/keys/hub%00spot", headers=auth("admin"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "name"


def test_outcomes_answer_503_with_retry_after_while_sqlite_is_locked(
    sqlite_client_without_model, sqlite_url, caplog
):
    outcome = {"lead_id": "L-locked", "outcome": "won", "closed_at": "2026-11-20T10:00:00Z",
               "amount": 1234.5}  # fmt: skip
    locker = make_engine(sqlite_url)
    with locker.connect() as connection:  # another writer holds the database (busy timeout 5 s)
        connection.exec_driver_sql("BEGIN EXCLUSIVE")
        response = sqlite_client_without_model.post(
            "/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer")
        )
        connection.exec_driver_sql("ROLLBACK")
    locker.dispose()
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert response.json()["detail"].startswith("the database is unavailable: nothing was stored")
    assert "L-locked" not in caplog.text and "1234.5" not in caplog.text  # no parameters logged
    again = sqlite_client_without_model.post(
        "/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer")
    )
    assert again.status_code == 200 and again.json()["results"][0]["status"] == "created"


def test_erasing_a_lead_erases_its_dead_letters(client_without_model):
    services = client_without_model.app.state.services
    refused = {**row(0), "lead_id": "L-GONE", "decision": None}  # NOT NULL: a dead letter
    services.score_log.submit([refused, {**row(1), "lead_id": "L-STAYS", "decision": None}])
    assert services.score_log.flush()
    assert sorted(letter.lead_id for letter in letters(services.engine)) == ["L-GONE", "L-STAYS"]
    response = client_without_model.delete("/v1/leads/L-GONE", headers=auth("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["rows_deleted"]["dead_letters"] == 1
    remaining = letters(services.engine)
    assert [letter.lead_id for letter in remaining] == ["L-STAYS"]
    assert "L-GONE" not in remaining[0].record


def test_a_row_that_cannot_become_parameters_alone_in_its_batch_does_not_stop_the_log(engine):
    writer = ScoreLogWriter(engine, flush_seconds=0.02, retry_seconds=0.05)
    writer.start()
    unwritable = {**row(0), "lead_id": "L-set", "reasons": {"for": {1, 2}}}  # no JSON for a set
    writer.submit([unwritable])
    assert writer.flush()
    writer.submit([row(1), row(2)])
    writer.stop()
    assert count(engine, score_log) == 2 and writer.dead_lettered == 1
    [letter] = letters(engine)
    assert letter.lead_id == "L-set" and letter.error.startswith("TypeError")
    assert letter.record.startswith("<cannot be recorded")  # the set has no JSON form either
