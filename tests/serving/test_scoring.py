"""POST /v1/score and GET /v1/model with a real model trained on demo data and loaded from MLflow."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from features.policy.rules import Policy
from serving.db import make_engine, score_log
from tests.serving.conftest import auth, demo_records
from tests.serving.waiting import wait_for


def test_score_one_lead(scoring_app, trained_model):
    record = demo_records(trained_model, 1)[0]
    response = scoring_app.post("/v1/score", json={"leads": [record]}, headers=auth("scorer"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "lead-scoring", "version": trained_model.versions[0]}
    assert body["policy_version"] == 0
    [lead] = body["results"]
    assert lead["lead_id"] == record["lead_id"]
    assert 0 < lead["probability"] < 1
    assert lead["score"] == round(100 * lead["probability"])
    # the model's default policy (version 0): grades by share of its holdout, set at training
    policy = Policy.model_validate(
        scoring_app.get("/v1/policy", headers=auth("scorer")).json()["policy"]
    )
    assert policy.grades.by == "share"
    expected_grade = (
        next(g for g in "ABC" if lead["score"] >= getattr(policy.grades, g))
        if lead["score"] >= policy.grades.C
        else "D"
    )
    assert lead["grade"] == expected_grade
    if not lead["policy_reasons"]:
        expected = (
            "sales"
            if lead["score"] >= policy.sales_threshold
            else "nurture"
            if lead["score"] >= policy.nurture_threshold
            else "disqualify"
        )
        assert lead["decision"] == expected
    assert lead["model"] == body["model"]


def test_reasons_name_features_with_the_sign_of_their_effect(scoring_app, trained_model):
    # The fixture's model is fitted on 600 demo leads and nearly flat: a lead whose facts move
    # its probability too little has no reasons, so 20 leads are scored and some must have them.
    records = demo_records(trained_model, 20)
    body = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    features = set(scoring_app.get("/v1/model", headers=auth("scorer")).json()["features"])

    def named(fact: str) -> bool:  # a feature, or the fact its windows share (visit_count_7d ...)
        return fact in features or any(f.startswith(fact + "_") for f in features)

    assert any(lead["reasons_for"] or lead["reasons_against"] for lead in body["results"])
    for lead in body["results"]:
        assert len(lead["reasons_for"]) <= 3 and len(lead["reasons_against"]) <= 3
        for reason in lead["reasons_for"]:
            assert reason["effect"] > 0 and named(reason["feature"]) and reason["text"]
        for reason in lead["reasons_against"]:
            assert reason["effect"] < 0 and named(reason["feature"]) and reason["text"]


def test_scores_are_logged_with_model_and_policy_version(scoring_app, trained_model):
    records = demo_records(trained_model, 5)  # scored as of 2025-06-01, a past moment
    records[1]["as_of"] = "2025-05-31T19:00:00-05:00"  # the same moment, sent from New York
    del records[4]["as_of"]  # as of now
    body = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer")).json()
    engine = make_engine(scoring_app.app.state.services.settings.database_url)
    query = (
        sa.select(score_log)
        .where(score_log.c.request_id == body["request_id"])
        .order_by(score_log.c.id)
    )
    writer = scoring_app.app.state.services.score_log
    wait_for(lambda: writer.pending == 0, "the score log writer did not write the rows")
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    engine.dispose()
    assert [r.lead_id for r in rows] == [r["lead_id"] for r in records]
    for row, result in zip(rows, body["results"], strict=True):
        assert row.probability == result["probability"]
        assert (row.score, row.grade, row.decision) == (
            result["score"],
            result["grade"],
            result["decision"],
        )
        assert row.model_version == trained_model.versions[0] and row.policy_version == 0
        assert row.reasons["for"] == result["reasons_for"]
        assert row.api_key_name == "scorer-key"
    # the moment each was scored as of (a replay's is not today), beside when it was scored
    as_of = [pd.Timestamp(r.as_of).tz_localize(None) for r in rows]
    scored_at = [pd.Timestamp(r.scored_at).tz_localize(None) for r in rows]
    assert as_of[:4] == [pd.Timestamp("2025-06-01")] * 4
    assert as_of[4] == scored_at[4] and scored_at[0] > pd.Timestamp("2026-01-01")


def test_a_thousand_leads_in_one_request(scoring_app, trained_model):
    records = demo_records(trained_model, 500)
    leads = records + [{**r, "lead_id": r["lead_id"] + "-b"} for r in records]
    response = scoring_app.post("/v1/score", json={"leads": leads}, headers=auth("scorer"))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["lead_id"] for r in results] == [r["lead_id"] for r in leads]
    # Same lead, same moment: same probability, whatever batch it was scored in.
    assert [r["probability"] for r in results[:500]] == [r["probability"] for r in results[500:]]


def test_concurrent_requests_get_their_own_leads(scoring_app, trained_model):
    from concurrent.futures import ThreadPoolExecutor

    records = demo_records(trained_model, 24)
    alone = {
        r["lead_id"]: r["probability"]
        for r in scoring_app.post(
            "/v1/score", json={"leads": records}, headers=auth("scorer")
        ).json()["results"]
    }

    def one(record):
        response = scoring_app.post("/v1/score", json={"leads": [record]}, headers=auth("scorer"))
        return record["lead_id"], response.json()["results"][0]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, records))
    for lead_id, result in answers:
        assert result["lead_id"] == lead_id
        assert result["probability"] == alone[lead_id]


def test_get_model(scoring_app, trained_model):
    response = scoring_app.get("/v1/model", headers=auth("ops"))
    assert response.status_code == 200
    info = response.json()
    assert (info["name"], info["version"], info["alias"]) == (
        "lead-scoring",
        trained_model.versions[0],
        None,
    )
    scorer = scoring_app.app.state.services.models.current.scorer
    assert info["trained_at"] == str(scorer.metadata["trained_at"])
    assert info["metrics"] == scorer.metadata["metrics"]
    assert 0 <= info["metrics"]["roc_auc"] <= 1
    assert info["features"] == list(scorer.feature_names)


def test_metrics_after_scoring(scoring_app, trained_model):
    records = demo_records(trained_model, 3)
    scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
    scoring_app.post("/v1/score", json={"leads": []}, headers=auth("scorer"))
    text = scoring_app.get("/metrics").text
    assert (
        f'leadscore_model_info{{name="lead-scoring",version="{trained_model.versions[0]}"}} 1.0'
        in text
    )
    assert 'leadscore_http_requests_total{method="POST",route="/v1/score",status="200"}' in text
    assert 'leadscore_http_errors_total{kind="client",route="/v1/score"}' in text
    assert "leadscore_lead_score_bucket" in text
    assert "leadscore_decisions_total" in text
    assert (
        'leadscore_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/score"}'
        in text
    )


def test_timestamps_in_any_accepted_form_give_the_same_scores(scoring_app, trained_model):
    # Plain ISO moments take the vectorised path; other forms pydantic accepts take the reference
    # schema: both must give the same answer (40 leads: more than the small-list python path).
    records = demo_records(trained_model, 40)
    other = [{**r, "touchpoints": [{**t, "occurred_at": t["occurred_at"].replace("T", " ")}
                                   for t in r["touchpoints"]]} for r in records]  # fmt: skip
    assert any(r["touchpoints"] for r in records)
    plain = scoring_app.post("/v1/score", json={"leads": records}, headers=auth("scorer"))
    spaced = scoring_app.post("/v1/score", json={"leads": other}, headers=auth("scorer"))
    assert plain.status_code == spaced.status_code == 200, spaced.text
    keep = ("lead_id", "probability", "score", "decision", "reasons_for", "reasons_against")
    assert [{k: r[k] for k in keep} for r in plain.json()["results"]] == [
        {k: r[k] for k in keep} for r in spaced.json()["results"]
    ]


def test_many_scores_are_counted_as_observing_them_one_by_one():
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from serving.metrics import observe_many

    scores = [0, 5, 10, 11, 20, 55, 99, 100, 100, 37, 10]
    registry = CollectorRegistry()
    buckets = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    bulk = Histogram("bulk", "scores", buckets=buckets, registry=registry)
    single = Histogram("single", "scores", buckets=buckets, registry=registry)
    observe_many(bulk, scores)
    for s in scores:
        single.observe(s)
    text = generate_latest(registry).decode()

    def lines(name):
        return sorted(
            line.replace(name, "h")
            for line in text.splitlines()
            if line.startswith(name) and "_created" not in line
        )

    assert lines("bulk") == lines("single")
    assert 'h_bucket{le="10.0"} 4.0' in lines("bulk")


def test_leads_as_of_2263_are_refused_not_scored(scoring_app, trained_model):
    """Beyond int64 nanoseconds (2262) the arrays overflowed (was a 500); moments after
    2100-01-01 are refused at the boundary now: that lead is rejected, the other scored."""
    far, near = demo_records(trained_model, 2, as_of="2263-01-01T00:00:00Z")
    near["as_of"] = "2025-06-01T00:00:00Z"
    answer = scoring_app.post("/v1/score", json={"leads": [far, near]}, headers=auth("scorer"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rejected"] == 1 and "probability" in body["results"][1]
    (error,) = body["results"][0]["error"]["errors"]
    assert (error["field"], error["expected"]) == (
        "as_of",
        "a moment between 1970-01-01 and 2100-01-01",
    )
