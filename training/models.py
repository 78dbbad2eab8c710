"""Candidate models, the small hyper-parameter search, and probability calibration.

Candidates work on the featurizer's float matrix (categories are integer codes, missing is NaN):

- ``logistic``: one-hot categories (and, ``calendar=categories``, one-hot calendar parts: a
  date's weekday, hour, month, months after creation, `features.feature.CALENDAR`, or, with
  ``calendar=target``, each part target-encoded, cross-fitted by lead, one column each; with
  ``features=compact``, without the detail columns, `features.feature.DETAIL`; with
  ``categories=wide_onehot``, a column of hundreds of values read through its wide code,
  `features.feature.WIDE`, one-hot under an L2 strength of its own, ``wide_C``, or with
  ``categories=target`` target-encoded, cross-fitted by lead, in place of its capped one-hot) +
  (imputed, arcsinh-squashed, spline-expanded or scaled) numbers + missing indicators,
  L2-regularised logistic regression;
- ``gradient_boosting``: HistGradientBoosting with native missing values and either native
  categorical splits or (``categories=ordinal``) the category codes taken as ordered numbers;
  calendar parts are numbers to it.

Every candidate is scored by cross-validation inside the training part (folds grouped by lead, so
a lead's snapshots never sit on both sides: `training.search`); the winner has the lowest
out-of-fold log loss after calibration. The winner is refitted on the whole training part and frozen; ONE calibrator
(sigmoid or isotonic, whichever has the lower cross-fitted log loss on the out-of-fold scores) maps
its probabilities to win rates. When wins are rare (< 20%) class-weighted candidates join the
search: reweighting helps the model rank, and calibration on unweighted out-of-fold scores brings
the probabilities back to honest win rates.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sklearn
from scipy.special import logit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)

from features.feature import CALENDAR, CATEGORY, DETAIL, WIDE

_EPS = 1e-6
CV_ROUNDS_MAX_ROWS = 100_000  # above: scikit-learn's early stopping on a 10% split (cheaper)
FEW_ROWS = 2_000  # fewer training rows: one boosting setting (the most regularised) is searched
# the rarer outcome's training rows up to which the strong regularisation (C=0.01) is tried at
# any size: what a logistic regression learns is bounded by the wins when they are rare
FEW_MINORITY_ROWS = 10_000
MAX_SPLINE_COLUMNS = 40  # more numbers than this: plain scaled numbers (spline width explodes)
# Above this many cells in the feature matrix, the logistic regression learns from float32 numbers
# and a sparse design matrix: the one-hot columns stay sparse instead of dense copies (at a
# million demo leads, 240,000 rows x 375 columns: 0.72 GB dense plus 0.36 GB of one-hot densified
# on the way), and its pipeline's copies of the numbers (one per branch, the median's sort) take
# half the memory. The same model up to rounding; smaller data keeps exactly the models it had.
SPARSE_CELLS = 20_000_000
# A target encoder's prior weight m, in rows: a value seen in n training rows (wins w) is encoded
# (w + m x the win rate) / (n + m), then read as log odds. scikit-learn's "auto" (a weight per
# value from its own variance) encodes a value of a few rows, all lost, as exactly 0. Calibrated
# CV log loss of the first regression in line, target-encoded, high_cardinality demo shape (5
# folds by lead; the one-hot regressions' best: 0.3031): auto 0.3036 (as log odds 0.3062);
# as log odds m=10 0.2984, m=20 0.2973, m=60 0.2972, m=150 0.2988.
TARGET_SMOOTHING = 20.0
# The folds a target encoder cross-fits in: each row encoded by the values' win rates in the
# other folds. By lead when a lead has several snapshots (`target_encoder_folds`).
TARGET_FOLDS = 5
# The L2 strengths the search tries for the wide codes' one-hot columns (`categories=wide_onehot`,
# `wide_C`: the C each value's effect is penalised with, whatever the regression's own C). The
# right one is about the spread of the values' effects squared over the snapshots per lead (the
# same lead's rows count its value's evidence again): referrer effects of sd 0.5 / 1 / 2 on
# 20,000 high_cardinality demo leads, fresh-lead ROC AUC gap to the oracle at 0.1 / 0.3 / 1:
# 0.0205 / 0.0243 / 0.0329, 0.0206 / 0.0199 / 0.0233, 0.0241 / 0.0176 / 0.0156, and each time the
# search's CV log loss picked the best of the three.
WIDE_CS = (0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Candidate:
    """One model family with one setting of its hyper-parameters."""

    kind: str  # "logistic" | "gradient_boosting"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        parts = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.kind}({parts})"


def candidates(
    search: str = "small",
    win_rate: float = 0.5,
    splines: bool = True,
    rows: int = 0,
    categorical: bool = True,
    calendar: bool = False,
    compact: bool = False,
    wide: bool = False,
) -> list[Candidate]:
    """The search space. `search`: "small" (default: 2 boosting settings + 1 logistic), "wide"
    (3 + 1), "tiny" (1 + 1: tests, huge data) or "none" (1 boosting). Up to 100,000 training
    rows, or `FEW_MINORITY_ROWS` rows of the rarer outcome at any size, the logistic regression
    is tried at two strengths (many correlated touchpoint counts and little data want strong
    regularisation: C=0.01 cut the gap to the demo oracle from 0.016 to 0.012 on 20,000 leads;
    on 100,000 imbalanced demo leads, 2.7% winning, ~180,000 rows but ~5,000 wins, the compact
    regression fitted on the same 224,000 rows was 0.0108 below the oracle at C=0.1 and 0.0069
    at C=0.01), and, when there are categories, boosting also with the categories
    as ordinal codes (`categories=ordinal`: codes in order of frequency, 'other' last) next to
    native categorical splits. On small data native splits, which sort a column's categories
    by their gradients at every node, overfit rare ones: on X Education (7,400 leads) ordinal
    codes raised 5-fold ROC AUC from 0.879 to 0.881 and lowered Brier from 0.1335 to 0.1323.
    Below `FEW_ROWS` training rows the small and wide searches keep one boosting setting, the
    most regularised (3 folds of a few hundred rows cannot tell close settings apart), beside the
    two logistic regressions.

    With `calendar` parts among the features (a date's weekday, hour, month, months after the
    lead's creation: `features.feature.CALENDAR`), the small and wide searches also try the
    strongest logistic regression with them target-encoded (`calendar=target`: one column per
    part, its values' win rates cross-fitted by lead as log odds), second in line. Where dates
    drive the outcome this wins (date_driven demo shape, 20,000 leads: gap to the oracle 0.0300 as
    numbers, 0.0101 as one-hot categories, `calendar=categories`, 0.0086 target-encoded cross-
    fitted by row, 0.0085 by lead, ECE 0.0133 -> 0.0115: the one-hot's
    month and renewal effects were shrunk by the strong L2 penalty, C=0.01, that the many
    touchpoint columns need, and scaling those columns up by 2-5 recovered only 0.0092-0.0095);
    where they do not, the 43 columns of a creation date cost more than they teach (3,000
    default demo leads, C=0.1, one-hot: calibrated CV log loss 0.3809 -> 0.3843), so it is a
    candidate, not the rule.

    With `compact` (touchpoint features: `features.feature.DETAIL` columns), the small and wide
    searches also try the strongest regressions (and its calendar variant) on the compact
    columns (`features=compact`: each count all time and over one window, no count per channel;
    ~50 columns instead of ~120), first in line. On few wins, fewer columns learn better:
    fresh-lead ROC AUC of a C=0.01 regression, all -> compact columns, 20,000 demo leads: default
    0.7342 -> 0.7355, date_driven (calendar) 0.7712 -> 0.7735, imbalanced 0.7186 -> 0.7320;
    3,000 small-shape leads 0.7265 -> 0.7363 (C=0.1: 0.7318 -> 0.7415). Where channels or short
    windows carry signal the full columns win the search.

    With `wide` category codes among the features (a column whose values seen a few times
    outnumber the categories its one-hot keeps: `features.feature.WIDE`), the small and wide
    searches also try the first regression in line (and its calendar variant) with those columns
    one-hot, in place of the capped one-hot, each value's effect under an L2 strength of its own
    (`categories=wide_onehot`, `wide_C` among `WIDE_CS`; the rest keeps the regression's C),
    right after it. A value's effect is then learned jointly with the others and shrunk as much
    as its rows warrant, as the well-specified reference of `bench/shapes.py` learns it. Where a
    referrer of hundreds of values drives the outcome it is chosen (`bench/shapes.py`):
    fresh-lead ROC AUC (gap to the oracle) on the high_cardinality demo shape (400 values, 20,000
    leads) 0.7769 (0.0336) with the capped one-hot, 0.7866 (0.0238) target-encoded, 0.7905
    (0.0199) with `wide_C=0.3`, against 0.7947 (0.0158) for the well-specified reference; on the
    small one (300 values, 3,000 leads) 0.7353 (0.0966), 0.7720 (0.0598), 0.7737 (0.0581), against
    0.7768 (0.0550). Target encoding (`categories=target`: `TargetEncoder`, one coefficient;
    measured cross-fitted by row, which let a lead's other snapshots enter its encoding, since
    cross-fitted by lead: `target_encoder_folds`) lost to it on every spread of the effects tried
    (sd 0.5 / 1 / 2 on high_cardinality: 0.0321 / 0.0238 / 0.0167 against 0.0205 / 0.0199 /
    0.0156; by lead at sd 1, 0.0213); the search no longer tries it, and models saved with it
    load and compile as before."""
    hgb = [
        {"learning_rate": 0.1, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 0.0,
         "max_features": 1.0},
        {"learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 40, "l2_regularization": 1.0,
         "max_features": 0.5},
        {"learning_rate": 0.03, "max_leaf_nodes": 8, "min_samples_leaf": 30, "l2_regularization": 3.0,
         "max_features": 0.3},
    ]  # fmt: skip
    logistic: list[dict[str, Any]] = [{"C": 0.1, "splines": splines}]
    small_data = rows <= CV_ROUNDS_MAX_ROWS
    few_wins = rows * min(win_rate, 1.0 - win_rate) <= FEW_MINORITY_ROWS
    if (small_data or few_wins) and search in ("small", "wide"):
        logistic = [{"C": 0.01, "splines": splines}, *logistic]
    if calendar and search in ("small", "wide"):
        logistic.insert(1, {**logistic[0], "calendar": "target"})
    if compact and search in ("small", "wide"):
        # each of the strongest regressions also on the compact columns, first in line
        strongest = [p for p in logistic if p["C"] == logistic[0]["C"]]
        logistic = [{**p, "features": "compact"} for p in strongest] + logistic
    if wide and search in ("small", "wide"):
        # the first in line (and its calendar variant) also with the wide codes one-hot, at each
        # of their own L2 strengths, right after it
        first = logistic[0]
        logistic = [
            q
            for p in logistic
            for q in (
                [p, *({**p, "categories": "wide_onehot", "wide_C": c} for c in WIDE_CS)]
                if _same_but_calendar(p, first)
                else [p]
            )
        ]
    if search == "small":
        hgb = hgb[1:]
    if search == "tiny":
        hgb, logistic = hgb[1:2], logistic[:1]
    elif search == "none":
        hgb, logistic = hgb[1:2], []
    elif search not in ("small", "wide"):
        raise ValueError(f"unknown search {search!r}; use small, wide, tiny or none")
    boosting = [dict(p) for p in hgb]
    if small_data and categorical and search in ("small", "wide"):
        # native splits at the first setting, ordinal codes at every setting
        boosting = [boosting[0], *({**p, "categories": "ordinal"} for p in hgb)]
    if 0 < rows < FEW_ROWS and search in ("small", "wide"):
        boosting = boosting[-1:]
    # the logistic regressions first: a second or two each where a booster's rounds take tens,
    # so a time budget that runs out cuts boosters, never the cheap baselines
    out = [Candidate("logistic", p) for p in logistic] + [
        Candidate("gradient_boosting", p) for p in boosting
    ]
    if win_rate < 0.2 and search in ("small", "wide"):
        out.append(Candidate("gradient_boosting", {**hgb[0], "class_weight": "balanced"}))
    return out


def _same_but_calendar(params: dict[str, Any], first: dict[str, Any]) -> bool:
    return {k: v for k, v in params.items() if k != "calendar"} == {
        k: v for k, v in first.items() if k != "calendar"
    }


def build_estimator(
    candidate: Candidate,
    column_kinds: np.ndarray,
    seed: int,
    sparse: bool = False,
    encoder_folds: Any = None,
) -> Any:
    """An unfitted scikit-learn classifier for the feature matrix. `column_kinds`: each column's
    NUMBER, CATEGORY or CALENDAR (`LeadFeaturizer.column_kinds_`; a bool mask reads as categories
    and numbers). `sparse`: the logistic regression learns from a sparse design matrix (the same
    model up to rounding; see `SPARSE_CELLS`). `encoder_folds`: the splitter its target encoders
    cross-fit in (`target_encoder_folds`; default: by row, `TARGET_FOLDS` stratified folds);
    a splitter by lead needs the rows' leads in `fit` (`fit_estimator` gives them)."""
    params = dict(candidate.params)
    kinds = np.asarray(column_kinds).astype(np.int8)
    categorical = kinds == CATEGORY
    if candidate.kind == "gradient_boosting":
        native = params.pop("categories", "native") == "native" and categorical.any()
        return HistGradientBoostingClassifier(
            categorical_features=categorical if native else None,
            max_iter=params.pop("max_iter", 600),
            early_stopping=params.pop("early_stopping", True),
            validation_fraction=0.1,
            n_iter_no_change=30,
            random_state=seed,
            **params,
        )
    if candidate.kind == "logistic":
        splines = params.pop("splines", True)
        calendar_as = params.pop("calendar", "numbers")
        if calendar_as not in ("numbers", "categories", "target"):
            raise ValueError(f"calendar={calendar_as!r}; use numbers, categories or target")
        columns = params.pop("features", "all")
        if columns not in ("all", "compact"):
            raise ValueError(f"features={columns!r}; use all or compact")
        categories_as = params.pop("categories", "onehot")
        if categories_as not in ("onehot", "target", "wide_onehot"):
            raise ValueError(f"categories={categories_as!r}; use onehot, target or wide_onehot")
        wide_c = params.pop("wide_C", None)
        if (categories_as == "wide_onehot") != (wide_c is not None and wide_c > 0):
            raise ValueError(
                "categories=wide_onehot takes wide_C, a positive L2 strength of its own for the "
                f"wide codes' one-hot columns (got categories={categories_as!r}, wide_C={wide_c!r})"
            )
        C = params.pop("C", 1.0)
        if calendar_as != "numbers" and np.asarray(column_kinds).dtype == bool:
            raise ValueError(
                f"calendar={calendar_as} needs the column kinds (LeadFeaturizer.column_kinds_): "
                "a bool mask does not say which columns are calendar parts"
            )
        # calendar=categories: each value of a calendar part (a weekday, a month, months to a
        # renewal) gets an effect of its own (values not seen in fit weigh nothing);
        # calendar=target: each part is one column, its values' cross-fitted win rates as log
        # odds (`TARGET_SMOOTHING`), so a month's effect is not shrunk by the L2 penalty the many
        # touchpoint columns need; by default the parts are numbers, as trees read them
        one_hot = (kinds == CATEGORY) | ((kinds == CALENDAR) & (calendar_as == "categories"))
        dated = (kinds == CALENDAR) & (calendar_as == "target")
        # features=compact: the detail columns (counts per channel, over other windows) left out
        used = kinds != DETAIL if columns == "compact" else np.ones(kinds.size, dtype=bool)
        wide = kinds == WIDE
        used &= ~wide  # the wide codes: read only by categories=target or wide_onehot
        reads_wide = categories_as in ("target", "wide_onehot")
        target = np.flatnonzero(wide) if reads_wide else np.empty(0, dtype=int)
        if target.size and (target[0] == 0 or not (kinds[target - 1] == CATEGORY).all()):
            raise ValueError(
                f"categories={categories_as} needs each wide code right after its category's "
                "code (LeadFeaturizer.column_kinds_)"
            )
        used[target - 1] = False  # their capped twins: the wide codes hold every value
        cats = np.flatnonzero(one_hot & used)
        nums = np.flatnonzero(~one_hot & ~dated & used)
        dates = np.flatnonzero(dated & used)
        numeric_steps: list[Any] = [
            SimpleImputer(strategy="median", keep_empty_features=True),
            VarianceThreshold(),
            FunctionTransformer(np.arcsinh),  # squashes counts and amounts, keeps the sign
            StandardScaler(),
        ]
        if splines and nums.size <= MAX_SPLINE_COLUMNS:
            numeric_steps.append(SplineTransformer(n_knots=5, degree=3, knots="uniform"))
        parts = []
        if cats.size:
            parts.append(("categories", OneHotEncoder(handle_unknown="ignore"), cats))
        weights: dict[str, float] = {}
        if target.size and categories_as == "wide_onehot":
            # a one-hot of every value, its L2 strength its own: columns scaled by s weigh s x their
            # coefficient, so the penalty on a value's effect is that of C x s^2 (`wide_C`)
            parts.append(("wide", OneHotEncoder(handle_unknown="ignore"), target))
            weights["wide"] = math.sqrt(wide_c / C)
        elif target.size:
            # cross-fitted in fit (a row's encoding learned without its lead), every row in
            # `transform`; a new value gets the mean win rate, 'other' and missing their own
            # encodings; as log odds, the scale a value's effect adds on (encodings lie strictly
            # inside (0, 1))
            parts.append(("target", _target_encoding(seed, encoder_folds), target))
        if dates.size:
            parts.append(("calendar", _target_encoding(seed, encoder_folds), dates))
        if nums.size:
            parts.append(("numbers", make_pipeline(*numeric_steps), nums))
            parts.append(
                ("missing", MissingIndicator(features="missing-only", error_on_new=False), nums)
            )
            # "any at all" effects (a demo request, a webinar) next to the "how many" curve
            parts.append(("nonzero", make_pipeline(
                SimpleImputer(strategy="constant", fill_value=0.0, keep_empty_features=True),
                VarianceThreshold(), FunctionTransformer(np.sign)), nums))  # fmt: skip
        return Pipeline(
            [
                (
                    "features",
                    ColumnTransformer(
                        parts,
                        remainder="drop",
                        sparse_threshold=1.0 if sparse else 0.0,
                        transformer_weights=weights or None,
                    ),
                ),
                ("model", LogisticRegression(C=C, max_iter=2000, **params)),
            ]
        )
    raise ValueError(f"unknown model kind {candidate.kind!r}")


def _target_encoding(seed: int, folds: Any = None) -> Any:
    """Each column's values as their cross-fitted win rates (`TARGET_SMOOTHING`), as log odds,
    standardised: one column each, whatever the number of values."""
    if folds is None:
        folds = StratifiedKFold(TARGET_FOLDS, shuffle=True, random_state=seed)
    # each encoder its own splitter, as before (one object shared would tie their settings)
    encoder = TargetEncoder(target_type="binary", smooth=TARGET_SMOOTHING, cv=copy.copy(folds))
    return make_pipeline(encoder, FunctionTransformer(logit), StandardScaler())


def target_encoder_folds(labels: np.ndarray, groups: np.ndarray | None, seed: int) -> Any:
    """The splitter a target encoder cross-fits in when the rows are leads' snapshots (`groups`:
    each row's lead): by lead, so no snapshot is encoded from its lead's own label.

    Cross-fitted by row, a lead's other snapshots sit in the folds that encode each of its
    snapshots: a value few leads have is encoded with their own labels, and a calendar part of
    150 values with no effect got a weight of 0.48-0.64 (tests/training/test_target_encoding.py;
    by lead -0.08..0.13).

    - one row per lead (flat examples, `groups` None): `TARGET_FOLDS` stratified folds of rows,
      as before (each a fold of leads);
    - else `TARGET_FOLDS` folds of leads drawn at random (`GroupKFold(shuffle=True)`: vectorised;
      scikit-learn's `StratifiedGroupKFold` places leads one by one in Python, 3 s for 20,000
      leads at every fit), kept when each fold's training side has both outcomes;
    - fewer leads of an outcome than `TARGET_FOLDS` (`StratifiedGroupKFold` would refuse fewer
      leads than folds): as many folds as there are such leads, and when the random draw left a
      training side without an outcome, the stratified folds of leads, which spread them;
    - an outcome of one lead (or no folds of leads with both outcomes on every training side):
      by row, as before. Any fold of leads holding that lead out would encode its snapshots
      from no example of its outcome: a win rate of 0 or 1, infinite log odds."""
    by_row = StratifiedKFold(TARGET_FOLDS, shuffle=True, random_state=seed)
    if groups is None:
        return by_row
    y = np.asarray(labels)
    codes, leads = np.unique(np.asarray(groups), return_inverse=True)
    if len(codes) == len(y):
        return by_row
    outcomes = np.unique(y)
    # leads with each outcome: a lead's snapshots may differ (won within a later one's horizon)
    fewest = min(np.unique(leads[y == outcome]).size for outcome in outcomes)
    if fewest < 2:
        return by_row
    k = min(TARGET_FOLDS, fewest)
    rows = np.zeros((len(y), 1))
    for folds in (
        GroupKFold(k, shuffle=True, random_state=seed),
        StratifiedGroupKFold(k, shuffle=True, random_state=seed),
    ):
        if all(np.unique(y[fit]).size == outcomes.size for fit, _ in folds.split(rows, y, leads)):
            return folds
    return by_row


def fill_empty_columns(X: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """`X` with every column that has no value (all NaN) set to 0, and those columns' indices.

    A column with no value in the rows a model is fitted on teaches it nothing, and scikit-learn's
    gradient boosting cannot even bin it ("window shape cannot be larger than input array
    shape"). Set to a constant it is never split on (and the logistic pipeline drops it), so the
    fitted model ignores the column, whatever it holds when leads are scored."""
    empty = np.flatnonzero(np.isnan(X).all(axis=0)) if X.shape[0] else np.empty(0, dtype=int)
    if not empty.size:
        return X, []
    X = X.copy()
    X[:, empty] = 0.0
    return X, empty.tolist()


def reads_wide_codes(candidate: Candidate) -> bool:
    """Whether `candidate` reads the wide category codes (`features.feature.WIDE`)."""
    return candidate.kind == "logistic" and candidate.params.get("categories") in (
        "target",
        "wide_onehot",
    )


def without_wide_codes(X: np.ndarray, column_kinds: np.ndarray) -> np.ndarray:
    """`X` with its wide category codes set to 0, for a model that must not read them: constant
    in its fit, they are never split on (a tree) or weighed (a regression drops them), whatever
    they hold when leads are scored. A booster that split on a code of hundreds of values, ordered
    by frequency, would learn a made-up order; its model stays the one it was without them."""
    wide = np.flatnonzero(np.asarray(column_kinds).astype(np.int8) == WIDE)
    if not wide.size:
        return X
    X = X.copy()
    X[:, wide] = 0.0
    return X


def fit_estimator(
    candidate: Candidate,
    column_kinds: np.ndarray,
    seed: int,
    X: np.ndarray,
    y: np.ndarray,
    empty: set[int] | None = None,
    *,
    groups: np.ndarray | None,
) -> Any:
    """`build_estimator(...)` fitted on `X`, `y`, its all-missing columns set aside
    (`fill_empty_columns`); their indices are added to `empty`. `groups`: each row's lead (its
    target encoders cross-fit by lead: `target_encoder_folds`), None when every row is a lead of
    its own; asked of every caller, so no fit on snapshots forgets it."""
    X, found = fill_empty_columns(X)
    if empty is not None:
        empty.update(found)
    if not reads_wide_codes(candidate):
        X = without_wide_codes(X, column_kinds)
    large = X.size > SPARSE_CELLS
    if large and candidate.kind == "logistic":
        X = X.astype(np.float32)  # the pipeline's copies of the numbers at half the size
    if groups is None or not _target_encodes(candidate):
        return build_estimator(candidate, column_kinds, seed, large).fit(X, y)
    # the leads as numbers 0..n-1: the same folds as their ids, drawn without sorting strings
    leads = np.unique(np.asarray(groups), return_inverse=True)[1]
    estimator = build_estimator(
        candidate, column_kinds, seed, large, target_encoder_folds(y, leads, seed)
    )
    if not estimator.get_metadata_routing().consumes("fit", ["groups"]):
        return estimator.fit(X, y)  # no column to encode, or folds by row
    # scikit-learn hands `groups` down Pipeline -> ColumnTransformer -> Pipeline -> TargetEncoder
    # -> its splitter's `split` only with metadata routing on; the setting is the thread's own
    # (the search fits folds in threads: each turns it on where it fits) and is given back after
    with sklearn.config_context(enable_metadata_routing=True):
        return estimator.fit(X, y, groups=leads)


def _target_encodes(candidate: Candidate) -> bool:
    """Whether `candidate` may hold a target encoder (when the columns it encodes exist)."""
    params = candidate.params
    return candidate.kind == "logistic" and "target" in (
        params.get("calendar"),
        params.get("categories"),
    )


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit_calibrator(raw: np.ndarray, labels: np.ndarray, method: str) -> dict[str, Any]:
    """A JSON-safe calibration map (see `features.scoring.CalibratedModel`)."""
    y = np.asarray(labels, dtype=float)
    if method == "sigmoid":
        model = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw)[:, None], y)
        return {"method": "sigmoid", "a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
        x, fx = iso.X_thresholds_, iso.y_thresholds_
        # Keep probabilities strictly inside (0, 1): a calibrated 0 or 1 is never honest.
        fx = np.clip(fx, 1.0 / (len(y) + 2), 1 - 1.0 / (len(y) + 2))
        return {"method": "isotonic", "x": x.tolist(), "y": fx.tolist()}
    if method == "none":
        return {"method": "none"}
    raise ValueError(f"unknown calibration method {method!r}")


def apply_calibrator(raw: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    from features.model.calibration import CalibratedModel

    class _Raw:
        pass

    return CalibratedModel(_Raw(), calibration, compile=False).calibrate(raw)


def choose_calibration(
    raw: np.ndarray, labels: np.ndarray, seed: int, folds: int = 5
) -> tuple[dict[str, Any], dict[str, float]]:
    """Sigmoid or isotonic, by cross-fitted log loss on out-of-fold scores; fitted on all of them.

    Isotonic is chosen only when its log loss is lower by more than one standard error of the
    per-row difference (paired, same rows): a step function by a hair is noise, and it costs
    ranks (on the test suite's 1,000 demo leads a 10-round booster's isotonic map, better by
    0.0006 on 834 rows, gave 40 leads 5 distinct probabilities). Otherwise the smoother sigmoid."""
    y = np.asarray(labels, dtype=float)
    losses, by_row = {}, {}
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for method in ("sigmoid", "isotonic"):
        calibrated = np.empty_like(raw)
        for train, test in split.split(raw[:, None], y.astype(int)):
            calibrated[test] = apply_calibrator(
                raw[test], fit_calibrator(raw[train], y[train], method)
            )
        p = np.clip(calibrated, _EPS, 1 - _EPS)
        by_row[method] = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        losses[method] = float(log_loss(y, p, labels=[0, 1]))
    gain = by_row["sigmoid"] - by_row["isotonic"]
    noise = float(gain.std(ddof=1) / math.sqrt(gain.size)) if gain.size > 1 else 0.0
    best = "isotonic" if float(gain.mean()) > noise else "sigmoid"
    return fit_calibrator(raw, y, best), losses
