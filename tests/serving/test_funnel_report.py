"""GET /v1/reports/funnel on SQLite and PostgreSQL: figures counted by hand on the eight leads of
tests/features/report/handmade.py (stored as the service captures them, `funnel_data.py`), the
same figures as the file report on the same data, and the errors a caller can cause."""

from __future__ import annotations

import csv
import io
import math

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.report import formats
from features.report.funnel import funnel
from serving.app import create_app
from tests.serving.conftest import auth, make_settings
from tests.serving.funnel_data import file_frames, store_handmade

Z = 1.959963984540054


@pytest.fixture
def client(database_url, no_registry):
    """The service on a database holding the hand-made funnel (no model needed)."""
    app = create_app(make_settings(database_url, no_registry))
    with TestClient(app, raise_server_exceptions=False) as client:
        store_handmade(client.app.state.services.engine)
        yield client


def get(client: TestClient, role: str = "ops", **params) -> dict:
    answer = client.get("/v1/reports/funnel", params=params, headers=auth(role))
    assert answer.status_code == 200, answer.text
    return answer.json()


def row(report: dict, label: str) -> dict:
    rows = [r for r in report["rows"] if r[report["by"]] == label]
    if label == "(total)":
        return report["total"]
    assert len(rows) == 1, f"no single row {label!r} in {[r[report['by']] for r in report['rows']]}"
    return rows[0]


def check(actual: dict, **expected) -> None:
    for name, value in expected.items():
        got = actual[name]
        if value is None:
            assert got is None, f"{name}: {got} is not empty"
        else:
            assert got == pytest.approx(value, abs=1e-9), f"{name}: {got} != {value}"


def wilson(won: float, closed: float) -> tuple[float, float]:
    """The Wilson 95% interval written out from its textbook formula."""
    p = won / closed
    centre = (p + Z**2 / (2 * closed)) / (1 + Z**2 / closed)
    half = Z / (1 + Z**2 / closed) * math.sqrt(p * (1 - p) / closed + Z**2 / (4 * closed**2))
    return max(0.0, centre - half), min(1.0, centre + half)


def test_first_touch_by_channel_counted_by_hand(client):
    report = get(client, by="channel", attribution="first_touch")
    assert report["by"] == "channel" and report["attribution"] == "first_touch"
    # email: L1 (won 1000, 20 days, sent), L5 (lost), L8 (open, not scored)
    check(row(report, "email"), leads=3, sent_to_sales=1, won=1, lost=1, open=1, win_rate=0.5,
          revenue_won=1000.0, average_deal=1000.0, median_days_to_close=20.0,
          p75_days_to_close=20.0)  # fmt: skip
    # 1 of 2 closed: the interval by hand is 0.5 -+ 0.40547
    low, high = row(report, "email")["win_rate_low"], row(report, "email")["win_rate_high"]
    assert (low, high) == pytest.approx((0.094531, 0.905469), abs=1e-6)
    assert (low, high) == pytest.approx(wilson(1, 2), abs=1e-12)
    # webinar: L4 (won 3000, 10 days), L7 (won 2000, 30 days): median 20, p75 at position 3/4 = 30
    check(row(report, "webinar"), leads=2, won=2, lost=0, open=0, win_rate=1.0,
          revenue_won=5000.0, average_deal=2500.0, median_days_to_close=20.0,
          p75_days_to_close=30.0)  # fmt: skip
    assert row(report, "webinar")["win_rate_low"] == pytest.approx(wilson(2, 2)[0], abs=1e-12)
    assert row(report, "webinar")["win_rate_high"] == 1.0
    # paid_search: L2 (lost), L6 (open): no win, so no average and no days
    check(row(report, "paid_search"), leads=2, won=0, lost=1, open=1, win_rate=0.0,
          revenue_won=0.0, average_deal=None, median_days_to_close=None)  # fmt: skip
    # L3's only touch came after its close: content gets no credit; L3 (won, no amount) is (none)
    check(row(report, "content"), leads=0, won=0, win_rate=None)
    check(row(report, "(none)"), leads=1, won=1, won_with_amount=0, revenue_won=None,
          average_deal=None, median_days_to_close=10.0)  # fmt: skip
    assert [r["channel"] for r in report["rows"]] == [
        "email", "paid_search", "webinar", "content", "(none)"
    ]  # fmt: skip
    # total: 8 leads, 4 won (10, 10, 20, 30 days), 2 lost, 6000 over the 3 won with an amount
    check(report["total"], leads=8, sent_to_sales=4, won=4, lost=2, open=2, won_with_amount=3,
          revenue_won=6000.0, average_deal=2000.0, median_days_to_close=15.0,
          p75_days_to_close=25.0, win_rate=4 / 6)  # fmt: skip


