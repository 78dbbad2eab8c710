"""The leads of POST /v1/score as the model reads them, and what the answer says about them.

Two steps, around the model check of the route:

`read_body(raw, strict)` (before the model is needed): validates the body (the fast path keeps
touchpoint moments as text and parses them in one vectorised call), rejects the leads that are
truly invalid one by one (a bad field, an implausible moment, a NUL, a lead_id given again),
and notes unknown fields. Problems of the body as a whole (malformed JSON, no `leads`, more than
1,000) refuse the request (422), and so does any rejected lead in strict mode.

`read_for_model(parsed, loaded, strict)` (with the model serving now): channels and activities
are read exactly as files read them (`features.data.vocabulary`, with the `channel_map` /
`activity_map` of the model's stored data config first); an unknown one is read as `other`
with a warning (strict: 422). Attribute names the model does not use are warnings too (a typo
such as `do_not_emial` is not silently dropped).

Valid requests with canonical names take the fast path: one set difference for the attribute
names and one cheap test per touchpoint.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from features.data.values import (
    EARLIEST_MOMENT_NS,
    LATEST_MOMENT_NS,
    column_key,
    iso_strings_ns,
)
from features.data.vocabulary import ACTIVITIES, CHANNELS, lookup_activity, lookup_channel
from features.policy.facts import FactColumns, fact_columns_of
from serving import metrics
from serving.errors import (
    NUL_ESCAPE,
    RequestProblem,
    describe_validation_errors,
    nul_problems,
    problem,
    summarise,
)
from serving.schemas import ScoreRequest, ScoreRequestText

LEAD_FIELDS = frozenset({"lead_id", "attributes", "touchpoints", "created_at", "as_of"})
TOUCH_FIELDS = frozenset({"occurred_at", "channel", "activity", "campaign", "value"})
BODY_FIELDS = frozenset({"leads", "strict"})
MAX_WARNING_LEADS = 5
MAX_REVALIDATIONS = 4  # field errors, then the checks across a lead's fields, then none left


# --------------------------------------------------------------------------------------------
# Warnings


@dataclass
class Warnings:
    """What the answer says was read otherwise than sent, or ignored: one entry per distinct
    (code, field, value), with a count and the first leads."""

    entries: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)

    def add(
        self,
        code: str,
        where: str,
        value: str,
        read_as: str | None,
        lead_id: Any,
        message: str,
        count: int = 1,
    ) -> None:
        key = (code, where, value)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = {
                "code": code,
                "field": where,
                "value": value,
                "read_as": read_as,
                "count": 0,
                "lead_ids": [],
                "message": message,
            }
        entry["count"] += count
        if lead_id is not None and len(entry["lead_ids"]) < MAX_WARNING_LEADS:
            if lead_id not in entry["lead_ids"]:
                entry["lead_ids"].append(str(lead_id))

    def answer(self) -> list[dict[str, Any]]:
        for entry in self.entries.values():
            metrics.INPUT_WARNINGS.labels(entry["code"]).inc(entry["count"])
        return list(self.entries.values())


# --------------------------------------------------------------------------------------------
# Step 1: the body


@dataclass
class ParsedLeads:
    """The valid leads (plain dicts, in request order), where each was in the request, the
    rejected ones with their problems, and the warnings so far."""

    leads: list[Any]  # the validated leads: plain dicts (TypedDicts Lead or _LeadText)
    positions: list[int]
    rejected: dict[int, tuple[Any, list[dict]]]  # request index -> (lead_id, problems)
    moments: np.ndarray | None  # every kept touchpoint's moment, when the fast path parsed them
    strict: bool
    total: int
    warnings: Warnings


def read_body(raw: bytes, strict: bool = False) -> ParsedLeads:
    """Validate the body straight from bytes; reject invalid leads one by one (all of them at
    once in strict mode: 422); 422 for problems of the body as a whole."""
    has_nul = NUL_ESCAPE in raw  # a byte search: NUL is refused, whatever field holds it
    parsed = None if has_nul else _fast(raw)
    if parsed is None:
        parsed = _reference(raw, strict)
    strict = parsed.strict = strict or parsed.strict
    if has_nul:
        _reject_nul(parsed, raw)
    _reject_duplicates(parsed)
    if strict and parsed.rejected:
        raise _refusal(parsed.rejected)
    _unknown_lead_fields(parsed)
    if parsed.moments is not None and len(parsed.leads) < parsed.total:
        parsed.moments = _moments(parsed.leads)  # the rejected leads' touchpoints are gone
    return parsed


def _fast(raw: bytes) -> ParsedLeads | None:
    """ScoreRequestText: moments as text, parsed in one vectorised call; None when it refuses
    anything (then `ScoreRequest`, whose answers and messages are the reference, decides)."""
    try:
        body = ScoreRequestText.model_validate_json(raw, strict=True)
    except ValidationError:
        return None
    moments = _moments(body.leads)
    if moments is None:
        return None
    parsed = ParsedLeads(
        body.leads, list(range(len(body.leads))), {}, moments, body.strict, len(body.leads),
        Warnings(),
    )  # fmt: skip
    _unknown_body_fields(parsed, body.model_extra)
    return parsed


def _moments(leads: list[Any]) -> np.ndarray | None:
    """int64 ns of every touchpoint moment in order, when each is a plain ISO 8601 string with a
    zone, a real date and a plausible moment (else None)."""
    moments = [t["occurred_at"] for lead in leads for t in lead["touchpoints"]]
    if not moments:
        return np.empty(0, dtype=np.int64)
    parsed = iso_strings_ns(moments)
    if parsed is None or parsed.min() < EARLIEST_MOMENT_NS or parsed.max() > LATEST_MOMENT_NS:
        return None  # ScoreRequest names the bad one
    return parsed


def _reference(raw: bytes, strict: bool) -> ParsedLeads:
    """ScoreRequest; leads with problems are rejected and the others validated again (a lead's
    cross-field checks run once its fields are valid, so this may take a few rounds)."""
    try:
        body = ScoreRequest.model_validate_json(raw, strict=True)
    except ValidationError as error:
        data = _loads(raw)
        errors = describe_validation_errors(error.errors(), data)
        body_problems = [e for e in errors if "lead_index" not in e]
        if body_problems or not isinstance(data, dict):
            raise RequestProblem(422, summarise(errors), errors) from None
        strict = strict or data.get("strict") is True
        if strict:
            raise RequestProblem(422, summarise(errors), errors) from None
        return _without_invalid_leads(data, errors)
    parsed = ParsedLeads(
        body.leads, list(range(len(body.leads))), {}, None, body.strict, len(body.leads),
        Warnings(),
    )  # fmt: skip
    _unknown_body_fields(parsed, body.model_extra)
    return parsed


def _without_invalid_leads(data: dict[str, Any], errors: list[dict]) -> ParsedLeads:
    raw_leads = data["leads"]
    rejected: dict[int, tuple[Any, list[dict]]] = {}
    positions = list(range(len(raw_leads)))
    for _ in range(MAX_REVALIDATIONS):
        for error in errors:
            index = positions[error["lead_index"]]
            lead_id = _raw_lead_id(raw_leads[index])
            entry = rejected.setdefault(index, (lead_id, []))
            entry[1].append({**error, "lead_index": index})
        positions = [p for p in positions if p not in rejected]
        if not positions:
            break
        kept = {**data, "leads": [raw_leads[p] for p in positions]}
        try:
            body = ScoreRequest.model_validate_json(orjson.dumps(kept), strict=True)
        except ValidationError as error:
            errors = describe_validation_errors(error.errors(), kept)
            if any("lead_index" not in e for e in errors):  # cannot happen: the body was valid
                raise RequestProblem(422, summarise(errors), errors) from None
            continue
        parsed = ParsedLeads(
            body.leads, positions, rejected, None, False, len(raw_leads), Warnings()
        )
        _unknown_body_fields(parsed, body.model_extra)
        return parsed
    return ParsedLeads([], [], rejected, None, False, len(raw_leads), Warnings())


def _raw_lead_id(lead: Any) -> Any:
    value = lead.get("lead_id") if isinstance(lead, dict) else None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _reject(parsed: ParsedLeads, kept_index: int, problems: list[dict]) -> None:
    position = parsed.positions[kept_index]
    lead_id = parsed.leads[kept_index]["lead_id"]
    entry = parsed.rejected.setdefault(position, (lead_id, []))
    entry[1].extend({**p, "lead_index": position} for p in problems)


def _drop_rejected(parsed: ParsedLeads, kept_indexes: set[int]) -> None:
    if not kept_indexes:
        return
    parsed.leads = [lead for i, lead in enumerate(parsed.leads) if i not in kept_indexes]
    parsed.positions = [p for i, p in enumerate(parsed.positions) if i not in kept_indexes]


def _reject_nul(parsed: ParsedLeads, raw: bytes) -> None:
    data = _loads(raw)
    raw_leads = data["leads"] if isinstance(data, dict) else []
    kept_raw = [raw_leads[p] for p in parsed.positions]
    found = nul_problems({"leads": kept_raw}, {"leads": parsed.leads})
    by_lead: dict[int, list[dict]] = {}
    for entry in found:
        by_lead.setdefault(entry["lead_index"], []).append(entry)
    for index, problems in by_lead.items():
        _reject(parsed, index, problems)
    _drop_rejected(parsed, set(by_lead))


def _reject_duplicates(parsed: ParsedLeads) -> None:
    """A lead_id given again is rejected (the first one is scored)."""
    first: dict[str, int] = {}
    again: set[int] = set()
    for index, lead in enumerate(parsed.leads):
        lead_id = lead["lead_id"]
        if lead_id in first:
            message = f"lead_id {lead_id!r} was already given for lead {first[lead_id]}"
            _reject(parsed, index, [problem(message, "each lead at most once per request",
                                            field="lead_id", lead_id=lead_id)])  # fmt: skip
            again.add(index)
        else:
            first[lead_id] = parsed.positions[index]
    _drop_rejected(parsed, again)


def _refusal(rejected: dict[int, tuple[Any, list[dict]]]) -> RequestProblem:
    """Strict mode: the whole request refused, every problem listed (today's answer)."""
    errors = [p for index in sorted(rejected) for p in rejected[index][1]]
    detail = summarise(errors)
    if all(e.get("expected") == "each lead at most once per request" for e in errors):
        detail = f"duplicate lead ids in one request: {errors[0]['message']}"
    return RequestProblem(422, detail, errors)


def _unknown_body_fields(parsed: ParsedLeads, extra: dict[str, Any] | None) -> None:
    for name in extra or ():
        parsed.warnings.add(
            "unknown_field", "body", name, None, None,
            f"unknown field {name!r} of the body ignored; the fields are leads and strict",
        )  # fmt: skip


def _unknown_lead_fields(parsed: ParsedLeads) -> None:
    for lead in parsed.leads:
        if len(lead) > 5:  # the five fields (with their defaults), and unknown ones
            for name in [k for k in lead if k not in LEAD_FIELDS]:
                del lead[name]
                parsed.warnings.add(
                    "unknown_field", "leads[]", name, None, lead["lead_id"],
                    f"unknown lead field {name!r} ignored; a lead has "
                    "lead_id, attributes, touchpoints, created_at and as_of",
                )  # fmt: skip


# --------------------------------------------------------------------------------------------
# Step 2: with the model


@dataclass(frozen=True)
class ModelVocabulary:
    """What the model serving now knows: its data config's channel and activity maps, the
    attribute names its features read, and its fact columns."""

    channel_map: dict[str, str]
    activity_map: dict[str, str]
    attributes: frozenset[str] | None  # None: not known (a model without an attribute encoder)
    facts: FactColumns
    channels: frozenset[str]  # canonical names that read as themselves under the maps
    activities: frozenset[str]
    memo: dict[tuple[str, str], str | None] = field(default_factory=dict, compare=False)

    def read(self, kind: str, value: str) -> str | None:
        """The canonical channel or activity for `value` (None: unknown), as files read it."""
        key = (kind, value)
        if key not in self.memo:
            if len(self.memo) > 10_000:  # junk values must not grow it without end
                self.memo.clear()
            if kind == "channel":
                self.memo[key] = lookup_channel(value, self.channel_map or None)
            else:
                self.memo[key] = lookup_activity(value, self.activity_map or None)
        return self.memo[key]

    def suggestion(self, name: str) -> str | None:
        if not self.attributes:
            return None
        keys = {column_key(a): a for a in self.attributes}
        close = difflib.get_close_matches(column_key(name), list(keys), n=1, cutoff=0.8)
        return keys[close[0]] if close else None


_VOCABULARIES: dict[int, tuple[Any, ModelVocabulary]] = {}


def vocabulary_of(loaded: Any) -> ModelVocabulary:
    """The vocabulary of a loaded model (built once per model object)."""
    scorer = loaded.scorer
    cached = _VOCABULARIES.get(id(scorer))
    if cached is not None and cached[0] is scorer:
        return cached[1]
    config = loaded.metadata.get("data_config") or {}
    channel_map = dict(config.get("channel_map") or {})
    activity_map = dict(config.get("activity_map") or {})
    columns = getattr(getattr(getattr(scorer, "featurizer", None), "attributes_", None),
                      "columns_", None)  # fmt: skip
    attributes = (
        frozenset(c["column"] for c in columns if c["column"] != "created_at")
        if columns is not None
        else None
    )
    vocabulary = ModelVocabulary(
        channel_map,
        activity_map,
        attributes,
        fact_columns_of(config),
        frozenset(c for c in CHANNELS if lookup_channel(c, channel_map or None) == c),
        frozenset(a for a in ACTIVITIES if lookup_activity(a, activity_map or None) == a),
    )
    if len(_VOCABULARIES) > 8:
        _VOCABULARIES.clear()
    _VOCABULARIES[id(scorer)] = (scorer, vocabulary)
    return vocabulary


def read_for_model(parsed: ParsedLeads, loaded: Any, strict: bool) -> None:
    """Touchpoints read as files read them (unknown names: 'other' and a warning; strict: 422),
    unknown touchpoint fields dropped, and attribute names the model does not use noted."""
    vocabulary = vocabulary_of(loaded)
    channels, activities = vocabulary.channels, vocabulary.activities
    unknown: list[tuple[int, list[dict]]] = []
    for index, lead in enumerate(parsed.leads):
        problems: list[dict] | None = None
        for j, touch in enumerate(lead["touchpoints"]):
            if (
                len(touch) == 5
                and touch["channel"] in channels
                and touch["activity"] in activities
                and "value" in touch
                and "campaign" in touch
            ):
                continue  # the common case: canonical names, the five fields
            found = _read_touchpoint(touch, j, lead["lead_id"], vocabulary, parsed.warnings)
            if found:
                problems = (problems or []) + found
        if problems:
            unknown.append((index, problems))
    if unknown:
        if strict:
            for index, problems in unknown:
                public = [{k: v for k, v in p.items() if not k.startswith("_")} for p in problems]
                _reject(parsed, index, public)
            raise _refusal(parsed.rejected)
        for index, problems in unknown:
            for entry in problems:
                kind, value = entry.pop("_kind"), entry.pop("_value")
                parsed.leads[index]["touchpoints"][entry.pop("_j")][kind] = "other"
                parsed.warnings.add(
                    f"unknown_{kind}", f"touchpoints[].{kind}", value, "other",
                    parsed.leads[index]["lead_id"],
                    f"unknown {kind} {value!r} read as 'other'; send one of "
                    f"{', '.join(CHANNELS if kind == 'channel' else ACTIVITIES)}, or map it "
                    f"in the model's data config ({kind}_map)",
                )  # fmt: skip
    _unknown_attributes(parsed, vocabulary)


def _read_touchpoint(
    touch: dict[str, Any], j: int, lead_id: Any, vocabulary: ModelVocabulary, warnings: Warnings
) -> list[dict]:
    """Defaults, unknown fields dropped, names read; the unknown names as problems."""
    if len(touch) > 3:
        for name in [k for k in touch if k not in TOUCH_FIELDS]:
            del touch[name]
            warnings.add(
                "unknown_field", "touchpoints[]", name, None, lead_id,
                f"unknown touchpoint field {name!r} ignored; a touchpoint has "
                "occurred_at, channel, activity, campaign and value",
            )  # fmt: skip
    if "campaign" not in touch:
        touch["campaign"] = None
    if "value" not in touch:
        touch["value"] = None
    problems = []
    for kind, known in (("channel", vocabulary.channels), ("activity", vocabulary.activities)):
        value = touch[kind]
        if value in known and not (vocabulary.channel_map or vocabulary.activity_map):
            continue
        canonical = vocabulary.read(kind, value)
        if canonical is not None:
            touch[kind] = canonical
            continue
        expected = "one of " + ", ".join(CHANNELS if kind == "channel" else ACTIVITIES)
        entry = problem(f"unknown {kind} {value!r}", expected, field=f"touchpoints[{j}].{kind}",
                        lead_id=lead_id)  # fmt: skip
        problems.append({**entry, "_kind": kind, "_value": value, "_j": j})
    return problems


def _unknown_attributes(parsed: ParsedLeads, vocabulary: ModelVocabulary) -> None:
    if vocabulary.attributes is None or not parsed.leads:
        return
    names: set[str] = set().union(*(lead["attributes"] for lead in parsed.leads))
    unused = names - vocabulary.attributes
    unused = {n for n in unused if vocabulary.facts.fact_of(n) is None}
    for name in sorted(unused):
        guess = vocabulary.suggestion(name)
        hint = f" (did you mean {guess!r}?)" if guess else ""
        for lead in parsed.leads:
            if name in lead["attributes"]:
                parsed.warnings.add(
                    "unknown_attribute", "attributes", name, None, lead["lead_id"],
                    f"attribute {name!r} is not used by the model and was ignored{hint}",
                )  # fmt: skip


# --------------------------------------------------------------------------------------------
# The answer


def results_in_order(parsed: ParsedLeads, scored: list[dict]) -> list[dict]:
    """Scores and rejections, one per lead of the request, in its order."""
    if not parsed.rejected:
        return scored
    results: list[dict | None] = [None] * parsed.total
    for position, result in zip(parsed.positions, scored):
        results[position] = result
    for position, (lead_id, problems) in parsed.rejected.items():
        errors = [{k: v for k, v in p.items() if k != "lead_index"} for p in problems]
        results[position] = {
            "lead_index": position,
            "lead_id": lead_id,
            "error": {"detail": summarise(errors), "errors": errors},
        }
    metrics.LEADS_REJECTED.inc(len(parsed.rejected))
    return [r for r in results if r is not None]
