"""Deal value, time to close and thin data: the estimators on small data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.feature import FactColumns
from features.model.timing import LOST, OPEN, WON, CloseTimingModel, lead_ages, period_edges
from features.model.value import DealValueModel
from training.data import Examples, TrainingDataError
from training.thin_data import check_enough_outcomes
from training.timing import DAY_NS, fit_timing_model, open_snapshots, period_targets
from training.value import fit_value_model

NOW_NS = 1000 * DAY_NS


# ---- time to close ----------------------------------------------------------------------------


def test_a_censored_snapshot_counts_for_the_periods_it_was_watched_through():
    edges = [0.0, 15.0, 30.0, 45.0]
    as_of = np.array([100, 100, 100, 980]) * DAY_NS  # the last: open at the end, watched 20 days
    closed = np.array([as_of[0] + 20 * DAY_NS, as_of[1] + 5 * DAY_NS, -1, -1])
    won = np.array([True, False, False, False])
    snapshot, period, target = period_targets(as_of, closed, won, NOW_NS, edges)
    rows = sorted(zip(snapshot.tolist(), period.tolist(), target.tolist()))
    assert rows == [
        (0, 0, OPEN), (0, 1, WON),  # won on day 20: open through the first period
        (1, 0, LOST),  # lost on day 5: nothing after
        (2, 0, OPEN), (2, 1, OPEN), (2, 2, OPEN),  # open long after the horizon
        (3, 0, OPEN),  # censored: the first period watched, the cut one (15-30 d) left out
    ]  # fmt: skip


def _timing_data(n: int, censored: int, seed: int = 0):
    """Leads won at day 10 or 40 (half each, by a feature), lost at day 20 (a third), and
    `censored` leads still open at the data's end after 35 days."""
    rng = np.random.default_rng(seed)
    fast = rng.random(n) < 0.5
    kind = rng.random(n)
    won = kind < 0.4
    lost = (kind >= 0.4) & (kind < 0.7)
    as_of = np.full(n, 100 * DAY_NS)
    closed = np.where(won, as_of + np.where(fast, 10, 40) * DAY_NS, -1)
    closed = np.where(lost, as_of + 20 * DAY_NS, closed)
    X = np.column_stack([fast.astype(float), rng.normal(size=n)])
    X_c = np.column_stack([(rng.random(censored) < 0.5).astype(float), rng.normal(size=censored)])
    as_of_c = np.full(censored, NOW_NS - 35 * DAY_NS)
    return (
        np.vstack([X, X_c]),
        np.concatenate([as_of, as_of_c]),
        np.concatenate([closed, np.full(censored, -1)]),
        np.concatenate([won, np.zeros(censored, dtype=bool)]),
    )


def _fit(X, as_of, closed, won):
    age = np.full(len(X), 7.0)
    return fit_timing_model(X, age, as_of, closed, won, NOW_NS, np.array([False, False]), 90.0, 0)


def test_censored_leads_are_used_and_change_the_estimate():
    X, as_of, closed, won = _timing_data(3000, censored=1500)
    with_censored = _fit(X, as_of, closed, won)
    kept = (closed >= 0) | (as_of + 90 * DAY_NS <= NOW_NS)  # dropping the censored
    without = _fit(X[kept], as_of[kept], closed[kept], won[kept])
    fast = X[:, 0] == 1
    age = np.full(fast.sum(), 7.0)
    by_30 = period_edges(90.0).index(30.0)
    # the truth without the open leads: 40% of leads win, the fast ones all on day 10
    assert without.won_by(X[fast], age)[:, by_30].mean() == pytest.approx(0.4, abs=0.03)
    # with them: 1,500 more leads said "not won in the first 30 days", a third of all leads
    censored_too = with_censored.won_by(X[fast], age)[:, by_30].mean()
    assert censored_too == pytest.approx(0.4 * 2 / 3, abs=0.03)


