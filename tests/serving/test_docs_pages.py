"""/docs and /redoc in headless Chromium: they render from the service's own files under its
Content-Security-Policy (no request leaves the service, no CSP violation, no page error)."""

from __future__ import annotations

import pytest

from serving.app import create_app
from tests.serving.policy_support import hand_model_store, serve_in_thread, settings_for
from tests.serving.test_ops_page import browser  # noqa: F401  (the Chromium fixture)


@pytest.fixture
def live_server(tmp_path):
    app = create_app(settings_for(tmp_path), model_store=hand_model_store())
    with serve_in_thread(app) as url:
        yield url


def _open(browser, url: str, path: str):  # noqa: F811
    page = browser.new_context().new_page()
    outside: list[str] = []
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if "Content Security Policy" in message.text or message.type == "error"
            else None
        ),
    )

    def only_local(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(url + path)
    return page, outside, problems


@pytest.mark.browser
def test_swagger_ui_renders_the_api_without_a_cdn(live_server, browser):  # noqa: F811
    page, outside, problems = _open(browser, live_server, "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    assert "leadscore" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock-summary-path").filter(has_text="/v1/score").count() >= 1
    assert outside == [] and problems == []


@pytest.mark.browser
def test_redoc_renders_the_api_without_a_cdn(live_server, browser):  # noqa: F811
    page, outside, problems = _open(browser, live_server, "/redoc")
    page.wait_for_selector("h1", timeout=30_000)
    assert "leadscore" in page.inner_text("h1")
    page.wait_for_selector("text=Score 1 to 1,000 leads", state="attached", timeout=30_000)
    assert "Report closed won/lost deals" in page.content()
    # ReDoc's "powered by" footer has a remote logo: the CSP blocks it, nothing else is refused
    blocked = [p for p in problems if "cdn.redoc.ly/redoc/logo-mini.svg" in p]
    assert outside == [] and [p for p in problems if p not in blocked] == []