def test_last_touch_by_channel_counted_by_hand(client):
    report = get(client, by="channel", attribution="last_touch")
    # L2's webinar came after its close: its last touch is email (L2, L5, L7, L8)
    check(row(report, "email"), leads=4, won=1, lost=2, open=1, revenue_won=2000.0,
          median_days_to_close=30.0)  # fmt: skip
    # L4's email came after its close: its last touch is paid_search (L4, L6)
    check(row(report, "paid_search"), leads=2, won=1, lost=0, open=1, revenue_won=3000.0)
    check(row(report, "webinar"), leads=1, won=1, revenue_won=1000.0, median_days_to_close=20.0)
    check(row(report, "(none)"), leads=1, won=1)


def test_linear_credit_counted_by_hand(client):
    report = get(client, by="channel", attribution="linear")
    assert report["attribution"] == "linear"
    # email: L1 2/3 (won 1000, 20 d), L2 1/2 (lost), L5 1 (lost), L7 1/2 (won 2000, 30 d), L8 1
    email = row(report, "email")
    check(email, leads=2 / 3 + 1 / 2 + 1 + 1 / 2 + 1, won=2 / 3 + 1 / 2, lost=1 / 2 + 1, open=1.0,
          won_with_amount=7 / 6, revenue_won=2 / 3 * 1000 + 1 / 2 * 2000,
          average_deal=(2 / 3 * 1000 + 1000) / (7 / 6), win_rate=(7 / 6) / (7 / 6 + 3 / 2),
          sent_to_sales=2 / 3 + 1 / 2 + 1 / 2)  # fmt: skip
    # weighted days: L1 20 d (weight 2/3) at position 2/7, L7 30 d (weight 1/2) at 11/14
    check(email, median_days_to_close=170 / 7, p75_days_to_close=20 + (0.75 - 2 / 7) / (11 / 14 - 2 / 7) * 10)  # fmt: skip
    # the interval of the credited n = 7/6 + 3/2
    assert email["win_rate_low"] == pytest.approx(wilson(7 / 6, 7 / 6 + 3 / 2)[0], abs=1e-12)
    # paid_search: L2 1/2 (lost), L4 1/2 (won 3000, 10 d), L6 1 (two touches, open)
    check(row(report, "paid_search"), leads=2.0, won=0.5, lost=0.5, open=1.0, revenue_won=1500.0,
          average_deal=3000.0, median_days_to_close=10.0)  # fmt: skip
    total = report["total"]
    for name in ("leads", "won", "lost", "open", "revenue_won", "sent_to_sales"):
        assert sum(r[name] or 0 for r in report["rows"]) == pytest.approx(total[name])


