"""Provisioned autoscaling and A/B builders: exact requests, botocore's API model, every bad input."""

from __future__ import annotations

import math
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from sagemaker_vision import scaling
from sagemaker_vision.config import ConfigError
from sagemaker_vision.requests import PACKAGE_TAG, PACKAGE_TAG_VALUE

_SESSION = get_session()
TAGS = [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "pipeline", "Value": "shapes"}]


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
    return scaling.target_tracking_policy(endpoint, variant, **args)


def ab(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "endpoint_config_name": "shapes-ab-1", "champion_model": "shapes-1", "challenger_model": "shapes-2",
        "instance_type": "ml.m5.large", "instance_count": 2, "challenger_weight": 0.1, "tags": TAGS,
    }
    args.update(overrides)
    return scaling.ab_endpoint_config_request(**args)


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


# -- A/B config ----------------------------------------------------------------------------------
def test_ab_config_splits_traffic_and_is_a_valid_create_endpoint_config():
    request = ab()
    assert request["EndpointConfigName"] == "shapes-ab-1"
    assert request["ProductionVariants"] == [
        {"VariantName": "Champion", "ModelName": "shapes-1", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 2, "InitialVariantWeight": 0.9},
        {"VariantName": "Challenger", "ModelName": "shapes-2", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 2, "InitialVariantWeight": 0.1},
    ]
    assert request["Tags"] == TAGS
    assert_valid("sagemaker", "CreateEndpointConfig", request)


def test_ab_config_adds_the_package_tag_when_missing():
    request = ab(tags={"pipeline": "shapes"})
    assert request["Tags"] == [{"Key": "pipeline", "Value": "shapes"}, {"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}]


def test_ab_config_refuses_serverless_citing_aws():
    with pytest.raises(ConfigError) as err:
        ab(endpoint_type="serverless")
    assert err.value.field == "endpoint_type"
    assert "single production variant" in str(err.value)
    assert scaling.SERVERLESS_EXCLUSIONS_URL in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"challenger_weight": 0}, "challenger_weight"),
        ({"challenger_weight": 1}, "challenger_weight"),
        ({"challenger_weight": 1.5}, "challenger_weight"),
        ({"challenger_weight": -0.1}, "challenger_weight"),
        ({"challenger_weight": True}, "challenger_weight"),
        ({"challenger_weight": "0.1"}, "challenger_weight"),
        ({"challenger_weight": math.nan}, "challenger_weight"),
        ({"challenger_model": "shapes-1"}, "challenger_model"),
        ({"champion_model": "shapes_1"}, "champion_model"),
        ({"endpoint_config_name": "x" * 64}, "endpoint_config_name"),
        ({"instance_type": "m5.large"}, "instance_type"),
        ({"instance_count": 0}, "instance_count"),
        ({"endpoint_type": "async"}, "endpoint_type"),
        ({"tags": "managed-by"}, "tags"),
        ({"tags": [{"Key": PACKAGE_TAG, "Value": "someone-else"}]}, "tags[0]"),
        ({"tags": [{"Key": "aws:x", "Value": "y"}]}, "tags[0]"),
        ({"tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}, "tags[1]"),
        ({"tags": [{"Key": "a"}]}, "tags[0]"),
        ({"tags": {f"k{i}": "v" for i in range(50)}}, "tags"),  # 50 + the package tag
    ],
)
def test_bad_ab_input_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        ab(**overrides)
    assert err.value.field == field


# -- promotion -----------------------------------------------------------------------------------
def ab_described(champion: float, challenger: float, status: str = "InService") -> dict[str, Any]:
    return {"EndpointName": "shapes", "EndpointStatus": status, "ProductionVariants": [
        {"VariantName": "Champion", "CurrentWeight": champion, "DesiredWeight": champion},
        {"VariantName": "Challenger", "CurrentWeight": challenger, "DesiredWeight": challenger},
    ]}


def test_promotion_request_is_valid_and_shifts_everything_to_the_challenger():
    request = scaling.promotion_request("shapes")
    assert request == {"EndpointName": "shapes", "DesiredWeightsAndCapacities": [
        {"VariantName": "Challenger", "DesiredWeight": 1.0}, {"VariantName": "Champion", "DesiredWeight": 0.0}]}
    assert_valid("sagemaker", "UpdateEndpointWeightsAndCapacities", request)


def test_promote_updates_weights_then_waits_in_service():
    client = FakeSageMaker(ab_described(0.9, 0.1), ab_described(0.0, 1.0))
    result = scaling.promote_challenger(client, "shapes", waiter_delay=1, waiter_max_attempts=5)
    assert client.updates == [scaling.promotion_request("shapes")]
    assert client.describes == 2  # before, then the wait's first poll sees InService
    assert result == {"endpoint_name": "shapes", "changed": True, "weights": {"Champion": 0.0, "Challenger": 1.0}}


