"""The emulator's UpdateEndpoint refuses what SageMaker's deployment guardrails refuse, endpoints
end in their failure states with reasons, and the deploy waits within budgets on the emulated clock.

Sources of each rule: ``local_aws.endpoints.check_deployment``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from botocore.exceptions import ClientError

from local_aws import Control, Emulator
from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.ab_test import ab_endpoint_config_request
from sagemaker_vision.core.autoscaling import SCALABLE_DIMENSION, resource_id
from sagemaker_vision.core.naming import CHALLENGER, CHAMPION, invocations_policy_name
from sagemaker_vision.hooks import sagemaker as sm_hooks
from sagemaker_vision.hooks.ab_test import end_ab_test, finish_ab_test
from sagemaker_vision.hooks.scaling import apply_autoscaling, recorded_released
from sagemaker_vision.operators import deploy as deploy_ops
from sagemaker_vision.triggers import endpoint as endpoint_triggers

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
TAGS = [{"Key": "managed-by", "Value": "sagemaker-vision"}]
_names = itertools.count()


@pytest.fixture
def emu(emulator_env: Emulator, aws_clients: dict[str, Any]) -> Iterator[Emulator]:
    """A fast timeline (0.1 real s per 600 emulated s); rules, durations and scale reset afterwards."""
    emulator_env.set_transition_seconds(0.1)
    yield emulator_env
    control = Control(emulator_env.endpoint_url)
    control.clear_faults()
    control.clear_durations()
    control.set_time_scale(None)
    emulator_env.set_transition_seconds(0.5)


@pytest.fixture
def sm(aws_clients: dict[str, Any]) -> Any:
    return aws_clients["sagemaker"]


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{int(time.time() * 1000) % 100000}"


def model(sm: Any, name: str) -> str:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Tags=TAGS, PrimaryContainer={
        "Image": IMAGE, "ModelDataUrl": f"s3://sagemaker-vision-test/{name}/model.tar.gz"})
    return name


def config(sm: Any, name: str, variants: dict[str, str], *, count: int = 1, serverless: bool = False) -> str:
    """An endpoint config with one variant per ``{variant name: model name}``."""
    spec: dict[str, Any] = ({"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}} if serverless
                            else {"InstanceType": "ml.m5.large", "InitialInstanceCount": count})
    weight = round(1 / len(variants), 6)
    sm.create_endpoint_config(EndpointConfigName=name, Tags=TAGS, ProductionVariants=[
        {"VariantName": variant, "ModelName": m, "InitialVariantWeight": weight, **spec}
        for variant, m in variants.items()])
    return name


def wait_status(sm: Any, endpoint: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_endpoint(EndpointName=endpoint)
        if described["EndpointStatus"] not in waits.IN_FLIGHT_STATES or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def serving(sm: Any, *, serverless: bool = False, count: int = 1) -> tuple[str, str]:
    """An InService endpoint on a one-variant AllTraffic config; returns (endpoint, model)."""
    endpoint, m = unique("gr-ep"), model(sm, unique("gr-m"))
    sm.create_endpoint(EndpointName=endpoint,
                       EndpointConfigName=config(sm, unique("gr-c"), {"AllTraffic": m}, count=count,
                                                 serverless=serverless))
    assert wait_status(sm, endpoint)["EndpointStatus"] == "InService"
    return endpoint, m


def blue_green(routing: dict[str, Any], *, timeout: int = 3600, termination: int = 0) -> dict[str, Any]:
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": termination,
                                      "MaximumExecutionTimeoutInSeconds": timeout}}


def refused(sm: Any, endpoint: str, config_name: str, deployment: dict[str, Any] | None, needle: str) -> None:
    with pytest.raises(ClientError) as err:
        kwargs: dict[str, Any] = {"EndpointName": endpoint, "EndpointConfigName": config_name}
        if deployment is not None:
            kwargs["DeploymentConfig"] = deployment
        sm.update_endpoint(**kwargs)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert needle in err.value.response["Error"]["Message"], err.value.response["Error"]["Message"]
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"  # nothing started


ALL_AT_ONCE = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}


# -- deployment guardrails -----------------------------------------------------------------------------
def test_blue_green_and_rolling_updates_must_keep_the_variant_names(sm, emu):
    endpoint, champion = serving(sm)
    challenger = model(sm, unique("gr-m"))
    ab = config(sm, unique("gr-ab"), {"Champion": champion, "Challenger": challenger})
    refused(sm, endpoint, ab, blue_green(ALL_AT_ONCE), "must have the same variant names")
    refused(sm, endpoint, ab, {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}},
            "must have the same variant names")
    renamed = config(sm, unique("gr-c"), {"Green": challenger})
    refused(sm, endpoint, renamed, {"RollingUpdatePolicy": {
        "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 0}},
        "must have the same variant names")
    # Without a DeploymentConfig the variant set may change: the A/B test starts.
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=ab)
    described = wait_status(sm, endpoint)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", ab)
    assert sorted(v["VariantName"] for v in described["ProductionVariants"]) == ["Challenger", "Champion"]


def test_retained_deployment_config_counts_as_a_guardrails_deployment(sm, emu):
    endpoint, m = serving(sm)
    same = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=same, DeploymentConfig=blue_green(ALL_AT_ONCE))
    assert wait_status(sm, endpoint)["EndpointConfigName"] == same
    renamed = config(sm, unique("gr-c"), {"Green": m})
    with pytest.raises(ClientError, match="same variant names"):
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=renamed, RetainDeploymentConfig=True)


def test_rolling_updates_exclude_multi_variant_and_serverless_endpoints(sm, emu):
    rolling = {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                                       "WaitIntervalInSeconds": 60}}
    endpoint, champion = serving(sm, count=2)
    ab = config(sm, unique("gr-ab"), {"Champion": champion, "Challenger": model(sm, unique("gr-m"))}, count=2)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=ab)
    assert wait_status(sm, endpoint)["EndpointConfigName"] == ab
    ab2 = config(sm, unique("gr-ab"), {"Champion": champion, "Challenger": model(sm, unique("gr-m"))}, count=2)
    refused(sm, endpoint, ab2, rolling, "not supported for multi-variant inference endpoints")

    endpoint, m = serving(sm, serverless=True)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))}, serverless=True)
    refused(sm, endpoint, again, rolling, "does not support a rolling deployment")


@pytest.mark.parametrize("deployment", [
    blue_green({"Type": "CANARY", "WaitIntervalInSeconds": 60,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}}),
    blue_green({"Type": "LINEAR", "WaitIntervalInSeconds": 60,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20}}),
    blue_green(ALL_AT_ONCE),
    {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}]}},
])
def test_serverless_endpoints_take_no_deployment_guardrails(sm, emu, deployment):
    # "Deployment guardrails only apply to Asynchronous inference and Real-time inference endpoint types."
    endpoint, _ = serving(sm, serverless=True)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))}, serverless=True)
    refused(sm, endpoint, again, deployment, "deployment guardrails only apply to asynchronous and real-time")
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=again)  # without one: fine
    assert wait_status(sm, endpoint)["EndpointConfigName"] == again


@pytest.mark.parametrize(("routing", "needle"), [
    ({"Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 51}},
     "CanarySize 51% is out of range"),
    ({"Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 3}},
     "CanarySize 3 of 4 instance(s) is out of range"),
    ({"Type": "CANARY", "WaitIntervalInSeconds": 60}, "CanarySize is required"),
    ({"Type": "LINEAR", "WaitIntervalInSeconds": 60, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}},
     "LinearStepSize 5% is out of range"),
    ({"Type": "LINEAR", "WaitIntervalInSeconds": 60, "LinearStepSize": {"Type": "INSTANCE_COUNT", "Value": 3}},
     "LinearStepSize 3 of 4 instance(s) is out of range"),
    ({"Type": "LINEAR", "WaitIntervalInSeconds": 60}, "LinearStepSize is required"),
])
def test_canary_and_linear_sizes_are_bounded_by_the_fleet(sm, emu, routing, needle):
    endpoint, _ = serving(sm, count=4)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))}, count=4)
    refused(sm, endpoint, again, blue_green(routing), needle)


def test_other_deployment_config_rules(sm, emu):
    endpoint, _ = serving(sm, count=2)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))}, count=2)
    refused(sm, endpoint, again, blue_green({"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}, timeout=600),
            "must be larger than the total waiting time")
    refused(sm, endpoint, again, {**blue_green(ALL_AT_ONCE), "RollingUpdatePolicy": {
        "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50}, "WaitIntervalInSeconds": 0}},
        "only one update policy")
    refused(sm, endpoint, again, {"RollingUpdatePolicy": {
        "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 60}, "WaitIntervalInSeconds": 0}},
        "MaximumBatchSize 60% is out of range")


def test_an_update_that_drops_or_resizes_an_autoscaled_variant_is_refused(sm, emu, aws_clients):
    # "If the update would change the instance type for any model that is a target for auto scaling, the
    # update fails"; so does removing an autoscaled variant (Update endpoints that use auto scaling).
    import boto3

    aas = boto3.client("application-autoscaling", endpoint_url=emu.endpoint_url, region_name="us-east-1")
    endpoint, m = serving(sm)
    target = {"ServiceNamespace": "sagemaker", "ResourceId": f"endpoint/{endpoint}/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    aas.register_scalable_target(**target, MinCapacity=1, MaxCapacity=2)
    renamed = config(sm, unique("gr-c"), {"Green": model(sm, unique("gr-m"))})
    refused(sm, endpoint, renamed, None, "registered with Application Auto Scaling and this update removes it")
    bigger = unique("gr-c")
    sm.create_endpoint_config(EndpointConfigName=bigger, Tags=TAGS, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": m, "InstanceType": "ml.m5.xlarge", "InitialInstanceCount": 1}])
    refused(sm, endpoint, bigger, None, "changes its instance type from ml.m5.large to ml.m5.xlarge")
    # A new model on the same variant and instance type is allowed; so is anything once deregistered.
    same = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))})
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=same)
    assert wait_status(sm, endpoint)["EndpointConfigName"] == same
    aas.deregister_scalable_target(**target)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=renamed)
    assert wait_status(sm, endpoint)["EndpointConfigName"] == renamed


# -- failure states, with reasons -------------------------------------------------------------------------
def test_update_rollback_failure_and_out_of_service_faults(sm, emu):
    control = Control(emu.endpoint_url)
    endpoint, _ = serving(sm)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))})
    control.add_fault(kind="update_rollback_failure", name_prefix=endpoint, reason="old fleet lost", count=1)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=again)
    described = wait_status(sm, endpoint)
    assert described["EndpointStatus"] == "UpdateRollbackFailed"
    assert "old fleet lost" in described["FailureReason"]
    with pytest.raises(ClientError, match="DeleteEndpoint is the only operation that can be performed"):
        sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=again)

    other = unique("gr-ep")
    control.add_fault(kind="endpoint_out_of_service", name_prefix=other, reason="capacity gone", count=1)
    sm.create_endpoint(EndpointName=other, EndpointConfigName=again)
    described = wait_status(sm, other)
    assert (described["EndpointStatus"], described["FailureReason"]) == ("OutOfService", "capacity gone")


@pytest.mark.parametrize(("kind", "status"), [("update_rollback_failure", "UpdateRollbackFailed"),
                                              ("endpoint_out_of_service", "OutOfService")])
def test_deploy_fails_at_once_on_a_failed_state_instead_of_polling_the_budget(sm, emu, kind, status):
    endpoint, _ = serving(sm)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))})
    Control(emu.endpoint_url).add_fault(kind=kind, name_prefix=endpoint, reason="rollback could not finish", count=1)
    op = deploy_ops.DeployEndpointOperator(task_id="deploy", endpoint_name=endpoint, endpoint_config_name=again,
                                   deployment_policy="all_at_once", wait_interval_s=120, check_interval=0.05,
                                   deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": mock.MagicMock()})
    budget = deferred.value.kwargs["budget"]
    started = time.monotonic()
    event = first_event(endpoint_triggers.EndpointTrigger(**deferred.value.trigger.serialize()[1]))
    # The old waiter (boto's endpoint_in_service) would poll budget / 0.05 times: hours.
    assert time.monotonic() - started < 10 and budget > 3600
    assert (event.payload["status"], event.payload["endpoint_status"]) == ("failed", status)
    with pytest.raises(AirflowFailException, match=f"is {status}: .*rollback could not finish"):
        op.execute_complete({"ti": mock.MagicMock()}, event.payload, **deferred.value.kwargs)


def first_event(trigger: Any, timeout: float = 60) -> Any:
    async def run() -> Any:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


# -- realistic emulated durations -------------------------------------------------------------------------
def test_a_blue_green_update_outlasts_60_polls_of_30_s_but_not_the_budget(sm, emu):
    """At 1200 emulated s per real s, a poll every 0.025 real s is a poll every 30 emulated s."""
    control = Control(emu.endpoint_url)
    endpoint, _ = serving(sm)
    control.set_time_scale(1200)
    again = config(sm, unique("gr-c"), {"AllTraffic": model(sm, unique("gr-m"))})
    op = deploy_ops.DeployEndpointOperator(task_id="deploy", endpoint_name=endpoint, endpoint_config_name=again,
                                   deployment_policy="canary", wait_interval_s=3600, termination_wait_s=3600,
                                   maximum_execution_timeout_s=14400, check_interval=0.025, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": mock.MagicMock()})
    # Emulated: a new fleet (480 s) + two baking periods (canary, then the rest: 2 x 3600 s) + the old
    # fleet's termination wait (3600 s) = 11280 s, 9.4 real s. 60 polls take 60 x (0.025 s + one
    # DescribeEndpoint): the update outlasts them by a wide margin even on a loaded machine.
    emulated = 480 + 2 * 3600 + 3600
    assert emulated > 60 * 30
    started = sm.describe_endpoint(EndpointName=endpoint)["PendingDeploymentSummary"]["StartTime"]
    # The provider's trigger with 60 polls gives up while the update is still running...
    provider = first_event(SageMakerTrigger(job_name=endpoint, job_type="endpoint", waiter_delay=0.025,
                                            waiter_max_attempts=60))
    assert provider.payload["status"] == "timeout"
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "Updating"
    # ...the operator's budget covers it: the same update, waited on to the end.
    assert deferred.value.kwargs["budget"] >= emulated
    event = first_event(endpoint_triggers.EndpointTrigger(**deferred.value.trigger.serialize()[1]))
    assert event.payload["status"] == "success"
    result = op.execute_complete({"ti": mock.MagicMock()}, event.payload, **deferred.value.kwargs)
    assert (result["action"], result["endpoint_config_name"]) == ("updated", again)
    # DescribeEndpoint reports emulated time: the update ended its emulated duration after it started.
    ended = sm.describe_endpoint(EndpointName=endpoint)["LastModifiedTime"]
    assert abs((ended - started).total_seconds() - emulated) < 2


# -- A/B: champion -> challenger -> promote, or drop ----------------------------------------------------------
def test_ab_flow_through_the_operator_and_the_scaling_helpers(sm, emu):
    endpoint, champion = serving(sm)
    challenger = model(sm, unique("gr-m"))
    ab = ab_endpoint_config_request(endpoint_config_name=unique("gr-ab"), champion_model=champion,
                                    challenger_model=challenger, instance_type="ml.m5.large",
                                    instance_count=1, challenger_weight=0.2, tags=TAGS)
    sm.create_endpoint_config(**ab)
    op = deploy_ops.DeployEndpointOperator(task_id="deploy", endpoint_name=endpoint, endpoint_config_name=ab[
        "EndpointConfigName"], deployment_policy="canary", wait_interval_s=120, check_interval=0.05,
        deferrable=False, rollback_alarms=False, alarm_names=["gr-alarm"])
    assert op.execute({"ti": mock.MagicMock()})["action"] == "updated"
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described.get("LastDeploymentConfig") is None  # AWS would refuse one: the variant names changed
    weights = {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}
    assert weights == {"Champion": 0.8, "Challenger": 0.2}

    # A later run's challenger against the same champion: same names, so blue/green guardrails apply.
    second = model(sm, unique("gr-m"))
    ab2 = ab_endpoint_config_request(endpoint_config_name=unique("gr-ab"), champion_model=champion,
                                     challenger_model=second, instance_type="ml.m5.large",
                                     instance_count=2, challenger_weight=0.2, tags=TAGS)
    sm.create_endpoint_config(**ab2)
    op2 = deploy_ops.DeployEndpointOperator(task_id="deploy", endpoint_name=endpoint, endpoint_config_name=ab2[
        "EndpointConfigName"], deployment_policy="canary", canary_percent=50, wait_interval_s=120,
        check_interval=0.05, deferrable=False, rollback_alarms=False, alarm_names=["gr-alarm"])
    assert op2.execute({"ti": mock.MagicMock()})["action"] == "updated"
    assert sm.describe_endpoint(EndpointName=endpoint)["LastDeploymentConfig"]["BlueGreenUpdatePolicy"][
        "TrafficRoutingConfiguration"]["Type"] == "CANARY"

    result = finish_ab_test(sm, endpoint, "promote", waiter_delay=0.05)
    assert result["promotion"]["weights"] == {"Champion": 0.0, "Challenger": 1.0}
    assert (result["model_name"], result["changed"]) == (second, True)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["AllTraffic"]
    assert sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])[
        "ProductionVariants"][0]["ModelName"] == second
    assert sm_hooks.production_map(sm, endpoint) is None  # models here carry no validation-map tag
    again = finish_ab_test(sm, endpoint, "promote", waiter_delay=0.05)  # a rerun changes nothing
    assert (again["changed"], again["promotion"]) == (False, None)


def test_ab_drop_returns_to_the_champion_alone(sm, emu):
    endpoint, champion = serving(sm)
    ab = ab_endpoint_config_request(endpoint_config_name=unique("gr-ab"), champion_model=champion,
                                    challenger_model=model(sm, unique("gr-m")), instance_type="ml.m5.large",
                                    instance_count=1, challenger_weight=0.5, tags=TAGS)
    sm.create_endpoint_config(**ab)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=ab["EndpointConfigName"])
    assert wait_status(sm, endpoint)["EndpointConfigName"] == ab["EndpointConfigName"]
    result = finish_ab_test(sm, endpoint, "drop", waiter_delay=0.05)
    assert (result["model_name"], result["promotion"]) == (champion, None)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert [(v["VariantName"], v["CurrentWeight"]) for v in described["ProductionVariants"]] == [("AllTraffic", 1.0)]


# -- released autoscaling is never lost ------------------------------------------------------------------------
def ab_autoscaled(sm: Any, emu: Emulator) -> tuple[str, str, Any]:
    """An A/B endpoint whose variants are autoscaled; the Champion also has a user's own step policy."""
    import boto3

    aas = boto3.client("application-autoscaling", endpoint_url=emu.endpoint_url, region_name="us-east-1")
    endpoint, champion = serving(sm)
    ab = ab_endpoint_config_request(endpoint_config_name=unique("gr-ab"), champion_model=champion,
                                    challenger_model=model(sm, unique("gr-m")), instance_type="ml.m5.large",
                                    instance_count=1, challenger_weight=0.5, tags=TAGS)
    sm.create_endpoint_config(**ab)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=ab["EndpointConfigName"])
    assert wait_status(sm, endpoint)["EndpointConfigName"] == ab["EndpointConfigName"]
    for variant in (CHAMPION, CHALLENGER):
        apply_autoscaling(aas, sm, endpoint, variant, min_capacity=1, max_capacity=3,
                          target_invocations_per_instance=50)
    aas.put_scaling_policy(
        PolicyName="users-own", ServiceNamespace="sagemaker", PolicyType="StepScaling",
        ResourceId=resource_id(endpoint, CHAMPION), ScalableDimension=SCALABLE_DIMENSION,
        StepScalingPolicyConfiguration={"AdjustmentType": "ChangeInCapacity", "Cooldown": 60,
                                        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]})
    return endpoint, ab["EndpointConfigName"], aas


