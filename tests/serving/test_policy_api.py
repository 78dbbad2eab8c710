"""The policy API: read, change (ops only), audit, roll back, and simulate each way of choosing a
threshold, checked against numbers worked out by hand on the 10-lead holdout in policy_support."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.db import score_log
from tests.serving.policy_support import (
    ADMIN_KEY,
    OPS_KEY,
    SCORER_KEY,
    auth,
    hand_model_store,
    settings_for,
)

OPS, SCORER, ADMIN = auth(OPS_KEY), auth(SCORER_KEY), auth(ADMIN_KEY)


@pytest.fixture
def client(tmp_path, database_url):
    """The service on SQLite and on PostgreSQL (conftest's `database_url`)."""
    app = create_app(settings_for(tmp_path, database_url), model_store=hand_model_store())
    with TestClient(app) as client:
        yield client


def put(client, headers=OPS, **body):
    return client.put("/v1/policy", json=body, headers=headers)


# --- reading and changing -----------------------------------------------------------------------


def test_before_any_change_the_models_default_policy_is_in_force(client):
    body = client.get("/v1/policy", headers=SCORER).json()
    assert body["version"] == 0 and body["source"] == "model default"
    assert body["policy"]["sales_threshold"] == 55 and body["policy"]["nurture_threshold"] == 25
    assert [r["fact"] for r in body["policy"]["rules"]] == ["do_not_contact", "demo_request"]


def test_ops_change_is_versioned_and_audited(client):
    answer = put(client, policy={"sales_threshold": 65}, reason="sales can take 2 leads a week")
    assert answer.status_code == 200, answer.text
    saved = answer.json()
    assert saved["version"] == 1 and saved["source"] == "saved"
    assert (
        saved["created_by"] == "marketing-ops"
        and saved["reason"] == "sales can take 2 leads a week"
    )
    assert saved["previous_version"] == 0
    assert saved["changes"] == ["sales_threshold: 55 -> 65"]
    # fields left out keep their value
    assert saved["policy"]["nurture_threshold"] == 25
    assert client.get("/v1/policy", headers=OPS).json()["policy"]["sales_threshold"] == 65

    put(client, policy={"nurture_threshold": 30, "rules": []}, reason="no hard rules for the pilot")
    history = client.get("/v1/policy/history", headers=OPS).json()
    assert history["current_version"] == 2
    assert [v["version"] for v in history["versions"]] == [2, 1]
    latest = history["versions"][0]
    assert latest["previous_version"] == 1 and latest["action"] == "set"
    assert latest["changes"] == [
        "nurture_threshold: 25 -> 30",
        "hard rules: do_not_contact -> disqualify, demo_request -> sales -> none",
    ]
    assert datetime.fromisoformat(latest["created_at"]) > datetime.now(UTC) - timedelta(minutes=1)


def test_admin_may_change_the_policy(client):
    assert (
        put(client, ADMIN, policy={"sales_threshold": 70}, reason="admin fix").json()["created_by"]
        == "root"
    )


def test_a_scorer_key_cannot_change_the_policy(client):
    answer = put(client, SCORER, policy={"sales_threshold": 10}, reason="more leads please")
    assert answer.status_code == 403
    assert answer.json()["detail"] == "the key 'crm' has role scorer; this needs role admin or ops"
    assert client.get("/v1/policy", headers=OPS).json()["version"] == 0


def test_a_missing_or_wrong_key_is_refused(client):
    assert (
        client.put("/v1/policy", json={"policy": {"sales_threshold": 1}, "reason": "x"}).status_code
        == 401
    )
    answer = client.get("/v1/policy/history", headers=auth("not-a-real-key-at-all"))
    assert answer.status_code == 401 and "invalid or revoked API key" in answer.json()["detail"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (
            {"policy": {"nurture_threshold": 70}, "reason": "x"},
            422,
            "policy: nurture_threshold (70.0) must not be above sales_threshold (55.0): "
            "lower nurture_threshold or raise sales_threshold",
        ),
        (
            {"policy": {"sales_threshold": 101}, "reason": "x"},
            422,
            "policy.sales_threshold: Input should be less than or equal to 100",
        ),
        (
            {"policy": {}, "reason": "x"},
            422,
            "policy: nothing to change; give at least one of sales_threshold",
        ),
        ({"policy": {"sales_threshold": 60}}, 422, "reason is required but missing"),
        (
            {"policy": {"sales_threshold": 60}, "reason": "   "},
            422,
            "a policy change needs a reason",
        ),
        ({"policy": {"threshold": 60}, "reason": "x"}, 422, "unknown field 'threshold'"),
        (
            {
                "policy": {"rules": [{"fact": "vip", "decision": "sales", "reason": "x"}]},
                "reason": "x",
            },
            422,
            "unknown fact 'vip'; rules can use: do_not_contact, demo_request",
        ),
        (
            {"policy": {"sales_threshold": 60}, "reason": "x", "expected_version": 4},
            409,
            "the policy changed since you read it: you edited version 4, the current one is version 0",
        ),
    ],
)
def test_bad_changes_are_refused_with_what_to_fix(client, body, status, message):
    answer = client.put("/v1/policy", json=body, headers=OPS)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert client.get("/v1/policy", headers=OPS).json()["version"] == 0


