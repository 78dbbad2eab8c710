"""The scoring core shared by batch scoring, the API and the MLflow pyfunc.

`LeadScorer` = fitted `LeadFeaturizer` + `CalibratedModel` + default `Policy` + metadata. It turns
raw leads (attributes, touchpoints, the moment `as_of` they are scored) into a calibrated win
probability, a 0-100 score, a grade, a hand-off decision and the reasons in plain words.

Reasons are occlusion effects against a *typical lead* (the baseline: the most common category and
the median number of every feature in training): for each feature where the lead differs from the
baseline, how many score points the lead would lose (reason for) or gain (reason against) if that
feature were typical. All of a lead's variants go through the model in one batched call, so one
lead costs one estimator call. Columns that say the same thing about a lead (the windows of one
count, a job title and what is read from it) are one reason, their effects added
(`features.model.reasons.ReasonWriter`). A reason is ``{"feature", "text", "effect"}`` with
`effect` in score points (+8.0 means the fact adds 8 points) and `feature` the fact's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from features.feature import facts_of
from features.featurizer import LeadFeaturizer
from features.model.calibration import CalibratedModel
from features.model.compiled import AdditiveLogistic, CompiledTrees
from features.model.confidence import LeadConfidence
from features.model.reasons import N_REASONS, ReasonWriter, _baseline_equal
from features.model.segments import SegmentModels
from features.model.subscores import FitEngagement
from features.model.timing import CloseTimingModel, lead_ages
from features.model.value import DealValueModel
from features.policy.exploration import apply_exploration
from features.policy.facts import (
    _touch_facts,
    _touches_until,
    attribute_facts,
    fact_columns_of,
    frame_facts,
    lead_facts,
)
from features.policy.rules import (
    Policy,
    ValueNeeded,
    apply_policy,
    decide,
    score_from_probability,
    value_needed_message,
)


class LeadScorer:
    """Featurizer + calibrated estimator + default policy -> probability, score, grade, decision.

    `holdout` (DataFrame `probability`, `label`, `as_of`; with the value and timing parts also
    `expected_value`, `win_within_{30,60,90}d`, `median_days_to_close`) and `metadata` (`name`, `version`,
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
        value: DealValueModel | None = None,
        timing: CloseTimingModel | None = None,
        subscores: FitEngagement | None = None,
        confidence: LeadConfidence | None = None,
        segments: SegmentModels | None = None,
    ) -> None:
        self.featurizer = featurizer
        self.segments = segments  # the segments' own models (None: the global model for all)
        self.confidence = confidence  # similar training leads -> low/medium/high (None: none)
        self.subscores = subscores  # fit and engagement sub-scores and the grid (None: none)
        self.value = value  # expected deal amount if won (None: not trained)
        self.timing = timing  # chances of a win within 30/60/90 days (None: not trained)
        self.estimator = estimator
        self.policy = policy or Policy()
        self.metadata = dict(metadata or {})
        self.holdout = holdout
        self.feature_names = [str(n) for n in featurizer.get_feature_names_out()]
        n = len(self.feature_names)
        self.baseline = (
            np.full(n, np.nan)
            if baseline is None
            else np.asarray(baseline, dtype=float).reshape(-1)
        )
        if self.baseline.shape[0] != n:
            raise ValueError(
                f"the baseline has {self.baseline.shape[0]} values for {n} features; retrain the model"
            )

    # features and probabilities -------------------------------------------------------------
    def _with_as_of(self, frame: pd.DataFrame, as_of: Any) -> pd.DataFrame:
        if not self.featurizer.needs_as_of or ("as_of" in frame.columns and as_of is None):
            return frame
        moment = pd.Timestamp(as_of if as_of is not None else datetime.now(UTC))
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
        return self.probabilities(self.features(frame, touchpoints, as_of))

    # explanations ---------------------------------------------------------------------------
    def _effects(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, effects): effects[i, j] is how many score points feature j adds to
        lead i against the typical lead; NaN where the lead has the typical value. Each lead
        is explained by the model that scores it (its segment's, else the global one)."""
        if self.segments is None or X.shape[0] == 0:
            return self._effects_of(X, self.estimator)
        assigned = self.segments.assign(X)
        if (assigned == assigned[0]).all():  # one model for all (a single lead, say)
            k = int(assigned[0])
            return self._effects_of(X, self.estimator if k < 0 else self.segments.estimators[k])
        probabilities, effects = np.empty(X.shape[0]), np.empty(X.shape)
        for k in np.unique(assigned).tolist():
            rows = assigned == k
            estimator = self.estimator if k < 0 else self.segments.estimators[k]
            probabilities[rows], effects[rows] = self._effects_of(X[rows], estimator)
        return probabilities, effects

    def _effects_of(
        self, X: np.ndarray, estimator: CalibratedModel
    ) -> tuple[np.ndarray, np.ndarray]:
        if X.shape[0] == 0:
            return np.empty(0), np.empty(X.shape)
        differs = ~_baseline_equal(X, self.baseline[None, :])
        lead, column = np.nonzero(differs)  # row-major: each lead's columns in order
        compiled = estimator.compiled
        if isinstance(compiled, AdditiveLogistic):
            # Additive model: the lead with feature j set to typical is exact without re-predicting.
            contributions = compiled.contributions(X)
            logit = compiled.intercept + contributions.sum(axis=1)
            typical = self._typical_contributions(compiled)
            occluded_logit = logit[lead] - contributions[lead, column] + typical[column]
            probabilities, occluded = _calibrated(estimator, logit, occluded_logit)
            occluded = np.round(occluded, 12)  # features with equal weights tie exactly
        elif isinstance(compiled, CompiledTrees):
            # Boosted trees: only the trees whose path splits on a feature are looked at again.
            raw, raw_occluded = compiled.occluded_raw(X, self.baseline, lead, column)
            probabilities, occluded = _calibrated(estimator, raw, raw_occluded)
        else:
            # Each lead, then the lead with one differing feature set to typical: one model call.
            counts = differs.sum(axis=1)
            start = np.concatenate([[0], np.cumsum(counts + 1)[:-1]]).astype(np.intp)
            rows = np.repeat(X, counts + 1, axis=0)
            first = np.repeat(np.cumsum(counts) - counts, counts)  # index of each lead's first pair
            position = start[lead] + 1 + (np.arange(lead.size) - first)
            rows[position, column] = self.baseline[column]
            predicted = estimator.predict_proba(rows) if len(rows) else np.empty(0)
            probabilities = predicted[start]
            occluded = predicted[position]
        effects = np.full(X.shape, np.nan)
        effects[lead, column] = 100.0 * (probabilities[lead] - occluded)
        return probabilities, effects

    def _typical_contributions(self, linear: AdditiveLogistic) -> np.ndarray:
        cache = self.__dict__.setdefault("_typical_cache", {})  # one per model (segments)
        cached = cache.get(id(linear))
        if cached is None or cached[0] is not linear:
            cached = cache[id(linear)] = (linear, linear.contributions(self.baseline[None, :])[0])
        return cached[1]

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """Calibrated win probability of feature rows `X`, each by its segment's model when it
        has one (`segments`), else by the global model."""
        global_probability = self.estimator.predict_proba(X)
        if self.segments is None or X.shape[0] == 0:
            return global_probability
        return self.segments.probabilities(X, global_probability)

    def _predict_explained(
        self, X: np.ndarray, n_reasons: int
    ) -> tuple[np.ndarray, list[list[dict]], list[list[dict]]]:
        probabilities, effects = self._effects(X)
        reasons_for, reasons_against = self._reason_writer().write(X, effects, n_reasons)
        return probabilities, reasons_for, reasons_against

    def _reason_writer(self) -> ReasonWriter:
        """One reason per fact the featurizer declares (built once per featurizer)."""
        cached = self.__dict__.get("_writer")
        if cached is None or cached[0] is not self.featurizer:
            facts = getattr(self.featurizer, "facts_", None)
            if facts is None:  # a featurizer without declarations: each column a fact
                facts = facts_of(getattr(self.featurizer, "features_", ()))
            cached = self._writer = (self.featurizer, ReasonWriter(facts, len(self.feature_names)))
        return cached[1]

    def explain(self, X: np.ndarray, n_reasons: int = N_REASONS):
        """(probabilities, reasons_for, reasons_against) for feature rows `X`."""
        return self._predict_explained(np.asarray(X, dtype=float), n_reasons)

    # how much and how soon -----------------------------------------------------------------
    def outlook(
        self, X: np.ndarray, probabilities: np.ndarray, lead_age: np.ndarray, explain: bool = True
    ) -> dict[str, Any]:
        """The columns beyond the win probability of feature rows `X` (arrays, one value per
        lead; none without the model behind them): segment (the model that scored it: the
        segment's value or 'global'), fit_probability, engagement_probability,
        fit_grade, engagement_level, grid (`subscores`); expected_amount, amount_low,
        amount_high (the value model's interval), expected_value (probability x expected
        amount), amount_reasons; win_within_{30,60,90}d and median_days_to_close (of a win);
        confidence (low/medium/high) and similar_leads (`confidence`)."""
        out: dict[str, Any] = {}
        if self.segments is not None:
            out["segment"] = self.segments.names(self.segments.assign(X))
        if self.subscores is not None:
            out.update(self.subscores.predict(X))
        if self.confidence is not None:
            similar = self.confidence.similar_leads(confidence_axes(np.asarray(probabilities), out))
            out["confidence"] = self.confidence.labels(similar)
            out["similar_leads"] = similar
        if self.value is not None:
            parts = self.value.contributions(X)  # once for the amounts and their reasons
            expected, low, high = self.value.predict(X, parts)
            out["expected_amount"] = expected
            out["amount_low"], out["amount_high"] = low, high
            out["expected_value"] = np.asarray(probabilities) * expected
            out["amount_reasons"] = (
                self.value.reasons(
                    X, self.baseline, self._reason_writer().facts, contributions=parts
                )
                if explain
                else [[] for _ in range(len(X))]
            )
        if self.timing is not None:
            chances, median = self.timing.predict(X, lead_age, probabilities)
            for horizon, chance in chances.items():
                out[f"win_within_{horizon}d"] = chance
            out["median_days_to_close"] = median
        return out

    def _frame_lead_ages(self, frame: pd.DataFrame) -> np.ndarray:
        if "created_at" in frame and "as_of" in frame:
            return lead_ages(frame["created_at"], frame["as_of"])
        return np.full(len(frame), np.nan)

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
        policy_version: int = 0,
    ) -> pd.DataFrame:
        """One row per lead: lead_id, probability, score, grade, decision, reasons, hard rule,
        exploration.

        `as_of` (when the model uses time and `frame` has no `as_of` column) is the scoring moment
        of every lead; default now. `progress(n)` is called after each batch of `n` leads.
        `policy_version` salts the exploration draw (`features.policy.exploration`), so the same
        lead is explored or not as in the API under that version.
        """
        frame = self._with_as_of(frame, as_of)
        policy = self.applicable_policy(policy or self.policy)
        n = len(frame)
        probabilities = np.empty(n)
        reasons_for: list[list[dict]] = []
        reasons_against: list[list[dict]] = []
        tp_by_lead = touchpoints
        outlook: dict[str, list[Any]] = {}
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
                p = self.probabilities(X)
            probabilities[start : start + len(part)] = p
            more = self.outlook(X, p, self._frame_lead_ages(part), explain)
            for column, values in more.items():
                outlook.setdefault(column, []).extend(list(values))
            if progress is not None:
                progress(len(part))
        lead_ids = frame["lead_id"].tolist() if "lead_id" in frame else list(range(n))
        check_probabilities(probabilities, lead_ids)
        scores = score_from_probability(probabilities)
        facts = frame_facts(frame, touchpoints, fact_columns_of(self.metadata.get("data_config")))
        grades, decisions, rule_reasons = apply_policy(
            scores, facts, policy, self._policy_values(outlook.get("expected_value"), policy)
        )
        lead_ids = frame["lead_id"].astype(str).tolist() if "lead_id" in frame else lead_ids
        hard_rules = [r[0] if r else None for r in rule_reasons]
        decision_list = decisions.tolist()
        exploration = apply_exploration(
            lead_ids, decision_list, hard_rules, facts.get("do_not_contact"), policy, policy_version
        )
        decisions = np.asarray(decision_list, dtype=object)
        out = pd.DataFrame(
            {
                "lead_id": frame["lead_id"].astype(str).to_numpy()
                if "lead_id" in frame
                else np.arange(n),
                "probability": probabilities,
                "score": scores,
                "grade": grades.astype(str),
                "decision": decisions.astype(str),
            }
        )
        if explain:
            out["reasons_for"] = reasons_for
            out["reasons_against"] = reasons_against
        out["hard_rule"] = hard_rules
        out["exploration"] = np.asarray(exploration, dtype=bool)
        for column, values in outlook.items():
            out[column] = values
        return out

    def applicable_policy(self, policy: Policy) -> Policy:
        """The policy this model applies: one that ranks by expected value ranks by probability
        (its `sales_threshold`) under a model without a deal value model, so that scoring goes
        on when such a model is promoted after the policy was saved (the API answers a warning,
        `ranked_by_probability_instead`)."""
        if policy.rank_by == "expected_value" and self.value is None:
            return policy.model_copy(update={"rank_by": "probability", "value_threshold": None})
        return policy

    def _policy_values(self, expected_values: Any, policy: Policy) -> np.ndarray | None:
        """The expected values a policy that ranks by them needs (None when it does not);
        `ValueNeeded`, naming this model, when it has no deal value model."""
        if policy.rank_by != "expected_value":
            return None
        if expected_values is None:
            raise ValueNeeded(value_needed_message(self.model_words()))
        return np.asarray(expected_values, dtype=float)

    def model_words(self) -> str:
        """This model in the words of an error message: its name and version when known."""
        name, version = self.metadata.get("name"), self.metadata.get("version")
        if name and version not in (None, ""):
            return f"model {name} version {version}"
        return f"model {name}" if name else "this model"

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
        columns = self.score_columns(records, policy, explain, n_reasons)
        return [dict(zip(columns, row)) for row in zip(*columns.values())]

    def score_columns(
        self,
        records: Sequence[Mapping[str, Any]],
        policy: Policy | None = None,
        explain: bool = True,
        n_reasons: int = N_REASONS,
        touch_moments: np.ndarray | None = None,
        policy_version: int = 0,
    ) -> dict[str, list[Any]]:
        """`score_records` as one list per output (lead_id, probability, score, grade, decision,
        reasons_for, reasons_against, hard_rule, exploration, and with a value or timing model
        the columns of `outlook`): the API builds its answer from these. `touch_moments`: the
        touchpoints' moments if already parsed (`record_touchpoints`); `policy_version` salts the
        exploration draw."""
        policy = self.applicable_policy(policy or self.policy)
        if self.featurizer.needs_as_of and any(r.get("as_of") is None for r in records):
            now = datetime.now(UTC)
            records = [r if r.get("as_of") is not None else {**r, "as_of": now} for r in records]
        X, touches = self.featurizer.transform_records(
            records, return_touchpoints=True, touch_moments=touch_moments
        )
        if explain:
            probabilities, reasons_for, reasons_against = self._predict_explained(X, n_reasons)
        else:
            probabilities = self.probabilities(X)
            reasons_for = [[] for _ in records]
            reasons_against = [[] for _ in records]
        check_probabilities(probabilities, [r.get("lead_id") for r in records])
        outlook = {}
        parts = (self.value, self.timing, self.subscores, self.confidence, self.segments)
        if any(m is not None for m in parts):
            ages = (
                lead_ages([r.get("created_at") for r in records], [r.get("as_of") for r in records])
                if self.timing is not None
                else np.full(len(records), np.nan)
            )
            more = self.outlook(X, probabilities, ages, explain)
            outlook = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in more.items()}
        fact_columns = fact_columns_of(self.metadata.get("data_config"))  # trained config's
        values = self._policy_values(outlook.get("expected_value"), policy)
        if len(records) <= FEW_RECORDS or touches is None or not touches.canonical_activities:
            # One lead (the latency case) or unusual input: the per-lead facts and decision.
            scores, grades, decisions, rules = [], [], [], []
            do_not_contact: Any = []
            for i, (record, p) in enumerate(zip(records, probabilities.tolist())):
                score = int(min(100, max(0, round(100.0 * p))))
                facts = lead_facts(record.get("attributes"), _touches_until(record), fact_columns)
                value = None if values is None else float(values[i])
                grade, decision, rule = decide(score, facts, policy, value)
                scores.append(score)
                grades.append(grade)
                decisions.append(decision)
                rules.append(rule)
                do_not_contact.append(bool(facts.get("do_not_contact")))
        else:
            scores_array = score_from_probability(probabilities)
            fact_arrays = attribute_facts([r.get("attributes") for r in records], fact_columns)
            for fact, known in _touch_facts(touches.arrays, len(records)).items():
                fact_arrays[fact] |= known
            grade_array, decision_array, rule_reasons = apply_policy(
                scores_array, fact_arrays, policy, values
            )
            scores = scores_array.tolist()
            grades, decisions = grade_array.tolist(), decision_array.tolist()
            rules = [r[0] if r else None for r in rule_reasons]
            do_not_contact = fact_arrays.get("do_not_contact")
        lead_ids = [r.get("lead_id") for r in records]
        exploration = apply_exploration(
            lead_ids, decisions, rules, do_not_contact, policy, policy_version
        )
        return {
            "lead_id": lead_ids,
            "probability": probabilities.tolist(),
            "score": scores,
            "grade": grades,
            "decision": decisions,
            "reasons_for": reasons_for,
            "reasons_against": reasons_against,
            "hard_rule": rules,
            "exploration": exploration,
            **outlook,
        }


