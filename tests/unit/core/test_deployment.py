"""Deployment planning without AWS: blue/green configs, rollback alarm requests, serving variant, plan_deploy
(core.deployment). Requests are checked against botocore's API model."""

from __future__ import annotations

from typing import Any

import pytest

from sagemaker_vision.core import deployment as dep
from sagemaker_vision.core.validate import ConfigError
from tests.unit.deploy_support import CLOUDWATCH, SAGEMAKER, assert_valid, endpoint


# -- deployment_config -----------------------------------------------------------------------------
def update_request(config: dict[str, Any]) -> dict[str, Any]:
    request = {"EndpointName": "shapes", "EndpointConfigName": "shapes-2", "RetainDeploymentConfig": False}
    if config:
        request["DeploymentConfig"] = config
    return request


def test_all_at_once_bakes_and_rolls_back_on_the_alarms():
    config = dep.deployment_config("all_at_once", endpoint_type="provisioned", alarm_names=["a-5xx", "a-latency"])
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
    config = dep.deployment_config("CANARY", endpoint_type="provisioned", canary_percent=25, wait_interval_s=600,
                                  termination_wait_s=0, maximum_execution_timeout_s=1800, alarm_names=["x"])
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "CANARY", "WaitIntervalInSeconds": 600,
                       "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25}}
    assert config["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"] == 0
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_linear_shifts_in_equal_steps():
    config = dep.deployment_config("linear", endpoint_type="provisioned", linear_step_percent=50, alarm_names=["x"])
    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "LINEAR", "WaitIntervalInSeconds": 300,
                       "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50}}
    assert "CanarySize" not in routing
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_all_at_once_without_alarms_has_no_rollback_configuration():
    config = dep.deployment_config("all_at_once", endpoint_type="provisioned", alarm_names=[])
    assert "AutoRollbackConfiguration" not in config  # AlarmList has min 1 item
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request(config))


def test_repeated_alarm_names_are_sent_once():
    config = dep.deployment_config("all_at_once", endpoint_type="provisioned", alarm_names=["a", "b", "a"])
    assert config["AutoRollbackConfiguration"]["Alarms"] == [{"AlarmName": "a"}, {"AlarmName": "b"}]


def test_serverless_all_at_once_sends_no_deployment_config():
    # Guardrails apply only to real-time and async endpoints; SageMaker's default update is
    # blue/green all at once, which is what an update without DeploymentConfig gets.
    assert dep.deployment_config("all_at_once", endpoint_type="serverless", alarm_names=["a"]) == {}
    assert_valid(SAGEMAKER, "UpdateEndpoint", update_request({}))


@pytest.mark.parametrize("policy", ["canary", "linear", "Linear"])
def test_serverless_refuses_canary_and_linear_naming_deployment_policy(policy):
    with pytest.raises(ConfigError) as err:
        dep.deployment_config(policy, endpoint_type="serverless", alarm_names=["a"])
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
        dep.deployment_config(args.pop("policy"), **args)
    assert err.value.field == field


def test_our_ranges_are_the_api_models():
    """The limits we check are botocore's, where the model states them."""
    def meta(shape: str, member: str) -> dict[str, Any]:
        return SAGEMAKER.shape_for(shape).members[member].metadata

    assert (meta("TrafficRoutingConfig", "WaitIntervalInSeconds")["min"],
            meta("TrafficRoutingConfig", "WaitIntervalInSeconds")["max"]) == dep.WAIT_INTERVAL_S
    assert (meta("BlueGreenUpdatePolicy", "TerminationWaitInSeconds")["min"],
            meta("BlueGreenUpdatePolicy", "TerminationWaitInSeconds")["max"]) == dep.TERMINATION_WAIT_S
    assert (meta("BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds")["min"],
            meta("BlueGreenUpdatePolicy", "MaximumExecutionTimeoutInSeconds")["max"]) == dep.MAXIMUM_EXECUTION_TIMEOUT_S
    assert SAGEMAKER.shape_for("AutoRollbackConfig").members["Alarms"].metadata["max"] == dep.MAX_ROLLBACK_ALARMS
    assert SAGEMAKER.shape_for("Alarm").members["AlarmName"].metadata["max"] == dep.MAX_ALARM_NAME
    routing_types = SAGEMAKER.shape_for("TrafficRoutingConfig").members["Type"].enum
    assert routing_types == [p.upper() for p in dep.DEPLOYMENT_POLICIES]


