"""Ground Truth operator, sensor and trigger end to end against the embedded emulator (local_aws).

The operator runs its real code path: Airflow's ``aws_default`` connection (pointed at the
emulator by ``emulator_env``), boto3's client-side validation of every request against the API
model, the custom waiter (sync, and async in the trigger) and S3 for inputs and outputs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from airflow.triggers.base import TriggerEvent

from local_aws import Control, Emulator
from sagemaker_vision import ground_truth as gt
from sagemaker_vision.triggers import LabelingJobTrigger

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "sample_data"
IMAGES = sorted((SAMPLE / "images").glob("*.jpg"))
CLASSES = json.loads((SAMPLE / "classes.json").read_text())
# The sample data's own labels: the emulator's "workers" answer from them.
SAMPLE_LABELS = [json.loads(line) for line in (SAMPLE / "output.manifest").read_text().splitlines()]
BUCKET = "gt-emulator"
ROLE = "arn:aws:iam::123456789012:role/ground-truth"
TRANSITION = 0.5
EMULATED_FAILURE = "ClientError: emulated labeling failure (local_aws fault rule)"


@pytest.fixture
def emu(emulator_env: Emulator) -> Iterator[Emulator]:
    """The shared emulator, emptied, on a short timeline, with the sample images in S3."""
    emulator_env.reset()
    emulator_env.set_transition_seconds(TRANSITION)
    s3 = s3_client(emulator_env)
    s3.create_bucket(Bucket=BUCKET)
    for path in IMAGES:
        s3.upload_file(str(path), BUCKET, f"raw/{path.name}")
    yield emulator_env
    emulator_env.set_transition_seconds(TRANSITION)
    emulator_env.reset()


def s3_client(emu: Emulator) -> Any:
    return boto3.client("s3", endpoint_url=emu.endpoint_url, region_name="us-east-1")


def sagemaker_client(emu: Emulator) -> Any:
    return boto3.client("sagemaker", endpoint_url=emu.endpoint_url, region_name="us-east-1")


def image_uris() -> list[str]:
    return [f"s3://{BUCKET}/raw/{path.name}" for path in IMAGES]


def operator(job_name: str, **overrides: Any) -> gt.GroundTruthLabelingOperator:
    args: dict[str, Any] = {
        "task_id": "label",
        "job_name": job_name,
        "role_arn": ROLE,
        "output_path": f"s3://{BUCKET}/labels/output/",
        "label_attribute": "bounding-box",
        "labels": CLASSES,
        "task_description": "Draw a box around every circle, square and triangle",
        "inputs_prefix": f"s3://{BUCKET}/labels/inputs/{job_name}/",
        "image_uris": image_uris(),
        "deferrable": False,
        "waiter_delay": 1,
        "waiter_max_attempts": 60,
    }
    args.update(overrides)
    return gt.GroundTruthLabelingOperator(**args)


def context() -> dict[str, Any]:
    return {"ti": mock.MagicMock()}


def jobs_named(emu: Emulator, name: str) -> list[dict[str, Any]]:
    pages = sagemaker_client(emu).get_paginator("list_labeling_jobs").paginate(NameContains=name)
    return [job for page in pages for job in page["LabelingJobSummaryList"] if job["LabelingJobName"] == name]


def read(emu: Emulator, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return s3_client(emu).get_object(Bucket=bucket, Key=key)["Body"].read()


def first_event(trigger: LabelingJobTrigger, timeout: float = 60) -> TriggerEvent:
    """Run the trigger's async loop as the triggerer would, until its first event."""

    async def run() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


# -- operator, sync waiter ---------------------------------------------------------------------
def test_operator_labels_the_images_and_a_rerun_reuses_the_job(emu):
    op = operator("shapes-sync")
    ctx = context()
    uri = op.execute(ctx)

    assert uri == f"s3://{BUCKET}/labels/output/shapes-sync/manifests/output/output.manifest"
    lines = [json.loads(line) for line in read(emu, uri).decode().splitlines()]
    assert sorted(line["source-ref"] for line in lines) == image_uris()
    # The emulator's "workers" answer from the sample data's answer key, so the boxes are known.
    expected = {Path(ref["source-ref"]).name: ref["bounding-box"]["annotations"] for ref in SAMPLE_LABELS}
    assert {Path(line["source-ref"]).name: line["bounding-box"]["annotations"] for line in lines} == expected
    for line in lines:
        assert line["bounding-box-metadata"]["class-map"] == {str(i): c for i, c in enumerate(CLASSES)}

    # What the job was created with is the builder's request (boto3 validated it on the way).
    job = sagemaker_client(emu).describe_labeling_job(LabelingJobName="shapes-sync")
    request = op.build_request("us-east-1")
    assert job["HumanTaskConfig"] == request["HumanTaskConfig"]
    assert job["InputConfig"] == request["InputConfig"]
    assert job["LabelCounters"]["TotalLabeled"] == len(IMAGES)
    inputs = gt.labeling_input_uris(op.inputs_prefix)
    assert json.loads(read(emu, inputs["categories_uri"])) == gt.label_categories_document(CLASSES)
    assert b"{{ task.input.taskObject | grant_read_access }}" in read(emu, inputs["template_uri"])
    ctx["ti"].xcom_push.assert_called_once_with(
        key="sagemaker_labeling_job",
        value={"region_name": "us-east-1", "aws_domain": "aws.amazon.com", "job_name": "shapes-sync"},
    )

    # A retry of the task: same answer, no second job, inputs not published again.
    manifest_key = inputs["input_manifest_uri"].split("/", 3)[3]
    before = s3_client(emu).head_object(Bucket=BUCKET, Key=manifest_key)["LastModified"]
    time.sleep(1.1)  # S3 LastModified has one-second resolution
    assert operator("shapes-sync").execute(context()) == uri
    assert len(jobs_named(emu, "shapes-sync")) == 1
    assert s3_client(emu).head_object(Bucket=BUCKET, Key=manifest_key)["LastModified"] == before


