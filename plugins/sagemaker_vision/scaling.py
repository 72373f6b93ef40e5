"""Autoscaling of provisioned endpoints, and A/B tests between a champion and a challenger model.

Pure builders return the exact keyword arguments of one boto3 call each, so they are unit-tested
without AWS and validated against botocore's API model; the ``apply_*`` / ``promote_*`` functions
make the calls on clients they are given. Every bad input raises
:class:`~sagemaker_vision.config.ConfigError` naming the argument, before any AWS call.

* :func:`target_tracking_policy` + :func:`apply_autoscaling`: Application Auto Scaling target
  tracking on ``SageMakerVariantInvocationsPerInstance`` (invocations per instance per minute).
  ``RegisterScalableTarget`` and ``PutScalingPolicy`` are upserts, so applying twice is harmless.
  Serverless endpoints are refused: they scale themselves (their scalable dimension is
  provisioned concurrency, not instance count).
* :func:`ab_endpoint_config_request` + :func:`promote_challenger`: two production variants,
  ``Champion`` and ``Challenger``, weighted ``1 - w`` and ``w``; promotion shifts all traffic to
  the challenger with ``UpdateEndpointWeightsAndCapacities`` (no redeploy) and waits InService.
* :func:`end_ab_test`: the A/B test's last step, keeping one variant (the Challenger after a
  promotion, the Champion when the Challenger is dropped) as a single ``AllTraffic`` variant, so
  the idle one stops costing money. The variant names change, so the UpdateEndpoint carries no
  DeploymentConfig: AWS refuses one then ("When doing a blue/green or rolling deployment, your new
  endpoint configuration must have the same variant name as the old endpoint configuration",
  Deployment guardrails, Exclusions); without one SageMaker still provisions the new fleet before
  it shifts traffic and deletes the old one ("there is no availability loss", UpdateEndpoint).

Every wait polls DescribeEndpoint within a budget from :mod:`~sagemaker_vision.endpoint_waits`
and fails at once on Failed, UpdateRollbackFailed, OutOfService or Deleting, with the reason.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision import endpoint_waits as waits
from sagemaker_vision.config import ConfigError, validate_sagemaker_name
from sagemaker_vision.requests import PACKAGE_TAG, PACKAGE_TAG_VALUE, VARIANT_NAME

log = logging.getLogger(__name__)

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
CHAMPION = "Champion"
CHALLENGER = "Challenger"
ENDPOINT_TYPES = ("provisioned", "serverless")
# Serverless Inference "Feature exclusions" list "multiple production variants":
# https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html#serverless-endpoints-how-it-works-exclusions
SERVERLESS_EXCLUSIONS_URL = (
    "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html"
    "#serverless-endpoints-how-it-works-exclusions"
)
INSTANCE_TYPE_RE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
MAX_TAGS = 50
DEFAULT_WAITER_DELAY = 30
# None: as many polls as the operation's budget (endpoint_waits.endpoint_wait_budget) needs.
DEFAULT_WAITER_MAX_ATTEMPTS: int | None = None


# --------------------------------------------------------------------------------------------
# Validation helpers, shared with async_inference (each error names the argument)
# --------------------------------------------------------------------------------------------


def int_field(value: Any, field_name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int in ``[minimum, maximum]``; bools and floats are refused (they hide typos)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field_name, f"must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(field_name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(field_name, f"must be <= {maximum}, got {value}")
    return value


def positive_number(value: Any, field_name: str) -> float:
    """A finite number > 0, as float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(field_name, f"must be a number > 0, got {value!r}")
    return float(value)


def validate_variant_name(value: Any, field_name: str = "variant_name") -> str:
    """Production variant names follow the same rule as other SageMaker names."""
    return validate_sagemaker_name(value, field_name)


def validate_instance_type(value: Any, field_name: str = "instance_type") -> str:
    if not isinstance(value, str) or not INSTANCE_TYPE_RE.match(value):
        raise ConfigError(field_name, f"{value!r} is not a SageMaker instance type such as ml.m5.large")
    return value


