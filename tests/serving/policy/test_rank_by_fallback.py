"""A policy that ranks by expected value, then a champion without a deal value model: scoring
goes on by probability (the policy's sales_threshold) and every answer says so."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.conftest import auth, demo_records, model_settings
from tests.serving.waiting import wait_for_model


def _decisions(answer: dict) -> dict[str, str]:
    return {r["lead_id"]: r["decision"] for r in answer["results"]}


def test_a_champion_without_a_value_model_ranks_by_probability_and_says_so(trained_model, tmp_path):
    records = demo_records(trained_model, 40)
    database = f"sqlite:///{tmp_path / 'leadscore.db'}"
    with TestClient(create_app(model_settings(trained_model, database))) as api:
        loaded = wait_for_model(api)
        assert loaded.scorer.value is not None  # the demo model has a deal value model
        by_probability = api.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
        saved = api.put("/v1/policy", headers=auth("ops"), json={
            "policy": {"rank_by": "expected_value", "value_threshold": 1e12},
            "reason": "fill the team's week with the biggest deals",
        })  # fmt: skip
        assert saved.status_code == 200, saved.text
        by_value = api.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
        assert not [w for w in by_value["warnings"] if w["code"] == "ranked_by_probability_instead"]
        # no lead reaches 1e12 of expected value: only a hard rule sends one to sales
        assert all(r["policy_reasons"] for r in by_value["results"] if r["decision"] == "sales")

        loaded.scorer.value = None  # a champion trained without deal amounts
        answer = api.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert _decisions(body) == _decisions(by_probability.json())  # the same sales_threshold
    [warning] = [w for w in body["warnings"] if w["code"] == "ranked_by_probability_instead"]
    assert warning["count"] == 40 and warning["read_as"] == "probability"
    assert "has no deal value model" in warning["message"]
    assert "go to sales from score" in warning["message"]
