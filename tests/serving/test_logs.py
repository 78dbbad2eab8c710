"""Log lines with a timestamp and the request id, as text or JSON (serving.logs); the request id
answered in X-Request-ID, in the score answer and in the score log."""

from __future__ import annotations

import contextlib
import logging
import logging.config
import os
import re
import sys
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa

from serving.db import make_engine, score_log
from serving.logs import JsonFormatter, RequestIdFilter, TextFormatter, logging_config
from tests.serving.conftest import BOOTSTRAP, KEYS, auth, demo_records
from tests.serving.servers import free_port, server_process
from tests.serving.waiting import wait_for

LEADSCORE = str(Path(sys.executable).with_name("leadscore"))
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _record(message: str, **extra) -> logging.LogRecord:
    record = logging.LogRecord("serving", logging.WARNING, __file__, 1, message, (), None)
    record.created = 1_764_650_000.25  # 2025-12-02T04:33:20.250Z
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_time_level_logger_message_and_request_id():
    line = JsonFormatter().format(_record("model v3 loaded", request_id="crm-42"))
    assert orjson.loads(line) == {
        "time": "2025-12-02T04:33:20.250Z",
        "level": "WARNING",
        "logger": "serving",
        "message": "model v3 loaded",
        "request_id": "crm-42",
    }
    outside = orjson.loads(JsonFormatter().format(_record("started", request_id="-")))
    assert outside["request_id"] is None


def test_text_lines_carry_the_same_fields():
    line = TextFormatter().format(_record("model v3 loaded", request_id="crm-42"))
    assert line == "2025-12-02T04:33:20.250Z WARNING serving [crm-42] model v3 loaded"


def test_the_filter_marks_lines_outside_a_request():
    record = _record("started")
    assert RequestIdFilter().filter(record) and record.request_id == "-"


def test_the_logging_config_is_valid_for_both_formats():
    for log_format in ("text", "json"):
        config = logging_config(log_format)
        logging.config.dictConfig(config | {"loggers": {}})  # every formatter and filter builds
        assert config["handlers"]["default"]["formatter"] == log_format


def test_lines_go_to_the_stderr_of_the_moment_not_the_one_at_configuration(monkeypatch):
    import io
    import sys

    # a test runner replaces stderr per test and closes it after: a handler holding the first
    # one printed "--- Logging error ---" (ValueError: I/O operation on closed file) later
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    config = logging_config("text")
    logging.config.dictConfig(config)
    log = logging.getLogger("serving.test")
    try:
        log.warning("first line")
        monkeypatch.setattr(sys, "stderr", second)
        first.close()
        errors = []
        monkeypatch.setattr(
            logging.Handler, "handleError", lambda self, record: errors.append(record)
        )
        log.warning("second line")
        assert errors == []
        assert "second line" in second.getvalue()
    finally:
        logging.config.dictConfig(config | {"loggers": {"serving": {"handlers": []}}})


def test_the_request_id_is_answered_and_kept_from_a_plain_caller_token(scoring_app):
    given = scoring_app.get("/healthz", headers={"X-Request-ID": "crm-call:42"})
    assert given.headers["x-request-id"] == "crm-call:42"
    for unusable in ("has spaces", "x" * 37, "<script>"):
        answer = scoring_app.get("/healthz", headers={"X-Request-ID": unusable})
        assert UUID.fullmatch(answer.headers["x-request-id"]), unusable
    first, second = scoring_app.get("/healthz"), scoring_app.get("/healthz")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    # errors answered by the middleware itself carry it too
    too_big = scoring_app.post(
        "/v1/score", content=b"x" * 20_000_000, headers={**auth("scorer"), "X-Request-ID": "big"}
    )
    assert too_big.status_code == 413 and too_big.headers["x-request-id"] == "big"


def test_a_score_answer_and_its_log_rows_share_the_request_id(scoring_app, trained_model):
    leads = demo_records(trained_model, 2)
    answer = scoring_app.post(
        "/v1/score",
        json={"leads": [{**lead, "lead_id": f"logs-{lead['lead_id']}"} for lead in leads]},
        headers={**auth("scorer"), "X-Request-ID": "crm-batch-7"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["request_id"] == answer.headers["x-request-id"] == "crm-batch-7"
    writer = scoring_app.app.state.services.score_log
    wait_for(lambda: writer.pending == 0, "the score log writer did not write the rows")
    engine = make_engine(scoring_app.app.state.services.settings.database_url)
    with engine.connect() as connection:
        ids = connection.execute(
            sa.select(score_log.c.request_id).where(score_log.c.lead_id.like("logs-%"))
        ).scalars()
        assert set(ids) == {"crm-batch-7"}
    engine.dispose()


@pytest.mark.slow
def test_serve_writes_json_lines_with_the_request_id(trained_model, sqlite_url, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": trained_model.tracking_uri,
        "LEADSCORE_MODEL_URI": f"models:/{trained_model.name}/{trained_model.versions[0]}",
        "LEADSCORE_DATABASE_URL": sqlite_url,
        "LEADSCORE_API_KEYS_BOOTSTRAP": BOOTSTRAP,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    command = [LEADSCORE, "serve", "--port", str(port), "--log-format", "json", "--access-log"]
    with server_process(command, env=env, cwd=tmp_path, log=log) as server:

        def ready() -> bool:
            assert server.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            return False

        wait_for(ready, "the service did not become ready")
        lead = demo_records(trained_model, 1)[0]
        answer = httpx.post(
            f"{base}/v1/score",
            json={"leads": [lead]},
            headers={"Authorization": f"Bearer {KEYS['scorer']}", "X-Request-ID": "crm-json-1"},
            timeout=30,
        )
        assert answer.status_code == 200
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message", "request_id"} <= e.keys() for e in entries)
    access = [e for e in entries if e["logger"] == "uvicorn.access" and "/v1/score" in e["message"]]
    assert [e["request_id"] for e in access] == ["crm-json-1"]
    assert any("model" in e["message"] and e["request_id"] is None for e in entries)
