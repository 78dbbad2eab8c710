"""The /ops page: served assets and monitoring numbers, then the real page in headless Chromium
(Debian's /usr/bin/chromium driven by Playwright) against a live server on the hand-made holdout."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.db import outcomes, score_log
from serving.routes.ops import plotly_js_path
from tests.conftest import missing_service
from tests.serving.policy_support import (
    OPS_KEY,
    PROBABILITIES,
    SCORER_KEY,
    auth,
    hand_model_store,
    serve_in_thread,
    settings_for,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def client(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store())
    with TestClient(app) as client:
        yield client


def test_page_and_plotly_are_served_by_the_app(client):
    page = client.get("/ops")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/ops/static/plotly.min.js">' in page.text
    assert "cdn" not in page.text.lower()
    js = client.get("/ops/static/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    # the very file shipped inside the installed plotly package
    assert "site-packages" in str(plotly_js_path()) or ".venv" in str(plotly_js_path())
    assert js.content == plotly_js_path().read_bytes()
    assert client.get("/ops/static/ops.js").status_code == 200
    missing = client.get("/ops/static/..%2Fapp.py")
    assert missing.status_code == 404


def log_score(connection, lead: str, probability: float, grade: str, when: datetime) -> None:
    connection.execute(
        score_log.insert().values(
            request_id=str(uuid.uuid4()),
            lead_id=lead,
            model_name="lead-scoring",
            model_version="7",
            policy_version=0,
            probability=probability,
            score=round(100 * probability),
            grade=grade,
            decision="sales",
            reasons=[],
            scored_at=when,
            api_key_name="crm",
        )
    )


def test_monitoring_compares_recent_scores_with_the_holdout_and_counts_wins_by_grade(client):
    now = datetime.now(UTC)
    with client.app.state.services.engine.begin() as connection:
        # recent traffic: the holdout's ten probabilities shifted up by 0.1
        for i, p in enumerate(PROBABILITIES):
            log_score(
                connection,
                f"r{i}",
                min(p + 0.1, 1.0),
                "A" if p >= 0.5 else "C",
                now - timedelta(days=1),
            )
        # outcomes: grade of the last score before closing counts
        log_score(connection, "w1", 0.8, "A", now - timedelta(days=60))
        log_score(connection, "w1", 0.3, "C", now - timedelta(days=40))  # latest before close: C
        log_score(connection, "w2", 0.7, "A", now - timedelta(days=50))
        log_score(connection, "w3", 0.2, "D", now - timedelta(days=50))
        log_score(connection, "w2", 0.1, "D", now - timedelta(days=20))  # after close: ignored
        for lead, won in (("w1", True), ("w2", True), ("w3", False)):
            connection.execute(
                outcomes.insert().values(
                    lead_id=lead,
                    won=won,
                    closed_at=now - timedelta(days=30),
                    amount=1000.0,
                    reported_at=now,
                    updated_at=now,
                    api_key_name="crm",
                )
            )
    body = client.get("/v1/ops/monitoring?days=7", headers=auth(SCORER_KEY)).json()
    assert body["recent_leads"] == 10
    # holdout deciles split exactly between the ten holdout leads: each bin holds 10%
    assert body["bins"]["reference_share"] == [0.1] * 10
    # shifted by +0.1, each recent lead lands one decile up; the top decile gets two (0.95+0.1, 0.85+0.1)
    assert body["bins"]["recent_share"] == [0.0] + [0.1] * 8 + [0.2]
    expected = (1e-4 - 0.1) * math.log(1e-4 / 0.1) + (0.2 - 0.1) * math.log(0.2 / 0.1)
    assert body["psi"] == pytest.approx(expected, rel=1e-5)
    assert body["psi_status"] == "shifted: check the model"
    rates = {g["grade"]: g for g in body["win_rate_by_grade"]}
    assert rates["A"] == {"grade": "A", "leads": 1, "wins": 1, "win_rate": 1.0}
    assert rates["C"] == {"grade": "C", "leads": 1, "wins": 1, "win_rate": 1.0}
    assert rates["D"] == {"grade": "D", "leads": 1, "wins": 0, "win_rate": 0.0}
    assert rates["B"]["win_rate"] is None
    assert body["outcomes_known"] == 3


def test_monitoring_needs_a_key(client):
    assert client.get("/v1/ops/monitoring").status_code == 401


# --- the page in a real browser ---------------------------------------------------------------------


@pytest.fixture
def live_app(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store())
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture
def live_server(live_app):
    return live_app[0]


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        missing_service(
            "Debian chromium is not installed: run `apt-get install -y chromium chromium-driver` "
            "(or `make browser`) to run the /ops browser test"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


def open_page(browser, url: str, key: str):
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def only_local(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:  # a CDN or any other host: the page must not need it
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(url + "/ops")
    page.fill("#api-key", key)
    page.click("#use-key")
    return page, outside, errors


@pytest.mark.browser
def test_ops_page_in_chromium_draws_simulates_and_saves(live_server, browser):
    page, outside, errors = open_page(browser, live_server, OPS_KEY)
    # the curves are drawn: four lines (volume, wins, precision, recall) over thresholds 0-100
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    assert page.locator("#curves .scatterlayer .trace").count() == 4
    assert page.locator("#curves .legendtext").all_text_contents() == [
        "leads a week to sales",
        "wins a week (observed)",
        "precision",
        "recall",
    ]
    assert page.text_content("#current-policy [data-field='version']") == "0 (the model's default)"
    assert page.text_content("#current-policy [data-field='sales']") == "score ≥ 55"
    assert page.is_visible("#psi")

    # simulate: sales can take 2 leads a week -> threshold 65 (hand-counted)
    page.select_option("#by", "capacity")
    page.fill("#value", "2")
    page.click("#simulate")
    chosen = page.locator("#simulation tr[data-row='chosen']")
    chosen.wait_for(timeout=10_000)
    assert chosen.locator("[data-field='threshold']").text_content() == "65"
    assert chosen.locator("[data-field='leads_per_week']").text_content() == "2.0"
    assert chosen.locator("[data-field='expected_wins']").text_content() == "1.50"
    assert chosen.locator("[data-field='precision']").text_content() == "75.0%"
    assert page.input_value("#sales-threshold") == "65"

    # save it
    page.fill("#reason", "sales can take 2 leads a week")
    page.click("#save")
    page.wait_for_selector("#message.ok", timeout=10_000)
    assert "Saved policy version 1" in page.text_content("#message")
    page.wait_for_selector("#history tr[data-version='1']", timeout=10_000)
    row = page.locator("#history tr[data-version='1'] td").all_text_contents()
    assert row[2:6] == [
        "marketing-ops",
        "set",
        "sales_threshold: 55 -> 65",
        "sales can take 2 leads a week",
    ]

    # visible through the API
    current = httpx.get(live_server + "/v1/policy", headers=auth(OPS_KEY)).json()
    assert current["version"] == 1 and current["policy"]["sales_threshold"] == 65
    assert current["created_by"] == "marketing-ops"
    history = httpx.get(live_server + "/v1/policy/history", headers=auth(OPS_KEY)).json()
    assert [v["reason"] for v in history["versions"]] == ["sales can take 2 leads a week"]

    assert outside == [], f"the page reached outside the app: {outside}"
    assert errors == [], f"JavaScript errors: {errors}"


@pytest.mark.browser
def test_ops_page_with_a_scorer_key_can_look_but_not_save(live_app, browser):
    live_server, app = live_app
    now = datetime.now(UTC)
    with app.state.services.engine.begin() as connection:
        for i, p in enumerate(PROBABILITIES):
            log_score(connection, f"r{i}", p, "A" if p >= 0.6 else "C", now - timedelta(days=1))
        connection.execute(
            outcomes.insert().values(
                lead_id="r0",
                won=True,
                closed_at=now,
                amount=5000.0,
                reported_at=now,
                updated_at=now,
            )
        )
    page, outside, errors = open_page(browser, live_server, SCORER_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    # drift chart (holdout vs recent bars) and win rate by grade are shown to anyone with a key
    page.wait_for_selector("#psi-chart .barlayer .trace", timeout=10_000)
    assert page.locator("#psi-chart .barlayer .trace").count() == 2
    assert "Population stability index 0.000 over 10 leads" in page.text_content("#psi")
    assert page.locator("#win-rate tr[data-grade='A'] td").all_text_contents() == [
        "A",
        "1",
        "1",
        "100.0%",
    ]
    page.fill("#sales-threshold", "10")
    page.fill("#reason", "more leads please")
    page.click("#save")
    page.wait_for_selector("#message.error", timeout=10_000)
    assert page.text_content("#message") == (
        "Not saved: the key 'crm' has role scorer; this needs role admin or ops"
    )
    current = httpx.get(live_server + "/v1/policy", headers=auth(OPS_KEY)).json()
    assert current["version"] == 0 and current["policy"]["sales_threshold"] == 55
    assert outside == [] and errors == []


@pytest.mark.browser
def test_ops_page_keeps_the_key_in_the_tab_only(live_server, browser):
    page, _, _ = open_page(browser, live_server, OPS_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    assert page.evaluate("sessionStorage.getItem('leadscore-api-key')") == OPS_KEY
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert page.input_value("#api-key") == ""  # not left in the form
    # a new tab (new browser context) starts without it
    fresh = browser.new_context().new_page()
    fresh.goto(live_server + "/ops")
    assert fresh.evaluate("sessionStorage.getItem('leadscore-api-key')") is None
    assert "Enter an API key" in fresh.text_content("#message")
