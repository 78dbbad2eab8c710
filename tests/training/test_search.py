"""The model search: rounds by CV with early stopping, the time budget (what is skipped, and that
the run records it), the cores used, and the same results for the same seed."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadscore.cli import app
from tests.training.conftest import demo_config
from training.models import Candidate, candidates
from training.search import MAX_BOOSTING_ROUNDS, boosting_rounds_by_cv, make_folds, search_models
from training.train import train, training_threads

runner = CliRunner()


def _data(n: int = 1200, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[:, 5] = rng.integers(0, 4, n)  # a category code
    X[rng.random(n) < 0.1, 1] = np.nan
    logit = 1.2 * X[:, 0] - 0.8 * np.nan_to_num(X[:, 1]) + 0.5 * (X[:, 5] == 2)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    mask = np.array([False] * 5 + [True])
    return X, y, mask


def _fake_clock(step: float):
    """A clock that moves `step` seconds at every look: the budget runs out deterministically."""
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_growing_folds_in_step_stops_early_yet_picks_the_rounds_of_full_growth():
    X, y, mask = _data()
    folds = make_folds(y, np.arange(len(y)), 3, seed=1)
    candidate = Candidate("gradient_boosting", {"learning_rate": 0.3, "max_leaf_nodes": 8})
    stopped, oof = boosting_rounds_by_cv(X, y, folds, candidate, mask, seed=1)
    full, oof_full = boosting_rounds_by_cv(
        X, y, folds, candidate, mask, seed=1, patience=MAX_BOOSTING_ROUNDS
    )
    assert stopped.params["max_iter"] == full.params["max_iter"] < 200
    np.testing.assert_allclose(oof, oof_full, rtol=0, atol=1e-12)
    assert not np.isnan(oof).any()


@pytest.mark.parametrize(
    "params",
    [
        {"learning_rate": 0.3, "max_leaf_nodes": 8},
        {"learning_rate": 0.3, "max_leaf_nodes": 8, "categories": "ordinal", "max_features": 0.5},
        {"learning_rate": 0.3, "max_leaf_nodes": 8, "class_weight": "balanced"},
    ],
)
def test_the_training_rows_are_binned_once_per_fold_with_the_same_trees(monkeypatch, params):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper

    import training.search as search

    X, y, mask = _data()
    folds = make_folds(y, np.arange(len(y)), 3, seed=1)
    candidate = Candidate("gradient_boosting", params)
    binned = []
    fit_transform = _BinMapper.fit_transform

    def counted(self, *args, **kwargs):
        binned.append(1)
        return fit_transform(self, *args, **kwargs)

    monkeypatch.setattr(_BinMapper, "fit_transform", counted)
    predicted = []  # the training rows' raw predictions recomputed at a warm start
    raw_predict = HistGradientBoostingClassifier._raw_predict

    def counted_raw(self, *args, **kwargs):
        predicted.append(getattr(self, "_in_fit", False))
        return raw_predict(self, *args, **kwargs)

    monkeypatch.setattr(HistGradientBoostingClassifier, "_raw_predict", counted_raw)
    kept, oof_kept = boosting_rounds_by_cv(X, y, folds, candidate, mask, seed=1)
    times_kept, predicted_kept = len(binned), sum(predicted)
    monkeypatch.setattr(search, "_KeptBins", HistGradientBoostingClassifier)  # scikit-learn's own
    binned.clear()
    predicted.clear()
    plain, oof_plain = boosting_rounds_by_cv(X, y, folds, candidate, mask, seed=1)
    assert times_kept == len(folds) < len(binned)  # once per fold, not at every step
    # recomputed once per fold (the second fit), then kept: scikit-learn at every warm start
    assert predicted_kept == len(folds) < sum(predicted)
    assert kept == plain
    np.testing.assert_array_equal(oof_kept, oof_plain)


def test_the_same_seed_gives_the_same_search_with_one_core_or_two():
    X, y, mask = _data()
    boosters = [c for c in candidates("small", 0.4, True, rows=len(y), categorical=True)
                if c.kind == "gradient_boosting"]  # fmt: skip
    cands = boosters[:2]
    one = search_models(X, y, np.arange(len(y)), mask, cands, 2, seed=3, workers=1)
    again = search_models(X, y, np.arange(len(y)), mask, cands, 2, seed=3, workers=1)
    two = search_models(X, y, np.arange(len(y)), mask, cands, 2, seed=3, workers=2)
    for other in (again, two):
        assert other.candidate == one.candidate
        np.testing.assert_array_equal(other.oof_raw, one.oof_raw)
        cols = ["candidate", "raw_log_loss", "calibrated_log_loss", "roc_auc"]
        assert other.table[cols].equals(one.table[cols])


def test_a_spent_budget_keeps_the_first_candidate_and_names_the_skipped_ones():
    X, y, mask = _data(600)
    cands = [
        Candidate("logistic", {"C": 0.1, "splines": False}),
        Candidate("logistic", {"C": 1.0, "splines": False}),
        Candidate("gradient_boosting", {"max_iter": 20}),
    ]
    done = []
    selection = search_models(
        X, y, np.arange(len(y)), mask, cands, 2, seed=0, time_budget=5.0,
        clock=_fake_clock(10.0), done=lambda c, row: done.append(c.name),
    )  # fmt: skip
    assert done == [cands[0].name] and selection.candidate == cands[0]
    assert selection.skipped == [cands[1].name, cands[2].name]
    assert list(selection.table["candidate"]) == [cands[0].name]
    # no budget: every candidate is cross-validated and nothing is skipped
    everything = search_models(X, y, np.arange(len(y)), mask, cands, 2, seed=0)
    assert len(everything.table) == 3 and everything.skipped == []


def test_a_budget_spent_between_two_folds_stops_that_candidate_too():
    X, y, mask = _data(600)
    cands = [
        Candidate("logistic", {"C": 0.1, "splines": False}),
        Candidate("logistic", {"C": 1.0, "splines": False}),
        Candidate("gradient_boosting", {"max_iter": 20}),
    ]
    # the clock moves 10 s a look: 10 s before the second candidate, 20 s at its first fold,
    # 30 s at its second: over the 25 s budget, so it is dropped between its folds
    selection = search_models(
        X, y, np.arange(len(y)), mask, cands, 2, seed=0, time_budget=25.0, clock=_fake_clock(10.0)
    )
    assert list(selection.table["candidate"]) == [cands[0].name]
    assert selection.skipped == [cands[1].name, cands[2].name]


def test_the_budget_counts_the_searchs_cpu_time_over_its_cores(monkeypatch):
    """The budget's clock is this process's CPU time over the cores the search runs on: other
    processes' work does not spend it, and on cores of its own it keeps the wall's pace."""
    from training import search

    seen: list[float] = []
    monkeypatch.setattr(search.time, "process_time", lambda: 12.0)
    assert search.cpu_clock(2)() == 6.0 and search.cpu_clock(1)() == 12.0
    assert search.cpu_clock(0)() == 12.0
    real = search._Budget

    def budget(seconds, clock):
        seen.append(clock())
        return real(seconds, clock)

    monkeypatch.setattr(search, "_Budget", budget)
    X, y = np.arange(40.0).reshape(-1, 1) % 7, np.tile([0, 1], 20)
    cands = [Candidate("logistic", {"C": 0.1, "splines": False})]
    search_models(X, y, np.arange(40), np.zeros(1, bool), cands, 2, seed=0, workers=2)
    assert seen == [6.0]  # the default clock: CPU seconds over the two workers


def test_folds_side_by_side_fit_on_one_blas_thread_each_and_the_count_comes_back(monkeypatch):
    """Two folds' regressions at 2 BLAS threads each on 2 cores spun 2.5x the CPU seconds the
    budget counts; one fold at a time keeps every BLAS thread it was given."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from training import search

    def blas_threads() -> list[int]:
        return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

    seen: list[list[int]] = []
    real = search.fit_estimator

    def fit(*args, **kwargs):
        seen.append(blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "fit_estimator", fit)
    X, y, mask = _data(600)
    cands = [Candidate("logistic", {"C": 0.1, "splines": False})]
    with threadpool_limits(2, user_api="blas"):
        search_models(X, y, np.arange(len(y)), mask, cands, 2, seed=0, workers=2)
        assert seen == [[1], [1]]
        assert blas_threads() == [2]  # given back when the search ends
        seen.clear()
        search_models(X, y, np.arange(len(y)), mask, cands, 2, seed=0, workers=1)
        assert seen == [[2], [2]]