def scaled_policies(aas: Any, endpoint: str) -> dict[str, set[tuple[str, str]]]:
    prefix = f"endpoint/{endpoint}/variant/"
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    found: dict[str, set[tuple[str, str]]] = {t["ResourceId"][len(prefix):]: set() for t in targets
                                              if t["ResourceId"].startswith(prefix)}
    for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]:
        if p["ResourceId"].startswith(prefix):
            found.setdefault(p["ResourceId"][len(prefix):], set()).add((p["PolicyName"], p["PolicyType"]))
    return found


def test_a_rolled_back_end_of_ab_test_puts_every_released_policy_back(sm, emu):
    # The old end_ab_test released the A/B variants' autoscaling, and a rolled-back update left them unscaled.
    endpoint, ab_config, aas = ab_autoscaled(sm, emu)
    before = scaled_policies(aas, endpoint)
    assert ("users-own", "StepScaling") in before[CHAMPION]
    Control(emu.endpoint_url).add_fault(kind="update_endpoint_failure", name_prefix=endpoint, reason="bad canary",
                                        count=1)
    with pytest.raises(RuntimeError, match="rolled back"):
        end_ab_test(sm, endpoint, CHAMPION, autoscaling_client=aas, waiter_delay=0.05)
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == ab_config
    assert scaled_policies(aas, endpoint) == before
    arn = sm.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    assert recorded_released(sm, arn) == {}  # restored, so the record is cleared


