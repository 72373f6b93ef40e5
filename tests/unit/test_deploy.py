"""Deployment stage without AWS: the gate, blue/green configs, alarms, planning, ensure_* and the operator.

Requests are checked against botocore's API model; ensure_* and the operator talk to real
botocore clients with a ``Stubber`` (so an unexpected call fails the test) or to moto in-process.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import boto3
import botocore.session
import pytest
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
)
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from sagemaker_vision import deploy as dp
from sagemaker_vision import endpoint_waits as waits
from sagemaker_vision.config import ConfigError

REGION = "us-east-1"
ACCOUNT = "123456789012"
SESSION = botocore.session.get_session()
SAGEMAKER = SESSION.get_service_model("sagemaker")
CLOUDWATCH = SESSION.get_service_model("cloudwatch")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


def assert_valid(model: Any, operation: str, request: dict[str, Any]) -> None:
    """botocore's client-side validation against the real API model."""
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def not_found(kind: str, name: str) -> dict[str, Any]:
    return {"service_error_code": "ValidationException",
            "service_message": f"Could not find {kind} '{arn(kind, name)}'.", "http_status_code": 400}


@pytest.fixture
def sagemaker():
    """A real sagemaker client whose every call must be expected by the Stubber."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


# -- final_metric -------------------------------------------------------------------------------
def training(*metrics: tuple[str, Any]) -> dict[str, Any]:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return {"TrainingJobName": "job", "FinalMetricDataList": [
        {"MetricName": name, "Value": value, "Timestamp": when} for name, value in metrics]}


def test_final_metric_reads_the_named_metric_from_either_shape():
    description = training(("train:progress", 100.0), ("validation:mAP", 0.731))
    assert dp.final_metric(description) == 0.731
    assert dp.final_metric({"Training": description}) == 0.731  # the training operator's XCom
    assert dp.final_metric(description, "train:progress") == 100.0


@pytest.mark.parametrize("description", [
    training(("train:progress", 1.0)),
    training(("validation:mAP", float("nan"))),
    training(("validation:mAP", None)),
    {"TrainingJobName": "job"},
    {"Training": {"FinalMetricDataList": []}},
])
def test_final_metric_is_none_when_missing_or_not_a_number(description):
    assert dp.final_metric(description) is None


# -- quality gate -------------------------------------------------------------------------------
@pytest.mark.parametrize(("new", "production", "min_map", "tolerance", "deploy", "reason"), [
    # first deploy: only min_map counts
    (0.62, None, 0.5, 0.02, True, "no production mAP to beat"),
    (0.50, None, 0.5, 0.02, True, "no production mAP to beat"),  # inclusive
    (0.49, None, 0.5, 0.02, False, "below min_map"),
    # missing metric never deploys, whatever production is
    (None, None, 0.0, 1.0, False, "reported no validation:mAP"),
    (None, 0.2, 0.0, 1.0, False, "reported no validation:mAP"),
    # against production, tolerance boundaries inclusive
    (0.80, 0.75, 0.5, 0.0, True, ">= production mAP"),
    (0.75, 0.75, 0.5, 0.0, True, ">= production mAP"),
    (0.74, 0.75, 0.5, 0.0, False, "the production model keeps serving"),
    (0.73, 0.75, 0.5, 0.02, True, ">= production mAP"),
    (0.7299, 0.75, 0.5, 0.02, False, "below production mAP"),
    (0.70, 0.80, 0.5, 0.10, True, ">= production mAP"),  # 0.8 - 0.1 == 0.7000000000000001 in floats
    # better than production is not enough below min_map
    (0.45, 0.30, 0.5, 0.0, False, "below min_map"),
])
def test_quality_gate_truth_table(new, production, min_map, tolerance, deploy, reason):
    decision = dp.quality_gate(new, production, min_map=min_map, map_tolerance=tolerance)
    assert decision.deploy is deploy
    assert reason in decision.reason
    assert decision.new_map == new and decision.production_map == production
    assert json.loads(json.dumps(decision.to_dict())) == decision.to_dict()


@pytest.mark.parametrize(("min_map", "tolerance", "field"), [
    (-0.1, 0.0, "min_map"), (1.5, 0.0, "min_map"), ("high", 0.0, "min_map"), (None, 0.0, "min_map"),
    (0.5, -0.01, "map_tolerance"), (0.5, float("nan"), "map_tolerance"), (0.5, True, "map_tolerance"),
])
def test_quality_gate_rejects_bad_thresholds_naming_the_field(min_map, tolerance, field):
    with pytest.raises(ConfigError) as err:
        dp.quality_gate(0.7, 0.6, min_map=min_map, map_tolerance=tolerance)
    assert err.value.field == field


# -- deployment_config -----------------------------------------------------------------------------
def update_request(config: dict[str, Any]) -> dict[str, Any]:
    request = {"EndpointName": "shapes", "EndpointConfigName": "shapes-2", "RetainDeploymentConfig": False}
    if config:
        request["DeploymentConfig"] = config
    return request


def test_all_at_once_bakes_and_rolls_back_on_the_alarms():
    config = dp.deployment_config("all_at_once", endpoint_type="provisioned", alarm_names=["a-5xx", "a-latency"])
    assert config == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a-5xx"}, {"AlarmName": "a-latency"}]},
    }
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_canary_shifts_a_percentage_first():
    config = dp.deployment_config("CANARY", endpoint_type="provisioned", canary_percent=25, wait_interval_s=600,
                                  termination_wait_s=0, maximum_execution_timeout_s=1800, alarm_names=["x"])
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                       "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 0
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_linear_shifts_in_equal_steps():
    config = dp.deployment_config("linear", endpoint_type="provisioned", linear_step_percent=50, alarm_names=["x"])
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "LINEAR", "WaitIntervalInSeconds": 300,
                       "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}
    assert "CanarySize" not in routing
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_all_at_once_without_alarms_has_no_rollback_configuration():
    config = dp.deployment_config("all_at_once", endpoint_type="provisioned", alarm_names=[])
    assert "AutoRollbackConfiguration" not in config  # AlarmList has min 1 item
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_repeated_alarm_names_are_sent_once():
    config = dp.deployment_config("all_at_once", endpoint_type="provisioned", alarm_names=["a", "b", "a"])
    assert config["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "a"}, {"AlarmName": "b"}]


def test_serverless_all_at_once_sends_no_deployment_config():
    # Guardrails apply only to real-time and async endpoints; SageMaker's default update is
    # blue/green all at once, which is what an update without DeploymentConfig gets.
    assert dp.deployment_config("all_at_once", endpoint_type="serverless", alarm_names=["a"]) == {}
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request({}))


@pytest.mark.parametrize("policy", ["canary", "linear", "Linear"])
def test_serverless_refuses_canary_and_linear_naming_deployment_policy(policy):
    with pytest.raises(ConfigError) as err:
        dp.deployment_config(policy, endpoint_type="serverless", alarm_names=["a"])
    assert err.value.field == "deployment_policy"
    assert "serverless" in str(err.value) and "all_at_once" in str(err.value)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"policy": "rolling"}, "deployment_policy"),
    ({"policy": None}, "deployment_policy"),
    ({"endpoint_type": "async"}, "endpoint_type"),
    ({"policy": "canary", "canary_percent": 0}, "canary_percent"),
    ({"policy": "canary", "canary_percent": 51}, "canary_percent"),
    ({"policy": "canary", "canary_percent": 12.5}, "canary_percent"),
    ({"policy": "linear", "linear_step_percent": 9}, "linear_step_percent"),
    ({"policy": "linear", "linear_step_percent": 51}, "linear_step_percent"),
    ({"wait_interval_s": -1}, "wait_interval_s"),
    ({"wait_interval_s": 3601}, "wait_interval_s"),
    ({"wait_interval_s": True}, "wait_interval_s"),
    ({"termination_wait_s": 3601}, "termination_wait_s"),
    ({"maximum_execution_timeout_s": 599}, "maximum_execution_timeout_s"),
    ({"maximum_execution_timeout_s": 28801}, "maximum_execution_timeout_s"),
    ({"alarm_names": "one-alarm"}, "alarm_names"),
    ({"alarm_names": [f"a{i}" for i in range(11)]}, "alarm_names"),
    ({"alarm_names": ["ok", " "]}, "alarm_names[1]"),
    ({"policy": "canary", "alarm_names": []}, "alarm_names"),
    # linear 10% = 10 bakes of 300 s + 120 s > 3000 s
    ({"policy": "linear", "linear_step_percent": 10, "maximum_execution_timeout_s": 3000},
     "maximum_execution_timeout_s"),
    ({"wait_interval_s": 3600, "termination_wait_s": 3600, "maximum_execution_timeout_s": 7200},
     "maximum_execution_timeout_s"),
])
def test_bad_deployment_arguments_name_the_field(overrides, field):
    args: dict[str, Any] = {"policy": "all_at_once", "endpoint_type": "provisioned", "alarm_names": ["a"]}
    args.update(overrides)
    with pytest.raises(ConfigError) as err:
        dp.deployment_config(args.pop("policy"), **args)
    assert err.value.field == field


def test_our_ranges_are_the_api_models():
    """The limits we check are botocore's, where the model states them."""
    def meta(shape: str, member: str) -> dict[str, Any]:
        return SAGEMAKER.shape_for(shape).members[member].metadata

    assert (meta("TrafficRoutingConfig", "WaitIntervalInSeconds")["min"],
            meta("TrafficRoutingConfig", "WaitIntervalInSeconds")["max"]) == dp.WAIT_INTERVAL_S
    assert (meta("BlueGreenUpdatePolicy", "TerminationWaitInSeconds")["min"],
            meta("BlueGreenUpdatePolicy", "TerminationWaitInSeconds")["max"]) == dp.TERMINATION_WAIT_S
    assert (meta("BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds")["min"],
            meta("BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds")["max"]) == dp.MAXIMUM_EXECUTION_TIMEOUT_S
    assert SAGEMAKER.shape_for("AutoRollbackConfig").members["Alarms"].metadata["max"] == dp.MAX_ROLLBACK_ALARMS
    assert SAGEMAKER.shape_for("Alarm").members["AlarmName"].metadata["max"] == dp.MAX_ALARM_NAME
    routing_types = SAGEMAKER.shape_for("TrafficRoutingConfig").members["Type"].enum
    assert routing_types == [p.upper() for p in dp.DEPLOYMENT_POLICIES]


