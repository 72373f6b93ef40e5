"""Endpoints with a timeline, plus UpdateEndpoint (moto 5.2.5 answers it with HTTP 500).

CreateEndpoint: Creating -> InService (or Failed on an ``endpoint_failure`` rule, OutOfService on
an ``endpoint_out_of_service`` rule).
UpdateEndpoint: Updating while the OLD config keeps serving, then InService on the new config;
on an ``update_endpoint_failure`` rule it returns to InService on the old config with
FailureReason set, the way SageMaker rolls back a failed deployment; on an
``update_rollback_failure`` rule the rollback fails too: UpdateRollbackFailed, with the reason.
UpdateEndpointWeightsAndCapacities: moto applies the weights; we add the Updating period.

Timelines run on the emulated clock (``Extension.emulated_duration`` / ``real_seconds``):
creating an endpoint takes :data:`CREATE_EMULATED_S`; an update brings a new fleet up (the same
time) and then waits what its DeploymentConfig asks for: each traffic-shifting step's baking
period (``WaitIntervalInSeconds``) and the old fleet's ``TerminationWaitInSeconds``.

UpdateEndpoint enforces the deployment-guardrails rules (:func:`check_deployment`), each with the
ValidationException text closest to what the documentation states.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend

from .extension import Extension, state_of

# Statuses in which SageMaker routes invocations to the endpoint's current config.
SERVING = {"InService", "Updating", "SystemUpdating", "RollingBack"}

# Emulated seconds to bring a fleet up (instances, model download, health check). AWS publishes no
# typical figure; a round estimate of the several minutes endpoint creation takes.
CREATE_EMULATED_S = 480.0
# UpdateEndpointWeightsAndCapacities: a round estimate too (no new fleet when only weights change).
WEIGHTS_EMULATED_S = 120.0

GUARDRAILS_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails.html"
EXCLUSIONS_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-exclusions.html"


@dataclass
class EndpointRun:
    """The endpoint's current (or last) long-running operation."""

    endpoint: FakeEndpoint
    kind: str  # "create" | "update" | "weights"
    started: float
    duration: float  # real seconds
    fail_reason: str | None = None
    new_config: str | None = None
    done: bool = False
    # The status a failed run ends in: Failed (create), InService rolled back (update),
    # UpdateRollbackFailed (update whose rollback failed) or OutOfService.
    fail_status: str | None = None
    emulated_duration: float = 0.0
    # Wall-clock start; the run ends (LastModifiedTime) its emulated duration later, as on AWS.
    started_at: datetime | None = None


def _endpoint_arn(backend: SageMakerModelBackend, name: str) -> str:
    return FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)


def _config_arn(backend: SageMakerModelBackend, name: str) -> str:
    return FakeEndpointConfig.arn_formatter(name, backend.account_id, backend.region_name)


def create(ext: Extension, backend: SageMakerModelBackend, original: Any, kwargs: dict[str, Any]
           ) -> FakeEndpoint:
    """Moto's create (checks the config exists), then Creating for transition_seconds."""
    name = kwargs["endpoint_name"]
    if name in backend.endpoints:
        raise ValidationError(f'Cannot create already existing endpoint "{_endpoint_arn(backend, name)}".')
    endpoint = original(backend, **kwargs)
    with ext.lock:
        config = backend.endpoint_configs[endpoint.endpoint_config_name]
        endpoint.async_inference_config = config.async_inference_config
        endpoint.endpoint_status = "Creating"
        rule, status = ext.faults.take("endpoint_failure", name), "Failed"
        if rule is None:
            rule, status = ext.faults.take("endpoint_out_of_service", name), "OutOfService"
        emulated = ext.emulated_duration("endpoint_create", name, CREATE_EMULATED_S)
        run = EndpointRun(endpoint, "create", ext.now(), ext.real_seconds(emulated),
                          fail_reason=rule.reason if rule else None, fail_status=status if rule else None,
                          emulated_duration=emulated)
        run.started_at = endpoint.creation_time
        state_of(backend).endpoints[name] = run
        refresh(ext, backend, run)
    return endpoint


