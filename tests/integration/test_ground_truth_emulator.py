"""Ground Truth operator, sensor and trigger end to end against the embedded emulator (local_aws).

The operator runs its real code path: Airflow's ``aws_default`` connection (pointed at the
emulator by ``emulator_env``), boto3's client-side validation of every request against the API
model, the custom waiter (sync, and async in the trigger) and S3 for inputs and outputs.
"""

from __future__ import annotations

import asyncio
import json
import re
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
from botocore.exceptions import ClientError

from local_aws import Control, Emulator
from sagemaker_vision.core import labeling_inputs, labeling_job
from sagemaker_vision.core.manifest_parse import ManifestError
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.ground_truth import prepare_labeling_inputs
from sagemaker_vision.operators.ground_truth import GroundTruthLabelingOperator
from sagemaker_vision.sensors.ground_truth import GroundTruthLabelingJobSensor
from sagemaker_vision.triggers.labeling_job import LabelingJobTrigger

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "sample_data"
IMAGES = sorted((SAMPLE / "images").glob("*.jpg"))
CLASSES = json.loads((SAMPLE / "classes.json").read_text())
# The sample data's own labels: the emulator's "workers" answer from them.
SAMPLE_LABELS = [json.loads(line) for line in (SAMPLE / "output.manifest").read_text().splitlines()]
BUCKET = "gt-emulator"
ROLE = "arn:aws:iam::123456789012:role/ground-truth"
PRIVATE_TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/shapes-team"
PUBLIC_TEAM = "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
GT_CORS = {"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "ExposeHeaders": []}
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


def operator(job_name: str, **overrides: Any) -> GroundTruthLabelingOperator:
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
        "workteam_arn": PRIVATE_TEAM,
        "deferrable": False,
        "waiter_delay": 1,
        "waiter_max_attempts": 60,
    }
    args.update(overrides)
    return GroundTruthLabelingOperator(**args)


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
    inputs = labeling_inputs.labeling_input_uris(op.inputs_prefix)
    assert json.loads(read(emu, inputs["categories_uri"])) == labeling_inputs.label_categories_document(CLASSES)
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
    assert classpath == "sagemaker_vision.triggers.labeling_job.LabelingJobTrigger"
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
    sensor = GroundTruthLabelingJobSensor(task_id="wait", job_name="shapes-elsewhere", poke_interval=1,
                                             timeout=60, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context())
    event = first_event(deferred.value.trigger)
    assert sensor.execute_complete(context(), event.payload) == started
    assert read(emu, started)

    # Poking (not deferrable) a Completed job succeeds at once with the same URI.
    poking = GroundTruthLabelingJobSensor(task_id="poke", job_name="shapes-elsewhere", poke_interval=1,
                                             timeout=10, deferrable=False)
    assert poking.execute(context()) == started


# -- CORS (defect 3) ---------------------------------------------------------------------------
def cors_rules(emu: Emulator, bucket: str = BUCKET) -> list[dict[str, Any]]:
    try:
        return s3_client(emu).get_bucket_cors(Bucket=bucket)["CORSRules"]
    except s3_client(emu).exceptions.ClientError:
        return []


def test_operator_adds_the_cors_rule_after_the_buckets_own_rules_once(emu):
    mine = {"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://uploads.example.com"], "MaxAgeSeconds": 60}
    s3_client(emu).put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [mine]})

    operator("shapes-cors").execute(context())
    rules = cors_rules(emu)
    assert len(rules) == 2
    assert rules[0]["AllowedMethods"] == ["PUT"] and rules[0]["AllowedOrigins"] == ["https://uploads.example.com"]
    assert rules[0]["MaxAgeSeconds"] == 60  # the user's rule is kept as it was, first
    assert rules[1]["AllowedMethods"] == ["GET"] and rules[1]["AllowedOrigins"] == ["*"]

    # A second job on the same bucket finds the rule and adds no duplicate.
    operator("shapes-cors-2").execute(context())
    assert cors_rules(emu) == rules


