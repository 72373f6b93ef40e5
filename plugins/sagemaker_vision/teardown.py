"""Tear an endpoint down, or prune what old runs left behind: the ``endpoint_teardown`` DAG's logic.

Three steps, each testable on its own:

1. :func:`gather_inventory` (AWS reads only) describes the endpoint, the endpoint configs and
   models of its pipeline with their tags and creation times, the configs other endpoints use,
   its alarms and its Application Auto Scaling targets.
2. :func:`plan_teardown` (pure) decides what to delete and why, and prices the standing cost
   that deleting the endpoint stops.
3. :func:`execute_plan` deletes, in an order that keeps the endpoint (whose tags anchor a rerun)
   until last; a resource that is already gone counts as done, so a rerun finishes a partial one.

Scope: only the package's own resources. The endpoint, and every config or model it uses, must be
tagged ``managed-by=sagemaker-vision`` (``requests.PACKAGE_TAG``), else nothing is deleted and the
error names the resource. Other configs and models are considered only when they carry that tag
and the endpoint's ``pipeline`` tag; a config or model that another endpoint uses is never deleted.

What goes, given ``delete_endpoint`` and ``keep_models``:

* the endpoint (when ``delete_endpoint``), its rollback alarms ``<endpoint>-5xx`` and
  ``<endpoint>-latency``, the async scale-from-zero alarm, and its scalable targets and policies;
* endpoint configs: all the pipeline's unused ones when the endpoint goes; when it stays, those
  whose every model is being deleted (a config without its model cannot be deployed);
* models: all but the newest ``keep_models`` of the pipeline, never one in use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision import costs
from sagemaker_vision.config import ConfigError, validate_sagemaker_name
from sagemaker_vision.requests import PACKAGE_TAG, PACKAGE_TAG_VALUE
from sagemaker_vision.scaling import SCALABLE_DIMENSION, SERVICE_NAMESPACE, backlog_alarm_name, is_serverless_variant

log = logging.getLogger(__name__)

PIPELINE_TAG = "pipeline"
MONTH_DAYS = 30
# Bounds on the listing loops: an account with more than this many of one kind is not ours to scan.
MAX_LISTED = 1000
# Deletion order: the endpoint last, so a rerun after a failure still finds its tags.
KIND_ORDER = ("alarm", "scaling-policy", "scalable-target", "endpoint-config", "model", "endpoint")
ENDPOINT_GONE_STATES = ("Deleting",)


class UnmanagedResourceError(ValueError):
    """A resource this teardown would touch lacks ``managed-by=sagemaker-vision``."""


def endpoint_alarm_names(endpoint_name: str) -> tuple[str, ...]:
    """The alarms that belong to an endpoint: blue/green rollback alarms and the async scale-out alarm.

    The first two are the names ``deploy.ensure_rollback_alarms`` puts; they are found by name.
    """
    return f"{endpoint_name}-5xx", f"{endpoint_name}-latency", backlog_alarm_name(endpoint_name)


# --------------------------------------------------------------------------------------------
# What AWS told us (plain data; built by gather_inventory, or by hand in tests)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantState:
    """One production variant as it runs: model, instance type and count, or serverless."""

    name: str
    model_name: str | None = None
    instance_type: str | None = None
    instance_count: int = 0
    serverless: bool = False


@dataclass(frozen=True)
class EndpointState:
    name: str
    status: str
    config_name: str | None
    tags: Mapping[str, str]
    variants: tuple[VariantState, ...] = ()


@dataclass(frozen=True)
class ConfigState:
    name: str
    created: datetime | None
    tags: Mapping[str, str]
    model_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelState:
    name: str
    created: datetime | None
    tags: Mapping[str, str]


@dataclass(frozen=True)
class EndpointUse:
    """Another endpoint, and the config and models it runs: these must survive."""

    endpoint_name: str
    config_name: str | None
    model_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    endpoint_name: str
    endpoint: EndpointState | None
    configs: tuple[ConfigState, ...] = ()
    models: tuple[ModelState, ...] = ()
    other_endpoints: tuple[EndpointUse, ...] = ()
    alarms: tuple[str, ...] = ()
    scalable_targets: tuple[str, ...] = ()
    scaling_policies: tuple[tuple[str, str], ...] = ()  # (resource id, policy name)


# --------------------------------------------------------------------------------------------
# The plan (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One resource and what happens to it: ``delete`` or ``keep``, and why."""

    kind: str
    name: str
    reason: str
    delete: bool = True