# -- rollback alarms ------------------------------------------------------------------------------
def test_rollback_alarms_watch_5xx_and_latency_of_the_variant():
    errors, latency = dp.rollback_alarm_requests("shapes", "AllTraffic", error_threshold=3,
                                                 latency_threshold_ms=250, period_s=120, evaluation_periods=3)
    dimensions = [{"Name": "EndpointName", "Value": "shapes"}, {"Name": "VariantName", "Value": "AllTraffic"}]
    assert errors["AlarmName"] == "shapes-5xx"
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/SageMaker", "Invocation5XXErrors", "Sum")
    assert errors["Threshold"] == 3 and errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert latency["AlarmName"] == "shapes-latency"
    assert (latency["MetricName"], latency["Statistic"]) == ("ModelLatency", "Average")
    assert latency["Threshold"] == 250_000  # ModelLatency is in microseconds
    assert latency["ComparisonOperator"] == "GreaterThanThreshold"
    for request in (errors, latency):
        assert request["Dimensions"] == dimensions
        assert (request["Period"], request["EvaluationPeriods"], request["DatapointsToAlarm"]) == (120, 3, 3)
        assert request["TreatMissingData"] == "notBreaching"
        assert "Unit" not in request
        assert {"Key": "managed-by", "Value": "sagemaker-vision"} in request["Tags"]
        assert_valid(CLOUDWATCH, "PutMetricAlarm", request)
    assert dp.rollback_alarm_names("shapes") == ["shapes-5xx", "shapes-latency"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"error_threshold": 0}, "error_threshold"),
    ({"latency_threshold_ms": -5}, "latency_threshold_ms"),
    ({"latency_threshold_ms": "fast"}, "latency_threshold_ms"),
    ({"period_s": 30}, "period_s"),
    ({"period_s": 90}, "period_s"),
    ({"evaluation_periods": 0}, "evaluation_periods"),
    ({"period_s": 3600, "evaluation_periods": 25}, "evaluation_periods"),  # more than a day back
    ({"variant_name": ""}, "variant_name"),
    ({"endpoint_name": "bad_name"}, "endpoint_name"),
])
def test_bad_alarm_arguments_name_the_field(overrides, field):
    args: dict[str, Any] = {"endpoint_name": "shapes", "variant_name": "AllTraffic"}
    args.update(overrides)
    with pytest.raises(ConfigError) as err:
        dp.rollback_alarm_requests(args.pop("endpoint_name"), args.pop("variant_name"), **args)
    assert err.value.field == field


