"""Deployment planning (pure): the blue/green DeploymentConfig, rollback alarms, and what an endpoint needs.

* :func:`deployment_config` builds the ``UpdateEndpoint`` blue/green ``DeploymentConfig``
  (all at once, canary or linear, with alarm-based auto-rollback); :func:`rollback_alarm_requests`
  the CloudWatch alarms that roll a bad deployment back; :func:`plan_deploy` decides what an
  endpoint in a given state needs (create, update, wait, nothing, or a refusal).
* :func:`serving_variant` / :func:`endpoint_type_of` read a config's ProductionVariants;
  :func:`model_differences` / :func:`endpoint_config_differences` say where an existing,
  same-named resource differs from a request (``hooks.sagemaker`` refuses it then).
* The validators the deploy operator runs before any AWS call; each error names the argument.

No Airflow, no AWS calls: ``hooks.sagemaker`` and ``operators.deploy`` act on these decisions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sagemaker_vision.core.autoscaling import is_serverless_variant
from sagemaker_vision.core.endpoint_waits import IN_FLIGHT_STATES
from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE, VARIANT_NAME, rollback_alarm_names
from sagemaker_vision.core.quality_gate import finite
from sagemaker_vision.core.validate import DEPLOYMENT_POLICIES, ConfigError, validate_sagemaker_name

# "<new config>/<config it replaced>" on the endpoint, written before every UpdateEndpoint of a deploy: the
# config a failed test rolls back to. A tag, like the mAP, because it must outlive the try that wrote it (a
# deferral's kwargs do not survive dag.test(), and a rerun's deploy finds the endpoint already updated).
DEPLOYED_OVER_TAG = "sagemaker-vision:deployed-over"

# What endpoint_type_of tells apart, for the deployment guardrails: async endpoints run on provisioned compute
# (validate.ENDPOINT_TYPES is the pipeline's endpoint_type param: serverless, provisioned or async).
COMPUTE_TYPES = ("serverless", "provisioned")
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
IN_FLIGHT = IN_FLIGHT_STATES
# "DeleteEndpoint is the only operation that can be performed on a failed endpoint" (DescribeEndpoint).
# OutOfService ("not available to take incoming requests") and Deleting end a wait at once too
# (endpoint_waits.FAILED_STATES), but a later deploy may find them changed: their refusal is retryable.
NEEDS_A_HUMAN = frozenset({"Failed", "UpdateRollbackFailed"})
# The deploy operator's defaults for the settings a lease TTL depends on (``DeployEndpointOperator``
# and ``deployment_config`` / ``rollback_alarm_requests`` take the same ones).
DEPLOY_DEFAULTS: Mapping[str, int] = {
    "canary_percent": 10,
    "linear_step_percent": 20,
    "wait_interval_s": 300,
    "termination_wait_s": 120,
    "maximum_execution_timeout_s": 3600,
    "alarm_period_s": 60,
    "alarm_evaluation_periods": 2,
}


# --------------------------------------------------------------------------------------------
# Production variants
# --------------------------------------------------------------------------------------------


def serving_variant(variants: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The production variant that takes most traffic: highest weight, then ``AllTraffic``, then first."""
    if not variants:
        raise ValueError("the endpoint config has no ProductionVariants")

    def rank(indexed: tuple[int, Mapping[str, Any]]) -> tuple[float, bool, int]:
        index, variant = indexed
        weight = finite(variant.get("InitialVariantWeight"))
        return (1.0 if weight is None else weight, variant.get("VariantName") == VARIANT_NAME, -index)

    return max(enumerate(variants), key=rank)[1]


def endpoint_type_of(variants: Sequence[Mapping[str, Any]]) -> str:
    """``serverless`` when the variants run on serverless compute, else ``provisioned``."""
    return "serverless" if any(v.get("ServerlessConfig") for v in variants) else "provisioned"


def deployed_over_value(new_config: str, previous_config: str) -> str:
    """The :data:`DEPLOYED_OVER_TAG` value: ``<new config>/<config it replaced>``."""
    return f"{new_config}/{previous_config}"


def parse_deployed_over(value: str | None) -> tuple[str, str] | None:
    """``(new config, the config it replaced)`` from a :data:`DEPLOYED_OVER_TAG` value, or None."""
    new, _, previous = (value or "").partition("/")
    return (new, previous) if new and previous else None


# --------------------------------------------------------------------------------------------
# Blue/green deployment config and rollback alarms
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
    policy = validate_policy(policy)
    if endpoint_type not in COMPUTE_TYPES:
        raise ConfigError("endpoint_type", f"must be one of {', '.join(COMPUTE_TYPES)}; got {endpoint_type!r}")
    alarms = validate_alarm_names(alarm_names)
    wait_s = int_in_range(wait_interval_s, "wait_interval_s", *WAIT_INTERVAL_S)
    termination_s = int_in_range(termination_wait_s, "termination_wait_s", *TERMINATION_WAIT_S)
    timeout_s = int_in_range(maximum_execution_timeout_s, "maximum_execution_timeout_s",
                              *MAXIMUM_EXECUTION_TIMEOUT_S)
    routing: dict[str, Any] = {"Type": policy.upper(), "WaitIntervalInSeconds": wait_s}
    if policy == "canary":
        size = int_in_range(canary_percent, "canary_percent", *CANARY_PERCENT)
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": size}
        bakes = 2  # the canary, then the whole fleet
    elif policy == "linear":
        size = int_in_range(linear_step_percent, "linear_step_percent", *LINEAR_STEP_PERCENT)
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