def test_an_equivalent_existing_rule_is_left_alone(emu):
    theirs = {"AllowedHeaders": ["*"], "AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": ["*"],
              "ExposeHeaders": ["ETag"]}
    s3_client(emu).put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [theirs]})
    before = cors_rules(emu)
    operator("shapes-cors-equal").execute(context())
    assert cors_rules(emu) == before


def raw_job(emu: Emulator, name: str, refs: list[str], **overrides: Any) -> dict[str, Any]:
    """Publish inputs for ``refs`` and build a CreateLabelingJob request, sent without the operator."""
    prefix = f"s3://{BUCKET}/labels/inputs/{name}/"
    prepare_labeling_inputs(s3_client(emu), image_uris=refs, labels=CLASSES, description="Boxes",
                               inputs_prefix=prefix)
    uris = labeling_inputs.labeling_input_uris(prefix)
    args = {"job_name": name, "input_manifest_uri": uris["input_manifest_uri"],
            "output_path": f"s3://{BUCKET}/labels/output/", "role_arn": ROLE, "label_attribute": "bounding-box",
            "labels": CLASSES, "categories_uri": uris["categories_uri"], "template_uri": uris["template_uri"],
            "region": "us-east-1", "task_description": "Boxes", "workteam_arn": PRIVATE_TEAM, **overrides}
    return labeling_job.labeling_job_request(**args)


def wait_done(emu: Emulator, name: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = sagemaker_client(emu).describe_labeling_job(LabelingJobName=name)
        if job["LabelingJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        assert time.monotonic() < deadline, job["LabelingJobStatus"]
        time.sleep(0.1)


def test_emulator_fails_the_tasks_of_images_in_a_bucket_without_cors(emu):
    """AWS, sms-cors-update: without CORS on the images' bucket, "labeling tasks ... will fail"."""
    sm = sagemaker_client(emu)
    sm.create_labeling_job(**raw_job(emu, "shapes-no-cors", image_uris()))
    job = wait_done(emu, "shapes-no-cors")
    assert job["LabelingJobStatus"] == "Failed"
    assert job["LabelCounters"]["FailedNonRetryableError"] == len(IMAGES)
    assert BUCKET in job["FailureReason"] and "CORS" in job["FailureReason"]

    # Images split over two buckets, one with the rule: those tasks succeed, the others fail.
    s3 = s3_client(emu)
    s3.create_bucket(Bucket="gt-emulator-cors")
    s3.put_bucket_cors(Bucket="gt-emulator-cors", CORSConfiguration={"CORSRules": [GT_CORS]})
    s3.upload_file(str(IMAGES[0]), "gt-emulator-cors", "raw/" + IMAGES[0].name)
    refs = [f"s3://gt-emulator-cors/raw/{IMAGES[0].name}", *image_uris()[1:3]]
    sm.create_labeling_job(**raw_job(emu, "shapes-half-cors", refs))
    job = wait_done(emu, "shapes-half-cors")
    assert job["LabelingJobStatus"] == "Completed"
    assert job["LabelCounters"]["TotalLabeled"] == 1 and job["LabelCounters"]["FailedNonRetryableError"] == 2
    lines = read(emu, job["LabelingJobOutput"]["OutputDatasetS3Uri"]).decode().splitlines()
    assert [json.loads(line)["source-ref"] for line in lines] == refs[:1]


# -- public workforce (defect 4), label categories and manifests ---------------------------------
def test_emulator_refuses_the_public_workforce(emu):
    s3_client(emu).put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [GT_CORS]})
    request = raw_job(emu, "shapes-public", image_uris()[:1])
    request["HumanTaskConfig"]["WorkteamArn"] = PUBLIC_TEAM
    with pytest.raises(ClientError) as err:
        sagemaker_client(emu).create_labeling_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "closed on 2026-09-30" in str(err.value)
    request["HumanTaskConfig"]["WorkteamArn"] = PRIVATE_TEAM
    request["HumanTaskConfig"]["PublicWorkforceTaskPrice"] = {
        "AmountInUsd": {"Dollars": 0, "Cents": 3, "TenthFractionsOfACent": 6}}
    with pytest.raises(ClientError, match="Mechanical Turk"):
        sagemaker_client(emu).create_labeling_job(**request)
    assert jobs_named(emu, "shapes-public") == []