def test_ensure_rollback_alarms_is_idempotent():
    from moto import mock_aws

    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        first = dp.ensure_rollback_alarms(cloudwatch, "shapes", "AllTraffic", latency_threshold_ms=800)
        before = cloudwatch.describe_alarms(AlarmNamePrefix="shapes-")["MetricAlarms"]
        second = dp.ensure_rollback_alarms(cloudwatch, "shapes", "AllTraffic", latency_threshold_ms=800)
        after = cloudwatch.describe_alarms(AlarmNamePrefix="shapes-")["MetricAlarms"]
    assert first == second == ["shapes-5xx", "shapes-latency"]
    assert len(after) == 2

    def settings(alarms: list[dict[str, Any]]) -> dict[str, Any]:
        keys = ("MetricName", "Namespace", "Statistic", "Dimensions", "Period", "EvaluationPeriods", "Threshold",
                "ComparisonOperator", "TreatMissingData")
        return {a["AlarmName"]: {k: a.get(k) for k in keys} for a in alarms}

    assert settings(after) == settings(before)
    assert settings(after)["shapes-latency"]["Threshold"] == 800_000


# -- serving variant and endpoint type ------------------------------------------------------------
def test_serving_variant_is_the_heaviest_then_alltraffic_then_first():
    assert dp.serving_variant([{"VariantName": "a", "InitialVariantWeight": 0.2},
                               {"VariantName": "b", "InitialVariantWeight": 0.8}])["VariantName"] == "b"
    assert dp.serving_variant([{"VariantName": "a"}, {"VariantName": "AllTraffic"}])["VariantName"] == "AllTraffic"
    assert dp.serving_variant([{"VariantName": "x"}, {"VariantName": "y"}])["VariantName"] == "x"
    with pytest.raises(ValueError, match="no ProductionVariants"):
        dp.serving_variant([])


