"""The funnel maths against figures counted by hand on the eight leads of `handmade.py`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.report.funnel import FunnelError, funnel, weighted_quantiles, wilson_interval
from features.report.measures import GROUPING_NAMES, MEASURE_NAMES, MEASURES
from tests.features.report import handmade as h

NAN = float("nan")


def report(by: str = "channel", attribution: str = "first_touch", **kwargs) -> pd.DataFrame:
    frames = {
        "leads": h.leads(),
        "touchpoints": h.touchpoints(),
        "outcomes": h.outcomes(),
        **{k: kwargs.pop(k) for k in ("leads", "touchpoints", "outcomes") if k in kwargs},
    }
    return funnel(
        frames["leads"],
        frames["touchpoints"],
        frames["outcomes"],
        by=by,
        attribution=attribution,
        **kwargs,
    )


def row(frame: pd.DataFrame, label: str) -> dict:
    found = frame[frame.iloc[:, 0] == label]
    assert len(found) == 1, f"no single row {label!r} in {list(frame.iloc[:, 0])}"
    return found.iloc[0].to_dict()


def check(actual: dict, **expected) -> None:
    for name, value in expected.items():
        got = actual[name]
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(got), f"{name}: {got} is not empty"
        else:
            assert got == pytest.approx(value, abs=1e-9), f"{name}: {got} != {value}"


# --------------------------------------------------------------------------------------------------
# Attribution rules


def test_first_touch_by_channel_counts_by_hand():
    frame = report("channel", "first_touch")
    # email: L1 (won 1000, 20 days), L5 (lost), L8 (open)
    check(row(frame, "email"), leads=3, won=1, lost=1, open=1, win_rate=0.5, revenue_won=1000.0,
          average_deal=1000.0, median_days_to_close=20.0, p75_days_to_close=20.0)  # fmt: skip
    # paid_search: L2 (lost), L6 (open): no win, so no average and no days
    check(row(frame, "paid_search"), leads=2, won=0, lost=1, open=1, win_rate=0.0,
          revenue_won=0.0, average_deal=NAN, median_days_to_close=NAN)  # fmt: skip
    # webinar: L4 (won 3000, 10 days), L7 (won 2000, 30 days); positions 1/4 and 3/4
    check(row(frame, "webinar"), leads=2, won=2, lost=0, open=0, win_rate=1.0,
          revenue_won=5000.0, average_deal=2500.0, median_days_to_close=20.0,
          p75_days_to_close=30.0)  # fmt: skip
    # L3's only touch came after its close: no credit for content, L3 is '(none)'
    check(row(frame, "content"), leads=0, won=0, win_rate=NAN)
    check(row(frame, "(none)"), leads=1, won=1, won_with_amount=0, revenue_won=NAN,
          average_deal=NAN, median_days_to_close=10.0)  # fmt: skip
    assert list(frame["channel"]) == [
        "email", "paid_search", "webinar", "content", "(none)", "(total)"
    ]  # fmt: skip
    assert frame.attrs["attribution"] == "first_touch"


def test_last_touch_by_channel_counts_by_hand():
    frame = report("channel", "last_touch")
    # L2's webinar (after its close) does not count: its last touch is email
    check(row(frame, "email"), leads=4, won=1, lost=2, open=1, revenue_won=2000.0,
          median_days_to_close=30.0)  # fmt: skip
    # L4's email after its close does not count: its last touch is paid_search
    check(row(frame, "paid_search"), leads=2, won=1, lost=0, open=1, revenue_won=3000.0)
    check(row(frame, "webinar"), leads=1, won=1, revenue_won=1000.0, median_days_to_close=20.0)
    check(row(frame, "(none)"), leads=1, won=1)


def test_linear_credits_split_each_lead_over_its_touches():
    frame = report("channel", "linear", scores=h.scores())
    # email: L1 2/3 (won 1000, 20 d), L2 1/2 (lost), L5 1 (lost), L7 1/2 (won 2000, 30 d), L8 1
    email = row(frame, "email")
    check(email, leads=2 / 3 + 1 / 2 + 1 + 1 / 2 + 1, won=2 / 3 + 1 / 2, lost=1 / 2 + 1, open=1.0,
          won_with_amount=7 / 6, revenue_won=2 / 3 * 1000 + 1 / 2 * 2000,
          average_deal=(2 / 3 * 1000 + 1000) / (7 / 6), win_rate=(7 / 6) / (7 / 6 + 3 / 2),
          sent_to_sales=2 / 3 + 1 / 2 + 1 / 2)  # fmt: skip
    # Weighted days: L1 20 d with weight 2/3 (its two email touches together), L7 30 d with 1/2;
    # positions (2/3 - 1/3) / (7/6) = 2/7 and (7/6 - 1/4) / (7/6) = 11/14
    check(email, median_days_to_close=20 + (0.5 - 2 / 7) / (11 / 14 - 2 / 7) * 10,
          p75_days_to_close=20 + (0.75 - 2 / 7) / (11 / 14 - 2 / 7) * 10)  # fmt: skip
    assert email["median_days_to_close"] == pytest.approx(170 / 7)
    # webinar: L1 1/3 (20 d), L4 1/2 (10 d), L7 1/2 (30 d); positions 3/16, 1/2, 13/16
    check(row(frame, "webinar"), leads=4 / 3, won=4 / 3, lost=0.0,
          revenue_won=1000 / 3 + 1500 + 1000, average_deal=(1000 / 3 + 2500) / (4 / 3),
          median_days_to_close=20.0, p75_days_to_close=20 + (0.75 - 0.5) / (13 / 16 - 0.5) * 10)  # fmt: skip
    # paid_search: L2 1/2 (lost), L4 1/2 (won 3000, 10 d), L6 1 (two touches, open)
    check(row(frame, "paid_search"), leads=2.0, won=0.5, lost=0.5, open=1.0, revenue_won=1500.0,
          average_deal=3000.0, median_days_to_close=10.0)  # fmt: skip
    # Credits add up to the whole leads of the total row.
    groups = frame[frame["channel"] != "(total)"]
    total = row(frame, "(total)")
    for name in ("leads", "won", "lost", "open", "revenue_won", "sent_to_sales"):
        assert groups[name].sum() == pytest.approx(total[name])
    check(total, leads=8.0, won=4.0, lost=2.0, open=2.0, revenue_won=6000.0)


def test_campaigns_by_attribution_with_touches_without_a_campaign():
    frame = report("campaign", "last_touch")
    # last touches: L2 email (no campaign), L6 paid_search (none), L7 email (none)
    check(row(frame, "(no campaign)"), leads=3, won=1, lost=1, open=1)
    check(row(frame, "NL-Jan"), leads=2, lost=1, open=1)  # L5, L8
    check(row(frame, "S-Brand"), leads=1, won=1)  # L4
    check(row(frame, "W-Q1"), leads=1, won=1)  # L1
    check(row(frame, "Ebook"), leads=0)  # L3's download came after the close
    first = report("campaign", "first_touch")
    check(row(first, "NL-Jan"), leads=3)  # L1, L5, L8
    check(row(first, "S-Brand"), leads=2)  # L2, L6
    check(row(first, "W-Q1"), leads=2)  # L4, L7


def test_a_touch_at_the_moment_of_the_close_counts_one_after_does_not():
    touches = h.touchpoints()
    l3 = touches["lead_id"] == "L3"
    touches.loc[l3, "occurred_at"] = pd.Timestamp("2024-01-13 09:00", tz="UTC")  # L3's close
    check(row(report("channel", touchpoints=touches), "content"), leads=1, won=1)
    touches.loc[l3, "occurred_at"] += pd.Timedelta(seconds=1)
    check(row(report("channel", touchpoints=touches), "(none)"), leads=1, won=1)


def test_leads_without_touchpoints_are_none_for_every_rule():
    for attribution in ("first_touch", "last_touch", "linear"):
        frame = report("channel", attribution, touchpoints=None)
        assert list(frame["channel"]) == ["(none)", "(total)"]
        check(row(frame, "(none)"), leads=8, won=4, lost=2, open=2)


# --------------------------------------------------------------------------------------------------
# Outcomes, amounts, days to close


def test_totals_count_each_lead_once_whatever_the_rule():
    for attribution in ("first_touch", "last_touch", "linear"):
        total = row(report("channel", attribution), "(total)")
        # won L1, L3, L4, L7 (L7's later loss ignored), lost L2, L5, open L6, L8
        check(total, leads=8, won=4, lost=2, open=2, win_rate=4 / 6, won_with_amount=3,
              revenue_won=6000.0, average_deal=2000.0)  # fmt: skip
        # days to close of the wins: 10, 10, 20, 30 at positions 1/8, 3/8, 5/8, 7/8
        check(total, median_days_to_close=15.0, p75_days_to_close=25.0)


def test_the_earliest_outcome_of_a_lead_counts():
    outcomes = h.outcomes()
    assert (outcomes["lead_id"] == "L7").sum() == 2
    check(row(report("industry", outcomes=outcomes), "Retail"), won=3, lost=0)
    # Swapped dates: now the loss is earliest, so L7 is lost.
    l7 = outcomes["lead_id"] == "L7"
    outcomes.loc[l7, "closed_at"] = outcomes.loc[l7, "closed_at"].to_numpy()[::-1]
    check(row(report("industry", outcomes=outcomes), "Retail"), won=2, lost=1)


def test_no_won_deals_give_empty_averages_not_errors():
    outcomes = h.outcomes().assign(won=False)
    total = row(report("week", outcomes=outcomes), "(total)")
    check(total, won=0, lost=6, win_rate=0.0, revenue_won=0.0, average_deal=NAN,
          median_days_to_close=NAN, p75_days_to_close=NAN, win_rate_low=0.0)  # fmt: skip
    open_only = row(report("week", outcomes=None), "(total)")
    check(open_only, leads=8, open=8, win_rate=NAN, win_rate_low=NAN, win_rate_high=NAN)


def test_missing_amounts_leave_revenue_empty_only_when_no_won_deal_has_one():
    no_amounts = h.outcomes().drop(columns="amount")
    total = row(report("industry", outcomes=no_amounts), "(total)")
    check(total, won=4, won_with_amount=0, revenue_won=NAN, average_deal=NAN,
          median_days_to_close=15.0)  # fmt: skip
    # L5's 500 is a lost deal's amount: never revenue.
    check(row(report("industry"), "Software"), won=1, lost=2, revenue_won=1000.0)


def test_weighted_quantiles_with_equal_weights_are_the_hazen_percentiles():
    rng = np.random.default_rng(3)
    group = rng.integers(0, 5, 400)
    values = rng.gamma(3.0, 20.0, 400).round(1)  # ties included
    for q in (0.25, 0.5, 0.75, 0.9):
        got = weighted_quantiles(group, values, np.ones(400), 6, q)
        want = [np.percentile(values[group == g], 100 * q, method="hazen") for g in range(5)]
        np.testing.assert_allclose(got[:5], want, rtol=1e-12)
        assert math.isnan(got[5])  # a group without values


def test_weighted_quantiles_by_hand():
    # one group: 10 d (weight 1), 40 d (weight 3): positions 1/8 and 5/8
    group = np.zeros(2, dtype=np.int64)
    values, weights = np.array([40.0, 10.0]), np.array([3.0, 1.0])
    assert weighted_quantiles(group, values, weights, 1, 0.5)[0] == pytest.approx(
        10 + (0.5 - 1 / 8) / (5 / 8 - 1 / 8) * 30
    )
    assert weighted_quantiles(group, values, weights, 1, 0.75)[0] == 40.0  # above the last
    assert weighted_quantiles(group, values, weights, 1, 0.1)[0] == 10.0  # below the first
    # Scaling every weight changes nothing.
    assert weighted_quantiles(group, values, weights / 7, 1, 0.5)[0] == pytest.approx(32.5)


# --------------------------------------------------------------------------------------------------
# The Wilson interval


def test_wilson_interval_against_the_formula():
    # 4 won, 2 lost: n = 6, p = 2/3, z = 1.959963984540054 (z^2 = 3.841458820694124)
    z2 = 3.841458820694124
    centre = (2 / 3 + z2 / 12) / (1 + z2 / 6)
    half = 1.959963984540054 * math.sqrt((2 / 3) * (1 / 3) / 6 + z2 / 144) / (1 + z2 / 6)
    low, high = wilson_interval(np.array([4.0]), np.array([6.0]))
    assert low[0] == pytest.approx(centre - half, abs=1e-12)
    assert high[0] == pytest.approx(centre + half, abs=1e-12)
    assert (round(low[0], 4), round(high[0], 4)) == (0.3000, 0.9032)
    check(row(report("week"), "(total)"), win_rate_low=centre - half, win_rate_high=centre + half)
    # 0 of 10 and 10 of 10: the bounds are z^2 / (n + z^2) from the ends
    low, high = wilson_interval(np.array([0.0, 10.0]), np.array([10.0, 10.0]))
    assert low[0] == 0.0 and high[0] == pytest.approx(z2 / (10 + z2))
    assert low[1] == pytest.approx(10 / (10 + z2)) and high[1] == pytest.approx(1.0)
    # nothing closed: no interval
    low, high = wilson_interval(np.array([0.0]), np.array([0.0]))
    assert math.isnan(low[0]) and math.isnan(high[0])


# --------------------------------------------------------------------------------------------------
# Other groupings and the period


def test_group_by_a_lead_attribute():
    frame = report("industry")
    assert list(frame["industry"]) == ["Software", "Retail", "(missing)", "(total)"]
    check(row(frame, "Software"), leads=4, won=1, lost=2, open=1, revenue_won=1000.0)
    # Retail: L3 (10 d, no amount), L4 (10 d, 3000), L7 (30 d, 2000): positions 1/6, 1/2, 5/6
    check(row(frame, "Retail"), leads=3, won=3, won_with_amount=2, revenue_won=5000.0,
          average_deal=2500.0, median_days_to_close=10.0,
          p75_days_to_close=10 + (0.75 - 0.5) / (5 / 6 - 0.5) * 20)  # fmt: skip
    check(row(frame, "(missing)"), leads=1, open=1, win_rate=NAN)
    assert frame.attrs["attribution"] is None  # attribution is about touchpoints only


def test_group_by_week_of_creation_with_an_empty_week():
    frame = report("week", start="2023-12-25", end="2024-01-15")
    assert list(frame["week"]) == ["2023-12-25", "2024-01-01", "2024-01-08", "(total)"]
    check(row(frame, "2023-12-25"), leads=0, won=0, win_rate=NAN, average_deal=NAN,
          median_days_to_close=NAN, revenue_won=0.0)  # fmt: skip
    check(row(frame, "2024-01-01"), leads=3, won=2, lost=1, revenue_won=1000.0,
          median_days_to_close=15.0, p75_days_to_close=20.0)  # fmt: skip
    check(row(frame, "2024-01-08"), leads=3, won=1, lost=1, open=1, revenue_won=3000.0)
    check(row(frame, "(total)"), leads=6)  # L7 and L8 (week of 01-15) are after the end


def test_from_and_to_select_leads_by_creation_time():
    frame = report("channel", start="2024-01-08", end="2024-01-15")  # L4, L5, L6
    check(row(frame, "(total)"), leads=3, won=1, lost=1, open=1, revenue_won=3000.0)
    check(row(frame, "webinar"), leads=1, won=1)  # L4
    check(row(frame, "email"), leads=1, lost=1)  # L5
    check(row(frame, "paid_search"), leads=1, open=1)  # L6
    assert "(none)" not in set(frame["channel"])  # all three have a touch before their close
    assert frame.attrs["start"] == "2024-01-08T00:00:00+00:00"
    assert frame.attrs["end"] == "2024-01-15T00:00:00+00:00"
    # Bounds: start included, end excluded, a zone respected (09:00 UTC = 10:00 in Berlin).
    on_the_dot = report("week", start="2024-01-08 10:00+01:00", end=pd.Timestamp("2024-01-09 09:00", tz="UTC"))  # fmt: skip
    check(row(on_the_dot, "(total)"), leads=1)  # L4 only
    empty = report("channel", start="2030-01-01")
    check(row(empty, "(total)"), leads=0, won=0, win_rate=NAN)


def test_groupings_by_the_latest_score():
    grades = report("grade", scores=h.scores())
    assert list(grades["grade"]) == ["A", "B", "C", "D", "(not scored)", "(total)"]
    # A: L1, L3, L7 (its latest row is A; the older C row is ignored)
    check(row(grades, "A"), leads=3, sent_to_sales=3, won=3, revenue_won=3000.0,
          median_days_to_close=20.0)  # fmt: skip
    check(row(grades, "C"), leads=1, won=1)  # L4
    check(row(grades, "(not scored)"), leads=1, open=1, sent_to_sales=0)  # L8
    decisions = report("decision", scores=h.scores())
    check(row(decisions, "sales"), leads=4, sent_to_sales=4, won=3, lost=1)  # L1, L2, L3, L7
    check(row(decisions, "nurture"), leads=2, won=1, open=1)  # L4, L6
    check(row(decisions, "(total)"), sent_to_sales=4)
    bands = report("score_band", scores=h.scores())
    assert list(bands["score_band"])[:10] == [
        "0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90-100"
    ]  # fmt: skip
    check(row(bands, "60-69"), leads=1, won=1)  # L7 at 65, not its older 30
    check(row(bands, "30-39"), leads=0)
    # Without scores nobody knows who went to sales.
    assert report("week")["sent_to_sales"].isna().all()


# --------------------------------------------------------------------------------------------------
# Shape and errors


def test_columns_are_the_declared_measures():
    frame = report("channel")
    assert list(frame.columns) == ["channel", *MEASURE_NAMES]
    assert all(m.description and m.unit for m in MEASURES)
    assert frame["leads"].dtype == np.int64  # whole leads unless credit is split
    assert report("channel", "linear")["leads"].dtype == np.float64


def test_no_leads_at_all():
    frame = report("channel", "linear", leads=h.leads().iloc[:0])
    check(row(frame, "(total)"), leads=0, won=0, win_rate=NAN, median_days_to_close=NAN)
    assert list(report("week", leads=h.leads().iloc[:0])["week"]) == ["(total)"]


def test_unknown_grouping_names_the_option_and_the_accepted_values():
    with pytest.raises(FunnelError) as error:
        report("Industry")
    assert error.value.option == "by"
    message = str(error.value)
    assert message.startswith("by: 'Industry' is neither a grouping nor a lead attribute")
    assert ", ".join(GROUPING_NAMES) in message
    assert "'industry'" in message  # the lead attributes there are


def test_unknown_attribution_names_the_option_and_the_rules():
    with pytest.raises(FunnelError, match=r"^attribution: 'position_based' is not an attribution "
                       r"rule; accepted: first_touch, last_touch, linear$"):  # fmt: skip
        report("channel", "position_based")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by": "grade"}, "by: grouping by grade needs scores with a 'grade' column"),
        ({"by": "score_band", "scores": h.scores().drop(columns="score")}, "'score' column"),
        ({"start": "last tuesday"}, "start: 'last tuesday' is not a date: write YYYY-MM-DD"),
        ({"end": "3000-01-01"}, "end: '3000-01-01' is out of range: give a date between"),
        (
            {"start": "2024-02-01", "end": "2024-01-01"},
            "end: end (2024-01-01T00:00:00+00:00) must be after start (2024-02-01T00:00:00+00:00)",
        ),  # fmt: skip
        ({"leads": h.leads().drop(columns="created_at")}, "leads: the leads have no 'created_at'"),
        ({"leads": h.leads().assign(lead_id="L1")}, "leads: lead ids are missing or not unique"),
    ],
)
def test_choices_the_report_cannot_follow_say_what_to_do(kwargs, message):
    with pytest.raises(FunnelError) as error:
        report(**kwargs)
    assert message in str(error.value)
