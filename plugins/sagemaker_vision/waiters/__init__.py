"""This package's custom boto waiters (JSON, in the amazon provider's format) and the hook that loads them.

The provider's ``AwsGenericHook.get_waiter`` looks custom waiters up in one JSON file,
``waiter_path``, and builds a sync waiter, or with ``deferrable=True, client=<aiobotocore client>``
an async one, from the same model. ``SageMakerHook`` points ``waiter_path`` at the provider's
``sagemaker.json``, which has no labeling-job waiter, so :class:`LabelingJobHook` points it at
``labeling_job.json`` here instead.

The hook lives next to the JSON it loads, not in ``ground_truth`` or ``triggers``, so that the
operator (``ground_truth``) and the trigger (``triggers``) both import it without importing each
other; the triggerer then loads only what the trigger needs.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from botocore.exceptions import ClientError

WAITERS_DIR = Path(__file__).resolve().parent
LABELING_JOB_WAITERS = WAITERS_DIR / "labeling_job.json"
# The waiter name in labeling_job.json: Completed -> success, Failed/Stopped -> failure,
# Initializing/InProgress/Stopping -> retry.
LABELING_JOB_COMPLETE = "labeling_job_complete"


def load_waiter_config(path: str | Path) -> dict[str, Any]:
    """The raw waiter model (``{"version": 2, "waiters": {...}}``) stored at ``path``."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class LabelingJobHook(SageMakerHook):
    """``SageMakerHook`` whose custom waiters are this package's labeling-job waiters.

    ``get_waiter(LABELING_JOB_COMPLETE)`` returns a botocore waiter on the sync client, and
    ``get_waiter(LABELING_JOB_COMPLETE, deferrable=True, client=async_client)`` an aiobotocore one,
    both built from ``labeling_job.json``. The provider's own SageMaker custom waiters
    (``TrainingJobComplete`` and so on) are not visible through this hook; use ``SageMakerHook``.
    """

    @cached_property
    def waiter_path(self) -> Path:
        return LABELING_JOB_WAITERS

    def find_labeling_job(self, name: str) -> dict[str, Any] | None:
        """``DescribeLabelingJob`` for ``name``, or None if no job of that name exists."""
        try:
            return self.conn.describe_labeling_job(LabelingJobName=name)
        except ClientError as exc:
            if _is_not_found(exc):
                return None
            raise

    def describe_labeling_job(self, name: str) -> dict[str, Any]:
        """``DescribeLabelingJob`` for ``name``; raises ``LookupError`` if there is no such job."""
        job = self.find_labeling_job(name)
        if job is None:
            raise LookupError(f"labeling job {name!r} does not exist in {self.conn_region_name}")
        return job

    def stop_labeling_job(self, name: str) -> None:
        """``StopLabelingJob``: InProgress -> Stopping -> Stopped, keeping the labels made so far."""
        self.conn.stop_labeling_job(LabelingJobName=name)


def _is_not_found(exc: ClientError) -> bool:
    # The API model names ResourceNotFound; SageMaker has also been seen answering
    # ValidationException "Could not find ..." for jobs, so accept both.
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "").lower()
    return code == "ResourceNotFound" or (
        code == "ValidationException" and ("could not find" in message or "not found" in message)
    )


__all__ = [
    "LABELING_JOB_COMPLETE",
    "LABELING_JOB_WAITERS",
    "LabelingJobHook",
    "WAITERS_DIR",
    "load_waiter_config",
]
