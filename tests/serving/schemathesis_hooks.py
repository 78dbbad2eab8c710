"""Schemathesis set-up for this API, for the fuzz test and for `st run` against a live service
(`SCHEMATHESIS_HOOKS=tests.serving.schemathesis_hooks st run ...`).

What the OpenAPI says in its descriptions because JSON Schema cannot, schema-valid requests are
generated to respect (requests that do not are tested by tests/serving/test_hardening.py,
test_policy_api.py and test_vocabulary.py, with the answers checked):

- every moment lies between 1970-01-01 and 2100-01-01 (`features.data.values`);
- strict scoring (`strict`) refuses what the default mode reads with a warning (an unknown
  channel): a strict request is "valid" only with names JSON Schema cannot list (synonyms are
  matched ignoring case and punctuation), so positive cases are generated without it;
- a policy's grade bands are ordered (A >= B >= C, defaults for those left out), grade shares
  add up to at most 1 (D gets the rest), a change
  giving both thresholds has nurture <= sales, and one ranking by expected value gives its
  `value_threshold` (else the threshold comes from `weekly_capacity` on the model's holdout, or
  the request is refused: tests/serving/policy/test_rank_by_api.py);
- the exploration report's period starts before it ends (`from` < `to`; `to` defaults to now,
  `from` to 90 days before `to`);
- the funnel report's `by` is a grouping or the name of a captured attribute (data, not schema),
  and `from`/`to` are dates with `from` before `to`: positive cases get a grouping and dates
  (tests/serving/test_funnel_report.py checks the 422 answers to the others).

And one check says what POST /v1/score documents for schema-violating leads: it rejects them in
the answer (200, `rejected` >= 1, the other leads scored) instead of refusing the request.
`negative_data_rejection_per_lead` is schemathesis' `negative_data_rejection` with that one
exception; run it instead of the built-in one (`--exclude-checks negative_data_rejection`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import negative_data_rejection

from features.data.values import EARLIEST_MOMENT, LATEST_MOMENT
from features.report.measures import GROUPING_NAMES

_OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
_MARGIN = timedelta(days=1)  # an offset never takes a moment across a bound

MOMENTS = st.builds(
    lambda moment, zone: moment.astimezone(zone).isoformat(),
    st.datetimes(
        min_value=(EARLIEST_MOMENT + _MARGIN).replace(tzinfo=None),
        max_value=(LATEST_MOMENT - _MARGIN).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    _OFFSETS,
)

schemathesis.openapi.format("date-time", MOMENTS)

_GRADE_DEFAULTS = {"A": 60.0, "B": 35.0, "C": 15.0}  # features.policy.rules.GradeBands


@schemathesis.hook
def filter_case(context, case) -> bool:
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return True
    operation = f"{case.method.upper()} {case.path}"
    if operation == "GET /v1/reports/exploration":
        return _period_in_order(case.query or {}, days=90)
    if not isinstance(case.body, dict):
        return True
    if operation == "POST /v1/score":
        return case.body.get("strict") is not True and str(
            (case.query or {}).get("strict", "false")
        ).lower() not in ("true", "1")
    if operation == "PUT /v1/policy":
        policy = case.body.get("policy") or {}
        grades = {**_GRADE_DEFAULTS, **(policy.get("grades") or {})}
        ordered = grades["A"] >= grades["B"] >= grades["C"]
        shares = (policy.get("grades") or {}).get("shares") or {}
        shares_fit = sum(v for v in shares.values() if isinstance(v, int | float)) <= 1
        sales, nurture = policy.get("sales_threshold"), policy.get("nurture_threshold")
        in_order = sales is None or nurture is None or nurture <= sales
        # ranking by expected value needs its threshold: given, or chosen from weekly_capacity
        # on the model's holdout (which can refuse, 409); test_rank_by_api checks both answers
        valued = (
            policy.get("rank_by") != "expected_value" or policy.get("value_threshold") is not None
        )
        return ordered and shares_fit and in_order and valued
    return True


def _period_in_order(query: dict, days: int) -> bool:
    try:
        end = datetime.fromisoformat(query["to"]) if query.get("to") else datetime.now(UTC)
        start = (
            datetime.fromisoformat(query["from"]) if query.get("from") else end - timedelta(days)
        )
    except (TypeError, ValueError):
        return True  # not a moment: the schema's business, not this rule's
    return start < end


@schemathesis.check
def negative_data_rejection_per_lead(ctx, response, case):
    """Schema-violating requests are refused, except invalid leads of a score request: those are
    rejected one by one in a 200 answer (its `rejected` count says how many)."""
    if case.method.upper() == "POST" and case.path == "/v1/score" and response.status_code == 200:
        try:
            rejected = response.json().get("rejected", 0)
        except ValueError:
            rejected = 0
        if rejected >= 1:
            return None
    return negative_data_rejection(ctx, response, case)


@schemathesis.hook
def map_case(context, case):
    meta = getattr(case, "meta", None)
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if case.method.upper() == "GET" and case.path == "/v1/reports/funnel":
        query = dict(case.query or {})
        # the generated text picks a grouping, so cases still vary
        query["by"] = GROUPING_NAMES[sum(map(ord, str(query.get("by", "")))) % len(GROUPING_NAMES)]
        if "from" in query:
            query["from"] = "2024-01-01"
        if "to" in query:
            query["to"] = "2024-07-01T00:00:00+02:00"
        case.query = query
    return case
