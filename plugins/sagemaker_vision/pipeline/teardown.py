"""The ``<pipeline>.teardown`` DAG's task bodies (thin: params -> clients -> the plan and its execution).

The DAG imports this module inside its tasks, so it may import Airflow and the hooks at the top.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from sagemaker_vision.core import costs
from sagemaker_vision.core.teardown import TeardownParams, TeardownPlan, UnmanagedResourceError, plan_teardown
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.base import client
from sagemaker_vision.hooks.teardown import execute_plan, gather_inventory

log = logging.getLogger(__name__)


def _clients(aws_conn_id: str | None) -> tuple[Any, Any, Any]:
    return (client("sagemaker", aws_conn_id), client("cloudwatch", aws_conn_id),
            client("application-autoscaling", aws_conn_id))


def _plan(params: TeardownParams, clients: Sequence[Any]) -> TeardownPlan:
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


