"""GroundTruthLabelingOperator and GroundTruthLabelingJobSensor logic (they share LabelingJobWaitMixin).

No AWS: the operator and sensor run against a mocked hook; S3 uploads go to moto in-process.
"""

from __future__ import annotations

import io
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.core import labeling_inputs, labeling_job
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.links.sagemaker import SageMakerLabelingJobLink
from sagemaker_vision.operators import ground_truth as gt
from sagemaker_vision.sensors.ground_truth import GroundTruthLabelingJobSensor
from sagemaker_vision.triggers.labeling_job import LabelingJobTrigger
from tests.unit.labeling_support import (
    LABELS,
    OUTPUT_URI,
    PRIVATE_TEAM,
    REGION,
    ROLE,
    botocore_errors,
    build,
    describe_response,
)


def test_the_operator_refuses_the_public_workforce_before_any_aws_call():
    op = gt.GroundTruthLabelingOperator(
        task_id="label", job_name="shapes-1", role_arn=ROLE, output_path="s3://gt-bucket/out/",
        label_attribute="bounding-box", labels=LABELS, task_description="Draw boxes",
        inputs_prefix="s3://gt-bucket/in/", image_uris=["s3://gt-bucket/raw/a.jpg"],
    )
    hook = mock.MagicMock()
    hook.conn_region_name = REGION
    with mock.patch.object(type(op), "hook", new_callable=mock.PropertyMock, return_value=hook), \
            mock.patch("sagemaker_vision.hooks.base.client") as client:
        with pytest.raises(ConfigError, match="closed on 2026-09-30"):
            op.execute({"ti": mock.MagicMock()})
    hook.find_labeling_job.assert_not_called()
    hook.conn.create_labeling_job.assert_not_called()
    client.assert_not_called()


# -- operator ----------------------------------------------------------------------------------
def make_operator(**overrides: Any) -> gt.GroundTruthLabelingOperator:
    args: dict[str, Any] = {
        "task_id": "label",
        "job_name": "shapes-1",
        "role_arn": ROLE,
        "output_path": "s3://gt-bucket/labels/out/",
        "label_attribute": "bounding-box",
        "labels": LABELS,
        "task_description": "Box the shapes",
        "inputs_prefix": "s3://gt-bucket/labels/in/",
        "image_uris": [f"s3://gt-bucket/raw/shape_{i:03d}.jpg" for i in range(3)],
        "workteam_arn": PRIVATE_TEAM,
        "deferrable": True,
        "waiter_delay": 2,
        "waiter_max_attempts": 7,
    }
    args.update(overrides)
    return gt.GroundTruthLabelingOperator(**args)


def mock_hook(op, *jobs: dict[str, Any] | None) -> mock.MagicMock:
    """Install a hook whose find_labeling_job returns ``jobs`` one after the other (last repeats)."""
    hook = mock.MagicMock(spec=SageMakerVisionHook)
    hook.conn_region_name = REGION
    hook.conn_partition = "aws"
    sequence = list(jobs)
    hook.find_labeling_job.side_effect = lambda name: sequence.pop(0) if len(sequence) > 1 else sequence[0]
    hook.conn = mock.MagicMock()
    hook.conn.create_labeling_job.return_value = {"LabelingJobArn": "arn:...:labeling-job/shapes-1"}
    op.__dict__["hook"] = hook  # the cached_property's slot
    return hook




def existing(status: str, **extra: Any) -> dict[str, Any]:
    job = describe_response(status, **extra)
    if status == "Completed":
        job.setdefault("LabelingJobOutput", {"OutputDatasetS3Uri": OUTPUT_URI})
    return job


@pytest.fixture
def no_uploads():
    with mock.patch.object(gt, "prepare_labeling_inputs") as prepare, mock.patch.object(gt.aws, "client") as client:
        prepare.return_value = labeling_inputs.labeling_input_uris("s3://gt-bucket/labels/in/")
        # An existing input manifest reads as empty (its refs only decide which buckets get CORS).
        client.return_value.get_object.side_effect = lambda **_: {"Body": io.BytesIO(b"")}
        yield prepare


