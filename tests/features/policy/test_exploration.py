"""Exploration and trend maths: which held-back leads go to sales, reproducibly, and in words."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from features.policy.exploration import (
    apply_exploration,
    exploration_draw,
    exploration_reason,
    explored,
)
from features.policy.rules import Policy
from features.policy.trend import score_trend

IDS = [f"L-{i}" for i in range(20_000)]


def test_the_draw_depends_only_on_the_lead_id_and_the_policy_version():
    # blake2b of "<version>\x1f<lead id>": the same in every process and on every machine
    assert exploration_draw("L-1", 0) == pytest.approx(0.41047597864197694, abs=1e-15)
    assert exploration_draw("L-1", 3) == pytest.approx(0.9079356695984582, abs=1e-15)
    assert exploration_draw("L-1", 0) == exploration_draw("L-1", 0)
    assert exploration_draw(17, 2) == exploration_draw("17", 2)  # ids are read as text


def test_a_rate_explores_about_that_share_of_held_back_leads():
    policy = Policy(exploration_rate=0.1)
    flags = explored(IDS, ["nurture"] * len(IDS), [None] * len(IDS), None, policy, 1)
    assert sum(flags) / len(IDS) == pytest.approx(0.1, abs=0.005)
    # the leads chosen are the ones whose draw is under the rate, nothing else
    assert flags == [exploration_draw(i, 1) < 0.1 for i in IDS]
    # another policy version draws anew: a different sample of about the same size
    other = explored(IDS, ["nurture"] * len(IDS), [None] * len(IDS), None, policy, 2)
    assert other != flags and sum(other) / len(IDS) == pytest.approx(0.1, abs=0.005)


def test_only_leads_held_back_by_the_score_alone_can_be_explored():
    # rate 0.2: find ids whose draw is under it, so only eligibility decides
    chosen = [i for i in IDS if exploration_draw(i, 4) < 0.2][:5]
    decisions = ["nurture", "disqualify", "sales", "nurture", "nurture"]
    rules = [None, None, None, "Hard rule: requested a demo -> nurture", None]
    do_not_contact = [False, False, False, False, True]
    policy = Policy(exploration_rate=0.2)
    assert explored(chosen, decisions, rules, do_not_contact, policy, 4) == [
        True,  # nurture by its score: explored
        False,  # disqualified by its score: below the nurture threshold too
        False,  # already going to sales
        False,  # a hard rule decided it
        False,  # do-not-contact, even with no rule saying so
    ]
    flags = apply_exploration(chosen, decisions, rules, do_not_contact, policy, 4)
    assert flags[0] and decisions == ["sales", "disqualify", "sales", "nurture", "nurture"]


def test_rate_zero_explores_nothing():
    decisions = ["nurture"] * 100
    flags = apply_exploration(IDS[:100], decisions, [None] * 100, None, Policy(), 0)
    assert flags == [False] * 100 and decisions == ["nurture"] * 100


def test_the_reason_says_why_in_plain_words():
    policy = Policy(sales_threshold=50, exploration_rate=0.05)
    assert exploration_reason(34, policy) == (
        "Exploration: sent to sales although its score (34) is below the sales threshold (50), "
        "one of about 1 in 20 such leads chosen at random, to measure how the leads the "
        "threshold holds back turn out; please work it as any other"
    )


@pytest.mark.parametrize("rate", [-0.01, 0.21, 1.0, float("nan")])
def test_the_rate_is_bounded(rate):
    with pytest.raises(ValidationError, match="exploration_rate"):
        Policy(exploration_rate=rate)


def test_default_policy_does_not_explore_and_steps_trends_by_five_points():
    assert Policy().exploration_rate == 0 and Policy().trend_points == 5
    # a policy saved before these fields existed reads with the defaults
    assert Policy.model_validate({"sales_threshold": 40}).exploration_rate == 0


@pytest.mark.parametrize(
    ("score", "previous", "points", "trend"),
    [
        (50, None, 5, "new"),
        (55, 50, 5, "improving"),  # exactly the step counts
        (54, 50, 5, "steady"),
        (46, 50, 5, "steady"),
        (45, 50, 5, "declining"),
        (50, 50, 5, "steady"),
        (52, 50, 2, "improving"),
    ],
)
def test_trend(score, previous, points, trend):
    assert score_trend(score, previous, points) == trend
