"""Deferrable triggers of the package, one module per domain; they run in the triggerer.

Each trigger takes only JSON-serialisable arguments (``serialize()`` hands them back), so the
triggerer can rebuild it from the database; the AWS ones wait with a custom waiter from ``waiters/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from sagemaker_vision import aws, s3io

# Moved to triggers/labeling_job.py and triggers/label_studio.py (issue 10).
from sagemaker_vision.core.labeling_job import LABELING_JOB_STATUS_QUERIES  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.triggers.label_studio import LabelStudioTrigger  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.triggers.labeling_job import LabelingJobTrigger  # noqa: F401  (shim, removed by the lead)

__all__ = ["LABELING_JOB_STATUS_QUERIES", "LabelStudioTrigger", "LabelingJobTrigger"]


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
