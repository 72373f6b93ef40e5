"""The ``train`` operator's wait budget, its timeout message and its resume, on the emulated clock.

Jobs here last emulated hours; a fixed time scale compresses them to a few real seconds, and the
trigger polls every 0.05 s, so the provider's default of 60 polls (3 s here) runs out before the
job ends, while the budget sized from the stopping condition does not.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from unittest import mock

import pytest
from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from botocore.exceptions import ClientError

from local_aws import Control
from sagemaker_vision.core import training_budget
from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
POLL = 0.05  # real seconds between the trigger's polls: floats work (asyncio.sleep)
SCALE = 1350.0  # emulated seconds per real second
# 1.5 emulated hours: past 60 polls of the provider's 30 s. At LONG_SCALE it lasts 6 real s, so 60
# polls of 0.05 s (2.95 s of sleep) end well before it even if each poll takes 50 ms on a busy machine.
LONG_JOB = 5400.0
LONG_SCALE = 900.0
# 5 real s at SCALE, under the 7200 s MaxRuntime: far past 10 polls of 0.05 s, and still running when
# the third try looks on a busy machine.
RESUME_JOB = 6750.0


@pytest.fixture
def control(emulator_env, aws_clients):
    ctl = Control(emulator_env.endpoint_url)
    ctl.set_time_scale(SCALE)
    yield ctl
    ctl.clear_durations()
    ctl.clear_faults()
    ctl.set_time_scale(None)


def training_config(aws_clients, name: str, max_runtime: int = 7200, **extra: Any) -> dict[str, Any]:
    import os

    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    key = f"budget/{name}/train.manifest"
    aws_clients["s3"].put_object(Bucket=bucket, Key=key, Body=b'{"source-ref": "s3://x/y.jpg"}\n')
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        "RoleArn": ROLE,
        "HyperParameters": {"epochs": "2", "num_training_samples": "10"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "AugmentedManifestFile", "S3Uri": f"s3://{bucket}/{key}",
            "AttributeNames": ["source-ref", "bounding-box"]}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/budget/models/"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        **extra,
    }


def operator(config: dict[str, Any], **kwargs: Any) -> ObjectDetectionTrainingOperator:
    return ObjectDetectionTrainingOperator(task_id="train", config=config, deferrable=True, check_interval=POLL,
                                           print_log=False, **kwargs)


def defer(op: ObjectDetectionTrainingOperator) -> SageMakerTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": mock.MagicMock()})
    # As the triggerer would: rebuild the trigger from its serialized form.
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath.endswith("SageMakerTrigger")
    return SageMakerTrigger(**kwargs)


def first_event(trigger: SageMakerTrigger, timeout: float = 60) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def jobs_of(aws_clients, base: str) -> list[str]:
    summaries = aws_clients["sagemaker"].list_training_jobs(NameContains=base, MaxResults=100)["TrainingJobSummaries"]
    return sorted(s["TrainingJobName"] for s in summaries if training_budget.is_run_job(s["TrainingJobName"], base))


def offsets(job: dict[str, Any]) -> dict[str, float]:
    """Emulated seconds from the job's creation to the start of each secondary status."""
    return {t["Status"]: (t["StartTime"] - job["CreationTime"]).total_seconds()
            for t in job["SecondaryStatusTransitions"]}


def test_a_job_longer_than_the_providers_60_polls_completes_within_the_budget(control, aws_clients):
    name = "budget-long-2026-12-01-000000"
    control.set_time_scale(LONG_SCALE)
    control.set_duration("training", LONG_JOB, name_prefix=name)
    config = training_config(aws_clients, name)
    started = time.monotonic()
    trigger = defer(operator(config))
    assert trigger.attempts == training_budget.wait_attempts(config, POLL)
    assert trigger.attempts > training_budget.PROVIDER_DEFAULT_ATTEMPTS
    assert trigger.waiter_delay == POLL

    # The provider's default budget, on the same job: 60 polls end while it still trains.
    default = SageMakerTrigger(job_name=name, job_type="Training", waiter_delay=POLL,
                               waiter_max_attempts=training_budget.PROVIDER_DEFAULT_ATTEMPTS)
    assert first_event(default)["status"] == "timeout"
    assert aws_clients["sagemaker"].describe_training_job(TrainingJobName=name)["TrainingJobStatus"] == "InProgress"

    event = first_event(trigger)
    assert event == {"status": "success", "job_name": name}
    assert time.monotonic() - started < 30
    result = operator(config).execute_complete({}, event)["Training"]
    assert result["TrainingJobStatus"] == "Completed"

    # Emulated time: the job took its 1.5 emulated hours, phase by phase, in a few real seconds.
    job = aws_clients["sagemaker"].describe_training_job(TrainingJobName=name)
    assert (job["TrainingEndTime"] - job["CreationTime"]).total_seconds() == pytest.approx(LONG_JOB, abs=1)
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert job["TrainingTimeInSeconds"] > 60 * 30  # longer than 60 polls of the provider's 30 s
    assert jobs_of(aws_clients, name) == [name]


