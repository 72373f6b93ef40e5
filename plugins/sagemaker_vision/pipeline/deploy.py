"""The deploy stage's task bodies: the quality gate, the model and endpoint config, autoscaling, the lease.

These know ``PipelineConfig``; the decisions are ``core.quality_gate`` / ``core.deployment`` /
``core.lease``'s, the AWS calls ``hooks.sagemaker`` / ``hooks.scaling`` / ``hooks.endpoint_lease``'s.
:func:`lease_target` says what a run locks (the pipeline DAGs' from their ``PipelineConfig``, the
manual DAGs' from their ``bucket`` and ``endpoint_name`` params); :func:`hold` and :func:`hold_hook`
renew the lease before a task acts; :func:`require_run_config_serving` keeps a test from measuring a
rolled-back endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from sagemaker_vision.core.ab_test import ab_endpoint_config_request
from sagemaker_vision.core.config import PipelineConfig
from sagemaker_vision.core.lease import DEPLOY_TASK_ID, LeaseTarget, endpoint_write_ttl_seconds
from sagemaker_vision.core.quality_gate import GateDecision, final_metric, quality_gate
from sagemaker_vision.core.task_ids import sibling_task_id
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks.base import connection_region
from sagemaker_vision.hooks.config import pipeline_config, run_params
from sagemaker_vision.hooks.sagemaker import (
    champion_model,
    describe_or_none,
    ensure_endpoint_config,
    ensure_model,
    production_map,
    variant_names,
)
from sagemaker_vision.hooks.scaling import apply_async_autoscaling, apply_autoscaling
from sagemaker_vision.operators.endpoint_lease import (
    AcquireEndpointLeaseOperator,
    deploy_task,
    lease_for,
    lease_ttl_seconds,
    renew,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)



# --------------------------------------------------------------------------------------------
# Quality gate, model, endpoint config, autoscaling
# --------------------------------------------------------------------------------------------


def gate_run(cfg: PipelineConfig, trained: Mapping[str, Any], sagemaker_client: Any) -> GateDecision:
    """The pipeline's ``quality_gate``: this run's model against the one serving ``cfg.endpoint_name``."""
    description = trained.get("Training", trained)
    decision = quality_gate(
        final_metric(description), production_map(sagemaker_client, cfg.endpoint_name),
        min_map=cfg.deploy.min_map, map_tolerance=cfg.deploy.map_tolerance,
    )
    log.info("Quality gate for %s: %s", description.get("TrainingJobName"), decision.reason)
    return decision


def create_model_for_run(requests: Mapping[str, Any], trained: Mapping[str, Any], sagemaker_client: Any) -> str:
    """Create (or reuse) this run's model (``requests["model"]``), tagged with the mAP it was validated at."""
    arn, created = ensure_model(sagemaker_client, requests["model"],
                                validation_map=final_metric(trained.get("Training", trained)))
    log.info("%s model %s", "Created" if created else "Reusing", arn)
    return arn


def create_endpoint_config_for_run(cfg: PipelineConfig, requests: Mapping[str, Any], sagemaker_client: Any) -> str:
    """Create (or reuse) the run's endpoint config; with ``challenger_weight`` an A/B config.

    The A/B config keeps the serving model as the Champion variant and adds this run's model
    as the Challenger with its share of traffic; ``<pipeline>.promote_challenger`` later shifts
    all traffic to it. The first deploy has no champion, so it serves the new model alone.
    """
    request = dict(requests["endpoint_config"])
    if cfg.endpoint.endpoint_type == "provisioned" and cfg.deploy.challenger_weight > 0:
        champion = champion_model(sagemaker_client, cfg.endpoint_name)
        if champion and champion != cfg.model_name:
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


def configure_autoscaling(cfg: PipelineConfig) -> dict[str, Any]:
    """Autoscaling after a deploy: target tracking on invocations (provisioned), or on the
    backlog with scale-to-zero (async). Serverless endpoints scale themselves."""
    if cfg.endpoint.endpoint_type == "serverless" or not cfg.deploy.autoscaling_max:
        reason = "serverless scales itself" if cfg.endpoint.endpoint_type == "serverless" else \
            "autoscaling_max_capacity is 0"
        log.info("No autoscaling for %s: %s", cfg.endpoint_name, reason)
        return {"autoscaling": None, "reason": reason}
    aas, sm = aws.client("application-autoscaling"), aws.client("sagemaker")
    result: dict[str, Any]
    if cfg.endpoint.endpoint_type == "async":
        result = apply_async_autoscaling(aas, aws.client("cloudwatch"), sm, cfg.endpoint_name,
                                         max_capacity=cfg.deploy.autoscaling_max)
    else:
        result = {}
        for variant in variant_names(sm, cfg.endpoint_name):
            result[variant] = apply_autoscaling(
                aas, sm, cfg.endpoint_name, variant, min_capacity=cfg.deploy.autoscaling_min,
                max_capacity=cfg.deploy.autoscaling_max,
                target_invocations_per_instance=cfg.deploy.target_invocations_per_instance,
            )
    log.info("Autoscaling on %s: %s", cfg.endpoint_name, result)
    return {"autoscaling": result}


