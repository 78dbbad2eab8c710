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

import math
import re
from functools import lru_cache
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.contract import lookup_activity

DECISIONS = ("sales", "nurture", "disqualify")
GRADES = ("A", "B", "C", "D")
FACTS = ("do_not_contact", "demo_request")
CHOOSE_BY = ("value", "capacity", "precision", "recall")
THRESHOLDS = np.arange(101)

Decision = Literal["sales", "nurture", "disqualify"]


class PolicyError(ValueError):
    """A policy or threshold request that cannot be satisfied; the message says what to change."""


# ---------------------------------------------------------------------------------------------
# The policy


class GradeBands(BaseModel):
    """Minimum score (0-100) for each grade; a score below `C` is grade D."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    A: float = Field(60.0, ge=0, le=100, description="Lowest score graded A.")
    B: float = Field(35.0, ge=0, le=100, description="Lowest score graded B.")
    C: float = Field(15.0, ge=0, le=100, description="Lowest score graded C; below is D.")

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

    sales_threshold: float = Field(50.0, ge=0, le=100, description="Scores at or above go to sales.")
    nurture_threshold: float = Field(
        20.0, ge=0, le=100, description="Scores at or above (and below the sales threshold) are nurtured."
    )
    grades: GradeBands = Field(default_factory=GradeBands)
    rules: tuple[HardRule, ...] = Field(
        default=DEFAULT_RULES,
        description="Applied after the model, in order; the first rule whose fact is true decides.",
    )

    @model_validator(mode="after")
    def _nurture_below_sales(self) -> Policy:
        if self.nurture_threshold > self.sales_threshold:
            raise ValueError(
                f"nurture_threshold ({self.nurture_threshold}) must not be above sales_threshold "
                f"({self.sales_threshold}): lower nurture_threshold or raise sales_threshold"
            )
        return self


def score_from_probability(probabilities: Any) -> np.ndarray:
    """The 0-100 integer score of calibrated probabilities: round(100 * p), halves to even."""
    p = np.asarray(probabilities, dtype=float)
    return np.clip(np.rint(100.0 * p), 0, 100).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Facts

DO_NOT_CONTACT_ATTRIBUTES = frozenset(
    {
        "donotcontact", "donotemail", "donotcall", "optout", "optedout", "emailoptout",
        "emailoptedout", "hasoptedoutofemail", "unsubscribed", "unsubscribe", "nocontact",
    }
)
DEMO_REQUEST_ATTRIBUTES = frozenset({"demorequest", "demorequested", "requesteddemo"})
_TRUE_TEXT = frozenset({"1", "true", "t", "yes", "y", "on"})
_KEY_JUNK = re.compile(r"[^a-z0-9]")


@lru_cache(maxsize=4096)
def _key_text(name: str) -> str:
    return _KEY_JUNK.sub("", name.lower())


def _key(name: Any) -> str:
    # Cached: the same attribute names come with every lead (15,000 in a 1,000-lead request).
    return _key_text(name if name.__class__ is str else str(name))


def _truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return not math.isnan(value) and value != 0
    return str(value).strip().lower() in _TRUE_TEXT


@lru_cache(maxsize=4096)
def _activity_text(value: str) -> str:
    # The contract's synonyms: 'Email Unsubscribe' -> unsubscribe, 'Request a Demo' -> demo_request.
    return lookup_activity(value) or _KEY_JUNK.sub("_", value.strip().lower())


def _activity(value: Any) -> str:
    return _activity_text(value if isinstance(value, str) else str(value))


def lead_facts(
    attributes: Mapping[str, Any] | None, touchpoints: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, bool]:
    """Facts of one lead from its attributes and touchpoints (already cut at `as_of`)."""
    dnc = demo = False
    for name, value in (attributes or {}).items():
        key = _key(name)
        if key in DO_NOT_CONTACT_ATTRIBUTES and _truthy(value):
            dnc = True
        elif key in DEMO_REQUEST_ATTRIBUTES and _truthy(value):
            demo = True
    for touch in touchpoints or ():
        activity = _activity(touch.get("activity", ""))
        if activity == "unsubscribe":
            dnc = True
        elif activity == "demo_request":
            demo = True
    return {"do_not_contact": dnc, "demo_request": demo}


def attribute_facts(attributes: Sequence[Mapping[str, Any] | None]) -> dict[str, np.ndarray]:
    """The attribute part of `lead_facts` for many leads, as boolean arrays (one per fact).

    Each distinct attribute name is keyed once, and only the values of the few names that are
    facts are read: a 1,000-lead request carries ~15,000 attribute values.
    """
    n = len(attributes)
    facts = {name: np.zeros(n, dtype=bool) for name in FACTS}
    names: set[Any] = set()
    for lead in attributes:
        if lead:
            names.update(lead)
    for name in names:
        target = _fact_of_attribute(name)
        if target is not None:
            facts[target] |= np.fromiter(
                (_truthy(lead.get(name)) if lead else False for lead in attributes),
                dtype=bool,
                count=n,
            )
    return facts


def _fact_of_attribute(name: Any) -> str | None:
    """The fact an attribute column states ('do_not_contact', 'demo_request'), if any."""
    key = _key(name)
    if key in DO_NOT_CONTACT_ATTRIBUTES:
        return "do_not_contact"
    return "demo_request" if key in DEMO_REQUEST_ATTRIBUTES else None


def frame_facts(leads: pd.DataFrame, touchpoints: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Facts of many leads as boolean arrays aligned with `leads` rows.

    Touchpoints after a lead's `as_of` (when `leads` has that column) are ignored, like features.
    """
    n = len(leads)
    facts = {name: np.zeros(n, dtype=bool) for name in FACTS}
    for column in leads.columns:
        target = _fact_of_attribute(column)
        if target is not None:
            facts[target] |= np.fromiter((_truthy(v) for v in leads[column]), dtype=bool, count=n)
    if touchpoints is not None and len(touchpoints) and n:
        tp = touchpoints[["lead_id", "activity"]].copy()
        if "as_of" in leads.columns and "occurred_at" in touchpoints.columns:
            cut = leads[["lead_id", "as_of"]].drop_duplicates("lead_id")
            tp = tp.assign(occurred_at=touchpoints["occurred_at"]).merge(cut, on="lead_id")
            tp = tp[tp["occurred_at"] <= tp["as_of"]]
        codes, uniques = pd.factorize(tp["activity"].astype(str))
        activity = np.array([_activity(u) for u in uniques], dtype=object)[codes] if len(codes) else np.array([])
        lead_ids = leads["lead_id"].astype(str)
        for fact, name in (("do_not_contact", "unsubscribe"), ("demo_request", "demo_request")):
            ids = set(tp.loc[activity == name, "lead_id"].astype(str))
            if ids:
                facts[fact] |= lead_ids.isin(ids).to_numpy()
    return facts


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


