"""The Ground Truth backend of the ``label`` stage: the labeling-job operator, in the provider's style.

The amazon provider has no labeling-job operator, sensor, trigger or waiter; this package adds
them on top of pure functions that do the thinking (:mod:`sagemaker_vision.core.labeling_job`):

* :class:`GroundTruthLabelingOperator` publishes the inputs (``hooks/ground_truth``), creates the
  job, or reuses the one of the same name, and waits (deferrable, with
  :class:`~sagemaker_vision.triggers.labeling_job.LabelingJobTrigger`) for the output manifest;
* :class:`~sagemaker_vision.sensors.ground_truth.GroundTruthLabelingJobSensor` waits for a job
  started elsewhere; both share :class:`LabelingJobWaitMixin`, and show
  :class:`~sagemaker_vision.links.sagemaker.SageMakerLabelingJobLink`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import AwsBaseHookMixin, aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.sdk import BaseOperator
from botocore.exceptions import ClientError

from sagemaker_vision.core.labeling_inputs import DEFAULT_TEMPLATE_PATH, image_buckets, labeling_input_uris
from sagemaker_vision.core.labeling_job import (
    DEFAULT_TASK_KEYWORDS,
    DEFAULT_TASK_TITLE,
    DEFAULT_WAITER_DELAY,
    FAILED_STATES,
    LABELING_JOB_COMPLETE,
    LABELING_JOB_STATUS_QUERIES,
    REUSABLE_STATES,
    STOPPABLE_STATES,
    TERMINAL_STATES,
    as_list,
    format_progress,
    job_failure_message,
    labeling_job_request,
    labeling_wait_budget_s,
    manifest_uri_of,
    output_manifest_uri,
    output_path_of,
    waiter_attempts,
)
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks.ground_truth import ensure_cors, manifest_refs, prepare_labeling_inputs
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.links.sagemaker import SageMakerLabelingJobLink, persist_links
from sagemaker_vision.triggers.labeling_job import LabelingJobTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["GroundTruthLabelingOperator", "LabelingJobWaitMixin"]


class LabelingJobWaitMixin(AwsBaseHookMixin[SageMakerVisionHook]):
    """What the operator and the sensor share: the hook, describing, finishing and trigger events."""

    aws_hook_class = SageMakerVisionHook
    job_name: str
    log: Any  # BaseOperator's logger (a property there)

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        params = super()._hook_parameters
        if params["config"] is None:
            params["config"] = aws.botocore_config()
        return params

    def _describe(self) -> dict[str, Any]:
        job = self.hook.find_labeling_job(self.job_name)
        if job is None:
            raise AirflowException(
                f"Labeling job {self.job_name} does not exist in {self.hook.conn_region_name}"
            )
        return job

    def _finish(self, job: Mapping[str, Any]) -> str:
        """The output manifest URI of a Completed job; AirflowException with FailureReason otherwise."""
        self.log.info("%s", format_progress(job))
        status = job["LabelingJobStatus"]
        if status in FAILED_STATES:
            raise AirflowException(job_failure_message(job))
        if status != "Completed":
            raise AirflowException(f"Labeling job {self.job_name} is still {status}")
        uri = (job.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
        if not uri:
            raise AirflowException(
                f"Labeling job {self.job_name} is Completed but reports no OutputDatasetS3Uri"
            )
        self.log.info("Labeling job %s wrote its output manifest to %s", self.job_name, uri)
        return uri

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after :class:`LabelingJobTrigger`: the output manifest URI, or the reason it failed."""
        event = validate_execute_complete_event(event)
        job_name = event.get("job_name", self.job_name)
        if job_name != self.job_name:
            raise AirflowException(f"Trigger event is for labeling job {job_name}, not {self.job_name}")
        if event["status"] == "success":
            return self._finish(self._describe())
        if event["status"] == "timeout":
            raise AirflowException(
                f"Stopped waiting, but labeling job {job_name} is still running ({event.get('message')}). "
                "Clear or retry this task to resume waiting on the same job (it is reused, nothing is "
                "created again)"
            )
        # failed / stopped / error: the job's own state says best what happened.
        job = self.hook.find_labeling_job(job_name)
        if job is not None and job["LabelingJobStatus"] in FAILED_STATES:
            self._finish(job)  # raises with FailureReason
        raise AirflowException(
            f"Waiting for labeling job {job_name} failed ({event['status']}): {event.get('message')}"
        )

    def _trigger(self, waiter_delay: int, waiter_max_attempts: int) -> LabelingJobTrigger:
        return LabelingJobTrigger(
            job_name=self.job_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )

    def _persist_link(self, context: Context) -> None:
        # Through persist_links: reading the hook's region may fail too, and a link never fails its task.
        # The mixin is only ever part of an operator or a sensor (both BaseOperators).
        persist_links(context, cast(BaseOperator, self), self.hook, [SageMakerLabelingJobLink], job_name=self.job_name)


