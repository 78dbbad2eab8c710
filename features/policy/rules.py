"""Qualification policy maths shared by training and serving.

A *policy* turns a lead's 0-100 score into a grade (A-D) and a hand-off decision (`sales`,
`nurture`, `disqualify`), then applies marketing ops' hard rules (a lead that asked not to be
contacted never goes to sales; a demo request always does). Everything here is a pure function of
arrays or frames: no I/O, no global state, so the same code runs in the API, in batch scoring, in
training (the logged threshold table) and in Spark UDFs.

Facts for the hard rules
------------------------
Rules look at a small dict of booleans per lead, the *facts* (`FACTS`):

- ``do_not_contact``: the lead asked not to be contacted: a truthy attribute such as
  ``do_not_contact``, ``Do Not Email``, ``DoNotCall``, ``HasOptedOutOfEmail``, ``opt_out``,
  ``unsubscribed`` (see `DO_NOT_CONTACT_ATTRIBUTES`), or an ``unsubscribe`` touchpoint.
- ``demo_request``: the lead has a ``demo_request`` touchpoint, or a truthy attribute such as
  ``demo_requested`` (see `DEMO_REQUEST_ATTRIBUTES`).

Touchpoint activities are recognised under the contract's spellings too ('Email Unsubscribe',
'Request a Demo': `features.contract.lookup_activity`).

`lead_facts(attributes, touchpoints)` builds them for one lead (API), `frame_facts(leads,
touchpoints)` for a batch (columnar dict of boolean arrays), `attribute_facts(attributes)` the
attribute part for many API leads (the scorer adds the touchpoint part from its feature arrays).
`apply_policy` accepts either shape.

Threshold tables
----------------
`threshold_table(probabilities, labels, weeks)` gives, for every integer score threshold 0-100,
what sending every lead scoring at or above it to sales would do, per week of leads:
``share_to_sales``, ``leads_per_week``, ``precision``, ``recall``, ``expected_wins`` (wins per
week among the leads sent) and ``lift`` (precision over the win rate when sending everyone).
With labels (the holdout) these are the observed counts; without labels (the recent score log,
outcomes not known yet) they are expectations from the calibrated probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.policy.facts import FACTS

DECISIONS = ("sales", "nurture", "disqualify")

# Exploration costs sales time on leads the model rates low: a fifth is plenty to measure with.
MAX_EXPLORATION_RATE = 0.2


GRADES = ("A", "B", "C", "D")


Decision = Literal["sales", "nurture", "disqualify"]

RankBy = Literal["probability", "expected_value"]
RANK_BY: tuple[str, ...] = ("probability", "expected_value")


class PolicyError(ValueError):
    """A policy or threshold request that cannot be satisfied; the message says what to change."""


# ---------------------------------------------------------------------------------------------
# The policy


class GradeShares(BaseModel):
    """Share of leads in each grade when grades go by share: A the top `A`, B the next `B`,
    C the next `C`; D the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    A: float = Field(0.25, gt=0, le=1, description="Share of leads graded A (the top ones).")
    B: float = Field(0.25, gt=0, le=1, description="Share of leads graded B (the next ones).")
    C: float = Field(0.25, gt=0, le=1, description="Share of leads graded C; D is the rest.")

    @model_validator(mode="after")
    def _at_most_everyone(self) -> GradeShares:
        if self.A + self.B + self.C > 1 + 1e-9:
            raise ValueError(
                f"grade shares add up to more than every lead (A={self.A}, B={self.B}, "
                f"C={self.C}): make A + B + C at most 1 (D gets the rest)"
            )
        return self


GradeBasis = Literal["score", "share"]


