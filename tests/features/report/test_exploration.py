"""The exploration estimate checked against figures worked out by hand.

Two weeks of scores (each lead's latest counts):

    lead  decisions (in order)     exploration  outcome   held back  explored
    L1    sales                    yes          won       yes        yes
    L2    sales                    yes          lost      yes        yes
    L3    sales                    yes          lost      yes        yes
    L4    sales                    yes          -         yes        yes (open)
    L5    nurture                  no           won       yes        no
    L6    nurture, then sales      no           won       no         no
    L7    disqualify               no           lost      no         no
    L8    sales, then nurture      no           -         yes        no
    L9    nurture                  no           -         yes        no
    L10   nurture                  no           lost      yes        no

Held back: 8 leads in 2 weeks = 4 a week. Explored: 4, won 1, lost 2, open 1: win rate 1/3.
Wilson 95% (z = 1.959964, z^2 = 3.841459, n = 3, p = 1/3):
    denominator 1 + 3.841459/3 = 2.280486
    centre (1/3 + 3.841459/6) / 2.280486 = 0.973576 / 2.280486 = 0.426916
    half 1.959964 * sqrt(2/27 + 3.841459/36) / 2.280486 = 1.959964 * 0.425183 / 2.280486 = 0.365424
    -> 0.061492 .. 0.792340
Forgone wins a week: 4 * 1/3 = 1.333333, interval 4 * 0.061492 = 0.245968 .. 4 * 0.792340 = 3.169362.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.report.exploration import ExplorationReportError, exploration_estimate

DAY = pd.Timestamp("2026-03-02", tz="UTC")


def scores() -> pd.DataFrame:
    rows = [
        ("L1", 0, "sales", True),
        ("L2", 0, "sales", True),
        ("L3", 1, "sales", True),
        ("L4", 2, "sales", True),
        ("L5", 3, "nurture", False),
        ("L6", 1, "nurture", False),
        ("L6", 5, "sales", False),
        ("L7", 4, "disqualify", False),
        ("L8", 2, "sales", False),
        ("L8", 9, "nurture", False),
        ("L9", 10, "nurture", False),
        ("L10", 11, "nurture", False),
    ]
    frame = pd.DataFrame(rows, columns=["lead_id", "day", "decision", "exploration"])
    frame["scored_at"] = DAY + pd.to_timedelta(frame.pop("day"), unit="D")
    return frame.sample(frac=1, random_state=3)  # order must not matter


OUTCOMES = pd.DataFrame(
    {
        "lead_id": ["L1", "L2", "L3", "L5", "L6", "L7", "L10"],
        "won": [True, False, False, True, True, False, False],
    }
)


def test_hand_computed_figures():
    estimate = exploration_estimate(scores(), OUTCOMES, weeks=2.0)
    assert estimate.held_back == 8 and estimate.held_back_per_week == 4.0
    assert (estimate.explored, estimate.explored_won, estimate.explored_lost) == (4, 1, 2)
    assert estimate.explored_open == 1
    assert estimate.win_rate == pytest.approx(1 / 3)
    assert estimate.win_rate_low == pytest.approx(0.061492, abs=1e-6)
    assert estimate.win_rate_high == pytest.approx(0.792340, abs=1e-6)
    assert estimate.forgone_wins_per_week == pytest.approx(1.333333, abs=1e-6)
    assert estimate.forgone_wins_per_week_low == pytest.approx(0.245968, abs=1e-6)
    assert estimate.forgone_wins_per_week_high == pytest.approx(3.169362, abs=1e-6)


def test_without_closed_explored_leads_there_is_no_rate_but_the_volume_counts():
    estimate = exploration_estimate(scores(), None, weeks=4.0)
    assert estimate.held_back == 8 and estimate.held_back_per_week == 2.0
    assert estimate.explored == 4 and estimate.explored_open == 4
    assert estimate.win_rate is None and estimate.forgone_wins_per_week is None
    assert estimate.to_dict()["win_rate_low"] is None


def test_errors_name_the_column_or_value():
    with pytest.raises(ExplorationReportError, match="missing column.*exploration"):
        exploration_estimate(scores().drop(columns="exploration"), OUTCOMES, 2.0)
    with pytest.raises(ExplorationReportError, match="weeks must be a number above 0, got 0"):
        exploration_estimate(scores(), OUTCOMES, 0)
    with pytest.raises(ExplorationReportError, match="outcomes: missing column won"):
        exploration_estimate(scores(), OUTCOMES.drop(columns="won"), 2.0)
