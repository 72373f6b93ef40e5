"""The endpoint lease in tasks (operators.endpoint_lease): the TTL from the deploy task's settings, and the
acquire operator that defers while another run holds the lease."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.deployment import DEPLOY_DEFAULTS, deployment_config, rollback_alarm_names
from sagemaker_vision.core.lease import TTL_MARGIN_S, LeaseTarget, acquire_wait_seconds
from sagemaker_vision.operators import endpoint_lease as ol
from sagemaker_vision.operators.deploy import DeployEndpointOperator
from sagemaker_vision.triggers.endpoint_lease import EndpointLeaseTrigger
from tests.unit.core.test_lease import cfg
from tests.unit.hooks.test_endpoint_lease import KEY, FakeS3, lease


def test_ttl_covers_the_longest_stage_of_the_section():
    serverless = ol.lease_ttl_seconds(cfg())
    assert serverless >= waits.endpoint_wait_budget("update", [{}]) + TTL_MARGIN_S
    canary = ol.lease_ttl_seconds(cfg("canary", "provisioned"))
    sent = deployment_config("canary", endpoint_type="provisioned", alarm_names=rollback_alarm_names("shapes-detector"))
    assert canary >= waits.endpoint_wait_budget("update", [{}], sent, alarm_window_s=120) > serverless
    assert ol.lease_ttl_seconds(cfg(endpoint_type="async")) >= waits.async_result_budget()
    assert acquire_wait_seconds(100) == 200


def test_the_ttl_takes_the_deploy_tasks_own_settings_not_the_class_defaults():
    canary = cfg("canary", "provisioned")
    slow = DeployEndpointOperator(task_id="deploy", endpoint_name="e", endpoint_config_name="c",
                                  wait_interval_s=3000, maximum_execution_timeout_s=14400)
    assert ol.lease_ttl_seconds(canary, slow) > ol.lease_ttl_seconds(canary) + 3000
    templated = DeployEndpointOperator(task_id="deploy", endpoint_name="e", endpoint_config_name="c",
                                       wait_interval_s="{{ params.wait }}", maximum_execution_timeout_s=14400)
    assert ol.lease_ttl_seconds(canary, templated, {"params": {"wait": 3000}}) == ol.lease_ttl_seconds(canary, slow)


def test_the_operators_defaults_are_the_ttl_defaults():
    """``lease_ttl_seconds`` without a deploy task uses DEPLOY_DEFAULTS: they are the operator's own defaults."""
    op = DeployEndpointOperator(task_id="lease_ttl_defaults", endpoint_name="-", endpoint_config_name="-")
    assert {name: getattr(op, name) for name in DEPLOY_DEFAULTS} == dict(DEPLOY_DEFAULTS)
    assert ol.lease_ttl_seconds(cfg("canary", "provisioned")) == ol.lease_ttl_seconds(cfg("canary", "provisioned"), op)


def test_the_acquire_operator_defers_while_held_then_fails_naming_the_holder(monkeypatch):
    s3 = FakeS3()
    assert lease(s3, "dag_a/run_1").try_acquire()[0]
    targets = []
    monkeypatch.setattr(ol, "lease_for", lambda c, context, s3_client=None: lease(s3, "dag_b/run_2"))
    op = ol.AcquireEndpointLeaseOperator(
        task_id="acquire_endpoint_lease", poll_seconds=5, wait_seconds=60,
        target_of=lambda context, conn=None: targets.append(conn) or LeaseTarget("b", "us-east-1", "ep", 600))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointLeaseTrigger) and trigger.owner == "dag_b/run_2"
    assert targets == ["aws_default"]  # what it locks comes from target_of, with the operator's connection
    assert trigger.key == KEY and trigger.poll_seconds == 5
    # The wait ran out: the task fails and says who holds the endpoint.
    with pytest.raises(AirflowException, match="stayed locked by another run.*held by dag_a/run_1"):
        op.execute_complete({}, {"status": "timeout", "deadline": trigger.deadline})
    # Released meanwhile: the resumed task takes it.
    lease(s3, "dag_a/run_1").release()
    taken = op.execute_complete({}, {"status": "free", "deadline": trigger.deadline})
    assert taken["owner"] == "dag_b/run_2" and lease(s3, "x/y").read().owner == "dag_b/run_2"