# -- rollback alarms ------------------------------------------------------------------------------
def test_rollback_alarms_watch_5xx_and_latency_of_the_variant():
    errors, latency = dep.rollback_alarm_requests("shapes", "AllTraffic", error_threshold=3,
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
    assert dep.rollback_alarm_names("shapes") == ["shapes-5xx", "shapes-latency"]


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
        dep.rollback_alarm_requests(args.pop("endpoint_name"), args.pop("variant_name"), **args)
    assert err.value.field == field



# -- serving variant and endpoint type ------------------------------------------------------------
def test_serving_variant_is_the_heaviest_then_alltraffic_then_first():
    assert dep.serving_variant([{"VariantName": "a", "InitialVariantWeight": 0.2},
                               {"VariantName": "b", "InitialVariantWeight": 0.8}])["VariantName"] == "b"
    assert dep.serving_variant([{"VariantName": "a"}, {"VariantName": "AllTraffic"}])["VariantName"] == "AllTraffic"
    assert dep.serving_variant([{"VariantName": "x"}, {"VariantName": "y"}])["VariantName"] == "x"
    with pytest.raises(ValueError, match="no ProductionVariants"):
        dep.serving_variant([])


def test_endpoint_type_of_variants():
    assert dep.endpoint_type_of([{"VariantName": "A", "ServerlessConfig": {"MemorySizeInMB": 2048}}]) == "serverless"
    assert dep.endpoint_type_of([{"VariantName": "A", "InstanceType": "ml.m5.large"}]) == "provisioned"


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
    plan = dep.plan_deploy(described, "cfg-2")
    assert (plan.action, plan.previous_config, plan.result_action, plan.retryable) == (
        action, previous, result, retryable)


def test_plan_deploy_refusal_carries_the_failure_reason():
    plan = dep.plan_deploy(endpoint("Failed", reason="CannotStartContainerError"), "cfg-2")
    assert "CannotStartContainerError" in plan.reason and "DeleteEndpoint" in plan.reason




# -- update_request -------------------------------------------------------------------------------
def test_update_request_keeps_the_deployment_config_when_the_variant_names_stay():
    deployment = dep.deployment_config("canary", endpoint_type="provisioned", alarm_names=["a"])
    request, dropped = dep.update_request("shapes", "cfg-2", [{"VariantName": "AllTraffic"}],
                                          [{"VariantName": "AllTraffic"}], deployment)
    assert dropped is None
    assert request == {"EndpointName": "shapes", "EndpointConfigName": "cfg-2", "RetainDeploymentConfig": False,
                       "DeploymentConfig": deployment}
    assert_valid(SAGEMAKER, "UpdateEndpoint", request)


def test_update_request_leaves_the_deployment_config_out_when_aws_refuses_it():
    deployment = dep.deployment_config("canary", endpoint_type="provisioned", alarm_names=["a"])
    renamed, why = dep.update_request("shapes", "cfg-2", [{"VariantName": "Green"}],
                                      [{"VariantName": "AllTraffic"}], deployment)
    assert why == "variant_names" and "DeploymentConfig" not in renamed
    running_serverless = [{"VariantName": "AllTraffic", "CurrentServerlessConfig": {"MaxConcurrency": 5}}]
    serverless, why = dep.update_request("shapes", "cfg-2", [{"VariantName": "AllTraffic"}], running_serverless,
                                         deployment)
    assert why == "serverless" and "DeploymentConfig" not in serverless
    assert dep.update_request("shapes", "cfg-2", [{"VariantName": "Green"}], [{"VariantName": "AllTraffic"}], {}) == \
        ({"EndpointName": "shapes", "EndpointConfigName": "cfg-2", "RetainDeploymentConfig": False}, None)


def test_a_bake_shorter_than_the_alarm_window_is_refused_naming_wait_interval_s():
    dep.check_bake_covers_alarms(120, 60, 2)
    with pytest.raises(ConfigError, match=r"wait_interval_s.*119 s is shorter than the rollback alarms' window"):
        dep.check_bake_covers_alarms(119, 60, 2)
