"""Filling sales' capacity by expected value instead of probability, on six leads counted by hand.

    lead                 a     b     c     d     e     f      (two weeks of leads)
    probability        0.90  0.80  0.60  0.50  0.30  0.10
    expected amount     100  1000  5000   100  5000   200
    expected value       90   800  3000    50  1500    20
    won                   1     0     1     0     1     0

Capacity 1.5 leads a week = 3 leads in the two weeks:
- by probability the three highest scores are a, b, c (threshold 60): wins a, c = 1 a week,
  expected revenue (90 + 800 + 3000) / 2 = 1945 a week;
- by expected value the three highest are c, e, b (value threshold 800): wins c, e = 1 a week,
  expected revenue (3000 + 1500 + 800) / 2 = 2650 a week.
Capacity 1 a week = 2 leads: a, b (threshold 80, 0.5 wins, 445 a week) against c, e (value
threshold 1500, 1 win, 2250 a week).
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from features.policy.rules import Policy, PolicyError, ValueNeeded, apply_policy, decide
from features.policy.thresholds import (
    at_capacity,
    choose_value_threshold,
    threshold_table,
    value_table,
)

P = np.array([0.90, 0.80, 0.60, 0.50, 0.30, 0.10])
EV = np.array([90.0, 800.0, 3000.0, 50.0, 1500.0, 20.0])
WON = np.array([1, 0, 1, 0, 1, 0])
WEEKS = 2.0


def test_value_table_counts_the_leads_of_highest_expected_value():
    table = value_table(EV, P, WON, WEEKS)
    assert table["value_threshold"].tolist() == [3000, 1500, 800, 90, 50, 20]
    assert table["leads_per_week"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    assert table["expected_wins"].tolist() == [0.5, 1.0, 1.0, 1.5, 1.5, 1.5]
    assert table["expected_revenue"].tolist() == [1500, 2250, 2650, 2695, 2720, 2730]
    assert table["precision"].tolist() == pytest.approx([1, 1, 2 / 3, 3 / 4, 3 / 5, 3 / 6])
    assert table["recall"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 1, 1, 1])


def test_capacity_filled_by_expected_value_against_by_probability():
    by_value = choose_value_threshold(value_table(EV, P, WON, WEEKS), "capacity", 1.5)
    assert by_value["value_threshold"] == 800
    assert by_value["leads_per_week"] == 1.5
    assert by_value["expected_wins"] == 1.0
    assert by_value["expected_revenue"] == 2650
    by_probability = at_capacity(threshold_table(P, WON, WEEKS, EV), 1.5)
    assert by_probability is not None
    assert by_probability["threshold"] == 60
    assert by_probability["leads_per_week"] == 1.5
    assert by_probability["expected_wins"] == 1.0
    assert by_probability["expected_revenue"] == 1945
    # one a week: a and b by probability, c and e by expected value
    two = at_capacity(threshold_table(P, WON, WEEKS, EV), 1.0)
    assert (two["threshold"], two["expected_wins"], two["expected_revenue"]) == (80, 0.5, 445)
    best = choose_value_threshold(value_table(EV, P, WON, WEEKS), "capacity", 1.0)
    assert (best["value_threshold"], best["expected_wins"], best["expected_revenue"]) == (
        1500,
        1.0,
        2250,
    )


def test_capacity_is_never_exceeded_and_ties_go_together():
    # b and e tie at 800: at 1.5 a week (3 leads) c and both ties fit; at 1.25 a week (2.5
    # leads) they cannot both go, so neither does: only c.
    tied = np.array([90.0, 800.0, 3000.0, 50.0, 800.0, 20.0])
    table = value_table(tied, P, WON, WEEKS)
    assert choose_value_threshold(table, "capacity", 1.25)["value_threshold"] == 3000
    assert choose_value_threshold(table, "capacity", 1.5)["value_threshold"] == 800
    with pytest.raises(PolicyError, match="no value threshold keeps to 0.4 leads a week"):
        choose_value_threshold(table, "capacity", 0.4)


def test_by_value_sends_every_lead_worth_more_than_it_costs_within_capacity():
    table = value_table(EV, P, WON, WEEKS)
    # cost 100 a lead: c, e, b are worth more (90, 50 and 20 are not)
    row = choose_value_threshold(table, "value", None, cost_per_lead=100)
    assert row["value_threshold"] == 800 and row["leads_per_week"] == 1.5
    # ... but sales can take one a week: c and e
    assert choose_value_threshold(table, "value", 1.0, cost_per_lead=100)["value_threshold"] == 1500


@pytest.mark.parametrize(
    ("by", "capacity", "message"),
    [
        ("precision", 1.0, "chooses its threshold by capacity or value, not 'precision'"),
        ("capacity", None, "needs the weekly capacity"),
    ],
)
def test_choosing_a_value_threshold_errors_say_what_to_do(by, capacity, message):
    with pytest.raises(PolicyError, match=message):
        choose_value_threshold(value_table(EV, P, WON, WEEKS), by, capacity)


def test_expected_revenue_column_of_the_threshold_table():
    table = threshold_table(P, WON, WEEKS, EV)
    assert table.loc[60, "expected_revenue"] == 1945
    assert table.loc[0, "expected_revenue"] == EV.sum() / WEEKS
    assert table.loc[91, "expected_revenue"] == 0
    assert "expected_revenue" not in threshold_table(P, WON, WEEKS).columns
    with pytest.raises(PolicyError, match="expected values must be numbers of 0 or more"):
        threshold_table(P, WON, WEEKS, [1, 2, np.nan, 4, 5, 6])


def test_policy_by_expected_value_sends_by_value_and_keeps_grades_nurture_and_rules():
    policy = Policy(rank_by="expected_value", value_threshold=800, nurture_threshold=20)
    scores = np.rint(100 * P)
    grades, decisions, reasons = apply_policy(scores, None, policy, EV)
    # a (score 90) is worth 90: nurtured; e (score 30) is worth 1500: sales; f: score 10, disqualify
    assert decisions.tolist() == ["nurture", "sales", "sales", "nurture", "sales", "disqualify"]
    assert grades.tolist() == ["A", "A", "A", "B", "C", "D"]  # grades stay on the score
    assert reasons == [[]] * 6
    # hard rules still win: c asked not to be contacted, f requested a demo
    facts = {
        "do_not_contact": [False, False, True, False, False, False],
        "demo_request": [False, False, False, False, False, True],
    }
    _, decisions, reasons = apply_policy(scores, facts, policy, EV)
    assert decisions.tolist() == ["nurture", "sales", "disqualify", "nurture", "sales", "sales"]
    assert reasons[2] == [
        "Hard rule: asked not to be contacted (do-not-contact flag or unsubscribe) -> disqualify "
        "(the score alone says sales)"
    ]
    # one lead at a time (the API's path) decides the same
    for i in range(6):
        one = {k: v[i] for k, v in facts.items()}
        assert decide(float(scores[i]), one, policy, float(EV[i]))[1] == decisions[i]
    # the same leads by probability: the sales threshold decides
    _, by_score, _ = apply_policy(scores, None, Policy(sales_threshold=60), EV)
    assert by_score.tolist() == ["sales", "sales", "sales", "nurture", "nurture", "disqualify"]


def test_a_lead_without_an_expected_value_is_not_sent_by_value():
    policy = Policy(rank_by="expected_value", value_threshold=10)
    _, decisions, _ = apply_policy([90, 50], None, policy, [np.nan, 20.0])
    assert decisions.tolist() == ["nurture", "sales"]


def test_ranking_by_value_without_expected_values_says_why_and_the_fix():
    policy = Policy(rank_by="expected_value", value_threshold=800)
    for call in (
        lambda: apply_policy([90, 50], None, policy),
        lambda: decide(90.0, None, policy),
    ):
        with pytest.raises(ValueNeeded) as error:
            call()
        assert "rank_by: expected_value" in str(error.value)
        assert "no deal value model" in str(error.value)
        assert "rank by probability" in str(error.value)


def test_rank_by_expected_value_needs_a_value_threshold_and_old_policies_rank_by_probability():
    with pytest.raises(ValidationError) as error:
        Policy(rank_by="expected_value", currency="USD")
    assert "rank_by expected_value needs value_threshold" in str(error.value)
    assert "in USD" in str(error.value)
    stored_before = {"sales_threshold": 40, "nurture_threshold": 20}  # saved before rank_by
    policy = Policy.model_validate(stored_before)
    assert policy.rank_by == "probability" and policy.value_threshold is None
    with pytest.raises(ValidationError, match="rank_by"):
        Policy(rank_by="revenue")  # type: ignore[arg-type]


def test_an_explored_lead_is_told_it_was_below_the_value_threshold():
    from features.policy.exploration import exploration_reason

    policy = Policy(
        rank_by="expected_value", value_threshold=1500, currency="USD", exploration_rate=0.1
    )
    reason = exploration_reason(40, policy)
    assert "its expected value is below the value threshold (1,500.00 USD)" in reason
    assert "1 in 10" in reason
    assert "score (40) is below the sales threshold (50)" in exploration_reason(
        40, Policy(exploration_rate=0.1)
    )
