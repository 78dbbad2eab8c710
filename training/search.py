"""The model search: which candidate, and how many boosting rounds, within a time budget.

Every candidate is scored by cross-validation inside the training part (folds grouped by lead,
made once and shared by every candidate); the winner has the lowest out-of-fold log loss after
calibration. The work is spent where it pays:

- boosting rounds are chosen on the folds themselves, the folds growing in step, 50 rounds at a
  time at first, a third more later (warm start: the trees are those of one long fit); growth
  stops once the summed held-out loss has not improved for `PATIENCE` rounds, and the held-out
  loss of every round is computed once, incrementally, in numpy;
- a time budget (`training.time_budget`, `--time-budget`), looked at before every fold and every
  step of boosting rounds: the first candidate always finishes (a search always ends with a
  model); when the budget runs out any other candidate stops where it is and it and the ones not
  yet started are skipped; `Selection.skipped` names them and the training run logs them. The
  budget runs on `cpu_clock`: the search's CPU seconds over the cores it runs on, so other work
  on the machine does not spend it, where a wall clock made the model depend on the load;
- fold models are fitted in parallel (threads, each single-threaded OpenMP) when `workers` > 1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from training.models import (
    CV_ROUNDS_MAX_ROWS,
    Candidate,
    build_estimator,
    choose_calibration,
    fill_empty_columns,
    fit_estimator,
    without_wide_codes,
)

_EPS = 1e-6
MAX_BOOSTING_ROUNDS = 800  # most rounds grown per fold when the count is chosen by CV
ROUNDS_CHUNK = 50  # rounds grown between two looks at the held-out loss
PATIENCE = 100  # rounds without a better summed held-out loss before growth stops

Progress = Callable[[str], None]
CandidateDone = Callable[[Candidate, dict[str, Any]], None]


@dataclass
class Selection:
    """What the search found: the winner, its out-of-fold scores and the search table."""

    candidate: Candidate
    oof_raw: np.ndarray
    table: pd.DataFrame
    empty_columns: set[int] = field(default_factory=set)  # all missing in some fit's rows
    skipped: list[str] = field(default_factory=list)  # candidates not tried for lack of time
    seconds: float = 0.0
    # large data, one validation split: the winner fitted on its training side (the final model:
    # a refit on every row could not change the choice, and the calibrator is fitted on its scores)
    model: Any = None


def make_folds(
    labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds grouped by lead. `n_folds` 1 means one 80/20 validation split."""
    y = np.asarray(labels).astype(int)
    k = max(2, n_folds) if n_folds != 1 else 5
    if len(np.unique(groups)) == len(groups):
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
        folds = list(splitter.split(np.zeros(len(y)), y))
    elif n_folds == 1:
        return [_grouped_validation_split(y, groups, seed)]
    else:
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
        folds = list(splitter.split(np.zeros(len(y)), y, groups))
    return folds[:1] if n_folds == 1 else folds


def _grouped_validation_split(
    y: np.ndarray, groups: np.ndarray, seed: int, share: float = 0.2
) -> tuple[np.ndarray, np.ndarray]:
    """One validation split grouped by lead, stratified by whether the lead has a win: every
    `1/share`-th lead of each stratum in a random order. StratifiedGroupKFold balances the folds
    group by group in Python: 37 s for 140,000 snapshots, where this takes a fraction of one."""
    codes, inverse = np.unique(groups, return_inverse=True)
    won = np.zeros(len(codes), dtype=bool)
    np.logical_or.at(won, inverse, y == 1)
    order = np.random.default_rng(seed).permutation(len(codes))
    held = np.zeros(len(codes), dtype=bool)
    every = int(round(1 / share))
    for stratum in (False, True):
        members = order[won[order] == stratum]
        held[members[::every]] = True
    test = held[inverse]
    return np.flatnonzero(~test), np.flatnonzero(test)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary log loss, probabilities clipped to [1e-6, 1 - 1e-6] (as the search always did):
    scikit-learn's `log_loss` validates its input at every call, which cost most of the search's
    time when it was called once per boosting round."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def _sum_log_loss_by_round(y: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Summed log loss of each column of `raw` (rounds x rows of logits) against `y`."""
    p = np.clip(1.0 / (1.0 + np.exp(-raw)), _EPS, 1 - _EPS)
    return -np.where(y[None, :] == 1, np.log(p), np.log1p(-p)).sum(axis=1)


