"""The ``train`` stage: the provider's deferrable training operator, made idempotent per run.

The provider's ``SageMakerTrainingOperator`` creates a *new*, timestamped job when a job of the
same name exists, so clearing the task would pay for a second training. This subclass first
looks for the run's job (its own name, or the newest timestamped name a retry gave it):
InProgress or Stopping is waited for, Completed is returned as it is, and only a job that Failed
or was Stopped (which produced nothing) is replaced by a new, timestamped one.

The wait is sized from the job's stopping condition (``core.training_budget``), not the provider's
60 polls. If it still runs out, the task fails saying the job is still running, and a retry
resumes waiting on that same job.
"""

from __future__ import annotations

from typing import Any, cast

from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from sagemaker_vision.core.training_budget import (
    RETRY_BASE_MAX,
    ended_message,
    is_run_job,
    retry_job_name,
    retry_would_repeat,
    still_running_message,
    wait_attempts,
    wait_budget_seconds,
)
from sagemaker_vision.core.training_job import REUSABLE, RUNNING, UNSUCCESSFUL, job_differences
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.links.sagemaker import TRAINING_LINKS, persist_links


class ObjectDetectionTrainingOperator(SageMakerTrainingOperator):
    """``SageMakerTrainingOperator`` that reuses this run's job and waits as long as the job may run.

    ``max_attempts`` left unset (the usual case) is derived from the request's
    ``StoppingCondition`` and ``check_interval`` when the task runs; a number given here wins.
    """

    ui_color = "#d8e8f8"
    operator_extra_links = tuple(link() for link in TRAINING_LINKS)
    aws_hook_class = SageMakerVisionHook  # find() and its not-found rule; the channel check without HeadBucket

    def __init__(self, *, max_attempts: int | None = None, **kwargs: Any) -> None:
        super().__init__(max_attempts=max_attempts, **kwargs)
        self.budget_from_stopping_condition = max_attempts is None

    def _size_budget(self) -> None:
        if self.budget_from_stopping_condition:
            self.max_attempts = wait_attempts(self.config, self.check_interval)
        if not self.deferrable and self.max_ingestion_time is None:
            # The hook's synchronous wait has no bound of its own; give it the same budget.
            # (Deferred, the provider would turn this into a deferral timeout: leave it unset.)
            self.max_ingestion_time = wait_budget_seconds(self.config)

    def _existing(self, name: str) -> dict[str, Any] | None:
        """The job named ``name``, or None when SageMaker says there is none (``hooks.sagemaker.is_not_found``:
        any other ValidationException is a real validation error, and is raised)."""
        hook = cast(SageMakerVisionHook, self.hook)  # aws_hook_class: the provider types it SageMakerHook
        return hook.find("training_job", name)

    def _run_job(self, base: str) -> dict[str, Any] | None:
        """The newest job of this run: ``base`` itself, or a retry's ``base-<timestamp>``."""
        job = self._existing(base)
        if job is None or job["TrainingJobStatus"] in REUSABLE:
            return job
        # The run's first job ended badly, so an earlier try may have started a timestamped one.
        summaries = self.hook.get_conn().list_training_jobs(
            NameContains=base, SortBy="CreationTime", SortOrder="Descending", MaxResults=100,
        )["TrainingJobSummaries"]
        for summary in summaries:
            name = summary["TrainingJobName"]
            if name == base or not is_run_job(name, base):
                continue
            # execute refused a base the provider would cut, so a retry's name holds the whole base
            # (the run's stamp included): a name that matches is this run's, never another run's.
            candidate = self._existing(name)
            if candidate is not None:
                return candidate
        return job

    def execute(self, context: Any) -> dict:
        base = self.config["TrainingJobName"]
        if len(base) > RETRY_BASE_MAX:
            # The pipeline never builds one (config caps pipeline_name so that the retry name fits:
            # check_derived_names); a request built another way is refused before any AWS call.
            raise AirflowFailException(
                f"TrainingJobName {base!r} is {len(base)} characters: the provider cuts a retry's base to "
                f"{RETRY_BASE_MAX} before its '-<10 digits>' suffix ({retry_job_name(base)!r}), so this "
                f"run's retries could not be told from another run's; use at most {RETRY_BASE_MAX}")
        self._size_budget()
        job = self._run_job(base)
        if job is None or job["TrainingJobStatus"] not in REUSABLE:
            if job is not None:
                self.log.warning("%s; starting a new job (the provider adds a timestamp to the name)",
                                 ended_message(job))
            self.log.info("Waiting up to %d polls every %s s for the new job (its stopping condition "
                          "plus margins)", self.max_attempts, self.check_interval)
            try:
                return super().execute(context)
            except AirflowException as exc:
                # A job that ended before the provider's first describe gets its generic "SageMaker
                # job failed because ..." message: say which job, and refuse a retry that would repeat.
                ended = self._existing(self.config["TrainingJobName"])
                if ended is not None and ended["TrainingJobStatus"] in UNSUCCESSFUL:
                    raise self._ended(ended) from exc
                raise
            finally:  # the name the provider used (a timestamped retry's too), also while deferred
                persist_links(context, self, self.hook, TRAINING_LINKS, job_name=self.config["TrainingJobName"])
        name = job["TrainingJobName"]
        persist_links(context, self, self.hook, TRAINING_LINKS, job_name=name)
        differences = job_differences(job, self.config)
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
                raise self._ended(job)
            return self.serialize_result(name)
        self.log.info("Resuming the wait: up to %d polls every %s s", self.max_attempts, self.check_interval)
        self.defer(
            trigger=SageMakerTrigger(
                job_name=name, job_type="Training", waiter_delay=self.check_interval,
                waiter_max_attempts=self.max_attempts, aws_conn_id=self.aws_conn_id,
                region_name=self.region_name, verify=self.verify, botocore_config=self.botocore_config,
            ),
            method_name="execute_complete",
        )

    @staticmethod
    def _ended(job: dict[str, Any]) -> AirflowException:
        # A Stopped job hit its limit or was stopped on purpose: the same request would end the
        # same way (or undo the stop), so retrying is refused; a Failed one may be transient.
        if retry_would_repeat(job):
            return AirflowFailException(ended_message(job))
        return AirflowException(ended_message(job))

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, dict]:
        event = validate_execute_complete_event(event)
        # Airflow resumes a deferred task on a fresh instance, where execute() (which sized the
        # budget) never ran: size it again, or the messages below quote the provider's 60 polls.
        self._size_budget()
        name = event.get("job_name") or self.config["TrainingJobName"]
        if event["status"] != "success":
            # The trigger's message is generic; the job itself says what happened.
            job = self._existing(name)
            if job is not None and job["TrainingJobStatus"] in UNSUCCESSFUL:
                raise self._ended(job)
            if job is not None and job["TrainingJobStatus"] == "Completed":
                return self.serialize_result(name)  # it finished between the last poll and now
            if job is not None and job["TrainingJobStatus"] in RUNNING and event["status"] == "timeout":
                raise AirflowException(still_running_message(job, self.max_attempts, self.check_interval))
            raise AirflowException(f"Waiting for training job {name} failed: {event}")
        result = super().execute_complete(context, event)
        job = result["Training"]
        if job.get("TrainingJobStatus") in UNSUCCESSFUL:
            raise self._ended(job)
        return result