def test_expected_version_guards_against_lost_updates(client):
    first = put(client, policy={"sales_threshold": 60}, reason="a", expected_version=0)
    assert first.status_code == 200
    stale = put(client, policy={"sales_threshold": 40}, reason="b", expected_version=0)
    assert stale.status_code == 409
    assert "current one is version 1 (saved by marketing-ops); reload it" in stale.json()["detail"]


def test_rollback_restores_an_old_version_as_a_new_audited_one(client):
    put(client, policy={"sales_threshold": 65}, reason="v1")
    put(client, policy={"sales_threshold": 80, "nurture_threshold": 40}, reason="v2")
    answer = client.post(
        "/v1/policy/rollback", json={"version": 1, "reason": "v2 starved sales"}, headers=OPS
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["version"] == 3 and body["action"] == "rollback" and body["restored_version"] == 1
    assert body["policy"]["sales_threshold"] == 65 and body["policy"]["nurture_threshold"] == 25
    assert body["changes"] == ["sales_threshold: 80 -> 65", "nurture_threshold: 40 -> 25"]
    assert client.get("/v1/policy", headers=SCORER).json()["version"] == 3
    # back to the model's own default
    zero = client.post(
        "/v1/policy/rollback", json={"version": 0, "reason": "reset"}, headers=OPS
    ).json()
    assert zero["version"] == 4 and zero["policy"]["sales_threshold"] == 55


def test_rollback_errors(client):
    missing = client.post("/v1/policy/rollback", json={"version": 9, "reason": "x"}, headers=OPS)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "there is no policy version 9: no policy was saved yet"
    put(client, policy={"sales_threshold": 65}, reason="v1")
    missing = client.post("/v1/policy/rollback", json={"version": 9, "reason": "x"}, headers=OPS)
    assert missing.json()["detail"] == "there is no policy version 9; versions go from 1 to 1"
    refused = client.post("/v1/policy/rollback", json={"version": 1, "reason": "x"}, headers=SCORER)
    assert refused.status_code == 403


# --- simulation on the hand-made holdout --------------------------------------------------------


def simulate(client, headers=SCORER, **body):
    answer = client.post("/v1/policy/simulate", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_simulate_a_given_threshold(client):
    body = simulate(client, threshold=50)
    assert body["basis"] == {
        "source": "holdout",
        "leads": 10,
        "weeks": 2.0,
        "leads_per_week": 5.0,
        "wins": 4,
        "observed_outcomes": True,
        "description": "holdout of model lead-scoring version 7: 10 leads over 2.0 weeks with known outcomes",
    }
    chosen = body["chosen"]
    assert chosen["threshold"] == 50
    assert chosen["leads_per_week"] == pytest.approx(2.5)
    assert chosen["share_to_sales"] == pytest.approx(0.5)
    assert chosen["expected_wins"] == pytest.approx(1.5)
    assert chosen["precision"] == pytest.approx(0.6)
    assert chosen["recall"] == pytest.approx(0.75)
    assert chosen["lift"] == pytest.approx(1.5)
    # the policy in force (55) sends the same five leads
    assert body["current"]["sales_threshold"] == 55 and body["current"]["version"] == 0
    assert body["current"]["leads_per_week"] == pytest.approx(2.5)
    assert body["table"]["threshold"] == list(range(101))
    assert body["table"]["precision"][96] is None  # nobody sent: no precision


@pytest.mark.parametrize(
    "request_body, threshold, per_week, wins, precision, recall",
    [
        ({"by": "capacity", "value": 2}, 65, 2.0, 1.5, 0.75, 0.75),
        ({"by": "capacity", "value": 1.2}, 85, 1.0, 1.0, 1.0, 0.5),
        ({"by": "precision", "value": 0.75}, 56, 2.0, 1.5, 0.75, 0.75),
        ({"by": "recall", "value": 1.0}, 45, 3.0, 2.0, 4 / 6, 1.0),
        ({"by": "recall", "value": 0.75}, 65, 2.0, 1.5, 0.75, 0.75),
        ({"by": "value", "value": 4}, 45, 3.0, 2.0, 4 / 6, 1.0),
        ({"by": "value", "value": 3000, "cost_per_lead": 1000}, 45, 3.0, 2.0, 4 / 6, 1.0),
    ],
)
def test_simulate_each_way_of_choosing(
    client, request_body, threshold, per_week, wins, precision, recall
):
    body = simulate(client, include_table=False, **request_body)
    chosen = body["chosen"]
    assert chosen["threshold"] == threshold
    assert chosen["leads_per_week"] == pytest.approx(per_week)
    assert chosen["expected_wins"] == pytest.approx(wins)
    assert chosen["precision"] == pytest.approx(precision)
    assert chosen["recall"] == pytest.approx(recall)
    assert chosen["lift"] == pytest.approx(precision / 0.4)
    assert body["proposed_policy"]["sales_threshold"] == threshold
    assert body["proposed_policy"]["nurture_threshold"] == 25
    assert "table" not in body


def test_simulate_by_value_reports_net_value(client):
    # 2 wins a week x 3000 - 3 leads a week x 1000
    body = simulate(client, by="value", value=3000, cost_per_lead=1000, include_table=False)
    assert body["chosen"]["net_value_per_week"] == pytest.approx(3000.0)


def test_simulate_then_save_the_proposal(client):
    proposal = simulate(client, OPS, by="capacity", value=2)["proposed_policy"]
    saved = put(client, policy=proposal, reason="capacity 2 a week").json()
    assert saved["policy"]["sales_threshold"] == 65


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"by": "recall", "value": 30},
            "target recall must be between 0 and 1 (e.g. 0.4 for 40%), got 30.0",
        ),
        (
            {"by": "capacity"},
            "value is required when choosing by capacity: give how many leads a week sales can take",
        ),
        (
            {"by": "volume", "value": 3},
            "by: Input should be 'value', 'capacity', 'precision' or 'recall'",
        ),
        ({"threshold": 120}, "threshold: Input should be less than or equal to 100"),
    ],
)
def test_simulate_errors_say_what_to_change(client, body, message):
    answer = client.post("/v1/policy/simulate", json=body, headers=SCORER)
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["detail"]


