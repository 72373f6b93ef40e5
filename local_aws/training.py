"""Training jobs with a timeline: InProgress through the real secondary statuses, then an end.

Moto creates a training job already Completed with a fake ``train:progress`` metric. Here it
stays InProgress (Starting -> Downloading -> Training -> Uploading) for ``transition_seconds``,
checks its S3 input channels when "downloading" finishes, and ends Completed with a fake
``validation:mAP`` and a small placeholder ``model.tar.gz`` at ``ModelArtifacts`` -- or Failed /
Stopped when a fault rule, a missing input or StopTrainingJob says so.
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError
from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend

from . import cwlogs, s3io
from .extension import Extension, state_of

# (secondary status, start as a fraction of the timeline, status message)
PHASES: tuple[tuple[str, float, str], ...] = (
    ("Starting", 0.0, "Preparing the instances for training"),
    ("Downloading", 0.15, "Downloading input data"),
    ("Training", 0.35, "Downloading the training image completed; training in progress"),
    ("Uploading", 0.85, "Uploading generated training model"),
)
STOPPING_AT = 0.6  # where a training_stopped fault rule begins stopping the job
METRIC_NAME = "validation:mAP"


@dataclass
class TrainingRun:
    """Timeline of one training job."""

    job: FakeTrainingJob
    started: float
    duration: float
    log_stream: str
    fail_reason: str | None = None
    stop_fault: bool = False
    stop_reason: str | None = None
    stop_at: float | None = None  # monotonic time the job becomes Stopped
    stop_end: datetime | None = None  # its nominal timestamp (None: use the wall clock)
    phase: int = -1
    terminal: bool = False
    log_errors: int = 0

    def at(self, fraction: float) -> datetime:
        """Wall-clock time of a point on the timeline (transitions get nominal timestamps)."""
        return self.job.creation_time + timedelta(seconds=fraction * self.duration)


def create(ext: Extension, backend: SageMakerModelBackend, original: Any, kwargs: dict[str, Any]
           ) -> FakeTrainingJob:
    """Moto's create (validation included), then put the job on a timeline."""
    name = kwargs["training_job_name"]
    if name in backend.training_jobs:
        arn = FakeTrainingJob.arn_formatter(name, backend.account_id, backend.region_name)
        raise ResourceInUseException(
            f"Training job names must be unique within an AWS account and region, "
            f"and a training job with this name already exists ({arn})"
        )
    spec = kwargs.get("algorithm_specification") or {}
    requested_metrics = spec.get("MetricDefinitions")
    job = original(backend, **kwargs)
    # Moto overwrites MetricDefinitions with an unrelated example; give back what was asked.
    if requested_metrics is None:
        job.algorithm_specification.pop("MetricDefinitions", None)
    else:
        job.algorithm_specification["MetricDefinitions"] = requested_metrics
    with ext.lock:
        job.training_job_status = "InProgress"
        job.secondary_status = "Starting"
        job.secondary_status_transitions = []
        job.training_end_time = None
        job.final_metric_data_list = None
        job.failure_reason = None
        job.training_time_in_seconds = None
        job.billable_time_in_seconds = None
        stamp = cwlogs.epoch_ms(job.creation_time) // 1000
        run = TrainingRun(job=job, started=ext.now(), duration=ext.transition_seconds,
                          log_stream=f"{name}/algo-1-{stamp}")
        failure = ext.faults.take("training_failure", name)
        if failure:
            run.fail_reason = failure.reason
        stopped = ext.faults.take("training_stopped", name)
        if stopped:
            run.stop_fault, run.stop_reason = True, stopped.reason
        state_of(backend).training[name] = run
        refresh(ext, backend, run)
    return job


def stop(ext: Extension, backend: SageMakerModelBackend, name: str) -> None:
    """StopTrainingJob: InProgress -> Stopping -> Stopped (a quarter of the timeline later)."""
    with ext.lock:
        run = state_of(backend).training.get(name)
        if run is None or backend.training_jobs.get(name) is not run.job:
            raise ResourceNotFound(f"Requested resource not found: training job {name}")
        refresh(ext, backend, run)
        status = run.job.training_job_status
        if status == "Stopping":
            return
        if status != "InProgress":
            raise ValidationError(
                f"The request was rejected because the training job is in status {status}."
            )
        _begin_stopping(backend, run, utcnow(), "Stopping the training job (StopTrainingJob)")
        run.stop_at = ext.now() + 0.25 * run.duration


def refresh_one(ext: Extension, backend: SageMakerModelBackend, name: str) -> None:
    """Bring one job up to date before it is read."""
    with ext.lock:
        run = state_of(backend).training.get(name)
        if run is not None:
            refresh(ext, backend, run)


def refresh_all(ext: Extension, backend: SageMakerModelBackend) -> None:
    """Bring every live job of ``backend`` up to date."""
    with ext.lock:
        for run in list(state_of(backend).training.values()):
            refresh(ext, backend, run)


