"""The funnel report as JSON records, CSV and a terminal table."""

from __future__ import annotations

import csv
import io
import json

from features.report import formats
from features.report.funnel import funnel
from features.report.measures import MEASURE_NAMES
from tests.features.report import handmade as h


def first_touch():
    return funnel(h.leads(), h.touchpoints(), h.outcomes(), by="channel", attribution="first_touch")


def test_json_has_the_grouping_the_rule_the_rows_the_total_and_the_measures():
    data = json.loads(formats.to_json(first_touch()))
    assert (data["report"], data["by"], data["attribution"]) == ("funnel", "channel", "first_touch")
    assert data["from"] is None and data["to"] is None
    assert [r["channel"] for r in data["rows"]] == [
        "email", "paid_search", "webinar", "content", "(none)"
    ]  # fmt: skip
    assert list(data["rows"][0]) == ["channel", *MEASURE_NAMES]
    assert data["rows"][0]["leads"] == 3 and isinstance(data["rows"][0]["leads"], int)
    none = data["rows"][4]
    assert none["revenue_won"] is None and none["average_deal"] is None  # NaN -> null
    assert none["sent_to_sales"] is None  # no scores
    total = data["total"]
    assert (total["channel"], total["leads"], total["won"], total["revenue_won"]) == (
        "(total)", 8, 4, 6000.0
    )  # fmt: skip
    assert [m["name"] for m in data["measures"]] == list(MEASURE_NAMES)
    assert all(m["description"] for m in data["measures"])


def test_json_of_a_period_names_its_bounds():
    frame = funnel(h.leads(), None, h.outcomes(), by="week", start="2024-01-08", end="2024-01-15")
    data = json.loads(formats.to_json(frame))
    assert data["attribution"] is None
    assert (data["from"], data["to"]) == ("2024-01-08T00:00:00+00:00", "2024-01-15T00:00:00+00:00")
    assert [r["week"] for r in data["rows"]] == ["2024-01-08"]


def test_csv_has_a_row_per_group_then_the_total():
    rows = list(csv.DictReader(io.StringIO(formats.to_csv(first_touch()))))
    assert list(rows[0]) == ["channel", *MEASURE_NAMES]
    assert [r["channel"] for r in rows] == [
        "email", "paid_search", "webinar", "content", "(none)", "(total)"
    ]  # fmt: skip
    assert rows[0]["leads"] == "3" and rows[0]["revenue_won"] == "1000.0"
    assert rows[4]["revenue_won"] == ""  # empty, not 0 or 'nan'
    assert rows[-1]["win_rate"] == "0.666667"


def test_table_lines_up_the_groups_and_says_how_to_read_it():
    text = formats.to_table(first_touch())
    lines = text.splitlines()
    assert lines[0] == "Funnel by channel (first touch attribution), all leads"
    assert lines[2].split() == [
        "channel", "leads", "won", "lost", "open", "win", "rate", "95%", "CI", "revenue", "won",
        "avg", "deal", "median", "days", "p75", "days",
    ]  # fmt: skip  # no 'to sales' column without scores
    email = next(line for line in lines if line.startswith("email "))
    assert email.split() == [
        "email", "3", "1", "1", "1", "50.0%", "9.5-90.5%", "1,000", "1,000", "20.0", "20.0"
    ]  # fmt: skip
    none = next(line for line in lines if line.startswith("(none)"))
    assert none.split() == ["(none)", "1", "1", "0", "0", "100.0%", "20.7-100.0%", "-", "-",
                            "10.0", "10.0"]  # fmt: skip
    total = next(line for line in lines if line.startswith("(total)"))
    assert total.split()[:4] == ["(total)", "8", "4", "2"]
    assert len({len(line) for line in (lines[2], email)}) == 1  # columns line up
    assert "1 won deal(s) without an amount are left out of revenue" in text


def test_table_of_linear_credits_shows_fractions_and_says_so():
    frame = funnel(h.leads(), h.touchpoints(), h.outcomes(), by="channel", attribution="linear",
                   scores=h.scores(), start="2024-01-01", end="2024-01-17")  # fmt: skip
    text = formats.to_table(frame)
    assert text.startswith(
        "Funnel by channel (linear attribution), leads created from 2024-01-01 to 2024-01-16\n"
    )
    email = next(line for line in text.splitlines() if line.startswith("email "))
    # leads 11/3, to sales 5/3, won 7/6, lost 3/2, open 1
    assert email.split()[:6] == ["email", "3.7", "1.7", "1.2", "1.5", "1.0"]
    assert "counts and revenue are fractional credits" in text