def update(ext: Extension, backend: SageMakerModelBackend, name: str, config_name: str,
           deployment_config: dict[str, Any] | None, retain_deployment_config: bool) -> str:
    """UpdateEndpoint: validate like SageMaker, then Updating on the old config."""
    with ext.lock:
        refresh_one(ext, backend, name)
        endpoint = backend.endpoints.get(name)
        if endpoint is None:
            raise ValidationError(f'Could not find endpoint "{_endpoint_arn(backend, name)}".')
        if config_name not in backend.endpoint_configs:
            arn = _config_arn(backend, config_name)
            raise ValidationError(f'Could not find endpoint configuration "{arn}".')
        if endpoint.endpoint_status in ("Failed", "UpdateRollbackFailed"):
            # "DeleteEndpoint is the only operation that can be performed on a failed endpoint" (DescribeEndpoint).
            raise ValidationError(
                f'Cannot update endpoint "{endpoint.arn}": it is {endpoint.endpoint_status}, and DeleteEndpoint is '
                "the only operation that can be performed on a failed endpoint."
            )
        if endpoint.endpoint_status != "InService":
            raise ValidationError(
                f'Cannot update in-progress endpoint "{endpoint.arn}" '
                f"(status {endpoint.endpoint_status}); wait until it is InService."
            )
        effective = deployment_config if deployment_config is not None else (
            endpoint.last_deployment_config if retain_deployment_config else None)
        new_variants = list(backend.endpoint_configs[config_name].production_variants or [])
        check_deployment(effective, endpoint.production_variants or [], new_variants,
                         current_config=endpoint.endpoint_config_name, new_config=config_name)
        current_config = backend.endpoint_configs.get(endpoint.endpoint_config_name)
        check_autoscaling(backend, name, list(current_config.production_variants or []) if current_config
                          else endpoint.production_variants or [], new_variants)
        endpoint.endpoint_status = "Updating"
        endpoint.last_modified_time = utcnow()
        endpoint.pending_deployment_summary = {
            "EndpointConfigName": config_name,
            "StartTime": endpoint.last_modified_time,
        }
        if deployment_config is not None:
            endpoint.last_deployment_config = deployment_config
        elif not retain_deployment_config:
            endpoint.last_deployment_config = None
        rule, status = ext.faults.take("update_rollback_failure", name), "UpdateRollbackFailed"
        if rule is None:
            rule, status = ext.faults.take("endpoint_out_of_service", name), "OutOfService"
        if rule is None:
            rule, status = ext.faults.take("update_endpoint_failure", name), "InService"
        default = ext.emulated_duration("endpoint_create", name, CREATE_EMULATED_S) + deployment_waiting(effective)
        emulated = ext.emulated_duration("endpoint_update", name, default)
        run = EndpointRun(endpoint, "update", ext.now(), ext.real_seconds(emulated),
                          fail_reason=rule.reason if rule else None, new_config=config_name,
                          fail_status=status if rule else None, emulated_duration=emulated)
        run.started_at = endpoint.last_modified_time
        state_of(backend).endpoints[name] = run
        refresh(ext, backend, run)
        return endpoint.arn


def update_weights(ext: Extension, backend: SageMakerModelBackend, original: Any,
                   kwargs: dict[str, Any]) -> str:
    """Moto applies the new weights and counts; the endpoint then shows Updating for a while."""
    name = kwargs["endpoint_name"]
    with ext.lock:
        refresh_one(ext, backend, name)
        endpoint = backend.endpoints.get(name)
        if endpoint is not None and endpoint.endpoint_status != "InService":
            raise ValidationError(
                f'Cannot update in-progress endpoint "{endpoint.arn}" (status {endpoint.endpoint_status}).'
            )
        arn = original(backend, **kwargs)
        endpoint = backend.endpoints[name]
        endpoint.endpoint_status = "Updating"
        endpoint.last_modified_time = utcnow()
        emulated = ext.emulated_duration("endpoint_update", name, WEIGHTS_EMULATED_S)
        run = EndpointRun(endpoint, "weights", ext.now(), ext.real_seconds(emulated), emulated_duration=emulated)
        run.started_at = endpoint.last_modified_time
        state_of(backend).endpoints[name] = run
        refresh(ext, backend, run)
        return arn


