"""The qualification policy: read it, simulate a threshold, change it (ops), see and undo changes.

Reading, simulating and the history need a `scorer` or `ops` key; changing and rolling back need
`ops` (or `admin`). Every change is a new audited version; all workers apply it within
`policy_refresh_seconds` (0.5 s). The worker's `PolicyCache` is started by the app's lifespan;
routes get it as `PolicyCacheDep`, the version in force as `PolicyDep`. Store errors are types
(`PolicyConflict` 409, `PolicyVersionNotFound` 404, `PolicyStoreError` 422: serving.errors).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from features.policy.rules import GradeBands, HardRule, PolicyError
from serving.deps import (
    EngineDep,
    ModelStoreDep,
    OpsKey,
    PolicyCacheDep,
    PolicyDep,
    ReaderKey,
)
from serving.errors import RequestProblem, problem
from serving.policy.simulation import (
    holdout_basis,
    recent_basis,
    simulate,
)
from serving.policy.store import (
    history,
    merge_policy,
    validation_message,
)
from serving.responses import OrjsonResponse

MAX_VERSION = 2**31 - 1  # the column is a 32-bit INTEGER


router = APIRouter(prefix="/v1/policy", tags=["policy"])


class PolicyFields(BaseModel):
    """Fields of the policy to change; those left out keep their current value."""

    model_config = ConfigDict(extra="forbid")

    sales_threshold: float | None = Field(
        None, ge=0, le=100, description="Scores at or above go to sales."
    )
    nurture_threshold: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Scores at or above, below the sales threshold, are nurtured.",
    )
    grades: GradeBands | None = Field(None, description="Lowest score of grades A, B and C.")
    rules: list[HardRule] | None = Field(
        None, description="Hard rules in order (first match decides); [] removes them all."
    )


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
    reason: str = Field(min_length=1, max_length=2000, description="Why: kept in the history.")
    expected_version: int | None = Field(
        None,
        ge=0,
        le=MAX_VERSION,
        description="The version you edited; the change is refused (409) if it is no longer current.",
    )


class Rollback(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"version": 2, "reason": "Back to the February policy: too many leads"}]
        },
    )

    version: int = Field(
        ge=0, le=MAX_VERSION, description="The version to restore (0: the model's default policy)."
    )
    reason: str = Field(min_length=1, max_length=2000)
    expected_version: int | None = Field(None, ge=0, le=MAX_VERSION)


class SimulateRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"by": "capacity", "value": 40},
                {"by": "precision", "value": 0.3},
                {"by": "value", "value": 12000, "cost_per_lead": 300},
                {"threshold": 55, "source": "recent", "days": 28},
            ]
        },
    )

    by: Literal["value", "capacity", "precision", "recall"] | None = Field(
        None,
        description="value: most net value a week (value = what a win is worth, cost_per_lead = cost "
        "of working a lead); capacity: about `value` leads a week to sales; precision / recall: "
        "reach the target `value` (0-1).",
    )
    value: float | None = Field(None, allow_inf_nan=False, description="The target for `by`.")
    cost_per_lead: float = Field(1.0, ge=0, allow_inf_nan=False)
    threshold: float | None = Field(
        None, ge=0, le=100, description="Evaluate this sales threshold."
    )
    source: Literal["holdout", "recent"] = Field(
        "holdout",
        description="holdout: the champion's held-out leads with outcomes; recent: the score log.",
    )
    days: float = Field(28, gt=0, le=3650, description="For source=recent: how far back to look.")
    include_table: bool = Field(True, description="Return the whole table (thresholds 0-100).")


@router.get("", summary="The qualification policy in force")
async def get_policy(_key: ReaderKey, in_force: PolicyDep) -> OrjsonResponse:
    return OrjsonResponse(in_force.to_dict())


@router.put(
    "",
    summary="Change the policy (ops): a new audited version, in force in every worker within a second",
    responses={409: {"description": "The policy changed since `expected_version`"}},
)
async def put_policy(change: PolicyChange, key: OpsKey, policies: PolicyCacheDep) -> OrjsonResponse:
    fields = change.policy.model_dump(exclude_unset=True, mode="json")
    if not fields:
        raise RequestProblem(
            422,
            "policy: nothing to change; give at least one of sales_threshold, "
            "nurture_threshold, grades, rules",
            [problem("no policy field given", field="policy")],
        )
    try:
        policy = merge_policy(policies.current().policy, fields)
    except ValidationError as error:
        message = validation_message(error)
        raise RequestProblem(422, message, [problem(message, field="policy")]) from None
    saved = await run_in_threadpool(
        policies.save, policy, key.name, change.reason, change.expected_version
    )
    return OrjsonResponse(saved.to_dict())


@router.post("/rollback", summary="Restore an earlier version (ops), as a new audited version")
async def rollback_policy(body: Rollback, key: OpsKey, policies: PolicyCacheDep) -> OrjsonResponse:
    saved = await run_in_threadpool(
        policies.rollback, body.version, key.name, body.reason, body.expected_version
    )
    return OrjsonResponse(saved.to_dict())


@router.get("/history", summary="Every saved version, newest first: who, when, why, what changed")
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
    summary="What a threshold would do: leads a week to sales, expected wins, precision, recall, lift",
)
async def simulate_policy(
    body: SimulateRequest,
    _key: ReaderKey,
    current: PolicyDep,
    models: ModelStoreDep,
    engine: EngineDep,
) -> OrjsonResponse:
    if body.by is not None and body.value is None:
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
            )
        except PolicyError as error:
            raise RequestProblem(422, str(error), [problem(str(error), field="value")]) from None
        result["current"]["version"] = current.version
        return result

    return OrjsonResponse(await run_in_threadpool(run))
