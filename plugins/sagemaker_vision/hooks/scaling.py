"""Application Auto Scaling and CloudWatch calls for endpoints: apply, release and restore autoscaling.

Thin over the pure requests of :mod:`sagemaker_vision.core.autoscaling` and
:mod:`sagemaker_vision.core.async_inference`; every function takes the boto3 clients it calls.

* :func:`apply_autoscaling`: target tracking on a real-time variant (``RegisterScalableTarget``
  and ``PutScalingPolicy`` are upserts, so applying twice is harmless).
* :func:`apply_async_autoscaling`: scale-to-zero for an asynchronous endpoint (both policies and
  the scale-from-zero alarm).
* :func:`release_autoscaling` / :func:`restore_autoscaling` / :func:`restore_released`: AWS fails an
  UpdateEndpoint that removes an autoscaled variant or changes its instance type, so its
  autoscaling is released first and put back afterwards; what was released is kept in the
  endpoint's tags meanwhile (:func:`record_released`, :func:`recorded_released`,
  :func:`clear_released`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sagemaker_vision.core.async_inference import (
    DEFAULT_TARGET_BACKLOG_PER_INSTANCE,
    async_autoscaling_requests,
    check_async_endpoint,
    scale_from_zero_alarm,
)
from sagemaker_vision.core.autoscaling import (
    AUTOSCALING_UPDATE_URL,
    INVOCATIONS_METRIC,
    POLICY_CONFIGS,
    RELEASED_TAG_PREFIX,
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    check_autoscalable,
    cleared_record_tags,
    decode_released_blob,
    released_blob,
    released_record_tags,
    resource_id,
    target_tracking_policy,
)
from sagemaker_vision.core.naming import VARIANT_NAME, invocations_policy_name
from sagemaker_vision.hooks.sagemaker import all_tags

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Applying autoscaling
# --------------------------------------------------------------------------------------------


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
# Autoscaling around an UpdateEndpoint
# --------------------------------------------------------------------------------------------


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


def recorded_released(sagemaker_client: Any, endpoint_arn: str) -> dict[str, Any]:
    """The record :func:`record_released` keeps on the endpoint (``{}``: none, or cleared)."""
    blob = released_blob(all_tags(sagemaker_client, endpoint_arn))
    if not blob:
        return {}
    try:
        return decode_released_blob(blob)
    except ValueError as exc:
        log.warning("Endpoint %s carries an unreadable released-autoscaling record (%s): %s", endpoint_arn, exc, blob)
        return {}


def record_released(sagemaker_client: Any, endpoint_arn: str, record: Mapping[str, Any]) -> None:
    """Keep ``record`` in the endpoint's tags (replacing any earlier one). Raises ConfigError, before
    anything is written, when it does not fit (SageMaker allows 50 tags per resource)."""
    tags = released_record_tags(all_tags(sagemaker_client, endpoint_arn), endpoint_arn, record)
    sagemaker_client.add_tags(ResourceArn=endpoint_arn, Tags=tags)


def clear_released(sagemaker_client: Any, endpoint_arn: str) -> None:
    """Empty the endpoint's released-autoscaling record (if it has one)."""
    tags = cleared_record_tags(all_tags(sagemaker_client, endpoint_arn))
    if tags:
        sagemaker_client.add_tags(ResourceArn=endpoint_arn, Tags=tags)


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