@pytest.mark.parametrize(("document", "needle"), [
    ({"labels": [{"label": "circle"}]}, "document-version"),
    ({"document-version": "2019-01-01", "labels": [{"label": "circle"}]}, "document-version"),
    ({"document-version": "2018-11-28", "labels": []}, "lists no labels"),
    ({"document-version": "2018-11-28", "labels": ["circle"]}, "labels[0]"),
    ({"document-version": "2018-11-28", "labels": [{"label": "a"}, {"label": "a"}]}, "duplicate"),
    ({"document-version": "2018-11-28", "labels": [{"label": f"l{i}"} for i in range(51)]}, "at most 50"),
    ({"document-version": "2018-11-28", "labels": [{"label": "x" * 257}]}, "256"),
])
def test_emulator_enforces_the_label_category_file_rules(emu, document, needle):
    request = raw_job(emu, "shapes-cats", image_uris()[:1])
    bucket, key = request["LabelCategoryConfigS3Uri"][5:].split("/", 1)
    s3_client(emu).put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())
    with pytest.raises(ClientError) as err:
        sagemaker_client(emu).create_labeling_job(**request)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert needle in str(err.value)


def test_emulator_fails_a_manifest_line_without_source_ref(emu):
    request = raw_job(emu, "shapes-source", image_uris()[:2])
    bucket, key = request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"][5:].split("/", 1)
    body = json.dumps({"source-ref": image_uris()[0]}) + "\n" + json.dumps({"source": "a text object"}) + "\n"
    s3_client(emu).put_object(Bucket=bucket, Key=key, Body=body.encode())
    sagemaker_client(emu).create_labeling_job(**request)
    job = wait_done(emu, "shapes-source")
    assert job["LabelingJobStatus"] == "Failed"
    assert "line 2" in job["FailureReason"] and "source-ref" in job["FailureReason"]


# Ground Truth's manifest rules (SageMaker Developer Guide, "Input data"): UTF-8; an object of at
# most 100,000 characters; no attribute over 20,000 characters; no attribute name beginning with '$'.
def _line(extra: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"source-ref": image_uris()[0], **(extra or {})}).encode()


MANIFEST_RULES = {
    "not UTF-8": (_line().replace(b".jpg", b"\xff.jpg"), "is not UTF-8"),
    "object over 100,000 characters": (_line({"note": "n" * 19_000, **{f"k{i}": "v" * 19_000 for i in range(5)}}),
                                       "no larger than 100000 characters"),
    "attribute over 20,000 characters": (_line({"note": "n" * 20_001}), "no attribute can be larger than 20000"),
    "attribute name with $": (_line({"$meta": 1}), "begins with '$'"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_RULES))
def test_emulator_fails_a_manifest_that_breaks_ground_truths_object_rules(emu, case):
    bad, needle = MANIFEST_RULES[case]
    name = "shapes-rule-" + re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    request = raw_job(emu, name, image_uris()[:2])
    bucket, key = request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"][5:].split("/", 1)
    s3_client(emu).put_object(Bucket=bucket, Key=key, Body=_line() + b"\n" + bad + b"\n")
    sagemaker_client(emu).create_labeling_job(**request)
    job = wait_done(emu, name)
    assert job["LabelingJobStatus"] == "Failed"
    assert "line 2" in job["FailureReason"] and needle in job["FailureReason"], job["FailureReason"]

    # The operator checks an existing input manifest the same way, before the paid CreateLabelingJob.
    op = operator(f"{name}-op", image_uris=None, input_manifest_uri=f"s3://{bucket}/{key}")
    with pytest.raises((ConfigError, ManifestError)) as err:
        op.execute(context())
    assert f"s3://{bucket}/{key}:2:" in str(err.value), str(err.value)
    assert jobs_named(emu, f"{name}-op") == []