def test_endpoint_type_of_variants():
    assert dp.endpoint_type_of([{"VariantName": "A", "ServerlessConfig": {"MemorySizeInMB": 2048}}]) == "serverless"
    assert dp.endpoint_type_of([{"VariantName": "A", "InstanceType": "ml.m5.large"}]) == "provisioned"


# -- plan_deploy --------------------------------------------------------------------------------
def endpoint(status: str, config: str = "cfg-1", pending: str | None = None, reason: str | None = None,
             variants: tuple[str, ...] = ("AllTraffic",)) -> dict[str, Any]:
    described: dict[str, Any] = {"EndpointName": "shapes", "EndpointArn": arn("endpoint", "shapes"),
                                 "EndpointConfigName": config, "EndpointStatus": status,
                                 "ProductionVariants": [{"VariantName": v} for v in variants],
                                 "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                                 "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC)}
    if pending:
        described["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    if reason:
        described["FailureReason"] = reason
    return described


@pytest.mark.parametrize(("described", "action", "previous", "result", "retryable"), [
    (None, "create", None, "created", False),
    (endpoint("InService", "cfg-2"), "unchanged", "cfg-2", "unchanged", False),
    (endpoint("InService", "cfg-1"), "update", "cfg-1", "updated", False),
    (endpoint("Creating", "cfg-2"), "resume", None, "created", False),
    (endpoint("Updating", "cfg-1", pending="cfg-2"), "resume", "cfg-1", "updated", False),
    (endpoint("Updating", "cfg-1", pending="cfg-0"), "wait", "cfg-1", None, False),
    (endpoint("Creating", "cfg-0"), "wait", "cfg-0", None, False),
    (endpoint("SystemUpdating", "cfg-1"), "wait", "cfg-1", None, False),
    (endpoint("RollingBack", "cfg-1"), "wait", "cfg-1", None, False),
    (endpoint("Failed", "cfg-1", reason="image not found"), "refuse", "cfg-1", None, False),
    (endpoint("UpdateRollbackFailed", "cfg-1"), "refuse", "cfg-1", None, False),
    (endpoint("Deleting", "cfg-1"), "refuse", "cfg-1", None, True),
    (endpoint("OutOfService", "cfg-1"), "refuse", "cfg-1", None, True),
])
def test_plan_deploy(described, action, previous, result, retryable):
    plan = dp.plan_deploy(described, "cfg-2")
    assert (plan.action, plan.previous_config, plan.result_action, plan.retryable) == (
        action, previous, result, retryable)


def test_plan_deploy_refusal_carries_the_failure_reason():
    plan = dp.plan_deploy(endpoint("Failed", reason="CannotStartContainerError"), "cfg-2")
    assert "CannotStartContainerError" in plan.reason and "DeleteEndpoint" in plan.reason


# -- production_map -------------------------------------------------------------------------------
def stub_chain(stubber: Stubber, *, variants: list[dict[str, Any]], model: str, tags: list[dict[str, str]] | None,
               model_exists: bool = True) -> None:
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1"), {"EndpointName": "shapes"})
    stubber.add_response("describe_endpoint_config", {
        "EndpointConfigName": "cfg-1", "EndpointConfigArn": arn("endpoint-config", "cfg-1"),
        "ProductionVariants": variants, "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)},
        {"EndpointConfigName": "cfg-1"})
    if not model_exists:
        stubber.add_client_error("describe_model", expected_params={"ModelName": model}, **not_found("model", model))
        return
    stubber.add_response("describe_model", {
        "ModelName": model, "ModelArn": arn("model", model), "PrimaryContainer": {"Image": IMAGE},
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}, {"ModelName": model})
    stubber.add_response("list_tags", {"Tags": tags or []}, {"ResourceArn": arn("model", model), "MaxResults": 100})


def test_production_map_reads_the_tag_of_the_heaviest_variants_model(sagemaker):
    client, stubber = sagemaker
    stub_chain(stubber, model="model-b", tags=[{"Key": "managed-by", "Value": "sagemaker-vision"},
                                                {"Key": "validation-map", "Value": "0.7312"}],
               variants=[{"VariantName": "Old", "ModelName": "model-a", "InitialVariantWeight": 0.1,
                          "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
                         {"VariantName": "New", "ModelName": "model-b", "InitialVariantWeight": 0.9,
                          "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    assert dp.production_map(client, "shapes") == 0.7312


def test_production_map_is_none_without_an_endpoint(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint", expected_params={"EndpointName": "shapes"},
                             **not_found("endpoint", "shapes"))
    assert dp.production_map(client, "shapes") is None


@pytest.mark.parametrize(("tags", "exists"), [
    (None, True),  # deployed before tags were written, or by someone else
    ([{"Key": "validation-map", "Value": "n/a"}], True),
    (None, False),  # the serving model was deleted
])
def test_production_map_is_none_when_the_serving_models_map_is_unknown(sagemaker, tags, exists):
    client, stubber = sagemaker
    stub_chain(stubber, model="m", tags=tags, model_exists=exists,
               variants=[{"VariantName": "AllTraffic", "ModelName": "m",
                          "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])
    assert dp.production_map(client, "shapes") is None


def test_production_map_propagates_other_errors(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint", service_error_code="AccessDeniedException",
                             service_message="no", http_status_code=400)
    with pytest.raises(Exception, match="AccessDenied"):
        dp.production_map(client, "shapes")


# -- ensure_model -----------------------------------------------------------------------------------
def model_request(data: str = "s3://b/run-1/model.tar.gz") -> dict[str, Any]:
    return {"ModelName": "shapes-1", "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": data},
            "ExecutionRoleArn": ROLE, "Tags": [{"Key": "managed-by", "Value": "sagemaker-vision"}]}


def described_model(data: str = "s3://b/run-1/model.tar.gz") -> dict[str, Any]:
    return {"ModelName": "shapes-1", "ModelArn": arn("model", "shapes-1"), "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": data},
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}


def test_ensure_model_creates_with_the_map_tag(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", expected_params={"ModelName": "shapes-1"},
                             **not_found("model", "shapes-1"))
    expected = model_request()
    expected["Tags"] = expected["Tags"] + [{"Key": "validation-map", "Value": "0.7312"}]
    stubber.add_response("create_model", {"ModelArn": arn("model", "shapes-1")}, expected)
    assert dp.ensure_model(client, model_request(), validation_map=0.7312) == (arn("model", "shapes-1"), True)


def test_ensure_model_reuses_a_matching_model_and_leaves_a_correct_tag(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    stubber.add_response("list_tags", {"Tags": [{"Key": "validation-map", "Value": "0.7312"}]},
                         {"ResourceArn": arn("model", "shapes-1"), "MaxResults": 100})
    assert dp.ensure_model(client, model_request(), validation_map=0.7312) == (arn("model", "shapes-1"), False)


def test_ensure_model_adds_a_missing_tag_to_a_reused_model(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    stubber.add_response("list_tags", {"Tags": []}, {"ResourceArn": arn("model", "shapes-1"), "MaxResults": 100})
    stubber.add_response("add_tags", {"Tags": []}, {"ResourceArn": arn("model", "shapes-1"),
                                                    "Tags": [{"Key": "validation-map", "Value": "0.7"}]})
    assert dp.ensure_model(client, model_request(), validation_map=0.7) == (arn("model", "shapes-1"), False)


def test_ensure_model_without_a_map_never_reads_tags(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    assert dp.ensure_model(client, model_request()) == (arn("model", "shapes-1"), False)


def test_ensure_model_refuses_a_same_named_model_with_other_data(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model("s3://b/run-0/model.tar.gz"), {"ModelName": "shapes-1"})
    with pytest.raises(dp.ResourceConflictError) as err:
        dp.ensure_model(client, model_request(), validation_map=0.7)
    message = str(err.value)
    assert "shapes-1" in message and "PrimaryContainer.ModelDataUrl" in message
    assert "s3://b/run-0/model.tar.gz" in message and "s3://b/run-1/model.tar.gz" in message
    assert "PrimaryContainer.Image" not in message  # the image is the same
    assert isinstance(err.value, AirflowFailException)  # no retries: a retry cannot fix it


def test_ensure_model_race_with_another_try_reuses_its_model(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", **not_found("model", "shapes-1"))
    stubber.add_client_error("create_model", service_error_code="ValidationException", http_status_code=400,
                             service_message=f'Cannot create already existing model "{arn("model", "shapes-1")}".')
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    assert dp.ensure_model(client, model_request()) == (arn("model", "shapes-1"), False)


@pytest.mark.parametrize(("value", "field"), [(1.2, "validation_map"), (float("nan"), "validation_map")])
def test_ensure_model_rejects_a_bad_map_before_calling_aws(sagemaker, value, field):
    client, _ = sagemaker  # no responses queued: any call would fail the test
    with pytest.raises(ConfigError) as err:
        dp.ensure_model(client, model_request(), validation_map=value)
    assert err.value.field == field


# -- ensure_endpoint_config ---------------------------------------------------------------------
def serverless_config_request(memory: int = 2048) -> dict[str, Any]:
    return {"EndpointConfigName": "shapes-1", "Tags": [{"Key": "managed-by", "Value": "sagemaker-vision"}],
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "shapes-1",
                                    "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 5}}]}


def described_config(variants: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"EndpointConfigName": "shapes-1", "EndpointConfigArn": arn("endpoint-config", "shapes-1"),
            "ProductionVariants": variants, "CreationTime": datetime(2026, 1, 1, tzinfo=UTC), **extra}


def test_ensure_endpoint_config_creates(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint_config", **not_found("endpoint-config", "shapes-1"))
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", "shapes-1")},
                         serverless_config_request())
    assert dp.ensure_endpoint_config(client, serverless_config_request()) == (arn("endpoint-config", "shapes-1"), True)


def test_ensure_endpoint_config_reuses_a_matching_one_despite_aws_defaults(sagemaker):
    client, stubber = sagemaker
    request = {"EndpointConfigName": "shapes-1", "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.g4dn.xlarge",
         "InitialInstanceCount": 2, "InitialVariantWeight": 1}]}
    stubber.add_response("describe_endpoint_config", described_config(
        [{"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.g4dn.xlarge",
          "InitialInstanceCount": 2, "InitialVariantWeight": 1.0, "VolumeSizeInGB": 30}],
        DataCaptureConfig={"EnableCapture": False, "InitialSamplingPercentage": 0, "DestinationS3Uri": "s3://x/",
                           "CaptureOptions": [{"CaptureMode": "Input"}]}))
    assert dp.ensure_endpoint_config(client, request) == (arn("endpoint-config", "shapes-1"), False)


@pytest.mark.parametrize(("existing", "needle"), [
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-1",
                        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 5}}]),
     "ProductionVariants[AllTraffic].ServerlessConfig.MemorySizeInMB: existing 4096, requested 2048"),
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-0",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]),
     "ProductionVariants[AllTraffic].ModelName: existing 'shapes-0', requested 'shapes-1'"),
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1}]),
     "ProductionVariants[AllTraffic].ServerlessConfig: existing None"),
    (described_config([{"VariantName": "Blue", "ModelName": "shapes-1",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]),
     "existing variants ['Blue'], requested ['AllTraffic']"),
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-1",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}],
                      AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://b/async/"}}),
     "AsyncInferenceConfig: existing"),
])
def test_ensure_endpoint_config_refuses_a_different_one_naming_the_field(sagemaker, existing, needle):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", existing, {"EndpointConfigName": "shapes-1"})
    with pytest.raises(dp.ResourceConflictError) as err:
        dp.ensure_endpoint_config(client, serverless_config_request())
    assert "Endpoint config shapes-1" in str(err.value)
    assert needle in str(err.value)