def test_simulate_on_recent_scores_without_any_says_so(client):
    answer = client.post(
        "/v1/policy/simulate", json={"source": "recent", "days": 7}, headers=SCORER
    )
    assert answer.status_code == 409
    assert answer.json()["detail"] == (
        "no leads were scored in the last 7 days; simulate on the holdout (source=holdout) or widen `days`"
    )


def log_scores(engine, rows):
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            score_log.insert(),
            [
                dict(
                    request_id=str(uuid.uuid4()),
                    lead_id=lead,
                    model_name="lead-scoring",
                    model_version="7",
                    policy_version=0,
                    probability=p,
                    score=round(100 * p),
                    grade=grade,
                    decision="sales",
                    reasons=[],
                    scored_at=now - timedelta(days=age),
                    api_key_name="crm",
                )
                for lead, p, grade, age in rows
            ],
        )


def test_simulate_on_recent_scores_uses_latest_score_per_lead_and_expected_wins(client):
    # lead a was scored twice: its latest score (0.8) counts; the window holds 14 days = 2 weeks
    log_scores(
        client.app.state.services.engine,
        [
            ("a", 0.9, "A", 14),
            ("a", 0.8, "A", 1),
            ("b", 0.6, "A", 2),
            ("c", 0.3, "C", 3),
            ("d", 0.1, "D", 4),
            ("old", 0.5, "B", 40),
        ],
    )
    body = simulate(client, source="recent", days=28, threshold=50)
    assert body["basis"]["leads"] == 4 and body["basis"]["wins"] is None
    assert body["basis"]["weeks"] == pytest.approx(2.0, abs=1e-3)
    chosen = body["chosen"]
    # a (0.8) and b (0.6) are sent: 1 lead a week, 1.4 expected wins in 2 weeks
    assert chosen["leads_per_week"] == pytest.approx(1.0, rel=1e-3)
    assert chosen["expected_wins"] == pytest.approx(0.7, rel=1e-3)
    assert chosen["precision"] == pytest.approx(0.7)
    assert chosen["recall"] == pytest.approx(1.4 / 1.8)
    assert chosen["lift"] == pytest.approx(0.7 / 0.45)
    by_capacity = simulate(client, source="recent", days=28, by="capacity", value=1.5)["chosen"]
    assert by_capacity["threshold"] == 30  # a, b and c (score 30): 3 leads in 2 weeks
    # the best expected precision is lead a alone (0.8)
    answer = client.post(
        "/v1/policy/simulate",
        headers=SCORER,
        json={"source": "recent", "days": 28, "by": "precision", "value": 0.9},
    )
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "no threshold reaches precision 0.900; the highest is 0.800 at threshold 61: lower the target"
    )


def test_openapi_documents_the_policy_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"get", "put"} <= set(paths["/v1/policy"])
    assert "post" in paths["/v1/policy/simulate"] and "get" in paths["/v1/policy/history"]