class GradeBands(BaseModel):
    """Minimum score (0-100) for each grade; a score below `C` is grade D.

    `by` says where the minimum scores come from: ``score`` (set by hand: a score of 60 means a
    60% win chance, whatever share of leads that is) or ``share`` (the scores that give each grade
    its `shares` of leads, computed on a holdout's scores: `grade_bands_by_share`; `basis` says
    which). Scoring only reads A, B and C, so both cost the same.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: GradeBasis = Field(
        "score",
        description="score: A, B and C are set by hand; share: they give each grade its share "
        "of leads (`shares`) on the model's holdout.",
    )
    A: float = Field(60.0, ge=0, le=100, description="Lowest score graded A.")
    B: float = Field(35.0, ge=0, le=100, description="Lowest score graded B.")
    C: float = Field(15.0, ge=0, le=100, description="Lowest score graded C; below is D.")
    shares: GradeShares | None = Field(
        None, description="With by=share: the share of leads in A, B and C (none: 25% each)."
    )
    basis: str | None = Field(
        None, max_length=300, description="With by=share: the scores the bands were computed on."
    )

    @model_validator(mode="after")
    def _ordered(self) -> GradeBands:
        if not (self.A >= self.B >= self.C):
            raise ValueError(
                f"grade bands must satisfy A >= B >= C (minimum scores), got A={self.A}, "
                f"B={self.B}, C={self.C}: lower the higher grade or raise the lower one"
            )
        return self


class HardRule(BaseModel):
    """When a fact is true for a lead, force its decision, whatever the model says."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: str = Field(description=f"One of {', '.join(FACTS)}.")
    decision: Decision
    reason: str = Field(min_length=1, max_length=200, description="Plain words shown to sales.")

    @field_validator("fact")
    @classmethod
    def _known_fact(cls, fact: str) -> str:
        if fact not in FACTS:
            raise ValueError(f"unknown fact {fact!r}; rules can use: {', '.join(FACTS)}")
        return fact


DEFAULT_RULES: tuple[HardRule, ...] = (
    HardRule(
        fact="do_not_contact",
        decision="disqualify",
        reason="asked not to be contacted (do-not-contact flag or unsubscribe)",
    ),
    HardRule(fact="demo_request", decision="sales", reason="requested a demo"),
)