class _KeptBins(HistGradientBoostingClassifier):
    """HistGradientBoosting that bins its training rows once across warm-started fits, and
    keeps their raw predictions from one warm start to the next.

    scikit-learn fits a new bin mapper and bins the training rows again at every `fit`, warm
    start or not; growing a fold's trees 50 rounds at a time did that up to 20 times (on 20,000
    demo leads, 9.4 s of the search's 53 s of boosting). The same rows, weights and random seed
    give the same bins, so the first fit's mapper and binned rows are kept and given back: the
    trees are the same (tested). A warm start also predicts every earlier tree on the training
    rows again (about 7% of an X Education `train`); the fit adds each new tree to the array
    it gets, in place, so the array handed to one warm start is, when that fit ends, the one the
    next needs: it is kept and given back (the same sums, so the same trees: tested). Used only
    inside the search; the models it keeps and ships are plain scikit-learn estimators."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        self._handed_raw: tuple[Any, np.ndarray] | None = None
        super().fit(X, y, sample_weight)
        handed = self._handed_raw
        # the array the fit added its trees to: the raw predictions of every tree grown so far
        self._kept_raw = None if handed is None else (*handed, len(self._predictors))
        return self

    def _raw_predict(self, X: Any, n_threads: Any = None) -> np.ndarray:
        if not getattr(self, "_in_fit", False):
            return super()._raw_predict(X, n_threads)
        kept = getattr(self, "_kept_raw", None)
        if kept is not None and kept[0] is X and kept[2] == len(self._predictors):
            raw = kept[1]
        else:
            raw = super()._raw_predict(X, n_threads)
        self._kept_raw, self._handed_raw = None, (X, raw)
        return raw

    def _bin_data(self, X: Any, sample_weight: Any, is_training_data: bool) -> Any:
        if not is_training_data:
            return super()._bin_data(X, sample_weight, is_training_data)
        kept = getattr(self, "_kept_bins", None)
        if (
            kept is not None
            and (kept[0] is X or _same_rows(kept[0], X))  # native categories: a copy each fit
            and (
                kept[1] is None if sample_weight is None else np.array_equal(kept[1], sample_weight)
            )
        ):
            self._bin_mapper = kept[2]
            return kept[3]
        binned = super()._bin_data(X, sample_weight, is_training_data)
        weights = None if sample_weight is None else np.array(sample_weight)
        self._kept_bins = (X, weights, self._bin_mapper, binned)
        return binned


def _same_rows(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


class _OutOfTime(Exception):
    """The budget ran out while a candidate after the first was being cross-validated."""


def cpu_clock(cores: int) -> Callable[[], float]:
    """This process's CPU seconds over the `cores` the search runs on: on cores of its own it
    keeps pace with the wall; on a machine busy with other work it counts only the work done,
    the seconds free cores would have taken. The search's budget runs on it, so other processes
    do not spend it (on a 2-core box at load average 3, a wall-clock budget skipped every
    booster of a 20,000-lead search)."""
    cores = max(1, cores)
    return lambda: time.process_time() / cores


class _Budget:
    """Seconds left for the search; None: no limit."""

    def __init__(self, seconds: float | None, clock: Callable[[], float]) -> None:
        self.seconds, self.clock, self.started = seconds, clock, clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float | None:
        return None if self.seconds is None else self.seconds - self.elapsed()

    def over(self) -> bool:
        left = self.left()
        return left is not None and left <= 0

    def words(self) -> str:
        left = self.left()
        if left is None:
            return f"{self.elapsed():.0f} s"
        return f"{max(0.0, left):.0f} s left of {self.seconds:.0f}"


def _one_openmp_thread() -> None:
    """Fold models fitted side by side each use one OpenMP thread (a per-thread setting)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")


