"""Reasons a sales rep reads in ten seconds, checked on real models trained on demo data: one
reason per fact about the lead (never the same fact for and against), blanks only when they
weigh, no impossible ages. The texts checked are the ones the API returns."""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import numpy as np

from features.model.reasons import MISSING_EFFECT_POINTS
from tests.model.conftest import lead_records

DEMO_COUNT = re.compile(r"^(\d+|No) demo requests?\b")  # the count's words (any window)


def _reasons(scorer, records, n_reasons: int = 3):
    scored = scorer.score_records(records, n_reasons=n_reasons)
    return [(s["reasons_for"], s["reasons_against"]) for s in scored]


def _with_demo_request(records, hours_before: float = 1.0):
    changed = copy.deepcopy(records)
    for record in changed:
        record["touchpoints"].append(
            {"occurred_at": record["as_of"] - timedelta(hours=hours_before), "channel": "direct",
             "activity": "demo_request", "campaign": None, "value": None}
        )  # fmt: skip
    return changed


def test_each_fact_is_one_reason_never_for_and_against(demo_model):
    """The demo leads have a job title and a CRM seniority: 'Seniority: Director' came twice
    (from the CRM column and from the title), and windows of one count came for and against."""
    records = lead_records(demo_model, 300)
    records += _with_demo_request(records[:150])
    seen_title_words = 0
    # ten a side rather than the API's three: whatever the cut, no fact is said twice
    for reasons_for, reasons_against in _reasons(demo_model.scorer, records, n_reasons=10):
        both = reasons_for + reasons_against
        facts = [r["feature"] for r in both]
        texts = [r["text"] for r in both]
        assert sum(t.startswith("Seniority:") for t in texts) <= 1, both
        assert sum(bool(DEMO_COUNT.match(t)) for t in texts) <= 1, both
        assert len(set(texts)) == len(texts), both
        assert len(set(facts)) == len(facts), both
        seen_title_words += any(t.startswith("Job title:") for t in texts)
        for reason in both:
            assert set(reason) == {"feature", "text", "effect"}
            assert not re.search(r"_(7d|30d|90d|all)$", reason["feature"]), reason
    assert seen_title_words > 30  # the title is said, once, with what is read from it


def test_a_new_demo_request_is_worded_once_for_its_window(demo_model):
    records = [
        r for r in lead_records(demo_model, 300)
        if not any(t["activity"] == "demo_request" for t in r["touchpoints"])
    ]  # fmt: skip
    said = []
    for reasons_for, reasons_against in _reasons(demo_model.scorer, _with_demo_request(records)):
        said += [r["text"] for r in reasons_for + reasons_against if DEMO_COUNT.match(r["text"])]
    assert said and set(said) == {"1 demo request in the last 7 days"}


def test_a_reason_effect_is_the_sum_of_its_columns(demo_model):
    scorer = demo_model.scorer
    records = _with_demo_request(lead_records(demo_model, 40))
    X = scorer.featurizer.transform_records(records)
    _, effects = scorer._effects(X)
    facts = {f.name: f for f in scorer.featurizer.facts_}
    checked = 0
    for i, (reasons_for, reasons_against) in enumerate(_reasons(scorer, records)):
        for reason in reasons_for + reasons_against:
            columns = list(facts[reason["feature"]].columns)
            assert reason["effect"] == round(float(np.nansum(effects[i, columns])), 1)
            checked += len(columns) > 1
    assert checked > 20


def test_a_blank_field_is_a_reason_only_when_it_weighs(demo_model):
    """'Job title: not given' is no reason unless an empty field costs or adds many points."""
    records = lead_records(demo_model, 400)
    blanks = [
        r
        for pair in _reasons(demo_model.scorer, records)
        for side in pair
        for r in side
        if r["text"].endswith("not given")
    ]
    assert all(abs(r["effect"]) >= MISSING_EFFECT_POINTS for r in blanks), blanks
    emptied = copy.deepcopy(records[:100])
    for record in emptied:
        record["attributes"]["job_title"] = None
        record["attributes"]["seniority"] = None
    said = [
        r for pair in _reasons(demo_model.scorer, emptied) for side in pair for r in side
        if r["text"] == "Job title: not given"
    ]  # fmt: skip
    assert all(abs(r["effect"]) >= MISSING_EFFECT_POINTS for r in said)


def test_a_lead_scored_before_its_creation_never_reads_a_negative_age(demo_model):
    records = lead_records(demo_model, 30)
    for record in records:
        record["as_of"] = record["created_at"] - timedelta(days=1461)
        record["touchpoints"] = []
    reasons = [r for pair in _reasons(demo_model.scorer, records) for side in pair for r in side]
    assert reasons and not [r for r in reasons if re.search(r"(^|\s)-\d", r["text"])]
    ages = {r["text"] for r in reasons if r["feature"] == "days_since_created"}
    assert ages <= {"Created after the moment it was scored (check its creation date)"}
