"""Tear an endpoint down, or prune what old runs left behind: the ``<pipeline>.teardown`` DAG's plan (pure).

Three steps, each testable on its own:

1. :func:`~sagemaker_vision.hooks.teardown.gather_inventory` (AWS reads only) describes the
   endpoint, the endpoint configs and models of its pipeline with their tags and creation times,
   the configs other endpoints use, its alarms and its Application Auto Scaling targets, into the
   plain :class:`Inventory` of this module.
2. :func:`plan_teardown` (pure, here) decides what to delete and why, and prices the standing cost
   that deleting the endpoint stops.
3. :func:`~sagemaker_vision.hooks.teardown.execute_plan` deletes, in an order that keeps the
   endpoint (whose tags anchor a rerun) until last; a resource that is already gone counts as
   done, so a rerun finishes a partial one.

Scope: only the package's own resources. The endpoint, and every config or model it uses, must be
tagged ``managed-by=sagemaker-vision`` (``core.naming.PACKAGE_TAG``), else nothing is deleted and the
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

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sagemaker_vision.core import costs
from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE, backlog_alarm_name, rollback_alarm_names
from sagemaker_vision.core.validate import ConfigError, validate_sagemaker_name

PIPELINE_TAG = "pipeline"
MONTH_DAYS = 30
# Deletion order: the endpoint last, so a rerun after a failure still finds its tags.
KIND_ORDER = ("alarm", "scaling-policy", "scalable-target", "endpoint-config", "model", "endpoint")
ENDPOINT_GONE_STATES = ("Deleting",)


class UnmanagedResourceError(ValueError):
    """A resource this teardown would touch lacks ``managed-by=sagemaker-vision``."""


def endpoint_alarm_names(endpoint_name: str) -> tuple[str, ...]:
    """The alarms that belong to an endpoint: blue/green rollback alarms and the async scale-out alarm.

    The first two are the rollback alarms (``core.naming.rollback_alarm_names``); they are found by name.
    """
    return (*rollback_alarm_names(endpoint_name), backlog_alarm_name(endpoint_name))


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

    endpoint = inventory.endpoint
    notes: list[str] = []
    actions: list[Action] = []
    configs = {c.name: c for c in inventory.configs}
    models = {m.name: m for m in inventory.models}

    # -- refusals first: nothing is planned for an endpoint that is not ours -----------------
    own_config: str | None = None
    own_models: tuple[str, ...] = ()
    if endpoint is not None:
        if not _managed(endpoint.tags):
            raise _refuse("endpoint", name, endpoint.tags, "refusing to delete it or anything it uses")
        own_config = endpoint.config_name
        config = configs.get(own_config or "")
        if config is not None and not _managed(config.tags):
            raise _refuse("endpoint config", config.name, config.tags, f"endpoint {name} uses it")
        own_models = tuple(config.model_names if config else ()) + tuple(
            v.model_name for v in endpoint.variants if v.model_name is not None)
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

    if endpoint_goes and endpoint is not None:
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
# The DAG's params
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

