"""Asynchronous inference endpoints (``endpoint_type=async``): config, scale-to-zero and a smoke test.

An asynchronous endpoint queues requests, reads each input from S3 and writes the result to S3,
so it suits large images and bursty batches, and it is the only instance-backed endpoint that
can scale to **zero** instances while idle.

* :func:`async_endpoint_config_request`: ``CreateEndpointConfig`` with ``AsyncInferenceConfig``.
* :func:`async_autoscaling_requests` / :func:`scale_from_zero_alarm` / :func:`apply_async_autoscaling`:
  what the AWS guide "Autoscale an asynchronous endpoint"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html) prescribes:
  register the variant with ``MinCapacity`` 0; target tracking on the customized metric
  ``ApproximateBacklogSizePerInstance`` (AWS/SageMaker, dimension EndpointName); and, because
  that metric alone only scales out from zero once the backlog exceeds the target, a step-scaling
  policy (+1 instance, ``ChangeInCapacity``) fired by a CloudWatch alarm on
  ``HasBacklogWithoutCapacity`` >= 1 for 2 of 2 one-minute periods.
* :func:`invoke_async` and :class:`AsyncInferenceSmokeOperator`: one JPEG through the endpoint,
  waiting for the result in the triggerer (:class:`~sagemaker_vision.triggers.AsyncInferenceOutputTrigger`),
  decoded into pixel boxes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import AirflowException, conf

from sagemaker_vision import aws, s3io
from sagemaker_vision import endpoint_waits as waits
from sagemaker_vision.config import ConfigError, parse_s3_uri, validate_sagemaker_name
from sagemaker_vision.inference import content_type_for, decode_detections, image_size, normalise_class_map
from sagemaker_vision.requests import PACKAGE_TAG, PACKAGE_TAG_VALUE, VARIANT_NAME
from sagemaker_vision.scaling import (
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    backlog_alarm_name,
    int_field,
    package_tags,
    positive_number,
    resource_id,
    scalable_target_request,
    validate_instance_type,
    validate_variant_name,
)
from sagemaker_vision.triggers import AsyncInferenceOutputTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

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
DEFAULT_WAITER_DELAY = 30
# None: enough checks for the request's lifetime (endpoint_waits.async_result_budget).
DEFAULT_WAITER_MAX_ATTEMPTS: int | None = None
# The smoke request's own lifetime: an hour in the queue (a scale-out from zero takes minutes; the
# default would be 6 h) and AWS's default 15 minutes of processing (InvokeEndpointAsyncInput).
SMOKE_REQUEST_TTL_S = 3600
SMOKE_INVOCATION_TIMEOUT_S = 900
FAILURE_EXCERPT_CHARS = 2000


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
    validate_instance_type(instance_type)
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


def backlog_policy_name(endpoint_name: str, variant_name: str = VARIANT_NAME) -> str:
    return f"{endpoint_name}-{variant_name}-backlog-per-instance"


def scale_from_zero_policy_name(endpoint_name: str, variant_name: str = VARIANT_NAME) -> str:
    return f"{endpoint_name}-{variant_name}-has-backlog-without-capacity"


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


def apply_async_autoscaling(
    aas_client: Any,
    cloudwatch_client: Any,
    sagemaker_client: Any,
    endpoint_name: str,
    variant_name: str = VARIANT_NAME,
    *,
    max_capacity: int,
    target_backlog_per_instance: float = DEFAULT_TARGET_BACKLOG_PER_INSTANCE,
    scale_in_cooldown_s: int = 600,
    scale_out_cooldown_s: int = 300,
    scale_from_zero_cooldown_s: int = 300,
    alarm_period_s: int = 60,
    alarm_evaluation_periods: int = 2,
) -> dict[str, Any]:
    """Scale-to-zero autoscaling for an async endpoint: register, both policies and the alarm.

    Every call is an upsert (RegisterScalableTarget, PutScalingPolicy, PutMetricAlarm), so a
    retry converges on the same state. Validates everything and checks the endpoint is an
    InService asynchronous endpoint with that variant before writing anything.
    """
    requests = async_autoscaling_requests(
        endpoint_name, variant_name, max_capacity=max_capacity,
        target_backlog_per_instance=target_backlog_per_instance, scale_in_cooldown_s=scale_in_cooldown_s,
        scale_out_cooldown_s=scale_out_cooldown_s, scale_from_zero_cooldown_s=scale_from_zero_cooldown_s,
    )
    # Validate the alarm's own arguments now, with a placeholder ARN, rather than after two writes.
    scale_from_zero_alarm(endpoint_name, "arn:placeholder", period_s=alarm_period_s,
                          evaluation_periods=alarm_evaluation_periods)
    check_async_endpoint(sagemaker_client.describe_endpoint(EndpointName=endpoint_name), variant_name)
    aas_client.register_scalable_target(**requests["register"])
    tracking_arn = aas_client.put_scaling_policy(**requests["target_tracking"])["PolicyARN"]
    step_arn = aas_client.put_scaling_policy(**requests["step_scaling"])["PolicyARN"]
    alarm = scale_from_zero_alarm(endpoint_name, step_arn, period_s=alarm_period_s,
                                  evaluation_periods=alarm_evaluation_periods)
    cloudwatch_client.put_metric_alarm(**alarm)
    return {
        "resource_id": requests["register"]["ResourceId"],
        "min_capacity": 0,
        "max_capacity": max_capacity,
        "target_backlog_per_instance": float(target_backlog_per_instance),
        "target_tracking_policy_arn": tracking_arn,
        "scale_from_zero_policy_arn": step_arn,
        "scale_from_zero_alarm": alarm["AlarmName"],
    }


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
    request = {
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


def start_async_inference(runtime_client: Any, endpoint_name: str, input_s3_uri: str,
                          content_type: str = "image/jpeg", *, inference_id: str | None = None,
                          request_ttl_s: int | None = None, invocation_timeout_s: int | None = None
                          ) -> AsyncInvocation:
    """One ``InvokeEndpointAsync`` call on a ``sagemaker-runtime`` client; returns where to look."""
    response = runtime_client.invoke_endpoint_async(
        **invoke_async_request(endpoint_name, input_s3_uri, content_type, inference_id=inference_id,
                               request_ttl_s=request_ttl_s, invocation_timeout_s=invocation_timeout_s)
    )
    return AsyncInvocation(response["OutputLocation"], response.get("FailureLocation"), response.get("InferenceId"))


def invoke_async(runtime_client: Any, endpoint_name: str, input_s3_uri: str, content_type: str = "image/jpeg") -> str:
    """``InvokeEndpointAsync`` for ``input_s3_uri``; returns the OutputLocation the result will be written to."""
    return start_async_inference(runtime_client, endpoint_name, input_s3_uri, content_type).output_location


def smoke_input_uri(input_prefix: str, sample_image: str) -> str:
    """Where the smoke test uploads its image: ``<input_prefix>/async-smoke/<file name>``.

    Deterministic, so a retried task overwrites the same object rather than adding one.
    """
    parse_s3_uri(input_prefix, "input_prefix")
    name = PurePosixPath(str(sample_image).split("?")[0]).name
    if not name:
        raise ConfigError("sample_image", f"{sample_image!r} names no file")
    return f"{input_prefix.rstrip('/')}/async-smoke/{name}"


def _class_map(value: Any) -> dict[int, str]:
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


def _min_score(value: Any) -> float:
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ConfigError("min_score", f"must be a number in [0, 1], got {value!r}") from None
    if isinstance(value, bool) or not 0 <= score <= 1:
        raise ConfigError("min_score", f"must be a number in [0, 1], got {value!r}")
    return score


# --------------------------------------------------------------------------------------------
# The smoke-test operator
# --------------------------------------------------------------------------------------------


class AsyncInferenceSmokeOperator(AwsBaseOperator[S3Hook]):
    """Send one sample image through an asynchronous endpoint and decode the boxes it returns.

    Uploads ``sample_image`` (a local path relative to the project root, or ``s3://``) to
    ``<input_prefix>/async-smoke/``, calls InvokeEndpointAsync, then waits for the output object,
    watching the failure object too: deferrable, in the triggerer, without a worker slot. The
    output JSON is decoded with :func:`~sagemaker_vision.inference.decode_detections` into pixel
    boxes of the sample's size. Fails, naming the object, on a failure object, a timeout, or an
    output that is not object-detection JSON. Returns (to XCom) the locations and the boxes.

    :param endpoint_name: The asynchronous endpoint; must be InService (templated).
    :param sample_image: The JPEG or PNG to send (templated).
    :param input_prefix: ``s3://`` prefix to upload it under, e.g. the run's prefix (templated).
    :param class_map: ``{class_id: name}`` or a list of names by id; JSON text is accepted (templated).
    :param min_score: Drop boxes scored below this (templated).
    :param waiter_delay: Seconds between two checks for the output.
    :param waiter_max_attempts: Checks before giving up. Default: enough for the request's lifetime,
        ``request_ttl_s + invocation_timeout_s`` (after that AWS expires the request).
    :param request_ttl_s: RequestTTLSeconds sent with the request (60-21600).
    :param invocation_timeout_s: InvocationTimeoutSeconds sent with the request (1-3600).
    :param deferrable: Wait in the triggerer instead of polling from the worker.
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "endpoint_name", "sample_image", "input_prefix", "class_map", "min_score"
    )
    template_fields_renderers = {"class_map": "json"}
    ui_color = "#d6e9f4"

    def __init__(
        self,
        *,
        endpoint_name: str,
        sample_image: str,
        input_prefix: str,
        class_map: Mapping[int | str, str] | Sequence[str] | str,
        min_score: float | str = 0.0,
        waiter_delay: int = DEFAULT_WAITER_DELAY,
        waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
        request_ttl_s: int = SMOKE_REQUEST_TTL_S,
        invocation_timeout_s: int = SMOKE_INVOCATION_TIMEOUT_S,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.request_ttl_s = request_ttl_s
        self.invocation_timeout_s = invocation_timeout_s
        self.endpoint_name = endpoint_name
        self.sample_image = sample_image
        self.input_prefix = input_prefix
        self.class_map = class_map
        self.min_score = min_score
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    def _client(self, service: str) -> Any:
        params = self._hook_parameters
        return AwsBaseHook(client_type=service, aws_conn_id=params["aws_conn_id"], region_name=params["region_name"],
                           verify=params["verify"], config=params["config"] or aws.botocore_config()).conn

    def execute(self, context: Context) -> dict[str, Any]:
        # Everything checkable without AWS is checked first.
        validate_sagemaker_name(self.endpoint_name, "endpoint_name")
        _class_map(self.class_map)
        _min_score(self.min_score)
        int_field(self.waiter_delay, "waiter_delay", 1)
        int_field(self.request_ttl_s, "request_ttl_s", 60, 21600)
        int_field(self.invocation_timeout_s, "invocation_timeout_s", 1, 3600)
        if self.waiter_max_attempts is None:
            self.waiter_max_attempts = waits.max_attempts(
                waits.async_result_budget(self.request_ttl_s, self.invocation_timeout_s), self.waiter_delay)
        int_field(self.waiter_max_attempts, "waiter_max_attempts", 1)
        try:
            content_type = content_type_for(self.sample_image)
        except ValueError as exc:
            raise ConfigError("sample_image", str(exc)) from None
        input_uri = smoke_input_uri(self.input_prefix, self.sample_image)

        s3 = self.hook.conn
        image = s3io.read_bytes(s3, self.sample_image, "sample_image")
        try:
            width, height = image_size(image)
        except ValueError as exc:
            raise ConfigError("sample_image", f"{self.sample_image}: {exc}") from None
        check_async_endpoint(self._client("sagemaker").describe_endpoint(EndpointName=self.endpoint_name))
        s3io.put_bytes(s3, input_uri, image, content_type)
        invocation = start_async_inference(self._client("sagemaker-runtime"), self.endpoint_name, input_uri,
                                           content_type, request_ttl_s=self.request_ttl_s,
                                           invocation_timeout_s=self.invocation_timeout_s)
        self.log.info("Invoked %s asynchronously with %s (%dx%d); output will be %s, failures %s",
                      self.endpoint_name, input_uri, width, height, invocation.output_location,
                      invocation.failure_location or "(no S3FailurePath)")
        resume = {
            "input_location": input_uri,
            "output_location": invocation.output_location,
            "failure_location": invocation.failure_location,
            "image_width": width,
            "image_height": height,
        }
        if self.deferrable:
            self.defer(
                trigger=AsyncInferenceOutputTrigger(
                    output_location=invocation.output_location,
                    failure_location=invocation.failure_location,
                    poll_interval=self.waiter_delay,
                    max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                    resume=resume,
                ),
                method_name="execute_complete",
                kwargs=resume,
                # The trigger stops itself after its attempts; this only catches a lost trigger.
                timeout=timedelta(seconds=self.waiter_delay * self.waiter_max_attempts + 300),
            )
        return self.execute_complete(context, self._poll(invocation), **resume)

    def _poll(self, invocation: AsyncInvocation) -> dict[str, Any]:
        """The trigger's event, computed on the worker: bounded HeadObject polling of both objects."""
        s3 = self.hook.conn
        watched = [("success", invocation.output_location)]
        if invocation.failure_location:
            watched.append(("failed", invocation.failure_location))
        event: dict[str, Any] = {"output_location": invocation.output_location,
                                 "failure_location": invocation.failure_location}
        for attempt in range(1, self.waiter_max_attempts + 1):
            for status, uri in watched:
                if s3io.exists(s3, uri):
                    return {**event, "status": status}
            self.log.info("No output at %s yet (check %d of %d)", invocation.output_location, attempt,
                          self.waiter_max_attempts)
            if attempt < self.waiter_max_attempts:
                time.sleep(self.waiter_delay)
        return {**event, "status": "timeout",
                "message": f"nothing after {self.waiter_max_attempts} checks {self.waiter_delay} s apart"}

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        **resume: Any,
    ) -> dict[str, Any]:
        """Resume after the output (or failure) object appeared: decode it, or fail naming it."""
        event = validate_execute_complete_event(event)
        resume = resume or event.get("resume") or {}
        try:
            input_location, output_location = resume["input_location"], resume["output_location"]
            failure_location = resume.get("failure_location")
            image_width, image_height = resume["image_width"], resume["image_height"]
        except KeyError as exc:
            raise AirflowException(f"resume data missing {exc} in trigger event {event}") from None
        status = event.get("status")
        s3 = self.hook.conn
        if status == "failed":
            detail = s3io.read_bytes(s3, failure_location, "failure_location")[:FAILURE_EXCERPT_CHARS]
            raise AirflowException(
                f"endpoint {self.endpoint_name} failed the inference of {input_location}: failure object "
                f"{failure_location} says: {detail.decode('utf-8', 'replace')}"
            )
        if status != "success":
            raise AirflowException(
                f"endpoint {self.endpoint_name}: waiting for {output_location} ended with {status}: "
                f"{event.get('message')}"
            )
        body = s3io.read_bytes(s3, output_location, "output_location")
        try:
            boxes = decode_detections(body, class_map=_class_map(self.class_map), image_width=image_width,
                                      image_height=image_height, min_score=_min_score(self.min_score))
        except ValueError as exc:
            raise AirflowException(f"async output {output_location} is not object-detection JSON: {exc}") from None
        self.log.info("%s: %d boxes at min_score %s: %s", output_location, len(boxes), self.min_score,
                      ", ".join(f"{b.label} {b.score:.2f}" for b in boxes) or "none")
        return {
            "endpoint_name": self.endpoint_name,
            "input_location": input_location,
            "output_location": output_location,
            "image_width": image_width,
            "image_height": image_height,
            "min_score": _min_score(self.min_score),
            "boxes": [box.to_dict() for box in boxes],
        }


__all__ = [
    "BACKLOG_METRIC",
    "HAS_BACKLOG_METRIC",
    "METRIC_NAMESPACE",
    "AsyncInferenceSmokeOperator",
    "AsyncInvocation",
    "apply_async_autoscaling",
    "async_autoscaling_requests",
    "async_endpoint_config_request",
    "backlog_alarm_name",
    "backlog_policy_name",
    "check_async_endpoint",
    "invoke_async",
    "invoke_async_request",
    "scale_from_zero_alarm",
    "scale_from_zero_policy_name",
    "smoke_input_uri",
    "start_async_inference",
]