def test_a_budget_that_runs_out_says_the_job_still_runs_and_a_retry_resumes_it(control, aws_clients):
    name = "budget-resume-2026-12-01-000000"
    control.set_duration("training", RESUME_JOB, name_prefix=name)
    config = training_config(aws_clients, name)
    first = operator(config, max_attempts=10)  # a budget far too small, as on AWS before the fix
    event = first_event(defer(first))
    assert event["status"] == "timeout"
    with pytest.raises(AirflowException) as error:
        first.execute_complete({}, event)
    assert not isinstance(error.value, AirflowFailException), "a retry must be allowed"
    text = str(error.value)
    for part in (name, "still running", "status InProgress", "secondary status", "elapsed", "resumes waiting"):
        assert part in text, (part, text)

    # The retry: a fresh operator (as Airflow builds one per try) defers on the same job.
    retry = operator(config)
    trigger = defer(retry)
    assert trigger.waiter_args == {"TrainingJobName": name}
    assert jobs_of(aws_clients, name) == [name], "the retry created another training job"
    event = first_event(trigger)
    assert event["status"] == "success"
    assert retry.execute_complete({}, event)["Training"]["TrainingJobName"] == name
    assert jobs_of(aws_clients, name) == [name]


def test_execute_complete_on_a_fresh_instance_reports_the_budget_the_deferral_used(control, aws_clients):
    # Airflow resumes a deferred task on a NEW operator instance: execute() never ran on it, so
    # the budget must be sized again there, or the message says "after 60 polls" (the provider's).
    name = "budget-fresh-2026-12-01-000000"
    control.set_duration("training", RESUME_JOB, name_prefix=name)
    config = training_config(aws_clients, name)
    trigger = defer(operator(config))  # derived budget
    assert trigger.attempts == training_budget.wait_attempts(config, POLL)
    assert trigger.attempts != training_budget.PROVIDER_DEFAULT_ATTEMPTS
    # A genuine timeout event of that trigger, cut short so the test takes a second.
    classpath, kwargs = trigger.serialize()
    event = first_event(SageMakerTrigger(**{**kwargs, "waiter_max_attempts": 3}))
    assert event["status"] == "timeout"
    resumed = operator(config)  # fresh, as after a deferral
    with pytest.raises(AirflowException) as error:
        resumed.execute_complete({}, event)
    text = str(error.value)
    assert f"after {trigger.attempts} polls every {POLL:g} s" in text, text
    assert "after 60 polls" not in text
    # An explicit max_attempts still wins on the fresh instance.
    with pytest.raises(AirflowException, match="after 7 polls"):
        operator(config, max_attempts=7).execute_complete({}, event)


def test_a_retry_resumes_the_timestamped_job_of_an_earlier_retry(control, aws_clients):
    name = "budget-second-2026-12-01-000000"
    # The run's first job fails quickly; the retry's job (timestamped) is long.
    control.set_duration("training", 60, name_prefix=name)
    control.add_fault(kind="training_failure", name_prefix=name, reason="InternalServerError: emulated", count=1)
    config = training_config(aws_clients, name)
    failing = operator(dict(config))
    # execute fails at once if the job already failed when the provider first looks; else the trigger says so.
    with pytest.raises(AirflowException, match="InternalServerError: emulated"):
        failing.execute_complete({}, first_event(defer(failing)))

    control.set_duration("training", RESUME_JOB, name_prefix=name)
    second = operator(dict(config), max_attempts=10)
    timed_out = first_event(defer(second))
    retried = jobs_of(aws_clients, name)
    assert len(retried) == 2 and retried[0] == name, retried
    assert timed_out == {"status": "timeout", "job_name": retried[1], "message": mock.ANY}
    with pytest.raises(AirflowException, match="still running"):
        second.execute_complete({}, timed_out)

    third = operator(dict(config))
    trigger = defer(third)
    assert trigger.waiter_args == {"TrainingJobName": retried[1]}
    assert jobs_of(aws_clients, name) == retried, "the third try started yet another job"
    assert third.execute_complete({}, first_event(trigger))["Training"]["TrainingJobStatus"] == "Completed"


