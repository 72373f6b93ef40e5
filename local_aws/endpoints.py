"""Endpoints with a timeline, plus UpdateEndpoint (moto 5.2.5 answers it with HTTP 500).

CreateEndpoint: Creating -> InService (or Failed on an ``endpoint_failure`` rule).
UpdateEndpoint: Updating while the OLD config keeps serving, then InService on the new config;
on an ``update_endpoint_failure`` rule it returns to InService on the old config with
FailureReason set, the way SageMaker rolls back a failed deployment.
UpdateEndpointWeightsAndCapacities: moto applies the weights; we add the Updating period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend

from .extension import Extension, state_of

# Statuses in which SageMaker routes invocations to the endpoint's current config.
SERVING = {"InService", "Updating", "SystemUpdating", "RollingBack"}


@dataclass
class EndpointRun:
    """The endpoint's current (or last) long-running operation."""

    endpoint: FakeEndpoint
    kind: str  # "create" | "update" | "weights"
    started: float
    duration: float
    fail_reason: str | None = None
    new_config: str | None = None
    done: bool = False


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
        rule = ext.faults.take("endpoint_failure", name)
        run = EndpointRun(endpoint, "create", ext.now(), ext.transition_seconds,
                          fail_reason=rule.reason if rule else None)
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
        if endpoint.endpoint_status != "InService":
            raise ValidationError(
                f'Cannot update in-progress endpoint "{endpoint.arn}" '
                f"(status {endpoint.endpoint_status}); wait until it is InService."
            )
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
        rule = ext.faults.take("update_endpoint_failure", name)
        run = EndpointRun(endpoint, "update", ext.now(), ext.transition_seconds,
                          fail_reason=rule.reason if rule else None, new_config=config_name)
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
        run = EndpointRun(endpoint, "weights", ext.now(), ext.transition_seconds)
        state_of(backend).endpoints[name] = run
        refresh(ext, backend, run)
        return arn


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
    endpoint.last_modified_time = utcnow()
    if run.kind == "create":
        endpoint.endpoint_status = "Failed" if run.fail_reason else "InService"
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
