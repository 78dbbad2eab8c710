"""The scoring core shared by batch scoring, the API and the MLflow pyfunc.

`LeadScorer` = fitted `LeadFeaturizer` + `CalibratedModel` + default `Policy` + metadata. It turns
raw leads (attributes, touchpoints, the moment `as_of` they are scored) into a calibrated win
probability, a 0-100 score, a grade, a hand-off decision and the reasons in plain words.

Reasons are occlusion effects against a *typical lead* (the baseline: the most common category and
the median number of every feature in training): for each feature where the lead differs from the
baseline, how many score points the lead would lose (reason for) or gain (reason against) if that
feature were typical. All of a lead's variants go through the model in one batched call, so one
lead costs one estimator call. A reason is ``{"feature", "text", "effect"}`` with `effect` in score
points (+8.0 means the feature adds 8 points).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from features.featurizer import LeadFeaturizer
from features.policy import (
    Policy,
    apply_policy,
    decide,
    frame_facts,
    lead_facts,
    score_from_probability,
)

N_REASONS = 3
MIN_EFFECT_POINTS = 0.5  # effects smaller than half a score point are noise, not reasons
_EPS = 1e-6
SMALL_BATCH = 256  # up to this many rows, boosted trees are walked in numpy (no per-call overhead)


class CalibratedModel:
    """A frozen scikit-learn classifier and one probability calibrator fitted after it.

    `calibration` is JSON-safe: ``{"method": "none"}``, ``{"method": "sigmoid", "a", "b"}`` (Platt
    scaling of the model's log-odds) or ``{"method": "isotonic", "x": [...], "y": [...]}``
    (piecewise-linear map of the model's probability). One calibrator on one frozen model, not an
    ensemble of cross-validation models, keeps scoring a single estimator call.
    """

    def __init__(self, model: Any, calibration: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.calibration = dict(calibration or {"method": "none"})
        self._compile()
        self._linear = _compile_logistic(model)
        self._trees = _compile_boosting(model)

    def _compile(self) -> None:
        method = self.calibration.get("method", "none")
        if method == "sigmoid":
            self._a = float(self.calibration["a"])
            self._b = float(self.calibration["b"])
        elif method == "isotonic":
            self._x = np.asarray(self.calibration["x"], dtype=float)
            self._y = np.asarray(self.calibration["y"], dtype=float)
        elif method != "none":
            raise ValueError(f"unknown calibration method {method!r}; use none, sigmoid or isotonic")
        self._method = method

    def raw_proba(self, X: np.ndarray) -> np.ndarray:
        """The frozen model's uncalibrated win probability."""
        if self._linear is not None:
            return self._linear(X)
        if self._trees is not None and X.shape[0] <= SMALL_BATCH:
            return self._trees(X)
        return self.model.predict_proba(X)[:, 1]

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self._method == "sigmoid":
            logit = np.log(np.clip(raw, _EPS, 1 - _EPS) / np.clip(1 - raw, _EPS, 1))
            return 1.0 / (1.0 + np.exp(-(self._a * logit + self._b)))
        if self._method == "isotonic":
            return np.interp(raw, self._x, self._y)
        return raw

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated win probability per row (1-d)."""
        return self.calibrate(self.raw_proba(X))


def _compile_logistic(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy re-statement of training.models' logistic pipeline, or None for other models.

    scikit-learn's ColumnTransformer + OneHotEncoder cost ~4 ms per call even for one lead; the
    model is additive per input column, so categories become weight look-ups and the number
    steps are applied with their fitted statistics. Tests check it equals `predict_proba`.
    """
    steps = getattr(model, "named_steps", None)
    if not steps or set(steps) != {"features", "model"}:
        return None
    columns, logistic = steps["features"], steps["model"]
    coef, intercept = logistic.coef_[0], float(logistic.intercept_[0])
    parts: list[Callable[[np.ndarray], np.ndarray]] = []
    for name, transformer, cols in columns.transformers_:
        if name == "remainder":
            continue
        cols = np.asarray(cols)
        weights = coef[columns.output_indices_[name]]
        if name == "categories":
            tables = []
            start = 0
            for categories in transformer.categories_:
                categories = np.asarray(categories, dtype=float)
                w = weights[start : start + categories.size]
                start += categories.size
                known = ~np.isnan(categories)
                nan_weight = float(w[~known][0]) if (~known).any() else 0.0
                tables.append((categories[known], w[known], nan_weight))

            def categorical(X, cols=cols, tables=tables):
                total = np.zeros(X.shape[0])
                for j, (cats, w, nan_weight) in zip(cols, tables):
                    x = X[:, j]
                    value = np.where(np.isnan(x), nan_weight, 0.0)
                    if cats.size:  # unknown codes weigh 0, like handle_unknown="ignore"
                        pos = np.clip(np.searchsorted(cats, x), 0, cats.size - 1)
                        value = value + np.where(cats[pos] == x, w[pos], 0.0)
                    total += value
                return total

            parts.append(categorical)
        elif name == "numbers":
            imputer, variance, squash, scaler, *rest = [s for _, s in transformer.steps]
            fill, keep = imputer.statistics_, variance.get_support()
            mean, scale = scaler.mean_, scaler.scale_
            spline = rest[0] if rest else None

            def numbers(X, cols=cols, fill=fill, keep=keep, mean=mean, scale=scale, spline=spline, w=weights):
                Z = X[:, cols]
                Z = np.where(np.isnan(Z), fill, Z)[:, keep]
                Z = (np.arcsinh(Z) - mean) / scale
                if spline is not None:
                    Z = spline.transform(Z)
                return Z @ w

            parts.append(numbers)
        elif name == "missing":
            features = cols[transformer.features_]
            parts.append(lambda X, f=features, w=weights: np.isnan(X[:, f]) @ w)
        elif name == "nonzero":
            imputer, variance, _ = [s for _, s in transformer.steps]
            keep = cols[variance.get_support()]
            parts.append(lambda X, k=keep, w=weights: np.sign(np.nan_to_num(X[:, k], nan=0.0)) @ w)
        else:
            return None

    def predict(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        logit = intercept + sum(part(X) for part in parts)
        return 1.0 / (1.0 + np.exp(-logit))

    return predict


def _compile_boosting(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A numpy walk of a binary HistGradientBoostingClassifier's trees, all trees at once.

    scikit-learn walks each tree in its own call (~10 us each, 4-5 ms for one lead); here every
    (row, tree) pair advances one level per step. Same rules as scikit-learn's predictor (missing
    values, categorical bitsets, unknown categories); tests check it equals `predict_proba`.
    """
    if type(model).__name__ != "HistGradientBoostingClassifier" or getattr(model, "n_trees_per_iteration_", 0) != 1:
        return None
    predictors = [p[0] for p in model._predictors]
    if not predictors:
        return None
    known, f_map = model._bin_mapper.make_known_categories_bitsets()
    nodes = [p.nodes for p in predictors]
    sizes = np.array([len(n) for n in nodes])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    bit_sizes = np.array([len(p.raw_left_cat_bitsets) for p in predictors])
    bit_offsets = np.concatenate([[0], np.cumsum(bit_sizes)[:-1]])
    allnodes = np.concatenate(nodes)
    tree_of = np.repeat(np.arange(len(nodes)), sizes)
    feature = allnodes["feature_idx"].astype(np.intp)
    threshold = allnodes["num_threshold"].astype(float)
    missing_left = allnodes["missing_go_to_left"].astype(bool)
    left = allnodes["left"].astype(np.intp) + offsets[tree_of]
    right = allnodes["right"].astype(np.intp) + offsets[tree_of]
    leaf = allnodes["is_leaf"].astype(bool)
    value = allnodes["value"].astype(float)
    categorical = allnodes["is_categorical"].astype(bool)
    bitset = allnodes["bitset_idx"].astype(np.intp) + bit_offsets[tree_of]
    raw_bits = np.concatenate([p.raw_left_cat_bitsets for p in predictors]).astype(np.uint64) if bit_sizes.sum() else None
    known = np.asarray(known, dtype=np.uint64)
    f_map = np.asarray(f_map, dtype=np.intp)
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    depth = int(allnodes["depth"].max()) + 1
    # With categorical features scikit-learn first ordinal-encodes them (categories seen in fit
    # -> 0..k-1, anything else -> missing) and puts them before the numbers.
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is not None:
        encoder = preprocessor.named_transformers_["encoder"]
        cat_cols = np.flatnonzero(model.is_categorical_)
        num_cols = np.flatnonzero(~np.asarray(model.is_categorical_))
        seen = [np.asarray(c, dtype=float) for c in encoder.categories_]
        seen = [c[~np.isnan(c)] for c in seen]

        def prepare(X: np.ndarray) -> np.ndarray:
            out = np.empty((X.shape[0], cat_cols.size + num_cols.size))
            for k, (j, cats) in enumerate(zip(cat_cols, seen)):
                x = X[:, j]
                if cats.size == 0:
                    out[:, k] = np.nan
                    continue
                pos = np.clip(np.searchsorted(cats, x), 0, cats.size - 1)
                out[:, k] = np.where(cats[pos] == x, pos, np.nan)
            out[:, cat_cols.size :] = X[:, num_cols]
            return out
    else:

        def prepare(X: np.ndarray) -> np.ndarray:
            return X

    def in_bitset(bits: np.ndarray, row: np.ndarray, v: np.ndarray) -> np.ndarray:
        return ((bits[row, v >> 5] >> (v & 31).astype(np.uint64)) & np.uint64(1)).astype(bool)

    def predict(X: np.ndarray) -> np.ndarray:
        X = prepare(np.asarray(X, dtype=float))
        node = np.broadcast_to(offsets, (X.shape[0], offsets.size)).copy()
        for _ in range(depth):
            active = ~leaf[node]
            if not active.any():
                break
            r, t = np.nonzero(active)
            nd = node[r, t]
            x = X[r, feature[nd]]
            go_left = x <= threshold[nd]
            cat = categorical[nd]
            if cat.any() and raw_bits is not None:
                xc, ndc = x[cat], nd[cat]
                unusable = np.isnan(xc) | (xc < 0)
                v = np.where(unusable, 0, xc).astype(np.intp)
                in_left = in_bitset(raw_bits, bitset[ndc], v)
                is_known = in_bitset(known, f_map[feature[ndc]], v)
                go = np.where(in_left, True, np.where(is_known, False, missing_left[ndc]))
                go_left[cat] = np.where(unusable, missing_left[ndc], go)
            go_left = np.where(np.isnan(x), missing_left[nd], go_left)
            node[r, t] = np.where(go_left, left[nd], right[nd])
        raw = baseline + value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))

    return predict


def _baseline_equal(X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    both_nan = np.isnan(X) & np.isnan(baseline)
    return (X == baseline) | both_nan


class LeadScorer:
    """Featurizer + calibrated estimator + default policy -> probability, score, grade, decision.

    `holdout` (DataFrame `probability`, `label`, `as_of`) and `metadata` (`name`, `version`,
    `trained_at`, `metrics`, `holdout_weeks`, `features`, ...) travel with the model for the API's
    `GET /v1/model` and for policy simulation.
    """

    def __init__(
        self,
        featurizer: LeadFeaturizer,
        estimator: CalibratedModel,
        policy: Policy | None = None,
        metadata: dict[str, Any] | None = None,
        holdout: pd.DataFrame | None = None,
        baseline: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.estimator = estimator
        self.policy = policy or Policy()
        self.metadata = dict(metadata or {})
        self.holdout = holdout
        self.feature_names = [str(n) for n in featurizer.get_feature_names_out()]
        n = len(self.feature_names)
        self.baseline = (
            np.full(n, np.nan) if baseline is None else np.asarray(baseline, dtype=float).reshape(-1)
        )
        if self.baseline.shape[0] != n:
            raise ValueError(
                f"the baseline has {self.baseline.shape[0]} values for {n} features; retrain the model"
            )

    # features and probabilities -------------------------------------------------------------
    def _with_as_of(self, frame: pd.DataFrame, as_of: Any) -> pd.DataFrame:
        if not self.featurizer.needs_as_of or ("as_of" in frame.columns and as_of is None):
            return frame
        moment = pd.Timestamp(as_of if as_of is not None else datetime.now(timezone.utc))
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        return frame.assign(as_of=moment)

    def features(
        self, frame: pd.DataFrame, touchpoints: pd.DataFrame | None = None, as_of: Any = None
    ) -> np.ndarray:
        """The feature matrix of `frame` (lead_id, attributes, created_at/as_of when used)."""
        return self.featurizer.transform(self._with_as_of(frame, as_of), touchpoints)

    def predict_proba(
        self, frame: pd.DataFrame, touchpoints: pd.DataFrame | None = None, as_of: Any = None
    ) -> np.ndarray:
        """Calibrated win probability per row of `frame`."""
        return self.estimator.predict_proba(self.features(frame, touchpoints, as_of))

    # explanations ---------------------------------------------------------------------------
    def _variants(self, X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Rows to predict: each lead, then the lead with one differing feature set to baseline."""
        differs = ~_baseline_equal(X, self.baseline[None, :])
        blocks, columns = [], []
        for i in range(X.shape[0]):
            cols = np.flatnonzero(differs[i])
            block = np.repeat(X[i : i + 1], cols.size + 1, axis=0)
            block[np.arange(1, cols.size + 1), cols] = self.baseline[cols]
            blocks.append(block)
            columns.append(cols)
        return np.vstack(blocks) if blocks else X[:0], columns

    def _reasons(self, x: np.ndarray, p: float, occluded: np.ndarray, cols: np.ndarray, n: int):
        effects = 100.0 * (p - occluded)
        order = np.argsort(-effects, kind="stable")
        reasons_for, reasons_against = [], []
        for j in order[:n]:
            if effects[j] < MIN_EFFECT_POINTS:
                break
            reasons_for.append(self._reason(int(cols[j]), x, effects[j]))
        for j in order[::-1][:n]:
            if effects[j] > -MIN_EFFECT_POINTS:
                break
            reasons_against.append(self._reason(int(cols[j]), x, effects[j]))
        return reasons_for, reasons_against

    def _reason(self, col: int, x: np.ndarray, effect: float) -> dict[str, Any]:
        name = self.feature_names[col]
        return {
            "feature": name,
            "text": self.featurizer.describe(name, float(x[col])),
            "effect": round(float(effect), 1),
        }

    def _predict_explained(
        self, X: np.ndarray, n_reasons: int
    ) -> tuple[np.ndarray, list[list[dict]], list[list[dict]]]:
        rows, columns = self._variants(X)
        predicted = self.estimator.predict_proba(rows) if len(rows) else np.empty(0)
        probabilities = np.empty(X.shape[0])
        reasons_for, reasons_against = [], []
        start = 0
        for i, cols in enumerate(columns):
            p = float(predicted[start])
            probabilities[i] = p
            rf, ra = self._reasons(X[i], p, predicted[start + 1 : start + 1 + cols.size], cols, n_reasons)
            reasons_for.append(rf)
            reasons_against.append(ra)
            start += cols.size + 1
        return probabilities, reasons_for, reasons_against

    def explain(self, X: np.ndarray, n_reasons: int = N_REASONS):
        """(probabilities, reasons_for, reasons_against) for feature rows `X`."""
        return self._predict_explained(np.asarray(X, dtype=float), n_reasons)

    # batch ----------------------------------------------------------------------------------
    def score_frame(
        self,
        frame: pd.DataFrame,
        touchpoints: pd.DataFrame | None = None,
        as_of: Any = None,
        explain: bool = True,
        n_reasons: int = N_REASONS,
        policy: Policy | None = None,
        batch_size: int = 2_000,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """One row per lead: lead_id, probability, score, grade, decision, reasons, hard rule.

        `as_of` (when the model uses time and `frame` has no `as_of` column) is the scoring moment
        of every lead; default now. `progress(n)` is called after each batch of `n` leads.
        """
        frame = self._with_as_of(frame, as_of)
        policy = policy or self.policy
        n = len(frame)
        probabilities = np.empty(n)
        reasons_for: list[list[dict]] = []
        reasons_against: list[list[dict]] = []
        tp_by_lead = touchpoints
        for start in range(0, n, batch_size):
            part = frame.iloc[start : start + batch_size]
            if touchpoints is not None and n > batch_size:
                tp_by_lead = touchpoints[touchpoints["lead_id"].isin(part["lead_id"])]
            X = self.featurizer.transform(part, tp_by_lead)
            if explain:
                p, rf, ra = self._predict_explained(X, n_reasons)
                reasons_for += rf
                reasons_against += ra
            else:
                p = self.estimator.predict_proba(X)
            probabilities[start : start + len(part)] = p
            if progress is not None:
                progress(len(part))
        scores = score_from_probability(probabilities)
        facts = frame_facts(frame, touchpoints)
        grades, decisions, rule_reasons = apply_policy(scores, facts, policy)
        out = pd.DataFrame(
            {
                "lead_id": frame["lead_id"].astype(str).to_numpy() if "lead_id" in frame else np.arange(n),
                "probability": probabilities,
                "score": scores,
                "grade": grades.astype(str),
                "decision": decisions.astype(str),
            }
        )
        if explain:
            out["reasons_for"] = reasons_for
            out["reasons_against"] = reasons_against
        out["hard_rule"] = [r[0] if r else None for r in rule_reasons]
        return out

    # the API's fast path --------------------------------------------------------------------
    def score_records(
        self,
        records: Sequence[Mapping[str, Any]],
        policy: Policy | None = None,
        explain: bool = True,
        n_reasons: int = N_REASONS,
    ) -> list[dict[str, Any]]:
        """Score API-style leads without pandas.

        A record is ``{"lead_id", "attributes": {...}, "touchpoints": [{"occurred_at", "channel",
        "activity", "campaign", "value"}, ...], "created_at", "as_of"}``; `as_of` defaults to now.
        Returns per lead: lead_id, probability, score, grade, decision, reasons_for,
        reasons_against, hard_rule.
        """
        policy = policy or self.policy
        if self.featurizer.needs_as_of and any(r.get("as_of") is None for r in records):
            now = datetime.now(timezone.utc)
            records = [r if r.get("as_of") is not None else {**r, "as_of": now} for r in records]
        X = self.featurizer.transform_records(records)
        if explain:
            probabilities, reasons_for, reasons_against = self._predict_explained(X, n_reasons)
        else:
            probabilities = self.estimator.predict_proba(X)
            reasons_for = reasons_against = [[] for _ in records]
        out = []
        for i, record in enumerate(records):
            p = float(probabilities[i])
            score = int(min(100, max(0, round(100.0 * p))))
            facts = lead_facts(record.get("attributes"), _touches_until(record))
            grade, decision, rule = decide(score, facts, policy)
            out.append(
                {
                    "lead_id": record.get("lead_id"),
                    "probability": p,
                    "score": score,
                    "grade": grade,
                    "decision": decision,
                    "reasons_for": reasons_for[i],
                    "reasons_against": reasons_against[i],
                    "hard_rule": rule,
                }
            )
        return out


_RULE_ACTIVITIES = frozenset({"unsubscribe", "demo_request"})


def _touches_until(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The record's rule-relevant touchpoints up to its `as_of` (later ones are not known yet)."""
    touches = record.get("touchpoints") or ()
    relevant = [t for t in touches if str(t.get("activity", "")).strip().lower() in _RULE_ACTIVITIES]
    as_of = record.get("as_of")
    if not relevant or as_of is None:
        return relevant
    from features.touchpoints import datetime_ns

    cut = datetime_ns(as_of, "as_of")
    kept = []
    for t in relevant:
        moment = datetime_ns(t.get("occurred_at"), "touchpoint occurred_at")
        if moment is None or cut is None or moment <= cut:
            kept.append(t)
    return kept


def format_reasons(reasons: Sequence[Mapping[str, Any]] | None) -> str:
    """Reasons as one line for files and terminals: 'text (+8.0); text (-3.1)'."""
    if not reasons:
        return ""
    return "; ".join(f"{r['text']} ({r['effect']:+.1f})" for r in reasons)


def typical_lead(X: np.ndarray, categorical_mask: np.ndarray) -> np.ndarray:
    """The baseline for reasons: per feature the most common category or the median number.

    A feature missing for most leads has a missing baseline (missing is the typical value).
    """
    X = np.asarray(X, dtype=float)
    baseline = np.full(X.shape[1], np.nan)
    for j in range(X.shape[1]):
        column = X[:, j]
        present = column[~np.isnan(column)]
        if present.size * 2 < column.size or present.size == 0:
            continue
        if categorical_mask[j]:
            values, counts = np.unique(present, return_counts=True)
            baseline[j] = values[int(np.argmax(counts))]
        else:
            baseline[j] = float(np.median(present))
    return baseline