# DeleteEndpoint is refused while these run: "SystemUpdating: ... cannot be updated or deleted or re-scaled until
# it has completed" (DescribeEndpoint EndpointStatus); a Creating endpoint cannot be deleted until it is InService
# or Failed (aws/amazon-sagemaker-examples#3432, #3188).
UNDELETABLE = ("Creating", "SystemUpdating")


def check_deletable(ext: Extension, backend: SageMakerModelBackend, name: str) -> None:
    """Refuse DeleteEndpoint on an endpoint whose creation (or maintenance) is still running."""
    with ext.lock:
        refresh_one(ext, backend, name)
        endpoint = backend.endpoints.get(name)
        if endpoint is not None and endpoint.endpoint_status in UNDELETABLE:
            raise ValidationError(
                f'Cannot delete in-progress endpoint "{endpoint.arn}" (status {endpoint.endpoint_status}); '
                "wait until it is InService or Failed."
            )


def forget(ext: Extension, backend: SageMakerModelBackend, name: str) -> None:
    """Drop the timeline of a deleted endpoint."""
    with ext.lock:
        state_of(backend).endpoints.pop(name, None)


def refresh_one(ext: Extension, backend: SageMakerModelBackend, name: str) -> None:
    """Bring one endpoint up to date before it is read or invoked."""
    with ext.lock:
        run = state_of(backend).endpoints.get(name)
        if run is not None:
            refresh(ext, backend, run)


def refresh_all(ext: Extension, backend: SageMakerModelBackend) -> None:
    """Bring every endpoint of ``backend`` up to date."""
    with ext.lock:
        for run in list(state_of(backend).endpoints.values()):
            refresh(ext, backend, run)


def refresh(ext: Extension, backend: SageMakerModelBackend, run: EndpointRun) -> None:
    """Finish ``run`` once its time is up. Idempotent; caller holds ext.lock."""
    if run.done or ext.now() - run.started < run.duration:
        return
    run.done = True
    endpoint = run.endpoint
    if backend.endpoints.get(endpoint.endpoint_name) is not endpoint:
        return
    # Emulated timestamps: the operation ends its emulated duration after it started.
    endpoint.last_modified_time = (run.started_at + timedelta(seconds=run.emulated_duration)
                                   if run.started_at is not None else utcnow())
    if run.kind == "create":
        endpoint.endpoint_status = (run.fail_status or "Failed") if run.fail_reason else "InService"
        endpoint.failure_reason = run.fail_reason
    elif run.kind == "update":
        _finish_update(backend, endpoint, run, endpoint.last_modified_time)
    else:
        endpoint.endpoint_status = "InService"
    ext.counters[f"endpoint_{run.kind}_{'failed' if run.fail_reason else 'ok'}"] += 1


def _finish_update(backend: SageMakerModelBackend, endpoint: FakeEndpoint, run: EndpointRun,
                   at: datetime) -> None:
    endpoint.pending_deployment_summary = None
    endpoint.endpoint_status = "InService"
    config = backend.endpoint_configs.get(run.new_config or "")
    if run.fail_reason and run.fail_status in ("UpdateRollbackFailed", "OutOfService"):
        endpoint.endpoint_status = run.fail_status
        what = "rolling back to endpoint config" if run.fail_status == "UpdateRollbackFailed" else "serving"
        endpoint.failure_reason = (f"{run.fail_status} while {what} '{endpoint.endpoint_config_name}' "
                                   f"(deploying '{run.new_config}'): {run.fail_reason}")
        return
    if run.fail_reason or config is None:
        reason = run.fail_reason or f"endpoint config {run.new_config} was deleted during the update"
        endpoint.failure_reason = (
            f"Update failed and was rolled back to endpoint config "
            f"'{endpoint.endpoint_config_name}': {reason}"
        )
        return
    endpoint.endpoint_config_name = config.endpoint_config_name
    endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
    endpoint.data_capture_config = config.data_capture_config
    endpoint.async_inference_config = config.async_inference_config
    endpoint.failure_reason = None