def test_chances_grow_with_the_horizon_for_every_lead_and_end_at_the_probability():
    X, as_of, closed, won = _timing_data(2000, censored=500, seed=1)
    model = _fit(X, as_of, closed, won)
    rng = np.random.default_rng(2)
    rows = np.column_stack([rng.integers(0, 2, 500).astype(float), rng.normal(scale=5, size=500)])
    probability = rng.random(500)
    chances, median = model.predict(rows, rng.uniform(0, 400, 500), probability)
    assert list(chances) == [30, 60, 90]
    assert (chances[30] <= chances[60]).all() and (chances[60] <= chances[90]).all()
    np.testing.assert_allclose(chances[90], probability)  # the horizon's chance is the headline
    assert ((median > 0) & (median <= 90)).all()
    # fast leads (wins on day 10) close sooner than slow ones (day 40)
    fast = rows[:, 0] == 1
    assert np.median(median[fast]) < 20 < 30 < np.median(median[~fast])


def test_the_compiled_timing_model_gives_the_classifiers_chances():
    X, as_of, closed, won = _timing_data(2000, censored=500, seed=1)
    model = _fit(X, as_of, closed, won)
    rng = np.random.default_rng(3)
    rows = np.column_stack([rng.integers(0, 2, 300).astype(float), rng.normal(scale=5, size=300)])
    ages, probability = rng.uniform(0, 400, 300), rng.random(300)
    assert model.compiled is None
    expected, expected_median = model.predict(rows, ages, probability)
    assert model.compile().compiled is not None
    chances, median = model.predict(rows, ages, probability)
    for h in (30, 60, 90):
        np.testing.assert_allclose(chances[h], expected[h], rtol=0, atol=1e-12)
    np.testing.assert_allclose(median, expected_median, rtol=0, atol=1e-9)


@pytest.mark.parametrize("compiled", [False, True])
def test_many_leads_are_scored_in_parts_with_the_same_chances(monkeypatch, compiled):
    import features.model.timing as timing

    X, as_of, closed, won = _timing_data(2000, censored=500, seed=1)
    model = _fit(X, as_of, closed, won)
    if compiled:
        model.compile()
    rng = np.random.default_rng(4)
    rows = np.column_stack([rng.integers(0, 2, 1000).astype(float), rng.normal(scale=5, size=1000)])
    ages = rng.uniform(0, 400, 1000)
    whole = model.won_by(rows, ages)
    monkeypatch.setattr(timing, "CHUNK_ROWS", 97)  # parts of 97 leads, the last one shorter
    np.testing.assert_array_equal(model.won_by(rows, list(ages)), whole)


def test_lead_ages_of_datetimes_are_pandas_ages_bit_for_bit():
    from datetime import UTC, datetime, timedelta, timezone

    rng = np.random.default_rng(4)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    created = [start + timedelta(microseconds=int(u)) for u in rng.integers(0, 10**15, 500)]
    as_of = [
        (c + timedelta(microseconds=int(u))).astimezone(timezone(timedelta(hours=i % 3)))
        for i, (c, u) in enumerate(zip(created, rng.integers(0, 10**14, 500), strict=True))
    ]
    created[7] = None
    c = pd.to_datetime(pd.Series(created, dtype=object), utc=True)
    m = pd.to_datetime(pd.Series(as_of, dtype=object), utc=True)
    expected = ((m - c).dt.total_seconds() / 86_400).to_numpy(dtype=float, na_value=np.nan)
    ages = lead_ages(created, as_of)  # the datetimes' own path, without pandas
    assert np.isnan(ages[7]) and np.array_equal(ages, expected, equal_nan=True)
    text = lead_ages([c.isoformat() if c else None for c in created], as_of)  # pandas' path
    assert np.array_equal(text, expected, equal_nan=True)


def test_open_snapshots_keep_the_censored_and_leave_out_the_closed():
    leads = pd.DataFrame({
        "lead_id": ["won", "open", "lost-early"],
        "created_at": pd.to_datetime(["2024-01-01", "2024-11-01", "2024-01-01"], utc=True),
    })  # fmt: skip
    outcomes = pd.DataFrame({
        "lead_id": ["won", "lost-early"],
        "closed_at": pd.to_datetime(["2024-03-01", "2024-01-05"], utc=True),
        "won": [True, False],
    })  # fmt: skip
    now = pd.Timestamp("2024-12-31", tz="UTC")
    snaps = open_snapshots(leads, outcomes, (1, 7, 30), now)
    assert sorted(zip(snaps["lead_id"], snaps["snapshot_age_days"])) == [
        ("lost-early", 1.0),  # lost on day 4: open only at the first snapshot
        ("open", 1.0), ("open", 7.0), ("open", 30.0),  # no outcome: censored, kept
        ("won", 1.0), ("won", 7.0), ("won", 30.0),
    ]  # fmt: skip
    assert (snaps.loc[snaps["lead_id"] == "open", "closed_ns"] == -1).all()


