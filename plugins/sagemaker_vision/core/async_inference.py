"""Asynchronous inference endpoints (``endpoint_type=async``), pure: the config, scale-to-zero and invocation requests.

An asynchronous endpoint queues requests, reads each input from S3 and writes the result to S3,
so it suits large images and bursty batches, and it is the only instance-backed endpoint that
can scale to **zero** instances while idle.

* :func:`async_endpoint_config_request`: ``CreateEndpointConfig`` with ``AsyncInferenceConfig``.
* :func:`async_autoscaling_requests` / :func:`scale_from_zero_alarm`: what the AWS guide
  "Autoscale an asynchronous endpoint"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html) prescribes:
  register the variant with ``MinCapacity`` 0; target tracking on the customized metric
  ``ApproximateBacklogSizePerInstance`` (AWS/SageMaker, dimension EndpointName); and, because
  that metric alone only scales out from zero once the backlog exceeds the target, a step-scaling
  policy (+1 instance, ``ChangeInCapacity``) fired by a CloudWatch alarm on
  ``HasBacklogWithoutCapacity`` >= 1 for 2 of 2 one-minute periods. The calls are made by
  :func:`sagemaker_vision.hooks.scaling.apply_async_autoscaling`.
* :func:`invoke_async_request` and :func:`smoke_input_uri`: one JPEG through the endpoint, for
  :class:`~sagemaker_vision.operators.async_inference.AsyncInferenceSmokeOperator`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sagemaker_vision.core.autoscaling import (
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    int_field,
    package_tags,
    positive_number,
    resource_id,
    scalable_target_request,
    validate_variant_name,
)
from sagemaker_vision.core.inference import normalise_class_map
from sagemaker_vision.core.naming import (
    PACKAGE_TAG,
    PACKAGE_TAG_VALUE,
    VARIANT_NAME,
    backlog_alarm_name,
    backlog_policy_name,
    scale_from_zero_policy_name,
)
from sagemaker_vision.core.validate import ConfigError, parse_s3_uri, validate_instance_type, validate_sagemaker_name

METRIC_NAMESPACE = "AWS/SageMaker"
BACKLOG_METRIC = "ApproximateBacklogSizePerInstance"
HAS_BACKLOG_METRIC = "HasBacklogWithoutCapacity"
# AsyncInferenceClientConfig.MaxConcurrentInvocationsPerInstance: 1-1000 (botocore's model).
MAX_CONCURRENT_INVOCATIONS = (1, 1000)
# NotificationConfig topics (botocore's pattern for SuccessTopic / ErrorTopic).
SNS_TOPIC_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:sns:[a-z0-9\-]*:[0-9]{12}:[a-zA-Z0-9_.-]+$")
S3_PATH_MAX = 512
# The AWS guide's example target: 5 queued requests per instance.
DEFAULT_TARGET_BACKLOG_PER_INSTANCE = 5.0
# A CloudWatch alarm may look back at most one day.
MAX_ALARM_WINDOW_S = 86_400
SERVING_STATES = ("InService", "Updating")


# --------------------------------------------------------------------------------------------
# Endpoint config
# --------------------------------------------------------------------------------------------


def _s3_prefix(value: Any, field_name: str) -> str:
    parse_s3_uri(value, field_name)
    if len(value) > S3_PATH_MAX:
        raise ConfigError(field_name, f"is {len(value)} characters; SageMaker allows at most {S3_PATH_MAX}")
    return value


def _topic(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not SNS_TOPIC_ARN_RE.match(value):
        raise ConfigError(field_name, f"{value!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)")
    return value


def async_endpoint_config_request(
    *,
    endpoint_config_name: str,
    model_name: str,
    instance_type: str,
    instance_count: int,
    output_s3_uri: str,
    failure_s3_uri: str | None = None,
    success_topic: str | None = None,
    error_topic: str | None = None,
    max_concurrent_invocations_per_instance: int = 4,
    tags: Sequence[Mapping[str, str]] | Mapping[str, str],
    variant_name: str = VARIANT_NAME,
) -> dict[str, Any]:
    """``CreateEndpointConfig`` for an asynchronous endpoint with one instance-backed variant.

    Results go to ``output_s3_uri`` (``<uuid>.out``), errors to ``failure_s3_uri`` when given
    (without it a failed inference leaves nothing in S3: only the SNS error topic, if any, hears
    of it). ``max_concurrent_invocations_per_instance`` caps the requests one instance works on
    at once; the rest wait in the endpoint's queue.
    """
    validate_sagemaker_name(endpoint_config_name, "endpoint_config_name")
    validate_sagemaker_name(model_name, "model_name")
    validate_variant_name(variant_name)
    validate_instance_type(instance_type, "instance_type")
    # Creating needs at least one instance; scaling to zero comes after, from the autoscaling policy.
    int_field(instance_count, "instance_count", 1)
    int_field(max_concurrent_invocations_per_instance, "max_concurrent_invocations_per_instance",
              *MAX_CONCURRENT_INVOCATIONS)
    output_config: dict[str, Any] = {"S3OutputPath": _s3_prefix(output_s3_uri, "output_s3_uri")}
    if failure_s3_uri is not None:
        output_config["S3FailurePath"] = _s3_prefix(failure_s3_uri, "failure_s3_uri")
        if failure_s3_uri.rstrip("/") == output_s3_uri.rstrip("/"):
            raise ConfigError("failure_s3_uri", "must differ from output_s3_uri, or failures look like results")
    notification = {}
    if success_topic is not None:
        notification["SuccessTopic"] = _topic(success_topic, "success_topic")
    if error_topic is not None:
        notification["ErrorTopic"] = _topic(error_topic, "error_topic")
    if notification:
        output_config["NotificationConfig"] = notification
    return {
        "EndpointConfigName": endpoint_config_name,
        "ProductionVariants": [{
            "VariantName": variant_name,
            "ModelName": model_name,
            "InstanceType": instance_type,
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": 1.0,
        }],
        "AsyncInferenceConfig": {
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": max_concurrent_invocations_per_instance},
            "OutputConfig": output_config,
        },
        "Tags": package_tags(tags),
    }


# --------------------------------------------------------------------------------------------
# Scale to zero, and back
# --------------------------------------------------------------------------------------------


def async_autoscaling_requests(
    endpoint_name: str,
    variant_name: str = VARIANT_NAME,
    *,
    max_capacity: int,
    target_backlog_per_instance: float = DEFAULT_TARGET_BACKLOG_PER_INSTANCE,
    scale_in_cooldown_s: int = 600,
    scale_out_cooldown_s: int = 300,
    scale_from_zero_cooldown_s: int = 300,
) -> dict[str, dict[str, Any]]:
    """``register`` / ``target_tracking`` / ``step_scaling`` kwargs for a variant that may scale to zero.

    * ``register``: ``RegisterScalableTarget`` with ``MinCapacity`` 0.
    * ``target_tracking``: ``PutScalingPolicy`` holding ``ApproximateBacklogSizePerInstance``
      (Average) at ``target_backlog_per_instance`` queued requests per instance. Scale-in waits
      longer than scale-out: dropping to zero means the next request pays a cold start.
    * ``step_scaling``: ``PutScalingPolicy`` adding one instance (``ChangeInCapacity``,
      ``MetricIntervalLowerBound`` 0) when its alarm fires; see :func:`scale_from_zero_alarm`.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    validate_variant_name(variant_name)
    int_field(max_capacity, "max_capacity", 1)
    target = positive_number(target_backlog_per_instance, "target_backlog_per_instance")
    int_field(scale_in_cooldown_s, "scale_in_cooldown_s", 0)
    int_field(scale_out_cooldown_s, "scale_out_cooldown_s", 0)
    int_field(scale_from_zero_cooldown_s, "scale_from_zero_cooldown_s", 0)
    target_id = resource_id(endpoint_name, variant_name)
    common = {"ServiceNamespace": SERVICE_NAMESPACE, "ResourceId": target_id, "ScalableDimension": SCALABLE_DIMENSION}
    return {
        "register": scalable_target_request(endpoint_name, variant_name, min_capacity=0, max_capacity=max_capacity),
        "target_tracking": {
            "PolicyName": backlog_policy_name(endpoint_name, variant_name),
            **common,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": target,
                "CustomizedMetricSpecification": {
                    "MetricName": BACKLOG_METRIC,
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
                    "Statistic": "Average",
                },
                "ScaleInCooldown": scale_in_cooldown_s,
                "ScaleOutCooldown": scale_out_cooldown_s,
            },
        },
        "step_scaling": {
            "PolicyName": scale_from_zero_policy_name(endpoint_name, variant_name),
            **common,
            "PolicyType": "StepScaling",
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Average",
                "Cooldown": scale_from_zero_cooldown_s,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
            },
        },
    }


