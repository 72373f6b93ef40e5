"""The trigger of a Ground Truth labeling job: wait in the triggerer with the labeling_job_complete waiter."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent

from sagemaker_vision.core.aws_config import botocore_config
from sagemaker_vision.core.labeling_job import LABELING_JOB_COMPLETE, LABELING_JOB_STATUS_QUERIES
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook

__all__ = ["LabelingJobTrigger"]


class LabelingJobTrigger(AwsBaseWaiterTrigger):
    """Wait in the triggerer until a Ground Truth labeling job is Completed, Failed or Stopped.

    Emits ``{"status": "success", "job_name": ...}`` on Completed. Otherwise the event's
    ``status`` is ``"failed"`` or ``"stopped"`` (``message`` is the job's ``FailureReason``),
    ``"timeout"`` when ``waiter_max_attempts`` ran out with the job still running, or ``"error"``
    for an API error that retrying does not fix (``message`` says which).

    :param job_name: The labeling job to wait for.
    :param waiter_delay: Seconds between two ``DescribeLabelingJob`` calls.
    :param waiter_max_attempts: How many calls before giving up (the job keeps running).
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region of the job; the connection's when None.
    :param verify: Whether to verify SSL certificates; the connection's when None.
    :param botocore_config: botocore ``Config`` keywords; the package's retry policy when None.
    """

    aws_hook_class = SageMakerVisionHook

    def __init__(
        self,
        *,
        job_name: str,
        waiter_delay: int = 60,
        waiter_max_attempts: int = 43200,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ):
        self.job_name = job_name
        super().__init__(
            serialized_fields={"job_name": job_name},
            waiter_name=LABELING_JOB_COMPLETE,
            waiter_args={"LabelingJobName": job_name},
            failure_message=f"Labeling job {job_name} did not complete",
            status_message=f"Labeling job {job_name} not done yet",
            status_queries=LABELING_JOB_STATUS_QUERIES,
            return_key="job_name",
            return_value=job_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        params = super()._hook_parameters
        if params["config"] is None:
            params["config"] = botocore_config()
        return params

    def _event_from_exception(self, error: AirflowException) -> TriggerEvent:
        if isinstance(error, WaiterMaxAttemptsError):
            return TriggerEvent({"status": "timeout", "job_name": self.job_name, "message": str(error)})
        if isinstance(error, WaiterTerminalFailure):
            response = error.last_response or {}
            status = response.get("LabelingJobStatus")
            if status in ("Failed", "Stopped"):
                reason = response.get("FailureReason") or f"the job is {status} (no FailureReason given)"
                return TriggerEvent({"status": status.lower(), "job_name": self.job_name, "message": reason})
        return super()._event_from_exception(error)
