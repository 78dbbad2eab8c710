"""Which policy decided: the labels every scorer writes, and the pyfunc's `policy` parameter."""

import json

import pytest

from features.policy.applied import model_default, policy_param, service_policy
from features.policy.rules import Policy, PolicyError

OWN = Policy(sales_threshold=50, nurture_threshold=20)
SAVED = Policy(sales_threshold=30, nurture_threshold=10)


def test_the_model_default_is_named_by_version_or_run():
    assert model_default(OWN, {"version": "3"}).label == "model default v3"
    assert model_default(OWN, {"version": None, "run_id": "abc"}).label == "model default (run abc)"
    assert model_default(OWN, {}).label == "model default"
    assert model_default(OWN, {"version": "3"}).policy is OWN


def test_a_saved_version_is_the_service_policy_and_version_0_the_model_default():
    default = model_default(OWN, {"version": "3"})
    assert service_policy(5, SAVED, default).label == "service policy v5"
    assert service_policy(5, SAVED, default).policy == SAVED
    assert service_policy(0, SAVED, default) is default


def test_the_policy_param_takes_a_policy_or_the_answer_of_get_v1_policy():
    default = model_default(OWN, {"version": "3"})
    assert policy_param(None, default) is default and policy_param("  ", default) is default
    given = policy_param(SAVED.model_dump_json(), default)
    assert given.policy == SAVED and given.label == "policy from params"
    answer = {"version": 4, "source": "saved", "policy": SAVED.model_dump(mode="json")}
    from_service = policy_param(json.dumps(answer), default)
    assert from_service.policy == SAVED and from_service.label == "service policy v4"
    assert policy_param({"version": 0, "policy": OWN.model_dump()}, default) is default


@pytest.mark.parametrize(
    "value,message",
    [
        ("{sales", "params.policy is not JSON (Expecting property name enclosed in double quotes "
                   "at character 1): pass the policy as JSON text"),
        ("[1, 2]", "params.policy must be a JSON object (a policy, or the answer of GET "
                   "/v1/policy), got list"),
        ('{"sales_threshold": 200}', "params.policy.sales_threshold: Input should be less than "
                                     "or equal to 100"),
        ('{"sales_threshold": 10, "nurture_threshold": 30}',
         "params.policy: nurture_threshold (30.0) must not be above sales_threshold (10.0)"),
        ('{"version": "v2", "policy": {}}',
         "params.policy.version must be a policy version number (0 or more), got 'v2'"),
    ],
)  # fmt: skip
def test_a_bad_policy_param_says_what_is_wrong(value, message):
    with pytest.raises(PolicyError) as error:
        policy_param(value, model_default(OWN))
    assert str(error.value).startswith(message)