# -- deployment guardrails ---------------------------------------------------------------------


def _is_serverless(variants: list[dict[str, Any]]) -> bool:
    return any(v.get("ServerlessConfig") or v.get("CurrentServerlessConfig") or v.get("DesiredServerlessConfig")
               for v in variants)


def _names(variants: list[dict[str, Any]]) -> list[str]:
    return sorted(str(v.get("VariantName")) for v in variants)


def _instances(variants: list[dict[str, Any]]) -> int:
    return sum(int(v.get("InitialInstanceCount") or 0) for v in variants)


def _size(size: dict[str, Any] | None, field: str, low_pct: int, high_pct: int, instances: int,
          doc: str) -> None:
    """CapacitySize as a share of the variant's instances, ``low_pct``-``high_pct`` percent."""
    if not size:
        raise ValidationError(f"{field} is required: {doc}")
    kind, value = size.get("Type"), int(size.get("Value") or 0)
    if kind == "CAPACITY_PERCENT":
        percent = float(value)
    elif instances:
        percent = 100.0 * value / instances
    else:
        return  # INSTANCE_COUNT on a fleet without an instance count: nothing to compare with
    if not low_pct <= percent <= high_pct:
        shown = f"{value}%" if kind == "CAPACITY_PERCENT" else f"{value} of {instances} instance(s)"
        raise ValidationError(f"{field} {shown} is out of range: {doc}")


def check_deployment(config: dict[str, Any] | None, current: list[dict[str, Any]], new: list[dict[str, Any]],
                     *, current_config: str, new_config: str) -> None:
    """Refuse what SageMaker's deployment guardrails refuse; ``config`` is the DeploymentConfig in effect.

    Sources: Deployment guardrails (:data:`GUARDRAILS_URL`): "Deployment guardrails only apply to
    Asynchronous inference and Real-time inference endpoint types"; Exclusions
    (:data:`EXCLUSIONS_URL`): "When doing a blue/green or rolling deployment, your new endpoint
    configuration must have the same variant name as the old endpoint configuration", and rolling
    deployments exclude "Serverless inference endpoints" and "Multi-variant inference endpoints";
    botocore's sagemaker model: DeploymentConfig ("Only one update policy should be used"),
    TrafficRoutingConfig (CanarySize "less than or equal to 50% of the variant's total instance
    count", LinearStepSize "10-50%"), RollingUpdatePolicy (MaximumBatchSize "between 5% to 50%"),
    BlueGreenUpdatePolicy (MaximumExecutionTimeoutInSeconds "should be larger than the total waiting
    time specified in TerminationWaitInSeconds and WaitIntervalInSeconds").
    An UpdateEndpoint without a DeploymentConfig is not a guardrails deployment: none of this applies.
    """
    if not config:
        return
    blue_green, rolling = config.get("BlueGreenUpdatePolicy"), config.get("RollingUpdatePolicy")
    if blue_green and rolling:
        raise ValidationError("DeploymentConfig: only one update policy can be used; specify either "
                              "BlueGreenUpdatePolicy or RollingUpdatePolicy, not both.")
    if _is_serverless(current) or _is_serverless(new):
        kind = "a rolling deployment" if rolling else "deployment guardrails (DeploymentConfig)"
        raise ValidationError(
            f"Endpoint config '{new_config}' is for a serverless endpoint, which does not support {kind}: "
            "deployment guardrails only apply to asynchronous and real-time inference endpoints. "
            "Update without a DeploymentConfig.")
    if _names(current) != _names(new):
        raise ValidationError(
            f"When doing a blue/green or rolling deployment, the new endpoint configuration must have the same "
            f"variant names as the old one: endpoint config '{new_config}' has {_names(new)}, endpoint config "
            f"'{current_config}' has {_names(current)}.")
    instances = _instances(new)
    if rolling:
        if len(current) > 1 or len(new) > 1:
            raise ValidationError(
                f"Rolling deployments are not supported for multi-variant inference endpoints: endpoint config "
                f"'{new_config}' has {len(new)} variant(s), the endpoint serves {len(current)}.")
        _size(rolling.get("MaximumBatchSize"), "RollingUpdatePolicy.MaximumBatchSize", 5, 50, instances,
              "value must be between 5% to 50% of the variant's total instance count")
        return
    if not blue_green:
        return  # AutoRollbackConfiguration alone: blue/green all at once by default
    routing = blue_green.get("TrafficRoutingConfiguration") or {}
    routing_type = routing.get("Type")
    if routing_type == "CANARY":
        _size(routing.get("CanarySize"), "TrafficRoutingConfiguration.CanarySize", 0, 50, instances,
              "value must be less than or equal to 50% of the variant's total instance count")
    elif routing_type == "LINEAR":
        _size(routing.get("LinearStepSize"), "TrafficRoutingConfiguration.LinearStepSize", 10, 50, instances,
              "value must be 10-50% of the variant's total instance count")
    timeout = blue_green.get("MaximumExecutionTimeoutInSeconds")
    waiting = int(routing.get("WaitIntervalInSeconds") or 0) + int(blue_green.get("TerminationWaitInSeconds") or 0)
    if timeout is not None and int(timeout) <= waiting:
        raise ValidationError(
            f"BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds {timeout} must be larger than the total "
            f"waiting time specified in TerminationWaitInSeconds and WaitIntervalInSeconds ({waiting}).")


