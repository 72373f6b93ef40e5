"""Provisioned autoscaling builders: exact requests, botocore's API model, every bad input; the released record."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from sagemaker_vision.core import autoscaling
from sagemaker_vision.core.validate import ConfigError

_SESSION = get_session()


def assert_valid(service: str, operation: str, request: dict[str, Any]) -> None:
    """Validate ``request`` against botocore's model of ``operation``, as boto3 does before sending."""
    shape = _SESSION.get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def policy(**overrides: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    args: dict[str, Any] = {"min_capacity": 1, "max_capacity": 4, "target_invocations_per_instance": 100}
    args.update(overrides)
    endpoint = args.pop("endpoint_name", "shapes")
    variant = args.pop("variant_name", "AllTraffic")
    return autoscaling.target_tracking_policy(endpoint, variant, **args)


# -- target tracking ---------------------------------------------------------------------------
def test_target_tracking_policy_is_exact_and_valid_for_application_autoscaling():
    register, put = policy(scale_in_cooldown_s=600, scale_out_cooldown_s=30)
    assert register == {
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/shapes/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "MinCapacity": 1,
        "MaxCapacity": 4,
    }
    assert put == {
        "PolicyName": "shapes-AllTraffic-invocations-per-instance",
        "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/shapes/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 600,
            "ScaleOutCooldown": 30,
        },
    }
    assert_valid("application-autoscaling", "RegisterScalableTarget", register)
    assert_valid("application-autoscaling", "PutScalingPolicy", put)


def test_default_cooldowns_scale_out_faster_than_in():
    _, put = policy()
    config = put["TargetTrackingScalingPolicyConfiguration"]
    assert (config["ScaleInCooldown"], config["ScaleOutCooldown"]) == (300, 60)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"min_capacity": 0}, "min_capacity"),  # real-time variants cannot scale to zero
        ({"min_capacity": 1.0}, "min_capacity"),
        ({"min_capacity": True}, "min_capacity"),
        ({"max_capacity": 0}, "max_capacity"),
        ({"min_capacity": 3, "max_capacity": 2}, "max_capacity"),
        ({"max_capacity": "4"}, "max_capacity"),
        ({"target_invocations_per_instance": 0}, "target_invocations_per_instance"),
        ({"target_invocations_per_instance": -5}, "target_invocations_per_instance"),
        ({"target_invocations_per_instance": math.nan}, "target_invocations_per_instance"),
        ({"target_invocations_per_instance": math.inf}, "target_invocations_per_instance"),
        ({"target_invocations_per_instance": True}, "target_invocations_per_instance"),
        ({"target_invocations_per_instance": "100"}, "target_invocations_per_instance"),
        ({"scale_in_cooldown_s": -1}, "scale_in_cooldown_s"),
        ({"scale_out_cooldown_s": 1.5}, "scale_out_cooldown_s"),
        ({"endpoint_name": "bad_name"}, "endpoint_name"),
        ({"endpoint_name": ""}, "endpoint_name"),
        ({"variant_name": "-x"}, "variant_name"),
    ],
)
def test_bad_target_tracking_input_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        policy(**overrides)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


# -- the released-autoscaling record, kept in the endpoint's tags ----------------------------------
ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/shapes"
RECORD = {"from_config": "cfg-1", "to_config": "cfg-2",
          "variants": {"AllTraffic": {"min_capacity": 1, "max_capacity": 3, "target_invocations_per_instance": 70.0}}}


def big_record(variants: int) -> dict[str, Any]:
    # Hex digests hardly compress, so the record spans many tags.
    return {"from_config": "cfg-1", "to_config": "cfg-2",
            "variants": {f"v{i}": hashlib.sha256(str(i).encode()).hexdigest() for i in range(variants)}}


def test_the_record_round_trips_through_valid_tag_values():
    tags = autoscaling.released_record_tags({"pipeline": "shapes"}, ENDPOINT_ARN, RECORD)
    assert [t["Key"] for t in tags] == [f"{autoscaling.RELEASED_TAG_PREFIX}0"]
    assert_valid("sagemaker", "AddTags", {"ResourceArn": ENDPOINT_ARN, "Tags": tags})
    on_endpoint = {"pipeline": "shapes", **{t["Key"]: t["Value"] for t in tags}}
    assert autoscaling.decode_released_blob(autoscaling.released_blob(on_endpoint)) == RECORD


def test_a_record_over_ten_tags_is_read_back_in_numeric_order():
    record = big_record(70)
    tags = autoscaling.released_record_tags({}, ENDPOINT_ARN, record)
    assert 10 < len(tags) <= autoscaling.MAX_RECORD_TAGS
    assert all(len(t["Value"]) <= autoscaling.TAG_VALUE_MAX for t in tags)
    assert_valid("sagemaker", "AddTags", {"ResourceArn": ENDPOINT_ARN, "Tags": tags})
    # ListTags gives no order: "...:10" must still follow "...:9".
    on_endpoint = {t["Key"]: t["Value"] for t in reversed(tags)}
    assert autoscaling.decode_released_blob(autoscaling.released_blob(on_endpoint)) == record


def test_a_shorter_record_empties_the_tags_of_the_longer_one_it_replaces():
    old = {t["Key"]: t["Value"] for t in autoscaling.released_record_tags({}, ENDPOINT_ARN, big_record(30))}
    tags = autoscaling.released_record_tags(old, ENDPOINT_ARN, RECORD)
    assert {t["Key"] for t in tags} == set(old)
    assert [t["Value"] for t in tags if t["Value"]] == [tags[0]["Value"]]
    on_endpoint = {**old, **{t["Key"]: t["Value"] for t in tags}}
    assert autoscaling.decode_released_blob(autoscaling.released_blob(on_endpoint)) == RECORD


def test_a_record_that_does_not_fit_is_refused_naming_the_endpoint():
    others = {f"k{i}": "v" for i in range(autoscaling.MAX_TAGS)}
    with pytest.raises(ConfigError, match="tags needed, 50 of 50 used") as err:
        autoscaling.released_record_tags(others, ENDPOINT_ARN, RECORD)
    assert err.value.field == "endpoint_name" and ENDPOINT_ARN in str(err.value)
    with pytest.raises(ConfigError, match="tags needed, 0 of 50 used"):  # more than MAX_RECORD_TAGS
        autoscaling.released_record_tags({}, ENDPOINT_ARN, big_record(100))


def test_clearing_empties_only_the_record_tags_that_hold_something():
    prefix = autoscaling.RELEASED_TAG_PREFIX
    assert autoscaling.cleared_record_tags({f"{prefix}0": "abc", f"{prefix}1": "", "pipeline": "shapes"}) == [
        {"Key": f"{prefix}0", "Value": ""}]
    assert autoscaling.cleared_record_tags({"pipeline": "shapes"}) == []
    assert autoscaling.released_blob({f"{prefix}0": "", "pipeline": "shapes"}) == ""


@pytest.mark.parametrize("blob", ["not base64 at all!", "aGVsbG8=", "eJzLSM3JyQcABiwCFQ=="])
def test_an_unreadable_record_is_a_value_error(blob):
    # Not base64; base64 but not zlib; zlib but not JSON ("hello").
    with pytest.raises(ValueError):
        autoscaling.decode_released_blob(blob)
