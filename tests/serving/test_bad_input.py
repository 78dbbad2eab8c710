"""Bad requests get a 4xx whose JSON names the lead index, the field and what is expected.

In strict mode (`?strict=true`) a bad lead refuses the whole request, as every request did before
per-lead rejections (tests/serving/test_vocabulary.py has the default mode). These checks run
before the model is needed, so the app here has none loaded; after each bad request a valid one
still reaches the model check (the process is unaffected).
"""

from __future__ import annotations

import orjson
import pytest

from tests.serving.conftest import auth

TOUCH = {"occurred_at": "2026-11-20T09:30:00Z", "channel": "email", "activity": "email_open"}


def lead(lead_id="L-1", **extra):
    return {
        "lead_id": lead_id,
        "attributes": {"industry": "retail"},
        "touchpoints": [TOUCH],
        **extra,
    }


@pytest.fixture
def post(sqlite_client_without_model):
    client = sqlite_client_without_model

    def send(body, raw: bytes | None = None, headers=None):
        headers = {**auth("scorer"), **(headers or {})}
        url = "/v1/score?strict=true"
        if raw is not None:
            response = client.post(
                url, content=raw, headers={**headers, "content-type": "application/json"}
            )
        else:
            response = client.post(url, json=body, headers=headers)
        # Whatever came before, the service still answers a good request (503: no model here).
        assert (
            client.post("/v1/score", json={"leads": [lead()]}, headers=auth("scorer")).status_code
            == 503
        )
        return response

    return send


def only_error(response, status=422):
    assert response.status_code == status, response.text
    body = response.json()
    assert len(body["errors"]) == 1, body
    return body, body["errors"][0]


def test_malformed_json(post):
    body, error = only_error(post(None, raw=b'{"leads": [{"lead_id": "L-1",'))
    assert error["message"].startswith("malformed JSON")
    assert error["expected"] == 'a JSON object such as {"leads": [...]}'
    assert body["detail"].startswith("malformed JSON")


def test_body_that_is_not_an_object(post):
    _, error = only_error(post([lead()]))
    assert error["message"] == "the body must be a JSON object, got an array"


def test_missing_lead_id_names_the_lead(post):
    second = lead()
    del second["lead_id"]
    body, error = only_error(post({"leads": [lead("L-0"), second]}))
    assert error == {
        "lead_index": 1,
        "field": "lead_id",
        "message": "lead_id is required but missing",
    }
    assert body["detail"] == "lead 1 lead_id: lead_id is required but missing"


def test_wrong_types_name_field_and_expectation(post):
    bad_value = lead("L-7")
    bad_value["touchpoints"] = [TOUCH, {**TOUCH, "value": "lots"}]
    _, error = only_error(post({"leads": [lead("L-0"), bad_value]}))
    assert error == {
        "lead_index": 1,
        "lead_id": "L-7",
        "field": "touchpoints[1].value",
        "message": "got the string 'lots'",
        "expected": "a number",
    }
    _, error = only_error(post({"leads": [lead("L-0", attributes=["retail"])]}))
    assert (error["lead_index"], error["field"], error["expected"]) == (
        0,
        "attributes",
        "a JSON object",
    )
    _, error = only_error(
        post({"leads": [lead("L-0", attributes={"industry": {"name": "retail"}})]})
    )
    assert error["field"] == "attributes.industry"
    assert error["message"] == "got an object"
    assert error["expected"] == "a string, a number, a boolean or null"


def test_duplicate_lead_ids(post):
    body, error = only_error(post({"leads": [lead("L-1"), lead("L-2"), lead("L-1")]}))
    assert error == {
        "lead_index": 2,
        "lead_id": "L-1",
        "field": "lead_id",
        "message": "lead_id 'L-1' was already given for lead 0",
        "expected": "each lead at most once per request",
    }
    assert body["detail"].startswith("duplicate lead ids in one request")


def test_known_spellings_of_channels_are_accepted(post):
    messy = lead("L-3")
    messy["touchpoints"] = [{**TOUCH, "channel": "Google Ads", "activity": "Email Opened"}]
    assert post({"leads": [messy]}).status_code == 503  # valid: reaches the model check


def test_timestamp_without_zone(post):
    bad = lead("L-4", as_of="2026-11-23T08:00:00")
    _, error = only_error(post({"leads": [bad]}))
    assert error["field"] == "as_of"
    assert error["message"] == "timestamp '2026-11-23T08:00:00' has no time zone"
    assert error["expected"] == "a timestamp with a zone: add Z or an offset such as +02:00"
    bad = lead("L-5")
    bad["touchpoints"] = [{**TOUCH, "occurred_at": "2026-11-20 09:30"}]
    _, error = only_error(post({"leads": [bad]}))
    assert (error["lead_index"], error["field"]) == (0, "touchpoints[0].occurred_at")


def test_more_than_1000_leads(post):
    body, error = only_error(post({"leads": [{"lead_id": f"L-{i}"} for i in range(1001)]}))
    assert error["field"] == "leads"
    assert error["message"] == "too many leads: got 1001, the limit is 1000 per request"
    assert "split the batch" in error["expected"]


def test_no_leads(post):
    _, error = only_error(post({"leads": []}))
    assert error["message"] == "no leads given"


def test_body_over_the_size_limit_is_413(post):
    huge = {"leads": [lead(f"L-{i}", attributes={"notes": "x" * 10_000}) for i in range(900)]}
    response = post(None, raw=orjson.dumps(huge))
    assert response.status_code == 413
    assert response.json()["detail"].startswith(
        "request body is larger than the limit of 8000000 bytes"
    )


def test_body_over_the_size_limit_without_content_length_is_413(sqlite_client_without_model):
    def chunks():
        for _ in range(100):
            yield b" " * 100_000

    response = sqlite_client_without_model.post(
        "/v1/score",
        content=chunks(),
        headers={**auth("scorer"), "content-type": "application/json"},
    )
    assert response.status_code == 413


def test_many_problems_are_all_listed(post):
    leads = [lead(f"L-{i}", as_of="2026-11-23T08:00:00") for i in range(3)]
    body = post({"leads": leads}).json()
    assert [e["lead_index"] for e in body["errors"]] == [0, 1, 2]
    assert body["detail"].endswith("; and 2 more problems")


def test_unknown_endpoint_and_method(sqlite_client_without_model):
    client = sqlite_client_without_model
    response = client.get("/v1/scores")
    assert response.status_code == 404
    assert response.json()["detail"] == "no such endpoint: GET /v1/scores; see /docs"
    response = client.get("/v1/score", headers=auth("scorer"))
    assert response.status_code == 405
