"""How long to wait for an endpoint, and which of its states end the wait at once.

Pure: no Airflow, no AWS calls. The deploy operator, its trigger, the A/B helpers and the async smoke
test all take their budgets from here; the waiter that ends a wait on these states is
``endpoint_settled`` in ``waiters/sagemaker_vision.json`` (loaded by ``hooks.sagemaker``).

Budgets (:func:`endpoint_wait_budget`, :func:`async_result_budget`) are AWS seconds, derived from
the limits AWS documents for the operation and from the request's own settings, never from a
fixed number of polls:

* Creating an endpoint (and the new fleet of an update): the instances are launched (no AWS
  limit is published; :data:`PROVISIONING_S` is a round estimate), then every variant downloads
  its model (``ModelDataDownloadTimeoutInSeconds``, 60-3600 s) and its container must pass the
  health check (``ContainerStartupHealthCheckTimeoutInSeconds``, 60-3600 s); botocore's
  ``ProductionVariant`` shape. A variant that sets neither is given the maxima.
* A blue/green update adds its traffic shifting: every step bakes ``WaitIntervalInSeconds``
  (at least as long as the rollback alarms need to trip), the old fleet is kept
  ``TerminationWaitInSeconds``, and the whole deployment is bounded by
  ``MaximumExecutionTimeoutInSeconds`` (``BlueGreenUpdatePolicy``, 600-28800 s), after which
  SageMaker rolls back; the rollback gets a provisioning estimate of its own.
* A rolling update (``RollingUpdatePolicy``) is bounded by its ``MaximumExecutionTimeoutInSeconds``
  (28800 s when unset), plus a rollback that re-provisions the old fleet.
* A weights/capacity change (``UpdateEndpointWeightsAndCapacities``) may add instances:
  a new fleet's worth of time.
* An async request lives at most ``RequestTTLSeconds`` in the queue (default and maximum 6 h)
  plus ``InvocationTimeoutSeconds`` being processed (default 15 min, maximum 1 h);
  botocore's ``InvokeEndpointAsyncInput``.

States (:data:`FAILED_STATES`): botocore's ``EndpointStatus`` enum has nine values. ``InService``
ends a wait well; ``Creating``, ``Updating``, ``SystemUpdating`` and ``RollingBack`` are in
flight; ``Failed``, ``UpdateRollbackFailed``, ``OutOfService`` and ``Deleting`` end it badly,
at once, with the ``FailureReason`` ("DeleteEndpoint is the only operation that can be performed
on a failed endpoint", DescribeEndpoint).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ENDPOINT_STATUSES = frozenset({"OutOfService", "Creating", "Updating", "SystemUpdating", "RollingBack",
                               "InService", "Deleting", "Failed", "UpdateRollbackFailed"})
IN_FLIGHT_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
FAILED_STATES = frozenset({"Failed", "UpdateRollbackFailed", "OutOfService", "Deleting"})

# Launching the instances of a fleet: AWS publishes no bound; a round, generous estimate.
PROVISIONING_S = 1800
# ProductionVariant.ModelDataDownloadTimeoutInSeconds / ContainerStartupHealthCheckTimeoutInSeconds.
MAX_MODEL_DOWNLOAD_S = 3600
MAX_HEALTH_CHECK_S = 3600
# BlueGreenUpdatePolicy / RollingUpdatePolicy.MaximumExecutionTimeoutInSeconds: 600-28800.
MAX_DEPLOYMENT_TIMEOUT_S = 28800
# InvokeEndpointAsyncInput.RequestTTLSeconds (default and max 21600), InvocationTimeoutSeconds (900, max 3600).
ASYNC_REQUEST_TTL_DEFAULT_S = 21600
ASYNC_INVOCATION_TIMEOUT_DEFAULT_S = 900

OPERATIONS = ("create", "update", "weights")

# The name of the waiter every endpoint wait of this package uses (its model: waiters/sagemaker_vision.json;
# boto's EndpointInService fails only on Failed, so an endpoint in UpdateRollbackFailed or OutOfService was
# polled until the budget ran out).
ENDPOINT_SETTLED = "endpoint_settled"


def _seconds(value: Any, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: {value!r} is not a whole number of seconds from {low} to {high}")
    return value


def fleet_budget(variants: Sequence[Mapping[str, Any]]) -> int:
    """Seconds to bring up a fleet of ``variants`` (CreateEndpointConfig ProductionVariants).

    Provisioning, then the slowest variant's model download and health check. Variants come up in
    parallel, so the slowest one counts, not the sum.
    """
    slowest = 0
    for variant in variants or [{}]:
        download = _seconds(variant.get("ModelDataDownloadTimeoutInSeconds"), "ModelDataDownloadTimeoutInSeconds",
                            60, MAX_MODEL_DOWNLOAD_S, MAX_MODEL_DOWNLOAD_S)
        health = _seconds(variant.get("ContainerStartupHealthCheckTimeoutInSeconds"),
                          "ContainerStartupHealthCheckTimeoutInSeconds", 60, MAX_HEALTH_CHECK_S, MAX_HEALTH_CHECK_S)
        slowest = max(slowest, download + health)
    return PROVISIONING_S + slowest


def traffic_steps(routing: Mapping[str, Any]) -> int:
    """Baking periods of a blue/green TrafficRoutingConfig: 1 all at once, 2 canary, n linear steps."""
    kind = routing.get("Type")
    if kind == "CANARY":
        return 2
    if kind == "LINEAR":
        size = routing.get("LinearStepSize") or {}
        if size.get("Type") == "CAPACITY_PERCENT" and size.get("Value"):
            return math.ceil(100 / int(size["Value"]))
        return 10  # INSTANCE_COUNT steps are at least 10% of the fleet: at most 10 steps
    return 1


def deployment_waiting(deployment_config: Mapping[str, Any] | None, *, alarm_window_s: int = 0,
                       instance_count: int = 1) -> int:
    """Seconds a DeploymentConfig itself waits: its baking periods and the old fleet's termination wait.

    Each bake lasts ``WaitIntervalInSeconds``, but never less than ``alarm_window_s`` (an alarm
    that trips later cannot roll back a finished step). Rolling updates bake once per batch
    (:func:`rolling_batches` of the fleet's ``instance_count``).
    """
    config = deployment_config or {}
    window = max(0, int(alarm_window_s))
    blue_green = config.get("BlueGreenUpdatePolicy")
    if blue_green:
        routing = blue_green.get("TrafficRoutingConfiguration") or {}
        bake = max(int(routing.get("WaitIntervalInSeconds") or 0), window)
        return traffic_steps(routing) * bake + int(blue_green.get("TerminationWaitInSeconds") or 0)
    rolling = config.get("RollingUpdatePolicy")
    if rolling:
        return rolling_batches(rolling.get("MaximumBatchSize") or {}, instance_count) * \
            max(int(rolling.get("WaitIntervalInSeconds") or 0), window)
    return 0


def rolling_batches(size: Mapping[str, Any], instance_count: int) -> int:
    """Batches of a rolling update of ``instance_count`` instances with ``MaximumBatchSize`` ``size``.

    ``CAPACITY_PERCENT``: ``ceil(100 / Value)`` batches (an upper bound: a batch holds at least one
    instance); ``INSTANCE_COUNT``: ``ceil(instance_count / Value)`` (CapacitySize, RollingUpdatePolicy).
    """
    count = max(1, int(instance_count))
    value = int(size.get("Value") or 0)
    if size.get("Type") == "CAPACITY_PERCENT" and value > 0:
        return math.ceil(100 / value)
    if value <= 0:
        return max(count, 100)  # no size given: as many batches as a 1% step would need, or one per instance
    return math.ceil(count / value)


def instance_count(variants: Sequence[Mapping[str, Any]]) -> int:
    """Instances a config's variants start with (``InitialInstanceCount``, 1 when unset), all variants together."""
    return max(1, sum(int(v.get("InitialInstanceCount") or 1) for v in variants or []))


def endpoint_wait_budget(operation: str, variants: Sequence[Mapping[str, Any]],
                         deployment_config: Mapping[str, Any] | None = None, *, alarm_window_s: int = 0) -> int:
    """AWS seconds to wait for ``operation`` (create, update or weights) on an endpoint to settle.

    ``variants``: the ProductionVariants of the config being deployed; ``deployment_config``: the
    UpdateEndpoint DeploymentConfig sent (None: none, an all-at-once blue/green update without
    baking). See the module docstring for where each term comes from.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}; got {operation!r}")
    fleet = fleet_budget(variants)
    if operation in ("create", "weights"):
        return fleet
    config = deployment_config or {}
    waiting = deployment_waiting(config, alarm_window_s=alarm_window_s, instance_count=instance_count(variants))
    policy = config.get("BlueGreenUpdatePolicy") or config.get("RollingUpdatePolicy")
    if not policy:
        return fleet + waiting
    timeout = _seconds(policy.get("MaximumExecutionTimeoutInSeconds"), "MaximumExecutionTimeoutInSeconds", 600,
                       MAX_DEPLOYMENT_TIMEOUT_S, MAX_DEPLOYMENT_TIMEOUT_S)
    # The new fleet comes up, then the deployment runs (bounded by its timeout, which must exceed its
    # waiting), then a rollback may need a fleet again (rolling: the old one re-provisioned).
    return fleet + max(timeout, waiting) + PROVISIONING_S


def async_result_budget(request_ttl_s: int | None = None, invocation_timeout_s: int | None = None) -> int:
    """AWS seconds until an async request has either answered or expired: queue TTL + processing timeout."""
    ttl = _seconds(request_ttl_s, "RequestTTLSeconds", 60, 21600, ASYNC_REQUEST_TTL_DEFAULT_S)
    processing = _seconds(invocation_timeout_s, "InvocationTimeoutSeconds", 1, 3600,
                          ASYNC_INVOCATION_TIMEOUT_DEFAULT_S)
    return ttl + processing


def max_attempts(budget_s: float, delay_s: float) -> int:
    """Polls ``delay_s`` apart whose span covers ``budget_s``.

    A waiter sleeps between attempts only (none before the first), so ``n`` attempts span
    ``(n - 1) * delay_s``: one more attempt than the quotient (as ``training_budget.wait_attempts``).
    """
    if not delay_s > 0:
        raise ValueError(f"delay_s must be above 0, got {delay_s!r}")
    return math.ceil(max(0, budget_s) / delay_s) + 1


def failure_message(description: Mapping[str, Any]) -> str:
    """``Endpoint <name> is <status>: <FailureReason>`` from a DescribeEndpoint response."""
    return (f"Endpoint {description.get('EndpointName')} is {description.get('EndpointStatus')}: "
            f"{description.get('FailureReason') or 'no FailureReason given'}")
