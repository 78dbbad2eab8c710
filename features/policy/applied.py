"""Which qualification policy decided a batch of leads, named the same way by every scorer.

The API answers with the version of the policy in force (`policy_version`: 0 is the model's own
default, 1 and up what marketing ops saved). Batch scoring (`leadscore score`) and the MLflow
pyfunc (`mlflow models serve`, `spark_udf`) apply the policy they are given and say which one in a
`policy` column, one of:

- ``model default v3``: the policy shipped in model version 3 (``model default (run <id>)`` for a
  model not loaded through the registry);
- ``service policy v5``: version 5 of the policy saved in the service database;
- ``policy from params``: a policy passed to the pyfunc without a version number.

Reading the service database is `serving.policy.store`'s job; this module only names the result
and reads the pyfunc's `policy` parameter (pure: no files, no database).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from features.policy.rules import Policy, PolicyError

MODEL_DEFAULT_VERSION = 0  # the service's version number of the model's own policy


@dataclass(frozen=True)
class AppliedPolicy:
    """A policy, the words that say where it came from, and its service version number (0: the
    model's own or one given without a number), which salts the exploration draw."""

    policy: Policy
    label: str
    version: int = MODEL_DEFAULT_VERSION


def model_default(policy: Policy, metadata: Mapping[str, Any] | None = None) -> AppliedPolicy:
    """The model's own policy, named by the model's registered version (or its run)."""
    metadata = metadata or {}
    version, run_id = metadata.get("version"), metadata.get("run_id")
    if version not in (None, ""):
        return AppliedPolicy(policy, f"model default v{version}")
    if run_id:
        return AppliedPolicy(policy, f"model default (run {run_id})")
    return AppliedPolicy(policy, "model default")


def service_policy(version: int, policy: Policy, default: AppliedPolicy) -> AppliedPolicy:
    """Version `version` of the service's policy (version 0: the model's own, `default`)."""
    if version == MODEL_DEFAULT_VERSION:
        return default
    return AppliedPolicy(policy, f"service policy v{version}", version)


def policy_param(value: Any, default: AppliedPolicy) -> AppliedPolicy:
    """The pyfunc's optional `policy` parameter: JSON text (or a mapping) of a policy, or of a
    policy version as `GET /v1/policy` answers it (``{"version": 5, "policy": {...}}``).
    Empty or absent: `default`. Raises `PolicyError` naming the problem and the fix."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise PolicyError(
                f"params.policy is not JSON ({error.msg} at character {error.pos}): pass the "
                'policy as JSON text, e.g. {"sales_threshold": 40, "nurture_threshold": 20}, or '
                "the answer of GET /v1/policy"
            ) from None
    if not isinstance(value, Mapping):
        raise PolicyError(
            f"params.policy must be a JSON object (a policy, or the answer of GET /v1/policy), "
            f"got {type(value).__name__}"
        )
    version = value.get("version") if "policy" in value else None
    body = value["policy"] if "policy" in value else value
    try:
        policy = Policy.model_validate(body)
    except ValidationError as error:
        problems = "; ".join(
            f"params.policy{''.join(f'.{p}' for p in item['loc'])}: "
            f"{item['msg'].removeprefix('Value error, ')}"
            for item in error.errors()
        )
        raise PolicyError(problems) from None
    if version is None:
        return AppliedPolicy(policy, "policy from params")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise PolicyError(
            f"params.policy.version must be a policy version number (0 or more), got {version!r}"
        )
    return service_policy(version, policy, default)
