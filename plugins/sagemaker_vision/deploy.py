"""The deployment stage: a quality gate, idempotent creates and zero-downtime endpoint updates.

Pure functions do the thinking and are tested without AWS:

* :func:`final_metric`, :func:`quality_gate` -> :class:`GateDecision`: deploy a retrained model
  only when its ``validation:mAP`` clears ``min_map`` and is no worse than the serving model's
  (within ``map_tolerance``); a model without the metric never deploys.
* :func:`deployment_config` builds the ``UpdateEndpoint`` blue/green ``DeploymentConfig``
  (all at once, canary or linear, with alarm-based auto-rollback); :func:`rollback_alarm_requests`
  the CloudWatch alarms that roll a bad deployment back; :func:`plan_deploy` decides what an
  endpoint in a given state needs (create, update, wait, nothing, or a refusal).

Thin AWS helpers around them: :func:`production_map` reads the serving model's mAP back from its
``validation-map`` tag; :func:`ensure_model` / :func:`ensure_endpoint_config` create or reuse (a
rerun never duplicates, a same-named resource that differs is refused by field);
:func:`ensure_rollback_alarms` puts the alarms. :class:`DeployEndpointOperator` creates or
updates the endpoint and waits (deferrable, with :class:`EndpointTrigger`, within a budget from
``endpoint_waits``); a failed state (Failed, UpdateRollbackFailed, OutOfService, Deleting) ends
the wait at once. When an update fails or rolls back it fails the task with the ``FailureReason``
and says which config still serves: the old model keeps serving. :class:`RollbackEndpointOperator`
puts the config that served before back when a smoke or load test fails after the deploy, and
fails naming what serves then (a first deploy has nothing older: the new model stays). An update that adds or removes a
variant (an A/B Challenger) is sent without a DeploymentConfig, which AWS refuses then.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.amazon.aws.waiters.base_waiter import BaseBotoWaiter
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf
from airflow.triggers.base import TriggerEvent
from botocore.exceptions import ClientError

from sagemaker_vision import aws
from sagemaker_vision import endpoint_waits as waits
from sagemaker_vision.config import ConfigError, validate_sagemaker_name
from sagemaker_vision.requests import PACKAGE_TAG, PACKAGE_TAG_VALUE, VARIANT_NAME

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

MAP_METRIC = "validation:mAP"
# The mAP a model was validated at lives in a tag on the SageMaker model itself: the tag is
# durable (it outlives the run, its XCom and the metadata DB), travels with the model (whatever
# serves the endpoint carries its own score, even after a manual rollback or a deploy from
# elsewhere), and is visible in the console next to the model. Nothing else has to be kept in sync.
MAP_TAG = "validation-map"

# "<new config>/<config it replaced>" on the endpoint, written before every UpdateEndpoint of a deploy: the
# config a failed test rolls back to. A tag, like the mAP, because it must outlive the try that wrote it (a
# deferral's kwargs do not survive dag.test(), and a rerun's deploy finds the endpoint already updated).
DEPLOYED_OVER_TAG = "sagemaker-vision:deployed-over"

DEPLOYMENT_POLICIES = ("all_at_once", "canary", "linear")
ENDPOINT_TYPES = ("serverless", "provisioned")
# UpdateEndpoint limits (API reference: TrafficRoutingConfig, BlueGreenUpdatePolicy, AutoRollbackConfig).
WAIT_INTERVAL_S = (0, 3600)
TERMINATION_WAIT_S = (0, 3600)
MAXIMUM_EXECUTION_TIMEOUT_S = (600, 28800)
# "CanarySize: Value must be less than or equal to 50% of the variant's total instance count";
# "LinearStepSize: Value must be 10-50% of the variant's total instance count" (TrafficRoutingConfig).
CANARY_PERCENT = (1, 50)
LINEAR_STEP_PERCENT = (10, 50)
MAX_ROLLBACK_ALARMS = 10
MAX_ALARM_NAME = 255

# CloudWatch: SageMaker publishes endpoint metrics once a minute, so alarm periods are whole
# minutes (10/20/30 s periods on a one-minute metric lapse into INSUFFICIENT_DATA); alarms with a
# period under an hour may look back at most one day (PutMetricAlarm, Period and EvaluationPeriods).
ALARM_NAMESPACE = "AWS/SageMaker"
MAX_ALARM_LOOKBACK_S = 86_400
MICROSECONDS_PER_MS = 1000

# DescribeEndpoint EndpointStatus values, by what a deploy does about them.
IN_FLIGHT = waits.IN_FLIGHT_STATES
# "DeleteEndpoint is the only operation that can be performed on a failed endpoint" (DescribeEndpoint).
# OutOfService ("not available to take incoming requests") and Deleting end a wait at once too
# (waits.FAILED_STATES), but a later deploy may find them changed: their refusal is retryable.
NEEDS_A_HUMAN = frozenset({"Failed", "UpdateRollbackFailed"})
# This package's waiter: boto's endpoint_in_service fails on Failed only, and would poll an endpoint
# in UpdateRollbackFailed or OutOfService until the budget ran out.
ENDPOINT_WAITER = waits.ENDPOINT_SETTLED
ENDPOINT_STATUS_QUERIES = ["EndpointStatus", "PendingDeploymentSummary.EndpointConfigName", "FailureReason"]


class ResourceConflictError(AirflowFailException):
    """A resource of that name exists but is not what was asked for; retrying cannot fix it."""


# --------------------------------------------------------------------------------------------
# Quality gate (pure)
# --------------------------------------------------------------------------------------------


def final_metric(training_description: Mapping[str, Any], name: str = MAP_METRIC) -> float | None:
    """The final value of metric ``name`` in a DescribeTrainingJob response, or None.

    Accepts the training operator's return value (``{"Training": DescribeTrainingJob}``) too.
    A missing, non-numeric or NaN value is None: the gate never deploys an unmeasured model.
    """
    description = training_description.get("Training", training_description)
    value = None
    for metric in description.get("FinalMetricDataList") or []:
        if metric.get("MetricName") == name:
            value = metric.get("Value")  # if reported twice, the later entry counts
    return _finite(value)


@dataclass(frozen=True)
class GateDecision:
    """Whether to deploy the new model, and why, in one line a person can read in the log."""

    deploy: bool
    reason: str
    new_map: float | None
    production_map: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom."""
        return asdict(self)


def quality_gate(new_map: float | None, production_map: float | None, *, min_map: float,
                 map_tolerance: float) -> GateDecision:
    """Deploy when ``new_map >= min_map`` and (no production model, or ``new_map >= production - tolerance``).

    ``production_map=None`` is the first deploy (or a serving model with no recorded mAP): there is
    nothing to beat, only ``min_map``. ``new_map=None`` never deploys. The tolerance lets a
    retrained model that is statistically no worse replace an older one (fresh data beats a
    stale model); both bounds are inclusive.
    """
    min_map = _fraction(min_map, "min_map")
    map_tolerance = _fraction(map_tolerance, "map_tolerance")
    new, production = _finite(new_map), _finite(production_map)
    if new is None:
        return GateDecision(False, f"the new model reported no {MAP_METRIC}; an unmeasured model is never deployed",
                            None, production)
    if not _at_least(new, min_map):
        return GateDecision(False, f"new mAP {new:.4f} is below min_map {min_map:.4f}", new, production)
    if production is None:
        return GateDecision(True, f"new mAP {new:.4f} >= min_map {min_map:.4f} and no production mAP to beat "
                            "(first deploy, or the serving model has no validation-map tag)", new, None)
    floor = production - map_tolerance
    if _at_least(new, floor):
        return GateDecision(True, f"new mAP {new:.4f} >= production mAP {production:.4f} - tolerance "
                            f"{map_tolerance:.4f}", new, production)
    return GateDecision(False, f"new mAP {new:.4f} is below production mAP {production:.4f} - tolerance "
                        f"{map_tolerance:.4f} = {floor:.4f}; the production model keeps serving", new, production)


