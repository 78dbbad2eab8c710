"""Ranking the sales hand-off by expected value through the policy API: saved and audited like
every field, refused with the reason for a model without a deal value model, and simulated
against ranking by probability with the expected revenue a week, on the 10-lead holdout worked
out by hand (tests/serving/policy_support.py):

    sorted by expected value  6500 4500 1500 1000  850  550  350  150   95   50
    probability               0.65 0.45 0.75 0.25 0.85 0.55 0.35 0.15 0.95 0.05
    won                          1    1    0    0    1    0    0    0    1    0

Two leads a week (4 of the 2 weeks' 10 leads): by expected value 6500, 4500, 1500, 1000 (value
threshold 1000): 2 wins = 1 a week, expected revenue 13500 / 2 = 6750 a week; by probability
0.95, 0.85, 0.75, 0.65 (threshold 65): 3 wins = 1.5 a week, (95 + 850 + 1500 + 6500) / 2 =
4472.5 a week.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.policy_support import (
    OPS_KEY,
    SCORER_KEY,
    HoldoutModel,
    auth,
    hand_model_store,
    settings_for,
    value_holdout,
)
from tests.serving.waiting import wait_for_model

OPS, SCORER = auth(OPS_KEY), auth(SCORER_KEY)


def _client(tmp_path, model: HoldoutModel, database_url: str | None = None):
    app = create_app(settings_for(tmp_path, database_url), model_store=hand_model_store(model))
    return TestClient(app)


@pytest.fixture
def valued(tmp_path, database_url):
    """A champion with a deal value model: its holdout carries each lead's expected value
    (the service on SQLite and on PostgreSQL: conftest's `database_url`)."""
    model = HoldoutModel(holdout=value_holdout(), value=object())
    with _client(tmp_path, model, database_url) as client:
        wait_for_model(client)
        yield client


@pytest.fixture
def unvalued(tmp_path):
    with _client(tmp_path, HoldoutModel()) as client:
        wait_for_model(client)
        yield client


def simulate(client, **body):
    return client.post("/v1/policy/simulate", json=body, headers=SCORER)


def test_simulation_fills_the_capacity_by_expected_value_and_compares_both_rankings(valued):
    answer = simulate(valued, rank_by="expected_value", by="capacity", value=2)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["rank_by"] == "expected_value" and result["currency"] == "EUR"
    chosen = result["chosen"]
    assert chosen["value_threshold"] == 1000 and chosen["threshold"] is None
    assert chosen["leads_per_week"] == 2 and chosen["expected_wins"] == 1
    assert chosen["expected_revenue"] == 6750
    rankings = result["rankings"]
    assert rankings["leads_per_week"] == 2
    assert rankings["probability"]["threshold"] == 65
    assert rankings["probability"]["expected_wins"] == 1.5
    assert rankings["probability"]["expected_revenue"] == 4472.5
    assert rankings["expected_value"]["expected_revenue"] == 6750
    proposed = result["proposed_policy"]
    assert proposed["rank_by"] == "expected_value" and proposed["value_threshold"] == 1000
    assert proposed["weekly_capacity"] == 2
    # the proposal is a valid change
    saved = valued.put(
        "/v1/policy", json={"policy": proposed, "reason": "fill by value"}, headers=OPS
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["policy"]["value_threshold"] == 1000


def test_probability_ranking_reports_expected_revenue_a_week_beside_wins(valued):
    result = simulate(valued, threshold=55).json()
    # the current policy (55) sends 0.95 .. 0.55: 95 + 850 + 1500 + 6500 + 550 over 2 weeks
    assert result["rank_by"] == "probability"
    assert result["current"]["expected_revenue"] == 4747.5
    assert result["current"]["expected_wins"] == 1.5
    assert (
        result["table"]["expected_revenue"][0]
        == sum([95, 850, 1500, 6500, 550, 4500, 350, 1000, 150, 50]) / 2
    )
    assert result["basis"]["expected_values"] is True


def test_by_value_ranked_by_expected_value_keeps_to_the_weekly_capacity(valued):
    # cost 1000 a lead: 6500, 4500 and 1500 are worth more (1000 breaks even: not sent)
    free = simulate(valued, rank_by="expected_value", by="value", cost_per_lead=1000).json()
    assert free["chosen"]["value_threshold"] == 1500
    assert free["chosen"]["net_value_per_week"] == (6500 + 4500 + 1500 - 3000) / 2
    capped = simulate(
        valued, rank_by="expected_value", by="value", cost_per_lead=1000, capacity=1
    ).json()
    assert capped["chosen"]["value_threshold"] == 4500 and capped["chosen"]["leads_per_week"] == 1
    assert capped["chosen"]["net_value_per_week"] == (6500 + 4500 - 2000) / 2


def test_put_rank_by_value_chooses_the_threshold_that_fills_the_capacity_and_audits_it(valued):
    answer = valued.put(
        "/v1/policy",
        json={"policy": {"rank_by": "expected_value", "weekly_capacity": 2}, "reason": "value"},
        headers={**OPS, "X-Actor": "Jane Doe"},
    )
    assert answer.status_code == 200, answer.text
    saved = answer.json()
    assert saved["policy"]["rank_by"] == "expected_value"
    assert saved["policy"]["value_threshold"] == 1000
    assert saved["changes"] == [
        "weekly_capacity: none -> 2",
        "rank_by: probability -> expected_value",
        "value_threshold: none -> 1,000.00 EUR",
    ]
    # the simulation now reads the policy in force as ranked by value
    current = simulate(valued).json()["current"]
    assert current["rank_by"] == "expected_value" and current["expected_revenue"] == 6750
    back = valued.put(
        "/v1/policy", json={"policy": {"rank_by": "probability"}, "reason": "back"}, headers=OPS
    ).json()
    assert back["changes"] == ["rank_by: expected_value -> probability"]
    history = valued.get("/v1/policy/history", headers=OPS).json()["versions"]
    assert [v["policy"]["rank_by"] for v in history] == ["probability", "expected_value"]


def test_rank_by_value_without_a_capacity_or_threshold_names_the_fields(valued):
    answer = valued.put(
        "/v1/policy", json={"policy": {"rank_by": "expected_value"}, "reason": "x"}, headers=OPS
    )
    assert answer.status_code == 422
    assert "policy.value_threshold" in answer.text and "weekly_capacity" in answer.text


def test_a_model_without_a_deal_value_model_cannot_rank_by_value(unvalued):
    answer = unvalued.put(
        "/v1/policy",
        json={"policy": {"rank_by": "expected_value", "value_threshold": 500}, "reason": "x"},
        headers=OPS,
    )
    assert answer.status_code == 422
    message = answer.json()["detail"] if "detail" in answer.json() else answer.text
    assert "policy.rank_by" in str(message)
    assert "model lead-scoring version 7 has no deal value model" in str(message)
    assert unvalued.get("/v1/policy", headers=OPS).json()["version"] == 0  # nothing saved
    simulated = simulate(unvalued, rank_by="expected_value", by="capacity", value=2)
    assert simulated.status_code == 409  # valid, but this holdout has no values
    assert "rank_by" in simulated.text and "no expected values" in simulated.text
    # ranking by probability still simulates, without revenue
    plain = simulate(unvalued, by="capacity", value=2).json()
    assert plain["rankings"] is None and "expected_revenue" not in plain["chosen"]


def test_precision_cannot_choose_a_value_threshold(valued):
    answer = simulate(valued, rank_by="expected_value", by="precision", value=0.5)
    assert answer.status_code == 422
    assert "capacity" in answer.text and "by precision" in answer.text
    # and the OpenAPI document says so: a client's schema validation refuses it first
    import jsonschema

    document = valued.get("/openapi.json").json()
    schema = {**document["components"]["schemas"]["SimulateRequest"],
              "components": document["components"]}  # fmt: skip
    for by in ("precision", "recall"):
        refused = {"rank_by": "expected_value", "by": by, "value": 0.5}
        assert not jsonschema.Draft202012Validator(schema).is_valid(refused)
    accepted = {"rank_by": "expected_value", "by": "capacity", "value": 2}
    assert jsonschema.Draft202012Validator(schema).is_valid(accepted)


def test_a_score_threshold_to_evaluate_proposes_ranking_by_probability(valued):
    # ranked by expected value, "evaluate threshold 65" is still a score threshold
    result = simulate(valued, rank_by="expected_value", threshold=65).json()
    assert result["chosen"]["threshold"] == 65 and result["chosen"]["expected_wins"] == 1.5
    assert result["chosen"]["expected_revenue"] == 4472.5
    proposed = result["proposed_policy"]
    assert proposed["rank_by"] == "probability" and proposed["sales_threshold"] == 65


def test_recent_scores_cannot_be_ranked_by_value_a_valid_request_the_data_refuses(valued):
    # found by schemathesis: a schema-valid request, refused by what the score log holds (409)
    import sqlalchemy as sa

    from serving.db import score_log, utcnow

    engine = valued.app.state.services.engine
    with engine.begin() as connection:
        connection.execute(sa.insert(score_log), [{
            "request_id": "r", "lead_id": f"L-{i}", "model_name": "m", "model_version": "1",
            "policy_version": 0, "probability": i / 10, "score": 10 * i, "grade": "C",
            "decision": "nurture", "reasons": [], "scored_at": utcnow(), "api_key_name": "k",
        } for i in range(10)])  # fmt: skip
    answer = simulate(valued, source="recent", rank_by="expected_value", by="value", value=8e14)
    assert answer.status_code == 409, answer.text
    assert "recent scores do not record an expected value" in answer.json()["detail"]
    assert simulate(valued, source="recent", by="value", value=8e14).status_code == 200
