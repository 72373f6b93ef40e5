"""The deploy operator: make an endpoint serve a config without downtime, idempotently.

The decisions are ``core.deployment``'s, the AWS reads ``hooks.sagemaker``'s, the wait's budget
``core.endpoint_waits``'s; ``operators.rollback`` puts the config that served before back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf

from sagemaker_vision.core import autoscaling
from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.deployment import (
    NEEDS_A_HUMAN,
    as_int,
    as_tags,
    check_bake_covers_alarms,
    deployment_config,
    endpoint_type_of,
    int_in_range,
    plan_deploy,
    rollback_alarm_names,
    rollback_alarm_requests,
    serving_variant,
    sorted_variant_names,
    update_request,
    validate_alarm_names,
    validate_policy,
)
from sagemaker_vision.core.endpoint_waits import ENDPOINT_SETTLED
from sagemaker_vision.core.validate import ConfigError, validate_sagemaker_name
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import scaling
from sagemaker_vision.hooks.sagemaker import (
    SageMakerVisionHook,
    ensure_rollback_alarms,
)
from sagemaker_vision.links.sagemaker import SageMakerEndpointLink, persist_links
from sagemaker_vision.triggers.endpoint import ENDPOINT_STATUS_QUERIES, EndpointTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DeployEndpointOperator(AwsBaseOperator[SageMakerVisionHook]):
    """Make ``endpoint_name`` serve ``endpoint_config_name`` without downtime; idempotent.

    * No endpoint: CreateEndpoint (with ``tags``), then wait for InService.
    * InService on ``endpoint_config_name`` already: nothing to do (a rerun), logged.
    * Creating / Updating towards ``endpoint_config_name`` (an earlier try's operation): wait for
      it. Any other operation in flight: wait for it, then deploy.
    * InService on another config: UpdateEndpoint, a blue/green update with
      ``deployment_policy`` (``core.deployment.deployment_config``) and ``RetainDeploymentConfig=False``,
      after putting the rollback alarms (provisioned endpoints only; serverless updates have no
      guardrails).
    * InService on a config whose variant names differ (a Challenger joins or leaves): AWS refuses
      a DeploymentConfig then ("When doing a blue/green or rolling deployment, your new endpoint
      configuration must have the same variant name as the old", Deployment guardrails,
      Exclusions), so the update is sent without one: SageMaker still brings the new fleet up
      before it shifts traffic and deletes the old one ("there is no availability loss",
      UpdateEndpoint), but with no baking period and no alarm rollback. The log says so.
    * Failed / UpdateRollbackFailed / OutOfService: refused with the FailureReason.

    Waiting ends at once, with the status and the ``FailureReason``, when the endpoint reaches
    Failed, UpdateRollbackFailed, OutOfService or Deleting. Its budget is
    :func:`~sagemaker_vision.core.endpoint_waits.endpoint_wait_budget` for the operation and the
    DeploymentConfig actually sent, unless ``max_ingestion_time`` is given.

    Succeeds only when the endpoint is InService on ``endpoint_config_name``. A failed or
    rolled-back update fails the task with the FailureReason and names the config that still
    serves: the old model keeps serving. Returns ``{"endpoint_name", "endpoint_config_name",
    "previous_config", "action"}`` with action ``created``, ``updated`` or ``unchanged``.

    :param endpoint_name: The endpoint to create or update (templated).
    :param endpoint_config_name: The endpoint config it should serve; must exist (templated).
    :param tags: Tags for a new endpoint, a dict or a list of ``{"Key", "Value"}`` (templated).
        An update leaves the endpoint's tags alone.
    :param deployment_policy: ``all_at_once``, ``canary`` or ``linear`` (templated).
    :param canary_percent: canary: share of the new fleet that takes traffic first, 1-50.
    :param linear_step_percent: linear: share of the new fleet per step, 10-50.
    :param wait_interval_s: Baking period after each traffic shift, 0-3600 s.
    :param termination_wait_s: How long the old fleet is kept after the shift, 0-3600 s.
    :param maximum_execution_timeout_s: Deployment timeout, 600-28800 s.
    :param rollback_alarms: Put ``<endpoint>-5xx`` and ``<endpoint>-latency`` alarms and roll back on them.
    :param alarm_names: More existing CloudWatch alarms that roll the deployment back (templated).
    :param alarm_error_threshold: 5xx responses per period that trip ``<endpoint>-5xx``.
    :param alarm_latency_threshold_ms: Average ModelLatency that trips ``<endpoint>-latency``.
    :param alarm_period_s: Alarm period, whole minutes.
    :param alarm_evaluation_periods: Breaching periods in a row that trip an alarm.
    :param check_interval: Seconds between two status checks while waiting (a number above 0).
    :param max_ingestion_time: Give up waiting after this many seconds (the endpoint operation
        goes on; clear the task to resume waiting). Default: ``endpoint_wait_budget`` of the
        operation, from AWS's limits and the DeploymentConfig sent.
    :param deferrable: Wait in the triggerer (:class:`~sagemaker_vision.triggers.endpoint.EndpointTrigger`).
    :param record_previous: Before an UpdateEndpoint, tag the endpoint ``sagemaker-vision:deployed-over`` =
        ``<endpoint_config_name>/<config it replaces>`` (``hooks.sagemaker.deployed_over``), what a rollback returns to.
    """

    aws_hook_class = SageMakerVisionHook
    template_fields: Sequence[str] = aws_template_fields(
        "endpoint_name",
        "endpoint_config_name",
        "tags",
        "deployment_policy",
        "canary_percent",
        "linear_step_percent",
        "wait_interval_s",
        "termination_wait_s",
        "maximum_execution_timeout_s",
        "alarm_names",
        "alarm_latency_threshold_ms",
    )
    template_fields_renderers = {"tags": "json", "alarm_names": "json"}
    ui_color = "#c5d9ef"
    operator_extra_links = (SageMakerEndpointLink(),)

    def __init__(
        self,
        *,
        endpoint_name: str,
        endpoint_config_name: str,
        tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        deployment_policy: str = "all_at_once",
        canary_percent: int = 10,
        linear_step_percent: int = 20,
        wait_interval_s: int = 300,
        termination_wait_s: int = 120,
        maximum_execution_timeout_s: int = 3600,
        rollback_alarms: bool = True,
        alarm_names: Sequence[str] = (),
        alarm_error_threshold: float = 1,
        alarm_latency_threshold_ms: float = 1000.0,
        alarm_period_s: int = 60,
        alarm_evaluation_periods: int = 2,
        check_interval: int = 30,
        max_ingestion_time: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        record_previous: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.record_previous = record_previous
        self.endpoint_name = endpoint_name
        self.endpoint_config_name = endpoint_config_name
        self.tags = tags
        self.deployment_policy = deployment_policy
        self.canary_percent = canary_percent
        self.linear_step_percent = linear_step_percent
        self.wait_interval_s = wait_interval_s
        self.termination_wait_s = termination_wait_s
        self.maximum_execution_timeout_s = maximum_execution_timeout_s
        self.rollback_alarms = rollback_alarms
        self.alarm_names = alarm_names
        self.alarm_error_threshold = alarm_error_threshold
        self.alarm_latency_threshold_ms = alarm_latency_threshold_ms
        self.alarm_period_s = alarm_period_s
        self.alarm_evaluation_periods = alarm_evaluation_periods
        self.check_interval = check_interval
        self.max_ingestion_time = max_ingestion_time
        self.deferrable = deferrable

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        params = super()._hook_parameters
        if params["config"] is None:
            params["config"] = aws.botocore_config()
        return params

    # -- validation, before any AWS call ---------------------------------------------------
    def _validate(self) -> None:
        """Everything that does not depend on the endpoint type; raises ConfigError naming the field."""
        validate_sagemaker_name(self.endpoint_name, "endpoint_name")
        validate_sagemaker_name(self.endpoint_config_name, "endpoint_config_name")
        as_tags(self.tags)
        validate_policy(self.deployment_policy)
        validate_alarm_names(self.alarm_names)
        for field_name in ("canary_percent", "linear_step_percent", "wait_interval_s", "termination_wait_s",
                           "maximum_execution_timeout_s"):
            setattr(self, field_name, as_int(getattr(self, field_name), field_name))
        if self.rollback_alarms:
            rollback_alarm_requests(
                self.endpoint_name, error_threshold=self.alarm_error_threshold,
                latency_threshold_ms=self.alarm_latency_threshold_ms, period_s=self.alarm_period_s,
                evaluation_periods=self.alarm_evaluation_periods,
            )
        if isinstance(self.check_interval, bool) or not isinstance(self.check_interval, int | float) or \
                not math.isfinite(self.check_interval) or self.check_interval <= 0:
            raise ConfigError("check_interval", f"must be a number of seconds above 0, got {self.check_interval!r}")
        if self.max_ingestion_time is not None:
            int_in_range(self.max_ingestion_time, "max_ingestion_time", 1, 10 * 86_400)

    def _deployment_for(self, endpoint_type: str) -> dict[str, Any]:
        """The DeploymentConfig an update of this endpoint type sends (``{}``: none); raises ConfigError."""
        own = self.rollback_alarms and endpoint_type == "provisioned"
        alarms = (rollback_alarm_names(self.endpoint_name) if own else []) + validate_alarm_names(self.alarm_names)
        config = deployment_config(
            self.deployment_policy, endpoint_type=endpoint_type, canary_percent=self.canary_percent,
            linear_step_percent=self.linear_step_percent, wait_interval_s=self.wait_interval_s,
            termination_wait_s=self.termination_wait_s,
            maximum_execution_timeout_s=self.maximum_execution_timeout_s, alarm_names=alarms,
        )
        if own and config:
            check_bake_covers_alarms(self.wait_interval_s, self.alarm_period_s, self.alarm_evaluation_periods)
        return config

    def _budget(self, operation: str, variants: Sequence[Mapping[str, Any]],
                deployment: Mapping[str, Any] | None) -> int:
        """Seconds to wait for ``operation``: ``max_ingestion_time``, else AWS's limits for it."""
        if self.max_ingestion_time is not None:
            return int(self.max_ingestion_time)
        window = self.alarm_period_s * self.alarm_evaluation_periods if self.rollback_alarms else 0
        return waits.endpoint_wait_budget(operation, variants, deployment or None, alarm_window_s=window)

    # -- execution --------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        persist_links(context, self, self.hook, (SageMakerEndpointLink,), endpoint_name=self.endpoint_name)
        return self._deploy(context, replans=0)

    def _deploy(self, context: Context, replans: int) -> dict[str, Any]:
        # Also after a deferral: the operator is rebuilt and its templated fields re-rendered.
        self._validate()
        config = self.hook.find("endpoint_config", self.endpoint_config_name)
        if config is None:
            raise AirflowFailException(
                f"endpoint_config_name: endpoint config {self.endpoint_config_name} does not exist in "
                f"{self.hook.conn_region_name}; create it before deploying"
            )
        variants = config.get("ProductionVariants") or []
        # Checked on every run, a first deploy included, so a policy the endpoint type cannot
        # have fails now rather than on the first update.
        deployment = self._deployment_for(endpoint_type_of(variants))
        endpoint = self.hook.find("endpoint", self.endpoint_name)
        plan = plan_deploy(endpoint, self.endpoint_config_name)
        self.log.info("Deploy %s -> %s: %s (%s)", self.endpoint_config_name, self.endpoint_name, plan.action,
                      plan.reason)
        if plan.action == "refuse":
            raise (AirflowException if plan.retryable else AirflowFailException)(plan.reason)
        if plan.action == "unchanged":
            self._settle_released(endpoint or {})  # an earlier try released autoscaling, then timed out
            return self._result(plan.previous_config, "unchanged")
        if plan.action == "wait" and replans >= 2:
            raise AirflowException(f"{plan.reason}; still busy after {replans} waits, try again later")
        if plan.action == "create":
            self.hook.conn.create_endpoint(EndpointName=self.endpoint_name,
                                           EndpointConfigName=self.endpoint_config_name, Tags=as_tags(self.tags))
            self.log.info("Creating endpoint %s with %s", self.endpoint_name, self.endpoint_config_name)
            budget = self._budget("create", variants, None)
        elif plan.action == "update":
            # Every rule is checked, and the request decided, before anything is released.
            request = self._update_request(variants, endpoint or {}, deployment)
            record = self._release_autoscaling(endpoint or {}, variants)
            try:
                if self.record_previous and plan.previous_config and endpoint and endpoint.get("EndpointArn"):
                    self.hook.record_deployed_over(endpoint["EndpointArn"], self.endpoint_config_name,
                                                   plan.previous_config)
                sent = self._send_update(request, variants)
            except Exception:
                if record:  # refused or not sent: the old variants still serve, so does their autoscaling
                    scaling.restore_after_failed_update(self._autoscaling_client(), self.hook.conn, self.endpoint_name,
                                                        cast(str, (endpoint or {}).get("EndpointArn")), record)
                raise
            budget = self._budget("update", variants, sent)
        elif plan.result_action == "created":  # an earlier try's CreateEndpoint
            budget = self._budget("create", variants, None)
        else:  # an update in flight, ours or another's: it may carry any DeploymentConfig
            running = (endpoint or {}).get("LastDeploymentConfig") or deployment
            budget = max(self._budget("update", variants, running), self._budget("update", variants, deployment))
        return self._wait(context, action=plan.result_action or "wait", previous_config=plan.previous_config,
                          replans=replans, budget=budget)

    def _autoscaling_client(self) -> Any:
        return aws.client("application-autoscaling", self.aws_conn_id, self.region_name)

    def _release_autoscaling(self, endpoint: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]
                             ) -> dict[str, Any]:
        """Release the autoscaling of serving variants this update removes or moves to another instance type.

        AWS fails such an UpdateEndpoint ("Update endpoints that use auto scaling"). What is released
        (the scalable target and every policy, in full) is first recorded in the endpoint's tags
        (``hooks.scaling.record_released``), so that it outlives this try: a failure or rollback puts it
        back on the old variants, success puts it back on the variants of the same name that the new
        config keeps (:meth:`_settle_released`). Returns the record (``{}``: nothing released).
        """
        if not endpoint.get("EndpointConfigName") or not endpoint.get("EndpointArn"):
            return {}
        names = [str(v.get("VariantName")) for v in endpoint.get("ProductionVariants") or []
                 if not autoscaling.is_serverless_variant(v)]
        ids = {autoscaling.resource_id(self.endpoint_name, name): name for name in names}
        if not ids:
            return {}
        aas = self._autoscaling_client()
        targets = aas.describe_scalable_targets(ServiceNamespace=autoscaling.SERVICE_NAMESPACE, ResourceIds=list(ids),
                                                ScalableDimension=autoscaling.SCALABLE_DIMENSION).get("ScalableTargets")
        scaled = {ids[t["ResourceId"]] for t in targets or [] if t.get("ResourceId") in ids}
        if not scaled:
            return {}
        current = self.hook.conn.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        conflicts = [n for n in autoscaling.autoscaling_conflicts(current.get("ProductionVariants") or [], variants)
                     if n in scaled]
        if not conflicts:
            return {}
        self.log.warning("Variants %s of %s are autoscaled and this update removes them or changes their instance "
                         "type: AWS fails such an update, so their autoscaling is released first (%s)",
                         conflicts, self.endpoint_name, autoscaling.AUTOSCALING_UPDATE_URL)
        arn = endpoint["EndpointArn"]
        earlier = scaling.recorded_released(self.hook.conn, arn)
        record: dict[str, Any] = {"from_config": endpoint["EndpointConfigName"], "to_config": self.endpoint_config_name,
                                  "variants": dict(earlier.get("variants") or {})}

        def keep(released: dict[str, Any]) -> None:
            record["variants"] = {**released, **record["variants"]}  # an earlier try's record wins
            scaling.record_released(self.hook.conn, arn, record)

        scaling.release_autoscaling(aas, self.endpoint_name, conflicts, record=keep)
        return record if record["variants"] else {}

    def _settle_released(self, endpoint: Mapping[str, Any], legacy: Mapping[str, Any] | None = None) -> None:
        """After the wait: put back what this deploy (any try of it) released, as the outcome allows.

        InService on the requested config: onto the variants of the same name it kept (a removed
        variant's settings are not restored: a warning names them). Rolled back, failed, or on another
        config: :func:`~sagemaker_vision.hooks.scaling.restore_after_failed_update` (restores on the old
        variants if they serve again, otherwise warns and keeps the record for a rerun).
        """
        arn = endpoint.get("EndpointArn")
        record = scaling.recorded_released(self.hook.conn, arn) if arn else {}
        if not record and legacy:  # a deferral made before the record moved to the endpoint's tags
            record = {"from_config": None, "to_config": self.endpoint_config_name, "variants": dict(legacy)}
        if not record.get("variants") or record.get("to_config") != self.endpoint_config_name:
            return
        aas = self._autoscaling_client()
        serving = endpoint.get("EndpointConfigName")
        if endpoint.get("EndpointStatus") == "InService" and serving == self.endpoint_config_name:
            kept = {v.get("VariantName") for v in endpoint.get("ProductionVariants") or []}
            variants = record["variants"]
            gone = sorted(set(variants) - kept)
            if gone:
                self.log.warning("The autoscaling released from %s is not restored: %s no longer has those variants "
                                 "(the pipeline's autoscaling task scales the new ones). It was: %s", gone, serving,
                                 {v: variants[v] for v in gone})
            restored = scaling.restore_released(aas, self.hook.conn, self.endpoint_name,
                                                {v: variants[v] for v in variants if v in kept})
            if all(restored.values()) and arn:
                scaling.clear_released(self.hook.conn, arn)
            return
        if record.get("from_config") is None:
            record = {**record, "from_config": serving}  # legacy: the old config is whatever serves again
        scaling.restore_after_failed_update(aas, self.hook.conn, self.endpoint_name, cast(str, arn), record)

    def _update_request(self, variants: Sequence[Mapping[str, Any]], endpoint: Mapping[str, Any],
                        deployment: dict[str, Any]) -> dict[str, Any]:
        """The UpdateEndpoint kwargs (:func:`~sagemaker_vision.core.deployment.update_request`), decided before
        anything is written; the log says why when the DeploymentConfig is left out."""
        current = endpoint.get("ProductionVariants") or []
        request, dropped = update_request(self.endpoint_name, self.endpoint_config_name, variants, current, deployment)
        if dropped == "variant_names":
            self.log.warning(
                "%s serves variants %s and %s has %s: SageMaker refuses a %s deployment (blue/green with a "
                "DeploymentConfig) when the variant names change, so this update is sent without one. SageMaker "
                "still provisions the new fleet before shifting all traffic to it (no downtime), but there is no "
                "baking period and no alarm rollback for this step", self.endpoint_name, sorted_variant_names(current),
                self.endpoint_config_name, sorted_variant_names(variants), self.deployment_policy)
        elif dropped == "serverless":
            self.log.warning(
                "%s runs serverless now: SageMaker's deployment guardrails do not apply to serverless endpoints, so "
                "the update to %s is sent without a DeploymentConfig (blue/green all at once, no baking period, no "
                "alarm rollback)", self.endpoint_name, self.endpoint_config_name)
        return request

    def _send_update(self, request: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rollback alarms (when the DeploymentConfig uses them), then UpdateEndpoint; returns the DeploymentConfig
        sent (``{}``: none)."""
        deployment = request.get("DeploymentConfig") or {}
        if deployment:
            if self.rollback_alarms:
                ensure_rollback_alarms(
                    aws.client("cloudwatch", self.aws_conn_id, self.region_name), self.endpoint_name,
                    serving_variant(variants)["VariantName"], error_threshold=self.alarm_error_threshold,
                    latency_threshold_ms=self.alarm_latency_threshold_ms, period_s=self.alarm_period_s,
                    evaluation_periods=self.alarm_evaluation_periods,
                )
            routing = deployment["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
            alarms = [a["AlarmName"] for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
            self.log.info("Blue/green update of %s: %s, baking %s s, rollback alarms %s", self.endpoint_name,
                          routing["Type"], routing["WaitIntervalInSeconds"], alarms)
        elif endpoint_type_of(variants) == "serverless":
            self.log.info("Blue/green update of serverless endpoint %s, all at once: SageMaker has no baking "
                          "period or alarm rollback for serverless endpoints", self.endpoint_name)
        self.hook.conn.update_endpoint(**request)
        self.log.info("Updating endpoint %s to %s; the old config serves until the new one is ready",
                      self.endpoint_name, self.endpoint_config_name)
        return deployment

    def _wait(self, context: Context, *, action: str, previous_config: str | None, replans: int,
              budget: int) -> dict[str, Any]:
        # What was released is in the endpoint's tags, not here: it survives a timeout and a retry.
        kwargs: dict[str, Any] = {"action": action, "previous_config": previous_config, "replans": replans,
                                  "budget": budget}
        attempts = waits.max_attempts(budget, self.check_interval)
        self.log.info("Waiting up to %d s for %s (%d checks %s s apart)", budget, self.endpoint_name, attempts,
                      self.check_interval)
        if self.deferrable:
            self.defer(
                trigger=EndpointTrigger(
                    endpoint_name=self.endpoint_name,
                    waiter_delay=self.check_interval,
                    waiter_max_attempts=attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    # The package retry policy in the triggerer too, as for the worker's hook.
                    botocore_config=self.botocore_config or aws.BOTOCORE_CONFIG,
                ),
                method_name="execute_complete",
                kwargs=kwargs,
                # A backstop only: the trigger gives up first and reports a timeout event.
                timeout=timedelta(seconds=budget + 2 * self.check_interval),
            )
        try:
            wait(
                waiter=self.hook.get_waiter(ENDPOINT_SETTLED),
                waiter_delay=self.check_interval,
                waiter_max_attempts=attempts,
                args={"EndpointName": self.endpoint_name},
                failure_message=f"Endpoint {self.endpoint_name} failed",
                status_message=f"Endpoint {self.endpoint_name} not in service yet",
                status_args=ENDPOINT_STATUS_QUERIES,
            )
        except WaiterTerminalFailure:
            pass  # a failed state: _finish raises with the status and the FailureReason
        except WaiterMaxAttemptsError:
            raise AirflowException(self._timeout_message(budget)) from None
        return self._finish(context, **kwargs)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, action: str = "updated",
                         previous_config: str | None = None, replans: int = 0,
                         budget: int | None = None, released: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: success only when InService on the requested config."""
        event = validate_execute_complete_event(event)
        if event.get("job_name", self.endpoint_name) != self.endpoint_name:
            raise AirflowException(f"Trigger event is for {event.get('job_name')}, not {self.endpoint_name}")
        if event["status"] == "timeout":
            raise AirflowException(self._timeout_message(budget))
        if event["status"] not in ("success", "failed"):
            raise AirflowException(f"Waiting for endpoint {self.endpoint_name} failed ({event['status']}): "
                                   f"{event.get('message')}")
        return self._finish(context, action=action, previous_config=previous_config, replans=replans, budget=budget,
                            released=released)

    def _finish(self, context: Context, *, action: str, previous_config: str | None,
                replans: int, budget: int | None = None, released: dict[str, Any] | None = None) -> dict[str, Any]:
        if action == "wait":  # another operation was in flight: now deploy ours
            return self._deploy(context, replans=replans + 1)
        endpoint = self.hook.find("endpoint", self.endpoint_name)
        if endpoint is None:
            raise AirflowException(f"Endpoint {self.endpoint_name} disappeared while deploying "
                                   f"{self.endpoint_config_name}")
        status, serving = endpoint["EndpointStatus"], endpoint.get("EndpointConfigName")
        if status not in waits.IN_FLIGHT_STATES:
            self._settle_released(endpoint, released)
        if status == "InService" and serving == self.endpoint_config_name:
            self.log.info("Endpoint %s is InService on %s (%s; previously %s)", self.endpoint_name, serving, action,
                          previous_config)
            return self._result(previous_config, action)
        reason = endpoint.get("FailureReason") or "no FailureReason given"
        if status == "InService":
            raise AirflowFailException(
                f"Deploying {self.endpoint_config_name} to endpoint {self.endpoint_name} failed and was rolled "
                f"back: {reason}. The endpoint still serves {serving}: the old model keeps serving."
            )
        if status in waits.FAILED_STATES:
            raise AirflowFailException(
                f"Deploying {self.endpoint_config_name}: {waits.failure_message(endpoint)}"
                + (". SageMaker allows only DeleteEndpoint on it" if status in NEEDS_A_HUMAN else "")
            )
        raise AirflowException(f"Endpoint {self.endpoint_name} is {status} on {serving}, expected InService on "
                               f"{self.endpoint_config_name}")

    def _timeout_message(self, budget: int | None) -> str:
        return (f"Endpoint {self.endpoint_name} was not InService on {self.endpoint_config_name} after "
                f"{budget if budget is not None else 'the budgeted'} s; it is still in progress on AWS (the "
                "operation goes on): clear this task, and the retry resumes waiting on the same operation")

    def _result(self, previous_config: str | None, action: str) -> dict[str, Any]:
        return {
            "endpoint_name": self.endpoint_name,
            "endpoint_config_name": self.endpoint_config_name,
            "previous_config": previous_config,
            "action": action,
        }