def check_bake_covers_alarms(wait_interval_s: int, period_s: int, evaluation_periods: int) -> None:
    """Raise :class:`ConfigError` naming ``wait_interval_s`` when a baking period ends before the rollback
    alarms (``evaluation_periods`` x ``period_s``) could trip."""
    window = period_s * evaluation_periods
    if wait_interval_s < window:
        raise ConfigError(
            "wait_interval_s",
            f"{wait_interval_s} s is shorter than the rollback alarms' window ({evaluation_periods}"
            f" x {period_s} s = {window} s): they could not trip before the baking period ends",
        )


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
    period = int_in_range(period_s, "period_s", 60, MAX_ALARM_LOOKBACK_S)
    if period % 60:
        raise ConfigError("period_s", f"must be a whole number of minutes (SageMaker metrics are per minute), "
                                      f"got {period}")
    periods = int_in_range(evaluation_periods, "evaluation_periods", 1, MAX_ALARM_LOOKBACK_S // period)
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
# Deploy planning
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


def sorted_variant_names(variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``VariantName`` of every variant, sorted."""
    return sorted(str(v.get("VariantName")) for v in variants)


def update_request(endpoint_name: str, endpoint_config_name: str, variants: Sequence[Mapping[str, Any]],
                   current: Sequence[Mapping[str, Any]], deployment: Mapping[str, Any]
                   ) -> tuple[dict[str, Any], str | None]:
    """The UpdateEndpoint kwargs moving ``current`` (the serving variants) to ``variants`` with ``deployment``,
    decided from the guardrail rules before anything is written; and why the DeploymentConfig was left out
    (``"variant_names"``, ``"serverless"``), or None.

    AWS refuses a DeploymentConfig when the variant names change ("When doing a blue/green or
    rolling deployment, your new endpoint configuration must have the same variant name as the old
    endpoint configuration", Deployment guardrails, Exclusions) and for serverless endpoints
    ("Deployment guardrails only apply to Asynchronous inference and Real-time inference endpoint
    types"), the serving fleet included: such updates are sent without one.
    """
    serving = sorted_variant_names(current)
    dropped = None
    if deployment and serving and serving != sorted_variant_names(variants):
        dropped = "variant_names"
    elif deployment and any(is_serverless_variant(v) for v in current):
        dropped = "serverless"
    request: dict[str, Any] = {"EndpointName": endpoint_name, "EndpointConfigName": endpoint_config_name,
                               "RetainDeploymentConfig": False}
    if deployment and dropped is None:
        request["DeploymentConfig"] = dict(deployment)
    return request, dropped


# --------------------------------------------------------------------------------------------
# Same-named resources: where an existing one differs from the request
# --------------------------------------------------------------------------------------------


def _containers(model: Mapping[str, Any]) -> tuple[str, list[Mapping[str, Any]]]:
    if model.get("PrimaryContainer"):
        return "PrimaryContainer", [model["PrimaryContainer"]]
    return "Containers", list(model.get("Containers") or [])


def model_differences(existing: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
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


def endpoint_config_differences(existing: Mapping[str, Any], request: Mapping[str, Any]) -> list[str]:
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


def validate_policy(value: Any) -> str:
    policy = value.strip().lower() if isinstance(value, str) else value
    if policy not in DEPLOYMENT_POLICIES:
        raise ConfigError("deployment_policy", f"must be one of {', '.join(DEPLOYMENT_POLICIES)}; got {value!r}")
    return policy


def validate_alarm_names(names: Any) -> list[str]:
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


def int_in_range(value: Any, field_name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field_name, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(field_name, f"{value} is out of range: {low} to {high}")
    return value


def _positive(value: Any, field_name: str) -> float:
    number = finite(value)
    if number is None or number <= 0:
        raise ConfigError(field_name, f"must be a number above 0, got {value!r}")
    return number


def as_int(value: Any, field_name: str) -> Any:
    """Templated numbers arrive as strings ("10"); anything else is left for the range check."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ConfigError(field_name, f"must be a whole number, got {value!r}") from None
    return value


def as_tags(tags: Any) -> list[dict[str, str]]:
    if not tags:
        return []
    if isinstance(tags, Mapping):
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    if isinstance(tags, Sequence) and not isinstance(tags, str | bytes) and \
            all(isinstance(t, Mapping) and "Key" in t and "Value" in t for t in tags):
        return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in tags]
    raise ConfigError("tags", f"must be a dict or a list of {{'Key', 'Value'}}, got {tags!r}")