def refresh(ext: Extension, backend: SageMakerModelBackend, run: TrainingRun) -> None:
    """Move ``run`` along its timeline to now. Idempotent; caller holds ext.lock."""
    job = run.job
    if run.terminal:
        return
    if backend.training_jobs.get(job.training_job_name) is not job:
        run.terminal = True  # deleted or replaced behind our back (e.g. moto reset)
        return
    now = ext.now()
    if run.stop_at is not None:
        if now >= run.stop_at:
            _finish(ext, backend, run, "Stopped", "Stopped", run.stop_reason, run.stop_end or utcnow())
        return
    frac = (now - run.started) / run.duration if run.duration > 0 else float("inf")
    while run.phase + 1 < len(PHASES) and frac >= PHASES[run.phase + 1][1]:
        name, start, message = PHASES[run.phase + 1]
        if name == "Training":
            missing = _missing_input(backend, job)
            if missing:
                _finish(ext, backend, run, "Failed", "Failed", missing, run.at(start))
                return
        _enter(backend, run, name, message, run.at(start))
        run.phase += 1
    if run.stop_fault and frac >= STOPPING_AT and job.training_job_status == "InProgress":
        _begin_stopping(backend, run, run.at(STOPPING_AT), "Stopping the training job")
        run.stop_at, run.stop_end = run.started + run.duration, run.at(1)
        if frac >= 1:
            _finish(ext, backend, run, "Stopped", "Stopped", run.stop_reason, run.stop_end)
        return
    if frac < 1:
        return
    end = run.at(1)
    if run.fail_reason:
        _finish(ext, backend, run, "Failed", "Failed", run.fail_reason, end)
        return
    value = ext.training_map(job.training_job_name)
    uri = job.model_artifacts["S3ModelArtifacts"]
    try:
        s3io.write(backend.account_id, backend.partition, uri, _model_tarball(job, value))
    except s3io.S3PathError as exc:
        reason = f"ClientError: Failed to upload model artifacts to {uri}: {exc}"
        _finish(ext, backend, run, "Failed", "Failed", reason, end)
        return
    job.final_metric_data_list = [{"MetricName": METRIC_NAME, "Value": value, "Timestamp": end}]
    _log(backend, run, end, f"#quality_metric: host=algo-1, validation mAP <score>={value}")
    _finish(ext, backend, run, "Completed", "Completed", None, end)


def _enter(backend: SageMakerModelBackend, run: TrainingRun, status: str, message: str,
           at: datetime) -> None:
    transitions = run.job.secondary_status_transitions
    if transitions:
        transitions[-1]["EndTime"] = at
    transitions.append({"Status": status, "StartTime": at, "StatusMessage": message})
    run.job.secondary_status = status
    run.job.last_modified_time = at
    _log(backend, run, at, f"[local_aws emulator] {status}: {message}")


def _begin_stopping(backend: SageMakerModelBackend, run: TrainingRun, at: datetime,
                    message: str) -> None:
    run.job.training_job_status = "Stopping"
    _enter(backend, run, "Stopping", message, at)


def _finish(ext: Extension, backend: SageMakerModelBackend, run: TrainingRun, status: str,
            secondary: str, reason: str | None, at: datetime) -> None:
    job = run.job
    message = reason or {"Completed": "Training job completed",
                         "Stopped": "Training job stopped"}.get(secondary, secondary)
    _enter(backend, run, secondary, message, at)
    job.secondary_status_transitions[-1]["EndTime"] = at
    job.training_job_status = status
    job.failure_reason = reason
    job.training_end_time = at
    seconds = max(1, int((at - job.training_start_time).total_seconds()))
    job.training_time_in_seconds = job.billable_time_in_seconds = seconds
    run.terminal = True
    ext.counters[f"training_{status.lower()}"] += 1


def _missing_input(backend: SageMakerModelBackend, job: FakeTrainingJob) -> str | None:
    """FailureReason if an S3 input channel has no data, as the real download step would fail."""
    for channel in job.input_data_config or []:
        source = (channel.get("DataSource") or {}).get("S3DataSource")
        if not source:
            continue
        uri, kind = source.get("S3Uri", ""), source.get("S3DataType", "S3Prefix")
        try:
            found = (s3io.has_prefix(backend.account_id, backend.partition, uri) if kind == "S3Prefix"
                     else s3io.read(backend.account_id, backend.partition, uri) is not None)
        except s3io.S3PathError:
            found = False
        if not found:
            return (f"ClientError: Data download failed: no S3 object at {uri} "
                    f"(channel '{channel.get('ChannelName')}', S3DataType {kind})")
    return None


def _model_tarball(job: FakeTrainingJob, value: float) -> bytes:
    """A tiny, honest placeholder: a tar.gz whose only file says it is not a model."""
    info = json.dumps({
        "emulated": True,
        "note": "Written by the local_aws emulator. This is NOT a trained model.",
        "training_job_name": job.training_job_name,
        METRIC_NAME: value,
    }, indent=2).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        member = tarfile.TarInfo("EMULATED_MODEL.json")
        member.size = len(info)
        member.mtime = cwlogs.epoch_ms(job.creation_time) // 1000
        tar.addfile(member, io.BytesIO(info))
    return buf.getvalue()


def _log(backend: SageMakerModelBackend, run: TrainingRun, at: datetime, line: str) -> None:
    # Best effort: the logs are a convenience and must never break the job's state machine.
    try:
        cwlogs.append(backend.account_id, backend.region_name, cwlogs.TRAINING_LOG_GROUP,
                      run.log_stream, at, line)
    except Exception:  # noqa: BLE001
        run.log_errors += 1
