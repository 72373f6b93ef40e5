"""The deploy and rollback operators without AWS (operators.deploy, operators.rollback).

Requests are checked against botocore's API model; ensure_* and the operator talk to real
botocore clients with a ``Stubber`` (so an unexpected call fails the test) or to moto in-process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
)
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from sagemaker_vision.core import deployment as dep
from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.operators import deploy as deploy_ops
from sagemaker_vision.operators import rollback as rollback_ops
from sagemaker_vision.triggers import endpoint as endpoint_triggers
from tests.unit.deploy_support import (  # noqa: F401  (stubbed_sagemaker: the sagemaker fixture)
    REGION,
    arn,
    endpoint,
    not_found,
    stubbed_sagemaker,
)


# -- operator (stubbed client: every AWS call is accounted for) -----------------------------------
def operator(**overrides: Any) -> deploy_ops.DeployEndpointOperator:
    args: dict[str, Any] = {"task_id": "deploy", "endpoint_name": "shapes", "endpoint_config_name": "cfg-2",
                            "check_interval": 1, "deferrable": True}
    args.update(overrides)
    return deploy_ops.DeployEndpointOperator(**args)


def install(op: deploy_ops.DeployEndpointOperator, client: Any) -> None:
    hook = SageMakerVisionHook(aws_conn_id=None, region_name=REGION)
    hook.__dict__["conn"] = hook.__dict__["_client"] = client  # the cached_properties' slots: every call is stubbed
    op.__dict__["hook"] = hook  # the cached_property's slot


def config_response(name: str = "cfg-2", serverless: bool = True, variant: str = "AllTraffic") -> dict[str, Any]:
    spec = ({"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}} if serverless
            else {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1})
    return {"EndpointConfigName": name, "EndpointConfigArn": arn("endpoint-config", name),
            "ProductionVariants": [{"VariantName": variant, "ModelName": name, **spec}],
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"endpoint_name": "bad_name"}, "endpoint_name"),
    ({"endpoint_config_name": ""}, "endpoint_config_name"),
    ({"deployment_policy": "blue-green"}, "deployment_policy"),
    ({"canary_percent": "ten"}, "canary_percent"),
    ({"tags": "team=vision"}, "tags"),
    ({"alarm_names": "one"}, "alarm_names"),
    ({"alarm_latency_threshold_ms": 0}, "latency_threshold_ms"),
    ({"check_interval": 0}, "check_interval"),
])
def test_operator_rejects_bad_input_before_any_aws_call(sagemaker, overrides, field):
    client, _ = sagemaker  # no responses queued: any call would fail
    op = operator(**overrides)
    install(op, client)
    with pytest.raises(ConfigError) as err:
        op.execute({})
    assert err.value.field == field


def test_operator_refuses_canary_on_serverless_before_creating_anything(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response(serverless=True), {"EndpointConfigName": "cfg-2"})
    op = operator(deployment_policy="canary")
    install(op, client)
    with pytest.raises(ConfigError) as err:  # even on a first deploy, which would not use it yet
        op.execute({})
    assert err.value.field == "deployment_policy"


def test_operator_checks_templated_numbers(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response(serverless=False))
    op = operator(deployment_policy="canary", canary_percent="60")  # as rendered from "{{ params.x }}"
    install(op, client)
    with pytest.raises(ConfigError) as err:
        op.execute({})
    assert err.value.field == "canary_percent"


def test_operator_refuses_a_missing_endpoint_config(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint_config", **not_found("endpoint-config", "cfg-2"))
    op = operator()
    install(op, client)
    with pytest.raises(AirflowFailException, match="endpoint_config_name: endpoint config cfg-2 does not exist"):
        op.execute({})


def test_operator_refuses_a_failed_endpoint_with_its_reason(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response())
    stubber.add_response("describe_endpoint", endpoint("Failed", "cfg-1", reason="CannotStartContainerError"))
    op = operator()
    install(op, client)
    with pytest.raises(AirflowFailException, match="CannotStartContainerError.*DeleteEndpoint"):
        op.execute({})


def autoscaling_client() -> tuple[Any, Stubber]:
    client = boto3.client("application-autoscaling", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.activate()
    return client, stubber


TARGET = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/shapes/variant/AllTraffic",
          "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
# Two policies of two types: the invocations target tracking and a user's own step scaling policy.
TRACKING = {"TargetValue": 70.0, "PredefinedMetricSpecification": {
    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}, "ScaleInCooldown": 300, "ScaleOutCooldown": 60}
STEPS = {"AdjustmentType": "ChangeInCapacity", "Cooldown": 120,
         "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}]}
RELEASED = {"AllTraffic": {
    "target": {"MinCapacity": 1, "MaxCapacity": 3, "SuspendedState": {"DynamicScalingInSuspended": False}},
    "policies": [{"PolicyName": "p", "PolicyType": "TargetTrackingScaling",
                  "TargetTrackingScalingPolicyConfiguration": TRACKING, "Alarms": []},
                 {"PolicyName": "mine", "PolicyType": "StepScaling", "StepScalingPolicyConfiguration": STEPS,
                  "Alarms": ["my-alarm"]}],
    "min_capacity": 1, "max_capacity": 3, "target_invocations_per_instance": 70.0}}


def record_tags(record: dict[str, Any]) -> list[dict[str, str]]:
    """The tags scaling.record_released writes for ``record`` on an endpoint without them."""
    from sagemaker_vision.hooks import scaling

    fake = mock.MagicMock()
    fake.list_tags.return_value = {"Tags": []}
    scaling.record_released(fake, "arn", record)
    return fake.add_tags.call_args.kwargs["Tags"]


def stub_release(aas_stub: Stubber) -> None:
    described = {**TARGET, "MinCapacity": 1, "MaxCapacity": 3, "RoleARN": "arn:aws:iam::123456789012:role/x",
                 "CreationTime": WHEN, "SuspendedState": {"DynamicScalingInSuspended": False}}
    for _ in range(2):  # the operator's look, then release_autoscaling's own
        aas_stub.add_response("describe_scalable_targets", {"ScalableTargets": [described]},
                              {"ServiceNamespace": "sagemaker", "ResourceIds": [TARGET["ResourceId"]],
                               "ScalableDimension": TARGET["ScalableDimension"]})
    aas_stub.add_response("describe_scaling_policies", {"ScalingPolicies": [
        {**TARGET, "PolicyName": "p", "PolicyARN": "arn:p", "PolicyType": "TargetTrackingScaling",
         "TargetTrackingScalingPolicyConfiguration": TRACKING, "CreationTime": WHEN},
        {**TARGET, "PolicyName": "mine", "PolicyARN": "arn:mine", "PolicyType": "StepScaling",
         "StepScalingPolicyConfiguration": STEPS, "Alarms": [{"AlarmName": "my-alarm", "AlarmARN": "arn:a"}],
         "CreationTime": WHEN}]}, TARGET)


def stub_restore(stubber: Stubber, aas_stub: Stubber, status_config: str) -> None:
    """restore_autoscaling of RELEASED on AllTraffic: checks the endpoint, registers, puts both policies."""
    stubber.add_response("describe_endpoint", endpoint("InService", status_config))
    aas_stub.add_response("register_scalable_target", {}, {**TARGET, **RELEASED["AllTraffic"]["target"]})
    aas_stub.add_response("put_scaling_policy", {"PolicyARN": "arn:p2", "Alarms": []}, {
        **TARGET, "PolicyName": "p", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": TRACKING})
    aas_stub.add_response("put_scaling_policy", {"PolicyARN": "arn:mine2"}, {
        **TARGET, "PolicyName": "mine", "PolicyType": "StepScaling", "StepScalingPolicyConfiguration": STEPS})


def stub_update_with_release(stubber: Stubber, aas_stub: Stubber) -> dict[str, Any]:
    """DeployEndpointOperator up to UpdateEndpoint: AllTraffic (autoscaled) -> Green; returns the record."""
    record = {"from_config": "cfg-1", "to_config": "cfg-2", "variants": RELEASED}
    stubber.add_response("describe_endpoint_config", config_response(serverless=False, variant="Green"))
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1", variants=("AllTraffic",)))
    stub_release(aas_stub)
    stubber.add_response("describe_endpoint_config", config_response("cfg-1", serverless=False),
                         {"EndpointConfigName": "cfg-1"})
    stubber.add_response("list_tags", {"Tags": []})  # no earlier record
    stubber.add_response("list_tags", {"Tags": []})
    stubber.add_response("add_tags", {"Tags": record_tags(record)},
                         {"ResourceArn": arn("endpoint", "shapes"), "Tags": record_tags(record)})
    aas_stub.add_response("delete_scaling_policy", {}, {"PolicyName": "p", **TARGET})
    aas_stub.add_response("delete_scaling_policy", {}, {"PolicyName": "mine", **TARGET})
    aas_stub.add_response("deregister_scalable_target", {}, TARGET)
    return record


def stub_deployed_over(stubber: Stubber, new: str = "cfg-2", previous: str = "cfg-1") -> None:
    """The deployed-over tag every update writes first: the config a failed test rolls back to."""
    stubber.add_response("add_tags", {}, {"ResourceArn": arn("endpoint", "shapes"), "Tags": [
        {"Key": "sagemaker-vision:deployed-over", "Value": f"{new}/{previous}"}]})


def test_operator_records_then_releases_every_policy_of_a_variant_the_update_removes(sagemaker):
    # AWS fails an UpdateEndpoint that removes an autoscaled variant ("Update endpoints that use auto scaling").
    # The record (target + every policy in full) is in the endpoint's tags before anything is deleted, and
    # no longer in the deferral's kwargs, which a timeout or a retry through the "wait" path dropped.
    client, stubber = sagemaker
    aas, aas_stub = autoscaling_client()
    stub_update_with_release(stubber, aas_stub)
    stub_deployed_over(stubber)
    stubber.add_response("update_endpoint", {"EndpointArn": arn("endpoint", "shapes")},
                         {"EndpointName": "shapes", "EndpointConfigName": "cfg-2", "RetainDeploymentConfig": False})
    op = operator()
    install(op, client)
    op._autoscaling_client = lambda: aas
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    stubber.assert_no_pending_responses()
    aas_stub.assert_no_pending_responses()
    assert "released" not in deferred.value.kwargs


def test_a_refused_update_endpoint_puts_the_released_autoscaling_back_at_once(sagemaker):
    client, stubber = sagemaker
    aas, aas_stub = autoscaling_client()
    record = stub_update_with_release(stubber, aas_stub)
    stub_deployed_over(stubber)
    stubber.add_client_error("update_endpoint", service_error_code="ValidationException",
                             service_message="Cannot update endpoint", http_status_code=400)
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1"))  # the old config still serves
    stub_restore(stubber, aas_stub, "cfg-1")
    stubber.add_response("list_tags", {"Tags": record_tags(record)})
    stubber.add_response("add_tags", {}, {"ResourceArn": arn("endpoint", "shapes"),
                                          "Tags": [{"Key": t["Key"], "Value": ""} for t in record_tags(record)]})
    op = operator()
    install(op, client)
    op._autoscaling_client = lambda: aas
    with pytest.raises(Exception, match="Cannot update endpoint"):
        op.execute({})
    stubber.assert_no_pending_responses()
    aas_stub.assert_no_pending_responses()


def test_a_rolled_back_update_restores_the_recorded_autoscaling_after_a_retry(sagemaker):
    # The retry has no deferral kwargs: the record in the endpoint's tags is what is restored.
    client, stubber = sagemaker
    aas, aas_stub = autoscaling_client()
    record = {"from_config": "cfg-1", "to_config": "cfg-2", "variants": RELEASED}
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1", reason="alarm shapes-5xx in ALARM"))
    stubber.add_response("list_tags", {"Tags": record_tags(record)})
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1"))
    stub_restore(stubber, aas_stub, "cfg-1")
    stubber.add_response("list_tags", {"Tags": record_tags(record)})
    stubber.add_response("add_tags", {}, {"ResourceArn": arn("endpoint", "shapes"),
                                          "Tags": [{"Key": t["Key"], "Value": ""} for t in record_tags(record)]})
    op = operator()
    install(op, client)
    op._autoscaling_client = lambda: aas
    with mock.patch("sagemaker_vision.hooks.scaling.log") as log:
        with pytest.raises(AirflowFailException, match="still serves cfg-1"):
            op.execute_complete({}, {"status": "success", "job_name": "shapes"}, action="updated",
                                previous_config="cfg-1")
    stubber.assert_no_pending_responses()
    aas_stub.assert_no_pending_responses()
    # The step policy has a new ARN: the alarm that invoked the old one is named.
    assert any("my-alarm" in str(call) for call in log.warning.call_args_list)


def test_a_retry_that_finds_the_update_done_restores_kept_variants_and_warns_for_removed_ones(sagemaker):
    client, stubber = sagemaker
    aas, aas_stub = autoscaling_client()
    record = {"from_config": "cfg-1", "to_config": "cfg-2",
              "variants": {**RELEASED, "Gone": RELEASED["AllTraffic"]}}
    stubber.add_response("describe_endpoint_config", config_response(serverless=False))
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-2"))  # plan: unchanged
    stubber.add_response("list_tags", {"Tags": record_tags(record)})
    stub_restore(stubber, aas_stub, "cfg-2")
    stubber.add_response("list_tags", {"Tags": record_tags(record)})
    stubber.add_response("add_tags", {}, {"ResourceArn": arn("endpoint", "shapes"),
                                          "Tags": [{"Key": t["Key"], "Value": ""} for t in record_tags(record)]})
    op = operator()
    install(op, client)
    op._autoscaling_client = lambda: aas
    with mock.patch.object(type(op), "log", new_callable=mock.PropertyMock) as log:
        assert op.execute({})["action"] == "unchanged"
    stubber.assert_no_pending_responses()
    aas_stub.assert_no_pending_responses()
    assert any("Gone" in str(call) for call in log.return_value.warning.call_args_list)


def test_a_serverless_endpoint_going_provisioned_gets_no_deployment_config(sagemaker):
    # Guardrails do not apply to serverless endpoints: the serving fleet counts, decided before any write.
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response(serverless=False))
    serving = endpoint("InService", "cfg-1")
    serving["ProductionVariants"][0]["CurrentServerlessConfig"] = {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    stubber.add_response("describe_endpoint", serving)
    stub_deployed_over(stubber)
    stubber.add_response("update_endpoint", {"EndpointArn": arn("endpoint", "shapes")},
                         {"EndpointName": "shapes", "EndpointConfigName": "cfg-2", "RetainDeploymentConfig": False})
    op = operator(deployment_policy="canary", rollback_alarms=False, alarm_names=["mine"])
    install(op, client)
    with pytest.raises(TaskDeferred):
        op.execute({})
    stubber.assert_no_pending_responses()


def test_operator_updates_without_a_deployment_config_when_the_variant_names_change(sagemaker):
    # AWS refuses a blue/green DeploymentConfig when the variant names change (Deployment guardrails,
    # Exclusions); the old code refused the update itself, so an A/B test could never start.
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response(serverless=False, variant="Green"))
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1", variants=("AllTraffic",)))
    stub_deployed_over(stubber)
    stubber.add_response("update_endpoint", {"EndpointArn": arn("endpoint", "shapes")},
                         {"EndpointName": "shapes", "EndpointConfigName": "cfg-2", "RetainDeploymentConfig": False})
    op = operator(deployment_policy="canary")
    install(op, client)
    aas, aas_stub = autoscaling_client()
    aas_stub.add_response("describe_scalable_targets", {"ScalableTargets": []}, {
        "ServiceNamespace": "sagemaker", "ResourceIds": ["endpoint/shapes/variant/AllTraffic"],
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"})
    op._autoscaling_client = lambda: aas
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    stubber.assert_no_pending_responses()
    aas_stub.assert_no_pending_responses()
    # No DeploymentConfig sent, so no baking in the budget: a fleet's worth of time.
    assert deferred.value.kwargs["budget"] == waits.endpoint_wait_budget("update", config_response(
        serverless=False, variant="Green")["ProductionVariants"], None)


def test_operator_creates_then_defers_to_the_providers_trigger(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response())
    stubber.add_client_error("describe_endpoint", **not_found("endpoint", "shapes"))
    stubber.add_response("create_endpoint", {"EndpointArn": arn("endpoint", "shapes")},
                         {"EndpointName": "shapes", "EndpointConfigName": "cfg-2",
                          "Tags": [{"Key": "load-test-allowed", "Value": "true"}]})
    op = operator(tags={"load-test-allowed": "true"}, check_interval=15, max_ingestion_time=600,
                  botocore_config={"retries": {"mode": "standard"}})
    install(op, client)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, endpoint_triggers.EndpointTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.endpoint.EndpointTrigger"
    assert kwargs["endpoint_name"] == "shapes"
    assert (kwargs["waiter_delay"], kwargs["waiter_max_attempts"]) == (15, 41)  # 40 delays span 600 s
    assert json.loads(json.dumps(kwargs)) == kwargs  # the triggerer stores them as JSON
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.kwargs == {"action": "created", "previous_config": None, "replans": 0, "budget": 600}
    assert json.dumps(deferred.value.kwargs)


def test_operator_rerun_on_the_same_config_changes_nothing(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", config_response())
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-2"))
    stubber.add_response("list_tags", {"Tags": []})  # no autoscaling left released by an earlier try
    op = operator()
    install(op, client)
    assert op.execute({}) == {"endpoint_name": "shapes", "endpoint_config_name": "cfg-2",
                              "previous_config": "cfg-2", "action": "unchanged"}


@pytest.mark.parametrize(("event", "error", "needle"), [
    ({"status": "timeout", "job_name": "shapes", "message": "max attempts"}, AirflowException, "clear this task"),
    ({"status": "error", "job_name": "shapes", "message": "boom"}, AirflowException, "boom"),
    ({"status": "success", "job_name": "other"}, AirflowException, "not shapes"),
])
def test_execute_complete_reports_trigger_problems(sagemaker, event, error, needle):
    client, _ = sagemaker
    op = operator()
    install(op, client)
    with pytest.raises(error, match=needle):
        op.execute_complete({}, event, action="updated", previous_config="cfg-1")


def test_execute_complete_fails_a_rolled_back_update_naming_the_serving_config(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", endpoint(
        "InService", "cfg-1", reason="Update failed and was rolled back: alarm shapes-5xx in ALARM"))
    stubber.add_response("list_tags", {"Tags": []})
    op = operator()
    install(op, client)
    with pytest.raises(AirflowFailException) as err:
        op.execute_complete({}, {"status": "success", "job_name": "shapes"}, action="updated",
                            previous_config="cfg-1")
    assert "alarm shapes-5xx in ALARM" in str(err.value)
    assert "still serves cfg-1" in str(err.value)


def test_wait_budget_comes_from_aws_limits_and_the_deployment_config_sent():
    variants = config_response(serverless=False)["ProductionVariants"]
    sent = dep.deployment_config("linear", endpoint_type="provisioned", linear_step_percent=20, wait_interval_s=600,
                                termination_wait_s=300, maximum_execution_timeout_s=4200, alarm_names=["a"])
    op = operator(check_interval=60)
    # fleet (provisioning + the variant's download and health-check maxima) + the deployment's own
    # timeout (it exceeds 5 bakes x 600 + 300) + a rollback's provisioning.
    assert op._budget("update", variants, sent) == 1800 + 3600 + 3600 + 4200 + 1800
    # The old budget (timeout + 1 h = 7800 s) ended the wait while the deployment could still run.
    assert op._budget("update", variants, sent) > 4200 + 3600
    assert operator(max_ingestion_time=100)._budget("update", variants, sent) == 100
    assert waits.max_attempts(100, 7) == 16  # ceil(100 / 7) + 1: 15 delays span 105 s


@pytest.mark.parametrize("status", ["Failed", "UpdateRollbackFailed", "OutOfService", "Deleting"])
def test_execute_complete_fails_at_once_on_a_failed_state_with_its_reason(sagemaker, status):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint", endpoint(status, "cfg-1", reason="rollback could not restore cfg-1"))
    stubber.add_response("list_tags", {"Tags": []})
    op = operator()
    install(op, client)
    with pytest.raises(AirflowFailException, match=f"shapes is {status}: rollback could not restore cfg-1"):
        op.execute_complete({}, {"status": "failed", "job_name": "shapes", "message": "x"}, action="updated",
                            previous_config="cfg-1")


class _RollbackTI:
    def __init__(self, deployed: Any) -> None:
        self.deployed, self.pushed = deployed, {}
        self.dag_id, self.run_id, self.task_id = "d", "r", "rollback"

    def xcom_pull(self, task_ids: str) -> Any:
        return self.deployed

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def rollback_op(client: Any) -> rollback_ops.RollbackEndpointOperator:
    op = rollback_ops.RollbackEndpointOperator(task_id="rollback", endpoint_name="shapes", check_interval=1,
                                               deferrable=True)
    install(op, client)
    op._failed_upstream = lambda context: "load_test failed"
    return op


def test_the_rollback_targets_the_config_named_by_the_deployed_over_tag():
    client = mock.MagicMock()
    client.describe_endpoint.return_value = endpoint("InService", "cfg-2")
    client.list_tags.return_value = {"Tags": [{"Key": dep.DEPLOYED_OVER_TAG, "Value": "cfg-2/cfg-1"}]}
    op = rollback_op(client)
    # The tag wins over a deploy result that lost its previous_config (a deferral's kwargs under dag.test).
    assert op._previous(client, "cfg-2", {"endpoint_config_name": "cfg-2", "action": "updated"}) == "cfg-1"
    # A tag about another config is not this deploy's: a first deploy has nothing to return to.
    assert op._previous(client, "cfg-3", {"endpoint_config_name": "cfg-3", "action": "created"}) is None
    assert op._previous(client, "cfg-3", {"endpoint_config_name": "cfg-3", "action": "updated",
                                          "previous_config": "cfg-2"}) == "cfg-2"


def test_the_rollback_fails_naming_what_serves_when_it_cannot_roll_back():
    client = mock.MagicMock()
    client.describe_endpoint.return_value = endpoint("InService", "cfg-2")
    client.describe_endpoint_config.return_value = config_response("cfg-2")
    client.describe_model.return_value = {"ModelArn": arn("model", "cfg-2")}
    client.list_tags.return_value = {"Tags": [{"Key": "validation-map", "Value": "0.81"}]}
    op = rollback_op(client)
    ti = _RollbackTI(None)  # the deploy itself failed (it said what serves): this run deployed nothing
    with pytest.raises(AirflowSkipException, match="Nothing to roll back: this run deployed nothing to shapes"):
        op.execute({"ti": ti})
    assert "outcome" not in ti.pushed

    client.list_tags.return_value = {"Tags": [{"Key": dep.DEPLOYED_OVER_TAG, "Value": "cfg-2/cfg-1"}]}
    client.describe_endpoint_config.side_effect = lambda EndpointConfigName: (  # noqa: N803
        (_ for _ in ()).throw(ClientError({"Error": {"Code": "ValidationException", "Message":
                                                     "Could not find endpoint configuration"}}, "D"))
        if EndpointConfigName == "cfg-1" else config_response(EndpointConfigName))
    with pytest.raises(AirflowFailException, match="the previous config cfg-1 no longer exists, so the NEW model "
                                                   "stays serving"):
        op.execute({"ti": _RollbackTI({"endpoint_config_name": "cfg-2", "action": "updated"})})
    client.update_endpoint.assert_not_called()