def test_the_timing_model_refuses_periods_that_miss_a_horizon():
    with pytest.raises(ValueError, match=r"do not end at the horizons \[45.0\]"):
        CloseTimingModel(None, [0.0, 30.0, 60.0, 90.0], 90.0, horizons=(30, 45, 90))


# ---- deal value -------------------------------------------------------------------------------


def _value_data(n: int, seed: int = 0):
    """Size band (categorical 0/1/2: typical deals 10k, 30k, 90k) and pricing visits (+15% per
    log1p), log-normal noise 0.4."""
    rng = np.random.default_rng(seed)
    size = rng.integers(0, 3, n).astype(float)
    visits = rng.poisson(2, n).astype(float)
    log_amount = np.log(10_000) + np.log(3) * size + 0.15 * np.log1p(visits)
    amount = np.exp(log_amount + rng.normal(0, 0.4, n))
    return np.column_stack([size, visits]), amount, np.exp(log_amount + 0.4**2 / 2)


FACTS = (
    FactColumns("company_size", (0,), lambda v: f"Company size: {['1-10', '11-50', '51-200'][int(v[0])]}", False),
    FactColumns("pricing_page_view_count", (1,), lambda v: f"{v[0]:g} pricing-page visits", False),
)  # fmt: skip


def test_the_value_model_recovers_expected_amounts_interval_and_reasons():
    X, amount, truth = _value_data(4000)
    model = fit_value_model(X, np.array([True, False]), amount, np.arange(len(X)).astype(str))
    X_new, amount_new, truth_new = _value_data(2000, seed=1)
    expected, low, high = model.predict(X_new)
    assert np.abs(expected / truth_new - 1).max() < 0.1  # the mean, not the median
    coverage = ((amount_new >= low) & (amount_new <= high)).mean()
    assert abs(coverage - model.level) < 0.03
    # reasons against the typical lead (size 0, 2 visits): size 2 deals are about 9x
    reasons = model.reasons(np.array([[2.0, 2.0], [0.0, 2.0]]), np.array([0.0, 2.0]), FACTS)
    [size_reason] = reasons[0]
    assert size_reason["feature"] == "company_size"
    assert size_reason["text"].startswith("Company size: 51-200: typical deals about ")
    assert size_reason["effect"] == pytest.approx(9.0, rel=0.1)
    assert reasons[1] == []  # the typical lead has no reason
    # an absurd number (1e400 reads as infinity) still gives a finite amount
    assert np.isfinite(model.predict(np.array([[2.0, np.inf], [np.nan, np.nan]]))).all()
    # state is plain JSON and predicts the same
    import json

    again = DealValueModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict(X_new)[0], expected)


# ---- thin data ----------------------------------------------------------------------------------


def _reference_reasons(model, X, baseline, facts, n=3):
    """The amount reasons lead by lead, as written before they were cached per fact and values."""
    import math

    from features.model.value import MIN_REASON_FACTOR, factor_words

    effect = model.contributions(X) - model.contributions(baseline.reshape(1, -1))[0]
    used = set(model._used)
    groups = [f for f in facts if any(c in used for c in f.columns)]
    out = []
    for i in range(X.shape[0]):
        sizes = [effect[i, list(f.columns)].sum() for f in groups]
        reasons = []
        for g in np.argsort(-np.abs(sizes), kind="stable")[:n].tolist():
            if abs(sizes[g]) < math.log(MIN_REASON_FACTOR):
                break
            factor = math.exp(sizes[g])
            words = groups[g].describe([float(X[i, c]) for c in groups[g].columns])
            reasons.append({"feature": groups[g].name, "effect": round(factor, 2),
                            "text": f"{words}: {factor_words(factor)}"})  # fmt: skip
        out.append(reasons)
    return out


