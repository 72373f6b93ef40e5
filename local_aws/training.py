"""Training jobs on the emulated clock: InProgress through the real secondary statuses, then an end.

Moto creates a training job already Completed with a fake ``train:progress`` metric. Here it
stays InProgress (Starting -> Downloading -> Training -> Uploading) for an *emulated* duration,
checks its S3 input channels when "downloading" finishes, and ends Completed with a fake
``validation:mAP`` and a small placeholder ``model.tar.gz`` at ``ModelArtifacts`` -- or Failed /
Stopped when a fault rule, a missing input, StopTrainingJob or its stopping condition says so.

Durations are emulated seconds (``estimated_seconds``, or ``Control.set_duration("training", ...)``)
compressed by the extension's time scale, frozen when the job is created; the timestamps in
DescribeTrainingJob are emulated too (creation time plus emulated offsets).

The stopping condition is enforced as the SageMaker API reference describes it: when the job
would run past ``MaxRuntimeInSeconds`` (default one day), it goes Stopping at that moment and,
after the 120 s SIGTERM grace, Stopped with secondary status ``MaxRuntimeExceeded``. CreateTrainingJob
refuses a spot configuration AWS refuses (see ``check_stopping_condition``).
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError
from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend

from . import cwlogs, s3io
from .extension import Extension, state_of

# Default emulated duration of a job, from its request. AWS publishes none of these; they are
# round estimates of a small built-in Object Detection job on one ml.p3.2xlarge:
STARTING_SECONDS = 180.0  # launching the ML instances
DOWNLOADING_SECONDS = 90.0  # pulling the training image, opening the Pipe channels
UPLOADING_SECONDS = 30.0  # writing model.tar.gz (SSD weights, ~100 MB) to S3
IMAGES_PER_SECOND = 20.0  # training throughput per instance (SSD-512, one V100)
EPOCH_OVERHEAD_SECONDS = 5.0  # validation pass and bookkeeping per epoch
DEFAULT_EPOCHS = 30  # the algorithm's default ``epochs``

# StoppingCondition (API reference and the botocore model's documentation):
DEFAULT_MAX_RUNTIME_SECONDS = 86_400  # "The default value is 1 day."
MAX_RUNTIME_LIMIT_SECONDS = 28 * 86_400  # "The maximum value is 28 days."
SIGTERM_GRACE_SECONDS = 120.0  # "SIGTERM ... delays job termination for 120 seconds"

# (secondary status, status message) in timeline order; starts come from the job's plan.
PHASES: tuple[tuple[str, str], ...] = (
    ("Starting", "Preparing the instances for training"),
    ("Downloading", "Downloading input data"),
    ("Training", "Downloading the training image completed; training in progress"),
    ("Uploading", "Uploading generated training model"),
)
STOPPING_AT = 0.6  # where a training_stopped fault rule begins stopping the job (fraction)
METRIC_NAME = "validation:mAP"
# Final StatusMessage of a job its stopping condition ended (no FailureReason: it did not fail).
LIMIT_MESSAGES = {
    "MaxRuntimeExceeded": "Training job runtime exceeded MaxRuntimeInSeconds provided",
    "MaxWaitTimeExceeded": "Training job exceeded MaxWaitTimeInSeconds provided while waiting for Spot capacity",
}


@dataclass
class TrainingRun:
    """Timeline of one training job, in emulated seconds since creation."""

    job: FakeTrainingJob
    started: float  # real monotonic instant of creation
    scale: float  # emulated seconds per real second, frozen at creation (inf: instant)
    duration: float  # emulated seconds until Completed
    starts: tuple[float, ...]  # emulated start of each PHASES entry
    limit: float  # emulated seconds after which the stopping condition ends the job
    log_stream: str
    limit_status: str = "MaxRuntimeExceeded"  # the secondary status it then ends with
    fail_reason: str | None = None
    stop_fault: bool = False
    stop_reason: str | None = None
    stop_at: float | None = None  # emulated instant the job becomes Stopped
    stop_secondary: str = "Stopped"  # its final secondary status
    phase: int = -1
    terminal: bool = False
    log_errors: int = 0

    def at(self, emulated: float) -> datetime:
        """Emulated timestamp of a point on the timeline."""
        return self.job.creation_time + timedelta(seconds=emulated)

    def elapsed(self, now: float) -> float:
        """Emulated seconds since creation at the real monotonic instant ``now``."""
        return float("inf") if self.scale == float("inf") else (now - self.started) * self.scale


def _hyperparameter(job_kwargs: dict[str, Any], key: str, default: float) -> float:
    try:
        return float((job_kwargs.get("hyper_parameters") or {}).get(key, default))
    except (TypeError, ValueError):
        return default


def estimated_seconds(kwargs: dict[str, Any]) -> tuple[float, ...]:
    """Emulated seconds of each phase (Starting, Downloading, Training, Uploading) for a request.

    Training time is ``epochs * (num_training_samples / (IMAGES_PER_SECOND * InstanceCount) +
    EPOCH_OVERHEAD_SECONDS)``: 30 epochs of 100 images on one instance take 5 min, and the
    whole job about 10 min.
    """
    epochs = max(1.0, _hyperparameter(kwargs, "epochs", DEFAULT_EPOCHS))
    samples = max(0.0, _hyperparameter(kwargs, "num_training_samples", 0))
    try:
        instances = max(1, int((kwargs.get("resource_config") or {}).get("InstanceCount", 1)))
    except (TypeError, ValueError):
        instances = 1
    training = epochs * (samples / (IMAGES_PER_SECOND * instances) + EPOCH_OVERHEAD_SECONDS)
    return (STARTING_SECONDS, DOWNLOADING_SECONDS, training, UPLOADING_SECONDS)


# The fake validation:mAP: a saturating learning curve in the amount of data and of training.
MAP_FLOOR = 0.40  # a model trained on nothing
MAP_SPAN = 0.55  # the ceiling is MAP_FLOOR + MAP_SPAN = 0.95, never reached
EPOCH_HALF = 2.0  # epochs at which the epoch factor is one half


def fake_map(samples: float, epochs: float) -> float:
    """The emulator's stand-in for a real validation:mAP, from the two inputs that drive it.

    ``mAP = MAP_FLOOR + MAP_SPAN * D * E`` with ``D = ln(1+n) / (1 + ln(1+n))`` for ``n``
    training samples and ``E = e / (e + EPOCH_HALF)`` for ``e`` epochs: deterministic, strictly
    increasing in both, and inside [0.40, 0.95). So two runs on the same data and settings score
    the same (the gate's tolerance lets the second deploy), more data or more epochs score higher.
    30 epochs of 10 images give 0.764, of 100 images 0.824, of 1000 images 0.850; one epoch of
    10 images 0.529.
    """
    n = max(0.0, float(samples))
    e = max(0.0, float(epochs))
    data = math.log1p(n) / (1.0 + math.log1p(n))
    return MAP_FLOOR + MAP_SPAN * data * (e / (e + EPOCH_HALF))


def map_inputs(backend: SageMakerModelBackend, job: FakeTrainingJob) -> tuple[float, float]:
    """(training samples, epochs) of a job: its hyperparameters, else the train manifest's lines.

    ``num_training_samples`` is required by the built-in Object Detection algorithm; a job
    without it (another image) is measured by the line count of its ``train`` channel's
    augmented manifest (one JSON line per sample). ``epochs`` defaults to the algorithm's documented default (30).
    """
    hyper = {"hyper_parameters": job.hyper_parameters or {}}
    epochs = max(1.0, _hyperparameter(hyper, "epochs", DEFAULT_EPOCHS))
    samples = _hyperparameter(hyper, "num_training_samples", -1.0)
    if samples >= 0:
        return samples, epochs
    lines = 0
    for channel in job.input_data_config or []:
        source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        if channel.get("ChannelName") != "train" or source.get("S3DataType") != "AugmentedManifestFile":
            continue  # (a ManifestFile is one JSON array of keys, not one line per sample)
        try:
            body = s3io.read(backend.account_id, backend.partition, source.get("S3Uri", ""))
        except s3io.S3PathError:
            body = None
        lines += sum(1 for line in (body or b"").splitlines() if line.strip())
    return float(lines), epochs


def check_stopping_condition(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The StoppingCondition AWS would store, or the ValidationException it would send.

    - MaxRuntimeInSeconds defaults to one day and may not exceed 28 days (API_StoppingCondition).
    - MaxWaitTimeInSeconds belongs to managed spot training: AWS answers "Invalid
      MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is set to true".
    - With EnableManagedSpotTraining, MaxWaitTimeInSeconds is required and "must be equal to or
      greater than MaxRuntimeInSeconds" (API_StoppingCondition; Managed Spot Training page:
      "Set EnableManagedSpotTraining to True and specify the MaxWaitTimeInSeconds").
    """
    condition = dict(kwargs.get("stopping_condition") or {})
    runtime = condition.setdefault("MaxRuntimeInSeconds", DEFAULT_MAX_RUNTIME_SECONDS)
    if runtime > MAX_RUNTIME_LIMIT_SECONDS:
        raise ValidationError(
            f"Invalid MaxRuntimeInSeconds: {runtime}. The maximum value is {MAX_RUNTIME_LIMIT_SECONDS} "
            "seconds (28 days)."
        )
    wait = condition.get("MaxWaitTimeInSeconds")
    if not kwargs.get("enable_managed_spot_training"):
        if wait is not None:
            raise ValidationError(
                "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is set to true"
            )
    elif wait is None or wait < runtime:
        raise ValidationError(
            f"Invalid MaxWaitTimeInSeconds: {wait}. It is required when EnableManagedSpotTraining is set "
            f"to true, and must be greater than or equal to MaxRuntimeInSeconds ({runtime})."
        )
    return condition


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
    condition = check_stopping_condition(kwargs)
    kwargs = {**kwargs, "stopping_condition": condition}
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
        job.training_start_time = None  # set when the instances are up (Downloading)
        job.training_end_time = None
        job.final_metric_data_list = None
        job.failure_reason = None
        job.training_time_in_seconds = None
        job.billable_time_in_seconds = None
        stamp = cwlogs.epoch_ms(job.creation_time) // 1000
        phases = estimated_seconds(kwargs)
        planned = sum(phases)
        duration = ext.emulated_duration("training", name, planned)
        factor = duration / planned if planned > 0 else 0.0
        # Managed spot: the job may wait in Starting for Spot capacity first (none by default).
        spot = bool(kwargs.get("enable_managed_spot_training"))
        capacity_wait = ext.emulated_duration("training_spot_wait", name, 0.0) if spot else 0.0
        starts, offset = [0.0], 0.0
        for seconds in phases[:-1]:
            offset += seconds
            starts.append(capacity_wait + offset * factor)
        # MaxRuntimeInSeconds counts the run; MaxWaitTimeInSeconds the wait plus the run.
        limit, limit_status = capacity_wait + float(condition["MaxRuntimeInSeconds"]), "MaxRuntimeExceeded"
        if spot and float(condition["MaxWaitTimeInSeconds"]) < limit:
            limit, limit_status = float(condition["MaxWaitTimeInSeconds"]), "MaxWaitTimeExceeded"
        run = TrainingRun(job=job, started=ext.now(), scale=ext.time_scale, duration=capacity_wait + duration,
                          starts=tuple(starts), limit=limit, limit_status=limit_status,
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
    """StopTrainingJob: InProgress -> Stopping -> Stopped after the SIGTERM grace period."""
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
        now = run.elapsed(ext.now())
        _begin_stopping(backend, run, run.at(now), "Stopping the training job (StopTrainingJob)")
        run.stop_at = now + SIGTERM_GRACE_SECONDS


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
    elapsed = run.elapsed(ext.now())
    if run.stop_at is not None:
        if elapsed >= run.stop_at:
            reason = run.stop_reason if run.stop_secondary == "Stopped" else None
            message = LIMIT_MESSAGES.get(run.stop_secondary)
            _finish(ext, backend, run, "Stopped", run.stop_secondary, reason, run.at(run.stop_at), message)
        return
    # The stopping condition cuts the timeline short when the job would outlast it.
    over_limit = run.duration > run.limit
    horizon = min(elapsed, run.limit) if over_limit else elapsed
    while run.phase + 1 < len(PHASES) and horizon >= run.starts[run.phase + 1]:
        name, message = PHASES[run.phase + 1]
        start = run.starts[run.phase + 1]
        if name == "Training":
            missing = _missing_input(backend, job)
            if missing:
                _finish(ext, backend, run, "Failed", "Failed", missing, run.at(start))
                return
        if name == "Downloading":
            job.training_start_time = run.at(start)
        _enter(backend, run, name, message, run.at(start))
        run.phase += 1
    stop_fault_at = STOPPING_AT * run.duration
    if run.stop_fault and (not over_limit or stop_fault_at < run.limit) and elapsed >= stop_fault_at:
        _begin_stopping(backend, run, run.at(stop_fault_at), "Stopping the training job")
        run.stop_at = min(run.duration, run.limit)
        refresh(ext, backend, run)
        return
    if over_limit:
        if elapsed >= run.limit:
            which = "MaxRuntimeInSeconds" if run.limit_status == "MaxRuntimeExceeded" else "MaxWaitTimeInSeconds"
            _begin_stopping(backend, run, run.at(run.limit), f"Stopping the training job: {which} reached")
            run.stop_at, run.stop_secondary = run.limit + SIGTERM_GRACE_SECONDS, run.limit_status
            refresh(ext, backend, run)
        return
    if elapsed < run.duration:
        return
    end = run.at(run.duration)
    if run.fail_reason:
        _finish(ext, backend, run, "Failed", "Failed", run.fail_reason, end)
        return
    value = ext.training_map(job.training_job_name, default=fake_map(*map_inputs(backend, job)))
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
            secondary: str, reason: str | None, at: datetime, message: str | None = None) -> None:
    job = run.job
    message = message or reason or {"Completed": "Training job completed",
                                    "Stopped": "Training job stopped"}.get(secondary, secondary)
    _enter(backend, run, secondary, message, at)
    job.secondary_status_transitions[-1]["EndTime"] = at
    job.training_job_status = status
    job.failure_reason = reason
    job.training_end_time = at
    begun = job.training_start_time or job.creation_time
    seconds = max(1, int((at - begun).total_seconds()))
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