def _at_least(value: float, bound: float) -> bool:
    # 0.8 - 0.1 is 0.7000000000000001 in binary floating point: a boundary must not flip on that.
    return value >= bound or math.isclose(value, bound, rel_tol=0.0, abs_tol=1e-9)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fraction(value: Any, field_name: str) -> float:
    number = _finite(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError(field_name, f"must be a number from 0 to 1, got {value!r}")
    return number


def format_map_tag(value: float) -> str:
    """The ``validation-map`` tag value: the float's shortest exact repr, e.g. ``0.7312``."""
    number = _finite(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError("validation_map", f"must be an mAP from 0 to 1, got {value!r}")
    return repr(number)


def serving_variant(variants: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The production variant that takes most traffic: highest weight, then ``AllTraffic``, then first."""
    if not variants:
        raise ValueError("the endpoint config has no ProductionVariants")

    def rank(indexed: tuple[int, Mapping[str, Any]]) -> tuple[float, bool, int]:
        index, variant = indexed
        weight = _finite(variant.get("InitialVariantWeight"))
        return (1.0 if weight is None else weight, variant.get("VariantName") == VARIANT_NAME, -index)

    return max(enumerate(variants), key=rank)[1]


def endpoint_type_of(variants: Sequence[Mapping[str, Any]]) -> str:
    """``serverless`` when the variants run on serverless compute, else ``provisioned``."""
    return "serverless" if any(v.get("ServerlessConfig") for v in variants) else "provisioned"


# --------------------------------------------------------------------------------------------
# Blue/green deployment config and rollback alarms (pure)
# --------------------------------------------------------------------------------------------


def deployment_config(
    policy: str,
    *,
    endpoint_type: str,
    canary_percent: int = 10,
    linear_step_percent: int = 20,
    wait_interval_s: int = 300,
    termination_wait_s: int = 120,
    maximum_execution_timeout_s: int = 3600,
    alarm_names: Sequence[str],
) -> dict[str, Any]:
    """``UpdateEndpoint.DeploymentConfig`` for a blue/green update; ``{}`` means send none.

    ``policy`` is ``all_at_once``, ``canary`` (``canary_percent`` of the new fleet first, then
    the rest) or ``linear`` (steps of ``linear_step_percent``); each step bakes for
    ``wait_interval_s`` while ``alarm_names`` watch it, and any alarm in ALARM rolls all
    traffic back to the old fleet. The old fleet is kept ``termination_wait_s`` after the shift.

    Serverless endpoints: SageMaker's deployment guardrails (traffic shifting modes, baking
    periods, alarm auto-rollback) "only apply to Asynchronous inference and Real-time inference
    endpoint types" (Developer Guide, "Deployment guardrails for updating models in production"),
    and "If no update policy is specified, SageMaker uses a blue/green deployment strategy with all
    at once traffic shifting by default" (API reference, BlueGreenUpdatePolicy). So a serverless
    endpoint accepts only ``all_at_once``, which returns ``{}``: the update is still blue/green
    (no downtime) but has no baking period and no alarm rollback. ``canary`` and ``linear`` are
    refused, naming ``deployment_policy``.

    Raises :class:`ConfigError` naming the argument at fault.
    """
    policy = _policy(policy)
    if endpoint_type not in ENDPOINT_TYPES:
        raise ConfigError("endpoint_type", f"must be one of {', '.join(ENDPOINT_TYPES)}; got {endpoint_type!r}")
    alarms = _alarm_names(alarm_names)
    wait_s = _int_in_range(wait_interval_s, "wait_interval_s", *WAIT_INTERVAL_S)
    termination_s = _int_in_range(termination_wait_s, "termination_wait_s", *TERMINATION_WAIT_S)
    timeout_s = _int_in_range(maximum_execution_timeout_s, "maximum_execution_timeout_s",
                              *MAXIMUM_EXECUTION_TIMEOUT_S)
    routing: dict[str, Any] = {"Type": policy.upper(), "WaitIntervalInSeconds": wait_s}
    if policy == "canary":
        size = _int_in_range(canary_percent, "canary_percent", *CANARY_PERCENT)
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": size}
        bakes = 2  # the canary, then the whole fleet
    elif policy == "linear":
        size = _int_in_range(linear_step_percent, "linear_step_percent", *LINEAR_STEP_PERCENT)
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": size}
        bakes = math.ceil(100 / size)
    else:
        bakes = 1

    if endpoint_type == "serverless":
        if policy != "all_at_once":
            raise ConfigError(
                "deployment_policy",
                f"{policy!r} is not available for serverless endpoints: SageMaker's deployment guardrails "
                "(canary and linear traffic shifting, baking, alarm rollback) apply only to real-time and "
                "asynchronous endpoints. Use all_at_once (a blue/green update without downtime) or a "
                "provisioned endpoint",
            )
        return {}
    if policy != "all_at_once" and not alarms:
        raise ConfigError(
            "alarm_names",
            f"a {policy} deployment needs at least one CloudWatch alarm: without one nothing can roll the "
            "canary back and the steps only delay the deploy",
        )
    # "the timeout value should be larger than the total waiting time specified in
    # TerminationWaitInSeconds and WaitIntervalInSeconds" (BlueGreenUpdatePolicy).
    waiting = bakes * wait_s + termination_s
    if timeout_s <= waiting:
        raise ConfigError(
            "maximum_execution_timeout_s",
            f"{timeout_s} s must exceed the deployment's waiting time, {bakes} x wait_interval_s {wait_s} + "
            f"termination_wait_s {termination_s} = {waiting} s",
        )
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": termination_s,
            "MaximumExecutionTimeoutInSeconds": timeout_s,
        }
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return config


def rollback_alarm_names(endpoint_name: str) -> list[str]:
    """The two alarms :func:`ensure_rollback_alarms` keeps for ``endpoint_name``."""
    return [f"{endpoint_name}-5xx", f"{endpoint_name}-latency"]


def rollback_alarm_requests(
    endpoint_name: str,
    variant_name: str = VARIANT_NAME,
    *,
    error_threshold: float = 1,
    latency_threshold_ms: float = 1000.0,
    period_s: int = 60,
    evaluation_periods: int = 2,
) -> list[dict[str, Any]]:
    """``PutMetricAlarm`` requests: 5xx errors (Sum) and model latency (Average) of one variant.

    ``ModelLatency`` is published in microseconds, so ``latency_threshold_ms`` is converted.
    Missing data (no traffic, common on a quiet endpoint) is "not breaching": the alarm stays
    OK rather than INSUFFICIENT_DATA, and only real errors or slowness roll a deployment back.
    No Unit is set: an alarm whose Unit differs from the metric's never sees a datapoint.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    if not isinstance(variant_name, str) or not variant_name:
        raise ConfigError("variant_name", "is required")
    errors = _positive(error_threshold, "error_threshold")
    latency_ms = _positive(latency_threshold_ms, "latency_threshold_ms")
    period = _int_in_range(period_s, "period_s", 60, MAX_ALARM_LOOKBACK_S)
    if period % 60:
        raise ConfigError("period_s", f"must be a whole number of minutes (SageMaker metrics are per minute), "
                                      f"got {period}")
    periods = _int_in_range(evaluation_periods, "evaluation_periods", 1, MAX_ALARM_LOOKBACK_S // period)
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": variant_name}]
    common = {
        "Namespace": ALARM_NAMESPACE,
        "Dimensions": dimensions,
        "Period": period,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
        "TreatMissingData": "notBreaching",
        "Tags": [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "endpoint", "Value": endpoint_name}],
    }
    errors_name, latency_name = rollback_alarm_names(endpoint_name)
    return [
        {
            "AlarmName": errors_name,
            "AlarmDescription": f"Rolls back a deployment to {endpoint_name}/{variant_name}: >= {errors:g} "
                                f"5xx responses per {period} s, {periods} periods in a row.",
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Threshold": errors,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            **common,
        },
        {
            "AlarmName": latency_name,
            "AlarmDescription": f"Rolls back a deployment to {endpoint_name}/{variant_name}: average model "
                                f"latency above {latency_ms:g} ms, {periods} periods of {period} s in a row.",
            "MetricName": "ModelLatency",
            "Statistic": "Average",
            "Threshold": latency_ms * MICROSECONDS_PER_MS,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
    ]


# --------------------------------------------------------------------------------------------
# Deploy planning (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeployPlan:
    """What an endpoint in its current state needs so that it serves ``endpoint_config_name``.

    ``action``: ``create``, ``update``, ``unchanged``, ``resume`` (an operation towards the
    requested config is already running: wait for it), ``wait`` (another operation is running:
    wait, then plan again) or ``refuse`` (``reason`` says why; ``retryable`` whether a later try
    can succeed). ``result_action`` is what the task reports: created, updated or unchanged.
    """

    action: str
    reason: str
    previous_config: str | None = None
    result_action: str | None = None
    retryable: bool = False


def plan_deploy(endpoint: Mapping[str, Any] | None, endpoint_config_name: str) -> DeployPlan:
    """Decide from a DescribeEndpoint response (None: no such endpoint) what the deploy does."""
    if endpoint is None:
        return DeployPlan("create", "the endpoint does not exist", None, "created")
    name, status = endpoint.get("EndpointName"), endpoint.get("EndpointStatus")
    current = endpoint.get("EndpointConfigName")
    pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    if status == "InService":
        if current == endpoint_config_name:
            return DeployPlan("unchanged", f"{name} already serves {current}", current, "unchanged")
        return DeployPlan("update", f"{name} serves {current}", current, "updated")
    if status in IN_FLIGHT:
        if status == "Creating" and current == endpoint_config_name:
            return DeployPlan("resume", f"{name} is being created with {current}", None, "created")
        if pending == endpoint_config_name:
            return DeployPlan("resume", f"{name} is {status} to {pending}", current, "updated")
        return DeployPlan("wait", f"{name} is {status} (towards {pending or current}); waiting for it before "
                          f"deploying {endpoint_config_name}", current)
    reason = endpoint.get("FailureReason") or "no FailureReason given"
    if status in NEEDS_A_HUMAN:
        return DeployPlan("refuse", f"endpoint {name} is {status}: {reason}. SageMaker allows only DeleteEndpoint "
                          "on it: delete the endpoint (or fix it by hand), then rerun", current)
    return DeployPlan("refuse", f"endpoint {name} is {status}; it cannot be deployed to now", current,
                      retryable=True)


# --------------------------------------------------------------------------------------------
# AWS helpers: thin, idempotent
# --------------------------------------------------------------------------------------------


def production_map(sagemaker_client: Any, endpoint_name: str) -> float | None:
    """The ``validation-map`` tag of the model serving ``endpoint_name``; None if there is none.

    DescribeEndpoint -> EndpointConfigName -> DescribeEndpointConfig -> the variant taking most
    traffic -> ModelName -> DescribeModel (for its ARN) -> ListTags. None when the endpoint does
    not exist (first deploy), or the serving model is gone or has no (parsable) tag.
    """
    endpoint = _describe_or_none(sagemaker_client.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is None:
        return None
    config = _describe_or_none(sagemaker_client.describe_endpoint_config,
                               EndpointConfigName=endpoint["EndpointConfigName"])
    if config is None:
        log.warning("Endpoint %s serves config %s, which no longer exists; its mAP is unknown",
                    endpoint_name, endpoint["EndpointConfigName"])
        return None
    model_name = serving_variant(config["ProductionVariants"]).get("ModelName")
    model = _describe_or_none(sagemaker_client.describe_model, ModelName=model_name) if model_name else None
    if model is None:
        log.warning("Endpoint %s serves model %s, which no longer exists; its mAP is unknown", endpoint_name,
                    model_name)
        return None
    raw = _tags(sagemaker_client, model["ModelArn"]).get(MAP_TAG)
    value = _finite(raw)
    if raw is not None and value is None:
        log.warning("Model %s has an unreadable %s tag %r; treating its mAP as unknown", model_name, MAP_TAG, raw)
    return value


def ensure_model(client: Any, request: Mapping[str, Any], *,
                 validation_map: float | None = None) -> tuple[str, bool]:
    """``CreateModel`` unless a model of that name exists; returns ``(ModelArn, created)``.

    An existing model is reused when its container images and ``ModelDataUrl`` match the request;
    otherwise :class:`ResourceConflictError` names the model and the differing field (models are
    immutable: change the name). ``validation_map`` is recorded as the ``validation-map`` tag, on
    the new model or added to the reused one.
    """
    name = validate_sagemaker_name(request.get("ModelName"), "ModelName")
    tag_value = None if validation_map is None else format_map_tag(validation_map)
    existing = _describe_or_none(client.describe_model, ModelName=name)
    if existing is None:
        create = dict(request)
        if tag_value is not None:
            create["Tags"] = [t for t in request.get("Tags") or [] if t.get("Key") != MAP_TAG]
            create["Tags"].append({"Key": MAP_TAG, "Value": tag_value})
        try:
            arn = client.create_model(**create)["ModelArn"]
            log.info("Created model %s (%s=%s)", name, MAP_TAG, tag_value)
            return arn, True
        except ClientError as exc:
            if not _already_exists(exc):
                raise
            log.info("Model %s was created meanwhile; checking it", name)  # another try of this task
            existing = client.describe_model(ModelName=name)
    differences = _model_differences(existing, request)
    if differences:
        raise ResourceConflictError(
            f"Model {name} already exists but differs from the request: {'; '.join(differences)}. "
            "Models cannot be changed: use a new ModelName."
        )
    arn = existing["ModelArn"]
    if tag_value is not None and _tags(client, arn).get(MAP_TAG) != tag_value:
        client.add_tags(ResourceArn=arn, Tags=[{"Key": MAP_TAG, "Value": tag_value}])
        log.info("Tagged model %s with %s=%s", name, MAP_TAG, tag_value)
    log.info("Reusing model %s (same image and model data)", name)
    return arn, False


def ensure_endpoint_config(client: Any, request: Mapping[str, Any]) -> tuple[str, bool]:
    """``CreateEndpointConfig`` unless one of that name exists; returns ``(EndpointConfigArn, created)``.

    An existing config is reused when its ProductionVariants (matched by VariantName, including
    ServerlessConfig) and AsyncInferenceConfig hold every value the request sets; otherwise
    :class:`ResourceConflictError` names the config and the differing field.
    """
    name = validate_sagemaker_name(request.get("EndpointConfigName"), "EndpointConfigName")
    existing = _describe_or_none(client.describe_endpoint_config, EndpointConfigName=name)
    if existing is None:
        try:
            arn = client.create_endpoint_config(**request)["EndpointConfigArn"]
            log.info("Created endpoint config %s", name)
            return arn, True
        except ClientError as exc:
            if not _already_exists(exc):
                raise
            log.info("Endpoint config %s was created meanwhile; checking it", name)
            existing = client.describe_endpoint_config(EndpointConfigName=name)
    differences = _endpoint_config_differences(existing, request)
    if differences:
        raise ResourceConflictError(
            f"Endpoint config {name} already exists but differs from the request: {'; '.join(differences)}. "
            "Endpoint configs cannot be changed: use a new EndpointConfigName."
        )
    log.info("Reusing endpoint config %s (same variants)", name)
    return existing["EndpointConfigArn"], False


def ensure_rollback_alarms(
    cloudwatch_client: Any,
    endpoint_name: str,
    variant_name: str = VARIANT_NAME,
    *,
    error_threshold: float = 1,
    latency_threshold_ms: float = 1000.0,
    period_s: int = 60,
    evaluation_periods: int = 2,
) -> list[str]:
    """Put the endpoint's rollback alarms (see :func:`rollback_alarm_requests`); returns their names.

    PutMetricAlarm creates or overwrites by name, and the requests are deterministic, so calling
    this again changes nothing.
    """
    requests = rollback_alarm_requests(
        endpoint_name, variant_name, error_threshold=error_threshold, latency_threshold_ms=latency_threshold_ms,
        period_s=period_s, evaluation_periods=evaluation_periods,
    )
    for request in requests:
        cloudwatch_client.put_metric_alarm(**request)
    names = [request["AlarmName"] for request in requests]
    log.info("Rollback alarms in place for %s/%s: %s", endpoint_name, variant_name, ", ".join(names))
    return names


def _describe_or_none(call: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return call(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") in ("ValidationException", "ResourceNotFound") and \
                "could not find" in str(error.get("Message", "")).lower():
            return None
        raise


def _already_exists(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return "already existing" in str(error.get("Message", "")).lower() or error.get("Code") == "ResourceInUse"


def _tags(client: Any, arn: str) -> dict[str, str]:
    """Every tag of ``arn`` (ListTags, all pages); a repeated key keeps its last value."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
    for _ in range(100):  # 50 tags per resource at most: one page in practice, bounded anyway
        page = client.list_tags(**kwargs)
        tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags") or []})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return tags


def _containers(model: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    if model.get("PrimaryContainer"):
        return "PrimaryContainer", [model["PrimaryContainer"]]
    return "Containers", list(model.get("Containers") or [])


def _model_differences(existing: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    want_field, wanted = _containers(request)
    _, have = _containers(existing)
    if len(wanted) != len(have):
        return [f"{want_field}: the existing model has {len(have)} container(s), the request {len(wanted)}"]
    differences = []
    for index, (want, got) in enumerate(zip(wanted, have, strict=True)):
        prefix = want_field if want_field == "PrimaryContainer" else f"Containers[{index}]"
        for key in ("Image", "ModelDataUrl"):
            if want.get(key) != got.get(key):
                differences.append(f"{prefix}.{key}: existing {got.get(key)!r}, requested {want.get(key)!r}")
    return differences


def _endpoint_config_differences(existing: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
    have = {v.get("VariantName"): v for v in existing.get("ProductionVariants") or []}
    wanted = {v.get("VariantName"): v for v in request.get("ProductionVariants") or []}
    if set(have) != set(wanted):
        return [f"ProductionVariants: existing variants {sorted(have)}, requested {sorted(wanted)}"]
    differences: list[str] = []
    for variant_name, variant in wanted.items():
        differences += _differences(variant, have[variant_name], f"ProductionVariants[{variant_name}]")
    want_async, have_async = request.get("AsyncInferenceConfig") or None, existing.get("AsyncInferenceConfig") or None
    if (want_async is None) != (have_async is None):
        differences.append(f"AsyncInferenceConfig: existing {have_async!r}, requested {want_async!r}")
    elif want_async is not None:
        differences += _differences(want_async, have_async, "AsyncInferenceConfig")
    return differences


def _differences(wanted: Any, have: Any, path: str) -> list[str]:
    """Where ``have`` lacks or contradicts a value ``wanted`` sets (AWS may add defaults we ignore)."""
    if isinstance(wanted, Mapping):
        if not isinstance(have, Mapping):
            return [f"{path}: existing {have!r}, requested {dict(wanted)!r}"]
        return [d for key, value in wanted.items() for d in _differences(value, have.get(key), f"{path}.{key}")]
    if isinstance(wanted, list):
        if not isinstance(have, list) or len(have) != len(wanted):
            return [f"{path}: existing {have!r}, requested {wanted!r}"]
        pairs = enumerate(zip(wanted, have, strict=True))
        return [d for i, (w, h) in pairs for d in _differences(w, h, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(wanted, numbers) and isinstance(have, numbers) and not isinstance(wanted, bool):
        same = math.isclose(float(wanted), float(have), rel_tol=1e-9, abs_tol=1e-12)
    else:
        same = wanted == have
    return [] if same else [f"{path}: existing {have!r}, requested {wanted!r}"]


# --------------------------------------------------------------------------------------------
# Validation helpers (each error names the argument)
# --------------------------------------------------------------------------------------------


def _policy(value: Any) -> str:
    policy = value.strip().lower() if isinstance(value, str) else value
    if policy not in DEPLOYMENT_POLICIES:
        raise ConfigError("deployment_policy", f"must be one of {', '.join(DEPLOYMENT_POLICIES)}; got {value!r}")
    return policy


def _alarm_names(names: Any) -> list[str]:
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise ConfigError("alarm_names", f"must be a list of CloudWatch alarm names, got {names!r}")
    result: list[str] = []
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_ALARM_NAME:
            raise ConfigError(f"alarm_names[{index}]", f"{name!r} is not an alarm name (1-{MAX_ALARM_NAME} characters)")
        if name not in result:
            result.append(name)
    if len(result) > MAX_ROLLBACK_ALARMS:
        raise ConfigError("alarm_names", f"has {len(result)} alarms; AutoRollbackConfiguration takes at most "
                                         f"{MAX_ROLLBACK_ALARMS}")
    return result


def _int_in_range(value: Any, field_name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field_name, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(field_name, f"{value} is out of range: {low} to {high}")
    return value


def _positive(value: Any, field_name: str) -> float:
    number = _finite(value)
    if number is None or number <= 0:
        raise ConfigError(field_name, f"must be a number above 0, got {value!r}")
    return number


def _as_int(value: Any, field_name: str) -> Any:
    """Templated numbers arrive as strings ("10"); anything else is left for the range check."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(field_name, f"must be a whole number, got {value!r}") from None
    return value


def _as_tags(tags: Any) -> list[dict[str, str]]:
    if not tags:
        return []
    if isinstance(tags, Mapping):
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    if isinstance(tags, Sequence) and not isinstance(tags, str | bytes) and \
            all(isinstance(t, Mapping) and "Key" in t and "Value" in t for t in tags):
        return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags]
    raise ConfigError("tags", f"must be a dict or a list of {{'Key', 'Value'}}, got {tags!r}")


# --------------------------------------------------------------------------------------------
# Airflow: the endpoint hook and trigger (fail fast on every failed state)
# --------------------------------------------------------------------------------------------


class EndpointHook(SageMakerHook):
    """``SageMakerHook`` that also knows the ``endpoint_settled`` waiter (see ``endpoint_waits``).

    Sync (``get_waiter(ENDPOINT_WAITER)``) and async (``deferrable=True, client=...``) waiters are
    built from the same model; every other waiter name goes to the provider's lookup.
    """

    def get_waiter(self, waiter_name: str, parameters: dict[str, str] | None = None,
                   config_overrides: dict[str, Any] | None = None, deferrable: bool = False,
                   client: Any = None) -> Any:
        if waiter_name != waits.ENDPOINT_SETTLED:
            return super().get_waiter(waiter_name, parameters, config_overrides, deferrable, client)
        if deferrable and client is None:
            raise ValueError("client must be provided for a deferrable waiter.")
        if not deferrable:
            return waits.settled_waiter(client or self.conn)
        return BaseBotoWaiter(client=client or self.conn, model_config=waits.ENDPOINT_SETTLED_MODEL,
                              deferrable=deferrable).waiter(waiter_name)


class EndpointTrigger(AwsBaseWaiterTrigger):
    """Wait in the triggerer until ``endpoint_name`` is InService, or fail at once.

    Events: ``success``; ``failed`` (Failed, UpdateRollbackFailed, OutOfService, Deleting, or the
    endpoint vanished), with ``endpoint_status`` and the ``FailureReason`` as ``message``;
    ``timeout`` when ``waiter_max_attempts`` ran out (the operation goes on); ``error`` otherwise.
    """

    aws_hook_class = EndpointHook

    def __init__(self, *, endpoint_name: str, waiter_delay: float = 30, waiter_max_attempts: int = 120,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 verify: bool | str | None = None, botocore_config: dict | None = None):
        super().__init__(
            serialized_fields={"endpoint_name": endpoint_name},
            waiter_name=waits.ENDPOINT_SETTLED,
            waiter_args={"EndpointName": endpoint_name},
            failure_message=f"Endpoint {endpoint_name} failed",
            status_message=f"Endpoint {endpoint_name} not in service yet",
            status_queries=ENDPOINT_STATUS_QUERIES,
            return_key="job_name",
            return_value=endpoint_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.endpoint_name = endpoint_name

    def _event_from_exception(self, error: AirflowException) -> TriggerEvent:
        base = {"job_name": self.endpoint_name}
        if isinstance(error, WaiterMaxAttemptsError):
            return TriggerEvent({**base, "status": "timeout", "message": str(error)})
        if isinstance(error, WaiterTerminalFailure):
            response = getattr(error, "last_response", None) or {}
            status = response.get("EndpointStatus")
            message = waits.failure_message(response) if status else str(error)
            return TriggerEvent({**base, "status": "failed", "endpoint_status": status, "message": message})
        return TriggerEvent({**base, "status": "error", "message": str(error)})


# --------------------------------------------------------------------------------------------
# Airflow: the deploy operator
# --------------------------------------------------------------------------------------------


class DeployEndpointOperator(AwsBaseOperator[SageMakerHook]):
    """Make ``endpoint_name`` serve ``endpoint_config_name`` without downtime; idempotent.

    * No endpoint: CreateEndpoint (with ``tags``), then wait for InService.
    * InService on ``endpoint_config_name`` already: nothing to do (a rerun), logged.
    * Creating / Updating towards ``endpoint_config_name`` (an earlier try's operation): wait for
      it. Any other operation in flight: wait for it, then deploy.
    * InService on another config: UpdateEndpoint, a blue/green update with
      ``deployment_policy`` (see :func:`deployment_config`) and ``RetainDeploymentConfig=False``,
      after putting the rollback alarms (provisioned endpoints only; serverless updates have no
      guardrails).
    * InService on a config whose variant names differ (a Challenger joins or leaves): AWS refuses
      a DeploymentConfig then ("When doing a blue/green or rolling deployment, your new endpoint
      configuration must have the same variant name as the old", Deployment guardrails,
      Exclusions), so the update is sent without one: SageMaker still brings the new fleet up
      before it shifts traffic and deletes the old one ("there is no availability loss",
      UpdateEndpoint), but with no baking period and no alarm rollback. The log says so.
    * Failed / UpdateRollbackFailed / OutOfService: refused with the FailureReason.

    Waiting ends at once, with the status and the ``FailureReason``, when the endpoint reaches
    Failed, UpdateRollbackFailed, OutOfService or Deleting. Its budget is
    :func:`~sagemaker_vision.endpoint_waits.endpoint_wait_budget` for the operation and the
    DeploymentConfig actually sent, unless ``max_ingestion_time`` is given.

    Succeeds only when the endpoint is InService on ``endpoint_config_name``. A failed or
    rolled-back update fails the task with the FailureReason and names the config that still
    serves: the old model keeps serving. Returns ``{"endpoint_name", "endpoint_config_name",
    "previous_config", "action"}`` with action ``created``, ``updated`` or ``unchanged``.

    :param endpoint_name: The endpoint to create or update (templated).
    :param endpoint_config_name: The endpoint config it should serve; must exist (templated).
    :param tags: Tags for a new endpoint, a dict or a list of ``{"Key", "Value"}`` (templated).
        An update leaves the endpoint's tags alone.
    :param deployment_policy: ``all_at_once``, ``canary`` or ``linear`` (templated).
    :param canary_percent: canary: share of the new fleet that takes traffic first, 1-50.
    :param linear_step_percent: linear: share of the new fleet per step, 10-50.
    :param wait_interval_s: Baking period after each traffic shift, 0-3600 s.
    :param termination_wait_s: How long the old fleet is kept after the shift, 0-3600 s.
    :param maximum_execution_timeout_s: Deployment timeout, 600-28800 s.
    :param rollback_alarms: Put ``<endpoint>-5xx`` and ``<endpoint>-latency`` alarms and roll back on them.
    :param alarm_names: More existing CloudWatch alarms that roll the deployment back (templated).
    :param alarm_error_threshold: 5xx responses per period that trip ``<endpoint>-5xx``.
    :param alarm_latency_threshold_ms: Average ModelLatency that trips ``<endpoint>-latency``.
    :param alarm_period_s: Alarm period, whole minutes.
    :param alarm_evaluation_periods: Breaching periods in a row that trip an alarm.
    :param check_interval: Seconds between two status checks while waiting (a number above 0).
    :param max_ingestion_time: Give up waiting after this many seconds (the endpoint operation
        goes on; clear the task to resume waiting). Default: ``endpoint_wait_budget`` of the
        operation, from AWS's limits and the DeploymentConfig sent.
    :param deferrable: Wait in the triggerer (:class:`EndpointTrigger`).
    :param record_previous: Before an UpdateEndpoint, tag the endpoint ``sagemaker-vision:deployed-over`` =
        ``<endpoint_config_name>/<config it replaces>`` (:func:`deployed_over`), what a rollback returns to.
    """

    aws_hook_class = EndpointHook
    template_fields: Sequence[str] = aws_template_fields(
        "endpoint_name",
        "endpoint_config_name",
        "tags",
        "deployment_policy",
        "canary_percent",
        "linear_step_percent",
        "wait_interval_s",
        "termination_wait_s",
        "maximum_execution_timeout_s",
        "alarm_names",
        "alarm_latency_threshold_ms",
    )
    template_fields_renderers = {"tags": "json", "alarm_names": "json"}
    ui_color = "#c5d9ef"

    def __init__(
        self,
        *,
        endpoint_name: str,
        endpoint_config_name: str,
        tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        deployment_policy: str = "all_at_once",
        canary_percent: int = 10,
        linear_step_percent: int = 20,
        wait_interval_s: int = 300,
        termination_wait_s: int = 120,
        maximum_execution_timeout_s: int = 3600,
        rollback_alarms: bool = True,
        alarm_names: Sequence[str] = (),
        alarm_error_threshold: float = 1,
        alarm_latency_threshold_ms: float = 1000.0,
        alarm_period_s: int = 60,
        alarm_evaluation_periods: int = 2,
        check_interval: int = 30,
        max_ingestion_time: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        record_previous: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.record_previous = record_previous
        self.endpoint_name = endpoint_name
        self.endpoint_config_name = endpoint_config_name
        self.tags = tags
        self.deployment_policy = deployment_policy
        self.canary_percent = canary_percent
        self.linear_step_percent = linear_step_percent
        self.wait_interval_s = wait_interval_s
        self.termination_wait_s = termination_wait_s
        self.maximum_execution_timeout_s = maximum_execution_timeout_s
        self.rollback_alarms = rollback_alarms
        self.alarm_names = alarm_names
        self.alarm_error_threshold = alarm_error_threshold
        self.alarm_latency_threshold_ms = alarm_latency_threshold_ms
        self.alarm_period_s = alarm_period_s
        self.alarm_evaluation_periods = alarm_evaluation_periods
        self.check_interval = check_interval
        self.max_ingestion_time = max_ingestion_time
        self.deferrable = deferrable

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        params = super()._hook_parameters
        if params["config"] is None:
            params["config"] = aws.botocore_config()
        return params

    # -- validation, before any AWS call ---------------------------------------------------
    def _validate(self) -> None:
        """Everything that does not depend on the endpoint type; raises ConfigError naming the field."""
        validate_sagemaker_name(self.endpoint_name, "endpoint_name")
        validate_sagemaker_name(self.endpoint_config_name, "endpoint_config_name")
        _as_tags(self.tags)
        _policy(self.deployment_policy)
        _alarm_names(self.alarm_names)
        for field_name in ("canary_percent", "linear_step_percent", "wait_interval_s", "termination_wait_s",
                           "maximum_execution_timeout_s"):
            setattr(self, field_name, _as_int(getattr(self, field_name), field_name))
        if self.rollback_alarms:
            rollback_alarm_requests(
                self.endpoint_name, error_threshold=self.alarm_error_threshold,
                latency_threshold_ms=self.alarm_latency_threshold_ms, period_s=self.alarm_period_s,
                evaluation_periods=self.alarm_evaluation_periods,
            )
        if isinstance(self.check_interval, bool) or not isinstance(self.check_interval, int | float) or \
                not math.isfinite(self.check_interval) or self.check_interval <= 0:
            raise ConfigError("check_interval", f"must be a number of seconds above 0, got {self.check_interval!r}")
        if self.max_ingestion_time is not None:
            _int_in_range(self.max_ingestion_time, "max_ingestion_time", 1, 10 * 86_400)

    def _deployment_for(self, endpoint_type: str) -> dict[str, Any]:
        """The DeploymentConfig an update of this endpoint type sends (``{}``: none); raises ConfigError."""
        own = self.rollback_alarms and endpoint_type == "provisioned"
        alarms = (rollback_alarm_names(self.endpoint_name) if own else []) + _alarm_names(self.alarm_names)
        config = deployment_config(
            self.deployment_policy, endpoint_type=endpoint_type, canary_percent=self.canary_percent,
            linear_step_percent=self.linear_step_percent, wait_interval_s=self.wait_interval_s,
            termination_wait_s=self.termination_wait_s,
            maximum_execution_timeout_s=self.maximum_execution_timeout_s, alarm_names=alarms,
        )
        window = self.alarm_period_s * self.alarm_evaluation_periods
        if own and config and self.wait_interval_s < window:
            raise ConfigError(
                "wait_interval_s",
                f"{self.wait_interval_s} s is shorter than the rollback alarms' window ({self.alarm_evaluation_periods}"
                f" x {self.alarm_period_s} s = {window} s): they could not trip before the baking period ends",
            )
        return config

    def _budget(self, operation: str, variants: Sequence[Mapping[str, Any]],
                deployment: Mapping[str, Any] | None) -> int:
        """Seconds to wait for ``operation``: ``max_ingestion_time``, else AWS's limits for it."""
        if self.max_ingestion_time is not None:
            return int(self.max_ingestion_time)
        window = self.alarm_period_s * self.alarm_evaluation_periods if self.rollback_alarms else 0
        return waits.endpoint_wait_budget(operation, variants, deployment or None, alarm_window_s=window)

    # -- execution --------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        return self._deploy(context, replans=0)

    def _deploy(self, context: Context, replans: int) -> dict[str, Any]:
        # Also after a deferral: the operator is rebuilt and its templated fields re-rendered.
        self._validate()
        config = _describe_or_none(self.hook.conn.describe_endpoint_config,
                                   EndpointConfigName=self.endpoint_config_name)
        if config is None:
            raise AirflowFailException(
                f"endpoint_config_name: endpoint config {self.endpoint_config_name} does not exist in "
                f"{self.hook.conn_region_name}; create it before deploying"
            )
        variants = config.get("ProductionVariants") or []
        # Checked on every run, a first deploy included, so a policy the endpoint type cannot
        # have fails now rather than on the first update.
        deployment = self._deployment_for(endpoint_type_of(variants))
        endpoint = _describe_or_none(self.hook.conn.describe_endpoint, EndpointName=self.endpoint_name)
        plan = plan_deploy(endpoint, self.endpoint_config_name)
        self.log.info("Deploy %s -> %s: %s (%s)", self.endpoint_config_name, self.endpoint_name, plan.action,
                      plan.reason)
        if plan.action == "refuse":
            raise (AirflowException if plan.retryable else AirflowFailException)(plan.reason)
        if plan.action == "unchanged":
            self._settle_released(endpoint or {})  # an earlier try released autoscaling, then timed out
            return self._result(plan.previous_config, "unchanged")
        if plan.action == "wait" and replans >= 2:
            raise AirflowException(f"{plan.reason}; still busy after {replans} waits, try again later")
        if plan.action == "create":
            self.hook.conn.create_endpoint(EndpointName=self.endpoint_name,
                                           EndpointConfigName=self.endpoint_config_name, Tags=_as_tags(self.tags))
            self.log.info("Creating endpoint %s with %s", self.endpoint_name, self.endpoint_config_name)
            budget = self._budget("create", variants, None)
        elif plan.action == "update":
            # Every rule is checked, and the request decided, before anything is released.
            request = self._update_request(variants, endpoint or {}, deployment)
            record = self._release_autoscaling(endpoint or {}, variants)
            try:
                if self.record_previous and plan.previous_config and (endpoint or {}).get("EndpointArn"):
                    record_deployed_over(self.hook.conn, endpoint["EndpointArn"], self.endpoint_config_name,
                                         plan.previous_config)
                sent = self._send_update(request, variants)
            except Exception:
                if record:  # refused or not sent: the old variants still serve, so does their autoscaling
                    from sagemaker_vision import scaling

                    scaling.restore_after_failed_update(self._autoscaling_client(), self.hook.conn,
                                                        self.endpoint_name, (endpoint or {}).get("EndpointArn"), record)
                raise
            budget = self._budget("update", variants, sent)
        elif plan.result_action == "created":  # an earlier try's CreateEndpoint
            budget = self._budget("create", variants, None)
        else:  # an update in flight, ours or another's: it may carry any DeploymentConfig
            running = (endpoint or {}).get("LastDeploymentConfig") or deployment
            budget = max(self._budget("update", variants, running), self._budget("update", variants, deployment))
        return self._wait(context, action=plan.result_action or "wait", previous_config=plan.previous_config,
                          replans=replans, budget=budget)

    def _autoscaling_client(self) -> Any:
        return aws.client("application-autoscaling", self.aws_conn_id, self.region_name)

    def _release_autoscaling(self, endpoint: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]
                             ) -> dict[str, Any]:
        """Release the autoscaling of serving variants this update removes or moves to another instance type.

        AWS fails such an UpdateEndpoint ("Update endpoints that use auto scaling"). What is released
        (the scalable target and every policy, in full) is first recorded in the endpoint's tags
        (``scaling.record_released``), so that it outlives this try: a failure or rollback puts it
        back on the old variants, success puts it back on the variants of the same name that the new
        config keeps (:meth:`_settle_released`). Returns the record (``{}``: nothing released).
        """
        from sagemaker_vision import scaling

        if not endpoint.get("EndpointConfigName") or not endpoint.get("EndpointArn"):
            return {}
        names = [str(v.get("VariantName")) for v in endpoint.get("ProductionVariants") or []
                 if not scaling.is_serverless_variant(v)]
        ids = {scaling.resource_id(self.endpoint_name, name): name for name in names}
        if not ids:
            return {}
        aas = self._autoscaling_client()
        targets = aas.describe_scalable_targets(ServiceNamespace=scaling.SERVICE_NAMESPACE, ResourceIds=list(ids),
                                                ScalableDimension=scaling.SCALABLE_DIMENSION).get("ScalableTargets")
        scaled = {ids[t["ResourceId"]] for t in targets or [] if t.get("ResourceId") in ids}
        if not scaled:
            return {}
        current = self.hook.conn.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        conflicts = [n for n in scaling.autoscaling_conflicts(current.get("ProductionVariants") or [], variants)
                     if n in scaled]
        if not conflicts:
            return {}
        self.log.warning("Variants %s of %s are autoscaled and this update removes them or changes their instance "
                         "type: AWS fails such an update, so their autoscaling is released first (%s)",
                         conflicts, self.endpoint_name, scaling.AUTOSCALING_UPDATE_URL)
        arn = endpoint["EndpointArn"]
        earlier = scaling.recorded_released(self.hook.conn, arn)
        record: dict[str, Any] = {"from_config": endpoint["EndpointConfigName"], "to_config": self.endpoint_config_name,
                                  "variants": dict(earlier.get("variants") or {})}

        def keep(released: dict[str, Any]) -> None:
            record["variants"] = {**released, **record["variants"]}  # an earlier try's record wins
            scaling.record_released(self.hook.conn, arn, record)

        scaling.release_autoscaling(aas, self.endpoint_name, conflicts, record=keep)
        return record if record["variants"] else {}

    def _settle_released(self, endpoint: Mapping[str, Any], legacy: Mapping[str, Any] | None = None) -> None:
        """After the wait: put back what this deploy (any try of it) released, as the outcome allows.

        InService on the requested config: onto the variants of the same name it kept (a removed
        variant's settings are not restored: a warning names them). Rolled back, failed, or on another
        config: :func:`scaling.restore_after_failed_update` (restores on the old variants if they
        serve again, otherwise warns and keeps the record for a rerun).
        """
        from sagemaker_vision import scaling

        arn = endpoint.get("EndpointArn")
        record = scaling.recorded_released(self.hook.conn, arn) if arn else {}
        if not record and legacy:  # a deferral made before the record moved to the endpoint's tags
            record = {"from_config": None, "to_config": self.endpoint_config_name, "variants": dict(legacy)}
        if not record.get("variants") or record.get("to_config") != self.endpoint_config_name:
            return
        aas = self._autoscaling_client()
        serving = endpoint.get("EndpointConfigName")
        if endpoint.get("EndpointStatus") == "InService" and serving == self.endpoint_config_name:
            kept = {v.get("VariantName") for v in endpoint.get("ProductionVariants") or []}
            variants = record["variants"]
            gone = sorted(set(variants) - kept)
            if gone:
                self.log.warning("The autoscaling released from %s is not restored: %s no longer has those variants "
                                 "(the pipeline's autoscaling task scales the new ones). It was: %s", gone, serving,
                                 {v: variants[v] for v in gone})
            restored = scaling.restore_released(aas, self.hook.conn, self.endpoint_name,
                                                {v: variants[v] for v in variants if v in kept})
            if all(restored.values()) and arn:
                scaling.clear_released(self.hook.conn, arn)
            return
        if record.get("from_config") is None:
            record = {**record, "from_config": serving}  # legacy: the old config is whatever serves again
        scaling.restore_after_failed_update(aas, self.hook.conn, self.endpoint_name, arn, record)

    def _update_request(self, variants: Sequence[Mapping[str, Any]], endpoint: Mapping[str, Any],
                        deployment: dict[str, Any]) -> dict[str, Any]:
        """The UpdateEndpoint kwargs, decided from the guardrail rules before anything is written.

        AWS refuses a DeploymentConfig when the variant names change ("When doing a blue/green or
        rolling deployment, your new endpoint configuration must have the same variant name as the old
        endpoint configuration", Deployment guardrails, Exclusions) and for serverless endpoints
        ("Deployment guardrails only apply to Asynchronous inference and Real-time inference endpoint
        types"), the serving fleet included: such updates are sent without one.
        """
        from sagemaker_vision.scaling import is_serverless_variant

        current = endpoint.get("ProductionVariants") or []
        serving = sorted(v.get("VariantName") for v in current)
        new = sorted(v.get("VariantName") for v in variants)
        if deployment and serving and serving != new:
            self.log.warning(
                "%s serves variants %s and %s has %s: SageMaker refuses a %s deployment (blue/green with a "
                "DeploymentConfig) when the variant names change, so this update is sent without one. SageMaker "
                "still provisions the new fleet before shifting all traffic to it (no downtime), but there is no "
                "baking period and no alarm rollback for this step", self.endpoint_name, serving,
                self.endpoint_config_name, new, self.deployment_policy)
            deployment = {}
        elif deployment and any(is_serverless_variant(v) for v in current):
            self.log.warning(
                "%s runs serverless now: SageMaker's deployment guardrails do not apply to serverless endpoints, so "
                "the update to %s is sent without a DeploymentConfig (blue/green all at once, no baking period, no "
                "alarm rollback)", self.endpoint_name, self.endpoint_config_name)
            deployment = {}
        request: dict[str, Any] = {"EndpointName": self.endpoint_name, "EndpointConfigName": self.endpoint_config_name,
                                   "RetainDeploymentConfig": False}
        if deployment:
            request["DeploymentConfig"] = deployment
        return request

    def _send_update(self, request: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rollback alarms (when the DeploymentConfig uses them), then UpdateEndpoint; returns the DeploymentConfig
        sent (``{}``: none)."""
        deployment = request.get("DeploymentConfig") or {}
        if deployment:
            if self.rollback_alarms:
                ensure_rollback_alarms(
                    aws.client("cloudwatch", self.aws_conn_id, self.region_name), self.endpoint_name,
                    serving_variant(variants)["VariantName"], error_threshold=self.alarm_error_threshold,
                    latency_threshold_ms=self.alarm_latency_threshold_ms, period_s=self.alarm_period_s,
                    evaluation_periods=self.alarm_evaluation_periods,
                )
            routing = deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
            alarms = [a["AlarmName"] for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
            self.log.info("Blue/green update of %s: %s, baking %s s, rollback alarms %s", self.endpoint_name,
                          routing["Type"], routing["WaitIntervalInSeconds"], alarms)
        elif endpoint_type_of(variants) == "serverless":
            self.log.info("Blue/green update of serverless endpoint %s, all at once: SageMaker has no baking "
                          "period or alarm rollback for serverless endpoints", self.endpoint_name)
        self.hook.conn.update_endpoint(**request)
        self.log.info("Updating endpoint %s to %s; the old config serves until the new one is ready",
                      self.endpoint_name, self.endpoint_config_name)
        return deployment

    def _wait(self, context: Context, *, action: str, previous_config: str | None, replans: int,
              budget: int) -> dict[str, Any]:
        # What was released is in the endpoint's tags, not here: it survives a timeout and a retry.
        kwargs: dict[str, Any] = {"action": action, "previous_config": previous_config, "replans": replans,
                                  "budget": budget}
        attempts = waits.max_attempts(budget, self.check_interval)
        self.log.info("Waiting up to %d s for %s (%d checks %s s apart)", budget, self.endpoint_name, attempts,
                      self.check_interval)
        if self.deferrable:
            self.defer(
                trigger=EndpointTrigger(
                    endpoint_name=self.endpoint_name,
                    waiter_delay=self.check_interval,
                    waiter_max_attempts=attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    # The package retry policy in the triggerer too, as for the worker's hook.
                    botocore_config=self.botocore_config or aws.BOTOCORE_CONFIG,
                ),
                method_name="execute_complete",
                kwargs=kwargs,
                # A backstop only: the trigger gives up first and reports a timeout event.
                timeout=timedelta(seconds=budget + 2 * self.check_interval),
            )
        try:
            wait(
                waiter=self.hook.get_waiter(ENDPOINT_WAITER),
                waiter_delay=self.check_interval,
                waiter_max_attempts=attempts,
                args={"EndpointName": self.endpoint_name},
                failure_message=f"Endpoint {self.endpoint_name} failed",
                status_message=f"Endpoint {self.endpoint_name} not in service yet",
                status_args=ENDPOINT_STATUS_QUERIES,
            )
        except WaiterTerminalFailure:
            pass  # a failed state: _finish raises with the status and the FailureReason
        except WaiterMaxAttemptsError:
            raise AirflowException(self._timeout_message(budget)) from None
        return self._finish(context, **kwargs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, action: str = "updated",
                         previous_config: str | None = None, replans: int = 0,
                         budget: int | None = None, released: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: success only when InService on the requested config."""
        event = validate_execute_complete_event(event)
        if event.get("job_name", self.endpoint_name) != self.endpoint_name:
            raise AirflowException(f"Trigger event is for {event.get('job_name')}, not {self.endpoint_name}")
        if event["status"] == "timeout":
            raise AirflowException(self._timeout_message(budget))
        if event["status"] not in ("success", "failed"):
            raise AirflowException(f"Waiting for endpoint {self.endpoint_name} failed ({event['status']}): "
                                   f"{event.get('message')}")
        return self._finish(context, action=action, previous_config=previous_config, replans=replans, budget=budget,
                            released=released)

    def _finish(self, context: Context, *, action: str, previous_config: str | None,
                replans: int, budget: int | None = None, released: dict[str, Any] | None = None) -> dict[str, Any]:
        if action == "wait":  # another operation was in flight: now deploy ours
            return self._deploy(context, replans=replans + 1)
        endpoint = _describe_or_none(self.hook.conn.describe_endpoint, EndpointName=self.endpoint_name)
        if endpoint is None:
            raise AirflowException(f"Endpoint {self.endpoint_name} disappeared while deploying "
                                   f"{self.endpoint_config_name}")
        status, serving = endpoint["EndpointStatus"], endpoint.get("EndpointConfigName")
        if status not in waits.IN_FLIGHT_STATES:
            self._settle_released(endpoint, released)
        if status == "InService" and serving == self.endpoint_config_name:
            self.log.info("Endpoint %s is InService on %s (%s; previously %s)", self.endpoint_name, serving, action,
                          previous_config)
            return self._result(previous_config, action)
        reason = endpoint.get("FailureReason") or "no FailureReason given"
        if status == "InService":
            raise AirflowFailException(
                f"Deploying {self.endpoint_config_name} to endpoint {self.endpoint_name} failed and was rolled "
                f"back: {reason}. The endpoint still serves {serving}: the old model keeps serving."
            )
        if status in waits.FAILED_STATES:
            raise AirflowFailException(
                f"Deploying {self.endpoint_config_name}: {waits.failure_message(endpoint)}"
                + (". SageMaker allows only DeleteEndpoint on it" if status in NEEDS_A_HUMAN else "")
            )
        raise AirflowException(f"Endpoint {self.endpoint_name} is {status} on {serving}, expected InService on "
                               f"{self.endpoint_config_name}")

    def _timeout_message(self, budget: int | None) -> str:
        return (f"Endpoint {self.endpoint_name} was not InService on {self.endpoint_config_name} after "
                f"{budget if budget is not None else 'the budgeted'} s; it is still in progress on AWS (the "
                "operation goes on): clear this task, and the retry resumes waiting on the same operation")

    def _result(self, previous_config: str | None, action: str) -> dict[str, Any]:
        return {
            "endpoint_name": self.endpoint_name,
            "endpoint_config_name": self.endpoint_config_name,
            "previous_config": previous_config,
            "action": action,
        }


class RollbackEndpointOperator(DeployEndpointOperator):
    """After a failed smoke or load test: put the endpoint back on the config that served before the deploy.

    Runs with ``trigger_rule="one_failed"`` downstream of the tests, inside the endpoint lease. It
    reads what ``deploy_task_id`` returned (``previous_config``, ``action``) and:

    * ``updated``: UpdateEndpoint back to ``previous_config`` (all at once, no rollback alarms:
      alarms tripped by the bad model must not roll the rollback back), waiting until InService
      within the deploy's wait budget (``endpoint_waits``), deferrable like the deploy;
    * ``created`` (a first deploy): nothing older exists. The endpoint is left serving the new
      model rather than deleted: an endpoint that answers is what a user expects to find, and
      ``endpoint_teardown`` deletes it on request. The message says so;
    * ``unchanged`` (it served this config before the deploy ran): nothing to roll back.

    It skips (``AirflowSkipException``) when this run deployed nothing: no deploy result, or the
    deploy did not succeed (``one_failed`` also fires on the ``upstream_failed`` of a failure
    before the deploy: estimate_costs, sync, train, the lease...; a failed deploy says what
    serves itself). The run still ends failed then: the failure is upstream of the leaf
    ``tests_passed`` (``train_and_deploy``). Otherwise it renews the lease right before its
    UpdateEndpoint, and always fails the task, so the run ends failed, and its message names the
    test that failed and the config and model that serve afterwards.
    """

    def __init__(self, *, deploy_task_id: str = "deploy", **kwargs: Any) -> None:
        kwargs.setdefault("endpoint_config_name", "")  # decided at run time from the deploy's result
        kwargs.setdefault("deployment_policy", "all_at_once")
        kwargs.setdefault("rollback_alarms", False)
        kwargs.setdefault("record_previous", False)  # the deployed-over tag keeps naming the config to return to
        super().__init__(**kwargs)
        self.deploy_task_id = deploy_task_id

    def _failed_upstream(self, context: Context) -> str:
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            ti = context["ti"]
            states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, task_ids=sorted(self.upstream_task_ids),
                                                         run_ids=[ti.run_id]).get(ti.run_id, {})
            failed = sorted(t for t, s in states.items() if str(s) == "failed")
            if failed:
                return ", ".join(failed) + " failed"
            if any(str(s) == "upstream_failed" for s in states.values()):
                return "a task before the tests (the deploy or autoscaling) failed"
        except Exception:  # noqa: BLE001 - only the wording of the message depends on it
            self.log.debug("Could not read the upstream states", exc_info=True)
        return f"a test after the deploy ({', '.join(sorted(self.upstream_task_ids))}) failed"

    def _fail(self, context: Context, message: str, kind: type[AirflowException] = AirflowFailException
              ) -> AirflowException:
        """The task's error, also kept in XCom (``outcome``) for the UI and for callers that inspect runs."""
        try:
            context["ti"].xcom_push(key="outcome", value=message)
        except Exception:  # noqa: BLE001 - the error itself must still be raised
            self.log.debug("Could not push the outcome to XCom", exc_info=True)
        return kind(message)

    def _deployed(self, context: Context) -> dict[str, Any] | None:
        result = context["ti"].xcom_pull(task_ids=self.deploy_task_id)
        return result if isinstance(result, Mapping) and result.get("endpoint_config_name") else None

    def _deploy_succeeded(self, context: Context) -> bool | None:
        """Whether this run's deploy task is in state success (None: unknown, e.g. outside a scheduler)."""
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            ti = context["ti"]
            states = RuntimeTaskInstance.get_task_states(dag_id=ti.dag_id, task_ids=[self.deploy_task_id],
                                                         run_ids=[ti.run_id]).get(ti.run_id, {})
        except Exception:  # noqa: BLE001 - then the deploy's XCom alone decides
            self.log.debug("Could not read the deploy's state", exc_info=True)
            return None
        state = states.get(self.deploy_task_id)
        return None if state is None else str(state) == "success"

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowSkipException

        from sagemaker_vision.endpoint_lease import hold

        self._validate_name_only()
        deployed = self._deployed(context)
        if deployed is None or self._deploy_succeeded(context) is False:
            message = (f"Nothing to roll back: this run deployed nothing to {self.endpoint_name} (a task before "
                       f"`{self.deploy_task_id}`, or the deploy itself, failed); the endpoint was not touched here. "
                       "The run fails on that task")
            self.log.info(message)
            raise AirflowSkipException(message)
        why = self._failed_upstream(context)
        client = self.hook.conn
        new = deployed["endpoint_config_name"]
        previous = self._previous(client, new, deployed)
        if not previous:
            raise self._fail(
                context,
                f"{why} after this run created endpoint {self.endpoint_name}: there is no older config to roll back "
                f"to, so the NEW model stays serving. {serving_summary(client, self.endpoint_name)}. It was left "
                "serving rather than deleted; run endpoint_teardown to delete it")
        if previous == new:
            raise self._fail(
                context,
                f"{why}; {self.endpoint_name} already served {new} before this run's deploy, so there is no older "
                f"config recorded to roll back to. {serving_summary(client, self.endpoint_name)}")
        if _describe_or_none(client.describe_endpoint_config, EndpointConfigName=previous) is None:
            raise self._fail(
                context,
                f"{why}; cannot roll back: the previous config {previous} no longer exists, so the NEW model stays "
                f"serving. {serving_summary(client, self.endpoint_name)}")
        self.endpoint_config_name = previous
        hold(context, "rollback")  # still this run's endpoint, renewed, right before the UpdateEndpoint
        self.log.warning("%s: rolling %s back from %s to %s", why, self.endpoint_name, new, previous)
        try:
            result = self._deploy(context, replans=0)
        except AirflowException as exc:
            raise self._failed_rollback(context, exc, why) from exc
        return self._rolled_back(context, result, new, why)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, action: str = "updated",
                         previous_config: str | None = None, replans: int = 0,
                         budget: int | None = None, released: dict[str, Any] | None = None) -> dict[str, Any]:
        deployed = self._deployed(context) or {}
        # A resumed operator is rebuilt: decide the target again, as execute did.
        self.endpoint_config_name = self._previous(self.hook.conn, deployed.get("endpoint_config_name"), deployed) or ""
        why = self._failed_upstream(context)
        try:
            result = super().execute_complete(context, event, action, previous_config, replans, budget, released)
        except AirflowException as exc:
            raise self._failed_rollback(context, exc, why) from exc
        return self._rolled_back(context, result, deployed.get("endpoint_config_name"), why)

    def _failed_rollback(self, context: Context, exc: AirflowException, why: str) -> AirflowException:
        """The deploy's error, said as a rollback's (a timeout stays retryable: a retry resumes the wait)."""
        return self._fail(context, f"{why}; rolling {self.endpoint_name} back to {self.endpoint_config_name} did not "
                          f"finish: {exc}. {serving_summary(self.hook.conn, self.endpoint_name)}", type(exc))

    def _previous(self, client: Any, new: str, deployed: Mapping[str, Any]) -> str | None:
        """The config ``new`` replaced: the endpoint's deployed-over tag when it names ``new``, else the
        deploy's result (None: a first deploy)."""
        endpoint = _describe_or_none(client.describe_endpoint, EndpointName=self.endpoint_name) or {}
        recorded = deployed_over(client, endpoint["EndpointArn"]) if endpoint.get("EndpointArn") else None
        if recorded and recorded[0] == new:
            return recorded[1]
        previous = deployed.get("previous_config")
        return previous if previous and deployed.get("action") == "updated" else None

    def _validate_name_only(self) -> None:
        validate_sagemaker_name(self.endpoint_name, "endpoint_name")

    def _rolled_back(self, context: Context, result: Mapping[str, Any], new: str | None, why: str) -> dict[str, Any]:
        raise self._fail(
            context,
            f"{why}: rolled back to the config that served before. "
            f"{serving_summary(self.hook.conn, self.endpoint_name)}; the new config {new} no longer serves")


def require_run_config_serving(context: Mapping[str, Any], stage: str, deploy_task_id: str = "deploy") -> str:
    """Fail ``stage`` unless the endpoint serves the config this run deployed; returns that config.

    A test after a rollback must not measure the OLD config: clearing a failed ``load_test`` clears
    the rollback and the lease tasks after it but not ``deploy``, so without this check the smoke
    and load tests would pass against the config the rollback restored and the run would turn
    green. The config comes from the deploy's XCom (``pipeline().endpoint_config_name`` when it has
    none); the endpoint's from DescribeEndpoint.
    """
    from sagemaker_vision.config import PipelineConfig

    cfg = PipelineConfig.from_context(context)
    deployed = context["ti"].xcom_pull(task_ids=deploy_task_id)
    expected = (deployed.get("endpoint_config_name") if isinstance(deployed, Mapping) else None) \
        or cfg.endpoint_config_name
    endpoint = _describe_or_none(aws.client("sagemaker").describe_endpoint, EndpointName=cfg.endpoint_name) or {}
    serving = endpoint.get("EndpointConfigName")
    if serving != expected:
        raise AirflowFailException(
            f"{stage} refuses to test endpoint {cfg.endpoint_name}: the endpoint serves {serving or 'nothing'}, not "
            f"this run's {expected} (rolled back?); clear `{deploy_task_id}` to deploy again")
    return expected


def record_deployed_over(sagemaker_client: Any, endpoint_arn: str, new_config: str, previous_config: str) -> None:
    """Tag the endpoint: ``new_config`` is replacing ``previous_config`` (AddTags overwrites the key)."""
    sagemaker_client.add_tags(ResourceArn=endpoint_arn,
                              Tags=[{"Key": DEPLOYED_OVER_TAG, "Value": f"{new_config}/{previous_config}"}])


def deployed_over(sagemaker_client: Any, endpoint_arn: str) -> tuple[str, str] | None:
    """``(new config, the config it replaced)`` from the endpoint's deployed-over tag, or None."""
    new, _, previous = _tags(sagemaker_client, endpoint_arn).get(DEPLOYED_OVER_TAG, "").partition("/")
    return (new, previous) if new and previous else None


def serving_summary(sagemaker_client: Any, endpoint_name: str) -> str:
    """``Endpoint E is InService on config C (model M, validation-map v)``, for messages; never raises."""
    try:
        endpoint = _describe_or_none(sagemaker_client.describe_endpoint, EndpointName=endpoint_name)
        if endpoint is None:
            return f"Endpoint {endpoint_name} does not exist"
        config_name = endpoint.get("EndpointConfigName")
        config = _describe_or_none(sagemaker_client.describe_endpoint_config, EndpointConfigName=config_name)
        models = [v.get("ModelName") for v in (config or {}).get("ProductionVariants") or []]
        model = serving_variant(config["ProductionVariants"]).get("ModelName") if config and models else None
        described = _describe_or_none(sagemaker_client.describe_model, ModelName=model) if model else None
        score = _tags(sagemaker_client, described["ModelArn"]).get(MAP_TAG) if described else None
        return (f"Endpoint {endpoint_name} is {endpoint.get('EndpointStatus')} on config {config_name} (model "
                f"{model or 'unknown'}, {MAP_TAG} {score or 'unknown'}"
                + (f"; variants' models {models}" if len(models) > 1 else "") + ")")
    except Exception as exc:  # noqa: BLE001 - a message must not hide the failure it reports
        return f"What endpoint {endpoint_name} serves could not be read ({type(exc).__name__}: {exc})"


# --------------------------------------------------------------------------- pipeline stages


def gate_run(cfg: Any, trained: Mapping[str, Any], sagemaker_client: Any) -> GateDecision:
    """The pipeline's ``quality_gate``: this run's model against the one serving ``cfg.endpoint_name``."""
    description = trained.get("Training", trained)
    decision = quality_gate(
        final_metric(description), production_map(sagemaker_client, cfg.endpoint_name),
        min_map=cfg.deploy.min_map, map_tolerance=cfg.deploy.map_tolerance,
    )
    log.info("Quality gate for %s: %s", description.get("TrainingJobName"), decision.reason)
    return decision


def create_model_for_run(cfg: Any, requests: Mapping[str, Any], trained: Mapping[str, Any],
                         sagemaker_client: Any) -> str:
    """Create (or reuse) this run's model, tagged with the mAP it was validated at."""
    arn, created = ensure_model(sagemaker_client, requests["model"],
                                validation_map=final_metric(trained.get("Training", trained)))
    log.info("%s model %s", "Created" if created else "Reusing", arn)
    return arn


def create_endpoint_config_for_run(cfg: Any, requests: Mapping[str, Any], sagemaker_client: Any) -> str:
    """Create (or reuse) the run's endpoint config; with ``challenger_weight`` an A/B config.

    The A/B config keeps the serving model as the Champion variant and adds this run's model
    as the Challenger with its share of traffic; ``endpoint_promote_challenger`` later shifts
    all traffic to it. The first deploy has no champion, so it serves the new model alone.
    """
    request = dict(requests["endpoint_config"])
    if cfg.endpoint.endpoint_type == "provisioned" and cfg.deploy.challenger_weight > 0:
        endpoint = _describe_or_none(sagemaker_client.describe_endpoint, EndpointName=cfg.endpoint_name)
        if endpoint is not None:
            serving = _describe_or_none(sagemaker_client.describe_endpoint_config,
                                        EndpointConfigName=endpoint["EndpointConfigName"])
            champion = serving_variant((serving or {}).get("ProductionVariants") or [{}]).get("ModelName")
            if champion and champion != cfg.model_name:
                from sagemaker_vision.scaling import ab_endpoint_config_request

                request = ab_endpoint_config_request(
                    endpoint_config_name=cfg.endpoint_config_name, champion_model=champion,
                    challenger_model=cfg.model_name, instance_type=cfg.endpoint.instance_type,
                    instance_count=cfg.endpoint.instance_count, challenger_weight=cfg.deploy.challenger_weight,
                    tags=request.get("Tags") or [],
                )
                log.info("A/B: %s keeps %.0f%% of traffic, challenger %s gets %.0f%%", champion,
                         100 * (1 - cfg.deploy.challenger_weight), cfg.model_name, 100 * cfg.deploy.challenger_weight)
    arn, created = ensure_endpoint_config(sagemaker_client, request)
    log.info("%s endpoint config %s", "Created" if created else "Reusing", arn)
    return arn


def configure_autoscaling(cfg: Any) -> dict[str, Any]:
    """Autoscaling after a deploy: target tracking on invocations (provisioned), or on the
    backlog with scale-to-zero (async). Serverless endpoints scale themselves."""
    if cfg.endpoint.endpoint_type == "serverless" or not cfg.deploy.autoscaling_max:
        reason = "serverless scales itself" if cfg.endpoint.endpoint_type == "serverless" else \
            "autoscaling_max_capacity is 0"
        log.info("No autoscaling for %s: %s", cfg.endpoint_name, reason)
        return {"autoscaling": None, "reason": reason}
    aas, sm = aws.client("application-autoscaling"), aws.client("sagemaker")
    if cfg.endpoint.endpoint_type == "async":
        from sagemaker_vision.async_inference import apply_async_autoscaling

        result = apply_async_autoscaling(aas, aws.client("cloudwatch"), sm, cfg.endpoint_name,
                                         max_capacity=cfg.deploy.autoscaling_max)
    else:
        from sagemaker_vision.scaling import apply_autoscaling

        description = sm.describe_endpoint(EndpointName=cfg.endpoint_name)
        result = {}
        for variant in description.get("ProductionVariants") or []:
            result[variant["VariantName"]] = apply_autoscaling(
                aas, sm, cfg.endpoint_name, variant["VariantName"], min_capacity=cfg.deploy.autoscaling_min,
                max_capacity=cfg.deploy.autoscaling_max,
                target_invocations_per_instance=cfg.deploy.target_invocations_per_instance,
            )
    log.info("Autoscaling on %s: %s", cfg.endpoint_name, result)
    return {"autoscaling": result}
