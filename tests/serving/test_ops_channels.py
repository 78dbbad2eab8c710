"""The Channels view of /ops in headless Chromium (Debian's /usr/bin/chromium, as
test_ops_page.py drives it) on a live server holding the hand-made funnel (`funnel_data.py`):
it loads, draws its four charts, sorts its table, changes attribution, and downloads the CSV the
API answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from serving.app import create_app
from tests.serving.funnel_data import store_handmade
from tests.serving.policy_support import (
    OPS_KEY,
    SCORER_KEY,
    auth,
    hand_model_store,
    serve_in_thread,
    settings_for,
)
from tests.serving.test_ops_page import browser, open_page  # noqa: F401 - the browser fixture

CHARTS = ("channel-volume", "channel-win-rate", "channel-revenue", "channel-days")


@pytest.fixture
def funnel_server(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store())
    with serve_in_thread(app) as url:
        store_handmade(app.state.services.engine)
        yield url


def table_rows(page) -> list[list[str]]:
    return [
        row.locator("td").all_text_contents()
        for row in page.locator("#channels-table tbody tr").all()
    ]


def groups(page) -> list[str]:
    return [row[0] for row in table_rows(page)]


def api_report(url: str, **params) -> dict:
    answer = httpx.get(url + "/v1/reports/funnel", params=params, headers=auth(OPS_KEY))
    assert answer.status_code == 200
    return answer.json()


@pytest.mark.browser
def test_channels_view_loads_draws_and_matches_the_api(funnel_server, browser):  # noqa: F811
    page, outside, errors = open_page(browser, funnel_server, SCORER_KEY)
    page.wait_for_selector("#channels-table tbody tr", timeout=20_000)
    report = api_report(funnel_server, by="channel", attribution="first_touch")
    # the table lists the API's rows in its order, and the total below them
    assert groups(page) == [r["channel"] for r in report["rows"]] == [
        "email", "paid_search", "webinar", "content", "(none)"
    ]  # fmt: skip
    email = page.locator("#channels-table tr[data-group='email'] td").all_text_contents()
    # hand counts: 3 leads, 1 to sales, 1 won, 1 lost, 1 open, 50% (9.5%-90.5%), 1,000, 20 days
    assert email == ["email", "3", "1", "1", "1", "1", "50.0% (9.5%–90.5%)", "1,000", "1,000",
                     "20.0", "20.0"]  # fmt: skip
    total = page.locator("#channels-table tfoot tr td").all_text_contents()
    assert total[:6] == ["(total)", "8", "4", "4", "2", "2"]
    # four charts: one bar trace each, two (median and p75) for the days; a bar per group
    for chart in CHARTS:
        page.wait_for_selector(f"#{chart} .barlayer .trace", timeout=10_000)
    counts = [page.locator(f"#{chart} .barlayer .trace").count() for chart in CHARTS]
    assert counts == [1, 1, 1, 2]
    assert page.locator("#channel-volume .barlayer .point").count() == 5
    ticks = page.locator("#channel-volume .xtick text").all_text_contents()
    assert ticks == ["email", "paid_search", "webinar", "content", "(none)"]
    # the win-rate bars carry their interval as error bars
    assert page.locator("#channel-win-rate .errorbar").count() == 5
    # every measure in the header explains itself with the report's own words
    tip = page.get_attribute("#channels-table th[data-sort='won']", "title")
    assert tip == "Leads whose deal was won (the earliest outcome of a lead counts)."
    assert outside == [] and errors == []


@pytest.mark.browser
def test_channels_table_sorts_by_any_column(funnel_server, browser):  # noqa: F811
    page, outside, errors = open_page(browser, funnel_server, OPS_KEY)
    page.wait_for_selector("#channels-table tbody tr", timeout=20_000)
    page.click("#channels-table th[data-sort='revenue_won']")
    # most revenue first: webinar 5,000, email 1,000, then paid_search and content at 0 (the
    # report's order between equals), (none) without a revenue (its win has no amount) last
    assert groups(page) == ["webinar", "email", "paid_search", "content", "(none)"]
    assert page.get_attribute("#channels-table th[data-sort='revenue_won']", "aria-sort") == (
        "descending"
    )
    page.click("#channels-table th[data-sort='revenue_won']")
    assert groups(page) == ["paid_search", "content", "email", "webinar", "(none)"]
    page.click("#channels-table th[data-sort='group']")  # names: A to Z first
    assert groups(page) == ["(none)", "content", "email", "paid_search", "webinar"]
    page.click("#channels-table th[data-sort='median_days_to_close']")
    # email 20 and webinar 20 (10 and 30) keep the report's order, (none) 10; no win: last
    assert groups(page) == ["email", "webinar", "(none)", "paid_search", "content"]
    # the total stays below the table whatever the order
    assert page.locator("#channels-table tfoot tr td").first.text_content() == "(total)"
    assert outside == [] and errors == []


@pytest.mark.browser
def test_channels_attribution_and_campaigns(funnel_server, browser):  # noqa: F811
    page, outside, errors = open_page(browser, funnel_server, OPS_KEY)
    page.wait_for_selector("#channels-table tbody tr", timeout=20_000)
    page.select_option("#channels-attribution", "linear")
    # email: 2/3 + 1/2 + 1 + 1/2 + 1 credited leads (the page's CSP forbids polling by eval)
    expect(
        page.locator("#channels-table tr[data-group='email'] td[data-field='leads']")
    ).to_have_text("3.7", timeout=10_000)
    assert "fractional credits" in page.text_content("#channels-note")
    page.select_option("#channels-by", "campaign")
    page.wait_for_selector("#channels-table tr[data-group='NL-Jan']", timeout=10_000)
    report = api_report(funnel_server, by="campaign", attribution="linear")
    assert groups(page) == [r["campaign"] for r in report["rows"]]
    assert page.text_content("#channels-table th[data-sort='group']") == "campaign"
    assert outside == [] and errors == []


@pytest.mark.browser
def test_channels_csv_download_is_the_apis_csv(funnel_server, browser, tmp_path: Path):  # noqa: F811
    page, outside, errors = open_page(browser, funnel_server, OPS_KEY)
    page.wait_for_selector("#channels-table tbody tr", timeout=20_000)
    page.select_option("#channels-attribution", "last_touch")
    page.fill("#channels-from", "2024-01-01")
    page.fill("#channels-to", "2024-01-15")
    page.click("#channels-load")
    expect(page.locator("#channels-note")).to_contain_text("before 2024-01-15", timeout=10_000)
    with page.expect_download(timeout=10_000) as info:
        page.click("#channels-csv")
    download = info.value
    assert download.suggested_filename == "funnel-channel-last_touch.csv"
    saved = tmp_path / "download.csv"
    download.save_as(saved)
    expected = httpx.get(
        funnel_server + "/v1/reports/funnel",
        params={"by": "channel", "attribution": "last_touch", "from": "2024-01-01",
                "to": "2024-01-15", "format": "csv"},
        headers=auth(OPS_KEY),
    )  # fmt: skip
    assert saved.read_text() == expected.text
    lines = expected.text.splitlines()
    assert lines[0].startswith("channel,leads,sent_to_sales,won,lost,open,win_rate")
    assert lines[-1].startswith("(total),6,")  # L1-L6 were created in the first two weeks
    assert outside == [] and errors == []