@dataclass(frozen=True)
class TeardownPlan:
    endpoint_name: str
    pipeline: str | None
    delete_endpoint: bool
    keep_models: int
    actions: tuple[Action, ...]
    monthly_usd_stopped: Decimal
    cost_detail: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def deletions(self) -> tuple[Action, ...]:
        """What to delete, in execution order (the endpoint last)."""
        return tuple(sorted((a for a in self.actions if a.delete), key=lambda a: (KIND_ORDER.index(a.kind), a.name)))

    @property
    def kept(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not a.delete)

    def to_dict(self) -> dict[str, Any]:
        """XCom-safe: money as a string, actions as dicts."""
        return {
            "endpoint_name": self.endpoint_name,
            "pipeline": self.pipeline,
            "delete_endpoint": self.delete_endpoint,
            "keep_models": self.keep_models,
            "delete": [asdict(a) for a in self.deletions],
            "keep": [asdict(a) for a in self.kept],
            "monthly_usd_stopped": str(self.monthly_usd_stopped),
            "cost_detail": list(self.cost_detail),
            "notes": list(self.notes),
        }

    def format(self) -> str:
        """Lines for the task log: every decision with its reason, then the money."""
        lines = [f"Teardown plan for endpoint {self.endpoint_name} (pipeline {self.pipeline or '?'}):"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  DELETE {a.kind} {a.name}: {a.reason}" for a in self.deletions] or ["  nothing to delete"]
        lines += [f"  keep   {a.kind} {a.name}: {a.reason}" for a in self.kept]
        lines.append(f"  standing cost stopped: ${self.monthly_usd_stopped:,.2f} per {MONTH_DAYS} days")
        lines += [f"    {d}" for d in self.cost_detail]
        return "\n".join(lines)


def _managed(tags: Mapping[str, str]) -> bool:
    return tags.get(PACKAGE_TAG) == PACKAGE_TAG_VALUE


def _refuse(kind: str, name: str, tags: Mapping[str, str], why: str) -> UnmanagedResourceError:
    shown = ", ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "no tags"
    return UnmanagedResourceError(
        f"{kind} {name} is not tagged {PACKAGE_TAG}={PACKAGE_TAG_VALUE} ({shown}); {why}. Nothing was "
        "deleted: this teardown only touches resources the sagemaker-vision package created"
    )


def _newest_first(items: Iterable[ModelState]) -> list[ModelState]:
    # Unknown creation times sort as oldest; ties broken by name so the plan is deterministic.
    return sorted(items, key=lambda m: (m.created is not None, m.created or datetime.min, m.name), reverse=True)


def standing_cost(
    endpoint: EndpointState, *, region: str = costs.DEFAULT_REGION, prices: costs.PriceTable | None = None
) -> tuple[Decimal, tuple[str, ...]]:
    """Monthly standing cost of an endpoint's variants (USD, detail lines), from the price table.

    Provisioned variants cost ``realtime_endpoint_monthly_cost`` by instance type and current
    count; serverless variants have no standing cost (billed per request); a variant at zero
    instances (async, scaled in) costs nothing while it stays there. Unpriced types are named.
    """
    total, detail = Decimal(0), []
    for variant in endpoint.variants:
        label = f"variant {variant.name}"
        if variant.serverless:
            detail.append(f"{label}: serverless, $0.00 standing cost (billed per request only)")
            continue
        if variant.instance_count <= 0:
            detail.append(f"{label}: 0 instances running, $0.00 standing cost")
            continue
        if not variant.instance_type:
            detail.append(f"{label}: {variant.instance_count} instances of an unknown type (its endpoint config "
                          "is gone): not priced")
            continue
        usd, note = None, ""
        for where in dict.fromkeys((region, costs.DEFAULT_REGION)):
            try:
                usd = costs.realtime_endpoint_monthly_cost(variant.instance_type, variant.instance_count,
                                                           MONTH_DAYS, prices=prices, region=where)
                note = "" if where == region else f" ({where} prices; {region} is not in the price table)"
                break
            except ValueError as exc:
                note = f": not priced ({exc})"
        if usd is None:
            detail.append(f"{label}: {variant.instance_count} x {variant.instance_type}{note}")
            continue
        total += usd
        detail.append(f"{label}: {variant.instance_count} x {variant.instance_type} = ${usd:,.2f} "
                      f"per {MONTH_DAYS} days{note}")
    return total, tuple(detail)


def plan_teardown(
    inventory: Inventory,
    *,
    keep_models: int,
    delete_endpoint: bool,
    region: str = costs.DEFAULT_REGION,
    prices: costs.PriceTable | None = None,
) -> TeardownPlan:
    """Decide what to delete and why; raises UnmanagedResourceError before anything is decided.

    Pure: everything comes from ``inventory``. See the module docstring for the rules.
    """
    name = validate_sagemaker_name(inventory.endpoint_name, "endpoint_name")
    if isinstance(keep_models, bool) or not isinstance(keep_models, int) or keep_models < 0:
        raise ConfigError("keep_models", f"must be a whole number >= 0, got {keep_models!r}")
    if not isinstance(delete_endpoint, bool):
        raise ConfigError("delete_endpoint", f"must be true or false, got {delete_endpoint!r}")

    endpoint, notes, actions = inventory.endpoint, [], []
    configs = {c.name: c for c in inventory.configs}
    models = {m.name: m for m in inventory.models}

    # -- refusals first: nothing is planned for an endpoint that is not ours -----------------
    own_config, own_models = None, ()
    if endpoint is not None:
        if not _managed(endpoint.tags):
            raise _refuse("endpoint", name, endpoint.tags, "refusing to delete it or anything it uses")
        own_config = endpoint.config_name
        config = configs.get(own_config or "")
        if config is not None and not _managed(config.tags):
            raise _refuse("endpoint config", config.name, config.tags, f"endpoint {name} uses it")
        own_models = tuple(config.model_names if config else ()) + tuple(
            v.model_name for v in endpoint.variants if v.model_name)
        for model_name in dict.fromkeys(own_models):
            model = models.get(model_name)
            if model is not None and not _managed(model.tags):
                raise _refuse("model", model_name, model.tags, f"endpoint {name} uses it")
        pipeline = endpoint.tags.get(PIPELINE_TAG)
        if not pipeline:
            notes.append(f"endpoint {name} has no {PIPELINE_TAG!r} tag: only the config and models it uses "
                         "are considered")
    else:
        # Pipelines name their endpoint after themselves unless told otherwise (params.endpoint_name).
        pipeline = name
        notes.append(f"endpoint {name} does not exist (already deleted?); considering the configs and models "
                     f"tagged {PIPELINE_TAG}={name}")

    def ours(tags: Mapping[str, str], resource: str, referenced: Iterable[str]) -> bool:
        return _managed(tags) and (resource in referenced or (pipeline is not None
                                                              and tags.get(PIPELINE_TAG) == pipeline))

    # -- the endpoint and what hangs off it ---------------------------------------------------
    endpoint_goes = endpoint is not None and delete_endpoint
    if endpoint is not None:
        if not delete_endpoint:
            actions.append(Action("endpoint", name, "delete_endpoint is false", delete=False))
        elif endpoint.status in ENDPOINT_GONE_STATES:
            notes.append(f"endpoint {name} is already {endpoint.status}")
        else:
            actions.append(Action("endpoint", name, f"{endpoint.status}; delete_endpoint is true"))
    if delete_endpoint:
        for alarm in inventory.alarms:
            actions.append(Action("alarm", alarm, f"watches endpoint {name}, which is being deleted"))
        for target_id, policy in inventory.scaling_policies:
            actions.append(Action("scaling-policy", f"{target_id}:{policy}", "scales a variant of the endpoint"))
        for target_id in inventory.scalable_targets:
            actions.append(Action("scalable-target", target_id, "a variant of the endpoint"))
    elif inventory.alarms:
        notes.append(f"keeping alarms {', '.join(inventory.alarms)}: the endpoint stays")

    # -- what must survive: configs and models in use by endpoints that stay --------------------
    in_use_configs: dict[str, str] = {}
    in_use_models: dict[str, str] = {}
    survivors = list(inventory.other_endpoints)
    if endpoint is not None and not delete_endpoint:
        survivors.append(EndpointUse(name, own_config, own_models))
    for use in survivors:
        if use.config_name:
            in_use_configs.setdefault(use.config_name, use.endpoint_name)
        for model_name in use.model_names:
            in_use_models.setdefault(model_name, use.endpoint_name)

    # -- models: the newest keep_models of the pipeline stay ------------------------------------
    candidates = [m for m in models.values() if ours(m.tags, m.name, own_models)]
    doomed_models: set[str] = set()
    for rank, model in enumerate(_newest_first(candidates)):
        if model.name in in_use_models:
            actions.append(Action("model", model.name, f"in use by endpoint {in_use_models[model.name]}", False))
        elif rank < keep_models:
            actions.append(Action("model", model.name, f"among the newest {keep_models} (keep_models)", False))
        else:
            when = model.created.isoformat() if model.created else "at an unknown time"
            why = "keep_models is 0" if keep_models == 0 else f"older than the newest {keep_models}"
            doomed_models.add(model.name)
            actions.append(Action("model", model.name, f"created {when}; {why}"))

    # -- endpoint configs -----------------------------------------------------------------------
    for config in sorted(configs.values(), key=lambda c: c.name):
        if not ours(config.tags, config.name, (own_config,) if own_config else ()):
            continue
        if config.name in in_use_configs:
            actions.append(Action("endpoint-config", config.name, f"in use by endpoint {in_use_configs[config.name]}",
                                  False))
        elif endpoint_goes or (endpoint is None and delete_endpoint):
            actions.append(Action("endpoint-config", config.name, "not in use by any endpoint that stays"))
        elif config.model_names and all(m in doomed_models or m not in models for m in config.model_names):
            actions.append(Action("endpoint-config", config.name, "not in use, and its models are being deleted"))
        else:
            kept = [m for m in config.model_names if m not in doomed_models and m in models]
            actions.append(Action("endpoint-config", config.name, f"its model {', '.join(kept)} is kept", False))

    if endpoint_goes:
        monthly, detail = standing_cost(endpoint, region=region, prices=prices)
    else:
        monthly = Decimal(0)
        detail = ("no endpoint is deleted; configs and models have no standing cost",)
    return TeardownPlan(
        endpoint_name=name, pipeline=pipeline, delete_endpoint=delete_endpoint, keep_models=keep_models,
        actions=tuple(actions), monthly_usd_stopped=monthly, cost_detail=detail, notes=tuple(notes),
    )


def approved_subset(
    fresh: TeardownPlan, approved: Mapping[str, Any]
) -> tuple[list[Action], list[Action], list[Action]]:
    """(delete now, approved but now protected, approved but already gone).

    The execute step re-plans from a fresh inventory and deletes only what the logged, approved
    plan listed *and* the fresh plan still deletes: nothing unseen goes, and nothing that became
    protected meanwhile (say, now in use by a new endpoint) goes either. An approved resource the
    fresh plan does not mention at all no longer exists (e.g. an earlier try deleted it).
    """
    listed = [(a["kind"], a["name"]) for a in approved.get("delete", [])]
    deletions = {(a.kind, a.name): a for a in fresh.deletions}
    kept = {(a.kind, a.name): a for a in fresh.kept}
    now = [a for a in fresh.deletions if (a.kind, a.name) in set(listed)]
    protected = [Action(kind, name, f"no longer deleted: {kept[(kind, name)].reason}", False)
                 for kind, name in listed if (kind, name) in kept]
    gone = [Action(kind, name, "approved; already gone", False)
            for kind, name in listed if (kind, name) not in kept and (kind, name) not in deletions]
    return now, protected, gone


# --------------------------------------------------------------------------------------------
# AWS: reading the inventory, executing the plan
# --------------------------------------------------------------------------------------------


def is_not_found(exc: ClientError) -> bool:
    """SageMaker answers a missing resource with ValidationException "Could not find ..."."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "").lower()
    return code in ("ResourceNotFound", "ObjectNotFoundException", "ResourceNotFoundException") or (
        code in ("ValidationException", "ValidationError")
        and any(s in message for s in ("could not find", "not found", "does not exist"))
    )


def _maybe(call: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return call(**kwargs)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def _tags(sagemaker: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in sagemaker.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
    return tags


def _bounded(pages: Iterable[Mapping[str, Any]], key: str, what: str) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = []
    for page in pages:
        items.extend(page.get(key, []))
        if len(items) > MAX_LISTED:
            raise RuntimeError(f"more than {MAX_LISTED} {what} listed; narrow the search before tearing down")
    return items


def _config_state(sagemaker: Any, name: str) -> tuple[ConfigState, dict[str, Any]] | None:
    described = _maybe(sagemaker.describe_endpoint_config, EndpointConfigName=name)
    if described is None:
        return None
    models = tuple(v["ModelName"] for v in described.get("ProductionVariants", []) if v.get("ModelName"))
    state = ConfigState(name, described.get("CreationTime"), _tags(sagemaker, described["EndpointConfigArn"]), models)
    return state, described


def _model_state(sagemaker: Any, name: str, arn: str | None = None,
                 created: datetime | None = None) -> ModelState | None:
    if arn is None:
        described = _maybe(sagemaker.describe_model, ModelName=name)
        if described is None:
            return None
        arn, created = described["ModelArn"], described.get("CreationTime")
    return ModelState(name, created, _tags(sagemaker, arn))


def gather_inventory(sagemaker: Any, cloudwatch: Any, autoscaling: Any, endpoint_name: str) -> Inventory:
    """Everything :func:`plan_teardown` needs, read from AWS (Describe/List calls only, bounded)."""
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    endpoint, configs, models = None, {}, {}
    described = _maybe(sagemaker.describe_endpoint, EndpointName=endpoint_name)
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
                                 _tags(sagemaker, described["EndpointArn"]), tuple(variants))
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
                state = _config_state(sagemaker, config_name)
                if state is not None:
                    configs[config_name] = state[0]
        for summary in _bounded(sagemaker.get_paginator("list_models").paginate(NameContains=pipeline),
                                "Models", "models"):
            model_name = summary["ModelName"]
            if pipeline in model_name and model_name not in models:
                models[model_name] = _model_state(sagemaker, model_name, summary["ModelArn"],
                                                  summary.get("CreationTime"))

    others = []
    for summary in _bounded(sagemaker.get_paginator("list_endpoints").paginate(), "Endpoints", "endpoints"):
        other = summary["EndpointName"]
        if other == endpoint_name:
            continue
        other_described = _maybe(sagemaker.describe_endpoint, EndpointName=other)
        if other_described is None:
            continue
        config_name = other_described.get("EndpointConfigName")
        config = _maybe(sagemaker.describe_endpoint_config, EndpointConfigName=config_name) if config_name else None
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
        # Application Auto Scaling says "No scalable target found" / "No scaling policy found".
        if is_not_found(exc) or "no scal" in error.get("Message", "").lower():
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


# --------------------------------------------------------------------------------------------
# The DAG's tasks (thin: params -> clients -> the functions above)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TeardownParams:
    endpoint_name: str
    keep_models: int
    delete_endpoint: bool
    dry_run: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TeardownParams:
        name = validate_sagemaker_name((params.get("endpoint_name") or "").strip(), "endpoint_name")
        keep = params.get("keep_models", 2)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ConfigError("keep_models", f"must be a whole number >= 0, got {keep!r}")
        flags = {}
        for flag, default in (("delete_endpoint", True), ("dry_run", False)):
            value = params.get(flag, default)
            if not isinstance(value, bool):
                raise ConfigError(flag, f"must be true or false, got {value!r}")
            flags[flag] = value
        return cls(name, keep, **flags)


def _clients(aws_conn_id: str | None) -> tuple[Any, Any, Any]:
    from sagemaker_vision import aws

    return (aws.client("sagemaker", aws_conn_id), aws.client("cloudwatch", aws_conn_id),
            aws.client("application-autoscaling", aws_conn_id))


def _plan(params: TeardownParams, clients: Sequence[Any]) -> TeardownPlan:
    from airflow.providers.common.compat.sdk import AirflowFailException

    sagemaker, cloudwatch, autoscaling = clients
    inventory = gather_inventory(sagemaker, cloudwatch, autoscaling, params.endpoint_name)
    try:
        return plan_teardown(inventory, keep_models=params.keep_models, delete_endpoint=params.delete_endpoint,
                             region=sagemaker.meta.region_name or costs.DEFAULT_REGION)
    except UnmanagedResourceError as exc:
        # Retrying cannot make a resource ours.
        raise AirflowFailException(str(exc)) from None


def plan_task(params: Mapping[str, Any], *, aws_conn_id: str | None = "aws_default") -> dict[str, Any]:
    """The ``plan`` task: inventory, plan, log it; return it for XCom (and for approval)."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    try:
        checked = TeardownParams.from_params(params)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from None
    plan = _plan(checked, _clients(aws_conn_id))
    log.info("%s%s", plan.format(), "\nDry run: nothing will be deleted." if checked.dry_run else "")
    return {**plan.to_dict(), "dry_run": checked.dry_run}


def execute_task(approved: Mapping[str, Any], params: Mapping[str, Any], *,
                 aws_conn_id: str | None = "aws_default") -> dict[str, Any]:
    """The ``execute`` task: re-plan, delete what the approved plan listed; skipped on a dry run."""
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

    try:
        checked = TeardownParams.from_params(params)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from None
    if checked.dry_run:
        raise AirflowSkipException("dry_run is true: nothing deleted (the plan task's log shows what would be)")
    if approved.get("endpoint_name") != checked.endpoint_name:
        raise AirflowFailException(f"the approved plan is for {approved.get('endpoint_name')!r}, "
                                   f"not {checked.endpoint_name!r}")
    clients = _clients(aws_conn_id)
    plan = _plan(checked, clients)
    return execute_plan(plan, *clients, approved=approved)


__all__ = [
    "Action",
    "ConfigState",
    "EndpointState",
    "EndpointUse",
    "Inventory",
    "ModelState",
    "TeardownParams",
    "TeardownPlan",
    "UnmanagedResourceError",
    "VariantState",
    "approved_subset",
    "execute_plan",
    "execute_task",
    "gather_inventory",
    "is_not_found",
    "plan_task",
    "plan_teardown",
    "endpoint_alarm_names",
    "standing_cost",
]
