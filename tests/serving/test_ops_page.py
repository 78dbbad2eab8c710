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


# --- restore the default, the person, capacity and currency, grades, tooltips, labels, outcomes ---


def post_outcome(connection, lead: str, won: bool, closed_at: datetime) -> None:
    connection.execute(
        outcomes.insert().values(
            lead_id=lead, won=won, closed_at=closed_at, amount=None, reported_at=closed_at,
            updated_at=closed_at, api_key_name="crm",
        )
    )  # fmt: skip


def test_monitoring_says_how_many_outcomes_could_not_be_graded(client):
    """300 outcomes posted for leads scored only after they closed made the page say "No outcome
    reported yet". Every lead scored before it closed counts (with its latest grade before the
    close, whatever came after); the others are counted apart and said."""
    now = datetime.now(UTC)
    closed = now - timedelta(days=30)
    with client.app.state.services.engine.begin() as connection:
        for i in range(300):  # scored only after they closed (e.g. a replay of old deals)
            log_score(connection, f"late{i}", 0.5, "B", now - timedelta(days=1))
            post_outcome(connection, f"late{i}", i % 3 == 0, closed)
        log_score(connection, "early", 0.9, "A", now - timedelta(days=45))
        log_score(connection, "early", 0.2, "D", now - timedelta(days=35))  # latest before close
        log_score(connection, "early", 0.8, "A", now - timedelta(days=2))  # after: not its grade
        post_outcome(connection, "early", True, closed)
        post_outcome(connection, "never", False, closed)
    body = client.get("/v1/ops/monitoring", headers=auth(SCORER_KEY)).json()
    assert body["outcomes_reported"] == 302 and body["outcomes_known"] == 1
    assert body["outcomes_scored_only_after_close"] == 300 and body["outcomes_never_scored"] == 1
    rates = {g["grade"]: g for g in body["win_rate_by_grade"]}
    assert rates["D"] == {"grade": "D", "leads": 1, "wins": 1, "win_rate": 1.0}
    assert rates["A"]["leads"] == 0 and rates["B"]["leads"] == 0


CLIPPED = """(id) => {
  const box = document.getElementById(id).getBoundingClientRect();
  const out = [];
  for (const t of document.querySelectorAll('#' + id + ' text')) {
    const r = t.getBoundingClientRect();
    if (!t.textContent.trim() || r.width === 0) continue;
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 ||
        r.bottom > box.bottom + 1) out.push(t.textContent);
  }
  return out;
}"""


