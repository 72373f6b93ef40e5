"""The deployment stage end to end against the embedded emulator (local_aws).

Real code paths: Airflow's ``aws_default`` connection (pointed at the emulator by
``emulator_env``), botocore's validation of every request, the package's ``endpoint_settled``
waiter (sync, and async inside ``EndpointTrigger``), CloudWatch alarms in moto, and the
emulator's UpdateEndpoint with its guardrails rules and injected failures.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import botocore.client
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from airflow.triggers.base import TriggerEvent

from local_aws import Control, Emulator
from sagemaker_vision.core import deployment as dep
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import sagemaker as sm_hooks
from sagemaker_vision.operators import deploy as deploy_ops
from sagemaker_vision.triggers import endpoint as endpoint_triggers

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
TRANSITION = 0.3
_names = itertools.count()


@pytest.fixture
def emu(emulator_env: Emulator, aws_clients: dict[str, Any]) -> Iterator[Emulator]:
    """The shared emulator on a short timeline; fault rules cleared afterwards."""
    emulator_env.set_transition_seconds(TRANSITION)
    yield emulator_env
    Control(emulator_env.endpoint_url).clear_faults()
    emulator_env.set_transition_seconds(0.5)


@pytest.fixture
def sm(aws_clients: dict[str, Any]) -> Any:
    return aws_clients["sagemaker"]


@pytest.fixture
def cloudwatch(emu: Emulator) -> Any:
    return boto3.client("cloudwatch", endpoint_url=emu.endpoint_url, region_name="us-east-1")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS operation any botocore client in this process makes, as ``service.Operation``."""
    made: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        made.append(f"{client.meta.service_model.service_name}.{operation_name}")
        return original(client, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    return made


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def model_and_config(sm: Any, name: str, *, map_value: float, provisioned: bool = False) -> None:
    """A model tagged with its mAP and an endpoint config for it, both through ensure_*."""
    model = {"ModelName": name, "ExecutionRoleArn": ROLE,
             "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": f"s3://sagemaker-vision-test/{name}/model.tar.gz"},
             "Tags": [{"Key": "managed-by", "Value": "sagemaker-vision"}]}
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": name}
    if provisioned:
        variant.update(InstanceType="ml.m5.large", InitialInstanceCount=1, InitialVariantWeight=1.0)
    else:
        variant["ServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert sm_hooks.ensure_model(sm, model, validation_map=map_value)[1] is True
    assert sm_hooks.ensure_endpoint_config(sm, {"EndpointConfigName": name, "ProductionVariants": [variant]})[1] is True


def operator(endpoint: str, config: str, **overrides: Any) -> deploy_ops.DeployEndpointOperator:
    args: dict[str, Any] = {"task_id": "deploy", "endpoint_name": endpoint, "endpoint_config_name": config,
                            "tags": {"load-test-allowed": "true"}, "check_interval": 1, "max_ingestion_time": 60,
                            "deferrable": False}
    args.update(overrides)
    return deploy_ops.DeployEndpointOperator(**args)


def context() -> dict[str, Any]:
    return {"ti": mock.MagicMock()}


def first_event(trigger: Any, timeout: float = 60) -> TriggerEvent:
    """Run the trigger's async loop as the triggerer would, until its first event."""

    async def run() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def resume(op: deploy_ops.DeployEndpointOperator) -> dict[str, Any]:
    """execute, then (as the triggerer and the worker would) rebuild the trigger, run it and resume."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.endpoint.EndpointTrigger"
    event = first_event(endpoint_triggers.EndpointTrigger(**kwargs))
    return getattr(op, deferred.value.method_name)(context(), event.payload, **(deferred.value.kwargs or {}))


# -- create, blue/green update, rerun --------------------------------------------------------------
def test_create_then_blue_green_update_then_rerun_changes_nothing(emu, sm, cloudwatch, calls):
    endpoint, first, second = unique("deploy-ep"), unique("deploy-m"), unique("deploy-m")
    model_and_config(sm, first, map_value=0.61, provisioned=True)
    model_and_config(sm, second, map_value=0.72, provisioned=True)
    assert sm_hooks.production_map(sm, endpoint) is None  # first deploy: nothing serves yet

    created = operator(endpoint, first).execute(context())
    assert created == {"endpoint_name": endpoint, "endpoint_config_name": first, "previous_config": None,
                       "action": "created"}
    tags = sm.list_tags(ResourceArn=sm.describe_endpoint(EndpointName=endpoint)["EndpointArn"])["Tags"]
    assert {"Key": "load-test-allowed", "Value": "true"} in tags
    assert sm_hooks.production_map(sm, endpoint) == 0.61

    update = operator(endpoint, second, deployment_policy="canary", canary_percent=20, wait_interval_s=120,
                      termination_wait_s=60, maximum_execution_timeout_s=900, alarm_latency_threshold_ms=500)
    updated = update.execute(context())
    assert updated == {"endpoint_name": endpoint, "endpoint_config_name": second, "previous_config": first,
                       "action": "updated"}
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", second)
    # What SageMaker got is the blue/green canary with the endpoint's own rollback alarms.
    assert described["LastDeploymentConfig"] == dep.deployment_config(
        "canary", endpoint_type="provisioned", canary_percent=20, wait_interval_s=120, termination_wait_s=60,
        maximum_execution_timeout_s=900, alarm_names=[f"{endpoint}-5xx", f"{endpoint}-latency"])
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix=endpoint)["MetricAlarms"]}
    assert set(alarms) == {f"{endpoint}-5xx", f"{endpoint}-latency"}
    assert alarms[f"{endpoint}-latency"]["Threshold"] == 500_000
    assert {"Name": "VariantName", "Value": "AllTraffic"} in alarms[f"{endpoint}-5xx"]["Dimensions"]
    assert sm_hooks.production_map(sm, endpoint) == 0.72  # the tag of the model now serving, read back

    # A rerun (a cleared task, a retry): the same answer, and nothing created or changed.
    calls.clear()
    modified = described["LastModifiedTime"]
    again = operator(endpoint, second, deployment_policy="canary", wait_interval_s=120).execute(context())
    assert again == {"endpoint_name": endpoint, "endpoint_config_name": second, "previous_config": second,
                     "action": "unchanged"}
    # Reads only (ListTags: is autoscaling left released by an earlier try?).
    assert calls and all(call.split(".")[1].startswith(("Describe", "List")) for call in calls), calls
    assert sm.describe_endpoint(EndpointName=endpoint)["LastModifiedTime"] == modified

    # ensure_* on a rerun reuse what exists: no Create* call.
    calls.clear()
    model = sm.describe_model(ModelName=second)
    request = {"ModelName": second, "ExecutionRoleArn": ROLE, "PrimaryContainer": model["PrimaryContainer"]}
    assert sm_hooks.ensure_model(sm, request, validation_map=0.72) == (model["ModelArn"], False)
    config = sm.describe_endpoint_config(EndpointConfigName=second)
    assert sm_hooks.ensure_endpoint_config(sm, {"EndpointConfigName": second,
                                          "ProductionVariants": config["ProductionVariants"]})[1] is False
    assert not [call for call in calls if ".Create" in call or ".AddTags" in call], calls


def test_same_named_model_with_other_artifacts_is_refused(emu, sm):
    name = unique("deploy-m")
    model_and_config(sm, name, map_value=0.6)
    request = {"ModelName": name, "ExecutionRoleArn": ROLE,
               "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": "s3://sagemaker-vision-test/other/model.tar.gz"}}
    with pytest.raises(sm_hooks.ResourceConflictError, match=f"Model {name} .*PrimaryContainer.ModelDataUrl"):
        sm_hooks.ensure_model(sm, request)


# -- failed update: the old config keeps serving ---------------------------------------------------------
def test_injected_update_failure_fails_the_task_and_the_old_config_keeps_serving(emu, sm):
    endpoint, first, second = unique("deploy-fail"), unique("deploy-m"), unique("deploy-m")
    model_and_config(sm, first, map_value=0.7)
    model_and_config(sm, second, map_value=0.75)
    assert operator(endpoint, first).execute(context())["action"] == "created"
    reason = "alarm deploy-fail-5xx went to ALARM (emulated)"
    Control(emu.endpoint_url).add_fault(kind="update_endpoint_failure", name_prefix=endpoint, reason=reason, count=1)

    with pytest.raises(AirflowFailException) as err:
        operator(endpoint, second).execute(context())
    assert reason in str(err.value)
    assert f"still serves {first}" in str(err.value)
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", first)
    assert sm_hooks.production_map(sm, endpoint) == 0.7  # the gate still compares against the old model


# -- deferrable: the provider's trigger, run as the triggerer would ------------------------------------
def test_deferred_create_and_update_resume_through_the_trigger(emu, sm):
    endpoint, first, second = unique("deploy-defer"), unique("deploy-m"), unique("deploy-m")
    model_and_config(sm, first, map_value=0.6)
    model_and_config(sm, second, map_value=0.65)

    assert resume(operator(endpoint, first, deferrable=True)) == {
        "endpoint_name": endpoint, "endpoint_config_name": first, "previous_config": None, "action": "created"}
    assert resume(operator(endpoint, second, deferrable=True)) == {
        "endpoint_name": endpoint, "endpoint_config_name": second, "previous_config": first, "action": "updated"}
    # Serverless: blue/green all at once, and no DeploymentConfig (no guardrails to ask for).
    assert sm.describe_endpoint(EndpointName=endpoint).get("LastDeploymentConfig") is None


def test_deferred_update_failure_raises_with_the_reason(emu, sm):
    endpoint, first, second = unique("deploy-defer-fail"), unique("deploy-m"), unique("deploy-m")
    model_and_config(sm, first, map_value=0.6)
    model_and_config(sm, second, map_value=0.65)
    assert operator(endpoint, first).execute(context())["action"] == "created"
    Control(emu.endpoint_url).add_fault(kind="update_endpoint_failure", name_prefix=endpoint,
                                        reason="model container failed its ping check", count=1)
    with pytest.raises(AirflowFailException, match=f"ping check.*still serves {first}"):
        resume(operator(endpoint, second, deferrable=True))
    assert sm.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == first


# -- an earlier try's update still running: wait for it, do not start another --------------------------
def test_a_retry_during_its_own_update_waits_instead_of_updating_again(emu, sm, calls):
    endpoint, first, second = unique("deploy-retry"), unique("deploy-m"), unique("deploy-m")
    model_and_config(sm, first, map_value=0.6)
    model_and_config(sm, second, map_value=0.65)
    assert operator(endpoint, first).execute(context())["action"] == "created"
    # Long enough that the retry still finds the update running on a cold, busy machine (1.5 s was not).
    emu.set_transition_seconds(4.0)
    sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=second)  # the first try, then it died
    calls.clear()
    result = operator(endpoint, second).execute(context())
    assert result == {"endpoint_name": endpoint, "endpoint_config_name": second, "previous_config": first,
                      "action": "updated"}
    assert "sagemaker.UpdateEndpoint" not in calls and "sagemaker.CreateEndpoint" not in calls


def test_a_failed_endpoint_is_refused_with_its_reason(emu, sm):
    endpoint, name = unique("deploy-broken"), unique("deploy-m")
    model_and_config(sm, name, map_value=0.6)
    Control(emu.endpoint_url).add_fault(kind="endpoint_failure", name_prefix=endpoint,
                                        reason="CannotStartContainerError (emulated)", count=1)
    with pytest.raises(AirflowFailException, match=r"is Failed: CannotStartContainerError \(emulated\)"):
        operator(endpoint, name).execute(context())
    with pytest.raises(AirflowFailException, match="DeleteEndpoint"):  # a rerun does not touch it
        operator(endpoint, name).execute(context())


def test_canary_on_a_serverless_endpoint_is_refused_before_anything_is_created(emu, sm):
    endpoint, name = unique("deploy-sl"), unique("deploy-m")
    model_and_config(sm, name, map_value=0.6)
    with pytest.raises(ConfigError) as err:
        operator(endpoint, name, deployment_policy="linear").execute(context())
    assert err.value.field == "deployment_policy"
    assert sm_hooks.production_map(sm, endpoint) is None  # no endpoint was created
