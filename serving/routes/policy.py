"""The qualification policy: read it, simulate a threshold, change it (ops), see and undo changes.

Reading, simulating and the history need a `scorer` or `ops` key; changing and rolling back need
`ops` (or `admin`). Every change is a new audited version; all workers apply it within ~0.5 s.
This router's lifespan starts the worker's `PolicyCache` as `app.state.policies`; the score route
reads `app.state.policies.current()`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from features.policy.rules import GradeBands, HardRule, PolicyError
from serving.deps import OpsKey, ReaderKey
from serving.errors import RequestProblem, problem
from serving.policy.simulation import (
    BasisUnavailable,
    holdout_basis,
    model_default_policy,
    recent_basis,
    simulate,
)
from serving.policy.store import (
    PolicyCache,
    PolicyConflict,
    PolicyStoreError,
    history,
    merge_policy,
    validation_message,
)
from serving.responses import OrjsonResponse

POLICY_REFRESH_SECONDS = 0.5
MAX_VERSION = 2**31 - 1  # the column is a 32-bit INTEGER


@asynccontextmanager
async def lifespan(app: FastAPI):
    cache = PolicyCache(
        app.state.engine,
        default=lambda: model_default_policy(app.state.model_store),
        refresh_seconds=getattr(
            app.state.settings, "policy_refresh_seconds", POLICY_REFRESH_SECONDS
        ),
    )
    await run_in_threadpool(cache.start)
    app.state.policies = cache
    try:
        yield
    finally:
        cache.stop()


router = APIRouter(prefix="/v1/policy", tags=["policy"], lifespan=lifespan)


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


def _cache(request: Request) -> PolicyCache:
    return request.app.state.policies


@router.get("", summary="The qualification policy in force")
async def get_policy(request: Request, _key: ReaderKey) -> OrjsonResponse:
    return OrjsonResponse(_cache(request).current().to_dict())


@router.put(
    "",
    summary="Change the policy (ops): a new audited version, in force in every worker within a second",
    responses={409: {"description": "The policy changed since `expected_version`"}},
)
async def put_policy(request: Request, change: PolicyChange, key: OpsKey) -> OrjsonResponse:
    cache = _cache(request)
    fields = change.policy.model_dump(exclude_unset=True, mode="json")
    if not fields:
        raise RequestProblem(
            422,
            "policy: nothing to change; give at least one of sales_threshold, "
            "nurture_threshold, grades, rules",
            [problem("no policy field given", field="policy")],
        )
    try:
        policy = merge_policy(cache.current().policy, fields)
    except ValidationError as error:
        message = validation_message(error)
        raise RequestProblem(422, message, [problem(message, field="policy")]) from None
    saved = await run_in_threadpool(
        _save, cache, policy, key.name, change.reason, change.expected_version
    )
    return OrjsonResponse(saved.to_dict())


def _save(cache: PolicyCache, policy, who: str, reason: str, expected: int | None):
    try:
        return cache.save(policy, who, reason, expected_version=expected)
    except PolicyConflict as error:
        raise RequestProblem(409, str(error)) from None
    except PolicyStoreError as error:
        raise RequestProblem(422, str(error)) from None


@router.post("/rollback", summary="Restore an earlier version (ops), as a new audited version")
async def rollback_policy(request: Request, body: Rollback, key: OpsKey) -> OrjsonResponse:
    cache = _cache(request)

    def run():
        try:
            return cache.rollback(
                body.version, key.name, body.reason, expected_version=body.expected_version
            )
        except PolicyConflict as error:
            raise RequestProblem(409, str(error)) from None
        except PolicyStoreError as error:
            status = 404 if "there is no policy version" in str(error) else 422
            raise RequestProblem(status, str(error)) from None

    saved = await run_in_threadpool(run)
    return OrjsonResponse(saved.to_dict())


@router.get("/history", summary="Every saved version, newest first: who, when, why, what changed")
async def policy_history(
    request: Request, _key: ReaderKey, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> OrjsonResponse:
    versions = await run_in_threadpool(history, request.app.state.engine, limit)
    current = _cache(request).current()
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
    request: Request, body: SimulateRequest, _key: ReaderKey
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
    current = _cache(request).current()

    def run() -> dict[str, Any]:
        try:
            basis = (
                holdout_basis(request.app.state.model_store)
                if body.source == "holdout"
                else recent_basis(request.app.state.engine, body.days)
            )
        except BasisUnavailable as error:
            raise RequestProblem(409, str(error)) from None
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