def test_progress_names_the_candidate_the_fold_and_the_time_left():
    X, y, mask = _data(600)
    said: list[str] = []
    search_models(
        X, y, np.arange(len(y)), mask, [Candidate("logistic", {"C": 1.0, "splines": False})], 2,
        seed=0, progress=said.append, time_budget=30.0, clock=_fake_clock(1.0),
    )  # fmt: skip
    assert said[0].startswith("candidate 1/1 logistic(C=1.0,splines=False): fold 1/2")
    assert "s left of 30" in said[0] and said[1].split(": ")[1].startswith("fold 2/2")


def test_one_validation_split_keeps_each_lead_on_one_side_and_the_win_rate():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 20_000, 60_000).astype(str)
    lead_wins = rng.random(20_000) < 0.1
    y = lead_wins[groups.astype(int)] & (rng.random(60_000) < 0.7)
    ((train, test),) = make_folds(y, groups, 1, seed=4)
    assert len(train) + len(test) == len(y) and not set(groups[train]) & set(groups[test])
    assert 0.18 < len(set(groups[test])) / len(set(groups)) < 0.22
    assert abs(y[test].mean() - y[train].mean()) < 0.01
    ((again, _),) = make_folds(y, groups, 1, seed=4)
    np.testing.assert_array_equal(train, again)


