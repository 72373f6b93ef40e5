"""Shim (removed by the lead at the end of the move): the budgets and states are ``core.endpoint_waits``;
the ``endpoint_settled`` waiter model is ``waiters/sagemaker_vision.json``, loaded by ``hooks.sagemaker``
(``ENDPOINT_SETTLED_MODEL``, ``settled_outcome``; ``SageMakerVisionHook.get_waiter`` replaces ``settled_waiter``).
"""

from sagemaker_vision.core.endpoint_waits import (  # noqa: F401  (shim, removed by the lead)
    ASYNC_INVOCATION_TIMEOUT_DEFAULT_S,
    ASYNC_REQUEST_TTL_DEFAULT_S,
    ENDPOINT_SETTLED,
    ENDPOINT_STATUSES,
    FAILED_STATES,
    IN_FLIGHT_STATES,
    MAX_DEPLOYMENT_TIMEOUT_S,
    MAX_HEALTH_CHECK_S,
    MAX_MODEL_DOWNLOAD_S,
    OPERATIONS,
    PROVISIONING_S,
    async_result_budget,
    deployment_waiting,
    endpoint_wait_budget,
    failure_message,
    fleet_budget,
    instance_count,
    max_attempts,
    rolling_batches,
    traffic_steps,
)
from sagemaker_vision.hooks.sagemaker import ENDPOINT_SETTLED_MODEL, settled_outcome  # noqa: F401  (shim, removed by the lead)