def test_promote_is_a_no_op_when_already_promoted():
    client = FakeSageMaker(ab_described(0.0, 1.0))
    result = scaling.promote_challenger(client, "shapes")
    assert client.updates == [] and client.waits == []
    assert result["changed"] is False


def test_promote_waits_for_an_endpoint_in_progress_first():
    client = FakeSageMaker(ab_described(0.9, 0.1, "Updating"), ab_described(0.9, 0.1), ab_described(0.0, 1.0))
    scaling.promote_challenger(client, "shapes", waiter_delay=1, waiter_max_attempts=5)
    assert client.describes == 3 and len(client.updates) == 1


@pytest.mark.parametrize("status", ["Failed", "UpdateRollbackFailed", "OutOfService", "Deleting"])
def test_wait_in_service_fails_at_the_first_poll_that_sees_a_failed_state(status):
    # The old wait (boto's endpoint_in_service waiter) failed on Failed only: UpdateRollbackFailed and
    # OutOfService were polled until the attempts ran out.
    failed = {**ab_described(0.9, 0.1, status), "FailureReason": "the old fleet could not be restored"}
    client, slept = FakeSageMaker(ab_described(0.9, 0.1, "Updating"), failed), []
    with pytest.raises(RuntimeError, match=f"shapes is {status}: the old fleet could not be restored"):
        scaling.wait_in_service(client, "shapes", waiter_delay=30, waiter_max_attempts=100, sleep=slept.append)
    assert client.describes == 2 and slept == [30]


def test_wait_in_service_polls_for_the_whole_budget_then_says_the_operation_goes_on():
    client, slept = FakeSageMaker(ab_described(0.9, 0.1, "Updating")), []
    with pytest.raises(RuntimeError, match="still Updating after 5 checks 30 s apart; the operation goes on"):
        scaling.wait_in_service(client, "shapes", waiter_delay=30, budget_s=100, sleep=slept.append)
    assert client.describes == 5 and slept == [30, 30, 30, 30]  # 4 delays span 120 s >= 100 s


def test_wait_in_service_uses_the_one_waiter_definition(monkeypatch):
    # The acceptors of endpoint_waits.ENDPOINT_SETTLED_MODEL decide; the loop no longer has its own list.
    from sagemaker_vision import endpoint_waits as waits

    model = {"version": 2, "waiters": {waits.ENDPOINT_SETTLED: {
        **waits.ENDPOINT_SETTLED_MODEL["waiters"][waits.ENDPOINT_SETTLED],
        "acceptors": [{"matcher": "path", "argument": "EndpointStatus", "expected": "Updating",
                       "state": "success"}]}}}
    monkeypatch.setattr(waits, "ENDPOINT_SETTLED_MODEL", model)
    client = FakeSageMaker(ab_described(0.9, 0.1, "Updating"))
    assert scaling.wait_in_service(client, "shapes", waiter_delay=1, waiter_max_attempts=3,
                                   sleep=lambda _: None)["EndpointStatus"] == "Updating"


def test_wait_in_service_fails_at_once_on_an_endpoint_that_is_gone():
    from botocore.exceptions import ClientError

    class Gone:
        def describe_endpoint(self, EndpointName):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find endpoint"}},
                              "DescribeEndpoint")

    with pytest.raises(RuntimeError, match="cannot be waited for.*Could not find endpoint"):
        scaling.wait_in_service(Gone(), "shapes", waiter_delay=1, waiter_max_attempts=50, sleep=lambda _: None)


def test_promote_fails_when_the_weights_did_not_move():
    client = FakeSageMaker(ab_described(0.9, 0.1), ab_described(0.9, 0.1))
    with pytest.raises(RuntimeError, match="weights did not change"):
        scaling.promote_challenger(client, "shapes")


def test_promote_refuses_an_endpoint_without_both_variants():
    client = FakeSageMaker(described())
    with pytest.raises(ConfigError, match=r"not an A/B endpoint: it has variants \['AllTraffic'\]"):
        scaling.promote_challenger(client, "shapes")
    assert client.updates == []


@pytest.mark.parametrize(
    ("variants", "promoted"),
    [
        (ab_described(0.0, 1.0)["ProductionVariants"], True),
        (ab_described(0.5, 0.5)["ProductionVariants"], False),
        # Desired already shifted but current not yet: an update is still in flight.
        ([{"VariantName": "Champion", "CurrentWeight": 0.5, "DesiredWeight": 0.0},
          {"VariantName": "Challenger", "CurrentWeight": 0.5, "DesiredWeight": 1.0}], False),
        ([], False),
    ],
)
def test_is_promoted(variants, promoted):
    assert scaling.is_promoted({"ProductionVariants": variants}) is promoted
