"""The ``train`` stage: the provider's deferrable training operator, made idempotent per run.

The provider's ``SageMakerTrainingOperator`` creates a *new*, timestamped job when a job of the
same name exists, so clearing the task would pay for a second training. This subclass first
looks for the run's job: InProgress is waited for, Completed is returned as it is, and only a
job that Failed or was Stopped (which produced nothing) is retried under a new name.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import ClientError

REUSABLE = ("InProgress", "Stopping", "Completed")
# The provider's hook counts only "Failed" as failed; a Stopped job produced no model either.
UNSUCCESSFUL = ("Failed", "Stopped")


def failure_message(description: dict[str, Any]) -> str:
    name, status = description.get("TrainingJobName"), description.get("TrainingJobStatus")
    reason = description.get("FailureReason") or "(no FailureReason given)"
    return f"Training job {name} ended {status}: {reason}"


class ObjectDetectionTrainingOperator(SageMakerTrainingOperator):
    """``SageMakerTrainingOperator`` that reuses this run's job instead of duplicating it."""

    ui_color = "#d8e8f8"

    def _existing(self, name: str) -> dict[str, Any] | None:
        try:
            return self.hook.describe_training_job(name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                return None  # "Requested resource not found"
            raise

    def execute(self, context: Any) -> dict:
        name = self.config["TrainingJobName"]
        job = self._existing(name)
        if job is None or job["TrainingJobStatus"] not in REUSABLE:
            if job is not None:
                self.log.warning("%s; starting a new job (the provider adds a timestamp to the name)",
                                 failure_message(job))
            return super().execute(context)
        differences = _differences(job, self.config)
        if differences:
            raise AirflowFailException(
                f"Training job {name} already exists but trains something else; clear the whole run or "
                "change pipeline_name: " + "; ".join(differences)
            )
        status = job["TrainingJobStatus"]
        self.log.info("Reusing training job %s (%s, %s) instead of starting another", name, status,
                      job.get("SecondaryStatus"))
        if status == "Completed":
            return self.serialize_result(name)
        if not self.deferrable:
            job = self.hook.check_status(name, "TrainingJobStatus", self.hook.describe_training_job,
                                         self.check_interval, self.max_ingestion_time,
                                         self.hook.non_terminal_states)
            if job["TrainingJobStatus"] in UNSUCCESSFUL:
                raise AirflowException(failure_message(job))
            return self.serialize_result(name)
        self.defer(
            trigger=SageMakerTrigger(
                job_name=name, job_type="Training", waiter_delay=self.check_interval,
                waiter_max_attempts=self.max_attempts, aws_conn_id=self.aws_conn_id,
                region_name=self.region_name, verify=self.verify, botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, dict]:
        event = validate_execute_complete_event(event)
        if event["status"] != "success":
            # The trigger's message is generic; the job's own FailureReason says what went wrong.
            job = self._existing(event.get("job_name") or self.config["TrainingJobName"])
            if job is not None and job["TrainingJobStatus"] in UNSUCCESSFUL:
                raise AirflowException(failure_message(job))
            raise AirflowException(f"Waiting for training job failed: {event}")
        result = super().execute_complete(context, event)
        job = result["Training"]
        if job.get("TrainingJobStatus") in UNSUCCESSFUL:
            raise AirflowException(failure_message(job))
        return result


def _differences(job: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """What a same-named job was asked to do differently: reusing it would return the wrong model."""
    out = []
    if job.get("HyperParameters", {}) != request.get("HyperParameters", {}):
        changed = sorted(k for k in set(job.get("HyperParameters", {})) | set(request.get("HyperParameters", {}))
                         if job.get("HyperParameters", {}).get(k) != request.get("HyperParameters", {}).get(k))
        out.append(f"HyperParameters differ in {changed}")

    def uris(config: dict[str, Any]) -> dict[str, str]:
        return {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in config.get("InputDataConfig", [])}

    if uris(job) != uris(request):
        out.append(f"InputDataConfig S3Uri: existing {uris(job)}, requested {uris(request)}")
    image = (job.get("AlgorithmSpecification") or {}).get("TrainingImage")
    wanted = (request.get("AlgorithmSpecification") or {}).get("TrainingImage")
    if image != wanted:
        out.append(f"TrainingImage: existing {image}, requested {wanted}")
    return out
