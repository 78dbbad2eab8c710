"""/ops with a model that has deal value, time-to-close and fit/engagement parts: what each grade
holds (value, chances by day, median days), the A1-D4 grid from GET /v1/model, and ranking the
hand-off by expected value in the simulation and the policy editor, against numbers counted by
hand on the 10-lead holdout (tests/serving/policy_support.py), in headless Chromium.

Grades of the model's policy (by score: A from 60, B from 35, C from 15):

    grade  scores            won      expected values          median days   win in 30 days
    A      95 85 75 65       1 1 0 1  95 850 1500 6500         20 25 30 35   .5 .4 .3 .3
    B      55 45 35          0 1 0    550 4500 350             40 45 50      .2 .2 .1
    C      25 15             0 0      1000 150                 55 60         .1 .05
    D      5                 0        50                       65            0

A: 40% of leads, win rate 75%, 2,236.25 a lead, 37.5% within 30 days, median 27.5 days;
B: 30%, 33.3%, 1,800.00, 16.7%, 45; C: 20%, 0%, 575.00, 7.5%, 57.5; D: 10%, 0%, 50.00, 0%, 65.
"""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from tests.serving.policy_support import (
    OPS_KEY,
    PROBABILITIES,
    SCORER_KEY,
    HoldoutModel,
    auth,
    hand_model_store,
    serve_in_thread,
    settings_for,
    value_holdout,
)
from tests.serving.test_ops_page import browser, open_page  # noqa: F401 (the fixture)

MEDIAN_DAYS = [20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0]
WIN_30 = [0.5, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.0]
# the grid's figures as training logs them (training/subscores.py): share and win rate per cell
GRID = {"grid_A1_share": 0.125, "grid_A1_win_rate": 0.4, "grid_D4_share": 0.0625}


def valued_model() -> HoldoutModel:
    holdout = value_holdout().assign(
        win_within_30d=WIN_30,
        win_within_60d=[(w + p) / 2 for w, p in zip(WIN_30, PROBABILITIES)],
        win_within_90d=PROBABILITIES,
        median_days_to_close=MEDIAN_DAYS,
    )
    model = HoldoutModel(holdout=holdout)
    # the parts GET /v1/model describes (data only: nothing is scored here)
    model.value = SimpleNamespace(level=0.8, metrics={"value_spearman": 0.9})
    model.timing = SimpleNamespace(horizons=[30.0, 60.0, 90.0], edges=[0.0, 30.0, 60.0, 90.0],
                                   metrics={})  # fmt: skip
    model.subscores = SimpleNamespace(
        fit_bands=np.array([0.5, 0.3, 0.1]), engagement_bands=np.array([0.6, 0.4, 0.2]),
        metrics=GRID,
    )  # fmt: skip
    return model


@pytest.fixture
def client(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store(valued_model()))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def live_server(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store(valued_model()))
    with serve_in_thread(app) as url:
        yield url


def test_monitoring_says_what_each_grade_holds_on_the_holdout(client):
    body = client.get("/v1/ops/monitoring", headers=auth(SCORER_KEY)).json()
    assert body["currency"] == "EUR"
    grades = {g["grade"]: g for g in body["holdout_by_grade"]}
    assert [grades[g]["leads"] for g in "ABCD"] == [4, 3, 2, 1]
    assert [grades[g]["share"] for g in "ABCD"] == [0.4, 0.3, 0.2, 0.1]
    assert [grades[g]["win_rate"] for g in "ABCD"] == pytest.approx([0.75, 1 / 3, 0, 0], abs=1e-6)
    assert [grades[g]["expected_value"] for g in "ABCD"] == [2236.25, 1800, 575, 50]
    assert [grades[g]["win_within_30d"] for g in "ABCD"] == pytest.approx(
        [0.375, 0.5 / 3, 0.075, 0], abs=1e-6
    )
    assert [grades[g]["win_within_90d"] for g in "ABCD"] == pytest.approx([0.8, 0.45, 0.2, 0.05])
    assert [grades[g]["median_days_to_close"] for g in "ABCD"] == [27.5, 45, 57.5, 65]


def test_monitoring_of_a_model_without_value_or_timing_leaves_them_out(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store())
    with TestClient(app) as client:
        body = client.get("/v1/ops/monitoring", headers=auth(SCORER_KEY)).json()
    a = body["holdout_by_grade"][0]
    assert a == {"grade": "A", "leads": 4, "share": 0.4, "win_rate": 0.75}