def test_amount_reasons_cached_per_fact_and_values_are_the_lead_by_lead_reasons():
    X, amount, _ = _value_data(3000)
    model = fit_value_model(X, np.array([True, False]), amount, np.arange(len(X)).astype(str))
    X_new, _, _ = _value_data(500, seed=2)
    X_new[::17, 1] = np.nan
    X_new[::23, 1] = np.inf
    baseline = np.array([0.0, 2.0])
    expected = _reference_reasons(model, X_new, baseline, FACTS)
    assert model.reasons(X_new, baseline, FACTS) == expected
    assert model.reasons(X_new, baseline, FACTS) == expected  # from the cache
    # another typical lead: other factors, not the cached ones
    other = np.array([1.0, 0.0])
    assert model.reasons(X_new, other, FACTS) == _reference_reasons(model, X_new, other, FACTS)


def _examples(wins: int, losses: int) -> Examples:
    ids = [f"W{i}" for i in range(wins) for _ in range(3)] + [f"L{i}" for i in range(losses)]
    labels = np.array([1] * (3 * wins) + [0] * losses)
    frame = pd.DataFrame({"lead_id": ids})
    return Examples(frame, labels, True, pd.Timestamp("2024-12-31", tz="UTC"), None)


def test_too_few_wins_are_refused_with_the_numbers_the_minimum_and_what_would_help():
    with pytest.raises(TrainingDataError) as refused:
        check_enough_outcomes(_examples(wins=12, losses=400))  # 36 snapshots, but 12 leads
    assert str(refused.value) == (
        "too few outcomes to train a trustworthy model: 12 won leads (at least 30 needed), from "
        "12 won and 400 lost leads in all. What would help: outcomes of more leads: a longer "
        "history in the outcomes file, closed deals from more months or teams, or leads whose "
        "outcome is recorded (closed_at, won). A model fitted on fewer would give "
        "confident-looking numbers that mean little; the minimums are training.min_wins and "
        "training.min_losses in the config file"
    )
    with pytest.raises(
        TrainingDataError, match=r"^too few .*: 20 lost leads \(at least 25 needed\)"
    ):
        check_enough_outcomes(_examples(wins=100, losses=20), min_wins=30, min_losses=25)
    check_enough_outcomes(_examples(wins=30, losses=30))  # enough: no refusal


def test_early_stopping_watches_leads_the_trees_never_saw():
    from training.timing import held_out_leads

    rng = np.random.default_rng(0)
    leads = np.repeat(np.arange(500), 6)
    target = rng.integers(0, 3, leads.size)
    held = held_out_leads(leads, target, rng)
    assert held is not None
    assert not set(leads[held]) & set(leads[~held])  # a lead's rows all on one side
    assert np.unique(leads[held]).size == 50
    # text ids: the leads `rng.choice` draws from the sorted distinct ids (the same seed, the
    # same split as before the ids were factorised)
    text = np.array([f"L-{i % 37:03d}-{i}" for i in leads], dtype=object)
    drawn = np.random.default_rng(5).choice(np.unique(text), 50, replace=False)
    expected = np.isin(text, drawn)
    assert np.array_equal(held_out_leads(text, target, np.random.default_rng(5)), expected)
    # a class only one lead has cannot be on both sides: no split (rows, as scikit-learn does)
    rare = np.where(leads == 7, 2, leads % 2)
    assert held_out_leads(leads, rare, np.random.default_rng(1)) is None

    # Each lead's outcome is its own coin, the same in every snapshot, and a column names the
    # lead: split row by row, the trees learn the leads and validation agrees for all rounds.
    n, snapshots = 1500, 3
    lead = np.repeat(np.arange(n), snapshots)
    coin = rng.random(n)
    won = np.repeat(coin < 0.3, snapshots)
    lost = np.repeat((coin >= 0.3) & (coin < 0.6), snapshots)
    as_of = np.tile(np.array([100, 101, 102]) * DAY_NS, n)
    closed = np.where(won | lost, as_of + 10 * DAY_NS, as_of + 400 * DAY_NS)
    X = np.column_stack([lead.astype(float), rng.normal(size=lead.size)])
    args = (X, np.full(len(X), 7.0), as_of, closed, won, NOW_NS, np.array([False, False]), 90.0)
    by_rows = fit_timing_model(*args, seed=0).classifier.n_iter_
    by_leads = fit_timing_model(*args, seed=0, groups=lead).classifier.n_iter_
    assert by_leads < by_rows, (by_leads, by_rows)
