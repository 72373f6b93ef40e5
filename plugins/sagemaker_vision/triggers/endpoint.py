"""The trigger that waits for an endpoint to settle: InService, or a failed state at once.

The waiter is ``endpoint_settled`` (``waiters/sagemaker_vision.json``), built by
:class:`~sagemaker_vision.hooks.sagemaker.SageMakerVisionHook` from the same model sync and async.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent

from sagemaker_vision.core.endpoint_waits import ENDPOINT_SETTLED, failure_message
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook

ENDPOINT_STATUS_QUERIES = ["EndpointStatus", "PendingDeploymentSummary.EndpointConfigName", "FailureReason"]


class EndpointTrigger(AwsBaseWaiterTrigger):
    """Wait in the triggerer until ``endpoint_name`` is InService, or fail at once.

    Events: ``success``; ``failed`` (Failed, UpdateRollbackFailed, OutOfService, Deleting, or the
    endpoint vanished), with ``endpoint_status`` and the ``FailureReason`` as ``message``;
    ``timeout`` when ``waiter_max_attempts`` ran out (the operation goes on); ``error`` otherwise.
    """

    aws_hook_class = SageMakerVisionHook

    def __init__(self, *, endpoint_name: str, waiter_delay: float = 30, waiter_max_attempts: int = 120,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 verify: bool | str | None = None, botocore_config: dict | None = None):
        super().__init__(
            serialized_fields={"endpoint_name": endpoint_name},
            waiter_name=ENDPOINT_SETTLED,
            waiter_args={"EndpointName": endpoint_name},
            failure_message=f"Endpoint {endpoint_name} failed",
            status_message=f"Endpoint {endpoint_name} not in service yet",
            status_queries=ENDPOINT_STATUS_QUERIES,
            return_key="job_name",
            return_value=endpoint_name,
            waiter_delay=waiter_delay,  # type: ignore[arg-type]  # the provider's hint is int; it sleeps any number
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.endpoint_name = endpoint_name

    def _event_from_exception(self, error: AirflowException) -> TriggerEvent:
        base = {"job_name": self.endpoint_name}
        if isinstance(error, WaiterMaxAttemptsError):
            return TriggerEvent({**base, "status": "timeout", "message": str(error)})
        if isinstance(error, WaiterTerminalFailure):
            response = getattr(error, "last_response", None) or {}
            status = response.get("EndpointStatus")
            message = failure_message(response) if status else str(error)
            return TriggerEvent({**base, "status": "failed", "endpoint_status": status, "message": message})
        return TriggerEvent({**base, "status": "error", "message": str(error)})
