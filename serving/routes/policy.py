"""The qualification policy: read it, simulate a threshold, change it (ops), see and undo changes.

Reading, simulating and the history need a `scorer` or `ops` key; changing, rolling back and
restoring the model's default need `ops` (or `admin`). Every change is a new audited version,
kept with the key's name and, when the caller names one (`X-Actor` header or `actor` field), the
person; all workers apply it within `policy_refresh_seconds` (0.5 s). The worker's `PolicyCache`
is started by the app's lifespan; routes get it as `PolicyCacheDep`, the version in force as
`PolicyDep`. Store errors are types (`PolicyConflict` 409, `PolicyVersionNotFound` 404,
`PolicyStoreError` 422, `BasisUnavailable` 409: serving.errors).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from features.policy.rules import (
    MAX_EXPLORATION_RATE,
    GradeBands,
    HardRule,
    PolicyError,
    ValueNeeded,
    grade_bands_by_share,
    value_needed_message,
)
from serving.bodies import documented_body, json_body
from serving.deps import (
    EngineDep,
    ModelStoreDep,
    OpsKey,
    PolicyCacheDep,
    PolicyDep,
    ReaderKey,
)
from serving.errors import RequestProblem, error_responses, problem
from serving.policy.simulation import (
    holdout_basis,
    recent_basis,
    simulate,
    value_threshold_for_capacity,
)
from serving.policy.store import (
    history,
    merge_policy,
    validation_message,
)
from serving.responses import OrjsonResponse
from serving.schemas import (
    ID_PATTERN,
    MAX_NUMBER,
    PolicyHistory,
    PolicyVersionOut,
    Simulation,
    as_whole_number,
)

MAX_VERSION = 2**31 - 1  # the column is a 32-bit INTEGER
Version = Annotated[int, Field(ge=0, le=MAX_VERSION), BeforeValidator(as_whole_number), Strict()]
Threshold = Annotated[float, Field(ge=0, le=100)]
ExplorationRate = Annotated[float, Field(ge=0, le=MAX_EXPLORATION_RATE, allow_inf_nan=False)]
TrendPoints = Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)]


router = APIRouter(prefix="/v1/policy", tags=["policy"])


ActorHeader = Annotated[
    str | None,
    Header(
        alias="X-Actor",
        max_length=100,
        description="Who makes the change (e.g. 'Jane Doe'), kept in the history beside the "
        "key's name; the body's `actor` wins when both are given.",
    ),
]

ACTOR = Field(
    None,
    max_length=100,
    description="Who makes the change, kept in the history beside the key's name "
    "(or send the X-Actor header).",
)


class PolicyFields(BaseModel):
    """Fields of the policy to change (at least one); those left out keep their current value."""

    # None only as the default (left out): an explicit null is refused, as the schema says.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    sales_threshold: Threshold | SkipJsonSchema[None] = Field(
        None, description="Scores at or above go to sales."
    )
    nurture_threshold: Threshold | SkipJsonSchema[None] = Field(
        None, description="Scores at or above, below the sales threshold, are nurtured."
    )
    grades: GradeBands | SkipJsonSchema[None] = Field(
        None,
        description="Grade bands: by score (A, B, C: the lowest score of each), or by share "
        "(`shares` of leads in A, B, C; the lowest scores are computed on the model's holdout).",
    )
    rules: list[HardRule] | SkipJsonSchema[None] = Field(
        None, description="Hard rules in order (first match decides); [] removes them all."
    )
    weekly_capacity: Annotated[float, Field(gt=0, allow_inf_nan=False)] | SkipJsonSchema[None] = (
        Field(None, description="Leads a week sales can take.")
    )
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | SkipJsonSchema[None] = Field(
        None, description="ISO 4217 code of money amounts, e.g. EUR."
    )
    exploration_rate: ExplorationRate | SkipJsonSchema[None] = Field(
        None,
        description="Share of the leads the threshold holds back (nurture, no hard rule, never "
        "do-not-contact) sent to sales anyway, to measure what the threshold misses; 0 turns "
        f"it off, at most {MAX_EXPLORATION_RATE:g}. Drawn from the lead id and the policy "
        "version.",
        examples=[0.05],
    )
    trend_points: TrendPoints | SkipJsonSchema[None] = Field(
        None,
        description="Score points since a lead's previous score from which its trend is "
        "improving or declining (less: steady).",
        examples=[5],
    )
    rank_by: Literal["probability", "expected_value"] | SkipJsonSchema[None] = Field(
        None,
        description="What fills sales' capacity: probability (scores at or above "
        "sales_threshold) or expected_value (probability x expected deal amount at or above "
        "value_threshold; needs a model with a deal value model). Without value_threshold, "
        "the one that fills weekly_capacity on the model's holdout is chosen.",
    )
    value_threshold: (
        Annotated[float, Field(ge=0, le=MAX_NUMBER, allow_inf_nan=False)] | SkipJsonSchema[None]
    ) = Field(
        None,
        description="With rank_by=expected_value: the lowest expected value, in the policy's "
        "currency, that goes to sales.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("is null; expected a value, or leave the field out to keep it")
        return value

    @model_validator(mode="after")
    def _nurture_below_sales(self) -> PolicyFields:
        if (
            self.sales_threshold is not None
            and self.nurture_threshold is not None
            and self.nurture_threshold > self.sales_threshold
        ):
            raise ValueError(
                f"nurture_threshold ({self.nurture_threshold:g}) must not be above "
                f"sales_threshold ({self.sales_threshold:g}); expected a lower nurture_threshold"
            )
        return self


class PolicyChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "policy": {"sales_threshold": 45, "nurture_threshold": 20},
                    "reason": "Sales can take about 40 leads a week from March",
                    "expected_version": 3,
                }
            ]
        },
    )

    policy: PolicyFields
    reason: str = Field(
        min_length=1, max_length=2000, pattern=ID_PATTERN, description="Why: kept in the history."
    )
    expected_version: Version | None = Field(
        None,
        description="The version you edited; the change is refused (409) if it is no longer current.",
    )
    actor: str | None = ACTOR


class Rollback(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"version": 2, "reason": "Back to the February policy: too many leads"}]
        },
    )

    version: Version = Field(description="The version to restore (0: the model's default policy).")
    reason: str = Field(min_length=1, max_length=2000, pattern=ID_PATTERN)
    expected_version: Version | None = Field(None)
    actor: str | None = ACTOR


class RestoreDefault(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reason": "Back to what the new model recommends", "actor": "Jane Doe"}]
        },
    )

    reason: str = Field(
        min_length=1, max_length=2000, pattern=ID_PATTERN, description="Why: kept in the history."
    )
    expected_version: Version | None = Field(None)
    actor: str | None = ACTOR


# What `value` must be for each `by` (checked by the route, 422): JSON Schema conditions, so the
# OpenAPI says it too.
VALUE_RANGES: dict[str, tuple[dict[str, float], str]] = {
    "value": ({"exclusiveMinimum": 0}, "the value of a won deal, above 0"),
    "capacity": ({"minimum": 0}, "leads a week sales can take, 0 or more"),
    "precision": ({"exclusiveMinimum": 0, "maximum": 1}, "a target precision above 0, at most 1"),
    "recall": ({"exclusiveMinimum": 0, "maximum": 1}, "a target recall above 0, at most 1"),
}


# Ranked by expected value, a threshold is chosen by capacity or by value (the route: 422).
RANKED_BY_VALUE_CHOOSES_BY: dict[str, Any] = {
    "if": {"properties": {"rank_by": {"const": "expected_value"}}, "required": ["rank_by"]},
    "then": {"properties": {"by": {"not": {"enum": ["precision", "recall"]}}}},
}


def _value_needed_if(by: str) -> dict[str, Any]:
    """When `value` is required for `by`: ranked by expected value, choosing by value needs no
    win value (each lead is worth its own expected amount)."""
    properties: dict[str, Any] = {"by": {"const": by}}
    if by == "value":
        properties["rank_by"] = {"not": {"const": "expected_value"}}
    return {"properties": properties, "required": ["by"]}


class SimulateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {
                    "if": _value_needed_if(by),
                    "then": {
                        "required": ["value"],
                        "properties": {"value": {"type": "number", **bounds}},
                    },
                }
                for by, (bounds, _) in VALUE_RANGES.items()
            ]
            + [RANKED_BY_VALUE_CHOOSES_BY],
            "examples": [
                {"by": "capacity", "value": 40},
                {"by": "precision", "value": 0.3},
                {"by": "value", "value": 12000, "cost_per_lead": 300, "capacity": 40},
                {"threshold": 55, "source": "recent", "days": 28},
            ],
        },
    )

    by: Literal["value", "capacity", "precision", "recall"] | None = Field(
        None,
        description="value: most net value a week (value = what a win is worth, cost_per_lead = cost "
        "of working a lead); capacity: about `value` leads a week to sales; precision / recall: "
        "reach the target `value` (0-1).",
    )
    # at most 1e15 in size, as every number of the API: 1e308 wins overflowed the net value
    value: float | None = Field(
        None, ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False, description="The target for `by`."
    )
    cost_per_lead: float = Field(1.0, ge=0, le=MAX_NUMBER, allow_inf_nan=False)
    capacity: float | None = Field(
        None,
        gt=0,
        le=MAX_NUMBER,
        allow_inf_nan=False,
        description="For by=value: at most this many leads a week to sales (default: the "
        "policy's weekly_capacity; none: no limit).",
    )
    threshold: float | None = Field(
        None, ge=0, le=100, description="Evaluate this sales threshold."
    )
    rank_by: Literal["probability", "expected_value"] | None = Field(
        None,
        description="What fills the capacity (default: the policy's): probability (a score "
        "threshold) or expected_value (a value threshold in the policy's currency; choose it by "
        "capacity, the leads of highest expected value that fill `value` leads a week, or by "
        "value, the most expected revenue net of cost_per_lead within `capacity`).",
    )
    source: Literal["holdout", "recent"] = Field(
        "holdout",
        description="holdout: the champion's held-out leads with outcomes; recent: the score log.",
    )
    days: float = Field(28, gt=0, le=3650, description="For source=recent: how far back to look.")
    include_table: bool = Field(True, description="Return the whole table (thresholds 0-100).")


ChangeBody = Annotated[PolicyChange, Depends(json_body(PolicyChange, "policy"))]
RollbackBody = Annotated[Rollback, Depends(json_body(Rollback, "version"))]
RestoreBody = Annotated[RestoreDefault, Depends(json_body(RestoreDefault, "reason"))]
SimulateBody = Annotated[SimulateRequest, Depends(json_body(SimulateRequest, "by"))]


@router.get(
    "",
    response_model=PolicyVersionOut,
    summary="The qualification policy in force",
    responses=error_responses(401, 403),
)
async def get_policy(_key: ReaderKey, in_force: PolicyDep) -> OrjsonResponse:
    return OrjsonResponse(in_force.to_dict())


@router.put(
    "",
    response_model=PolicyVersionOut,
    summary="Change the policy (ops): a new audited version, in force in every worker within a second",
    openapi_extra=documented_body(PolicyChange),
    responses=error_responses(
        401,
        403,
        408,
        409,
        413,
        422,
        503,
        e409="The policy changed since `expected_version`, or the change conflicts with a value "
        "in force (e.g. a nurture threshold above the current sales threshold)",
    ),
)
async def put_policy(
    key: OpsKey,
    change: ChangeBody,
    policies: PolicyCacheDep,
    models: ModelStoreDep,
    x_actor: ActorHeader = None,
) -> OrjsonResponse:
    fields = change.policy.model_dump(exclude_unset=True, mode="json")
    if not fields:
        raise RequestProblem(
            422,
            "policy: nothing to change; give at least one of sales_threshold, "
            "nurture_threshold, grades, rules, weekly_capacity, currency, exploration_rate, "
            "trend_points, rank_by, value_threshold",
            [problem("no policy field given", field="policy")],
        )
    if change.policy.grades is not None and change.policy.grades.by == "share":
        # the lowest score of each grade: what gives it its share of the champion's holdout
        basis = holdout_basis(models.current)  # none yet: BasisUnavailable, 409
        fields["grades"] = grade_bands_by_share(
            basis.probabilities, change.policy.grades.shares, basis.description
        ).model_dump(mode="json")
    in_force = policies.current().policy
    if fields.get("rank_by", in_force.rank_by) == "expected_value":
        fields = _value_ranking(fields, in_force, models.current)
    try:
        policy = merge_policy(in_force, fields)
    except ValidationError as error:
        # The change is valid on its own (PolicyFields checked it): it conflicts with a value in
        # force, e.g. a nurture threshold above the current sales threshold.
        message = validation_message(error)
        raise RequestProblem(409, message, [problem(message, field="policy")]) from None
    saved = await run_in_threadpool(
        policies.save, policy, key.name, change.reason, change.expected_version,
        change.actor or x_actor,
    )  # fmt: skip
    return OrjsonResponse(saved.to_dict())


def _value_ranking(fields: dict[str, Any], in_force: Any, current: Any) -> dict[str, Any]:
    """`fields` of a policy that ranks by expected value, checked against the model served (it
    must have a deal value model: 422 naming rank_by), with the value threshold that fills the
    weekly capacity on its holdout when none is given or in force."""
    scorer = getattr(current, "scorer", None)
    if getattr(scorer, "value", None) is None:
        model = (
            "the service (no model is loaded yet)"
            if current is None
            else f"model {current.name} version {current.version}"
        )
        message = f"policy.rank_by: {value_needed_message(model)}"
        raise RequestProblem(
            422,
            message,
            [problem(message, field="policy.rank_by", expected="probability")],
        )
    if "value_threshold" in fields or (
        in_force.value_threshold is not None and "weekly_capacity" not in fields
    ):
        return fields
    capacity = fields.get("weekly_capacity", in_force.weekly_capacity)
    if capacity is None:
        message = (
            "policy.value_threshold: give the lowest expected value that goes to sales, or a "
            "weekly_capacity so the value threshold that fills it is chosen on the model's holdout"
        )
        raise RequestProblem(422, message, [problem(message, field="policy.value_threshold")])
    basis = holdout_basis(current)  # none: BasisUnavailable, 409
    try:
        threshold = value_threshold_for_capacity(basis, float(capacity))
    except ValueNeeded as error:
        message = f"policy.value_threshold: {error}; or give value_threshold"
        raise RequestProblem(
            409, message, [problem(message, field="policy.value_threshold")]
        ) from None
    except PolicyError as error:
        message = f"policy.weekly_capacity: {error}"
        raise RequestProblem(
            409, message, [problem(message, field="policy.weekly_capacity")]
        ) from None
    return fields | {"value_threshold": threshold}


@router.post(
    "/rollback",
    response_model=PolicyVersionOut,
    summary="Restore an earlier version (ops), as a new audited version",
    openapi_extra=documented_body(Rollback),
    responses=error_responses(
        401,
        403,
        404,
        408,
        409,
        413,
        422,
        503,
        e404="No such version",
        e409="The policy changed since `expected_version`",
    ),
)
async def rollback_policy(
    key: OpsKey, body: RollbackBody, policies: PolicyCacheDep, x_actor: ActorHeader = None
) -> OrjsonResponse:
    saved = await run_in_threadpool(
        policies.rollback, body.version, key.name, body.reason, body.expected_version,
        body.actor or x_actor,
    )  # fmt: skip
    return OrjsonResponse(saved.to_dict())


@router.post(
    "/restore-default",
    response_model=PolicyVersionOut,
    summary="Put the model's own default policy back in force (ops), as a new audited version",
    openapi_extra=documented_body(RestoreDefault),
    responses=error_responses(
        401, 403, 408, 409, 413, 422, 503, e409="The policy changed since `expected_version`"
    ),
)
async def restore_default_policy(
    key: OpsKey, body: RestoreBody, policies: PolicyCacheDep, x_actor: ActorHeader = None
) -> OrjsonResponse:
    """From then on the policy follows the model, as before any change: a new champion's own
    default applies at once. The history keeps who, when, why and the default as it was."""
    saved = await run_in_threadpool(
        policies.restore_default, key.name, body.reason, body.expected_version,
        body.actor or x_actor,
    )  # fmt: skip
    return OrjsonResponse(saved.to_dict())


@router.get(
    "/history",
    response_model=PolicyHistory,
    summary="Every saved version, newest first: who, when, why, what changed",
    responses=error_responses(401, 403, 422),
)
async def policy_history(
    _key: ReaderKey,
    engine: EngineDep,
    policies: PolicyCacheDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OrjsonResponse:
    versions = await run_in_threadpool(history, engine, limit)
    current = policies.current()
    return OrjsonResponse(
        {
            "current_version": current.version,
            "versions": [v.to_dict() for v in versions],
        }
    )


@router.post(
    "/simulate",
    response_model=Simulation,
    summary="What a threshold would do: leads a week to sales, expected wins, precision, recall, lift",
    openapi_extra=documented_body(SimulateRequest),
    responses=error_responses(
        401,
        403,
        408,
        409,
        413,
        422,
        503,
        e409="No data to simulate on yet, this data cannot meet the target, or it has no "
        "expected values to rank by (rank_by=expected_value on recent scores, or on a model "
        "without a deal value model)",
    ),
)
async def simulate_policy(
    _key: ReaderKey,
    body: SimulateBody,
    current: PolicyDep,
    models: ModelStoreDep,
    engine: EngineDep,
) -> OrjsonResponse:
    rank_by = body.rank_by or current.policy.rank_by
    if rank_by == "expected_value" and body.by in ("precision", "recall"):
        message = (
            f"by {body.by} cannot choose a threshold when ranking by expected value: choose by "
            "capacity (leads a week) or by value (most expected revenue net of cost_per_lead)"
        )
        raise RequestProblem(
            422, message, [problem(message, expected="capacity or value", field="by")]
        )
    by_value_needs_value = not (body.by == "value" and body.rank_by == "expected_value")
    if body.by is not None and body.value is None and by_value_needs_value:
        message = {
            "value": "the value of a won deal (and cost_per_lead, the cost of working one lead)",
            "capacity": "how many leads a week sales can take",
            "precision": "the target precision between 0 and 1",
            "recall": "the target recall between 0 and 1",
        }[body.by]
        raise RequestProblem(
            422,
            f"value is required when choosing by {body.by}: give {message}",
            [problem("is required", expected=message, field="value")],
        )

    if body.by is not None and body.value is not None:
        bounds, wanted = VALUE_RANGES[body.by]
        low = bounds.get("minimum", bounds.get("exclusiveMinimum", 0))
        high = bounds.get("maximum", math.inf)
        if not (low < body.value if "exclusiveMinimum" in bounds else low <= body.value) or (
            body.value > high
        ):
            message = f"value {body.value:g} cannot be used when choosing by {body.by}"
            raise RequestProblem(
                422, f"{message}: give {wanted}", [problem(message, expected=wanted, field="value")]
            )

    def run() -> dict[str, Any]:
        # No basis yet is BasisUnavailable: 409 (serving.errors.ERROR_STATUS).
        basis = (
            holdout_basis(models.current)
            if body.source == "holdout"
            else recent_basis(engine, body.days)
        )
        try:
            result = simulate(
                basis,
                current.policy,
                by=body.by,
                value=body.value,
                cost_per_lead=body.cost_per_lead,
                threshold=body.threshold,
                include_table=body.include_table,
                capacity=body.capacity,
                rank_by=rank_by,
            )
        except ValueNeeded as error:
            # A valid request the data cannot answer (recent scores, or a holdout, without
            # expected values): 409, like the other data-bound refusals below.
            message = f"rank_by: {error}"
            raise RequestProblem(
                409, message, [problem(message, expected="probability", field="rank_by")]
            ) from None
        except PolicyError as error:
            # The request is valid (checked above); this data cannot meet the target: 409, like
            # no data at all (BasisUnavailable).
            raise RequestProblem(409, str(error)) from None
        result["current"]["version"] = current.version
        return result

    return OrjsonResponse(await run_in_threadpool(run))
