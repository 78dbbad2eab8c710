"""GET /v1/reports/exploration on SQLite and PostgreSQL: the figures of
tests/features/report/test_exploration.py (worked out by hand there), from the score log and the
outcomes table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.db import outcomes, score_log
from tests.serving.policy_support import (
    ADMIN_KEY,
    OPS_KEY,
    SCORER_KEY,
    auth,
    hand_model_store,
    settings_for,
)
from tests.serving.waiting import wait_for_model

T0 = datetime(2026, 3, 2, tzinfo=UTC)
URL = "/v1/reports/exploration"
PERIOD = {"from": T0.isoformat(), "to": (T0 + timedelta(weeks=2)).isoformat()}

SCORES = [  # lead, day, decision, exploration (each lead's latest counts)
    ("L1", 0, "sales", True),
    ("L2", 0, "sales", True),
    ("L3", 1, "sales", True),
    ("L4", 2, "sales", True),
    ("L5", 3, "nurture", False),
    ("L6", 1, "nurture", False),
    ("L6", 5, "sales", False),
    ("L7", 4, "disqualify", False),
    ("L8", 2, "sales", False),
    ("L8", 9, "nurture", False),
    ("L9", 10, "nurture", False),
    ("L10", 11, "nurture", False),
    ("L11", 15, "sales", True),  # after the period: not counted
    ("L12", -1, "nurture", False),  # before it
]
WON = {"L1": True, "L2": False, "L3": False, "L5": True, "L6": True, "L7": False, "L10": False}


@pytest.fixture
def client(tmp_path, database_url):
    app = create_app(settings_for(tmp_path, database_url), model_store=hand_model_store())
    with TestClient(app) as client:
        wait_for_model(client)
        engine = client.app.state.services.engine
        with engine.begin() as connection:
            connection.execute(score_log.insert(), [
                {"request_id": "r", "lead_id": lead, "model_name": "lead-scoring",
                 "model_version": "7", "policy_version": 1, "probability": 0.3, "score": 30,
                 "grade": "C", "decision": decision, "exploration": explored,
                 "reasons": {"for": [], "against": [], "policy": []},
                 "scored_at": T0 + timedelta(days=day, hours=9), "api_key_name": "crm"}
                for lead, day, decision, explored in SCORES
            ])  # fmt: skip
            connection.execute(outcomes.insert(), [
                {"lead_id": lead, "won": won, "closed_at": T0 + timedelta(days=20), "amount": None,
                 "reported_at": T0 + timedelta(days=20), "updated_at": T0 + timedelta(days=20)}
                for lead, won in WON.items()
            ])  # fmt: skip
        yield client


def test_the_figures_worked_out_by_hand(client):
    answer = client.get(URL, params=PERIOD, headers=auth(OPS_KEY))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["weeks"] == 2.0
    assert body["held_back"] == 8 and body["held_back_per_week"] == 4.0
    assert (body["explored"], body["explored_won"], body["explored_lost"]) == (4, 1, 2)
    assert body["explored_open"] == 1
    assert body["win_rate"] == pytest.approx(1 / 3)
    assert body["win_rate_low"] == pytest.approx(0.061492, abs=1e-6)
    assert body["win_rate_high"] == pytest.approx(0.792340, abs=1e-6)
    assert body["forgone_wins_per_week"] == pytest.approx(1.333333, abs=1e-6)
    assert body["forgone_wins_per_week_low"] == pytest.approx(0.245968, abs=1e-6)
    assert body["forgone_wins_per_week_high"] == pytest.approx(3.169362, abs=1e-6)
    assert datetime.fromisoformat(body["from"]) == T0
    # a scorer key reads it too (and admin, who may do everything); no key, nothing
    assert client.get(URL, params=PERIOD, headers=auth(SCORER_KEY)).json() == body
    assert client.get(URL, params=PERIOD, headers=auth(ADMIN_KEY)).json() == body
    assert client.get(URL, params=PERIOD).status_code == 401


def test_a_period_without_explored_outcomes_has_no_rate(client):
    period = {"from": (T0 + timedelta(days=9)).isoformat(), "to": PERIOD["to"]}
    body = client.get(URL, params=period, headers=auth(OPS_KEY)).json()
    # L6's sale on day 5 is outside; L8, L9, L10 held back in 5 days
    assert body["held_back"] == 3 and body["explored"] == 0
    assert body["win_rate"] is None and body["forgone_wins_per_week"] is None


def test_a_backwards_period_is_refused_with_the_fix(client):
    answer = client.get(
        URL, params={"from": PERIOD["to"], "to": PERIOD["from"]}, headers=auth(OPS_KEY)
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "from (2026-03-16T00:00:00+00:00) must be before to (2026-03-02T00:00:00+00:00): swap them"
    )


def test_moments_outside_the_plausible_range_are_refused_with_the_fix(client):
    answer = client.get(URL, params={"to": "0001-01-02T00:00:00Z"}, headers=auth(OPS_KEY))
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "to: timestamp 0001-01-02T00:00:00+00:00 is outside the plausible range (expected a "
        "moment between 1970-01-01 and 2100-01-01)"
    )


@pytest.mark.parametrize("number", ["0.5", "2026", "4.7901710621785666e-116", "-1E3", " 7 "])
def test_a_number_is_not_read_as_unix_seconds(client, number):
    # the second and third: found by schemathesis (a 200 answer for a period from 1970)
    for name in ("to", "from"):
        answer = client.get(URL, params={name: number}, headers=auth(OPS_KEY))
        assert answer.status_code == 422
        assert answer.json()["errors"] == [
            {
                "field": name,
                "message": f"{number!r} is a number",
                "expected": "an ISO 8601 moment with a zone, e.g. 2026-11-01T00:00:00Z",
            }
        ]
