"""Taking the endpoint lease in a task: the acquire operator, and the renewal every task of the section runs.

:class:`AcquireEndpointLeaseOperator` takes this run's lease, waiting deferred (with
``triggers.endpoint_lease.EndpointLeaseTrigger``) while another run holds it; :func:`renew` renews it
before a task acts on the endpoint and fails the task when it was lost. What the lease is, and
why: ``core.lease``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from airflow.sdk import BaseOperator

from sagemaker_vision.core.deployment import DEPLOY_DEFAULTS
from sagemaker_vision.core.lease import (
    DEPLOY_TASK_ID,
    LeaseLost,
    LeaseTarget,
    acquire_wait_seconds,
    lease_key,
    lease_ttl_for,
    owner_of,
)
from sagemaker_vision.core.task_ids import sibling_task_id
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks.endpoint_lease import EndpointLease
from sagemaker_vision.triggers.endpoint_lease import EndpointLeaseTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from sagemaker_vision.core.config import PipelineConfig

# What a task of a run locks: ``(context, aws_conn_id) -> LeaseTarget`` (the pipeline layer knows the run's config).
TargetOf = Callable[[Mapping[str, Any], "str | None"], LeaseTarget]


def _int_setting(operator: Any, name: str, context: Mapping[str, Any] | None) -> int:
    """An operator's integer setting as it will run (a template rendered with ``context``)."""
    value = getattr(operator, name)
    if isinstance(value, str) and context is not None and "{" in value:
        value = operator.render_template(value, context)
    return int(value)


def lease_ttl_seconds(cfg: PipelineConfig, deploy: Any = None, context: Mapping[str, Any] | None = None) -> int:
    """Seconds a lease lives without renewal (:func:`~sagemaker_vision.core.lease.lease_ttl_for`), with
    the settings of ``deploy``, the run's :class:`~sagemaker_vision.operators.deploy.DeployEndpointOperator`,
    as it will run (templates rendered with ``context``). ``deploy`` None: the operator's defaults
    (``core.deployment.DEPLOY_DEFAULTS``; a DAG without a deploy task).
    """
    if deploy is None:
        return lease_ttl_for(cfg, DEPLOY_DEFAULTS)
    return lease_ttl_for(cfg, {name: _int_setting(deploy, name, context) for name in DEPLOY_DEFAULTS})


def deploy_task(context: Mapping[str, Any]) -> Any:
    """The run's deploy task: ``deploy`` in the running task's task group (``train_and_deploy.deploy``)."""
    dag = context.get("dag")
    try:
        task_id = sibling_task_id(getattr(context.get("ti"), "task_id", None), DEPLOY_TASK_ID)
        return dag.get_task(task_id) if dag is not None and dag.has_task(task_id) else None
    except Exception:  # noqa: BLE001 - a context without a DAG (unit tests): the operator's defaults
        return None


def lease_for(target: LeaseTarget, context: Mapping[str, Any], s3_client: Any = None) -> EndpointLease:
    """This run's view of ``target``'s lease."""
    ti = context.get("ti")
    details = {"dag_id": context["dag_run"].dag_id, "run_id": context["dag_run"].run_id,
               "task_id": getattr(ti, "task_id", None), "try_number": getattr(ti, "try_number", None)}
    return EndpointLease(s3_client or aws.client("s3"), target.bucket, lease_key(target), owner_of(context),
                         ttl_seconds=target.ttl_seconds, endpoint_name=target.endpoint_name, details=details)


def renew(context: Mapping[str, Any], stage: str, target: LeaseTarget) -> None:
    """Renew this run's lease of ``target`` before ``stage`` acts on the endpoint; fail the task (no retry)
    if it was lost."""
    try:
        lease_for(target, context).renew(stage)
    except LeaseLost as exc:
        raise AirflowFailException(str(exc)) from None


class AcquireEndpointLeaseOperator(BaseOperator):
    """Take this run's endpoint lease, waiting deferred (no worker slot) while another run holds it.

    Returns ``{"uri", "owner", "ttl_seconds", "endpoint_name"}``. Waits at most
    :func:`acquire_wait_seconds` of the TTL, then fails naming the holder. Use as the setup of the
    critical section, with a release task as its teardown.

    :param target_of: ``(context, aws_conn_id) -> LeaseTarget``: what this run locks, and for how long
        (the pipeline's: ``pipeline.deploy.lease_target``).
    :param poll_seconds: Seconds between two reads of the lease while waiting.
    :param wait_seconds: Give up after this long (default: twice the lease TTL).
    """

    ui_color = "#f4d9a6"

    def __init__(self, *, target_of: TargetOf, poll_seconds: float = 30, wait_seconds: float | None = None,
                 aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_of = target_of
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        return self._attempt(context, deadline=None)

    def _attempt(self, context: Context, deadline: float | None) -> dict[str, Any]:
        target = self.target_of(context, self.aws_conn_id)
        lease = lease_for(target, context)
        if deadline is None:
            deadline = time.time() + (self.wait_seconds or acquire_wait_seconds(lease.ttl_seconds))
        held, view = lease.try_acquire()
        if held:
            return {"uri": lease.uri, "owner": lease.owner, "ttl_seconds": lease.ttl_seconds,
                    "endpoint_name": target.endpoint_name}
        remaining = deadline - time.time()
        if remaining <= 0:
            raise AirflowException(
                f"Endpoint {target.endpoint_name} stayed locked by another run: its lease {lease.uri} is "
                f"{view.describe()}. Nothing was deployed; rerun when that run has finished")
        self.log.info("Endpoint %s is locked: lease %s is %s. Waiting deferred up to %.0f s, reading it every %s s",
                      target.endpoint_name, lease.uri, view.describe(), remaining, self.poll_seconds)
        self.defer(
            trigger=EndpointLeaseTrigger(bucket=lease.bucket, key=lease.key, owner=lease.owner,
                                         poll_seconds=self.poll_seconds, deadline=deadline,
                                         aws_conn_id=self.aws_conn_id, region_name=target.region),
            method_name="execute_complete",
            kwargs={"deadline": deadline},
            timeout=timedelta(seconds=remaining + 2 * float(self.poll_seconds)),
        )
        raise AssertionError("defer() returned")  # pragma: no cover

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         deadline: float | None = None) -> dict[str, Any]:
        """The lease looked free (or the wait ran out): try again; a lost race waits again."""
        event = event or {}
        if event.get("status") == "error":
            raise AirflowException(f"Waiting for the endpoint lease failed: {event.get('message')}")
        # The deadline travels in the event too: dag.test() resumes with the event only, not the defer kwargs.
        deadline = event.get("deadline", deadline)
        return self._attempt(context, deadline=deadline if event.get("status") != "timeout" else 0)