def package_tags(tags: Any, field_name: str = "tags") -> list[dict[str, str]]:
    """``[{"Key", "Value"}]`` from a list or a dict, always carrying ``managed-by=sagemaker-vision``.

    Teardown refuses resources without that tag, so it is added when missing; a different value
    for it is an error rather than silently overwritten.
    """
    if isinstance(tags, Mapping):
        pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    elif isinstance(tags, Sequence) and not isinstance(tags, str | bytes):
        pairs = [dict(t) if isinstance(t, Mapping) else t for t in tags]
    else:
        raise ConfigError(field_name, "must be a dict or a list of {'Key': ..., 'Value': ...}")
    seen: set[str] = set()
    for index, pair in enumerate(pairs):
        if not isinstance(pair, dict) or set(pair) != {"Key", "Value"}:
            raise ConfigError(f"{field_name}[{index}]", f"{pair!r} is not {{'Key': ..., 'Value': ...}}")
        key, value = pair["Key"], pair["Value"]
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise ConfigError(f"{field_name}[{index}]", f"key {key!r} must be 1-128 characters, not aws:...")
        if not isinstance(value, str) or len(value) > 256:
            raise ConfigError(f"{field_name}[{index}]", f"value of {key!r} must be a string of <= 256 characters")
        if key in seen:
            raise ConfigError(f"{field_name}[{index}]", f"key {key!r} appears twice")
        seen.add(key)
        if key == PACKAGE_TAG and value != PACKAGE_TAG_VALUE:
            raise ConfigError(
                f"{field_name}[{index}]", f"{PACKAGE_TAG}={value!r}: this package only creates "
                f"{PACKAGE_TAG}={PACKAGE_TAG_VALUE} resources"
            )
    if PACKAGE_TAG not in seen:
        pairs.append({"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE})
    if len(pairs) > MAX_TAGS:
        raise ConfigError(field_name, f"has {len(pairs)} tags; SageMaker allows at most {MAX_TAGS}")
    return pairs


def resource_id(endpoint_name: str, variant_name: str) -> str:
    """Application Auto Scaling's id of a production variant: ``endpoint/<name>/variant/<variant>``."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def backlog_alarm_name(endpoint_name: str) -> str:
    """The CloudWatch alarm that scales an async endpoint out from zero (``async_inference``).

    Defined here, not there, so that teardown can name it without importing Airflow operators.
    """
    return f"{endpoint_name}-has-backlog-without-capacity"


def scalable_target_request(endpoint_name: str, variant_name: str, *, min_capacity: int,
                            max_capacity: int) -> dict[str, Any]:
    """``RegisterScalableTarget`` kwargs for a variant's instance count (bounds already validated)."""
    return {
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": resource_id(endpoint_name, variant_name),
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": min_capacity,
        "MaxCapacity": max_capacity,
    }


# --------------------------------------------------------------------------------------------
# Provisioned autoscaling
# --------------------------------------------------------------------------------------------


def invocations_policy_name(endpoint_name: str, variant_name: str) -> str:
    return f"{endpoint_name}-{variant_name}-invocations-per-instance"


def target_tracking_policy(
    endpoint_name: str,
    variant_name: str,
    *,
    min_capacity: int,
    max_capacity: int,
    target_invocations_per_instance: float,
    scale_in_cooldown_s: int = 300,
    scale_out_cooldown_s: int = 60,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``RegisterScalableTarget`` kwargs, ``PutScalingPolicy`` kwargs) for a real-time variant.

    ``target_invocations_per_instance`` is the ``SageMakerVariantInvocationsPerInstance`` value
    to hold: invocations per instance per minute. Real-time variants cannot scale to zero, so
    ``min_capacity`` is at least 1 (asynchronous endpoints: see ``async_inference``). Scale-in is
    slow (5 min) and scale-out fast (1 min) by default: adding capacity late costs latency,
    removing it late only costs money.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    validate_variant_name(variant_name)
    int_field(min_capacity, "min_capacity", 1)
    int_field(max_capacity, "max_capacity", 1)
    if max_capacity < min_capacity:
        raise ConfigError("max_capacity", f"{max_capacity} is below min_capacity {min_capacity}")
    target = positive_number(target_invocations_per_instance, "target_invocations_per_instance")
    int_field(scale_in_cooldown_s, "scale_in_cooldown_s", 0)
    int_field(scale_out_cooldown_s, "scale_out_cooldown_s", 0)
    register = scalable_target_request(endpoint_name, variant_name, min_capacity=min_capacity,
                                       max_capacity=max_capacity)
    policy = {
        "PolicyName": invocations_policy_name(endpoint_name, variant_name),
        "ServiceNamespace": SERVICE_NAMESPACE,
        "ResourceId": register["ResourceId"],
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": target,
            "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_METRIC},
            "ScaleInCooldown": scale_in_cooldown_s,
            "ScaleOutCooldown": scale_out_cooldown_s,
        },
    }
    return register, policy


def _variant(description: Mapping[str, Any], variant_name: str) -> Mapping[str, Any]:
    variants = {v.get("VariantName"): v for v in description.get("ProductionVariants") or []}
    if variant_name not in variants:
        raise ConfigError(
            "variant_name",
            f"endpoint {description.get('EndpointName')!r} has no variant {variant_name!r}; "
            f"it has {sorted(n for n in variants if n)}",
        )
    return variants[variant_name]


def is_serverless_variant(variant: Mapping[str, Any]) -> bool:
    """True for a DescribeEndpoint variant summary (or a config variant) that runs serverless."""
    return bool(variant.get("CurrentServerlessConfig") or variant.get("DesiredServerlessConfig")
                or variant.get("ServerlessConfig"))


def check_autoscalable(description: Mapping[str, Any], variant_name: str) -> None:
    """Refuse what instance-count autoscaling cannot apply to, from a ``DescribeEndpoint`` reply."""
    name = description.get("EndpointName")
    variant = _variant(description, variant_name)
    if is_serverless_variant(variant):
        raise ConfigError(
            "endpoint_name",
            f"endpoint {name!r} variant {variant_name!r} is serverless: it scales itself (MaxConcurrency); "
            "instance-count autoscaling does not apply",
        )
    status = description.get("EndpointStatus")
    if status != "InService":
        raise ConfigError("endpoint_name", f"endpoint {name!r} is {status}; autoscaling needs it InService")


def apply_autoscaling(
    aas_client: Any,
    sagemaker_client: Any,
    endpoint_name: str,
    variant_name: str = VARIANT_NAME,
    *,
    min_capacity: int,
    max_capacity: int,
    target_invocations_per_instance: float,
    scale_in_cooldown_s: int = 300,
    scale_out_cooldown_s: int = 60,
) -> dict[str, Any]:
    """Register the variant and put its target-tracking policy; safe to repeat (both are upserts).

    Everything is validated, and the endpoint described (a free call), before anything is
    written; a serverless or missing variant is refused. Returns a small XCom-safe summary.
    """
    register, policy = target_tracking_policy(
        endpoint_name, variant_name, min_capacity=min_capacity, max_capacity=max_capacity,
        target_invocations_per_instance=target_invocations_per_instance,
        scale_in_cooldown_s=scale_in_cooldown_s, scale_out_cooldown_s=scale_out_cooldown_s,
    )
    check_autoscalable(sagemaker_client.describe_endpoint(EndpointName=endpoint_name), variant_name)
    aas_client.register_scalable_target(**register)
    arn = aas_client.put_scaling_policy(**policy)["PolicyARN"]
    log.info("Autoscaling %s: %d-%d instances, target %s invocations/instance/minute (policy %s)",
             register["ResourceId"], min_capacity, max_capacity, target_invocations_per_instance, arn)
    return {
        "resource_id": register["ResourceId"],
        "min_capacity": min_capacity,
        "max_capacity": max_capacity,
        "target_invocations_per_instance": float(target_invocations_per_instance),
        "policy_arn": arn,
    }


# --------------------------------------------------------------------------------------------
# Autoscaling around an UpdateEndpoint
# --------------------------------------------------------------------------------------------

# "If the update would change the instance type for any model that is a target for auto scaling, the
# update fails ... Before you update the endpoint, delete any scaling policies configured for it and
# deregister the variant as a scalable target"; steps 1 and 7 are needed when "Removing a production
# variant configured for auto scaling" (Developer Guide, "Update endpoints that use auto scaling").
AUTOSCALING_UPDATE_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html"


def autoscaling_conflicts(current: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[str]:
    """Variants of ``current`` (config variants) that an update to ``new`` removes or moves to another instance type."""
    wanted = {v.get("VariantName"): v for v in new}
    conflicts = []
    for variant in current:
        name = variant.get("VariantName")
        if name not in wanted or (variant.get("InstanceType") and
                                  wanted[name].get("InstanceType") != variant.get("InstanceType")):
            conflicts.append(str(name))
    return conflicts


POLICY_CONFIGS = ("TargetTrackingScalingPolicyConfiguration", "StepScalingPolicyConfiguration",
                  "PredictiveScalingPolicyConfiguration")


def release_autoscaling(aas_client: Any, endpoint_name: str, variant_names: Sequence[str], *,
                        record: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Delete the scaling policies of ``variant_names`` and deregister them; returns what was there.

    ``{variant: {"target": {"MinCapacity", "MaxCapacity", "SuspendedState"?}, "policies": [{"PolicyName",
    "PolicyType", "<type>PolicyConfiguration", "Alarms"}], "min_capacity", "max_capacity",
    "target_invocations_per_instance" (or None)}}`` for each variant that was a scalable target: every
    policy, whatever its type (a user's own, async backlog step scaling), so that
    :func:`restore_autoscaling` replays it all. Variants without autoscaling are skipped.

    ``record`` is called with the whole result after everything was described and before the first
    delete, so that what is released is kept somewhere that outlives this call (see
    :func:`record_released`).
    """
    released: dict[str, Any] = {}
    for variant in variant_names:
        target_id = resource_id(endpoint_name, variant)
        found = aas_client.describe_scalable_targets(ServiceNamespace=SERVICE_NAMESPACE, ResourceIds=[target_id],
                                                     ScalableDimension=SCALABLE_DIMENSION).get("ScalableTargets")
        found = [t for t in found or [] if t.get("ResourceId") == target_id]
        if not found:
            continue
        policies = aas_client.describe_scaling_policies(ServiceNamespace=SERVICE_NAMESPACE, ResourceId=target_id,
                                                        ScalableDimension=SCALABLE_DIMENSION).get("ScalingPolicies")
        kept, invocations = [], None
        for policy in policies or []:
            if policy.get("ResourceId") != target_id:
                continue  # the emulator matches ResourceId as a substring
            entry = {"PolicyName": policy["PolicyName"], "PolicyType": policy.get("PolicyType")}
            entry.update({key: policy[key] for key in POLICY_CONFIGS if policy.get(key)})
            entry["Alarms"] = sorted(a.get("AlarmName") for a in policy.get("Alarms") or [] if a.get("AlarmName"))
            kept.append(entry)
            config = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
            if (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType") == INVOCATIONS_METRIC:
                invocations = config.get("TargetValue")
        target = {key: found[0][key] for key in ("MinCapacity", "MaxCapacity", "SuspendedState") if key in found[0]}
        released[variant] = {"target": target, "policies": kept, "min_capacity": found[0]["MinCapacity"],
                             "max_capacity": found[0]["MaxCapacity"], "target_invocations_per_instance": invocations}
    if record is not None and released:
        record(released)
    for variant, settings in released.items():
        target_id = resource_id(endpoint_name, variant)
        for policy in settings["policies"]:
            aas_client.delete_scaling_policy(PolicyName=policy["PolicyName"], ServiceNamespace=SERVICE_NAMESPACE,
                                             ResourceId=target_id, ScalableDimension=SCALABLE_DIMENSION)
        aas_client.deregister_scalable_target(ServiceNamespace=SERVICE_NAMESPACE, ResourceId=target_id,
                                              ScalableDimension=SCALABLE_DIMENSION)
        log.info("Autoscaling of %s released before the update (%s): %s", target_id, AUTOSCALING_UPDATE_URL,
                 settings)
    return released


def restore_autoscaling(aas_client: Any, sagemaker_client: Any, endpoint_name: str, variant_name: str,
                        released: Mapping[str, Any] | None, *,
                        from_variant: str | None = None) -> dict[str, Any] | None:
    """Put released autoscaling (one entry of :func:`release_autoscaling`) back on ``variant_name``.

    The scalable target is registered with its recorded bounds (and SuspendedState), then every
    recorded policy is put again with its type and full configuration. A policy named after
    ``from_variant`` (this package's invocations policy) is renamed for ``variant_name``. Step
    scaling policies get a new ARN: the CloudWatch alarms that invoked the old one are named in a
    warning. An entry of the older shape (min, max, invocations target) is replayed as a target-tracking
    policy. The endpoint is described first: a missing or serverless variant is refused (ConfigError).
    """
    if not released:
        return None
    check_autoscalable(sagemaker_client.describe_endpoint(EndpointName=endpoint_name), variant_name)
    target_id = resource_id(endpoint_name, variant_name)
    bounds = dict(released.get("target") or {"MinCapacity": max(1, int(released["min_capacity"])),
                                              "MaxCapacity": int(released["max_capacity"])})
    policies = list(released.get("policies") or [])
    if "policies" not in released and released.get("target_invocations_per_instance"):
        policies = [{key: value for key, value in target_tracking_policy(
            endpoint_name, variant_name, min_capacity=bounds["MinCapacity"], max_capacity=bounds["MaxCapacity"],
            target_invocations_per_instance=float(released["target_invocations_per_instance"]))[1].items()
            if key in ("PolicyName", "PolicyType", *POLICY_CONFIGS)}]
    aas_client.register_scalable_target(ServiceNamespace=SERVICE_NAMESPACE, ResourceId=target_id,
                                        ScalableDimension=SCALABLE_DIMENSION, **bounds)
    arns = {}
    for policy in policies:
        name = policy["PolicyName"]
        if from_variant and name == invocations_policy_name(endpoint_name, from_variant):
            name = invocations_policy_name(endpoint_name, variant_name)
        request = {"PolicyName": name, "ServiceNamespace": SERVICE_NAMESPACE, "ResourceId": target_id,
                   "ScalableDimension": SCALABLE_DIMENSION, "PolicyType": policy["PolicyType"]}
        request.update({key: policy[key] for key in POLICY_CONFIGS if policy.get(key)})
        arns[name] = aas_client.put_scaling_policy(**request)["PolicyARN"]
        if policy.get("PolicyType") == "StepScaling" and policy.get("Alarms"):
            log.warning("Scaling policy %s of %s was put back with a new ARN %s: the CloudWatch alarms %s invoked "
                        "the deleted one; point their alarm actions at the new ARN (or rerun the task that made "
                        "them)", name, target_id, arns[name], policy["Alarms"])
    log.info("Autoscaling of %s restored: %s, policies %s", target_id, bounds, sorted(arns))
    return {"resource_id": target_id, "min_capacity": bounds["MinCapacity"], "max_capacity": bounds["MaxCapacity"],
            "target_invocations_per_instance": released.get("target_invocations_per_instance"),
            "policy_arns": arns}


def restore_released(aas_client: Any, sagemaker_client: Any, endpoint_name: str, released: Mapping[str, Any],
                     onto: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Restore every released variant (``onto`` maps a released variant to the variant it goes back on;
    default: its own name); never raises. Whatever cannot be put back is logged as a warning with
    its full settings, so that a person can restore it by hand. Returns ``{variant: summary or None}``.
    """
    restored: dict[str, Any] = {}
    for variant, settings in released.items():
        target = (onto or {}).get(variant, variant)
        try:
            restored[target] = restore_autoscaling(aas_client, sagemaker_client, endpoint_name, target, settings,
                                                   from_variant=variant)
        except Exception as exc:  # noqa: BLE001 - a failure path already in progress must not be masked
            restored[target] = None
            log.warning("Could not restore the released autoscaling of %s on %s (%s): %s. It was: %s",
                        resource_id(endpoint_name, variant), target, AUTOSCALING_UPDATE_URL, exc,
                        json.dumps(settings, sort_keys=True, default=str))
    return restored


# What was released is kept in tags on the endpoint itself until it is restored: the record lives and
# dies with the endpoint it is about, needs no bucket or run prefix (a retry, a later run, the A/B
# DAG and a manual rerun all find it), and needs only AddTags/ListTags, which the package's IAM policy
# already grants on its endpoints. SageMaker tag values allow letters, digits and _.:/=+-@ only, at
# most 256 characters (botocore TagValue), so the record is zlib-compressed JSON in URL-safe base64,
# split over numbered tags. A cleared record is written as empty values (no DeleteTags needed).
RELEASED_TAG_PREFIX = "sagemaker-vision:released-autoscaling:"
TAG_VALUE_MAX = 256
MAX_RECORD_TAGS = 16


def _list_tags(sagemaker_client: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 100}
    for _ in range(100):
        page = sagemaker_client.list_tags(**kwargs)
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags") or []})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return tags


def _record_keys(tags: Mapping[str, str]) -> list[str]:
    return sorted((k for k in tags if k.startswith(RELEASED_TAG_PREFIX)),
                  key=lambda k: int(k[len(RELEASED_TAG_PREFIX):]) if k[len(RELEASED_TAG_PREFIX):].isdigit() else -1)


def recorded_released(sagemaker_client: Any, endpoint_arn: str) -> dict[str, Any]:
    """The record :func:`record_released` keeps on the endpoint (``{}``: none, or cleared)."""
    tags = _list_tags(sagemaker_client, endpoint_arn)
    blob = "".join(tags[k] for k in _record_keys(tags))
    if not blob:
        return {}
    try:
        return json.loads(zlib.decompress(base64.urlsafe_b64decode(blob)))
    except (ValueError, zlib.error) as exc:
        log.warning("Endpoint %s carries an unreadable released-autoscaling record (%s): %s", endpoint_arn, exc, blob)
        return {}


def record_released(sagemaker_client: Any, endpoint_arn: str, record: Mapping[str, Any]) -> None:
    """Keep ``record`` in the endpoint's tags (replacing any earlier one). Raises ConfigError, before
    anything is written, when it does not fit (SageMaker allows 50 tags per resource)."""
    tags = _list_tags(sagemaker_client, endpoint_arn)
    old_keys = _record_keys(tags)
    blob = base64.urlsafe_b64encode(zlib.compress(json.dumps(record, sort_keys=True, default=str).encode())).decode()
    chunks = [blob[i:i + TAG_VALUE_MAX] for i in range(0, len(blob), TAG_VALUE_MAX)]
    others = len(tags) - len(old_keys)
    if len(chunks) > MAX_RECORD_TAGS or others + max(len(chunks), len(old_keys)) > MAX_TAGS:
        raise ConfigError("endpoint_name", f"cannot record the autoscaling about to be released on endpoint "
                                           f"{endpoint_arn}: {len(chunks)} tags needed, {others} of {MAX_TAGS} used; "
                                           "release it by hand before the update")
    values = {f"{RELEASED_TAG_PREFIX}{i}": chunk for i, chunk in enumerate(chunks)}
    values.update({k: "" for k in old_keys if k not in values})
    sagemaker_client.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": k, "Value": v} for k, v in values.items()])


def clear_released(sagemaker_client: Any, endpoint_arn: str) -> None:
    """Empty the endpoint's released-autoscaling record (if it has one)."""
    keys = [k for k, v in _list_tags(sagemaker_client, endpoint_arn).items() if k.startswith(RELEASED_TAG_PREFIX) and v]
    if keys:
        sagemaker_client.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": k, "Value": ""} for k in keys])


# --------------------------------------------------------------------------------------------
# A/B testing
# --------------------------------------------------------------------------------------------


def ab_endpoint_config_request(
    *,
    endpoint_config_name: str,
    champion_model: str,
    challenger_model: str,
    instance_type: str,
    instance_count: int,
    challenger_weight: float,
    tags: Sequence[Mapping[str, str]] | Mapping[str, str],
    endpoint_type: str = "provisioned",
) -> dict[str, Any]:
    """``CreateEndpointConfig`` with two variants: Champion (weight ``1 - w``) and Challenger (``w``).

    Each variant gets ``instance_count`` instances of ``instance_type``. Serverless endpoints are
    refused: AWS lists "multiple production variants" among Serverless Inference's feature
    exclusions (see :data:`SERVERLESS_EXCLUSIONS_URL`).
    """
    if endpoint_type not in ENDPOINT_TYPES:
        raise ConfigError("endpoint_type", f"must be one of {', '.join(ENDPOINT_TYPES)}; got {endpoint_type!r}")
    if endpoint_type == "serverless":
        raise ConfigError(
            "endpoint_type",
            "serverless endpoints take a single production variant, so they cannot split traffic "
            f"between two models ({SERVERLESS_EXCLUSIONS_URL}); use a provisioned endpoint for A/B tests",
        )
    validate_sagemaker_name(endpoint_config_name, "endpoint_config_name")
    validate_sagemaker_name(champion_model, "champion_model")
    validate_sagemaker_name(challenger_model, "challenger_model")
    if champion_model == challenger_model:
        raise ConfigError("challenger_model", f"{challenger_model!r} is also the champion; an A/B test needs two")
    validate_instance_type(instance_type)
    int_field(instance_count, "instance_count", 1)
    if (isinstance(challenger_weight, bool) or not isinstance(challenger_weight, int | float)
            or not 0 < challenger_weight < 1):
        raise ConfigError("challenger_weight", f"must be a number strictly between 0 and 1, got {challenger_weight!r}")
    weight = float(challenger_weight)

    def variant(name: str, model: str, share: float) -> dict[str, Any]:
        return {
            "VariantName": name,
            "ModelName": model,
            "InstanceType": instance_type,
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": share,
        }

    return {
        "EndpointConfigName": endpoint_config_name,
        "ProductionVariants": [
            variant(CHAMPION, champion_model, round(1.0 - weight, 6)),
            variant(CHALLENGER, challenger_model, weight),
        ],
        "Tags": package_tags(tags),
    }


def promotion_request(endpoint_name: str) -> dict[str, Any]:
    """``UpdateEndpointWeightsAndCapacities`` kwargs that send all traffic to the challenger."""
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    return {
        "EndpointName": endpoint_name,
        "DesiredWeightsAndCapacities": [
            {"VariantName": CHALLENGER, "DesiredWeight": 1.0},
            {"VariantName": CHAMPION, "DesiredWeight": 0.0},
        ],
    }


def is_promoted(description: Mapping[str, Any]) -> bool:
    """True when the challenger already takes all traffic, now and as desired."""
    weights = {v.get("VariantName"): v for v in description.get("ProductionVariants") or []}
    challenger, champion = weights.get(CHALLENGER, {}), weights.get(CHAMPION, {})
    return all(
        variant.get(key) == expected
        for variant, expected in ((challenger, 1.0), (champion, 0.0))
        for key in ("CurrentWeight", "DesiredWeight")
    )


def _check_ab_endpoint(description: Mapping[str, Any]) -> None:
    names = sorted(v.get("VariantName") for v in description.get("ProductionVariants") or [])
    if CHAMPION not in names or CHALLENGER not in names:
        raise ConfigError(
            "endpoint_name",
            f"endpoint {description.get('EndpointName')!r} is not an A/B endpoint: it has variants "
            f"{names}, not {CHAMPION} and {CHALLENGER}",
        )


def wait_in_service(sagemaker_client: Any, endpoint_name: str, *, waiter_delay: float = DEFAULT_WAITER_DELAY,
                    waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS, budget_s: int | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll DescribeEndpoint until InService; RuntimeError at once on a failed state, or when out of polls.

    ``waiter_max_attempts`` None: enough polls for ``budget_s`` (default: the budget of an update,
    endpoint_waits). Failed, UpdateRollbackFailed, OutOfService and Deleting end the wait at the
    first poll that sees them, naming the status and the FailureReason.
    """
    positive_number(waiter_delay, "waiter_delay")
    if waiter_max_attempts is None:
        waiter_max_attempts = waits.max_attempts(budget_s or waits.endpoint_wait_budget("update", []), waiter_delay)
    int_field(waiter_max_attempts, "waiter_max_attempts", 1)
    description: dict[str, Any] = {}
    for attempt in range(1, waiter_max_attempts + 1):
        try:  # the acceptors of waits.ENDPOINT_SETTLED_MODEL decide, as in the deploy operator's waiter
            description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as exc:
            if waits.settled_outcome(exc.response) == "failure":
                raise RuntimeError(f"endpoint {endpoint_name!r} cannot be waited for: {exc}") from exc
            raise
        outcome = waits.settled_outcome(description)
        if outcome == "success":
            return description
        if outcome == "failure":
            raise RuntimeError(waits.failure_message(description))
        if attempt < waiter_max_attempts:
            sleep(waiter_delay)
    raise RuntimeError(
        f"endpoint {endpoint_name!r} is still {description.get('EndpointStatus')} after {waiter_max_attempts} checks "
        f"{waiter_delay} s apart; the operation goes on on AWS: run this again to resume waiting"
    )


def promote_challenger(
    sagemaker_client: Any,
    endpoint_name: str,
    *,
    waiter_delay: float = DEFAULT_WAITER_DELAY,
    waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
) -> dict[str, Any]:
    """Shift all traffic to ``Challenger`` (``Champion`` weight 0), then wait InService.

    Idempotent: an endpoint whose challenger already has weight 1 (current and desired) is left
    alone. An endpoint still Creating or Updating is waited for first (bounded), since SageMaker
    refuses weight changes on an endpoint in progress. Returns the weights after the change.
    """
    request = promotion_request(endpoint_name)
    positive_number(waiter_delay, "waiter_delay")
    if waiter_max_attempts is not None:
        int_field(waiter_max_attempts, "waiter_max_attempts", 1)
    description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    _check_ab_endpoint(description)
    if description.get("EndpointStatus") != "InService":
        log.info("Endpoint %s is %s; waiting for InService before promoting", endpoint_name,
                 description.get("EndpointStatus"))
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts)
    changed = not is_promoted(description)
    if changed:
        sagemaker_client.update_endpoint_weights_and_capacities(**request)
        log.info("Endpoint %s: sending all traffic to %s", endpoint_name, CHALLENGER)
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts,
                                      budget_s=waits.endpoint_wait_budget("weights", []))
        if not is_promoted(description):
            raise RuntimeError(f"endpoint {endpoint_name!r} is InService but the weights did not change: "
                               f"{_weights(description)}")
    else:
        log.info("Endpoint %s already sends all traffic to %s; nothing to do", endpoint_name, CHALLENGER)
    return {"endpoint_name": endpoint_name, "changed": changed, "weights": _weights(description)}


def _weights(description: Mapping[str, Any]) -> dict[str, float | None]:
    return {v.get("VariantName"): v.get("CurrentWeight") for v in description.get("ProductionVariants") or []}


SINGLE_SUFFIX = "-single"
CONFIG_COPIED = ("ModelName", "InstanceType", "InitialInstanceCount", "AcceleratorType", "VolumeSizeInGB",
                 "ModelDataDownloadTimeoutInSeconds", "ContainerStartupHealthCheckTimeoutInSeconds",
                 "ManagedInstanceScaling", "RoutingConfig", "InferenceAmiVersion")


def single_variant_config_name(model_name: str) -> str:
    """``<model>-single``, cut to SageMaker's 63 characters."""
    validate_sagemaker_name(model_name, "model_name")
    return f"{model_name[:63 - len(SINGLE_SUFFIX)].rstrip('-')}{SINGLE_SUFFIX}"


def single_variant_config_request(ab_config: Mapping[str, Any], keep: str,
                                  tags: Sequence[Mapping[str, str]] | Mapping[str, str] = ()) -> dict[str, Any]:
    """``CreateEndpointConfig`` kwargs serving ``keep``'s model alone, as ``AllTraffic``, from an A/B config.

    ``ab_config`` is the DescribeEndpointConfig of the A/B endpoint; the kept variant's model,
    instance type and count (and its timeouts) are copied, its weight becomes 1.
    """
    if keep not in (CHAMPION, CHALLENGER):
        raise ConfigError("keep", f"must be {CHAMPION} or {CHALLENGER}, got {keep!r}")
    variants = {v.get("VariantName"): v for v in ab_config.get("ProductionVariants") or []}
    if keep not in variants:
        raise ConfigError("endpoint_name", f"endpoint config {ab_config.get('EndpointConfigName')!r} has no {keep} "
                                           f"variant; it has {sorted(n for n in variants if n)}")
    kept = variants[keep]
    variant = {key: kept[key] for key in CONFIG_COPIED if kept.get(key) is not None}
    variant.update(VariantName=VARIANT_NAME, InitialVariantWeight=1.0)
    request: dict[str, Any] = {"EndpointConfigName": single_variant_config_name(kept["ModelName"]),
                               "ProductionVariants": [variant], "Tags": package_tags(tags)}
    for key in ("DataCaptureConfig", "KmsKeyId"):
        if ab_config.get(key):
            request[key] = ab_config[key]
    return request


def end_ab_test(sagemaker_client: Any, endpoint_name: str, keep: str, *, autoscaling_client: Any = None,
                waiter_delay: float = DEFAULT_WAITER_DELAY,
                waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
                sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Serve only ``keep``'s model (``Challenger`` or ``Champion``) as ``AllTraffic``, without downtime.

    Idempotent: an endpoint already serving the single-variant config is left alone, and an existing
    config of that name is reused when it serves the same model. Refuses an endpoint that is not
    an A/B endpoint. With ``autoscaling_client``, the A/B variants' autoscaling is released first
    (AWS fails an update that removes an autoscaled variant), after being recorded in the endpoint's
    tags (:func:`record_released`); the kept variant's is put back on ``AllTraffic`` afterwards. If
    the update is refused or rolled back, everything released goes back on the A/B variants; if the
    wait gives up, the record stays and a rerun restores it. Returns ``{"endpoint_name",
    "endpoint_config_name", "model_name", "changed", "autoscaling"}``.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    if description.get("EndpointStatus") != "InService":
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts, sleep=sleep)
    arn = description.get("EndpointArn")
    # What an earlier try released (it timed out, or crashed) and has not put back yet.
    record = recorded_released(sagemaker_client, arn) if autoscaling_client is not None and arn else {}
    serving = sagemaker_client.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
    names = sorted(v.get("VariantName") for v in serving.get("ProductionVariants") or [])
    if names == [VARIANT_NAME] and serving["EndpointConfigName"].endswith(SINGLE_SUFFIX):
        model = serving["ProductionVariants"][0].get("ModelName")
        log.info("Endpoint %s already serves %s alone (%s); nothing to do", endpoint_name, model,
                 serving["EndpointConfigName"])
        restored = None
        if record and record.get("to_config") == serving["EndpointConfigName"]:
            restored = _restore_kept(autoscaling_client, sagemaker_client, endpoint_name, arn, record)
        return {"endpoint_name": endpoint_name, "endpoint_config_name": serving["EndpointConfigName"],
                "model_name": model, "changed": False, "autoscaling": restored}
    _check_ab_endpoint({"EndpointName": endpoint_name, "ProductionVariants": serving.get("ProductionVariants")})
    tags = sagemaker_client.list_tags(ResourceArn=serving["EndpointConfigArn"]).get("Tags") or []
    request = single_variant_config_request(serving, keep, tags)
    _ensure_config(sagemaker_client, request)
    if autoscaling_client is not None:
        record = {"from_config": serving["EndpointConfigName"], "to_config": request["EndpointConfigName"],
                  "keep": keep, "variants": dict((record or {}).get("variants") or {})}

        def keep_record(released: dict[str, Any]) -> None:
            record["variants"] = {**released, **record["variants"]}  # an earlier try's record wins
            record_released(sagemaker_client, arn, record)

        release_autoscaling(autoscaling_client, endpoint_name, autoscaling_conflicts(
            serving.get("ProductionVariants") or [], request["ProductionVariants"]), record=keep_record)
    model = request["ProductionVariants"][0]["ModelName"]
    try:
        sagemaker_client.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=request["EndpointConfigName"],
                                         RetainDeploymentConfig=False)
        log.info("Endpoint %s: %s (%s) takes all traffic alone; updating to %s without a DeploymentConfig (the "
                 "variant names change, which blue/green guardrails do not allow); the A/B fleet serves until the "
                 "new one is InService", endpoint_name, keep, model, request["EndpointConfigName"])
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts, sleep=sleep,
                                      budget_s=waits.endpoint_wait_budget("update", request["ProductionVariants"]))
        if description.get("EndpointConfigName") != request["EndpointConfigName"]:
            raise RuntimeError(f"endpoint {endpoint_name!r} is InService on {description.get('EndpointConfigName')}, "
                               f"not {request['EndpointConfigName']}: the update was rolled back: "
                               f"{description.get('FailureReason') or 'no FailureReason given'}")
    except Exception:
        if autoscaling_client is not None and record.get("variants"):
            restore_after_failed_update(autoscaling_client, sagemaker_client, endpoint_name, arn, record)
        raise
    restored = None
    if autoscaling_client is not None and record.get("variants"):
        restored = _restore_kept(autoscaling_client, sagemaker_client, endpoint_name, arn, record)
    return {"endpoint_name": endpoint_name, "endpoint_config_name": request["EndpointConfigName"],
            "model_name": model, "changed": True, "autoscaling": restored}


def _restore_kept(aas_client: Any, sagemaker_client: Any, endpoint_name: str, arn: str,
                  record: Mapping[str, Any]) -> dict[str, Any] | None:
    """After the A/B test ended: the kept variant's released autoscaling goes onto ``AllTraffic``."""
    variants = record.get("variants") or {}
    keep = record.get("keep")
    for variant in sorted(set(variants) - {keep}):
        log.info("Autoscaling released from %s is not restored: that variant no longer serves", variant)
    restored = None
    if keep in variants:
        restored = restore_released(aas_client, sagemaker_client, endpoint_name, {keep: variants[keep]},
                                    onto={keep: VARIANT_NAME}).get(VARIANT_NAME)
    clear_released(sagemaker_client, arn)
    return restored


def restore_after_failed_update(aas_client: Any, sagemaker_client: Any, endpoint_name: str, arn: str,
                                record: Mapping[str, Any]) -> dict[str, Any]:
    """An update failed (refused, rolled back, or still running when the wait gave up): put the released
    autoscaling back on the old variants if they serve again; otherwise say where the record is kept.

    Never raises: it runs on a failure path whose own error must reach the user.
    """
    variants = record.get("variants") or {}
    try:
        endpoint = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    except Exception as exc:  # noqa: BLE001
        endpoint = {"EndpointStatus": f"unknown ({exc})"}
    status, serving = endpoint.get("EndpointStatus"), endpoint.get("EndpointConfigName")
    if status == "InService" and serving == record.get("from_config"):
        restored = restore_released(aas_client, sagemaker_client, endpoint_name, variants)
        if all(restored.get(v) for v in variants):
            clear_released(sagemaker_client, arn)
        return restored
    log.warning("The autoscaling released from %s of endpoint %s stays released: the endpoint is %s on %s, not "
                "InService on %s. It is recorded in the endpoint's %s* tags; rerun the task once the endpoint is "
                "InService and it is restored. Released: %s", sorted(variants), endpoint_name, status, serving,
                record.get("from_config"), RELEASED_TAG_PREFIX, json.dumps(variants, sort_keys=True, default=str))
    return {}


AB_ACTIONS = ("promote", "drop")


def finish_ab_test(sagemaker_client: Any, endpoint_name: str, action: str, *, autoscaling_client: Any = None,
                   waiter_delay: float = DEFAULT_WAITER_DELAY,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """``promote``: all traffic to the Challenger (weights), then it serves alone; ``drop``: the Champion does.

    Safe to rerun: a promotion already done is not repeated, an endpoint already serving one
    variant alone is left alone.
    """
    if action not in AB_ACTIONS:
        raise ConfigError("action", f"must be one of {', '.join(AB_ACTIONS)}; got {action!r}")
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    promoted = None
    names = {v.get("VariantName") for v in
             sagemaker_client.describe_endpoint(EndpointName=endpoint_name).get("ProductionVariants") or []}
    if action == "promote" and CHALLENGER in names:
        promoted = promote_challenger(sagemaker_client, endpoint_name, waiter_delay=waiter_delay)
    ended = end_ab_test(sagemaker_client, endpoint_name, CHALLENGER if action == "promote" else CHAMPION,
                        autoscaling_client=autoscaling_client, waiter_delay=waiter_delay, sleep=sleep)
    return {**ended, "action": action, "promotion": promoted}


def _ensure_config(client: Any, request: Mapping[str, Any]) -> None:
    name = request["EndpointConfigName"]
    try:
        existing = client.describe_endpoint_config(EndpointConfigName=name)
    except ClientError as exc:
        if "could not find" not in str(exc.response.get("Error", {}).get("Message", "")).lower():
            raise
        client.create_endpoint_config(**request)
        log.info("Created endpoint config %s", name)
        return
    have = [(v.get("VariantName"), v.get("ModelName")) for v in existing.get("ProductionVariants") or []]
    want = [(v["VariantName"], v["ModelName"]) for v in request["ProductionVariants"]]
    if have != want:
        raise ConfigError("endpoint_name", f"endpoint config {name} exists with variants {have}, not {want}; "
                                           "delete it or deploy by hand")
    log.info("Reusing endpoint config %s", name)


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "INVOCATIONS_METRIC",
    "SCALABLE_DIMENSION",
    "SERVERLESS_EXCLUSIONS_URL",
    "SERVICE_NAMESPACE",
    "ab_endpoint_config_request",
    "apply_autoscaling",
    "autoscaling_conflicts",
    "end_ab_test",
    "finish_ab_test",
    "backlog_alarm_name",
    "check_autoscalable",
    "is_promoted",
    "is_serverless_variant",
    "promote_challenger",
    "promotion_request",
    "release_autoscaling",
    "resource_id",
    "restore_autoscaling",
    "scalable_target_request",
    "single_variant_config_request",
    "target_tracking_policy",
    "wait_in_service",
]