def test_ensure_endpoint_config_compares_async_settings(sagemaker):
    client, stubber = sagemaker
    request = serverless_config_request()
    request["AsyncInferenceConfig"] = {"OutputConfig": {"S3OutputPath": "s3://b/async/"}}
    stubber.add_response("describe_endpoint_config", described_config(
        request["ProductionVariants"], AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://b/other/"}}))
    with pytest.raises(dp.ResourceConflictError, match=r"AsyncInferenceConfig.OutputConfig.S3OutputPath"):
        dp.ensure_endpoint_config(client, request)


# -- operator (stubbed client: every AWS call is accounted for) -----------------------------------
def operator(**overrides: Any) -> dp.DeployEndpointOperator:
    args: dict[str, Any] = {"task_id": "deploy", "endpoint_name": "shapes", "endpoint_config_name": "cfg-2",
                            "check_interval": 1, "deferrable": True}
    args.update(overrides)
    return dp.DeployEndpointOperator(**args)


def install(op: dp.DeployEndpointOperator, client: Any) -> None:
    hook = mock.MagicMock(spec=SageMakerHook)
    hook.conn = client
    hook.conn_region_name = REGION
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
    from sagemaker_vision import scaling

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
    with mock.patch("sagemaker_vision.scaling.log") as log:
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
    assert isinstance(trigger, dp.EndpointTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.deploy.EndpointTrigger"
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
    sent = dp.deployment_config("linear", endpoint_type="provisioned", linear_step_percent=20, wait_interval_s=600,
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


def rollback_op(client: Any) -> dp.RollbackEndpointOperator:
    op = dp.RollbackEndpointOperator(task_id="rollback", endpoint_name="shapes", check_interval=1, deferrable=True)
    install(op, client)
    op._failed_upstream = lambda context: "load_test failed"
    return op


def test_the_rollback_targets_the_config_named_by_the_deployed_over_tag():
    client = mock.MagicMock()
    client.describe_endpoint.return_value = endpoint("InService", "cfg-2")
    client.list_tags.return_value = {"Tags": [{"Key": dp.DEPLOYED_OVER_TAG, "Value": "cfg-2/cfg-1"}]}
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

    client.list_tags.return_value = {"Tags": [{"Key": dp.DEPLOYED_OVER_TAG, "Value": "cfg-2/cfg-1"}]}
    client.describe_endpoint_config.side_effect = lambda EndpointConfigName: (  # noqa: N803
        (_ for _ in ()).throw(ClientError({"Error": {"Code": "ValidationException", "Message":
                                                     "Could not find endpoint configuration"}}, "D"))
        if EndpointConfigName == "cfg-1" else config_response(EndpointConfigName))
    with pytest.raises(AirflowFailException, match="the previous config cfg-1 no longer exists, so the NEW model "
                                                   "stays serving"):
        op.execute({"ti": _RollbackTI({"endpoint_config_name": "cfg-2", "action": "updated"})})
    client.update_endpoint.assert_not_called()