def test_campaign_attribute_grade_band_decision_and_week_counted_by_hand(client):
    campaigns = get(client, by="campaign", attribution="last_touch")
    check(row(campaigns, "(no campaign)"), leads=3, won=1, lost=1, open=1)  # L2, L6, L7
    check(row(campaigns, "Ebook"), leads=0)  # L3's download came after its close
    # the latest industry counts (L1 was Retail in 2023, Software since); L6 has none
    industry = get(client, by="industry")
    assert [r["industry"] for r in industry["rows"]] == ["Software", "Retail", "(missing)"]
    check(row(industry, "Software"), leads=4, won=1, lost=2, open=1, revenue_won=1000.0)
    # Retail: L3 (10 d), L4 (10 d), L7 (30 d) at positions 1/6, 1/2, 5/6: p75 = 10 + 0.75 * 20
    check(row(industry, "Retail"), leads=3, won=3, revenue_won=5000.0, median_days_to_close=10.0,
          p75_days_to_close=25.0)  # fmt: skip
    grades = get(client, by="grade")
    assert [r["grade"] for r in grades["rows"]] == ["A", "B", "C", "D", "(not scored)"]
    check(row(grades, "A"), leads=3, won=3, revenue_won=3000.0)  # L1, L3, L7 (latest row)
    bands = get(client, by="score_band")
    check(row(bands, "60-69"), leads=1, won=1)  # L7 at 65
    decisions = get(client, by="decision")
    check(row(decisions, "sales"), leads=4, sent_to_sales=4, won=3, lost=1)
    weeks = get(client, by="week", **{"from": "2023-12-25", "to": "2024-01-15"})
    assert [r["week"] for r in weeks["rows"]] == ["2023-12-25", "2024-01-01", "2024-01-08"]
    check(row(weeks, "2024-01-01"), leads=3, won=2, lost=1, median_days_to_close=15.0)
    assert weeks["from"] == "2023-12-25T00:00:00+00:00" and weeks["total"]["leads"] == 6


CASES = [
    (by, attribution, bounds)
    for by in ("channel", "campaign")
    for attribution in ("first_touch", "last_touch", "linear")
    for bounds in ((None, None), ("2024-01-08", "2024-01-15"))
] + [
    (by, "first_touch", bounds)
    for by in ("week", "grade", "score_band", "decision", "industry")
    for bounds in ((None, None), ("2024-01-02", "2024-01-16T09:00:00Z"))
]


def same_report(answer: dict, expected: dict, case: tuple) -> None:
    rows = [*answer["rows"], answer["total"]]
    wanted = [*expected["rows"], expected["total"]]
    assert {k: v for k, v in answer.items() if k not in ("rows", "total")} == {
        k: v for k, v in expected.items() if k not in ("rows", "total")
    }, case
    assert [list(r) for r in rows] == [list(r) for r in wanted], case
    for got, want in zip(rows, wanted):
        assert got == pytest.approx(want, abs=1e-9), case


def test_the_same_figures_as_the_file_report_on_the_same_data(client):
    frames = file_frames()
    for by, attribution, (start, end) in CASES:
        params = {"by": by, "attribution": attribution}
        if start:
            params.update({"from": start, "to": end})
        frame = funnel(frames["leads"], frames["touchpoints"], frames["outcomes"], by=by,
                       attribution=attribution, scores=frames["scores"], start=start, end=end)  # fmt: skip
        expected = formats.to_records(frame)
        answer = get(client, "scorer", **params)
        same_report(answer, expected, (by, attribution, start))
        # and as CSV, cell for cell
        text = client.get(
            "/v1/reports/funnel", params={**params, "format": "csv"}, headers=auth("ops")
        )
        assert text.headers["content-type"].startswith("text/csv")
        assert text.text == formats.to_csv(frame), (by, attribution, start)


def test_csv_by_accept_header(client):
    answer = client.get(
        "/v1/reports/funnel",
        params={"by": "channel"},
        headers={**auth("ops"), "Accept": "text/csv"},
    )
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["channel"] for r in rows] == [
        "email", "paid_search", "webinar", "content", "(none)", "(total)"
    ]  # fmt: skip
    assert rows[0]["won"] == "1" and rows[0]["revenue_won"] == "1000.0"
    assert rows[3]["win_rate"] == ""  # content: nothing closed, no win rate


