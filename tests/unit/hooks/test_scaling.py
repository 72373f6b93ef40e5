"""Applying autoscaling on fake clients: what is called, in which order, and what is refused before any write."""

from __future__ import annotations

from typing import Any

import pytest

from sagemaker_vision.core.async_inference import async_autoscaling_requests, scale_from_zero_alarm
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import scaling
from tests.unit.core.test_autoscaling import policy


# -- check_autoscalable / apply_autoscaling --------------------------------------------------
def described(status: str = "InService", **variant: Any) -> dict[str, Any]:
    return {"EndpointName": "shapes", "EndpointStatus": status,
            "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 1, **variant}]}


class FakeAutoscaling:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def register_scalable_target(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("register_scalable_target", kwargs))
        return {"ScalableTargetARN": "arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/x"}

    def put_scaling_policy(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("put_scaling_policy", kwargs))
        arn = "arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:x:policyName/"
        return {"PolicyARN": arn + kwargs["PolicyName"]}


class FakeSageMaker:
    def __init__(self, *descriptions: dict[str, Any]) -> None:
        self.descriptions = list(descriptions)
        self.updates: list[dict[str, Any]] = []
        self.waits: list[dict[str, Any]] = []
        self.describes = 0

    def describe_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.describes += 1
        return self.descriptions[0] if len(self.descriptions) == 1 else self.descriptions.pop(0)

    def update_endpoint_weights_and_capacities(self, **kwargs: Any) -> dict[str, Any]:
        self.updates.append(kwargs)
        return {"EndpointArn": "arn"}

    def get_waiter(self, name: str) -> Any:
        assert name == "endpoint_in_service"
        fake = self

        class Waiter:
            def wait(self, **kwargs: Any) -> None:
                fake.waits.append(kwargs)

        return Waiter()


def test_apply_autoscaling_registers_then_puts_the_policy():
    aas = FakeAutoscaling()
    summary = scaling.apply_autoscaling(aas, FakeSageMaker(described()), "shapes", min_capacity=1, max_capacity=3,
                                        target_invocations_per_instance=70)
    register, put = policy(max_capacity=3, target_invocations_per_instance=70)
    assert aas.calls == [("register_scalable_target", register), ("put_scaling_policy", put)]
    assert summary["resource_id"] == "endpoint/shapes/variant/AllTraffic"
    assert summary["policy_arn"].endswith("policyName/shapes-AllTraffic-invocations-per-instance")


@pytest.mark.parametrize(
    ("description", "variant", "message"),
    [
        (described(CurrentServerlessConfig={"MemorySizeInMB": 2048, "MaxConcurrency": 5}), "AllTraffic",
         "is serverless: it scales itself"),
        (described(), "Challenger", "has no variant 'Challenger'"),
        (described(status="Updating"), "AllTraffic", "is Updating; autoscaling needs it InService"),
    ],
)
def test_apply_autoscaling_refuses_before_writing_anything(description, variant, message):
    aas = FakeAutoscaling()
    with pytest.raises(ConfigError, match=message):
        scaling.apply_autoscaling(aas, FakeSageMaker(description), "shapes", variant, min_capacity=1,
                                  max_capacity=2, target_invocations_per_instance=10)
    assert aas.calls == []


def test_apply_autoscaling_validates_before_describing():
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"AWS called: {name}")

    with pytest.raises(ConfigError, match="max_capacity"):
        scaling.apply_autoscaling(NoCalls(), NoCalls(), "shapes", min_capacity=2, max_capacity=1,
                                  target_invocations_per_instance=10)


class Recorder:
    def __init__(self, description: dict[str, Any] | None = None) -> None:
        self.description = description
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def describe_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        return self.description

    def register_scalable_target(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("register_scalable_target", kwargs))
        return {}

    def put_scaling_policy(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("put_scaling_policy", kwargs))
        return {"PolicyARN": f"arn:aws:autoscaling:::policyName/{kwargs['PolicyName']}"}

    def put_metric_alarm(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("put_metric_alarm", kwargs))
        return {}


ASYNC_ENDPOINT = {"EndpointName": "shapes", "EndpointStatus": "InService",
                  "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": 1}],
                  "AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": "s3://bucket/out/"}}}


def test_apply_async_autoscaling_puts_target_both_policies_and_the_alarm_on_its_arn():
    aas, cloudwatch = Recorder(), Recorder()
    summary = scaling.apply_async_autoscaling(aas, cloudwatch, Recorder(ASYNC_ENDPOINT), "shapes", max_capacity=3)
    requests = async_autoscaling_requests("shapes", max_capacity=3)
    assert aas.calls == [("register_scalable_target", requests["register"]),
                         ("put_scaling_policy", requests["target_tracking"]),
                         ("put_scaling_policy", requests["step_scaling"])]
    step_arn = "arn:aws:autoscaling:::policyName/shapes-AllTraffic-has-backlog-without-capacity"
    assert cloudwatch.calls == [("put_metric_alarm", scale_from_zero_alarm("shapes", step_arn))]
    assert summary["min_capacity"] == 0 and summary["scale_from_zero_policy_arn"] == step_arn


@pytest.mark.parametrize(
    ("description", "message"),
    [
        ({**ASYNC_ENDPOINT, "AsyncInferenceConfig": None}, "is not an asynchronous endpoint"),
        ({**ASYNC_ENDPOINT, "EndpointStatus": "Creating"}, "is Creating, not InService"),
        ({**ASYNC_ENDPOINT, "ProductionVariants": [{"VariantName": "Blue"}]}, "has no variant 'AllTraffic'"),
    ],
)
def test_apply_async_autoscaling_refuses_before_writing(description, message):
    aas, cloudwatch = Recorder(), Recorder()
    with pytest.raises(ConfigError, match=message):
        scaling.apply_async_autoscaling(aas, cloudwatch, Recorder(description), "shapes", max_capacity=3)
    assert aas.calls == [] and cloudwatch.calls == []


def test_apply_async_autoscaling_checks_alarm_arguments_before_any_write():
    aas = Recorder()
    with pytest.raises(ConfigError, match="period_s"):
        scaling.apply_async_autoscaling(aas, Recorder(), Recorder(ASYNC_ENDPOINT), "shapes", max_capacity=3,
                                   alarm_period_s=45)
    assert aas.calls == []