def test_max_runtime_exceeded_stops_the_job_and_fails_the_task_without_retry(control, aws_clients):
    name = "budget-maxrun-2026-12-01-000000"
    control.set_duration("training", 3600, name_prefix=name)
    config = training_config(aws_clients, name, max_runtime=600)
    op = operator(config)
    event = first_event(defer(op))
    assert event["status"] == "stopped"
    with pytest.raises(AirflowFailException) as error:
        op.execute_complete({}, event)
    text = str(error.value)
    assert f"Training job {name} ended Stopped (MaxRuntimeExceeded)" in text
    assert "MaxRuntimeInSeconds=600" in text and "max_training_hours" in text

    job = aws_clients["sagemaker"].describe_training_job(TrainingJobName=name)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "FailureReason" not in job
    transitions = job["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions][-2:] == ["Stopping", "MaxRuntimeExceeded"]
    at = offsets(job)
    assert at["Stopping"] == pytest.approx(600, abs=1)  # stopped at the limit, in emulated time
    assert at["MaxRuntimeExceeded"] == pytest.approx(600 + 120, abs=1)  # after the SIGTERM grace
    assert "Uploading" not in at and "Completed" not in at
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = artifact[5:].split("/", 1)
    with pytest.raises(ClientError):
        aws_clients["s3"].head_object(Bucket=bucket, Key=key)

    # A cleared task starts a new (timestamped) job: the stopped one produced no model.
    rerun = defer(operator(config))
    assert rerun.waiter_args["TrainingJobName"] != name
    assert len(jobs_of(aws_clients, name)) == 2


@pytest.mark.parametrize(("stopping", "spot", "message"), [
    ({"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}, False,
     "Invalid MaxWaitTimeInSeconds. It is only supported when EnableManagedSpotTraining is set to true"),
    ({"MaxRuntimeInSeconds": 3600}, True, "It is required when EnableManagedSpotTraining is set to true"),
    ({"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 1800}, True,
     "must be greater than or equal to MaxRuntimeInSeconds (3600)"),
    ({"MaxRuntimeInSeconds": 28 * 86_400 + 1}, False, "The maximum value is 2419200 seconds (28 days)"),
])
def test_create_training_job_refuses_what_aws_refuses_in_the_stopping_condition(control, aws_clients, stopping,
                                                                               spot, message):
    name = f"budget-invalid-{abs(hash((str(stopping), spot))) % 10**6}"
    config = training_config(aws_clients, name, StoppingCondition=stopping, EnableManagedSpotTraining=spot)
    with pytest.raises(ClientError) as error:
        aws_clients["sagemaker"].create_training_job(**config)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert message in error.value.response["Error"]["Message"]
    assert jobs_of(aws_clients, name) == []


def test_spot_within_its_rules_and_a_missing_stopping_condition_are_accepted(control, aws_clients):
    sm = aws_clients["sagemaker"]
    spot = training_config(aws_clients, "budget-spot-ok", EnableManagedSpotTraining=True,
                           StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600})
    sm.create_training_job(**spot)
    described = sm.describe_training_job(TrainingJobName="budget-spot-ok")
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600}

    bare = training_config(aws_clients, "budget-default-stop")
    bare.pop("StoppingCondition")
    sm.create_training_job(**bare)
    # DescribeTrainingJob's StoppingCondition is required; AWS's default runtime is one day.
    assert sm.describe_training_job(TrainingJobName="budget-default-stop")["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 86_400}


def test_spot_capacity_that_never_arrives_ends_the_job_at_max_wait(control, aws_clients):
    name = "budget-spotwait-2026-12-01-000000"
    control.set_duration("training", 600, name_prefix=name)
    control.set_duration("training_spot_wait", 7200, name_prefix=name)  # longer than MaxWaitTimeInSeconds
    config = training_config(aws_clients, name, EnableManagedSpotTraining=True,
                             StoppingCondition={"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600})
    trigger = defer(operator(config))
    assert trigger.attempts == training_budget.wait_attempts(config, POLL)  # sized from MaxWaitTimeInSeconds
    event = first_event(trigger)
    assert event["status"] == "stopped"
    job = aws_clients["sagemaker"].describe_training_job(TrainingJobName=name)
    # Managed Spot Training lifecycle, "Spot instances were never launched":
    # InProgress: Starting -> Stopping: Stopping -> Stopped: MaxWaitTimeExceeded.
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == ["Starting", "Stopping", "MaxWaitTimeExceeded"]
    at = offsets(job)
    assert at["Stopping"] == pytest.approx(3600, abs=1)
    with pytest.raises(AirflowFailException, match=r"ended Stopped \(MaxWaitTimeExceeded\).*Spot capacity"):
        operator(config).execute_complete({}, event)


def test_a_spot_job_whose_capacity_arrives_runs_its_runtime_after_the_wait(control, aws_clients):
    name = "budget-spotok-2026-12-01-000000"
    control.set_duration("training", 1200, name_prefix=name)
    control.set_duration("training_spot_wait", 1800, name_prefix=name)
    config = training_config(aws_clients, name, EnableManagedSpotTraining=True,
                             StoppingCondition={"MaxRuntimeInSeconds": 1500, "MaxWaitTimeInSeconds": 3600})
    event = first_event(defer(operator(config)))
    assert event["status"] == "success"  # 1800 s waiting + 1200 s running: within both limits
    job = aws_clients["sagemaker"].describe_training_job(TrainingJobName=name)
    at = offsets(job)
    assert at["Downloading"] > 1800 and at["Completed"] == pytest.approx(3000, abs=1)


def test_a_synchronous_wait_gets_the_same_bound_and_an_explicit_max_attempts_wins(aws_clients):
    config = training_config(aws_clients, "budget-sync", max_runtime=3600)
    sync = ObjectDetectionTrainingOperator(task_id="train", config=config, deferrable=False, check_interval=30)
    sync._size_budget()
    assert sync.max_ingestion_time == training_budget.wait_budget_seconds(config)  # the provider's is unbounded
    pinned = operator(config, max_attempts=7)
    pinned._size_budget()
    assert pinned.max_attempts == 7 and pinned.max_ingestion_time is None  # deferred: no deferral timeout


def test_a_base_the_provider_would_cut_is_refused_before_any_aws_call(aws_clients):
    # A 56-character base: the provider cuts a base to 52 before its "-<10 digits>" suffix, which drops
    # the end of the run's stamp, so a retry of the run at 00:30 would look like one of the run at 00:00.
    # The pipeline never builds one (its pipeline_name cap: tests/unit/core/test_naming.py); a request
    # built another way is refused before the operator looks for, or starts, any job.
    pipeline = "long-named-detector-for-the-identity-tst"
    base_a, base_b = f"{pipeline}-20261201-000000", f"{pipeline}-20261201-003000"
    other_retry = training_budget.retry_job_name(base_b, "1764548000")
    assert training_budget.is_run_job(other_retry, base_a), "the collision the refusal prevents"
    op = operator(training_config(aws_clients, base_a))
    with mock.patch.object(ObjectDetectionTrainingOperator, "hook", new_callable=mock.PropertyMock,
                           side_effect=AssertionError("an AWS call")):
        with pytest.raises(AirflowFailException) as info:
            op.execute({"ti": mock.MagicMock()})
    message = str(info.value)
    assert f"TrainingJobName {base_a!r} is 56 characters" in message and "use at most 52" in message
    assert not aws_clients["sagemaker"].list_training_jobs(NameContains=pipeline)["TrainingJobSummaries"]
    # 52 characters, the longest job name the pipeline derives, starts its job.
    base = f"{pipeline[:36]}-20261201-000000"
    assert len(base) == training_budget.RETRY_BASE_MAX == 52
    assert defer(operator(training_config(aws_clients, base))).waiter_args["TrainingJobName"] == base


def test_a_job_that_fails_before_the_first_describe_names_itself(control, aws_clients):
    """The provider describes a new job once before deferring; a job already Failed then gets its
    generic "SageMaker job failed because ..." message. The task's error must name the job."""
    name = "budget-fastfail-2026-12-01-000000"
    control.set_duration("training", 1, name_prefix=name)  # ends within a real millisecond
    control.add_fault(kind="training_failure", name_prefix=name, reason="AlgorithmError: fast (test)")
    op = operator(training_config(aws_clients, name))
    real_describe = op.hook.describe_training_job

    def describe_after_the_end(job_name: str):
        # Deterministic stand-in for a slow first describe: wait until the job has ended.
        deadline = time.monotonic() + 30
        while True:
            job = real_describe(job_name)
            if job["TrainingJobStatus"] not in ("InProgress", "Stopping") or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    with mock.patch.object(op.hook, "describe_training_job", side_effect=describe_after_the_end):
        with pytest.raises(AirflowException) as error:
            op.execute({"ti": mock.MagicMock()})
    assert f"Training job {name} ended Failed" in str(error.value), str(error.value)
    assert "AlgorithmError: fast (test)" in str(error.value)