@pytest.mark.browser
def test_ops_page_shows_value_and_time_by_grade_and_the_grid(live_server, browser):  # noqa: F811
    page, outside, errors = open_page(browser, live_server, SCORER_KEY)
    page.wait_for_selector("#grade-outlook tr[data-grade='A']", timeout=20_000)
    a = page.locator("#grade-outlook tr[data-grade='A']")
    assert a.locator("[data-field='share']").text_content() == "40.0%"
    assert a.locator("[data-field='win_rate']").text_content() == "75.0%"
    assert a.locator("[data-field='expected_value']").text_content() == "2,236.25"
    assert a.locator("[data-field='win_within_30d']").text_content() == "37.5%"
    assert a.locator("[data-field='median_days_to_close']").text_content() == "28"  # 27.5
    d = page.locator("#grade-outlook tr[data-grade='D']")
    assert d.locator("[data-field='expected_value']").text_content() == "50.00"
    assert "amounts in EUR" in page.text_content("#grade-outlook-note")
    assert "expected value / lead (EUR)" in page.text_content("#grade-outlook thead")
    page.wait_for_selector("#grid td[data-cell='A1']", timeout=10_000)
    assert page.text_content("#grid td[data-cell='A1']") == "12.5% · 40.0% won"
    assert page.text_content("#grid td[data-cell='D4']") == "6.3% · no lead"
    assert page.text_content("#grid td[data-cell='B2']") == "- · no lead"
    for measure, words in {
        "expected_value": "Expected value of a lead: its win chance times the deal amount",
        "win_within_30d": "Chance that the lead is won within 30 days",
        "median_days_to_close": "Days until a won deal closes, for half of such leads",
        "grid": "The fit letter (A best fit, from who the lead is)",
        "fit": "Fit: how often leads like this one",
        "engagement": "Engagement: how often leads that did what this one did",
        "rank_by": "What decides who goes to sales when capacity is short",
        "expected_revenue": "Expected revenue a week: what the leads sent each week are worth",
    }.items():
        tips = page.eval_on_selector_all(
            f"[data-measure='{measure}']", "els => els.map(e => e.title)"
        )
        assert tips and all(t.startswith(words) for t in tips), (measure, tips)
    assert outside == [] and errors == []


@pytest.mark.browser
def test_ops_page_fills_the_capacity_by_expected_value_and_saves_it(live_server, browser):  # noqa: F811
    page, outside, errors = open_page(browser, live_server, OPS_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    # now (threshold 55): 95 + 850 + 1500 + 6500 + 550 over 2 weeks
    current = page.locator("#simulation tr[data-row='current']")
    current.wait_for(timeout=10_000)
    assert current.locator("[data-field='expected_revenue']").text_content() == "4,747.50"
    # two leads a week by expected value: 6500, 4500, 1500, 1000 -> value threshold 1000
    page.select_option("#rank-by", "expected_value")
    page.select_option("#by", "capacity")
    page.fill("#value", "2")
    page.click("#simulate")
    chosen = page.locator("#simulation tr[data-row='chosen']")
    chosen.wait_for(timeout=10_000)
    assert chosen.locator("[data-field='threshold']").text_content() == "value ≥ 1,000.00"
    assert chosen.locator("[data-field='leads_per_week']").text_content() == "2.0"
    assert chosen.locator("[data-field='expected_wins']").text_content() == "1.00"
    assert chosen.locator("[data-field='expected_revenue']").text_content() == "6,750.00"
    assert page.text_content("#rank-probability") == (
        "by probability 2.0 leads, 1.50 wins and 4,472.50 EUR a week"
    )
    assert page.text_content("#rank-value") == (
        "by expected value 2.0 leads, 1.00 wins and 6,750.00 EUR a week"
    )
    # the editor takes the proposal: ranked by value, threshold 1000, capacity 2
    assert page.input_value("#policy-rank-by") == "expected_value"
    assert page.is_visible("#value-threshold")
    assert page.input_value("#value-threshold") == "1000"
    page.fill("#reason", "sales' two leads a week go to the most valuable")
    page.click("#save")
    page.wait_for_selector("#message.ok", timeout=10_000)
    assert page.text_content("#current-policy [data-field='sales']") == (
        "expected value ≥ 1,000.00 EUR (ranked by expected value)"
    )
    policy = httpx.get(live_server + "/v1/policy", headers=auth(OPS_KEY)).json()["policy"]
    assert (policy["rank_by"], policy["value_threshold"], policy["weekly_capacity"]) == (
        "expected_value", 1000, 2
    )  # fmt: skip
    page.wait_for_selector("#history tr[data-version='1']", timeout=10_000)
    changes = page.locator("#history tr[data-version='1'] td").all_text_contents()[4]
    assert "rank_by: probability -> expected_value" in changes
    assert "value_threshold: none -> 1,000.00 EUR" in changes
    # by value: no value of a win to give, the cost per lead decides within the capacity
    page.select_option("#by", "value")
    assert page.is_disabled("#value")
    assert page.text_content("#value-label").startswith("Not needed")
    page.fill("#cost", "1000")
    page.fill("#capacity", "")
    page.click("#simulate")
    page.wait_for_selector("#net-value [data-measure='net_value']", timeout=10_000)
    assert chosen.locator("[data-field='threshold']").text_content() == "value ≥ 1,500.00"
    assert page.text_content("#net-value").startswith(
        "Net value a week at the chosen threshold: 4750.00 EUR"
    )
    assert outside == [] and errors == []