def _calibrated(
    estimator: CalibratedModel, logit: np.ndarray, occluded_logit: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated probabilities of the leads' log-odds and of their variants' (element by
    element: one pass of the calibrator's calls for both)."""
    both = estimator.calibrate(expit(np.concatenate([logit, occluded_logit])))
    return both[: logit.shape[0]], both[logit.shape[0] :]


def confidence_axes(probabilities: np.ndarray, subscores: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a `LeadConfidence` grid is cut on: the probability, and the fit and
    engagement when the model has them (`subscores`: `FitEngagement.predict`'s columns)."""
    axes = {"probability": probabilities}
    for name in ("fit", "engagement"):
        if f"{name}_probability" in subscores:
            axes[name] = subscores[f"{name}_probability"]
    return axes


FEW_RECORDS = 8  # up to this many leads, facts and decisions lead by lead (no numpy overhead)


def check_probabilities(probabilities: np.ndarray, lead_ids: Sequence[Any]) -> None:
    """Raise ValueError naming the leads whose probability is not a number in [0, 1] (numbers
    out of range, such as 1e400 read as infinity, can make a model's sum inf - inf)."""
    p = np.asarray(probabilities, dtype=float)
    bad = np.flatnonzero(~((p >= 0.0) & (p <= 1.0)))
    if bad.size:
        named = ", ".join(f"{lead_ids[i]!r} (index {i})" for i in bad[:5].tolist())
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise ValueError(
            f"the model gave no valid probability for lead(s) {named}{more}: check their numeric "
            "attributes for values out of range (such as 1e400, read as infinity)"
        )
