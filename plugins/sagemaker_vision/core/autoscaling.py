"""Autoscaling of provisioned endpoints, pure: the exact Application Auto Scaling requests and the checks.

Pure builders return the exact keyword arguments of one boto3 call each, so they are unit-tested
without AWS and validated against botocore's API model; the calls themselves are made by
:mod:`sagemaker_vision.hooks.scaling`. Every bad input raises
:class:`~sagemaker_vision.core.validate.ConfigError` naming the argument, before any AWS call.

* :func:`target_tracking_policy`: Application Auto Scaling target tracking on
  ``SageMakerVariantInvocationsPerInstance`` (invocations per instance per minute).
  ``RegisterScalableTarget`` and ``PutScalingPolicy`` are upserts, so applying twice is harmless.
  Serverless endpoints are refused (:func:`check_autoscalable`): they scale themselves (their
  scalable dimension is provisioned concurrency, not instance count).
* :func:`autoscaling_conflicts`: the variants an UpdateEndpoint would break the autoscaling of.
* The released-autoscaling record: what was released before such an update, kept in the
  endpoint's own tags (:func:`released_record_tags`, :func:`decode_released_blob`).

The validation helpers (:func:`int_field`, :func:`package_tags`, ...) are shared with
:mod:`sagemaker_vision.core.ab_test` and :mod:`sagemaker_vision.core.async_inference`.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE, invocations_policy_name
from sagemaker_vision.core.validate import ConfigError, validate_sagemaker_name

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"
MAX_TAGS = 50


# --------------------------------------------------------------------------------------------
# Validation helpers, shared with core.ab_test and core.async_inference (each error names the argument)
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
    ``min_capacity`` is at least 1 (asynchronous endpoints: see ``core.async_inference``). Scale-in is
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


# What was released is kept in tags on the endpoint itself until it is restored: the record lives and
# dies with the endpoint it is about, needs no bucket or run prefix (a retry, a later run, the A/B
# DAG and a manual rerun all find it), and needs only AddTags/ListTags, which the package's IAM policy
# already grants on its endpoints. SageMaker tag values allow letters, digits and _.:/=+-@ only, at
# most 256 characters (botocore TagValue), so the record is zlib-compressed JSON in URL-safe base64,
# split over numbered tags. A cleared record is written as empty values (no DeleteTags needed).
RELEASED_TAG_PREFIX = "sagemaker-vision:released-autoscaling:"
TAG_VALUE_MAX = 256
MAX_RECORD_TAGS = 16


def _record_keys(tags: Mapping[str, str]) -> list[str]:
    return sorted((k for k in tags if k.startswith(RELEASED_TAG_PREFIX)),
                  key=lambda k: int(k[len(RELEASED_TAG_PREFIX):]) if k[len(RELEASED_TAG_PREFIX):].isdigit() else -1)


def released_blob(tags: Mapping[str, str]) -> str:
    """The record's text, joined from the endpoint's numbered tags in order (``""``: none, or cleared)."""
    return "".join(tags[k] for k in _record_keys(tags))


def decode_released_blob(blob: str) -> dict[str, Any]:
    """The record :func:`released_record_tags` wrote; ValueError when it cannot be read."""
    try:
        return json.loads(zlib.decompress(base64.urlsafe_b64decode(blob)))
    except zlib.error as exc:
        raise ValueError(str(exc)) from exc


def released_record_tags(tags: Mapping[str, str], endpoint_arn: str, record: Mapping[str, Any]) -> list[dict[str, str]]:
    """The AddTags ``Tags`` that keep ``record`` on an endpoint now tagged ``tags`` (replacing any earlier one).

    Raises ConfigError when it does not fit (SageMaker allows 50 tags per resource).
    """
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
    return [{"Key": k, "Value": v} for k, v in values.items()]


def cleared_record_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """The AddTags ``Tags`` that empty the endpoint's released-autoscaling record (``[]``: it has none)."""
    return [{"Key": k, "Value": ""} for k, v in tags.items() if k.startswith(RELEASED_TAG_PREFIX) and v]