AUTOSCALING_UPDATE_URL = "https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-scaling-update.html"


def check_autoscaling(backend: SageMakerModelBackend, endpoint_name: str, current: list[dict[str, Any]],
                      new: list[dict[str, Any]]) -> None:
    """Refuse an update that removes an autoscaled variant or changes its instance type.

    "If the update would change the instance type for any model that is a target for auto scaling,
    the update fails ... If you are trying to update the endpoint by calling the UpdateEndpoint API,
    the call fails"; deregistering is needed when "Removing a production variant configured for
    auto scaling" (:data:`AUTOSCALING_UPDATE_URL`). Changing only the model is allowed.
    """
    from moto.applicationautoscaling.models import applicationautoscaling_backends

    aas = applicationautoscaling_backends[backend.account_id][backend.region_name]
    prefix = f"endpoint/{endpoint_name}/variant/"
    scaled = {t.resource_id[len(prefix):] for t in aas.describe_scalable_targets("sagemaker", None, None)
              if t.resource_id.startswith(prefix)}
    wanted = {v.get("VariantName"): v for v in new}
    for variant in current:
        name = variant.get("VariantName")
        if name not in scaled:
            continue
        if name not in wanted:
            change = "removes it"
        elif variant.get("InstanceType") and wanted[name].get("InstanceType") != variant.get("InstanceType"):
            change = (f"changes its instance type from {variant.get('InstanceType')} to "
                      f"{wanted[name].get('InstanceType')}")
        else:
            continue
        raise ValidationError(
            f"Variant '{name}' of endpoint '{endpoint_name}' is registered with Application Auto Scaling and this "
            f"update {change}: delete its scaling policies and deregister the scalable target "
            f"'{prefix}{name}' before updating the endpoint.")


def deployment_waiting(config: dict[str, Any] | None) -> float:
    """Emulated seconds a DeploymentConfig waits: its baking periods, then TerminationWaitInSeconds."""
    blue_green = (config or {}).get("BlueGreenUpdatePolicy")
    if blue_green:
        routing = blue_green.get("TrafficRoutingConfiguration") or {}
        bake = float(routing.get("WaitIntervalInSeconds") or 0)
        steps = 1
        if routing.get("Type") == "CANARY":
            steps = 2
        elif routing.get("Type") == "LINEAR":
            size = routing.get("LinearStepSize") or {}
            steps = -(-100 // int(size["Value"])) if size.get("Type") == "CAPACITY_PERCENT" and size.get("Value") \
                else 2
        return steps * bake + float(blue_green.get("TerminationWaitInSeconds") or 0)
    rolling = (config or {}).get("RollingUpdatePolicy")
    if rolling:
        return float(rolling.get("WaitIntervalInSeconds") or 0)
    return 0.0
