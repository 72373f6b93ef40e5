"""How long to wait for a training job, and what to say when the wait ends first. No Airflow, no AWS.

The provider's deferrable ``SageMakerTrainingOperator`` polls ``max_attempts`` times (default 60)
every ``check_interval`` seconds: 30 minutes at the default 30 s, while a job may run for a day.
The wait must instead cover the job's own stopping condition, after which SageMaker ends it:

- ``MaxRuntimeInSeconds``: "If the job does not complete during this time, SageMaker ends the
  job ... The default value is 1 day. The maximum value is 28 days." (API_StoppingCondition; the
  botocore model's ``StoppingCondition`` documentation says the same).
- With managed spot training, ``MaxWaitTimeInSeconds``: "the amount of time spent waiting for Spot
  capacity plus the amount of time the job can run. It must be equal to or greater than
  MaxRuntimeInSeconds." It already contains the run time, so the limit is the larger of the two,
  not their sum.
- ``MaxPendingTimeInSeconds`` (training plans): time a job may be pending before it runs.
- Stopping: "SageMaker sends the algorithm the SIGTERM signal, which delays job termination for
  120 seconds", and the job then uploads what it saved.

On top of the limit comes a margin for what the limit may not count: provisioning the instances
and pulling the training image before the job runs, and uploading the model after it ends.
``STARTUP_MARGIN_SECONDS`` and ``UPLOAD_MARGIN_SECONDS`` are round, generous estimates (AWS
publishes no figure); waiting too long costs nothing, because SageMaker ends the job at its limit
whatever the waiter does, while stopping early leaves a billing job unwatched.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from sagemaker_vision.core.naming import RETRY_BASE_MAX, RETRY_SUFFIX_DIGITS, retry_job_name  # noqa: F401  (re-exported)

DEFAULT_MAX_RUNTIME_SECONDS = 86_400  # "The default value is 1 day."
MAX_RUNTIME_LIMIT_SECONDS = 28 * 86_400  # "The maximum value is 28 days."
SIGTERM_GRACE_SECONDS = 120  # "delays job termination for 120 seconds"
STARTUP_MARGIN_SECONDS = 15 * 60  # round estimate: instances + training image before the run
UPLOAD_MARGIN_SECONDS = 15 * 60  # round estimate: model artifacts to S3 after the run
# What the provider's trigger would do without a budget: 60 polls (SageMakerTrainingOperator).
PROVIDER_DEFAULT_ATTEMPTS = 60
# The provider's retry name for a taken job name (``<base>-<10 digits>``) and the longest base it
# keeps whole are names: core/naming defines them (RETRY_BASE_MAX, retry_job_name).
_SUFFIX_DIGITS = RETRY_SUFFIX_DIGITS


def stopping_limit_seconds(config: dict[str, Any]) -> int:
    """Seconds after which SageMaker ends a job created with ``config`` (a CreateTrainingJob request)."""
    condition = config.get("StoppingCondition") or {}
    runtime = int(condition.get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_SECONDS)
    limit = runtime
    if config.get("EnableManagedSpotTraining"):
        limit = max(runtime, int(condition.get("MaxWaitTimeInSeconds") or runtime))
    return limit + int(condition.get("MaxPendingTimeInSeconds") or 0)


def wait_budget_seconds(config: dict[str, Any]) -> int:
    """Seconds to wait for the job: its stopping limit, the SIGTERM grace, and the margins."""
    return stopping_limit_seconds(config) + SIGTERM_GRACE_SECONDS + STARTUP_MARGIN_SECONDS + UPLOAD_MARGIN_SECONDS


def wait_attempts(config: dict[str, Any], poll_seconds: float) -> int:
    """The trigger's ``waiter_max_attempts`` so that polls every ``poll_seconds`` cover the budget.

    The provider's waiter sleeps between attempts only (none before the first), so ``n`` attempts
    span ``(n - 1) * poll_seconds``; one more attempt than the quotient covers the whole budget.
    """
    if not (isinstance(poll_seconds, int | float) and math.isfinite(poll_seconds) and poll_seconds > 0):
        raise ValueError(f"poll_seconds must be a positive number of seconds, got {poll_seconds!r}")
    return math.ceil(wait_budget_seconds(config) / poll_seconds) + 1


def is_run_job(name: str, base: str) -> bool:
    """True for the run's own job name and for the provider's retry names derived from it."""
    if name == base:
        return True
    return re.fullmatch(re.escape(retry_job_name(base)[:-_SUFFIX_DIGITS]) + "[0-9]{" + str(_SUFFIX_DIGITS) + "}",
                        name) is not None


def elapsed_seconds(description: dict[str, Any], now: datetime | None = None) -> float | None:
    """Seconds since the job was created, by the latest clock the description shows.

    On AWS that is ``now``; the emulator's transitions carry emulated timestamps, which may run
    ahead of the wall clock, so the latest of ``now``, ``LastModifiedTime`` and the transitions
    counts.
    """
    created = description.get("CreationTime")
    if not isinstance(created, datetime):
        return None
    latest = now or datetime.now(UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    stamps = [description.get("LastModifiedTime")]
    stamps += [t.get("StartTime") for t in description.get("SecondaryStatusTransitions") or []]
    for stamp in stamps:
        if isinstance(stamp, datetime):
            stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
            latest = max(latest, stamp)
    return max(0.0, (latest - created).total_seconds())


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def still_running_message(description: dict[str, Any], attempts: int, poll_seconds: float,
                          now: datetime | None = None) -> str:
    """The error of a wait that ran out while the job runs on: what runs, for how long, what next."""
    elapsed = elapsed_seconds(description, now)
    limit = stopping_limit_seconds(description)
    return (
        f"Stopped waiting for training job {description.get('TrainingJobName')} after {attempts} polls "
        f"every {poll_seconds:g} s, but the job is still running: status {description.get('TrainingJobStatus')}, "
        f"secondary status {description.get('SecondaryStatus')}, elapsed "
        f"{_duration(elapsed) if elapsed is not None else 'unknown'} (h:mm:ss) since it was created; SageMaker "
        f"ends it after {_duration(limit)} of its stopping condition. It keeps billing until then. A retry of "
        "this task resumes waiting on this same job and starts no other; to end it now, call StopTrainingJob."
    )


def ended_message(description: dict[str, Any]) -> str:
    """Why a job ended without a model: its status, secondary status and reason."""
    name, status = description.get("TrainingJobName"), description.get("TrainingJobStatus")
    secondary = description.get("SecondaryStatus")
    reason = description.get("FailureReason")
    if not reason:
        transitions = description.get("SecondaryStatusTransitions") or []
        reason = (transitions[-1].get("StatusMessage") if transitions else None) or "(no FailureReason given)"
    text = f"Training job {name} ended {status}"
    if secondary and secondary != status:
        text += f" ({secondary})"
    text += f": {reason}"
    if secondary == "MaxRuntimeExceeded":
        text += (f". It hit MaxRuntimeInSeconds="
                 f"{(description.get('StoppingCondition') or {}).get('MaxRuntimeInSeconds')}; raise "
                 "max_training_hours (or train on less data or fewer epochs), then clear the task")
    elif secondary == "MaxWaitTimeExceeded":
        text += ". Spot capacity did not arrive within MaxWaitTimeInSeconds; raise it or train on demand"
    return text


def retry_would_repeat(description: dict[str, Any]) -> bool:
    """True when retrying the same request would end the same way: a limit hit, or a deliberate stop."""
    return description.get("TrainingJobStatus") == "Stopped"