def test_a_timed_out_end_of_ab_test_is_restored_by_the_rerun(sm, emu):
    # The old rerun found the single-variant config serving, released nothing and restored nothing.
    endpoint, _, aas = ab_autoscaled(sm, emu)
    Control(emu.endpoint_url).set_duration("endpoint_update", 1800, name_prefix=endpoint)
    with pytest.raises(RuntimeError, match="the operation goes on"):
        end_ab_test(sm, endpoint, CHAMPION, autoscaling_client=aas, waiter_delay=0.01,
                    waiter_max_attempts=2)
    assert scaled_policies(aas, endpoint) == {}  # released, the update still running
    arn = sm.describe_endpoint(EndpointName=endpoint)["EndpointArn"]
    assert set(recorded_released(sm, arn)["variants"]) == {CHAMPION, CHALLENGER}
    wait_status(sm, endpoint)
    result = end_ab_test(sm, endpoint, CHAMPION, autoscaling_client=aas, waiter_delay=0.05)
    assert result["changed"] is False and result["autoscaling"]["max_capacity"] == 3
    assert scaled_policies(aas, endpoint) == {"AllTraffic": {
        (invocations_policy_name(endpoint, "AllTraffic"), "TargetTrackingScaling"),
        ("users-own", "StepScaling")}}
    assert recorded_released(sm, arn) == {}


def test_the_operator_restores_released_autoscaling_when_the_update_rolls_back(sm, emu):
    import boto3

    aas = boto3.client("application-autoscaling", endpoint_url=emu.endpoint_url, region_name="us-east-1")
    endpoint, _ = serving(sm)
    apply_autoscaling(aas, sm, endpoint, "AllTraffic", min_capacity=1, max_capacity=2,
                      target_invocations_per_instance=40)
    before = scaled_policies(aas, endpoint)
    renamed = config(sm, unique("gr-c"), {"Green": model(sm, unique("gr-m"))})
    Control(emu.endpoint_url).add_fault(kind="update_endpoint_failure", name_prefix=endpoint, reason="bad fleet",
                                        count=1)
    op = deploy_ops.DeployEndpointOperator(task_id="deploy", endpoint_name=endpoint, endpoint_config_name=renamed,
                                   check_interval=0.05, deferrable=False, rollback_alarms=False)
    with pytest.raises(AirflowFailException, match="rolled back"):
        op.execute({"ti": mock.MagicMock()})
    assert scaled_policies(aas, endpoint) == before