def scale_from_zero_alarm(
    endpoint_name: str,
    policy_arn: str,
    *,
    period_s: int = 60,
    evaluation_periods: int = 2,
) -> dict[str, Any]:
    """``PutMetricAlarm`` kwargs: ``HasBacklogWithoutCapacity`` >= 1 fires the step-scaling policy.

    ``TreatMissingData=missing`` as in the AWS guide: no data (no requests) neither fires nor clears it.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    if not isinstance(policy_arn, str) or not policy_arn.startswith("arn:"):
        raise ConfigError("policy_arn", f"{policy_arn!r} is not the ARN PutScalingPolicy returned")
    int_field(period_s, "period_s", 60)
    if period_s % 60:
        raise ConfigError("period_s", f"must be a multiple of 60 for a standard-resolution metric, got {period_s}")
    int_field(evaluation_periods, "evaluation_periods", 1)
    if period_s * evaluation_periods > MAX_ALARM_WINDOW_S:
        raise ConfigError("evaluation_periods", f"{evaluation_periods} x {period_s} s exceeds one day")
    return {
        "AlarmName": backlog_alarm_name(endpoint_name),
        "AlarmDescription": f"Scale {endpoint_name} out from zero instances when requests are queued",
        "MetricName": HAS_BACKLOG_METRIC,
        "Namespace": METRIC_NAMESPACE,
        "Statistic": "Average",
        "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
        "Period": period_s,
        "EvaluationPeriods": evaluation_periods,
        "DatapointsToAlarm": evaluation_periods,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "missing",
        "AlarmActions": [policy_arn],
        "Tags": [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "endpoint", "Value": endpoint_name}],
    }


def check_async_endpoint(description: Mapping[str, Any], variant_name: str | None = None) -> None:
    """Refuse an endpoint that is not asynchronous, not serving, or lacks ``variant_name``."""
    name = description.get("EndpointName")
    if not (description.get("AsyncInferenceConfig") or {}).get("OutputConfig"):
        raise ConfigError("endpoint_name", f"endpoint {name!r} is not an asynchronous endpoint "
                                           "(DescribeEndpoint shows no AsyncInferenceConfig)")
    status = description.get("EndpointStatus")
    if status not in SERVING_STATES:
        raise ConfigError("endpoint_name", f"endpoint {name!r} is {status}, not InService")
    if variant_name is not None:
        names = [v.get("VariantName") for v in description.get("ProductionVariants") or []]
        if variant_name not in names:
            raise ConfigError("variant_name", f"endpoint {name!r} has no variant {variant_name!r}; it has {names}")


# --------------------------------------------------------------------------------------------
# Invocation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsyncInvocation:
    """What InvokeEndpointAsync answered: where the result (or the error) will appear."""

    output_location: str
    failure_location: str | None
    inference_id: str | None


def invoke_async_request(endpoint_name: str, input_s3_uri: str, content_type: str = "image/jpeg",
                         *, inference_id: str | None = None, request_ttl_s: int | None = None,
                         invocation_timeout_s: int | None = None) -> dict[str, Any]:
    """``InvokeEndpointAsync`` kwargs for an input already in S3; asks for the JSON reply format.

    ``request_ttl_s`` (60-21600, AWS default 21600) and ``invocation_timeout_s`` (1-3600, default
    900) bound how long the request may wait in the queue and be processed.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    _, key = parse_s3_uri(input_s3_uri, "input_s3_uri")
    if not key or key.endswith("/"):
        raise ConfigError("input_s3_uri", f"{input_s3_uri!r} names no object (s3://bucket/key)")
    if not isinstance(content_type, str) or not content_type.strip():
        raise ConfigError("content_type", "is required, e.g. image/jpeg")
    request: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "InputLocation": input_s3_uri,
        "ContentType": content_type,
        "Accept": "application/json",
    }
    if inference_id is not None:
        if not isinstance(inference_id, str) or not 1 <= len(inference_id) <= 64 or inference_id[0].isspace():
            raise ConfigError("inference_id", f"{inference_id!r} must be 1-64 printable characters")
        request["InferenceId"] = inference_id
    if request_ttl_s is not None:
        request["RequestTTLSeconds"] = int_field(request_ttl_s, "request_ttl_s", 60, 21600)
    if invocation_timeout_s is not None:
        request["InvocationTimeoutSeconds"] = int_field(invocation_timeout_s, "invocation_timeout_s", 1, 3600)
    return request