class GroundTruthLabelingOperator(LabelingJobWaitMixin, AwsBaseOperator[SageMakerVisionHook]):
    """Label images with bounding boxes in a SageMaker Ground Truth labeling job.

    Publishes the inputs (manifest from ``image_uris``, label categories, worker UI) under
    ``inputs_prefix``, creates the job and waits for it; returns the output manifest's S3 URI.

    Re-running is safe: a job named ``job_name`` that is Initializing, InProgress or Completed
    is reused (nothing is uploaded or created again), so a retry or a cleared task picks up the
    job it started. A Failed, Stopping or Stopped job cannot be restarted: the task fails with
    its ``FailureReason`` and you change ``job_name`` to try again.

    :param job_name: The labeling job's name, unique in the account and region (templated).
    :param role_arn: IAM role Ground Truth assumes to read inputs and write outputs (templated).
    :param output_path: S3 prefix the job writes under (templated).
    :param label_attribute: Key of the labels in the output manifest (templated).
    :param labels: The 1 to 10 box labels, in class-id order (templated).
    :param task_description: What workers read; also the header of the worker UI (templated).
    :param inputs_prefix: S3 prefix for the input manifest, categories and UI (templated).
    :param image_uris: The images to label, as s3:// URIs (templated); or give
        ``input_manifest_uri`` for an existing manifest of ``{"source-ref": ...}`` lines.
    :param input_manifest_uri: An existing input manifest, instead of ``image_uris`` (templated).
    :param workteam_arn: A private or vendor work team (templated). Required: the public
        workforce (Mechanical Turk) closed on 2026-09-30.
    :param workers_per_object: Workers who label each image, 1-9; their boxes are consolidated.
    :param task_time_limit_s: Seconds a worker has for one image (30 to 28,800).
    :param task_availability_lifetime_s: Seconds a task stays on offer; None for one day
        (at most 30 days).
    :param task_title: Title workers see (templated).
    :param task_keywords: Up to 5 keywords workers see with the task.
    :param max_concurrent_tasks: Images on offer at the same time (AWS default 1000).
    :param stopping_conditions: ``MaxHumanLabeledObjectCount`` and/or
        ``MaxPercentageOfInputDatasetLabeled``.
    :param tags: Tags for the job, as a dict or a list of ``{"Key", "Value"}``.
    :param template_path: The worker UI template; the bundled bounding-box UI by default.
    :param wait_for_completion: Wait for the job to end. If False, return the URI where the
        output manifest will appear (``<output_path>/<job>/manifests/output/output.manifest``).
    :param waiter_delay: Seconds between two status checks.
    :param waiter_max_attempts: Status checks before giving up waiting (the job keeps running);
        None covers the job's own limits (:func:`labeling_wait_budget_s`).
    :param ensure_bucket_cors: Before creating the job, give each bucket holding the images the
        CORS rule Ground Truth needs (:func:`ensure_cors`; needs ``s3:GetBucketCORS`` and
        ``s3:PutBucketCORS``). False if you manage the buckets' CORS yourself.
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name",
        "role_arn",
        "output_path",
        "label_attribute",
        "labels",
        "task_description",
        "inputs_prefix",
        "image_uris",
        "input_manifest_uri",
        "workteam_arn",
        "task_title",
        "tags",
    )
    template_fields_renderers = {"labels": "json", "image_uris": "json", "tags": "json"}
    operator_extra_links = (SageMakerLabelingJobLink(),)
    ui_color = "#f0eede"

    def __init__(
        self,
        *,
        job_name: str,
        role_arn: str,
        output_path: str,
        label_attribute: str,
        labels: Sequence[str],
        task_description: str,
        inputs_prefix: str,
        image_uris: Sequence[str] | None = None,
        input_manifest_uri: str | None = None,
        workteam_arn: str | None = None,
        workers_per_object: int = 1,
        task_time_limit_s: int = 300,
        task_availability_lifetime_s: int | None = None,
        task_title: str = DEFAULT_TASK_TITLE,
        task_keywords: Sequence[str] = DEFAULT_TASK_KEYWORDS,
        max_concurrent_tasks: int | None = None,
        stopping_conditions: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        template_path: str | Path = DEFAULT_TEMPLATE_PATH,
        wait_for_completion: bool = True,
        waiter_delay: int = DEFAULT_WAITER_DELAY,
        waiter_max_attempts: int | None = None,
        ensure_bucket_cors: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if (image_uris is None) == (input_manifest_uri is None):
            raise ValueError(f"{self.task_id}: give exactly one of image_uris and input_manifest_uri")
        self.job_name = job_name
        self.role_arn = role_arn
        self.output_path = output_path
        self.label_attribute = label_attribute
        self.labels = labels
        self.task_description = task_description
        self.inputs_prefix = inputs_prefix
        self.image_uris = image_uris
        self.input_manifest_uri = input_manifest_uri
        self.workteam_arn = workteam_arn
        self.workers_per_object = workers_per_object
        self.task_time_limit_s = task_time_limit_s
        self.task_availability_lifetime_s = task_availability_lifetime_s
        self.task_title = task_title
        self.task_keywords = task_keywords
        self.max_concurrent_tasks = max_concurrent_tasks
        self.stopping_conditions = stopping_conditions
        self.tags = tags
        self.template_path = template_path
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.ensure_bucket_cors = ensure_bucket_cors
        self.deferrable = deferrable

    def build_request(self, region: str) -> dict[str, Any]:
        """The CreateLabelingJob request for ``region``; raises ConfigError before any AWS call."""
        uris = labeling_input_uris(self.inputs_prefix)
        return labeling_job_request(
            job_name=self.job_name,
            input_manifest_uri=self.input_manifest_uri or uris["input_manifest_uri"],
            output_path=self.output_path,
            role_arn=self.role_arn,
            label_attribute=self.label_attribute,
            labels=as_list(self.labels, "labels"),
            categories_uri=uris["categories_uri"],
            template_uri=uris["template_uri"],
            region=region,
            task_description=self.task_description,
            workteam_arn=self.workteam_arn,
            workers_per_object=self.workers_per_object,
            task_time_limit_s=self.task_time_limit_s,
            task_availability_lifetime_s=self.task_availability_lifetime_s,
            task_title=self.task_title,
            task_keywords=as_list(self.task_keywords, "task_keywords"),
            max_concurrent_tasks=self.max_concurrent_tasks,
            stopping_conditions=self.stopping_conditions,
            tags=self.tags,
        )

    def _attempts(self, job_or_request: Mapping[str, Any]) -> int:
        """Status checks the wait may make: as given, or enough to cover the job's own limits."""
        if self.waiter_max_attempts is not None:
            return int(self.waiter_max_attempts)
        return waiter_attempts(labeling_wait_budget_s(job_or_request), self.waiter_delay)

    def execute(self, context: Context) -> str:
        request = self.build_request(self.hook.conn_region_name)
        job = self.hook.find_labeling_job(self.job_name)
        if job is None:
            job = self._create(request)
            self.log.info("%s", format_progress(job))
        else:
            self._check_reusable(job, request)
            self.log.info("Reusing %s (created %s)", format_progress(job), job.get("CreationTime"))
        self._persist_link(context)

        if job["LabelingJobStatus"] in TERMINAL_STATES:
            return self._finish(job)
        if not self.wait_for_completion:
            uri = output_manifest_uri(self.output_path, self.job_name)
            self.log.info("Not waiting; the output manifest will be written to %s", uri)
            return uri
        if self.deferrable:
            self.defer(
                trigger=self._trigger(self.waiter_delay, self._attempts(job)),
                method_name="execute_complete",
            )
        return self._wait(self._attempts(job))

    def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        labels = as_list(self.labels, "labels")
        image_uris = None if self.input_manifest_uri else as_list(self.image_uris, "image_uris")
        uris = prepare_labeling_inputs(
            aws.client("s3", self.aws_conn_id, self.region_name),
            image_uris=image_uris,
            labels=labels,
            description=self.task_description,
            inputs_prefix=self.inputs_prefix,
            template_path=self.template_path,
        )
        self.log.info("Published the labeling inputs %s; labels %s", ", ".join(uris.values()), labels)
        s3 = aws.client("s3", self.aws_conn_id, self.region_name)
        # An existing input manifest is checked line by line before the paid CreateLabelingJob.
        if image_uris is not None:
            image_refs = image_uris
        else:
            assert self.input_manifest_uri is not None  # __init__: exactly one of image_uris and input_manifest_uri
            image_refs = list(manifest_refs(s3, self.input_manifest_uri))
        if self.ensure_bucket_cors:
            ensure_cors(s3, image_buckets(image_refs), log=self.log)
        try:
            arn = self.hook.conn.create_labeling_job(**request)["LabelingJobArn"]
            self.log.info("Created labeling job %s", arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUse":
                raise
            # Created meanwhile by another try of this task: reuse it like any existing job.
            self.log.info("Labeling job %s was created meanwhile; reusing it", self.job_name)
            job = self._describe()
            self._check_reusable(job, request)
            return job
        return self._describe()

    def _check_reusable(self, job: Mapping[str, Any], request: Mapping[str, Any]) -> None:
        """Refuse a job of this name that cannot finish, or that labels something else."""
        status = job["LabelingJobStatus"]
        if status in FAILED_STATES:
            raise AirflowException(job_failure_message(job))
        if status not in REUSABLE_STATES:
            raise AirflowException(
                f"Labeling job {self.job_name} is {status} and will end Stopped; it cannot be reused: "
                "change job_name to start a new job."
            )
        differences = [
            f"{name}: the existing job has {mine!r}, this task asks for {theirs!r}"
            for name, mine, theirs in (
                ("label_attribute", job.get("LabelAttributeName"), request["LabelAttributeName"]),
                ("input_manifest_uri", manifest_uri_of(job), manifest_uri_of(request)),
                ("output_path", output_path_of(job), output_path_of(request)),
            )
            if mine != theirs
        ]
        if differences:
            raise AirflowException(
                f"A labeling job named {self.job_name} already exists but labels something else; "
                "change job_name or the arguments. " + "; ".join(differences)
            )

    def _wait(self, attempts: int) -> str:
        """Wait on the worker with the sync waiter, logging status and LabelCounters each time."""
        try:
            wait(
                waiter=self.hook.get_waiter(LABELING_JOB_COMPLETE),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=attempts,
                args={"LabelingJobName": self.job_name},
                failure_message=f"Labeling job {self.job_name} did not complete",
                status_message=f"Labeling job {self.job_name} not done yet",
                status_args=LABELING_JOB_STATUS_QUERIES,
            )
        except WaiterTerminalFailure:
            pass  # Failed or Stopped: _finish raises with the FailureReason
        except WaiterMaxAttemptsError:
            raise AirflowException(
                f"Stopped waiting, but the job is still running: {format_progress(self._describe())} "
                f"after {attempts} checks {self.waiter_delay} s apart. Clear or retry this task to "
                f"resume waiting on the same job ({self.job_name} is reused, nothing is created again)"
            ) from None
        return self._finish(self._describe())

    def on_kill(self) -> None:
        """Stop the job if it is still running: a killed task should not leave workers paid for it."""
        job = self.hook.find_labeling_job(self.job_name)
        if job is None or job["LabelingJobStatus"] not in STOPPABLE_STATES:
            return
        self.log.info("Stopping %s", format_progress(job))
        self.hook.stop_labeling_job(self.job_name)