def require_run_config_serving(context: Mapping[str, Any], stage: str, deploy_task_id: str | None = None) -> str:
    """Fail ``stage`` unless the endpoint serves the config this run deployed; returns that config.

    A test after a rollback must not measure the OLD config: clearing a failed ``load_test`` clears
    the rollback and the lease tasks after it but not ``deploy``, so without this check the smoke
    and load tests would pass against the config the rollback restored and the run would turn
    green. The config comes from the deploy's XCom (``pipeline().endpoint_config_name`` when it has
    none); the endpoint's from DescribeEndpoint.
    """
    cfg = pipeline_config(context)
    # None: the run's deploy, the task `deploy` of the running task's group (train_and_deploy.deploy).
    deploy_task_id = deploy_task_id or sibling_task_id(getattr(context["ti"], "task_id", None), DEPLOY_TASK_ID)
    deployed = context["ti"].xcom_pull(task_ids=deploy_task_id)
    expected = (deployed.get("endpoint_config_name") if isinstance(deployed, Mapping) else None) \
        or cfg.endpoint_config_name
    endpoint = describe_or_none(aws.client("sagemaker"), "endpoint", cfg.endpoint_name) or {}
    serving = endpoint.get("EndpointConfigName")
    if serving != expected:
        raise AirflowFailException(
            f"{stage} refuses to test endpoint {cfg.endpoint_name}: the endpoint serves {serving or 'nothing'}, not "
            f"this run's {expected} (rolled back?); clear `{deploy_task_id}` to deploy again")
    return expected


# --------------------------------------------------------------------------------------------
# The endpoint lease of a run
# --------------------------------------------------------------------------------------------


def lease_target(context: Mapping[str, Any], aws_conn_id: str | None = "aws_default") -> LeaseTarget:
    """The lease a task of this run takes: the pipeline DAGs' from their ``PipelineConfig`` (TTL from
    the run's deploy task); the manual DAGs' from their ``bucket`` and ``endpoint_name`` params and
    the connection's region."""
    params = run_params(context)
    if "pipeline_name" in params:
        cfg = pipeline_config(context, aws_conn_id)
        return LeaseTarget(cfg.bucket, cfg.region, cfg.endpoint_name,
                           lease_ttl_seconds(cfg, deploy_task(context), context))
    return LeaseTarget(params["bucket"], params.get("region") or connection_region(aws_conn_id),
                       params["endpoint_name"], endpoint_write_ttl_seconds())


def hold(context: Mapping[str, Any], stage: str) -> None:
    """Renew this run's lease before ``stage`` acts on the endpoint; fail the task (no retry) if it was lost."""
    renew(context, stage, lease_target(context))


def hold_hook(stage: str, *, serving_this_run: bool = False) -> Callable[[Context], None]:
    """An operator ``pre_execute`` hook that renews the lease before ``stage`` (a task id) runs.

    ``serving_this_run``: also check that the endpoint serves the config this run's deploy put there
    (:func:`require_run_config_serving`), for the smoke and load tests.
    """

    def renew_before(context: Context) -> None:
        hold(context, stage)
        if serving_this_run:
            require_run_config_serving(context, stage)

    return renew_before


def acquire_lease_operator(**kwargs: Any) -> AcquireEndpointLeaseOperator:
    """The run's ``AcquireEndpointLeaseOperator``: it locks what :func:`lease_target` names."""
    return AcquireEndpointLeaseOperator(target_of=lease_target, **kwargs)


def release_lease(context: Mapping[str, Any]) -> dict[str, Any]:
    """The teardown: release this run's lease if it still holds it (never another run's)."""
    lease = lease_for(lease_target(context), context)
    released = lease.release()
    return {"uri": lease.uri, "released": released, "now": lease.read().describe()}
