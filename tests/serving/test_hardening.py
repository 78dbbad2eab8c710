"""Hardening the service: bad input is a 4xx naming the field, never a 500; the key is checked
before the body is read; slow or vanishing clients are bounded; every answer has security headers.

The checks run before the model is needed, so the app here has none loaded (a valid score request
reaches the model check: 503).
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest
from fastapi.testclient import TestClient

from serving import metrics
from tests.serving.conftest import KEYS, auth, make_settings

TOUCH = {"occurred_at": "2026-11-20T09:30:00Z", "channel": "email", "activity": "email_open"}
NUL = "\x00"
# strict: a bad lead refuses the request (422); the default rejects it alone (test_vocabulary.py)
SCORE = "/v1/score?strict=true"


def lead(lead_id="L-1", **extra):
    return {
        "lead_id": lead_id,
        "attributes": {"industry": "retail"},
        "touchpoints": [TOUCH],
        **extra,
    }


@pytest.fixture
def client(sqlite_client_without_model):
    return sqlite_client_without_model


def problems(response, status=422):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"] == "about:blank" and body["title"]
    return body


# --- NUL characters: refused at the boundary, on every route, naming the field ---------------

NUL_CASES = [
    ("POST", SCORE, "scorer", {"leads": [lead(f"L{NUL}1")]}, 0, "lead_id"),
    (
        "POST",
        SCORE,
        "scorer",
        {"leads": [lead(attributes={f"do_not{NUL}": "yes"})]},
        0,
        "attributes",
    ),
    (
        "POST",
        SCORE,
        "scorer",
        {"leads": [lead("L-0"), lead(attributes={"industry": f"retail{NUL}"})]},
        1,
        "attributes.industry",
    ),
    (
        "POST",
        SCORE,
        "scorer",
        {"leads": [lead(touchpoints=[TOUCH, {**TOUCH, "campaign": f"q4{NUL}"}])]},
        0,
        "touchpoints[1].campaign",
    ),
    (
        "POST",
        SCORE,
        "scorer",
        {"leads": [lead(touchpoints=[{**TOUCH, "channel": f"email{NUL}"}])]},
        0,
        "touchpoints[0].channel",
    ),
    (
        "POST",
        "/v1/outcomes",
        "scorer",
        {
            "outcomes": [
                {"lead_id": f"L{NUL}", "outcome": "won", "closed_at": "2026-12-01T10:00:00Z"}
            ]
        },
        0,
        "lead_id",
    ),
    (
        "PUT",
        "/v1/policy",
        "ops",
        {"policy": {"sales_threshold": 60}, "reason": f"more leads{NUL}"},
        None,
        "reason",
    ),
    (
        "PUT",
        "/v1/policy",
        "ops",
        {
            "policy": {
                "rules": [{"fact": "demo_request", "decision": "sales", "reason": f"d{NUL}"}]
            },
            "reason": "rules",
        },
        None,
        "policy.rules[0].reason",
    ),
    ("POST", "/v1/policy/rollback", "ops", {"version": 0, "reason": f"{NUL}"}, None, "reason"),
    ("POST", "/v1/keys", "admin", {"name": f"hub{NUL}spot", "role": "scorer"}, None, "name"),
]


@pytest.mark.parametrize(("method", "path", "role", "body", "index", "field"), NUL_CASES)
def test_nul_characters_are_refused_naming_the_field(
    client, method, path, role, body, index, field
):
    response = client.request(method, path, json=body, headers=auth(role))
    body = problems(response)
    nul = [e for e in body["errors"] if "NUL" in e["message"]]
    assert nul, body
    assert nul[0]["field"] == field
    assert nul[0].get("lead_index") == index
    assert "cannot be stored" in nul[0]["message"]
    assert nul[0]["expected"] == "text without NUL characters; remove them"
    assert "NUL" in body["detail"]


def test_nul_in_a_key_name_of_the_path_is_422(client):
    body = problems(client.delete("/v1/keys/hub%00spot", headers=auth("admin")))
    assert body["errors"][0]["field"] == "name"
    assert "NUL" in body["errors"][0]["message"]


def test_nul_in_an_ops_static_name_is_404(client):
    response = client.get("/ops/static/ops.js%00.css")
    assert response.status_code == 404
    assert response.json()["detail"] == "no such file: /ops/static/'ops.js\\x00.css'"


# --- timestamps, numbers, ids ---------------------------------------------------------------


def test_timestamps_outside_1970_to_2100_are_refused(client):
    cases = [
        (lead(as_of="1900-01-01T00:00:00Z"), "as_of", "1900-01-01T00:00:00+00:00"),
        (lead(created_at="2202-01-01T00:00:00Z"), "created_at", "2202-01-01T00:00:00+00:00"),
        (lead(touchpoints=[{**TOUCH, "occurred_at": "0202-11-20T09:30:00Z"}]),
         "touchpoints[0].occurred_at", "0202-11-20T09:30:00+00:00"),
    ]  # fmt: skip
    for bad, field, shown in cases:
        body = problems(client.post(SCORE, json={"leads": [bad]}, headers=auth("scorer")))
        (error,) = body["errors"]
        assert error["field"] == field
        assert shown in error["message"] and "outside the plausible range" in error["message"]
        assert error["expected"] == "a moment between 1970-01-01 and 2100-01-01"
    # the vectorised path (more than 32 touchpoints) names the same touchpoint
    many = lead(touchpoints=[TOUCH] * 40 + [{**TOUCH, "occurred_at": "2150-01-01T00:00:00Z"}])
    body = problems(client.post(SCORE, json={"leads": [many]}, headers=auth("scorer")))
    assert body["errors"][0]["field"] == "touchpoints[40].occurred_at"
    outcome = {"lead_id": "L-1", "outcome": "won", "closed_at": "1969-12-31T23:59:59Z"}
    body = problems(
        client.post("/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer"))
    )
    assert body["errors"][0]["field"] == "closed_at"
    assert body["errors"][0]["expected"] == "a moment between 1970-01-01 and 2100-01-01"


def test_as_of_before_created_at_is_refused(client):
    bad = lead(created_at="2026-11-10T00:00:00Z", as_of="2026-11-01T00:00:00Z")
    body = problems(client.post(SCORE, json={"leads": [lead("L-0"), bad]}, headers=auth("scorer")))
    (error,) = body["errors"]
    assert (error["lead_index"], error["field"]) == (1, "as_of")
    assert error["message"] == (
        "as_of 2026-11-01T00:00:00+00:00 is before created_at 2026-11-10T00:00:00+00:00"
    )
    assert error["expected"].startswith("as_of at or after the lead's creation")


@pytest.mark.parametrize(
    ("raw_value", "expected"),
    [
        (b"1e308", "a number at most 1e+15"),
        (b"-1e16", "a number at least -1e+15"),
        (b"Infinity", "a finite number"),
        (b"NaN", "a finite number"),
        (b"1e309", "a finite number"),
    ],
)
def test_touchpoint_values_must_be_finite_and_plausible(client, raw_value, expected):
    raw = (
        b'{"leads": [{"lead_id": "L-1", "touchpoints": [{"occurred_at": "2026-11-20T09:30:00Z", '
        b'"channel": "email", "activity": "email_open", "value": ' + raw_value + b"}]}]}"
    )
    response = client.post(
        SCORE, content=raw, headers={**auth("scorer"), "content-type": "application/json"}
    )
    (error,) = problems(response)["errors"]
    assert error["field"] == "touchpoints[0].value"
    assert expected in error["expected"]


def test_attribute_numbers_and_outcome_amounts_must_be_finite(client):
    raw = b'{"leads": [{"lead_id": "L-1", "attributes": {"TotalVisits": Infinity}}]}'
    response = client.post(
        SCORE, content=raw, headers={**auth("scorer"), "content-type": "application/json"}
    )
    (error,) = problems(response)["errors"]
    assert error["field"] == "attributes.TotalVisits"
    outcome = {
        "lead_id": "L-1",
        "outcome": "won",
        "closed_at": "2026-12-01T10:00:00Z",
        "amount": 1e300,
    }
    response = client.post("/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer"))
    (error,) = problems(response)["errors"]
    assert (error["field"], error["expected"]) == ("amount", "a number at most 1e+15")


def test_lead_id_true_is_refused_not_scored_as_1(client):
    for bad, message in ((True, "got a boolean"), (1.5, "got the number 1.5")):
        body = problems(client.post(SCORE, json={"leads": [lead(bad)]}, headers=auth("scorer")))
        assert body["errors"][0]["field"] == "lead_id"
        assert body["errors"][0]["message"] == message
        assert body["errors"][0]["expected"] == "a string or an integer"
    outcome = {"lead_id": True, "outcome": "won", "closed_at": "2026-12-01T10:00:00Z"}
    body = problems(
        client.post("/v1/outcomes", json={"outcomes": [outcome]}, headers=auth("scorer"))
    )
    assert body["errors"][0]["field"] == "lead_id"
    # integers are still read as text
    assert (
        client.post(SCORE, json={"leads": [lead(10023)]}, headers=auth("scorer")).status_code == 503
    )


# --- the key before the body ------------------------------------------------------------------

BODY_ROUTES = [
    ("POST", "/v1/score"),
    ("POST", "/v1/outcomes"),
    ("POST", "/v1/keys"),
    ("PUT", "/v1/policy"),
    ("POST", "/v1/policy/rollback"),
    ("POST", "/v1/policy/simulate"),
]


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_without_a_key_the_answer_is_401_whatever_the_body(client, method, path):
    response = client.request(
        method, path, content=b'{"not json', headers={"content-type": "application/json"}
    )
    body = problems(response, 401)
    assert body["detail"].startswith("missing API key")


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
def test_without_a_key_the_body_is_not_read(client, method, path):
    app = client.app
    reads: list[str] = []
    sent: list[dict] = []

    async def receive():
        reads.append("read")
        return {"type": "http.request", "body": b'{"leads": []}', "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json"),
                                     (b"content-length", b"13")],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip
    client.portal.call(app, scope, receive, send)
    assert sent[0]["status"] == 401
    assert reads == []


# --- slow and vanishing clients ---------------------------------------------------------------


def _scope(path="/v1/score", length=b"1000"):
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("testserver", 80),
        "headers": [(b"content-type", b"application/json"), (b"content-length", length),
                    (b"authorization", f"Bearer {KEYS['scorer']}".encode())],
    }  # fmt: skip


def test_a_client_disconnecting_mid_body_is_one_log_line_and_counted(client, caplog):
    messages = [
        {"type": "http.request", "body": b'{"leads": [{"lead_', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    counter = metrics.CLIENT_DISCONNECTS.labels("POST", "/v1/score")
    before = counter._value.get()
    with caplog.at_level(logging.INFO):
        client.portal.call(client.app, _scope(), receive, send)
    assert sent == []  # nobody to answer
    assert counter._value.get() == before + 1
    lines = [r for r in caplog.records if "disconnect" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [
        "client disconnected before sending the whole body: POST /v1/score (18 bytes received)"
    ]
    assert lines[0].exc_info is None
    # The fixture has no registry: the background model load's own error is expected here.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in errors if r.name != "serving.model_store"]
    exposition = client.get("/metrics").text
    assert 'leadscore_http_client_disconnects_total{method="POST",route="/v1/score"}' in exposition


def test_a_body_that_does_not_arrive_in_time_is_408(sqlite_url, no_registry):
    from serving.app import create_app

    app = create_app(make_settings(sqlite_url, no_registry, body_timeout_seconds=0.2))
    with TestClient(app, raise_server_exceptions=False) as client:
        first = [{"type": "http.request", "body": b'{"leads": [', "more_body": True}]
        sent: list[dict] = []

        async def receive():
            if first:
                return first.pop()
            await asyncio.sleep(5)  # the rest never comes
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        client.portal.call(client.app, _scope(), receive, send)
    assert sent[0]["status"] == 408
    body = orjson.loads(sent[1]["body"])
    assert body["detail"] == (
        "the request body did not arrive within 0.2 s (11 bytes received); send the whole body "
        "at once"
    )


# --- browser and HTTP hygiene -----------------------------------------------------------------


def test_security_headers_on_pages_and_answers(client):
    page = client.get("/ops")
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert (
        "unsafe-eval" not in csp
        and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    )
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    for answer in (client.get("/healthz"), client.get("/v1/model"), client.get("/nowhere")):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert (
            answer.headers["content-security-policy"]
            == "default-src 'none'; frame-ancestors 'none'"
        )
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_docs_and_redoc_come_from_an_installed_package(client):
    for path, script in (("/docs", "/docs/static/swagger-ui-bundle.js"),
                         ("/redoc", "/docs/static/redoc.standalone.js")):  # fmt: skip
        page = client.get(path)
        assert page.status_code == 200
        assert f'<script src="{script}"></script>' in page.text
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
        assert "<script>" not in page.text  # no inline script: the CSP allows none
        asset = client.get(script)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(
            "text/javascript"
        )
        assert len(asset.content) > 500_000
    init = client.get("/docs/static/swagger-init.js")
    assert 'url: "/openapi.json"' in init.text
    assert client.get("/docs/static/..%2F__init__.py").status_code == 404


def test_errors_are_problem_details_keeping_detail(client):
    body = problems(client.get("/v1/model"), 401)
    assert body["title"] == "Unauthorized"
    assert body["detail"].startswith("missing API key")
    body = problems(client.post("/v1/score", json={"leads": [lead()]}, headers=auth("scorer")), 503)
    assert (
        client.post("/v1/score", json={"leads": [lead()]}, headers=auth("scorer")).headers[
            "retry-after"
        ]
        == "5"
    )
    response = client.delete("/v1/policy", headers=auth("admin"))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert (
        response.json()["detail"]
        == "DELETE is not allowed on /v1/policy (allowed: GET, PUT); see /docs"
    )