@pytest.mark.browser
def test_ops_page_restores_the_model_default_and_names_the_person(live_server, browser):
    page, outside, errors = open_page(browser, live_server, OPS_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    assert not page.is_visible("#restore-default")  # the model's default is in force already
    page.fill("#actor", "Jane Doe")
    page.dispatch_event("#actor", "change")
    page.fill("#sales-threshold", "70")
    page.fill("#reason", "fewer, better leads")
    page.click("#save")
    page.wait_for_selector("#history tr[data-version='1']", timeout=10_000)
    row = page.locator("#history tr[data-version='1'] td").all_text_contents()
    assert row[2:5] == ["marketing-ops (Jane Doe)", "set", "sales_threshold: 55 -> 70"]

    page.once("dialog", lambda dialog: dialog.accept("back to what the model recommends"))
    page.click("#restore-default")
    page.wait_for_selector("#history tr[data-version='2']", timeout=10_000)
    assert page.text_content("#message") == (
        "The model's default policy is in force again, as version 2; it now follows the model."
    )
    assert page.text_content("#current-policy [data-field='version']") == (
        "2 (the model's default, restored)"
    )
    assert page.text_content("#current-policy [data-field='sales']") == "score ≥ 55"
    row = page.locator("#history tr[data-version='2'] td").all_text_contents()
    assert row[2:6] == [
        "marketing-ops (Jane Doe)",
        "restore the model's default",
        "sales_threshold: 70 -> 55",
        "back to what the model recommends",
    ]
    assert not page.is_visible("#restore-default")
    current = httpx.get(live_server + "/v1/policy", headers=auth(OPS_KEY)).json()
    assert (current["version"], current["source"], current["actor"]) == (
        2, "model default", "Jane Doe"
    )  # fmt: skip
    assert outside == [] and errors == []


@pytest.mark.browser
def test_ops_page_value_mode_keeps_to_capacity_and_shows_the_currency(live_server, browser):
    page, outside, errors = open_page(browser, live_server, OPS_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    page.select_option("#by", "value")
    assert page.text_content("#value-label") == "What a won deal is worth (EUR)"
    assert page.is_visible("#capacity")
    page.fill("#value", "4")
    page.fill("#capacity", "2")
    page.click("#simulate")
    chosen = page.locator("#simulation tr[data-row='chosen']")
    chosen.wait_for(timeout=10_000)
    assert chosen.locator("[data-field='threshold']").text_content() == "65"
    assert chosen.locator("[data-field='leads_per_week']").text_content() == "2.0"
    assert page.text_content("#net-value") == (
        "Net value a week at the chosen threshold: 4.00 EUR, sending at most 2 leads a week "
        "(sales capacity)"
    )
    # save it: the capacity and a currency go with the policy, and the page says them
    page.fill("#currency", "usd")
    page.fill("#reason", "two leads a week, dollars")
    page.click("#save")
    page.wait_for_selector("#message.ok", timeout=10_000)
    assert page.text_content("#current-policy [data-field='capacity']") == "2 leads a week"
    assert page.text_content("#current-policy [data-field='currency']") == "USD"
    assert page.text_content("#value-label") == "What a won deal is worth (USD)"
    policy = httpx.get(live_server + "/v1/policy", headers=auth(OPS_KEY)).json()["policy"]
    assert (policy["sales_threshold"], policy["weekly_capacity"], policy["currency"]) == (
        65, 2, "USD"
    )  # fmt: skip
    assert outside == [] and errors == []


@pytest.mark.browser
def test_ops_page_shows_and_changes_how_grades_are_set(live_server, browser):
    page, outside, errors = open_page(browser, live_server, OPS_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    page.wait_for_selector("#current-policy [data-field='grades']")
    assert page.text_content("#current-policy [data-field='grades']") == (
        "by score: A ≥ 60, B ≥ 35, C ≥ 15, D below"
    )
    page.select_option("#grade-by", "share")
    assert page.text_content("#grade-a-label") == "A: % of leads"
    assert page.input_value("#grade-a") == "25"
    page.fill("#reason", "a quarter of the leads in each grade")
    page.click("#save")
    page.wait_for_selector("#message.ok", timeout=10_000)
    assert page.text_content("#current-policy [data-field='grades']") == (
        "by share of leads: A top 25% (score ≥ 85), B next 25% (≥ 55), C next 25% (≥ 35), "
        "D the rest; computed on the holdout of model lead-scoring version 7: 10 leads over "
        "2.0 weeks with known outcomes"
    )
    assert outside == [] and errors == []


MEASURE_WORDS = {
    "threshold": "The sales threshold: leads scoring at or above it go to sales.",
    "leads_per_week": "How many leads a week this threshold would send to sales.",
    "expected_wins": "Expected wins: how many of the leads sent each week end up as won deals",
    "precision": "Precision: of the leads sent to sales, the share that win.",
    "recall": "Recall: of all the leads that win, the share that is sent to sales.",
    "lift": "Lift: how many times better than sending every lead.",
    "psi": "Population stability index (PSI): how far this period's scores have moved",
    "grade": "Grade A-D of a lead's score, set by the policy",
    "win_rate": "Win rate: of the leads of a grade with a reported outcome, the share that won.",
    "capacity": "How many leads a week sales can work.",
    "net_value": "Net value a week: wins a week times what a won deal is worth",
}


def _scores_after_their_close(app) -> None:
    now = datetime.now(UTC)
    with app.state.services.engine.begin() as connection:
        for i, p in enumerate(PROBABILITIES):
            log_score(connection, f"r{i}", p, "A" if p >= 0.6 else "C", now - timedelta(days=1))
            post_outcome(connection, f"r{i}", i % 2 == 0, now - timedelta(days=40))


@pytest.mark.browser
def test_ops_page_cuts_no_chart_label(live_app, browser):
    """The "now" mark above the curves and the last band of the drift chart were cut off."""
    live_server, app = live_app
    _scores_after_their_close(app)
    page, outside, errors = open_page(browser, live_server, SCORER_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    page.wait_for_selector("#psi-chart .barlayer .trace", timeout=10_000)
    for width in (1280, 800):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(300)  # plotly redraws on resize
        for chart in ("curves", "psi-chart"):
            assert page.evaluate(CLIPPED, chart) == [], (width, chart)
    assert outside == [] and errors == []


@pytest.mark.browser
def test_ops_page_says_why_reported_outcomes_are_not_in_the_win_rates(live_app, browser):
    live_server, app = live_app
    _scores_after_their_close(app)
    page, outside, errors = open_page(browser, live_server, SCORER_KEY)
    page.wait_for_selector("#win-rate tr[data-grade='A']", timeout=20_000)
    page.wait_for_function("document.getElementById('outcomes-note').textContent !== ''")
    assert page.text_content("#outcomes-note") == (
        "10 outcomes reported; 0 leads counted with the grade of their latest score before their "
        "deal closed. Not counted: 10 leads scored only after closing (their grade says nothing "
        "about how they closed)."
    )
    assert outside == [] and errors == []


@pytest.mark.browser
def test_ops_page_explains_every_measure_in_plain_words(live_app, browser):
    live_server, app = live_app
    _scores_after_their_close(app)
    page, outside, errors = open_page(browser, live_server, SCORER_KEY)
    page.wait_for_selector("#curves .scatterlayer .trace", timeout=20_000)
    page.wait_for_selector("#psi [data-measure='psi']", timeout=10_000)
    page.select_option("#by", "value")
    page.fill("#value", "4")
    page.click("#simulate")
    page.wait_for_selector("#net-value [data-measure='net_value']", timeout=10_000)
    for measure, words in MEASURE_WORDS.items():
        tips = page.eval_on_selector_all(
            f"[data-measure='{measure}']", "els => els.map(e => e.title)"
        )
        assert tips and all(t.startswith(words) for t in tips), (measure, tips)
    assert outside == [] and errors == []
