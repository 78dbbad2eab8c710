"""Evaluation maths against hand-counted numbers."""

import numpy as np
import pytest

from features.policy.rules import Policy
from training.evaluate import (
    age_band_metrics,
    calibration_by_age,
    calibration_table,
    classification_metrics,
    expected_calibration_error,
    gains_table,
    grade_table,
)


def test_ece_is_the_weighted_gap_per_bin():
    # bin 0.1-0.2: p=0.1,0.1 wins 1/2 -> |1 - 0.2| = 0.8 ; bin 0.9-1: p=0.9,0.9 wins 2/2 -> |2 - 1.8| = 0.2
    labels = [0, 1, 1, 1]
    probabilities = [0.1, 0.1, 0.9, 0.9]
    assert expected_calibration_error(labels, probabilities) == pytest.approx((0.8 + 0.2) / 4)


def test_perfectly_calibrated_bins_have_zero_ece():
    labels = [0] * 8 + [1] * 2 + [1] * 7 + [0] * 3
    probabilities = [0.2] * 10 + [0.7] * 10
    assert expected_calibration_error(labels, probabilities) == pytest.approx(0.0)
    table = calibration_table(labels, probabilities)
    assert table.loc[2, "leads"] == 10 and table.loc[2, "win_rate"] == pytest.approx(0.2)


def test_calibration_by_age_checks_each_band_on_its_own():
    # Calibrated overall (mean 0.3, 2 wins in 6) but not per age: the young leads are
    # under-predicted (p 0.1, won 2 of 3: ECE |2 - 0.3| / 3), the old over-predicted.
    labels = [1, 1, 0, 0, 0, 0]
    probabilities = [0.1, 0.1, 0.1, 0.5, 0.5, 0.5]
    ages = [1, 3, 6.9, 7, 30, 90]
    assert expected_calibration_error(labels, probabilities) == pytest.approx(
        (abs(2 - 0.3) + abs(0 - 1.5)) / 6
    )
    table = calibration_by_age(labels, probabilities, ages).set_index("age_band")
    assert list(table.index) == ["0-7d", "7-14d", "30-60d", "60d+"]  # 14-30d: no snapshot
    assert table.loc["0-7d", "snapshots"] == 3 and table.loc["0-7d", "ages_days"] == "1 3 6.9"
    assert table.loc["0-7d", "ece"] == pytest.approx(1.7 / 3)
    assert table.loc["0-7d", "win_rate"] == pytest.approx(2 / 3)
    assert table.loc["60d+", "ece"] == pytest.approx(0.5)
    assert np.isnan(table.loc["7-14d", "roc_auc"])  # one class only
    metrics = age_band_metrics(table.reset_index())
    assert metrics["ece_age_0_7d"] == pytest.approx(1.7 / 3)
    assert metrics["mean_probability_minus_win_rate_age_0_7d"] == pytest.approx(0.1 - 2 / 3)
    assert metrics["ece_age_60d_plus"] == pytest.approx(0.5)
    assert metrics["ece_age_worst"] == pytest.approx(1.7 / 3)
    assert "ece_age_14_30d" not in metrics


def test_gains_by_decile():
    p = np.linspace(0.99, 0.0, 100)
    y = np.zeros(100)
    y[:10] = 1  # every win in the top decile
    y[50] = 1
    gains = gains_table(y, p)
    assert gains.loc[0, "wins"] == 10
    assert gains.loc[0, "lift"] == pytest.approx(1.0 / (11 / 100))
    assert gains.loc[0, "cumulative_gain"] == pytest.approx(10 / 11)
    assert gains.loc[9, "cumulative_gain"] == pytest.approx(1.0)


def test_metrics_at_the_sales_threshold():
    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.9, 0.6, 0.55, 0.2, 0.3, 0.1])
    m = classification_metrics(y, p, Policy(sales_threshold=50, nurture_threshold=20))
    assert m["share_to_sales"] == pytest.approx(3 / 6)
    assert m["precision_at_threshold"] == pytest.approx(2 / 3)
    assert m["recall_at_threshold"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(8 / 9)


def test_win_rate_per_grade():
    by_score = Policy(grades={"A": 60, "B": 35, "C": 15})  # bands set by hand: kept
    table = grade_table([1, 0, 1, 0], [0.7, 0.65, 0.4, 0.05], by_score)
    a = table.set_index("grade").loc["A"]
    assert (a["leads"], a["wins"]) == (2, 1)
    assert table.set_index("grade").loc["D", "leads"] == 1


def test_the_model_policy_grades_by_share_unless_the_config_set_score_bands():
    from training.evaluate import grade_bases_table, model_policy

    rng = np.random.default_rng(0)
    p = rng.beta(1.5, 9, 2000)  # a demo-like spread: few leads above 35%
    y = (rng.random(2000) < p).astype(float)
    shipped = model_policy(Policy(), p).grades
    assert shipped.by == "share" and shipped.basis == "2,000 held-out leads at training"
    quarters = grade_table(y, p, Policy())["leads"].to_numpy() / 2000
    assert np.all(np.abs(quarters - 0.25) < 0.05), quarters
    by_score = Policy(grades={"A": 60, "B": 35, "C": 15})  # set in the config: kept
    assert model_policy(by_score, p).grades == by_score.grades
    fifths = Policy(grades={"by": "share", "shares": {"A": 0.2, "B": 0.2, "C": 0.2}})
    assert grade_table(y, p, fifths).set_index("grade").loc["D", "leads"] / 2000 == (
        pytest.approx(0.4, abs=0.05)
    )
    bases = grade_bases_table(y, p, by_score).set_index(["basis", "grade"])
    assert bases.loc[("score", "D"), "share_of_leads"] > 0.5  # probability bands: mostly D
    assert bases.loc[("share", "A"), "grade_roc_auc"] > bases.loc[("score", "A"), "grade_roc_auc"]