def test_existing_in_progress_job_is_reused_and_deferred(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator()
    hook = mock_hook(op, existing("InProgress"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    hook.conn.create_labeling_job.assert_not_called()
    no_uploads.assert_not_called()
    trigger = deferred.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    assert trigger.serialize()[1] == {"job_name": "shapes-1", "waiter_delay": 2, "waiter_max_attempts": 7,
                                      "aws_conn_id": "aws_default"}
    assert deferred.value.method_name == "execute_complete"


def test_existing_completed_job_returns_its_output_without_creating(no_uploads):
    op = make_operator()
    hook = mock_hook(op, existing("Completed"))
    assert op.execute({}) == OUTPUT_URI
    hook.conn.create_labeling_job.assert_not_called()
    no_uploads.assert_not_called()


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_existing_failed_job_fails_with_its_reason(status, no_uploads):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator()
    hook = mock_hook(op, existing(status, FailureReason="ClientError: Cannot access the input manifest"))
    with pytest.raises(AirflowException) as err:
        op.execute({})
    message = str(err.value)
    assert f"shapes-1 is {status}" in message
    assert "ClientError: Cannot access the input manifest" in message
    assert "change job_name" in message
    hook.conn.create_labeling_job.assert_not_called()
    no_uploads.assert_not_called()


def test_existing_stopping_job_is_not_reused(no_uploads):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator()
    hook = mock_hook(op, existing("Stopping"))
    with pytest.raises(AirflowException, match="Stopping .*change job_name"):
        op.execute({})
    hook.conn.create_labeling_job.assert_not_called()


def test_existing_job_with_another_label_attribute_is_not_reused(no_uploads):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator(label_attribute="boxes")
    mock_hook(op, existing("Completed"))
    with pytest.raises(AirflowException, match="label_attribute: the existing job has 'bounding-box'"):
        op.execute({})


def test_new_job_uploads_inputs_creates_and_defers(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator()
    hook = mock_hook(op, None, existing("InProgress"))
    with pytest.raises(TaskDeferred):
        op.execute({})
    no_uploads.assert_called_once()
    assert no_uploads.call_args.kwargs["image_uris"] == op.image_uris
    assert no_uploads.call_args.kwargs["inputs_prefix"] == "s3://gt-bucket/labels/in/"
    hook.conn.create_labeling_job.assert_called_once()
    request = hook.conn.create_labeling_job.call_args.kwargs
    assert request == op.build_request(REGION)
    assert botocore_errors(request) == ""


def test_new_job_created_meanwhile_is_reused(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator()
    hook = mock_hook(op, None, existing("InProgress"))
    hook.conn.create_labeling_job.side_effect = ClientError(
        {"Error": {"Code": "ResourceInUse", "Message": "already exists"}}, "CreateLabelingJob")
    with pytest.raises(TaskDeferred):
        op.execute({})


def test_existing_manifest_is_used_as_is(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator(image_uris=None, input_manifest_uri="s3://gt-bucket/prepared/input.manifest")
    hook = mock_hook(op, None, existing("InProgress"))
    with pytest.raises(TaskDeferred):
        op.execute({})
    assert no_uploads.call_args.kwargs["image_uris"] is None
    request = hook.conn.create_labeling_job.call_args.kwargs
    assert request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] == (
        "s3://gt-bucket/prepared/input.manifest")


def test_bad_arguments_fail_before_any_aws_call(no_uploads):
    op = make_operator(labels="circle,square")
    hook = mock_hook(op, None)
    with pytest.raises(ConfigError, match="^labels: must be a list"):
        op.execute({})
    hook.find_labeling_job.assert_not_called()
    with pytest.raises(ValueError, match="exactly one of image_uris and input_manifest_uri"):
        make_operator(input_manifest_uri="s3://gt-bucket/in.manifest")


def test_not_waiting_returns_where_the_output_will_be(no_uploads):
    op = make_operator(wait_for_completion=False)
    mock_hook(op, None, existing("InProgress"))
    assert op.execute({}) == OUTPUT_URI


def test_sync_wait_failure_carries_the_failure_reason(no_uploads):
    from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator(deferrable=False)
    failed = existing("Failed", FailureReason="ClientError: emulated")
    hook = mock_hook(op, existing("InProgress"), failed)
    with mock.patch.object(gt, "wait", side_effect=WaiterTerminalFailure("x", last_response=failed)) as wait:
        with pytest.raises(AirflowException, match="shapes-1 is Failed: ClientError: emulated"):
            op.execute({})
    assert wait.call_args.kwargs["args"] == {"LabelingJobName": "shapes-1"}
    assert wait.call_args.kwargs["waiter_delay"] == 2 and wait.call_args.kwargs["waiter_max_attempts"] == 7
    hook.get_waiter.assert_called_once_with(labeling_job.LABELING_JOB_COMPLETE)


def test_sync_wait_success_returns_the_output(no_uploads):
    op = make_operator(deferrable=False)
    mock_hook(op, existing("InProgress"), existing("Completed"))
    with mock.patch.object(gt, "wait"):
        assert op.execute({}) == OUTPUT_URI


def test_sync_wait_running_out_of_attempts_says_the_job_keeps_running(no_uploads):
    from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator(deferrable=False)
    mock_hook(op, existing("InProgress"))
    with mock.patch.object(gt, "wait", side_effect=WaiterMaxAttemptsError("max attempts")):
        with pytest.raises(AirflowException,
                           match="still running: .*InProgress: 1/3 labeled .*resume waiting on the same job"):
            op.execute({})


def test_execute_persists_the_console_link(no_uploads):
    op = make_operator()
    mock_hook(op, existing("Completed"))
    ti = mock.MagicMock()
    op.execute({"ti": ti})
    ti.xcom_push.assert_called_once_with(
        key="sagemaker_labeling_job",
        value={"region_name": REGION, "aws_domain": "aws.amazon.com", "job_name": "shapes-1"},
    )
    link = SageMakerLabelingJobLink()
    assert link.name == "SageMaker Labeling Job"
    assert link.format_link(region_name=REGION, aws_domain="aws.amazon.com", job_name="shapes-1") == (
        "https://console.aws.amazon.com/sagemaker/groundtruth?region=us-east-1#/labeling-jobs/details/shapes-1"
    )


@pytest.mark.parametrize(("status", "stops"), [("InProgress", True), ("Initializing", True),
                                               ("Completed", False), ("Stopping", False), (None, False)])
def test_on_kill_stops_a_running_job(status, stops):
    op = make_operator()
    hook = mock_hook(op, existing(status) if status else None)
    op.on_kill()
    if stops:
        hook.stop_labeling_job.assert_called_once_with("shapes-1")
    else:
        hook.stop_labeling_job.assert_not_called()


def test_execute_complete_success_redescribes_for_the_output():
    op = make_operator()
    mock_hook(op, existing("Completed"))
    assert op.execute_complete({}, {"status": "success", "job_name": "shapes-1"}) == OUTPUT_URI


@pytest.mark.parametrize(
    ("event", "job", "match"),
    [
        (None, None, "event is None"),
        ({"status": "failed", "job_name": "shapes-1", "message": "ClientError: x"},
         existing("Failed", FailureReason="ClientError: x"), "shapes-1 is Failed: ClientError: x"),
        ({"status": "stopped", "job_name": "shapes-1", "message": "stopped"},
         existing("Stopped"), "shapes-1 is Stopped: no FailureReason given"),
        ({"status": "timeout", "job_name": "shapes-1", "message": "max attempts"},
         existing("InProgress"), "still running .*resume waiting on the same job"),
        ({"status": "error", "job_name": "shapes-1", "message": "AccessDenied"},
         existing("InProgress"), r"failed \(error\): AccessDenied"),
        ({"status": "success", "job_name": "other-job"}, existing("Completed"), "not shapes-1"),
    ],
)
def test_execute_complete_errors(event, job, match):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator()
    mock_hook(op, job)
    with pytest.raises(AirflowException, match=match):
        op.execute_complete({}, event)


def test_operator_template_fields_and_hook_config():
    op = make_operator(botocore_config=None)
    for name in ("job_name", "labels", "image_uris", "inputs_prefix", "output_path", "role_arn"):
        assert name in op.template_fields
    assert op._hook_parameters["config"].retries == {"mode": "standard", "total_max_attempts": 8}
    given = make_operator(botocore_config={"read_timeout": 5})
    assert given._hook_parameters["config"] == {"read_timeout": 5}


# -- sensor ------------------------------------------------------------------------------------
def make_sensor(**overrides: Any) -> GroundTruthLabelingJobSensor:
    return GroundTruthLabelingJobSensor(
        **{"task_id": "wait", "job_name": "shapes-1", "poke_interval": 5, "timeout": 60, **overrides})


def test_sensor_poke():
    from airflow.providers.common.compat.sdk import AirflowException

    sensor = make_sensor()
    mock_hook(sensor, existing("InProgress"))
    assert not sensor.poke({})
    mock_hook(sensor, existing("Completed"))
    done = sensor.poke({})
    assert done and done.xcom_value == OUTPUT_URI
    mock_hook(sensor, existing("Failed", FailureReason="ClientError: no workers"))
    with pytest.raises(AirflowException, match="ClientError: no workers"):
        sensor.poke({})
    mock_hook(sensor, None)
    with pytest.raises(AirflowException, match="shapes-1 does not exist"):
        sensor.poke({})


def test_deferrable_sensor_defers_with_the_same_trigger():
    from airflow.providers.common.compat.sdk import TaskDeferred

    sensor = make_sensor(deferrable=True)
    mock_hook(sensor, existing("InProgress"))
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    assert (trigger.waiter_delay, trigger.attempts, trigger.job_name) == (5, 12, "shapes-1")
    mock_hook(sensor, existing("Completed"))
    assert sensor.execute({}) == OUTPUT_URI
    assert sensor.execute_complete({}, {"status": "success", "job_name": "shapes-1"}) == OUTPUT_URI


def test_the_operator_ensures_cors_before_creating_the_job(no_uploads):
    op = make_operator(deferrable=False)
    hook = mock_hook(op, None)
    order: list[str] = []
    hook.conn.create_labeling_job.side_effect = lambda **_: order.append("create") or {"LabelingJobArn": "arn"}
    from airflow.providers.common.compat.sdk import AirflowException

    with mock.patch.object(gt, "ensure_cors", side_effect=lambda *a, **k: order.append("cors")) as ensure, \
            pytest.raises(AirflowException, match="does not exist"):  # the mocked describe finds nothing after
        op.execute({})
    assert order[:2] == ["cors", "create"]
    assert ensure.call_args.args[1] == ["gt-bucket"]


def test_the_pipeline_operator_waits_the_whole_budget():
    """The old label task gave Ground Truth 10 days of polls; a private team's tasks live up to 30 days."""
    from sagemaker_vision.pipeline.label import PipelineGroundTruthOperator

    op = PipelineGroundTruthOperator(task_id="ground_truth", poll_seconds=60)
    request = build(task_availability_lifetime_s=2_592_000, task_time_limit_s=28_800)
    assert op._attempts(request) * 60 >= 2_592_000 + 28_800
    assert op._attempts(request) * 60 > 10 * 86_400
    explicit = make_operator(waiter_max_attempts=7)
    assert explicit._attempts(request) == 7


def test_the_sensor_waits_as_long_as_a_job_can_run_by_default():
    sensor = GroundTruthLabelingJobSensor(task_id="wait", job_name="shapes-1")
    # not BaseSensor's 7 days
    assert sensor.timeout >= labeling_job.MAX_LABELING_JOB_S + labeling_job.TASK_TIME_LIMIT_S[1]
    assert GroundTruthLabelingJobSensor(task_id="w", job_name="j", timeout=60).timeout == 60
