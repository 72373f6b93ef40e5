"""The ``<pipeline>.teardown`` DAG's AWS side: read the inventory, execute the plan.

:func:`gather_inventory` reads (Describe/List calls only, bounded) everything the pure
:func:`~sagemaker_vision.core.teardown.plan_teardown` needs; :func:`execute_plan` deletes what the
plan deletes, the endpoint last, and counts a resource that is already gone as done, so a rerun
finishes a partial teardown. Both take the boto3 clients they call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision.core.autoscaling import SCALABLE_DIMENSION, SERVICE_NAMESPACE, is_serverless_variant
from sagemaker_vision.core.teardown import (
    MONTH_DAYS,
    PIPELINE_TAG,
    Action,
    ConfigState,
    EndpointState,
    EndpointUse,
    Inventory,
    ModelState,
    TeardownPlan,
    VariantState,
    approved_subset,
    endpoint_alarm_names,
)
from sagemaker_vision.core.validate import validate_sagemaker_name
from sagemaker_vision.hooks.sagemaker import all_tags, describe_or_none, is_not_found

log = logging.getLogger(__name__)

# Bounds on the listing loops: an account with more than this many of one kind is not ours to scan.
MAX_LISTED = 1000


def _bounded(pages: Iterable[Mapping[str, Any]], key: str, what: str) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = []
    for page in pages:
        items.extend(page.get(key, []))
        if len(items) > MAX_LISTED:
            raise RuntimeError(f"more than {MAX_LISTED} {what} listed; narrow the search before tearing down")
    return items


def _config_state(sagemaker: Any, name: str) -> tuple[ConfigState, dict[str, Any]] | None:
    described = describe_or_none(sagemaker, "endpoint_config", name)
    if described is None:
        return None
    models = tuple(v["ModelName"] for v in described.get("ProductionVariants", []) if v.get("ModelName"))
    state = ConfigState(name, described.get("CreationTime"), all_tags(sagemaker, described["EndpointConfigArn"]),
                        models)
    return state, described


def _model_state(sagemaker: Any, name: str, arn: str | None = None,
                 created: datetime | None = None) -> ModelState | None:
    if arn is None:
        described = describe_or_none(sagemaker, "model", name)
        if described is None:
            return None
        arn, created = described["ModelArn"], described.get("CreationTime")
    return ModelState(name, created, all_tags(sagemaker, arn))


def gather_inventory(sagemaker: Any, cloudwatch: Any, autoscaling: Any, endpoint_name: str) -> Inventory:
    """Everything :func:`plan_teardown` needs, read from AWS (Describe/List calls only, bounded)."""
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    endpoint: EndpointState | None = None
    configs: dict[str, ConfigState] = {}
    models: dict[str, ModelState] = {}
    described = describe_or_none(sagemaker, "endpoint", endpoint_name)
    if described is not None:
        config_variants: dict[str, Mapping[str, Any]] = {}
        own = _config_state(sagemaker, described["EndpointConfigName"])
        if own is not None:
            configs[own[0].name] = own[0]
            config_variants = {v["VariantName"]: v for v in own[1].get("ProductionVariants", [])}
        variants = []
        for v in described.get("ProductionVariants", []):
            spec = config_variants.get(v["VariantName"], {})
            variants.append(VariantState(
                name=v["VariantName"], model_name=spec.get("ModelName"), instance_type=spec.get("InstanceType"),
                instance_count=int(v.get("CurrentInstanceCount") or 0),
                serverless=is_serverless_variant(v) or is_serverless_variant(spec),
            ))
        endpoint = EndpointState(endpoint_name, described["EndpointStatus"], described.get("EndpointConfigName"),
                                 all_tags(sagemaker, described["EndpointArn"]), tuple(variants))
        for variant in variants:
            if variant.model_name and variant.model_name not in models:
                state = _model_state(sagemaker, variant.model_name)
                if state is not None:
                    models[state.name] = state
    pipeline = endpoint.tags.get(PIPELINE_TAG) if endpoint else endpoint_name

    if pipeline:
        # Package names are "<pipeline>-<stamp>"; NameContains narrows the listing on AWS (the
        # emulator ignores it for models), the name test keeps both the same, the tags decide.
        for summary in _bounded(sagemaker.get_paginator("list_endpoint_configs").paginate(NameContains=pipeline),
                                "EndpointConfigs", "endpoint configs"):
            config_name = summary["EndpointConfigName"]
            if pipeline in config_name and config_name not in configs:
                found = _config_state(sagemaker, config_name)
                if found is not None:
                    configs[config_name] = found[0]
        for summary in _bounded(sagemaker.get_paginator("list_models").paginate(NameContains=pipeline),
                                "Models", "models"):
            model_name = summary["ModelName"]
            if pipeline in model_name and model_name not in models:
                listed = _model_state(sagemaker, model_name, summary["ModelArn"], summary.get("CreationTime"))
                if listed is not None:  # always, given the ARN: nothing is described
                    models[model_name] = listed

    others = []
    for summary in _bounded(sagemaker.get_paginator("list_endpoints").paginate(), "Endpoints", "endpoints"):
        other = summary["EndpointName"]
        if other == endpoint_name:
            continue
        other_described = describe_or_none(sagemaker, "endpoint", other)
        if other_described is None:
            continue
        config_name = other_described.get("EndpointConfigName")
        config = describe_or_none(sagemaker, "endpoint_config", config_name) if config_name else None
        model_names = tuple(v["ModelName"] for v in (config or {}).get("ProductionVariants", []) if v.get("ModelName"))
        others.append(EndpointUse(other, config_name, model_names))

    alarm_names = endpoint_alarm_names(endpoint_name)
    alarms = cloudwatch.describe_alarms(AlarmNames=list(alarm_names)).get("MetricAlarms", [])
    prefix = f"endpoint/{endpoint_name}/variant/"
    targets = [t["ResourceId"] for t in _bounded(
        autoscaling.get_paginator("describe_scalable_targets").paginate(ServiceNamespace=SERVICE_NAMESPACE),
        "ScalableTargets", "scalable targets") if t["ResourceId"].startswith(prefix)
        and t["ScalableDimension"] == SCALABLE_DIMENSION]
    policies = []
    for target_id in targets:
        for policy in _bounded(autoscaling.get_paginator("describe_scaling_policies").paginate(
                ServiceNamespace=SERVICE_NAMESPACE, ResourceId=target_id), "ScalingPolicies", "scaling policies"):
            # The emulator matches ResourceId as a substring; keep exact matches only.
            if policy["ResourceId"] == target_id:
                policies.append((target_id, policy["PolicyName"]))
    return Inventory(
        endpoint_name=endpoint_name,
        endpoint=endpoint,
        configs=tuple(configs.values()),
        models=tuple(models.values()),
        other_endpoints=tuple(others),
        alarms=tuple(a["AlarmName"] for a in alarms if a["AlarmName"] in alarm_names),
        scalable_targets=tuple(targets),
        scaling_policies=tuple(policies),
    )


def _delete(action: Action, sagemaker: Any, cloudwatch: Any, autoscaling: Any) -> bool:
    """Delete one resource; False when it was already gone (a rerun after a partial teardown)."""
    target = {"ServiceNamespace": SERVICE_NAMESPACE, "ScalableDimension": SCALABLE_DIMENSION}
    try:
        if action.kind == "endpoint":
            sagemaker.delete_endpoint(EndpointName=action.name)
        elif action.kind == "endpoint-config":
            sagemaker.delete_endpoint_config(EndpointConfigName=action.name)
        elif action.kind == "model":
            sagemaker.delete_model(ModelName=action.name)
        elif action.kind == "alarm":
            # DeleteAlarms succeeds for a missing alarm, so check first to report honestly.
            if not cloudwatch.describe_alarms(AlarmNames=[action.name]).get("MetricAlarms"):
                return False
            cloudwatch.delete_alarms(AlarmNames=[action.name])
        elif action.kind == "scaling-policy":
            target_id, _, policy = action.name.rpartition(":")
            autoscaling.delete_scaling_policy(PolicyName=policy, ResourceId=target_id, **target)
        elif action.kind == "scalable-target":
            autoscaling.deregister_scalable_target(ResourceId=action.name, **target)
        else:
            raise ValueError(f"unknown resource kind {action.kind!r}")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        # Application Auto Scaling answers ObjectNotFoundException: "No scalable target found" / "No scaling
        # policy found" (SageMaker's own not-found rule is hooks.sagemaker.is_not_found).
        if (is_not_found(exc) or error.get("Code") == "ObjectNotFoundException"
                or "no scal" in error.get("Message", "").lower()):
            return False
        raise
    return True


def execute_plan(
    plan: TeardownPlan,
    sagemaker: Any,
    cloudwatch: Any,
    autoscaling: Any,
    *,
    approved: Mapping[str, Any] | None = None,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Delete what ``plan`` deletes (only what ``approved`` also lists, when given), endpoint last.

    Returns an XCom-safe summary: ``deleted``, ``already_gone``, ``skipped`` and the standing
    cost stopped (only counted when the endpoint itself was deleted by this run).
    """
    logger = logger or log
    skipped: list[Action]
    gone: list[Action]
    if approved is None:
        actions, skipped, gone = list(plan.deletions), [], []
    else:
        actions, skipped, gone = approved_subset(plan, approved)
        for action in gone:
            logger.info("%s %s was already gone", action.kind, action.name)
    deleted = []
    for action in actions:
        if _delete(action, sagemaker, cloudwatch, autoscaling):
            logger.info("Deleted %s %s (%s)", action.kind, action.name, action.reason)
            deleted.append(action)
        else:
            logger.info("%s %s was already gone", action.kind, action.name)
            gone.append(action)
    for action in skipped:
        logger.warning("Not deleting %s %s: %s", action.kind, action.name, action.reason)
    endpoint_deleted = any(a.kind == "endpoint" for a in deleted)
    stopped = plan.monthly_usd_stopped if endpoint_deleted else Decimal(0)
    logger.info("Standing cost stopped: $%s per %d days%s", f"{stopped:,.2f}", MONTH_DAYS,
                "".join(f"\n  {d}" for d in plan.cost_detail) if endpoint_deleted else "")
    return {
        "endpoint_name": plan.endpoint_name,
        "deleted": [asdict(a) for a in deleted],
        "already_gone": [asdict(a) for a in gone],
        "skipped": [asdict(a) for a in skipped],
        "monthly_usd_stopped": str(stopped),
        "cost_detail": list(plan.cost_detail) if endpoint_deleted else [],
    }