def test_few_rows_search_few_candidates():
    few = candidates("small", 0.4, True, rows=320, categorical=True)
    assert [c.kind for c in few] == ["logistic", "logistic", "gradient_boosting"]
    assert few[-1].params["learning_rate"] == 0.03  # the most regularised setting
    assert len(candidates("small", 0.4, True, rows=8_000, categorical=True)) == 5


def test_threads_are_the_option_given_or_the_free_cores():
    assert training_threads(1, cores=8, load=0.0) == 1
    assert training_threads(3, cores=2, load=9.0) == 3
    assert training_threads(None, cores=2, load=0.1) == 2
    assert training_threads(None, cores=2, load=1.2) == 1
    assert training_threads(None, cores=2, load=7.5) == 1


@pytest.mark.slow
def test_a_tiny_budget_trains_fewer_candidates_and_the_run_records_it(demo_dir, tracking):
    config = demo_config(demo_dir, search="small")
    config.training.time_budget = 1e-6
    config.training.threads = 1
    result = train(config, seed=1)
    run = MlflowClient().get_run(result.run_id)
    path = MlflowClient().download_artifacts(result.run_id, "evaluation/search_skipped.json")
    with open(path) as file:
        skipped = json.load(file)["skipped_for_time"]
    assert len(skipped) >= 4 and run.data.params["candidates_searched"] == "1"
    assert run.data.params["search_skipped_for_time"].startswith(f"{skipped[0]}; {skipped[1]}")
    assert run.data.metrics["candidates_skipped_for_time"] == len(skipped)
    assert run.data.params["time_budget"] == "1e-06" and run.data.params["threads"] == "1"
    assert result.selected.startswith("logistic")  # the cheapest candidate goes first
    (note,) = [w for w in result.warnings if "time budget" in w]
    assert "--time-budget" in note and "skipped" in note


def test_boosting_rounds_fix_the_tree_count_of_the_boosted_candidates(demo_dir, tracking):
    config = demo_config(demo_dir, search="none")
    config.training.boosting_rounds = 45
    config.training.threads = 1
    result = train(config, seed=1)
    assert result.selected.startswith("gradient_boosting") and "max_iter=45" in result.selected
    assert "early_stopping=False" in result.selected


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--time-budget", "0", "--time-budget must be a positive number of seconds, got 0"),
        ("--threads", "0", "--threads must be 1 or more, got 0"),
    ],
)
def test_a_wrong_training_option_names_the_option_and_the_fix(
    tracking, tmp_path, option, value, says
):
    leads = tmp_path / "leads.csv"
    leads.write_text("id,won\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    result = runner.invoke(app, ["train", "--leads", str(leads), "--label", "won", option, value])
    assert result.exit_code == 2
    assert says in result.output
    assert ("leave it out" in result.output) and ("error:" in result.output)


def test_boosting_rounds_grow_on_every_column_but_the_wide_codes():
    from features.feature import CATEGORY, NUMBER, WIDE

    X, y, _ = _data()
    # column 4 as a wide code of many values that decides the label: the trees must not see it
    wide = np.where(y == 1, np.arange(len(y)) % 50, 50 + np.arange(len(y)) % 50).astype(float)
    X_wide = np.column_stack([X, wide])
    kinds = np.array([NUMBER] * 5 + [CATEGORY, WIDE], dtype=np.int8)
    folds = make_folds(y, np.arange(len(y)), 3, seed=1)
    candidate = Candidate("gradient_boosting", {"learning_rate": 0.3, "max_leaf_nodes": 8})
    with_wide, oof = boosting_rounds_by_cv(X_wide, y, folds, candidate, kinds, seed=1)
    without, oof_without = boosting_rounds_by_cv(X, y, folds, candidate, kinds[:6], seed=1)
    assert with_wide == without
    np.testing.assert_allclose(oof, oof_without, rtol=0, atol=1e-12)