def test_emulator_ends_manifest_lines_at_newlines_only(emu):
    # U+2028 is a legal character inside a JSON string; str.splitlines would cut the line there.
    request = raw_job(emu, "shapes-u2028", image_uris()[:2])
    bucket, key = request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"][5:].split("/", 1)
    body = _line() + b"\r\n" + _line({"note": "one\u2028line"}).replace(b"\\u2028", "\u2028".encode()) + b"\n"
    assert "\u2028".encode() in body
    s3_client(emu).put_object(Bucket=bucket, Key=key, Body=body)
    sagemaker_client(emu).create_labeling_job(**request)
    job = wait_done(emu, "shapes-u2028")
    # The bucket has no CORS rule, so the tasks fail, but the manifest itself was read as 2 objects.
    assert "line" not in job.get("FailureReason", ""), job.get("FailureReason")
    assert job["LabelCounters"]["FailedNonRetryableError"] == 2, job["LabelCounters"]


# -- emulated days on the shared clock (defect 1, labeling) -------------------------------------
DAYS = 4


def test_a_labeling_job_that_lasts_emulated_days_completes_within_the_wait_budget(emu):
    control = Control(emu.endpoint_url)
    control.set_duration("labeling", DAYS * 86_400, name_prefix="shapes-days")
    control.set_time_scale(DAYS * 86_400 / 3)  # four emulated days in three real seconds

    op = operator("shapes-days", task_availability_lifetime_s=10 * 86_400, waiter_max_attempts=None)
    request = op.build_request("us-east-1")
    budget = labeling_job.labeling_wait_budget_s(request)
    task = request["HumanTaskConfig"]
    assert budget >= task["TaskAvailabilityLifetimeInSeconds"] + task["TaskTimeLimitInSeconds"]
    assert budget >= labeling_job.MAX_LABELING_JOB_S  # AWS ends every job after 30 days
    assert budget > DAYS * 86_400
    # The old pipeline budget was 10 days of polls; a job may legitimately need 30.
    assert op._attempts(request) * op.waiter_delay >= budget

    uri = op.execute(context())
    job = sagemaker_client(emu).describe_labeling_job(LabelingJobName="shapes-days")
    assert job["LabelingJobStatus"] == "Completed"
    assert uri == job["LabelingJobOutput"]["OutputDatasetS3Uri"]
    took = job["LastModifiedTime"] - job["CreationTime"]
    assert took.total_seconds() >= DAYS * 86_400  # Describe reports emulated time


def test_a_budget_that_runs_out_says_the_job_still_runs_and_a_retry_resumes_it(emu):
    control = Control(emu.endpoint_url)
    control.set_duration("labeling", 2 * 86_400, name_prefix="shapes-resume")
    control.set_time_scale(2 * 86_400 / 3)
    with pytest.raises(AirflowException) as err:
        operator("shapes-resume", waiter_max_attempts=1).execute(context())
    assert "still running" in str(err.value) and "resume waiting on the same job" in str(err.value)
    assert "shapes-resume" in str(err.value)

    uri = operator("shapes-resume", waiter_max_attempts=None).execute(context())  # the retry
    assert len(jobs_named(emu, "shapes-resume")) == 1
    assert read(emu, uri)


def test_a_job_longer_than_30_emulated_days_fails_as_aws_documents(emu):
    control = Control(emu.endpoint_url)
    control.set_duration("labeling", 31 * 86_400, name_prefix="shapes-month")
    control.set_time_scale(31 * 86_400 / 2)
    with pytest.raises(AirflowException, match="30 days"):
        operator("shapes-month", waiter_max_attempts=None).execute(context())
