"""Async endpoint builders, scale-to-zero requests and the smoke test's inputs, without AWS."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from sagemaker_vision.core import async_inference as ai
from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE
from sagemaker_vision.core.validate import ConfigError

_SESSION = get_session()
TAGS = [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "pipeline", "Value": "shapes"}]
TOPIC = "arn:aws:sns:us-east-1:123456789012:async-results"
POLICY_ARN = ("arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0a1b:resource/sagemaker/endpoint/"
              "shapes/variant/AllTraffic:policyName/shapes-AllTraffic-has-backlog-without-capacity")


def assert_valid(service: str, operation: str, request: dict[str, Any]) -> None:
    shape = _SESSION.get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def config(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "endpoint_config_name": "shapes-async-1", "model_name": "shapes-1", "instance_type": "ml.g4dn.xlarge",
        "instance_count": 1, "output_s3_uri": "s3://bucket/async/output/", "tags": TAGS,
    }
    args.update(overrides)
    return ai.async_endpoint_config_request(**args)


# -- endpoint config -------------------------------------------------------------------------------
def test_minimal_async_config_is_exact_and_valid():
    request = config()
    assert request == {
        "EndpointConfigName": "shapes-async-1",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.g4dn.xlarge",
                                "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}],
        "AsyncInferenceConfig": {
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 4},
            "OutputConfig": {"S3OutputPath": "s3://bucket/async/output/"},
        },
        "Tags": TAGS,
    }
    assert_valid("sagemaker", "CreateEndpointConfig", request)


def test_full_async_config_has_failure_path_and_topics():
    request = config(failure_s3_uri="s3://bucket/async/failures/", success_topic=TOPIC, error_topic=TOPIC + "-errors",
                     max_concurrent_invocations_per_instance=1000)
    output = request["AsyncInferenceConfig"]["OutputConfig"]
    assert output == {
        "S3OutputPath": "s3://bucket/async/output/",
        "S3FailurePath": "s3://bucket/async/failures/",
        "NotificationConfig": {"SuccessTopic": TOPIC, "ErrorTopic": TOPIC + "-errors"},
    }
    assert request["AsyncInferenceConfig"]["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 1000}
    assert_valid("sagemaker", "CreateEndpointConfig", request)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"endpoint_config_name": "a_b"}, "endpoint_config_name"),
        ({"model_name": ""}, "model_name"),
        ({"variant_name": "x" * 64}, "variant_name"),
        ({"instance_type": "g4dn.xlarge"}, "instance_type"),
        ({"instance_count": 0}, "instance_count"),  # create with >= 1; scaling to zero comes later
        ({"instance_count": "1"}, "instance_count"),
        ({"output_s3_uri": "https://bucket/out/"}, "output_s3_uri"),
        ({"output_s3_uri": "s3://Bad_Bucket/out/"}, "output_s3_uri"),
        ({"output_s3_uri": "s3://bucket/" + "k" * 510}, "output_s3_uri"),
        ({"failure_s3_uri": "bucket/fail/"}, "failure_s3_uri"),
        ({"failure_s3_uri": "s3://bucket/async/output"}, "failure_s3_uri"),  # same place as the output
        ({"success_topic": "arn:aws:sqs:us-east-1:123456789012:q"}, "success_topic"),
        ({"error_topic": "topic"}, "error_topic"),
        ({"max_concurrent_invocations_per_instance": 0}, "max_concurrent_invocations_per_instance"),
        ({"max_concurrent_invocations_per_instance": 1001}, "max_concurrent_invocations_per_instance"),
        ({"tags": [{"Key": PACKAGE_TAG, "Value": "other"}]}, "tags[0]"),
    ],
)
def test_bad_async_config_input_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        config(**overrides)
    assert err.value.field == field


# -- scale to zero ---------------------------------------------------------------------------------
def test_scale_to_zero_requests_follow_the_aws_guide():
    requests = ai.async_autoscaling_requests("shapes", max_capacity=5)
    target = "endpoint/shapes/variant/AllTraffic"
    assert requests["register"] == {"ServiceNamespace": "sagemaker", "ResourceId": target,
                                    "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
                                    "MinCapacity": 0, "MaxCapacity": 5}
    tracking = requests["target_tracking"]
    assert tracking["PolicyType"] == "TargetTrackingScaling"
    assert tracking["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 5.0,
        "CustomizedMetricSpecification": {
            "MetricName": "ApproximateBacklogSizePerInstance", "Namespace": "AWS/SageMaker",
            "Dimensions": [{"Name": "EndpointName", "Value": "shapes"}], "Statistic": "Average",
        },
        "ScaleInCooldown": 600,
        "ScaleOutCooldown": 300,
    }
    step = requests["step_scaling"]
    assert step["PolicyType"] == "StepScaling"
    assert step["StepScalingPolicyConfiguration"] == {
        "AdjustmentType": "ChangeInCapacity", "MetricAggregationType": "Average", "Cooldown": 300,
        "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
    }
    assert tracking["PolicyName"] != step["PolicyName"]  # two policies on one target, not one overwritten
    for policy in (tracking, step):
        assert (policy["ServiceNamespace"], policy["ResourceId"]) == ("sagemaker", target)
        assert_valid("application-autoscaling", "PutScalingPolicy", policy)
    assert_valid("application-autoscaling", "RegisterScalableTarget", requests["register"])


def test_scale_from_zero_alarm_fires_the_step_policy():
    alarm = ai.scale_from_zero_alarm("shapes", POLICY_ARN)
    assert alarm["AlarmName"] == ai.backlog_alarm_name("shapes") == "shapes-has-backlog-without-capacity"
    assert {k: alarm[k] for k in ("MetricName", "Namespace", "Statistic", "Dimensions", "Period",
                                  "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator",
                                  "TreatMissingData", "AlarmActions")} == {
        "MetricName": "HasBacklogWithoutCapacity", "Namespace": "AWS/SageMaker", "Statistic": "Average",
        "Dimensions": [{"Name": "EndpointName", "Value": "shapes"}], "Period": 60, "EvaluationPeriods": 2,
        "DatapointsToAlarm": 2, "Threshold": 1.0, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "missing", "AlarmActions": [POLICY_ARN],
    }
    assert {"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE} in alarm["Tags"]
    assert_valid("cloudwatch", "PutMetricAlarm", alarm)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: ai.async_autoscaling_requests("shapes", max_capacity=0), "max_capacity"),
        (lambda: ai.async_autoscaling_requests("shapes", max_capacity=2, target_backlog_per_instance=0),
         "target_backlog_per_instance"),
        (lambda: ai.async_autoscaling_requests("shapes", max_capacity=2, scale_in_cooldown_s=-1),
         "scale_in_cooldown_s"),
        (lambda: ai.async_autoscaling_requests("shapes", max_capacity=2, scale_from_zero_cooldown_s=None),
         "scale_from_zero_cooldown_s"),
        (lambda: ai.async_autoscaling_requests("sha pes", max_capacity=2), "endpoint_name"),
        (lambda: ai.scale_from_zero_alarm("shapes", "policy"), "policy_arn"),
        (lambda: ai.scale_from_zero_alarm("shapes", POLICY_ARN, period_s=30), "period_s"),
        (lambda: ai.scale_from_zero_alarm("shapes", POLICY_ARN, period_s=90), "period_s"),
        (lambda: ai.scale_from_zero_alarm("shapes", POLICY_ARN, evaluation_periods=0), "evaluation_periods"),
        (lambda: ai.scale_from_zero_alarm("shapes", POLICY_ARN, period_s=3600, evaluation_periods=25),
         "evaluation_periods"),
    ],
)
def test_bad_scaling_input_names_the_field(call, field):
    with pytest.raises(ConfigError) as err:
        call()
    assert err.value.field == field


# -- invocation ------------------------------------------------------------------------------------
def test_invoke_async_request_is_valid_for_the_runtime():
    request = ai.invoke_async_request("shapes", "s3://bucket/in/a.jpg", inference_id="run-1")
    assert request == {"EndpointName": "shapes", "InputLocation": "s3://bucket/in/a.jpg", "ContentType": "image/jpeg",
                       "Accept": "application/json", "InferenceId": "run-1"}
    assert_valid("sagemaker-runtime", "InvokeEndpointAsync", request)


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("shapes", "s3://bucket/in/"), {}, "input_s3_uri"),
        (("shapes", "s3://bucket"), {}, "input_s3_uri"),
        (("shapes", "/tmp/a.jpg"), {}, "input_s3_uri"),
        (("shapes", "s3://bucket/a.jpg", ""), {}, "content_type"),
        (("sh_apes", "s3://bucket/a.jpg"), {}, "endpoint_name"),
        (("shapes", "s3://bucket/a.jpg"), {"inference_id": "x" * 65}, "inference_id"),
        (("shapes", "s3://bucket/a.jpg"), {"inference_id": " x"}, "inference_id"),
    ],
)
def test_bad_invoke_input_names_the_field(args, kwargs, field):
    with pytest.raises(ConfigError) as err:
        ai.invoke_async_request(*args, **kwargs)
    assert err.value.field == field


def test_smoke_input_uri_is_deterministic_under_the_prefix():
    assert ai.smoke_input_uri("s3://bucket/runs/1/", "include/sample_data/images/a.jpg") == \
        "s3://bucket/runs/1/async-smoke/a.jpg"
    assert ai.smoke_input_uri("s3://bucket/runs/1", "s3://other/x/b.jpeg") == "s3://bucket/runs/1/async-smoke/b.jpeg"
    with pytest.raises(ConfigError, match="input_prefix"):
        ai.smoke_input_uri("bucket/runs/1", "a.jpg")


def test_operator_accepts_a_json_class_map():
    assert ai.class_map_param('{"0": "circle", "1": "square"}') == {0: "circle", 1: "square"}
    assert ai.class_map_param(["circle", "square"]) == {0: "circle", 1: "square"}