def smoke_input_uri(input_prefix: str, sample_image: str) -> str:
    """Where the smoke test uploads its image: ``<input_prefix>/async-smoke/<file name>``.

    Deterministic, so a retried task overwrites the same object rather than adding one.
    """
    parse_s3_uri(input_prefix, "input_prefix")
    name = PurePosixPath(str(sample_image).split("?")[0]).name
    if not name:
        raise ConfigError("sample_image", f"{sample_image!r} names no file")
    return f"{input_prefix.rstrip('/')}/async-smoke/{name}"


def class_map_param(value: Any) -> dict[int, str]:
    """The operator's ``class_map``: a mapping, a list of names by id, or either as JSON text."""
    # A Jinja-rendered XCom arrives as a JSON string unless the DAG renders native objects.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError("class_map", f"{value[:80]!r} is neither a mapping nor JSON") from None
    try:
        names = normalise_class_map(value)
    except ValueError as exc:
        raise ConfigError("class_map", str(exc)) from None
    if not names:
        raise ConfigError("class_map", "is empty; give the class names the model was trained on")
    return names


def min_score_param(value: Any) -> float:
    """The operator's ``min_score``: a number in [0, 1] (text is accepted: it is templated)."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ConfigError("min_score", f"must be a number in [0, 1], got {value!r}") from None
    if isinstance(value, bool) or not 0 <= score <= 1:
        raise ConfigError("min_score", f"must be a number in [0, 1], got {value!r}")
    return score