def apply_policy(
    scores: Any, facts: Any, policy: Policy
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Grades, decisions and hard-rule reasons for 0-100 scores under `policy`.

    `facts` is None, a dict of fact name -> booleans (one per lead), or a list of per-lead dicts
    (see `lead_facts`). Returns `grades` and `decisions` as object arrays and, per lead, a list
    of plain-word reasons from the hard rule that decided (empty when no rule applied).
    """
    s = np.asarray(scores, dtype=float).reshape(-1)
    n = s.shape[0]
    if n == 1 and (facts is None or not isinstance(facts, Mapping)):
        one = None if facts is None else next(iter(facts))
        grade, decision, reason = decide(float(s[0]), one, policy)
        return (
            np.array([grade], dtype=object),
            np.array([decision], dtype=object),
            [[reason] if reason else []],
        )
    bands = policy.grades
    grades = np.select([s >= bands.A, s >= bands.B, s >= bands.C], ["A", "B", "C"], "D").astype(object)
    model_decisions = np.select(
        [s >= policy.sales_threshold, s >= policy.nurture_threshold], ["sales", "nurture"], "disqualify"
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


def decide(score: float, facts: Mapping[str, bool] | None, policy: Policy) -> tuple[str, str, str | None]:
    """One lead in pure Python (the API's hot path): (grade, decision, hard-rule reason or None)."""
    bands = policy.grades
    grade = "A" if score >= bands.A else "B" if score >= bands.B else "C" if score >= bands.C else "D"
    model = (
        "sales" if score >= policy.sales_threshold
        else "nurture" if score >= policy.nurture_threshold
        else "disqualify"
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


# ---------------------------------------------------------------------------------------------
# Threshold tables and choosing a threshold

TABLE_COLUMNS = (
    "threshold", "share_to_sales", "leads_per_week", "precision", "recall", "expected_wins", "lift",
)


def threshold_table(probabilities: Any, labels: Any = None, weeks: float = 1.0) -> pd.DataFrame:
    """What each integer score threshold 0-100 would send to sales, per week of leads.

    `probabilities`: calibrated win probabilities; `labels`: 1 won / 0 lost (None when outcomes
    are unknown: precision, recall and wins are then expected values from the probabilities);
    `weeks`: how many weeks of leads the sample covers (> 0).
    precision/lift are NaN where no lead is sent; recall is NaN when there is no win at all.
    """
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    if not np.isfinite(weeks) or weeks <= 0:
        raise PolicyError(f"weeks must be a positive number of weeks of leads, got {weeks}")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise PolicyError("probabilities must be numbers between 0 and 1 (found values outside or NaN)")
    if labels is None:
        wins_weight = p
    else:
        y = np.asarray(labels, dtype=float).reshape(-1)
        if y.shape != p.shape:
            raise PolicyError(f"got {y.size} labels for {p.size} probabilities: give one label per lead")
        if not np.isin(y, (0.0, 1.0)).all():
            raise PolicyError("labels must be 1 (won) or 0 (lost)")
        wins_weight = y
    scores = score_from_probability(p)
    per_score = np.bincount(scores, minlength=101).astype(float)
    wins_per_score = np.bincount(scores, weights=wins_weight, minlength=101)
    sent = np.cumsum(per_score[::-1])[::-1]  # leads with score >= threshold
    wins = np.cumsum(wins_per_score[::-1])[::-1]
    total, total_wins = float(p.size), float(wins_weight.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(sent > 0, wins / sent, np.nan)
        recall = np.full(101, np.nan) if total_wins == 0 else wins / total_wins
        base_rate = total_wins / total if total else np.nan
        lift = precision / base_rate if base_rate and base_rate > 0 else np.full(101, np.nan)
        share = sent / total if total else np.full(101, np.nan)
    return pd.DataFrame(
        {
            "threshold": THRESHOLDS.copy(),
            "share_to_sales": share,
            "leads_per_week": sent / weeks,
            "precision": precision,
            "recall": recall,
            "expected_wins": wins / weeks,
            "lift": lift,
        }
    )


def net_value_per_week(table: pd.DataFrame, value: float, cost_per_lead: float = 1.0) -> np.ndarray:
    """Expected wins x value of a win - leads sent x cost of working a lead, per week."""
    return table["expected_wins"].to_numpy() * value - table["leads_per_week"].to_numpy() * cost_per_lead


def choose_threshold(
    table: pd.DataFrame, by: str, value: float, cost_per_lead: float = 1.0
) -> pd.Series:
    """The row of `table` (from `threshold_table`) chosen by one of marketing ops' criteria.

    - ``value``: `value` is what a win is worth and `cost_per_lead` what sales spends working one
      lead (same currency; default 1, so `value` alone is the ratio): the threshold with the most
      net value per week (ties: the higher threshold, fewer leads).
    - ``capacity``: `value` leads a week sales can take: the threshold whose leads a week is
      closest to it (ties: the higher threshold, never more work than needed).
    - ``precision``: target precision 0-1: the lowest threshold (most leads) that reaches it.
    - ``recall``: target recall 0-1: the highest threshold (fewest leads) that still reaches it.
    """
    if by not in CHOOSE_BY:
        raise PolicyError(f"unknown way to choose a threshold {by!r}; use one of: {', '.join(CHOOSE_BY)}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise PolicyError(f"value for choosing by {by} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise PolicyError(f"value for choosing by {by} must be a finite number, got {value}")
    thresholds = table["threshold"].to_numpy()
    if by == "value":
        if value <= 0 or cost_per_lead < 0:
            raise PolicyError(
                "choosing by value needs the value of a win > 0 and a cost per lead >= 0, "
                f"got value={value}, cost_per_lead={cost_per_lead}"
            )
        net = net_value_per_week(table, value, cost_per_lead)
        best = np.flatnonzero(np.isclose(net, net.max(), rtol=1e-12, atol=1e-12))
        return table.iloc[int(best[-1])]
    if by == "capacity":
        if value < 0:
            raise PolicyError(f"sales capacity must be >= 0 leads a week, got {value}")
        gap = np.abs(table["leads_per_week"].to_numpy() - value)
        best = np.flatnonzero(np.isclose(gap, gap.min(), rtol=1e-12, atol=1e-12))
        return table.iloc[int(best[-1])]
    if not 0 < value <= 1:
        raise PolicyError(f"target {by} must be between 0 and 1 (e.g. 0.4 for 40%), got {value}")
    column = table[by].to_numpy()
    ok = np.flatnonzero(column >= value - 1e-12)
    if ok.size == 0:
        if np.isnan(column).all():
            raise PolicyError(f"no {by} can be computed: the sample has no wins")
        best = int(np.nanargmax(column))
        raise PolicyError(
            f"no threshold reaches {by} {value:.3f}; the highest is {column[best]:.3f} at threshold "
            f"{thresholds[best]}: lower the target"
        )
    return table.iloc[int(ok[0] if by == "precision" else ok[-1])]


# ---------------------------------------------------------------------------------------------
# Drift and outcomes


def population_stability_index(
    reference: Any, recent: Any, bins: int = 10
) -> tuple[float, pd.DataFrame]:
    """PSI of recent probabilities against a reference (the training holdout).

    Bins are the reference's quantiles (equal-count bins; merged where values repeat); empty bins
    get a share of 1e-4 so the log is finite. Returns (psi, DataFrame[bin_low, bin_high,
    reference_share, recent_share, psi]). Rule of thumb: < 0.1 stable, 0.1-0.25 watch, > 0.25 shift.
    """
    ref = np.asarray(reference, dtype=float).reshape(-1)
    new = np.asarray(recent, dtype=float).reshape(-1)
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if ref.size == 0 or new.size == 0:
        raise PolicyError(
            f"population stability needs scores on both sides (reference {ref.size}, recent {new.size})"
        )
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    inner = edges[1:-1]
    ref_counts = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=inner.size + 1)
    new_counts = np.bincount(np.searchsorted(inner, new, side="right"), minlength=inner.size + 1)
    ref_share = np.maximum(ref_counts / ref.size, 1e-4)
    new_share = np.maximum(new_counts / new.size, 1e-4)
    terms = (new_share - ref_share) * np.log(new_share / ref_share)
    low = np.concatenate([[0.0], inner])
    high = np.concatenate([inner, [1.0]])
    frame = pd.DataFrame(
        {
            "bin_low": low,
            "bin_high": high,
            "reference_share": ref_counts / ref.size,
            "recent_share": new_counts / new.size,
            "psi": terms,
        }
    )
    return float(terms.sum()), frame


def win_rate_by_grade(grades: Any, won: Any) -> pd.DataFrame:
    """Leads with a known outcome, wins and win rate per grade A-D (NaN where no outcome yet)."""
    g = np.asarray(grades, dtype=object).reshape(-1)
    w = np.asarray(won, dtype=float).reshape(-1)
    if g.shape != w.shape:
        raise PolicyError(f"got {g.size} grades and {w.size} outcomes: give one outcome per lead")
    rows = []
    for grade in GRADES:
        mask = g == grade
        leads = int(mask.sum())
        wins = int(w[mask].sum())
        rows.append({"grade": grade, "leads": leads, "wins": wins,
                     "win_rate": wins / leads if leads else float("nan")})
    return pd.DataFrame(rows)
