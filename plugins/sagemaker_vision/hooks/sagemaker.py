"""The package's SageMaker hook: the one not-found rule, tag paging and this package's waiters.

SageMaker answers a missing resource in two ways. Operations whose model declares it (training and
labeling jobs) raise ``ResourceNotFound``; the others (endpoints, endpoint configs, models) declare
no errors and raise ``ValidationException`` with "Could not find ...". Old regions have also
answered ``ValidationException`` "Requested resource not found" for training jobs. Any other
``ValidationException`` is a real validation error and is raised, never read as "missing".

Functions take a boto3 SageMaker client so pure planners and tasks that already hold a client can
use them; :class:`SageMakerVisionHook` offers the same calls on its own connection.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from botocore.exceptions import ClientError

WAITERS_FILE = Path(__file__).resolve().parents[1] / "waiters" / "sagemaker_vision.json"

# Codes that mean "no such resource" on every SageMaker describe/list/delete call this package makes.
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
# ValidationException means "missing" only with one of these phrases (lower-cased).
NOT_FOUND_PHRASES = ("could not find", "not found", "does not exist")

Kind = Literal["endpoint", "endpoint_config", "model", "training_job", "labeling_job"]
# kind -> (describe operation, its name parameter)
DESCRIBE: dict[str, tuple[str, str]] = {
    "endpoint": ("describe_endpoint", "EndpointName"),
    "endpoint_config": ("describe_endpoint_config", "EndpointConfigName"),
    "model": ("describe_model", "ModelName"),
    "training_job": ("describe_training_job", "TrainingJobName"),
    "labeling_job": ("describe_labeling_job", "LabelingJobName"),
}
# ListTags: MaxResults is at least 50 (botocore model ListTagsMaxResults); a resource has at most 50 tags.
LIST_TAGS_PAGE = 100
MAX_TAG_PAGES = 100


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is SageMaker saying the named resource does not exist."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).lower()
    if code in NOT_FOUND_CODES:
        return True
    return code in ("ValidationException", "ValidationError") and any(p in message for p in NOT_FOUND_PHRASES)


def describe_or_none(client: Any, kind: Kind | str, name: str) -> dict[str, Any] | None:
    """The ``Describe*`` answer for the ``kind`` resource ``name``, or None when it does not exist."""
    try:
        operation, parameter = DESCRIBE[kind]
    except KeyError:
        raise ValueError(f"unknown SageMaker resource kind {kind!r}; known: {', '.join(DESCRIBE)}") from None
    try:
        return getattr(client, operation)(**{parameter: name})
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def all_tags(client: Any, arn: str) -> dict[str, str]:
    """Every tag of ``arn`` (ListTags, all pages); a repeated key keeps its last value."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": LIST_TAGS_PAGE}
    for _ in range(MAX_TAG_PAGES):  # 50 tags per resource at most: one page in practice, bounded anyway
        page = client.list_tags(**kwargs)
        tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags") or []})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return tags


class SageMakerVisionHook(SageMakerHook):
    """``SageMakerHook`` with the package's not-found rule, tag paging and custom waiters.

    ``get_waiter(name)`` finds this package's waiters (``waiters/sagemaker_vision.json``); the
    provider's own SageMaker waiters stay on the provider's ``SageMakerHook``.
    """

    @cached_property
    def waiter_path(self) -> Path:
        return WAITERS_FILE

    def find(self, kind: Kind | str, name: str) -> dict[str, Any] | None:
        """``Describe*`` for ``name``, or None when there is no such resource."""
        return describe_or_none(self.conn, kind, name)

    def require(self, kind: Kind | str, name: str) -> dict[str, Any]:
        """``Describe*`` for ``name``; raises ``LookupError`` naming it when it does not exist."""
        found = self.find(kind, name)
        if found is None:
            raise LookupError(f"SageMaker {kind.replace('_', ' ')} {name!r} does not exist in {self.conn_region_name}")
        return found

    def all_tags(self, arn: str) -> dict[str, str]:
        return all_tags(self.conn, arn)

    # -- Ground Truth labeling jobs (their waiter: labeling_job_complete in waiters/sagemaker_vision.json)
    def find_labeling_job(self, name: str) -> dict[str, Any] | None:
        """``DescribeLabelingJob`` for ``name``, or None if no job of that name exists."""
        return self.find("labeling_job", name)

    def describe_labeling_job(self, name: str) -> dict[str, Any]:
        """``DescribeLabelingJob`` for ``name``; raises ``LookupError`` if there is no such job."""
        job = self.find_labeling_job(name)
        if job is None:
            raise LookupError(f"labeling job {name!r} does not exist in {self.conn_region_name}")
        return job

    def stop_labeling_job(self, name: str) -> None:
        """``StopLabelingJob``: InProgress -> Stopping -> Stopped, keeping the labels made so far."""
        self.conn.stop_labeling_job(LabelingJobName=name)


__all__ = [
    "DESCRIBE",
    "NOT_FOUND_CODES",
    "SageMakerVisionHook",
    "WAITERS_FILE",
    "all_tags",
    "describe_or_none",
    "is_not_found",
]