class Policy(BaseModel):
    """Grades and hand-off rule on the 0-100 score, then hard rules (first matching rule wins).

    score >= sales_threshold -> sales; nurture_threshold <= score < sales_threshold -> nurture;
    below -> disqualify.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sales_threshold: float = Field(
        50.0, ge=0, le=100, description="Scores at or above go to sales."
    )
    nurture_threshold: float = Field(
        20.0,
        ge=0,
        le=100,
        description="Scores at or above (and below the sales threshold) are nurtured.",
    )
    grades: GradeBands = Field(default_factory=GradeBands)
    rules: tuple[HardRule, ...] = Field(
        default=DEFAULT_RULES,
        description="Applied after the model, in order; the first rule whose fact is true decides.",
    )
    weekly_capacity: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="Leads a week sales can take: choosing a threshold by value never sends more.",
    )
    currency: str = Field(
        "EUR",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code of the money amounts marketing ops give (value of a win, "
        "cost of a lead), e.g. EUR, USD, GBP.",
    )
    exploration_rate: float = Field(
        0.0,
        ge=0,
        le=MAX_EXPLORATION_RATE,
        allow_inf_nan=False,
        description="Share of the leads the threshold holds back (nurture, no hard rule) sent "
        "to sales anyway, to measure how they turn out (0: off; at most "
        f"{MAX_EXPLORATION_RATE:g}). Drawn from the lead id and the policy version: the same "
        "lead gets the same draw.",
    )
    trend_points: float = Field(
        5.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Score points a lead must gain (or lose) since its previous score for its "
        "trend to be 'improving' ('declining'); smaller changes are 'steady'.",
    )

    rank_by: RankBy = Field(
        "probability",
        description="What fills sales' capacity: probability (scores at or above "
        "sales_threshold go to sales) or expected_value (leads whose expected value, "
        "probability x expected deal amount, is at least value_threshold go to sales; needs a "
        "model with a deal value model). Grades and nurture stay on the score; hard rules win.",
    )
    value_threshold: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="With rank_by=expected_value: the lowest expected value (in `currency`) "
        "sent to sales; policy simulation chooses it so the weekly capacity is filled by the "
        "leads of highest expected value.",
    )

    @model_validator(mode="after")
    def _nurture_below_sales(self) -> Policy:
        if self.nurture_threshold > self.sales_threshold:
            raise ValueError(
                f"nurture_threshold ({self.nurture_threshold}) must not be above sales_threshold "
                f"({self.sales_threshold}): lower nurture_threshold or raise sales_threshold"
            )
        if self.rank_by == "expected_value" and self.value_threshold is None:
            raise ValueError(
                "rank_by expected_value needs value_threshold, the lowest expected value (in "
                f"{self.currency}) that goes to sales: give it, or let the policy simulation "
                "choose it for the weekly capacity (simulate with rank_by=expected_value)"
            )
        return self


def grade_bands_by_share(
    probabilities: Any, shares: GradeShares | None = None, basis: str | None = None
) -> GradeBands:
    """Grade bands (by=share) that give each grade its share of these leads: A the lowest score
    with about `shares.A` of the leads at or above it, B about A + B, C about A + B + C.

    Scores are whole numbers and tie, so each cut-off is the one whose share is closest to its
    target (ties: the higher score, the smaller grade). The bands are fixed scores from then on:
    the shares hold for leads like these (the holdout at training), not for every later week.
    """
    shares = shares or GradeShares()
    scores = score_from_probability(probabilities).reshape(-1)
    if scores.size == 0:
        raise PolicyError("grade bands by share need the scores of some leads (none given)")
    counts = np.bincount(scores, minlength=101).astype(float)
    at_or_above = np.cumsum(counts[::-1])[::-1] / scores.size  # share with score >= t, t = 0..100
    cuts = []
    highest = 100
    for target in np.cumsum([shares.A, shares.B, shares.C]):
        gap = np.abs(at_or_above[: highest + 1] - target)
        best = int(np.flatnonzero(np.isclose(gap, gap.min(), rtol=0, atol=1e-12))[-1])
        cuts.append(float(best))
        highest = best
    return GradeBands(by="share", A=cuts[0], B=cuts[1], C=cuts[2], shares=shares, basis=basis)


def score_from_probability(probabilities: Any) -> np.ndarray:
    """The 0-100 integer score of calibrated probabilities: round(100 * p), halves to even."""
    p = np.asarray(probabilities, dtype=float)
    return np.clip(np.rint(100.0 * p), 0, 100).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Applying a policy


def _facts_columns(facts: Any, n: int) -> dict[str, np.ndarray]:
    if facts is None:
        return {}
    if isinstance(facts, Mapping):
        columns = {}
        for name in FACTS:
            if name in facts:
                column = np.asarray(facts[name], dtype=bool).reshape(-1)
                if column.shape[0] != n:
                    raise PolicyError(
                        f"facts[{name!r}] has {column.shape[0]} values for {n} scores: "
                        "give one value per lead"
                    )
                columns[name] = column
        return columns
    rows = list(facts)
    if len(rows) != n:
        raise PolicyError(f"got facts for {len(rows)} leads and {n} scores: give one per lead")
    return {
        name: np.fromiter((bool(r.get(name, False)) for r in rows), dtype=bool, count=n)
        for name in FACTS
    }


class ValueNeeded(PolicyError):
    """The policy ranks by expected value and the leads have none (no deal value model)."""


def value_needed_message(model: str = "this model") -> str:
    """Why leads cannot be ranked by expected value under `model`, and the fix."""
    return (
        "ranking leads by expected value (rank_by: expected_value) needs each lead's expected "
        f"value, and {model} has no deal value model: rank by probability (PUT /v1/policy or "
        "`leadscore policy set --rank-by probability`), or use a model trained with deal "
        "amounts (an outcomes file with an amount column)"
    )


def _expected_values(expected_values: Any, policy: Policy, n: int) -> np.ndarray | None:
    """The leads' expected values as floats when the policy ranks by them (else None)."""
    if policy.rank_by != "expected_value":
        return None
    if expected_values is None:
        raise ValueNeeded(value_needed_message())
    values = np.asarray(expected_values, dtype=float).reshape(-1)
    if values.shape[0] != n:
        raise PolicyError(
            f"got {values.shape[0]} expected values for {n} scores: give one per lead"
        )
    return values