def _one_blas_thread() -> Any:
    """While fold models are fitted side by side, BLAS on one thread: OpenBLAS's thread count is
    the process's, not a thread's, so it is set for the search and given back after
    (`restore_original_limits`). Two folds' regressions at 2 BLAS threads each on 2 cores spun
    2.5x the CPU seconds (20,000 high_cardinality demo leads, one logistic candidate's 5 folds:
    36.5 s of CPU, 35 s of wall, against 14.5 s and 12.7 s), and the budget counts CPU seconds."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def search_models(
    X: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    column_kinds: np.ndarray,
    candidate_list: list[Candidate],
    n_folds: int,
    seed: int,
    progress: Progress | None = None,
    done: CandidateDone | None = None,
    time_budget: float | None = None,
    workers: int = 1,
    clock: Callable[[], float] | None = None,
) -> Selection:
    """Cross-validate the candidates in order; the winner has the lowest calibrated out-of-fold
    log loss. The first candidate is always cross-validated; a later one is dropped (skipped)
    when the budget (`time_budget` seconds of `clock` from the call) is used up before it or between two of
    its folds or steps of rounds.

    `progress(text)` says which candidate, which fold and the time left; `done(candidate, row)` is
    called after each candidate with its row of the search table (CV scores, `started` as epoch
    seconds and `seconds`): the training run logs it as a nested run."""
    y = np.asarray(labels).astype(int)
    folds = make_folds(y, groups, n_folds, seed)
    budget = _Budget(time_budget, clock or cpu_clock(workers))
    rows: list[dict[str, Any]] = []
    oofs: dict[str, np.ndarray] = {}
    models: dict[str, Any] = {}
    searched: list[Candidate] = []
    skipped: list[str] = []
    empty: set[int] = set()
    total = len(candidate_list)
    pool = ThreadPoolExecutor(workers, initializer=_one_openmp_thread) if workers > 1 else None
    blas = _one_blas_thread() if pool is not None else None
    try:
        for number, candidate in enumerate(candidate_list, start=1):
            if searched and budget.over():
                skipped += [c.name for c in candidate_list[number - 1 :]]
                break

            def say(fold_text: str, number: int = number, candidate: Candidate = candidate) -> None:
                if searched and budget.over():  # only the first candidate outlives the budget
                    raise _OutOfTime
                if progress is not None:
                    progress(
                        f"candidate {number}/{total} {candidate.name}: {fold_text} "
                        f"({budget.words()})"
                    )

            started = time.time()
            try:
                if (
                    candidate.kind == "gradient_boosting"
                    and "max_iter" not in candidate.params
                    and len(y) <= CV_ROUNDS_MAX_ROWS
                ):
                    candidate, oof = boosting_rounds_by_cv(
                        X, y, folds, candidate, column_kinds, seed, empty=empty, say=say,
                        pool=pool,
                    )  # fmt: skip
                else:
                    oof, fold_models = _cross_validate(
                        X, y, groups, folds, candidate, column_kinds, seed, empty, say, pool
                    )
                    if len(folds) == 1 and len(y) > CV_ROUNDS_MAX_ROWS:
                        models[candidate.name] = fold_models[0]
            except _OutOfTime:  # stopped between two folds or two steps of rounds
                skipped += [c.name for c in candidate_list[number - 1 :]]
                break
            seen = ~np.isnan(oof)
            _, losses = choose_calibration(oof[seen], y[seen], seed)
            rows.append(
                {
                    "candidate": candidate.name,
                    "kind": candidate.kind,
                    "raw_log_loss": log_loss(y[seen], oof[seen]),
                    "calibrated_log_loss": min(losses.values()),
                    "roc_auc": float(roc_auc_score(y[seen], oof[seen])),
                    "started": started,
                    "seconds": time.time() - started,
                }
            )
            if done is not None:
                done(candidate, rows[-1])
            oofs[candidate.name] = oof
            searched.append(candidate)
    finally:
        if pool is not None:
            pool.shutdown()
        if blas is not None:
            blas.restore_original_limits()
    table = pd.DataFrame(rows)
    best = int(table["calibrated_log_loss"].to_numpy().argmin())
    table["selected"] = False
    table.loc[best, "selected"] = True
    winner = searched[best]
    return Selection(
        winner, oofs[winner.name], table, empty, skipped, budget.elapsed(), models.get(winner.name)
    )


def _cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    candidate: Candidate,
    column_kinds: np.ndarray,
    seed: int,
    empty: set[int],
    say: Callable[[str], None],
    pool: ThreadPoolExecutor | None,
) -> tuple[np.ndarray, list[Any]]:
    """Out-of-fold probabilities of `candidate` and the fold models (fitted by `pool`; each on its
    rows' leads, `groups`, so its target encoders cross-fit by lead as the folds do)."""

    def one(fold: int) -> tuple[np.ndarray, set[int], Any]:
        say(
            f"folds 1-{len(folds)} side by side"
            if pool is not None
            else f"fold {fold + 1}/{len(folds)}"
        )
        train, test = folds[fold]
        found: set[int] = set()
        model = fit_estimator(
            candidate, column_kinds, seed, X[train], y[train], found, groups=groups[train]
        )
        return model.predict_proba(X[test])[:, 1], found, model

    oof = np.full(len(y), np.nan)
    run = pool.map if pool is not None else map
    models = []
    for (_, test), (proba, found, model) in zip(folds, run(one, range(len(folds)))):
        oof[test] = proba
        empty.update(found)
        models.append(model)
    return oof, models


def boosting_rounds_by_cv(
    X: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    candidate: Candidate,
    column_kinds: np.ndarray,
    seed: int,
    max_rounds: int = MAX_BOOSTING_ROUNDS,
    empty: set[int] | None = None,
    say: Callable[[str], None] | None = None,
    pool: ThreadPoolExecutor | None = None,
    patience: int = PATIENCE,
) -> tuple[Candidate, np.ndarray]:
    """The number of boosting rounds chosen on the cross-validation folds themselves.

    Each fold's model grows trees on all of its training rows (no 10% carved out for early
    stopping), `ROUNDS_CHUNK` rounds (later a third of those grown) at a time, every fold in
    step; the held-out log loss after every round, summed over the folds, picks the round count,
    and growth stops `patience` rounds after its lowest point (or at `max_rounds`). The returned candidate fixes `max_iter` to it (early
    stopping off), so the final fit on all training rows uses every row and the same depth of
    boosting. On X Education this beat scikit-learn's internal early stopping (which stopped too
    soon on a 10% split): ROC AUC 0.8775 -> ~0.879 without the lead id. Stopping at 100 rounds
    past the lowest point chose the same round counts there as growing all 800 rounds.
    """
    grow = Candidate(
        candidate.kind,
        {**candidate.params, "max_iter": 0, "early_stopping": False, "warm_start": True},
    )
    found: set[int] = set()
    fold_data = []
    for train, test in folds:
        X_train, columns = fill_empty_columns(X[train])
        found.update(columns)
        X_train = without_wide_codes(X_train, column_kinds)
        fold_data.append((X_train, y[train], X[test], y[test]))
    models = [_KeptBins(**build_estimator(grow, column_kinds, seed).get_params()) for _ in folds]
    last: list[np.ndarray | None] = [None for _ in folds]  # held-out logits after the last round
    # held-out logits at every ROUNDS_CHUNK-th round: the out-of-fold scores are read from them
    kept: list[dict[int, np.ndarray]] = [{} for _ in folds]
    curve = np.zeros(0)

    def grow_fold(fold: int, upto: int) -> np.ndarray:
        X_train, y_train, X_test, y_test = fold_data[fold]
        model = models[fold]
        before = len(getattr(model, "_predictors", []))
        model.set_params(max_iter=upto)
        model.fit(X_train, y_train)  # warm start: grows rounds before+1 .. upto
        raw = last[fold]
        if raw is None:
            raw = np.zeros((len(X_test), 1), order="F") + model._baseline_prediction
        X_pre = model._preprocess_X(X_test, reset=False)
        stages = np.empty((upto - before, len(X_test)))
        for i in range(before, upto):  # the new rounds' held-out logits, one round at a time
            model._predict_iterations(X_pre, model._predictors[i : i + 1], raw, False, 1)
            stages[i - before] = raw[:, 0]
            if (i + 1) % ROUNDS_CHUNK == 0:
                kept[fold][i + 1] = raw[:, 0].copy()
        last[fold] = raw
        return _sum_log_loss_by_round(y_test, stages)

    grown = 0
    k = len(folds)

    def grow_told(fold: int, upto: int, first: int) -> np.ndarray:
        if say is not None:
            where = f"folds 1-{k} side by side" if pool is not None else f"fold {fold + 1}/{k}"
            say(f"{where}, rounds {first}-{upto}")
        return grow_fold(fold, upto)

    run = pool.map if pool is not None else map
    while grown < max_rounds:
        # a warm start re-predicts every tree so far on the training rows: longer steps later
        upto = min(max_rounds, grown + max(ROUNDS_CHUNK, grown // 3))
        chunk = np.sum(list(run(grow_told, range(k), [upto] * k, [grown + 1] * k)), axis=0)
        curve = np.concatenate([curve, chunk])
        grown = upto
        if grown - (int(np.argmin(curve)) + 1) >= patience:
            break
    if empty is not None:
        empty.update(found)
    # the round with the lowest held-out loss, rounded up to a multiple of 10 (stable across seeds)
    rounds = int(min(grown, 10 * math.ceil((int(np.argmin(curve)) + 1) / 10)))
    oof = np.full(len(y), np.nan)
    for fold, (_, test) in enumerate(folds):
        oof[test] = _logits_at(models[fold], fold_data[fold][2], rounds, kept[fold])
    return Candidate(
        candidate.kind, {**candidate.params, "max_iter": rounds, "early_stopping": False}
    ), oof


def _logits_at(
    model: Any, X_test: np.ndarray, rounds: int, kept: dict[int, np.ndarray]
) -> np.ndarray:
    """Probabilities of `X_test` after `rounds` rounds, from the nearest kept logits below."""
    start = max((r for r in kept if r <= rounds), default=0)
    if start:
        raw = kept[start].reshape(-1, 1).copy(order="F")
    else:
        raw = np.zeros((len(X_test), 1), order="F") + model._baseline_prediction
    if rounds > start:
        X_pre = model._preprocess_X(X_test, reset=False)
        model._predict_iterations(X_pre, model._predictors[start:rounds], raw, False, 1)
    return 1.0 / (1.0 + np.exp(-raw[:, 0]))
