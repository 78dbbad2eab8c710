"""Right answers: one vocabulary for files and the API, per-lead rejections, warnings.

The API reads channels and activities as files do (unknown ones as 'other', with a warning; the
demo data's own 'Chat Started' was a 422), rejects an invalid lead alone (the others are scored),
and reports attribute names and fields it ignores instead of dropping them silently. `strict`
asks for the old answer: a 422 for the whole request.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from features.data.vocabulary import CHANNELS, lookup_activity, lookup_channel
from serving import metrics
from tests.serving.conftest import auth, demo_records


def score(client, leads, query="", **body):
    return client.post(f"/v1/score{query}", json={"leads": leads, **body}, headers=auth("scorer"))


def _unknown(touch):
    return lookup_channel(touch["channel"]) is None or lookup_activity(touch["activity"]) is None


def test_demo_leads_as_exported_are_all_scored(scoring_app, trained_model):
    records = demo_records(trained_model, 600, as_exported=True)
    odd = [r for r in records if any(_unknown(t) for t in r["touchpoints"])]
    assert odd  # e.g. 'Chat Started': each of these leads was a 422 before
    answer = score(scoring_app, odd)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rejected"] == 0
    assert [r["lead_id"] for r in body["results"]] == [r["lead_id"] for r in odd]
    sent = {}
    for record in odd:
        for touch in record["touchpoints"]:
            if lookup_activity(touch["activity"]) is None:
                sent[touch["activity"]] = sent.get(touch["activity"], 0) + 1
    warned = {w["value"]: w for w in body["warnings"] if w["code"] == "unknown_activity"}
    assert {v: w["count"] for v, w in warned.items()} == sent
    chat = warned["Chat Started"]
    assert chat["read_as"] == "other" and chat["field"] == "touchpoints[].activity"
    assert chat["message"].startswith(
        "unknown activity 'Chat Started' read as 'other'; send one of"
    )
    assert "activity_map" in chat["message"] and 1 <= len(chat["lead_ids"]) <= 5


def test_strict_mode_gives_the_old_422(scoring_app, trained_model):
    lead = demo_records(trained_model, 1)[0]
    lead["touchpoints"] = [{**lead["touchpoints"][0], "channel": "carrier pigeon"}]
    for answer in (
        score(scoring_app, [lead], "?strict=true"),
        score(scoring_app, [lead], strict=True),
    ):
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["errors"]
        assert error["field"] == "touchpoints[0].channel"
        assert error["message"] == "unknown channel 'carrier pigeon'"
        assert error["expected"] == "one of " + ", ".join(CHANNELS)
    relaxed = score(scoring_app, [lead])
    assert relaxed.status_code == 200 and relaxed.json()["warnings"][0]["read_as"] == "other"


def test_one_invalid_lead_of_1000_rejects_that_lead_only(scoring_app, trained_model):
    base = demo_records(trained_model, 500)
    leads = [{**r, "lead_id": f"{r['lead_id']}-{copy}"} for copy in (0, 1) for r in base]
    assert len(leads) == 1000
    leads[417] = {
        **leads[417],
        "created_at": "2025-05-01T00:00:00Z",
        "as_of": "2025-04-01T00:00:00Z",
    }
    answer = score(scoring_app, leads)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rejected"] == 1 and len(body["results"]) == 1000
    bad = body["results"][417]
    assert bad["lead_index"] == 417 and bad["lead_id"] == leads[417]["lead_id"]
    (error,) = bad["error"]["errors"]
    assert error["field"] == "as_of"
    assert error["message"].startswith("as_of 2025-04-01T00:00:00+00:00 is before created_at")
    assert bad["error"]["detail"].startswith("as_of: as_of 2025-04-01")
    scored = [r for i, r in enumerate(body["results"]) if i != 417]
    assert all(0 <= r["probability"] <= 1 for r in scored)
    assert [r["lead_id"] for r in scored] == [x["lead_id"] for i, x in enumerate(leads) if i != 417]


def test_field_errors_and_repeated_ids_reject_their_lead(scoring_app, trained_model):
    a, b, c = demo_records(trained_model, 3)
    bad_value = (
        {**b, "touchpoints": [{**b["touchpoints"][0], "value": "lots"}]}
        if b["touchpoints"]
        else {**b, "attributes": {"industry": {"x": 1}}}
    )
    answer = score(scoring_app, [a, bad_value, c, a])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rejected"] == 2
    assert [("error" in r) for r in body["results"]] == [False, True, False, True]
    assert body["results"][1]["error"]["errors"][0]["message"] in (
        "got the string 'lots'",
        "got an object",
    )
    assert body["results"][3]["error"]["errors"] == [
        {
            "lead_id": a["lead_id"],
            "field": "lead_id",
            "message": f"lead_id {a['lead_id']!r} was already given for lead 0",
            "expected": "each lead at most once per request",
        }
    ]
    everything_bad = score(scoring_app, [bad_value])
    assert everything_bad.status_code == 200 and everything_bad.json()["rejected"] == 1


def test_unknown_attributes_and_fields_are_warnings(scoring_app, trained_model):
    lead = demo_records(trained_model, 1)[0]
    before = metrics.INPUT_WARNINGS.labels("unknown_attribute")._value.get()
    fields_before = metrics.INPUT_WARNINGS.labels("unknown_field")._value.get()
    typo = {**lead, "attributes": {**lead["attributes"], "do_not_emial": True}, "createdAt": "x"}
    typo["touchpoints"] = [{**t, "chanel": "email"} for t in lead["touchpoints"][:1]]
    # five keys, one of them unknown, and no touchpoints (was a 500 found by schemathesis)
    five = {k: lead[k] for k in ("lead_id", "attributes", "created_at", "as_of")}
    five = {**five, "lead_id": "L-five", "notes": "call back"}
    answer = score(scoring_app, [typo, five], source="crm")
    assert answer.status_code == 200, answer.text
    warnings = {(w["code"], w["field"], w["value"]): w for w in answer.json()["warnings"]}
    attribute = warnings[("unknown_attribute", "attributes", "do_not_emial")]
    assert attribute["message"] == (
        "attribute 'do_not_emial' is not used by the model and was ignored "
        "(did you mean 'do_not_email'?)"
    )
    assert attribute["lead_ids"] == [lead["lead_id"]] and attribute["read_as"] is None
    assert ("unknown_field", "leads[]", "createdAt") in warnings
    assert warnings[("unknown_field", "leads[]", "notes")]["lead_ids"] == ["L-five"]
    assert answer.json()["rejected"] == 0
    assert ("unknown_field", "touchpoints[]", "chanel") in warnings
    assert ("unknown_field", "body", "source") in warnings
    assert metrics.INPUT_WARNINGS.labels("unknown_attribute")._value.get() == before + 1
    # the four unknown fields (createdAt, notes, chanel, source) are counted too
    assert metrics.INPUT_WARNINGS.labels("unknown_field")._value.get() == fields_before + 4
    # the same lead without them: same score, no warnings
    clean = score(scoring_app, [{**lead, "touchpoints": lead["touchpoints"][:1]}]).json()
    assert clean["warnings"] == []
    assert clean["results"][0]["probability"] == answer.json()["results"][0]["probability"]


def test_the_models_channel_and_activity_maps_come_first():
    """As in files (features.data.loading), the data config's maps decide before the synonyms."""
    from serving.leads import ParsedLeads, Warnings, read_body, read_for_model

    body = (
        b'{"leads": [{"lead_id": "L-1", "touchpoints": ['
        b'{"occurred_at": "2026-11-20T09:30:00Z", "channel": "Carrier Pigeon", "activity": "Chat Started"},'
        b'{"occurred_at": "2026-11-21T09:30:00Z", "channel": "Google", "activity": "visit"}]}]}'
    )
    parsed = read_body(body)
    assert isinstance(parsed, ParsedLeads) and isinstance(parsed.warnings, Warnings)
    config = {"channel_map": {"carrier pigeon": "print", "Google": "paid_search"},
              "activity_map": {"Chat Started": "form_submit"}}  # fmt: skip
    loaded = SimpleNamespace(scorer=object(), metadata={"data_config": config})
    read_for_model(parsed, loaded, strict=False)
    touches = parsed.leads[0]["touchpoints"]
    assert [(t["channel"], t["activity"]) for t in touches] == [
        ("print", "form_submit"),
        ("paid_search", "visit"),  # 'Google' alone is organic_search; the map says paid
    ]
    assert parsed.warnings.answer() == []


@pytest.mark.parametrize("strict", [False, True])
def test_a_body_level_problem_is_always_422(scoring_app, strict):
    answer = score(scoring_app, [{"lead_id": f"L-{i}"} for i in range(1001)], strict=strict)
    assert answer.status_code == 422
    assert answer.json()["detail"] == (
        "leads: too many leads: got 1001, the limit is 1000 per request (expected at most 1000 "
        "leads; split the batch into several requests)"
    )