def apply_policy(
    scores: Any, facts: Any, policy: Policy, expected_values: Any = None
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Grades, decisions and hard-rule reasons for 0-100 scores under `policy`.

    `facts` is None, a dict of fact name -> booleans (one per lead), or a list of per-lead dicts
    (see `lead_facts`). `expected_values` (probability x expected deal amount, one per lead) is
    needed when the policy ranks by expected value (`ValueNeeded` otherwise): a lead goes to
    sales when its expected value is at least `value_threshold` (NaN: never), else it is
    nurtured or disqualified by its score as usual. Returns `grades` and `decisions` as object
    arrays and, per lead, a list of plain-word reasons from the hard rule that decided (empty
    when no rule applied).
    """
    s = np.asarray(scores, dtype=float).reshape(-1)
    n = s.shape[0]
    values = _expected_values(expected_values, policy, n)
    if n == 1 and (facts is None or not isinstance(facts, Mapping)):
        one = None if facts is None else next(iter(facts))
        value = None if values is None else float(values[0])
        grade, decision, reason = decide(float(s[0]), one, policy, value)
        return (
            np.array([grade], dtype=object),
            np.array([decision], dtype=object),
            [[reason] if reason else []],
        )
    bands = policy.grades
    grades = np.select([s >= bands.A, s >= bands.B, s >= bands.C], ["A", "B", "C"], "D").astype(
        object
    )
    to_sales = (
        s >= policy.sales_threshold
        if values is None
        else values >= float(policy.value_threshold or 0.0)  # NaN >= x is False
    )
    model_decisions = np.select(
        [to_sales, s >= policy.nurture_threshold],
        ["sales", "nurture"],
        "disqualify",
    ).astype(object)
    decisions = model_decisions.copy()
    reasons: list[list[str]] = [[] for _ in range(n)]
    columns = _facts_columns(facts, n)
    if not columns or not policy.rules:
        return grades, decisions, reasons
    decided = np.zeros(n, dtype=bool)
    for rule in policy.rules:
        column = columns.get(rule.fact)
        if column is None:
            continue
        hit = column & ~decided
        if not hit.any():
            continue
        decided |= hit
        decisions[hit] = rule.decision
        for i in np.flatnonzero(hit):
            reasons[i].append(_rule_reason(rule, model_decisions[i]))
    return grades, decisions, reasons


def decide(
    score: float,
    facts: Mapping[str, bool] | None,
    policy: Policy,
    expected_value: float | None = None,
) -> tuple[str, str, str | None]:
    """One lead in pure Python (the API's hot path): (grade, decision, hard-rule reason or None).
    `expected_value` is needed when the policy ranks by it (see `apply_policy`)."""
    bands = policy.grades
    grade = (
        "A" if score >= bands.A else "B" if score >= bands.B else "C" if score >= bands.C else "D"
    )
    if policy.rank_by == "expected_value":
        if expected_value is None:
            raise ValueNeeded(value_needed_message())
        to_sales = expected_value >= float(policy.value_threshold or 0.0)  # NaN: False
    else:
        to_sales = score >= policy.sales_threshold
    model = (
        "sales" if to_sales else "nurture" if score >= policy.nurture_threshold else "disqualify"
    )
    if facts:
        for rule in policy.rules:
            if facts.get(rule.fact):
                return grade, rule.decision, _rule_reason(rule, model)
    return grade, model, None


def _rule_reason(rule: HardRule, model_decision: str) -> str:
    if rule.decision == model_decision:
        return f"Hard rule: {rule.reason} -> {rule.decision}"
    return f"Hard rule: {rule.reason} -> {rule.decision} (the score alone says {model_decision})"
