"""operators.training: how the operator looks for the run's job, without AWS.

Before issue 10, ``_existing`` read every ``ValidationException`` as "no such job", so a real
validation error (a malformed name, a bad parameter) was hidden and the operator went on to start
another job. It now asks the package's hook, whose one not-found rule is ``hooks.sagemaker.is_not_found``.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator

NAME = "shapes-detector-20261201-000000"


def _error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeTrainingJob")


class SageMaker:
    """DescribeTrainingJob answers ``job`` for its name, else raises ``error``."""

    def __init__(self, error: ClientError | None = None, job: dict[str, Any] | None = None):
        self.error, self.job = error, job
        self.described: list[str] = []

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.described.append(TrainingJobName)
        if self.job is not None and TrainingJobName == self.job["TrainingJobName"]:
            return self.job
        assert self.error is not None
        raise self.error


def operator(client: SageMaker) -> ObjectDetectionTrainingOperator:
    op = ObjectDetectionTrainingOperator(task_id="train", config={"TrainingJobName": NAME})
    hook = SageMakerVisionHook.__new__(SageMakerVisionHook)
    hook.__dict__["conn"] = client  # cached properties: no connection, no AWS
    op.__dict__["hook"] = hook
    return op


def test_the_operator_uses_the_package_hook():
    assert ObjectDetectionTrainingOperator.aws_hook_class is SageMakerVisionHook


@pytest.mark.parametrize(("code", "message"), [
    ("ResourceNotFound", "Requested resource not found."),  # the botocore model's error for this operation
    ("ValidationException", "Requested resource not found."),  # what older regions answered
    ("ValidationException", f"Could not find training job '{NAME}'."),  # moto, and the emulator
])
def test_a_missing_job_is_none(code, message):
    client = SageMaker(_error(code, message))
    assert operator(client)._existing(NAME) is None
    assert client.described == [NAME]


def test_an_existing_job_is_returned():
    job = {"TrainingJobName": NAME, "TrainingJobStatus": "InProgress"}
    assert operator(SageMaker(job=job))._existing(NAME) is job


@pytest.mark.parametrize("message", [
    "1 validation error detected: Value 'bad name!' at 'trainingJobName' failed to satisfy constraint: "
    "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
    "The request was rejected because the parameter is invalid.",
])
def test_a_real_validation_error_is_raised_not_read_as_missing(message):
    """The old rule returned None here, and execute() started a new (paid) job over the error."""
    error = _error("ValidationException", message)
    with pytest.raises(ClientError) as raised:
        operator(SageMaker(error))._existing(NAME)
    assert raised.value is error


def test_a_real_validation_error_stops_the_run_job_lookup_before_any_job_is_started():
    """_run_job (execute's first AWS step) raises the error instead of reporting "no job yet"."""
    op = operator(SageMaker(_error("ValidationException", "1 validation error detected: bad value")))
    with pytest.raises(ClientError, match="1 validation error detected"):
        op._run_job(NAME)


def test_other_errors_are_raised():
    error = _error("ThrottlingException", "Rate exceeded")
    with pytest.raises(ClientError, match="Rate exceeded"):
        operator(SageMaker(error))._existing(NAME)
