"""Provisioned autoscaling builders: exact requests, botocore's API model, every bad input; the released record."""

from __future__ import annotations

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
