"""Deferrable triggers of the package; they run in the triggerer.

Each trigger takes only JSON-serialisable arguments (``serialize()`` hands them back), so the
triggerer can rebuild it from the database, and waits with a custom waiter from ``waiters/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from sagemaker_vision import aws, s3io
from sagemaker_vision.waiters import LABELING_JOB_COMPLETE, LabelingJobHook

# Status and counters, logged by the waiter on every attempt so a person can follow the job.
LABELING_JOB_STATUS_QUERIES = ["LabelingJobStatus", "LabelCounters"]


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

    aws_hook_class = LabelingJobHook

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
            params["config"] = aws.botocore_config()
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


__all__ = ["LABELING_JOB_STATUS_QUERIES", "LabelingJobTrigger"]


class LabelStudioTrigger(BaseTrigger):
    """Wait in the triggerer until every task of a Label Studio project is annotated or skipped.

    Polls the project's task list (through :class:`~sagemaker_vision.label_studio.LabelStudioHook`
    over aiohttp) every ``poll_interval`` seconds, at most ``max_attempts`` times, and logs
    "N of M tasks annotated" on each poll. A task counts as annotated with ``min_annotations``
    non-cancelled annotations, as skipped with fewer but at least one cancelled one.

    Emits ``{"status": "success", "project_id", "message", "progress"}`` when all tasks are
    done, ``"timeout"`` when the attempts ran out, and ``"error"`` when Label Studio failed
    (after the hook's retries) or the project has fewer tasks than ``expected_tasks`` (deleted).

    :param project_id: The Label Studio project.
    :param expected_tasks: Tasks the operator saw in the project when it deferred.
    :param min_annotations: Non-cancelled annotations a task needs.
    :param poll_interval: Seconds between two polls.
    :param max_attempts: Polls before giving up.
    :param label_studio_conn_id: Airflow connection of the Label Studio server.
    """

    def __init__(
        self,
        *,
        project_id: int,
        expected_tasks: int,
        min_annotations: int = 1,
        poll_interval: float = 60.0,
        max_attempts: int = 10080,
        label_studio_conn_id: str = "label_studio_default",
    ):
        super().__init__()
        self.project_id = int(project_id)
        self.expected_tasks = int(expected_tasks)
        self.min_annotations = int(min_annotations)
        self.poll_interval = float(poll_interval)
        self.max_attempts = int(max_attempts)
        self.label_studio_conn_id = label_studio_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "project_id": self.project_id,
                "expected_tasks": self.expected_tasks,
                "min_annotations": self.min_annotations,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "label_studio_conn_id": self.label_studio_conn_id,
            },
        )

    def _event(self, status: str, message: str, progress: Any = None) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "project_id": self.project_id, "message": message}
        if progress is not None:
            payload["progress"] = progress.to_dict()
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imported here: label_studio imports this module for the operator's defer().
        from sagemaker_vision.label_studio import LabelStudioError, LabelStudioHook

        hook = LabelStudioHook(self.label_studio_conn_id)
        progress = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                progress = await hook.atask_progress(self.project_id, self.min_annotations)
            except LabelStudioError as exc:
                yield self._event("error", str(exc))
                return
            self.log.info("Label Studio project %s: %s (poll %d of %d)", self.project_id, progress.describe(),
                          attempt, self.max_attempts)
            if progress.total < self.expected_tasks:
                message = (f"the project has {progress.total} tasks but had {self.expected_tasks} when the "
                           "task deferred: were tasks deleted?")
                yield self._event("error", message, progress)
                return
            if progress.complete:
                yield self._event("success", progress.describe(), progress)
                return
            if attempt < self.max_attempts:
                await asyncio.sleep(self.poll_interval)
        described = progress.describe() if progress else "no poll made"
        yield self._event("timeout", f"{described} after {self.max_attempts} polls", progress)


__all__ += ["LabelStudioTrigger"]


class AsyncInferenceOutputTrigger(BaseTrigger):
    """Wait in the triggerer until an asynchronous inference writes its output or its failure object.

    SageMaker writes ``OutputLocation`` when the inference succeeds and ``FailureLocation`` when
    it fails; this polls both with ``HeadObject`` (aiobotocore) every ``poll_interval`` seconds,
    at most ``max_attempts`` times. The provider's ``S3KeyTrigger`` cannot do this: given two
    keys it waits for *all* of them, and it has no attempt limit.

    Emits ``{"status": "success"}`` when the output object exists, ``"failed"`` when the failure
    object does, ``"timeout"`` when the attempts ran out and ``"error"`` (with ``message``) when
    S3 refused a call; every event also carries ``output_location`` and ``failure_location``.

    :param output_location: The ``s3://`` URI InvokeEndpointAsync returned as OutputLocation.
    :param failure_location: Its FailureLocation, when the endpoint has an S3FailurePath.
    :param poll_interval: Seconds between two polls.
    :param max_attempts: Polls before giving up (the inference may still finish later).
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: The AWS region; the connection's when None.
    :param verify: Whether to verify SSL certificates; the connection's when None.
    :param botocore_config: botocore ``Config`` keywords; the package's retry policy when None.
    """

    def __init__(
        self,
        *,
        output_location: str,
        failure_location: str | None = None,
        poll_interval: float = 30.0,
        max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        resume: dict[str, Any] | None = None,
    ):
        super().__init__()
        # Echoed in every event: what the operator needs to resume, carried by the event itself
        # because not every runner (``airflow dags test``) hands ``defer(kwargs=...)`` back.
        self.resume = resume
        self.output_location = output_location
        self.failure_location = failure_location
        self.poll_interval = float(poll_interval)
        self.max_attempts = int(max_attempts)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "output_location": self.output_location,
                "failure_location": self.failure_location,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "resume": self.resume,
            },
        )

    def _event(self, status: str, message: str | None = None) -> TriggerEvent:
        payload: dict[str, Any] = {
            "status": status,
            "output_location": self.output_location,
            "failure_location": self.failure_location,
        }
        if self.resume is not None:
            payload["resume"] = self.resume
        if message is not None:
            payload["message"] = message
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config or aws.botocore_config())
        # Success first: should both exist, the output is what the caller asked for.
        watched = [("success", self.output_location)]
        if self.failure_location:
            watched.append(("failed", self.failure_location))
        try:
            async with await hook.get_async_conn() as client:
                for attempt in range(1, self.max_attempts + 1):
                    for status, uri in watched:
                        bucket, key = S3Hook.parse_s3_url(uri)
                        if await s3io.head_object_if_exists_async(client, bucket, key) is not None:
                            yield self._event(status)
                            return
                    self.log.info("No output at %s yet (poll %d of %d)", self.output_location, attempt,
                                  self.max_attempts)
                    if attempt < self.max_attempts:
                        await asyncio.sleep(self.poll_interval)
        except Exception as exc:  # noqa: BLE001 - any S3 or connection error ends the wait with its message
            yield self._event("error", f"{type(exc).__name__}: {exc}")
            return
        yield self._event(
            "timeout", f"neither {self.output_location} nor {self.failure_location} appeared after "
            f"{self.max_attempts} polls {self.poll_interval:g} s apart"
        )


__all__ += ["AsyncInferenceOutputTrigger"]
