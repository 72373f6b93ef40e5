"""The training wait budget: sized from the job's stopping condition, pure, no Airflow."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sagemaker_vision.core import training_budget as tb

ROOT = Path(__file__).resolve().parents[3]
MARGINS = tb.SIGTERM_GRACE_SECONDS + tb.STARTUP_MARGIN_SECONDS + tb.UPLOAD_MARGIN_SECONDS


def request(**condition: int) -> dict:
    return {"TrainingJobName": "shapes-2026-10-04-000000", "StoppingCondition": condition}


def test_on_demand_budget_is_max_runtime_plus_the_margins():
    assert tb.wait_budget_seconds(request(MaxRuntimeInSeconds=7200)) == 7200 + MARGINS
    # The pipeline's default (max_training_hours=2) at its default 30 s poll: far past 60 polls.
    attempts = tb.wait_attempts(request(MaxRuntimeInSeconds=7200), 30)
    assert attempts == -(-(7200 + MARGINS) // 30) + 1
    assert attempts > tb.PROVIDER_DEFAULT_ATTEMPTS
    assert (attempts - 1) * 30 >= 7200 + MARGINS  # the polls span the whole budget


def test_missing_stopping_condition_means_the_aws_default_of_one_day():
    assert tb.wait_budget_seconds({"TrainingJobName": "x"}) == 86_400 + MARGINS
    assert tb.wait_budget_seconds(request()) == 86_400 + MARGINS


def test_spot_budget_is_the_max_wait_which_already_contains_the_runtime():
    spot = {**request(MaxRuntimeInSeconds=3600, MaxWaitTimeInSeconds=10_800), "EnableManagedSpotTraining": True}
    assert tb.wait_budget_seconds(spot) == 10_800 + MARGINS
    # MaxWaitTimeInSeconds means nothing without spot (AWS refuses it); the runtime rules.
    not_spot = {**spot, "EnableManagedSpotTraining": False}
    assert tb.wait_budget_seconds(not_spot) == 3600 + MARGINS


def test_pending_time_of_a_training_plan_is_added():
    assert tb.wait_budget_seconds(request(MaxRuntimeInSeconds=3600, MaxPendingTimeInSeconds=1800)) == (
        3600 + 1800 + MARGINS)


@pytest.mark.parametrize("poll", [0.05, 1, 30])
def test_attempts_cover_the_budget_for_fractional_and_whole_polls(poll):
    cfg = request(MaxRuntimeInSeconds=600)
    attempts = tb.wait_attempts(cfg, poll)
    assert (attempts - 1) * poll >= tb.wait_budget_seconds(cfg)
    assert (attempts - 2) * poll < tb.wait_budget_seconds(cfg)


@pytest.mark.parametrize("poll", [0, -1, float("nan"), float("inf"), "30", None])
def test_attempts_refuse_a_poll_interval_that_is_not_a_positive_number(poll):
    with pytest.raises(ValueError, match="poll_seconds"):
        tb.wait_attempts(request(MaxRuntimeInSeconds=600), poll)


def test_run_job_names_are_the_base_or_the_providers_timestamped_retry_names():
    base = "shapes-2026-10-04-000000"
    assert tb.is_run_job(base, base)
    assert tb.is_run_job(f"{base}-1764590000", base)
    assert not tb.is_run_job(f"{base}-1", base)
    assert not tb.is_run_job(f"{base}x-1764590000", base)
    assert not tb.is_run_job("other-2026-10-04-000000", base)
    long_base = "p" * 50 + "-2026-10-04-000000"  # the provider truncates the base to fit 63
    assert tb.is_run_job(long_base[:52] + "-1764590000", long_base)


def test_still_running_message_names_the_job_status_secondary_status_and_elapsed_time():
    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    job = {"TrainingJobName": "shapes-1", "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training",
           "CreationTime": created, "StoppingCondition": {"MaxRuntimeInSeconds": 7200}}
    text = tb.still_running_message(job, 60, 30, now=created + timedelta(minutes=30, seconds=5))
    for part in ("shapes-1", "still running", "status InProgress", "secondary status Training",
                 "elapsed 0:30:05", "after 60 polls every 30 s", "resumes waiting on this same job", "2:00:00"):
        assert part in text, (part, text)


def test_elapsed_follows_emulated_timestamps_that_run_ahead_of_the_wall_clock():
    created = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    job = {"CreationTime": created, "SecondaryStatusTransitions": [
        {"Status": "Starting", "StartTime": created},
        {"Status": "Training", "StartTime": created + timedelta(hours=1)}]}
    assert tb.elapsed_seconds(job, now=created + timedelta(seconds=3)) == 3600
    assert tb.elapsed_seconds({}, now=created) is None


def test_ended_message_uses_the_secondary_status_when_there_is_no_failure_reason():
    stopped = {"TrainingJobName": "shapes-1", "TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded",
               "StoppingCondition": {"MaxRuntimeInSeconds": 600},
               "SecondaryStatusTransitions": [{"Status": "MaxRuntimeExceeded",
                                               "StatusMessage": "Training job runtime exceeded MaxRuntimeInSeconds"}]}
    text = tb.ended_message(stopped)
    assert text.startswith("Training job shapes-1 ended Stopped (MaxRuntimeExceeded): Training job runtime exceeded")
    assert "MaxRuntimeInSeconds=600" in text and "max_training_hours" in text
    assert tb.retry_would_repeat(stopped)
    failed = {"TrainingJobName": "shapes-2", "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed",
              "FailureReason": "AlgorithmError: boom"}
    assert tb.ended_message(failed) == "Training job shapes-2 ended Failed: AlgorithmError: boom"
    assert not tb.retry_would_repeat(failed)


def test_the_module_imports_without_airflow():
    code = ("import sys; sys.path.insert(0, 'plugins'); import sagemaker_vision.core.training_budget; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('airflow', 'boto3', 'botocore')], 'imported'")
    # -I: no PYTHONPATH, so no sitecustomize of the test session (contract capture imports botocore).
    subprocess.run([sys.executable, "-I", "-c", code], cwd=ROOT, check=True)


def test_the_pipelines_own_request_waits_past_its_two_hour_stopping_condition():
    from sagemaker_vision.core import requests as rq
    from tests.unit.core.test_config import build

    req = rq.training_request(build(), num_classes=3, num_training_samples=9)
    runtime = req["StoppingCondition"]["MaxRuntimeInSeconds"]
    # Before: the provider's 60 polls x 30 s per try, 3 tries (retries=2) = 1.5 h < the 2 h limit.
    assert 3 * tb.PROVIDER_DEFAULT_ATTEMPTS * 30 < runtime
    attempts = tb.wait_attempts(req, 30)
    assert (attempts - 1) * 30 >= runtime + MARGINS  # one try now covers the whole job