def test_injected_failure_fails_the_task_with_the_failure_reason(emu):
    Control(emu.endpoint_url).add_fault(kind="labeling_failure", name_prefix="shapes-fail", count=1)
    with pytest.raises(AirflowException) as err:
        operator("shapes-fail").execute(context())
    assert "shapes-fail is Failed" in str(err.value)
    assert EMULATED_FAILURE in str(err.value)

    # The failed job is not retried under the same name, and no second job is made.
    with pytest.raises(AirflowException, match="change job_name") as again:
        operator("shapes-fail").execute(context())
    assert EMULATED_FAILURE in str(again.value)
    assert len(jobs_named(emu, "shapes-fail")) == 1


def test_killing_the_task_stops_the_job_and_the_wait_fails(emu):
    emu.set_transition_seconds(4)  # long enough to stop it InProgress; Stopping then lasts 1 s
    op = operator("shapes-stop")
    outcome: dict[str, BaseException | str] = {}

    def run() -> None:
        try:
            outcome["result"] = op.execute(context())
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 10
    while not jobs_named(emu, "shapes-stop"):
        assert time.monotonic() < deadline, "the operator never created its job"
        time.sleep(0.05)
    op.on_kill()
    worker.join(timeout=30)
    assert not worker.is_alive()

    error = outcome.get("error")
    assert isinstance(error, AirflowException), outcome
    assert "shapes-stop is Stopped" in str(error)
    job = sagemaker_client(emu).describe_labeling_job(LabelingJobName="shapes-stop")
    assert job["LabelingJobStatus"] == "Stopped"
    op.on_kill()  # nothing left to stop: no error


# -- deferrable: the trigger's async loop ------------------------------------------------------
def test_deferred_operator_resumes_with_the_output_manifest(emu):
    op = operator("shapes-deferred", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    # The triggerer rebuilds the trigger from its serialized form.
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.LabelingJobTrigger"
    event = first_event(LabelingJobTrigger(**kwargs))
    assert event.payload == {"status": "success", "job_name": "shapes-deferred"}

    uri = op.execute_complete(context(), event.payload)
    assert uri == "s3://gt-emulator/labels/output/shapes-deferred/manifests/output/output.manifest"
    assert len(read(emu, uri).decode().splitlines()) == len(IMAGES)


def test_trigger_reports_the_failure_reason(emu):
    Control(emu.endpoint_url).add_fault(kind="labeling_failure", name_prefix="shapes-trigger-fail", count=1)
    op = operator("shapes-trigger-fail", wait_for_completion=False)
    op.execute(context())
    event = first_event(
        LabelingJobTrigger(job_name="shapes-trigger-fail", waiter_delay=1, waiter_max_attempts=60)
    )
    assert event.payload == {
        "status": "failed", "job_name": "shapes-trigger-fail", "message": EMULATED_FAILURE
    }
    with pytest.raises(AirflowException, match="shapes-trigger-fail is Failed: ClientError: emulated"):
        op.execute_complete(context(), event.payload)


def test_trigger_reports_a_missing_job_as_an_error(emu):
    event = first_event(LabelingJobTrigger(job_name="no-such-job", waiter_delay=1, waiter_max_attempts=3))
    assert event.payload["status"] == "error"
    assert "ResourceNotFound" in event.payload["message"]


# -- sensor --------------------------------------------------------------------------------------
def test_sensor_waits_for_a_job_started_elsewhere(emu):
    emu.set_transition_seconds(2)  # still InProgress when the sensor first looks
    started = operator("shapes-elsewhere", wait_for_completion=False).execute(context())
    sensor = gt.GroundTruthLabelingJobSensor(task_id="wait", job_name="shapes-elsewhere", poke_interval=1,
                                             timeout=60, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    event = first_event(deferred.value.trigger)
    assert sensor.execute_complete(context(), event.payload) == started
    assert read(emu, started)

    # Poking (not deferrable) a Completed job succeeds at once with the same URI.
    poking = gt.GroundTruthLabelingJobSensor(task_id="poke", job_name="shapes-elsewhere", poke_interval=1,
                                             timeout=10, deferrable=False)
    assert poking.execute(context()) == started
