"""LabelingJobTrigger: serialize round trip, its hook, and the events it emits for failures.
"""

from __future__ import annotations

import json

from sagemaker_vision.core.labeling_job import LABELING_JOB_COMPLETE
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.triggers.labeling_job import LabelingJobTrigger


# -- trigger -----------------------------------------------------------------------------------
def test_trigger_serialize_round_trip():
    trigger = LabelingJobTrigger(job_name="shapes-1", waiter_delay=5, waiter_max_attempts=12,
                                 aws_conn_id="aws_gt", region_name="eu-west-1",
                                 botocore_config={"retries": {"mode": "standard"}})
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.labeling_job.LabelingJobTrigger"
    assert kwargs == {"job_name": "shapes-1", "waiter_delay": 5, "waiter_max_attempts": 12,
                      "aws_conn_id": "aws_gt", "region_name": "eu-west-1",
                      "botocore_config": {"retries": {"mode": "standard"}}}
    json.dumps(kwargs)  # what the triggerer stores
    rebuilt = LabelingJobTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.waiter_args == {"LabelingJobName": "shapes-1"}
    assert rebuilt.waiter_name == LABELING_JOB_COMPLETE


def test_trigger_minimal_serialize_round_trip_and_hook():
    classpath, kwargs = LabelingJobTrigger(job_name="shapes-1").serialize()
    assert kwargs == {"job_name": "shapes-1", "waiter_delay": 60, "waiter_max_attempts": 43_200,
                      "aws_conn_id": "aws_default"}
    hook = LabelingJobTrigger(**kwargs).hook()
    assert isinstance(hook, SageMakerVisionHook)
    # No botocore_config given: the package's retry policy applies.
    assert hook.config.retries == {"mode": "standard", "total_max_attempts": 8}


def test_trigger_events_for_failures():
    from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
    from airflow.providers.common.compat.sdk import AirflowException

    trigger = LabelingJobTrigger(job_name="shapes-1")
    failed = trigger._event_from_exception(WaiterTerminalFailure(
        "x", last_response={"LabelingJobStatus": "Failed", "FailureReason": "ClientError: bad manifest"}))
    assert failed.payload == {"status": "failed", "job_name": "shapes-1",
                              "message": "ClientError: bad manifest"}
    stopped = trigger._event_from_exception(
        WaiterTerminalFailure("x", last_response={"LabelingJobStatus": "Stopped"}))
    assert stopped.payload["status"] == "stopped" and "Stopped" in stopped.payload["message"]
    timeout = trigger._event_from_exception(WaiterMaxAttemptsError("Waiter error: max attempts reached"))
    assert timeout.payload["status"] == "timeout"
    other = trigger._event_from_exception(AirflowException("AccessDenied"))
    assert other.payload == {"status": "error", "message": "AccessDenied", "job_name": "shapes-1"}
