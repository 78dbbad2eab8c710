"""Policy maths checked against numbers worked out by hand on a 10-lead holdout.

The holdout (two weeks of leads):

    probability  0.95 0.85 0.75 0.65 0.55 0.45 0.35 0.25 0.15 0.05
    score          95   85   75   65   55   45   35   25   15    5
    won             1    1    0    1    0    1    0    0    0    0

4 wins in 10 leads: sending everyone gives precision 0.4 and 2 wins a week.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.policy.facts import attribute_facts, frame_facts, lead_facts
from features.policy.monitoring import population_stability_index, win_rate_by_grade
from features.policy.rules import Policy, PolicyError, apply_policy, decide, score_from_probability
from features.policy.thresholds import choose_threshold, threshold_table

P = [0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05]
Y = [1, 1, 0, 1, 0, 1, 0, 0, 0, 0]
WEEKS = 2.0


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return threshold_table(P, Y, WEEKS)


def row(table: pd.DataFrame, threshold: int) -> dict:
    return table.set_index("threshold").loc[threshold].to_dict()


def test_table_has_every_integer_threshold(table):
    assert list(table.columns) == [
        "threshold",
        "share_to_sales",
        "leads_per_week",
        "precision",
        "recall",
        "expected_wins",
        "lift",
    ]
    assert table["threshold"].tolist() == list(range(101))


@pytest.mark.parametrize(
    "threshold, share, per_week, precision, recall, wins, lift",
    [
        # everyone: 10 leads / 2 weeks, 4 wins
        (0, 1.0, 5.0, 0.4, 1.0, 2.0, 1.0),
        # 95 85 75 65 55 sent, 3 wins (95 85 65)
        (50, 0.5, 2.5, 0.6, 0.75, 1.5, 1.5),
        # 95 85 75 sent, 2 wins
        (70, 0.3, 1.5, 2 / 3, 0.5, 1.0, (2 / 3) / 0.4),
        # 95 85 75 65 sent (55 is below 56), 3 wins
        (56, 0.4, 2.0, 0.75, 0.75, 1.5, 1.875),
        # the score is the threshold: 45 is sent at 45
        (45, 0.6, 3.0, 4 / 6, 1.0, 2.0, (4 / 6) / 0.4),
    ],
)
def test_table_rows_match_hand_counts(
    table, threshold, share, per_week, precision, recall, wins, lift
):
    r = row(table, threshold)
    assert r["share_to_sales"] == pytest.approx(share)
    assert r["leads_per_week"] == pytest.approx(per_week)
    assert r["precision"] == pytest.approx(precision)
    assert r["recall"] == pytest.approx(recall)
    assert r["expected_wins"] == pytest.approx(wins)
    assert r["lift"] == pytest.approx(lift)


def test_threshold_above_every_score_sends_nobody(table):
    r = row(table, 96)
    assert r["leads_per_week"] == 0 and r["recall"] == 0 and r["expected_wins"] == 0
    assert math.isnan(r["precision"]) and math.isnan(r["lift"])


def test_without_labels_uses_calibrated_expectations():
    r = row(threshold_table(P, None, WEEKS), 50)
    sent = 0.95 + 0.85 + 0.75 + 0.65 + 0.55  # 3.75 expected wins in 5 leads
    assert r["expected_wins"] == pytest.approx(sent / 2)
    assert r["precision"] == pytest.approx(sent / 5)
    assert r["recall"] == pytest.approx(sent / sum(P))
    assert r["lift"] == pytest.approx((sent / 5) / (sum(P) / 10))


@pytest.mark.parametrize(
    "by, value, expected",
    [
        # 4 leads sent (2/week) at 56..65; ties go to the higher threshold
        ("capacity", 2, 65),
        # closest weekly volume to 1.2 is 1.0 (95 and 85): thresholds 76..85
        ("capacity", 1.2, 85),
        # precision reaches 0.75 first at 56 (4 sent, 3 won)
        ("precision", 0.75, 56),
        # 76..85 sends 95 and 85, both won
        ("precision", 0.9, 76),
        # recall 3/4 holds up to 65
        ("recall", 0.75, 65),
        # all four wins need the lead scored 45
        ("recall", 1.0, 45),
        # win worth 4 leads of work: 36..45 gives 2 wins*4 - 3 leads = 5 per week, the best
        ("value", 4, 45),
        # win worth 2: 45 (4-3), 65 (3-2) and 85 (2-1) tie at 1 per week: fewest leads wins
        ("value", 2, 85),
    ],
)
def test_choose_threshold_by_each_criterion(table, by, value, expected):
    assert int(choose_threshold(table, by, value)["threshold"]) == expected


def test_choose_by_value_with_cost_per_lead(table):
    # win worth 3000, a lead costs 1000: same as ratio 3: 45 gives 6-3=3 per week, 65 gives 4.5-2
    assert int(choose_threshold(table, "value", 3000, cost_per_lead=1000)["threshold"]) == 45


@pytest.mark.parametrize(
    "by, value, message",
    [
        ("volume", 3, "unknown way to choose a threshold 'volume'; use one of: value, capacity"),
        ("precision", 40, "target precision must be between 0 and 1 (e.g. 0.4 for 40%), got 40.0"),
        ("recall", 0, "target recall must be between 0 and 1"),
        ("capacity", -1, "sales capacity must be >= 0 leads a week, got -1.0"),
        ("value", "lots", "value for choosing by value must be a number, got 'lots'"),
    ],
)
def test_choose_threshold_errors_say_what_to_do(table, by, value, message):
    with pytest.raises(PolicyError, match=None) as err:
        choose_threshold(table, by, value)
    assert message in str(err.value)


def test_unreachable_precision_names_the_best_available():
    # 0.9 lost, 0.8 won: the best is sending both (threshold 21..80), precision 0.5
    table = threshold_table([0.9, 0.8, 0.2], [0, 1, 0], 1)
    with pytest.raises(PolicyError) as err:
        choose_threshold(table, "precision", 0.9)
    assert "no threshold reaches precision 0.900; the highest is 0.500 at threshold 21" in str(
        err.value
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(probabilities=[0.2, 1.3], labels=[0, 1], weeks=1), "between 0 and 1"),
        (dict(probabilities=[0.2, 0.3], labels=[0], weeks=1), "got 1 labels for 2 probabilities"),
        (
            dict(probabilities=[0.2, 0.3], labels=[0, 2], weeks=1),
            "labels must be 1 (won) or 0 (lost)",
        ),
        (dict(probabilities=[0.2], labels=[0], weeks=0), "weeks must be a positive number"),
    ],
)
def test_threshold_table_input_errors(kwargs, message):
    with pytest.raises(PolicyError) as err:
        threshold_table(**kwargs)
    assert message in str(err.value)


def test_score_rounds_probability_to_integer_percent():
    assert score_from_probability([0.0, 0.004, 0.296, 0.5, 1.0]).tolist() == [0, 0, 30, 50, 100]


# --- the policy -----------------------------------------------------------------------------


def test_grades_and_decisions_follow_bands_and_thresholds():
    policy = Policy(sales_threshold=50, nurture_threshold=20)
    grades, decisions, reasons = apply_policy(
        [100, 60, 59, 50, 49, 35, 20, 19, 15, 14, 0], None, policy
    )
    assert grades.tolist() == ["A", "A", "B", "B", "B", "B", "C", "C", "C", "D", "D"]
    assert decisions.tolist() == [
        "sales",
        "sales",
        "sales",
        "sales",
        "nurture",
        "nurture",
        "nurture",
        "disqualify",
        "disqualify",
        "disqualify",
        "disqualify",
    ]
    assert reasons == [[]] * 11


def test_hard_rules_override_the_score_and_explain_themselves():
    policy = Policy()
    facts = [
        {"do_not_contact": True},  # high score but asked not to be contacted
        {"demo_request": True},  # low score but asked for a demo
        {"demo_request": True, "do_not_contact": True},  # first rule (do not contact) wins
        {"demo_request": True},  # already sales
        {},
    ]
    grades, decisions, reasons = apply_policy([90, 5, 90, 70, 90], facts, policy)
    assert decisions.tolist() == ["disqualify", "sales", "disqualify", "sales", "sales"]
    assert grades.tolist() == ["A", "D", "A", "A", "A"]  # rules never change the grade
    assert reasons[0] == [
        "Hard rule: asked not to be contacted (do-not-contact flag or unsubscribe) -> disqualify "
        "(the score alone says sales)"
    ]
    assert reasons[1] == ["Hard rule: requested a demo -> sales (the score alone says disqualify)"]
    assert reasons[2][0].startswith("Hard rule: asked not to be contacted")
    assert reasons[3] == ["Hard rule: requested a demo -> sales"]
    assert reasons[4] == []


def test_single_lead_path_equals_the_vectorised_path():
    policy = Policy(sales_threshold=40, nurture_threshold=10)
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 101, 300)
    facts = [
        {"do_not_contact": bool(a), "demo_request": bool(b)} for a, b in rng.random((300, 2)) < 0.2
    ]
    grades, decisions, reasons = apply_policy(scores, facts, policy)
    columnar = {k: [f[k] for f in facts] for k in ("do_not_contact", "demo_request")}
    g2, d2, r2 = apply_policy(scores, columnar, policy)
    assert grades.tolist() == g2.tolist() and decisions.tolist() == d2.tolist() and reasons == r2
    for i in range(300):
        grade, decision, reason = decide(float(scores[i]), facts[i], policy)
        one = apply_policy([scores[i]], [facts[i]], policy)
        assert (grade, decision) == (grades[i], decisions[i]) == (one[0][0], one[1][0])
        assert ([reason] if reason else []) == reasons[i] == one[2][0]


def test_rules_can_be_removed_or_reordered():
    no_rules = Policy(rules=())
    assert apply_policy([90], [{"do_not_contact": True}], no_rules)[1].tolist() == ["sales"]
    demo_first = Policy(rules=tuple(reversed(Policy().rules)))
    decisions = apply_policy([90], [{"do_not_contact": True, "demo_request": True}], demo_first)[1]
    assert decisions.tolist() == ["sales"]


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            dict(sales_threshold=30, nurture_threshold=40),
            "nurture_threshold (40.0) must not be above sales_threshold (30.0)",
        ),
        (dict(sales_threshold=120), "less than or equal to 100"),
        (dict(grades={"A": 20, "B": 30, "C": 10}), "grade bands must satisfy A >= B >= C"),
        (
            dict(rules=[{"fact": "vip", "decision": "sales", "reason": "x"}]),
            "unknown fact 'vip'; rules can use: do_not_contact, demo_request",
        ),
        (
            dict(rules=[{"fact": "demo_request", "decision": "call", "reason": "x"}]),
            "'sales', 'nurture' or 'disqualify'",
        ),
        (dict(threshold=3), "Extra inputs are not permitted"),
    ],
)
def test_invalid_policies_are_refused_with_the_fix(fields, message):
    with pytest.raises(ValidationError) as err:
        Policy(**fields)
    assert message in str(err.value)


def test_facts_count_length_mismatch_is_a_clear_error():
    with pytest.raises(PolicyError, match="got facts for 1 leads and 2 scores"):
        apply_policy([10, 20], [{}], Policy())


# --- facts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attributes, touchpoints, expected",
    [
        ({"Do Not Email": "Yes"}, [], {"do_not_contact": True, "demo_request": False}),
        ({"HasOptedOutOfEmail": 1}, None, {"do_not_contact": True, "demo_request": False}),
        (
            {"do_not_contact": False, "DoNotCall": "no"},
            [],
            {"do_not_contact": False, "demo_request": False},
        ),
        ({}, [{"activity": "unsubscribe"}], {"do_not_contact": True, "demo_request": False}),
        (
            {},
            [{"activity": "visit"}, {"activity": "Demo Request"}],
            {"do_not_contact": False, "demo_request": True},
        ),
        ({"demo_requested": "true"}, [], {"do_not_contact": False, "demo_request": True}),
        # CRM spellings, through the contract's synonyms
        ({}, [{"activity": "Email Unsubscribe"}], {"do_not_contact": True, "demo_request": False}),
        ({}, [{"activity": "Request a Demo"}], {"do_not_contact": False, "demo_request": True}),
        ({}, [{"activity": "Hard Bounce"}], {"do_not_contact": False, "demo_request": False}),
        ({"opt_out": float("nan")}, [], {"do_not_contact": False, "demo_request": False}),
    ],
)
def test_lead_facts(attributes, touchpoints, expected):
    assert lead_facts(attributes, touchpoints) == expected


def test_frame_facts_matches_lead_facts_and_respects_as_of():
    t = pd.Timestamp("2026-01-10", tz="UTC")
    leads = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c", "d"],
            "as_of": [t, t, t, t],
            "Do Not Email": ["yes", "no", None, "no"],
        }
    )
    touchpoints = pd.DataFrame(
        {
            "lead_id": ["b", "c", "d"],
            "occurred_at": [
                t - pd.Timedelta(days=1),
                t - pd.Timedelta(days=2),
                t + pd.Timedelta(days=1),
            ],
            "activity": ["Request a Demo", "Email Unsubscribe", "demo_request"],
        }
    )
    facts = frame_facts(leads, touchpoints)
    assert facts["do_not_contact"].tolist() == [True, False, True, False]
    # d asked for a demo only after its as_of: not a fact yet
    assert facts["demo_request"].tolist() == [False, True, False, False]


# --- drift and outcomes -------------------------------------------------------------------------


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    ref = rng.random(5000)
    same, frame = population_stability_index(ref, ref)
    assert same == pytest.approx(0.0, abs=1e-12)
    assert frame["reference_share"].sum() == pytest.approx(1.0)
    assert len(frame) == 10
    shifted, _ = population_stability_index(ref, ref**3)
    assert shifted > 0.25


def test_psi_by_hand_on_two_bins():
    # reference quantile edge at 0.5: shares 0.5/0.5; recent 0.75/0.25
    psi, frame = population_stability_index([0.1, 0.2, 0.8, 0.9], [0.1, 0.2, 0.3, 0.9], bins=2)
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert psi == pytest.approx(expected)
    assert frame["recent_share"].tolist() == [0.75, 0.25]


def test_psi_needs_data_on_both_sides():
    with pytest.raises(PolicyError, match="reference 3, recent 0"):
        population_stability_index([0.1, 0.2, 0.3], [])


def test_win_rate_by_grade():
    frame = win_rate_by_grade(["A", "A", "B", "D", "A"], [1, 0, 1, 0, 1]).set_index("grade")
    assert frame.loc["A"].tolist() == [3, 2, pytest.approx(2 / 3)]
    assert frame.loc["B", "win_rate"] == 1.0
    assert frame.loc["C", "leads"] == 0 and math.isnan(frame.loc["C", "win_rate"])


# --- the vectorised table against a plain loop --------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(
    leads=st.lists(
        st.tuples(st.floats(0, 1, allow_nan=False), st.integers(0, 1)), min_size=1, max_size=60
    ),
    weeks=st.floats(0.5, 20),
    threshold=st.integers(0, 100),
)
def test_table_row_equals_counting_lead_by_lead(leads, weeks, threshold):
    p = [x for x, _ in leads]
    y = [w for _, w in leads]
    r = row(threshold_table(p, y, weeks), threshold)
    sent = [(pi, yi) for pi, yi in zip(p, y) if round(100 * pi) >= threshold]
    wins = sum(yi for _, yi in sent)
    assert r["leads_per_week"] == pytest.approx(len(sent) / weeks)
    assert r["expected_wins"] == pytest.approx(wins / weeks)
    if sent:
        assert r["precision"] == pytest.approx(wins / len(sent))
    if sum(y):
        assert r["recall"] == pytest.approx(wins / sum(y))
        if sent:
            assert r["lift"] == pytest.approx((wins / len(sent)) / (sum(y) / len(y)))


def test_attribute_facts_of_many_leads_equal_each_lead_alone():
    rng = np.random.default_rng(2)
    names = ["Do Not Email", "do_not_contact", "DemoRequested", "industry", "HasOptedOutOfEmail", 7]
    values = [True, False, None, "yes", "No", 1, 0, 0.0, float("nan"), "Software"]
    leads = []
    for _ in range(400):
        chosen = rng.choice(len(names), size=int(rng.integers(0, 4)), replace=False)
        lead = {names[int(i)]: values[int(rng.integers(len(values)))] for i in chosen}
        leads.append(lead or None)
    facts = attribute_facts(leads)
    for fact in ("do_not_contact", "demo_request"):
        expected = [lead_facts(lead)[fact] for lead in leads]
        assert facts[fact].tolist() == expected
        assert 20 < sum(expected) < 380  # both outcomes occur


def test_grade_bands_by_share_give_each_grade_its_share_of_the_leads():
    from features.policy.rules import GradeShares, grade_bands_by_share

    # scores 0..99, one lead each: the top 25 score 75-99
    p = np.arange(100) / 100
    bands = grade_bands_by_share(p, basis="100 hand-made leads")
    assert (bands.by, bands.A, bands.B, bands.C) == ("share", 75.0, 50.0, 25.0)
    assert bands.basis == "100 hand-made leads" and bands.shares == GradeShares()
    grades, _, _ = apply_policy(np.arange(100), None, Policy(grades=bands))
    assert [int((grades == g).sum()) for g in "ABCD"] == [25, 25, 25, 25]
    # ties: 60 leads at score 10, 40 spread above; A the top 10%, B the next 20%, C the rest
    p = np.r_[np.full(60, 0.10), np.linspace(0.5, 0.9, 40)]
    tied = grade_bands_by_share(p, GradeShares(A=0.1, B=0.2, C=0.7))
    assert tied.A > tied.B > tied.C == 10.0


def test_grade_shares_must_fit_in_every_lead():
    from features.policy.rules import GradeShares

    with pytest.raises(ValidationError) as error:
        GradeShares(A=0.5, B=0.4, C=0.3)
    assert "grade shares add up to more than every lead (A=0.5, B=0.4, C=0.3): make A + B + C" in (
        str(error.value)
    )


def test_choosing_by_value_keeps_to_the_weekly_capacity():
    # ten leads over two weeks, scores 95 ... 5, the top four of five winners ranked first
    table = threshold_table(
        [0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35, 0.25, 0.15, 0.05],
        [1, 1, 0, 1, 0, 1, 0, 0, 0, 0],
        weeks=2,
    )
    free = choose_threshold(table, "value", 4)
    assert (free["threshold"], free["leads_per_week"]) == (45, 3.0)
    capped = choose_threshold(table, "value", 4, capacity=2)
    assert (capped["threshold"], capped["leads_per_week"]) == (65, 2.0)
    with pytest.raises(PolicyError, match="sales capacity must be > 0 leads a week, got 0"):
        choose_threshold(table, "value", 4, capacity=0)