@pytest.mark.parametrize(
    "params, field, message",
    [
        ({"by": "colour"}, "by", "by: 'colour' is neither a grouping nor a captured lead "
         "attribute; accepted: channel, campaign, week, grade, score_band, decision, or a lead "
         "attribute: 'industry'"),
        ({"by": "won"}, "by", "by: 'won' is a measure name, not a way to group"),
        ({"from": "last tuesday"}, "from", "from: 'last tuesday' is not a date: write YYYY-MM-DD"),
        ({"to": "2024-13-45"}, "to", "to: '2024-13-45' is not a date"),
        ({"from": "2024-02-01", "to": "2024-01-01"}, "to",
         "to: to (2024-01-01T00:00:00+00:00) must be after from (2024-02-01T00:00:00+00:00)"),
        ({"from": "2024-02-01", "to": "2024-02-01"}, "to", "to: to (2024-02-01T00:00:00+00:00) "
         "must be after from"),
        ({"by": "chan\x00nel"}, "by", "by: contains a NUL character"),
        ({"from": "1066-10-14"}, "from", "from: '1066-10-14' is out of range: give a date "
         "between 1678-01-01 and 2261-12-31"),
    ],
)  # fmt: skip
def test_bad_parameters_are_422_naming_the_parameter(client, params, field, message):
    answer = client.get("/v1/reports/funnel", params=params, headers=auth("ops"))
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["detail"].startswith(message), body["detail"]
    assert body["errors"][0]["field"] == field


def test_an_unknown_attribution_or_format_is_422_naming_it(client):
    for name, value in (("attribution", "u_shaped"), ("format", "xlsx")):
        answer = client.get("/v1/reports/funnel", params={name: value}, headers=auth("ops"))
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == name, answer.json()


def test_keys_and_roles(client):
    assert client.get("/v1/reports/funnel").status_code == 401
    wrong = {"Authorization": "Bearer ls_not-a-key-0123456789abcdefghij"}
    assert client.get("/v1/reports/funnel", headers=wrong).status_code == 401
    for role in ("scorer", "ops", "admin"):  # admin may do what every role may
        assert client.get("/v1/reports/funnel", headers=auth(role)).status_code == 200


def test_openapi_documents_every_status_with_schemas(client):
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/reports/funnel"]["get"]
    assert set(operation["responses"]) == {"200", "401", "422"}
    ok = operation["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/FunnelReport"}
    assert ok["text/csv"]["schema"] == {"type": "string"}
    report = spec["components"]["schemas"]["FunnelReport"]
    assert {"by", "attribution", "from", "to", "rows", "total", "measures"} <= set(
        report["properties"]
    )
    row_schema = spec["components"]["schemas"]["FunnelRow"]
    assert "median_days_to_close" in row_schema["properties"]
    for status in ("401", "422"):
        content = operation["responses"][status]["content"]
        assert "application/problem+json" in content
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"by", "attribution", "from", "to", "format"}


def test_an_empty_database_answers_an_empty_report(database_url, no_registry):
    app = create_app(make_settings(database_url, no_registry))
    with TestClient(app, raise_server_exceptions=False) as client:
        for by, attribution in (("channel", "first_touch"), ("week", "first_touch"),
                                ("grade", "first_touch"), ("campaign", "linear")):  # fmt: skip
            report = get(client, by=by, attribution=attribution)
            assert report["rows"] == [] or all(r["leads"] == 0 for r in report["rows"])
            check(report["total"], leads=0, won=0, win_rate=None, median_days_to_close=None)


def test_the_funnel_indexes_migration_goes_up_and_down(database_url):
    from alembic import command
    from alembic.script import ScriptDirectory

    from serving.db import alembic_config, current_revision, make_engine, upgrade_database

    upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
        assert current_revision(engine) == head  # 0007_funnel_indexes or a later one

        def names() -> set[str]:
            inspector = sa.inspect(engine)
            return {i["name"] for t in ("lead_touchpoints", "captured_leads")
                    for i in inspector.get_indexes(t)}  # fmt: skip

        added = {"ix_lead_touchpoints_lead_occurred", "ix_lead_touchpoints_channel",
                 "ix_lead_touchpoints_campaign", "ix_captured_leads_created_at"}  # fmt: skip
        assert added <= names()
        command.downgrade(alembic_config(database_url), "0004_capture")
        assert not added & names()
        upgrade_database(database_url)
        assert added <= names()
    finally:
        engine.dispose()
