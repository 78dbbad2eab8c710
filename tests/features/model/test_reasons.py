"""ReasonWriter: per-column effects into one reason per fact, on hand-made effects."""

from __future__ import annotations

import numpy as np

from features.feature import FactColumns
from features.model.reasons import MIN_EFFECT_POINTS, MISSING_EFFECT_POINTS, ReasonWriter


def _writer() -> ReasonWriter:
    """Columns 0-1: one fact 'count' (windows); 2: 'title' blank when missing; 3: 'age'."""
    facts = [
        FactColumns("count", (0, 1), lambda v: f"{v[1]:.0f} in total", False),
        FactColumns(
            "title", (2,), lambda v: "Title: not given" if v[0] != v[0] else "Title: VP", True
        ),
        FactColumns("age", (3,), lambda v: f"{v[0]:.0f} days old", False),
    ]
    return ReasonWriter(facts, 4)


def test_effects_of_one_fact_add_up_into_one_reason_on_one_side():
    X = np.array([[1.0, 1.0, 0.0, 12.0], [1.0, 3.0, 0.0, 40.0]])
    effects = np.array([[6.6, -2.1, 0.7, np.nan], [-4.0, 1.0, np.nan, -0.8]])
    reasons_for, reasons_against = _writer().write(X, effects, 3)
    assert reasons_for[0] == [
        {"feature": "count", "text": "1 in total", "effect": 4.5},
        {"feature": "title", "text": "Title: VP", "effect": 0.7},
    ]
    assert reasons_against[0] == []
    assert reasons_for[1] == []
    assert reasons_against[1] == [
        {"feature": "count", "text": "3 in total", "effect": -3.0},
        {"feature": "age", "text": "40 days old", "effect": -0.8},
    ]


def test_a_blank_weighs_before_it_is_a_reason():
    X = np.array([[0.0, 0.0, np.nan, 5.0]] * 3)
    small, large = MISSING_EFFECT_POINTS - 0.1, MISSING_EFFECT_POINTS
    effects = np.array([[np.nan, np.nan, -small, np.nan], [np.nan, np.nan, -large, np.nan],
                        [np.nan, np.nan, large + 2, MIN_EFFECT_POINTS]])  # fmt: skip
    reasons_for, reasons_against = _writer().write(X, effects, 3)
    assert reasons_against[0] == []
    assert reasons_against[1] == [{"feature": "title", "text": "Title: not given", "effect": -3.0}]
    assert [r["feature"] for r in reasons_for[2]] == ["title", "age"]


def test_the_typical_lead_takes_a_calendar_parts_commonest_value_and_a_numbers_median():
    from features.feature import CALENDAR, CATEGORY, NUMBER
    from features.model.reasons import typical_lead

    # weekdays 0, 0, 1, 1, 1 and 0, 0, 1, 1 + a missing one: the median of the second is 0.5,
    # no weekday at all
    X = np.array([[0, 0, 5, 0], [0, 0, 7, 0], [1, 1, 9, 1], [1, 1, 20, 1], [1, np.nan, 1, 1]])
    kinds = np.array([CALENDAR, CALENDAR, NUMBER, NUMBER], dtype=np.int8)
    assert typical_lead(X, kinds).tolist() == [1.0, 0.0, 7.0, 1.0]
    assert typical_lead(X[:4], kinds).tolist() == [0.0, 0.0, 8.0, 0.5]
    # a bool mask: categories (True) and numbers
    mask = np.array([True, False, False, False])
    assert typical_lead(X[:4], mask).tolist() == [0.0, 0.5, 8.0, 0.5]
    assert typical_lead(X[:4], np.array([CATEGORY, NUMBER, NUMBER, NUMBER])).tolist() == [
        0.0, 0.5, 8.0, 0.5
    ]  # fmt: skip


def test_the_typical_lead_takes_a_wide_codes_commonest_value():
    from features.feature import CATEGORY, WIDE
    from features.model.reasons import typical_lead

    # a referrer's capped code (0 or 'other' = 2) and its wide code: the median, 3, is no one's
    X = np.array([[0, 0], [0, 0], [2, 3], [2, 5], [2, 9]], dtype=float)
    kinds = np.array([CATEGORY, WIDE], dtype=np.int8)
    assert typical_lead(X, kinds).tolist() == [2.0, 0.0]
