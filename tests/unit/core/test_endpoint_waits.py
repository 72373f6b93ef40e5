"""Endpoint wait budgets and the failed states that end a wait (core.endpoint_waits)."""

from __future__ import annotations

import pytest
from botocore.session import get_session

from sagemaker_vision.core import deployment as dep
from sagemaker_vision.core import endpoint_waits as waits

PROVISIONED = [{"VariantName": "AllTraffic", "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}]


def test_statuses_match_botocores_endpoint_status_enum():
    enum = set(get_session().get_service_model("sagemaker").shape_for("EndpointStatus").enum)
    assert waits.ENDPOINT_STATUSES == enum
    assert waits.IN_FLIGHT_STATES | waits.FAILED_STATES | {"InService"} == enum
    assert not waits.IN_FLIGHT_STATES & waits.FAILED_STATES


def test_fleet_budget_uses_the_variants_own_timeouts_or_the_maxima():
    assert waits.fleet_budget(PROVISIONED) == waits.PROVISIONING_S + 3600 + 3600
    own = [{**PROVISIONED[0], "ModelDataDownloadTimeoutInSeconds": 600,
            "ContainerStartupHealthCheckTimeoutInSeconds": 300}]
    assert waits.fleet_budget(own) == waits.PROVISIONING_S + 900
    assert waits.fleet_budget(own + PROVISIONED) == waits.PROVISIONING_S + 7200  # the slowest variant
    with pytest.raises(ValueError, match="ModelDataDownloadTimeoutInSeconds"):
        waits.fleet_budget([{"ModelDataDownloadTimeoutInSeconds": 30}])


@pytest.mark.parametrize(("policy", "steps"), [("all_at_once", 1), ("canary", 2), ("linear", 4)])
def test_deployment_waiting_counts_every_bake_and_the_termination_wait(policy, steps):
    config = dep.deployment_config(policy, endpoint_type="provisioned", linear_step_percent=25, wait_interval_s=600,
                                  termination_wait_s=300, maximum_execution_timeout_s=28800, alarm_names=["a"])
    assert waits.deployment_waiting(config) == steps * 600 + 300
    # A bake never ends before the rollback alarms could trip.
    assert waits.deployment_waiting(config, alarm_window_s=900) == steps * 900 + 300


def test_update_budget_covers_the_fleet_the_deployment_timeout_and_a_rollback():
    config = dep.deployment_config("canary", endpoint_type="provisioned", wait_interval_s=3600, termination_wait_s=3600,
                                  maximum_execution_timeout_s=28800, alarm_names=["a"])
    budget = waits.endpoint_wait_budget("update", PROVISIONED, config)
    assert budget == waits.fleet_budget(PROVISIONED) + 28800 + waits.PROVISIONING_S
    # Well beyond the provider's default 60 polls of 30 s, and beyond the old timeout + 1 h.
    assert budget > 60 * 30 and budget > 28800 + 3600
    # No DeploymentConfig: a fleet's worth, nothing to bake.
    assert waits.endpoint_wait_budget("update", PROVISIONED) == waits.fleet_budget(PROVISIONED)
    assert waits.endpoint_wait_budget("create", PROVISIONED, config) == waits.fleet_budget(PROVISIONED)
    rolling = {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                                       "WaitIntervalInSeconds": 3600}}
    # 10 batches of an hour exceed the unset timeout's maximum of 8 h: the waiting counts.
    assert waits.endpoint_wait_budget("update", PROVISIONED, rolling) == \
        waits.fleet_budget(PROVISIONED) + 36000 + waits.PROVISIONING_S
    with pytest.raises(ValueError, match="operation"):
        waits.endpoint_wait_budget("delete", PROVISIONED)


def test_async_result_budget_is_the_requests_lifetime():
    assert waits.async_result_budget() == 21600 + 900  # AWS's defaults
    assert waits.async_result_budget(3600, 60) == 3660
    with pytest.raises(ValueError, match="RequestTTLSeconds"):
        waits.async_result_budget(30)


def test_max_attempts_and_failure_message():
    # n attempts span n - 1 delays: the last poll is at or after the budget, never before it.
    assert waits.max_attempts(100, 30) == 5 and waits.max_attempts(0, 30) == 1
    assert waits.max_attempts(30, 0.05) == 601
    attempts = waits.max_attempts(3600, 30)
    assert attempts == 121 and (attempts - 1) * 30 >= 3600  # the old 120 gave up at 3570 s
    with pytest.raises(ValueError):
        waits.max_attempts(10, 0)
    assert waits.failure_message({"EndpointName": "e", "EndpointStatus": "UpdateRollbackFailed"}) == \
        "Endpoint e is UpdateRollbackFailed: no FailureReason given"


def test_rolling_instance_count_batches_come_from_the_fleet_size():
    # MaximumBatchSize INSTANCE_COUNT: ceil(instances / Value) batches; the old code assumed 20 at most.
    fleet = [{**PROVISIONED[0], "InitialInstanceCount": 50}]
    rolling = {"RollingUpdatePolicy": {"MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 2},
                                       "WaitIntervalInSeconds": 600}}
    assert waits.rolling_batches({"Type": "INSTANCE_COUNT", "Value": 2}, 50) == 25
    assert waits.rolling_batches({"Type": "INSTANCE_COUNT", "Value": 3}, 1) == 1
    assert waits.deployment_waiting(rolling, instance_count=50) == 25 * 600
    # 25 batches of 10 min exceed the unset timeout's 8 h? no (4h10): the timeout counts; at an hour each they do.
    slow = {"RollingUpdatePolicy": {**rolling["RollingUpdatePolicy"], "WaitIntervalInSeconds": 3600}}
    assert waits.endpoint_wait_budget("update", fleet, slow) == waits.fleet_budget(fleet) + 25 * 3600 + \
        waits.PROVISIONING_S
    # Every variant's instances count.
    assert waits.instance_count(fleet + PROVISIONED) == 51
