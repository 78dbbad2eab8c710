"""Model behaviour (Made With ML style): what must hold for any model we ship, checked on real
models trained on demo data. Each test states an invariant a sales rep or CRM relies on."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from features.data.values import NO_WORDS, YES_WORDS
from features.policy.rules import Policy
from tests.model.conftest import lead_records

EVERYONE_TO_SALES = Policy(sales_threshold=0, nurture_threshold=0)
DO_NOT_CONTACT_FIELDS = ("Do Not Email", "do_not_contact", "DoNotCall", "HasOptedOutOfEmail")


def _yes_spellings() -> list[object]:
    words = sorted(YES_WORDS)
    return [*words, *(w.upper() for w in words), *(f" {w.title()} " for w in words), True, 1, 1.0]


def _scores(scorer, records, policy=None):
    return scorer.score_records(records, policy=policy)


@pytest.mark.xfail(
    strict=True,
    reason="known model defect, kept visible: without monotone constraints a demo request can "
    "lower the probability (the first 400 of 2,000 demo leads, scored at day 7, a demo request "
    "added 1 h before: gradient boosting lowered 109 of 353 first requests and 18 of 47 "
    "repeated ones, the spline logistic 0 of 353 and 47 of 47). The hand-off is unaffected "
    "(the demo-request hard rule sends the lead to sales: next test). Fixing it changes the "
    "model search, which the model-quality work owns; strict, so the fix turns this red.",
)
def test_a_demo_request_never_lowers_a_score(demo_model):
    records = lead_records(demo_model, 60)
    before = _scores(demo_model.scorer, records)
    with_demo = copy.deepcopy(records)
    for record in with_demo:
        # on the channel the lead last came through: the request is the only thing that changes
        touches = sorted(record["touchpoints"], key=lambda t: t["occurred_at"])
        record["touchpoints"].append(
            {
                "occurred_at": record["as_of"] - timedelta(hours=1),
                "channel": touches[-1]["channel"] if touches else "direct",
                "activity": "demo_request",
                "campaign": None,
                "value": None,
            }
        )
    after = _scores(demo_model.scorer, with_demo)
    lowered = [
        (a["lead_id"], a["probability"], b["probability"])
        for a, b in zip(before, after, strict=True)
        if b["probability"] < a["probability"] - 1e-12
    ]
    assert lowered == []
    assert sum(b["probability"] > a["probability"] for a, b in zip(before, after, strict=True)) > 0


def test_a_demo_request_sends_the_lead_to_sales_whatever_its_score(demo_model):
    """Unless the lead asked not to be contacted (that rule comes first)."""
    records = [
        r
        for r in lead_records(demo_model, 60)
        if not r["attributes"].get("do_not_email")
        and not any(t["activity"] == "unsubscribe" for t in r["touchpoints"])
    ]
    assert len(records) > 30
    for record in records:
        record["touchpoints"].append(
            {
                "occurred_at": record["as_of"] - timedelta(hours=1),
                "channel": "direct",
                "activity": "demo_request",
                "campaign": None,
                "value": None,
            }
        )
    strict = Policy(sales_threshold=100, nurture_threshold=50)  # no score reaches sales alone
    assert {s["decision"] for s in _scores(demo_model.scorer, records, strict)} == {"sales"}


def test_an_unknown_extra_attribute_does_not_change_the_score(demo_model):
    records = lead_records(demo_model, 40)
    extra = copy.deepcopy(records)
    for record in extra:
        record["attributes"]["Favourite Colour"] = "teal"
    before, after = _scores(demo_model.scorer, records), _scores(demo_model.scorer, extra)
    assert [a["probability"] for a in after] == [b["probability"] for b in before]


def test_a_changed_lead_id_does_not_change_the_score(demo_model):
    records = lead_records(demo_model, 40)
    renamed = copy.deepcopy(records)
    for i, record in enumerate(renamed):
        record["lead_id"] = f"crm-{i:06d}-renamed"
    before, after = _scores(demo_model.scorer, records), _scores(demo_model.scorer, renamed)
    assert [a["probability"] for a in after] == [b["probability"] for b in before]


@pytest.mark.parametrize("field", DO_NOT_CONTACT_FIELDS)
def test_any_spelling_of_yes_in_a_do_not_contact_field_is_never_sales(demo_model, field):
    """Even when the policy sends every lead to sales, a lead that asked not to be contacted
    does not go (the do-not-contact hard rule), whichever spelling of yes the CRM sends."""
    spellings = _yes_spellings()
    template = lead_records(demo_model, 1)[0]
    records = []
    for i, yes in enumerate(spellings):
        record = copy.deepcopy(template)
        record["lead_id"] = f"dnc-{i}"
        record["attributes"][field] = yes
        records.append(record)
    # both the lead-by-lead path (few leads) and the array path (many leads)
    for batch in ([r] for r in records):
        (scored,) = _scores(demo_model.scorer, batch, EVERYONE_TO_SALES)
        assert scored["decision"] != "sales", (field, batch[0]["attributes"][field])
    scored = _scores(demo_model.scorer, records, EVERYONE_TO_SALES)
    sent = [(s["lead_id"], r["attributes"][field]) for s, r in zip(scored, records, strict=True)
            if s["decision"] == "sales"]  # fmt: skip
    assert sent == []


def test_a_no_in_a_do_not_contact_field_does_not_block_the_lead(demo_model):
    template = lead_records(demo_model, 1)[0]
    records = []
    for i, no in enumerate([*sorted(NO_WORDS), False, 0]):
        record = copy.deepcopy(template)
        record["lead_id"] = f"ok-{i}"
        record["attributes"]["Do Not Email"] = no
        records.append(record)
    scored = _scores(demo_model.scorer, records, EVERYONE_TO_SALES)
    assert [s["decision"] for s in scored] == ["sales"] * len(records)
