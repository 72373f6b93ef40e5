"""Ground Truth's S3 side (hooks/ground_truth: inputs, CORS) and the labeling-job waiter on
SageMakerVisionHook. S3 goes to moto in-process; the waiter runs against a stubbed client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, WaiterError
from botocore.stub import Stubber
from botocore.waiter import WaiterModel

from sagemaker_vision.core import labeling_inputs
from sagemaker_vision.core.labeling_job import LABELING_JOB_COMPLETE
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import ground_truth as gt_s3
from sagemaker_vision.hooks.sagemaker import WAITERS_FILE, SageMakerVisionHook
from sagemaker_vision.waiters import load_waiter_config
from tests.unit.labeling_support import LABELS, REGION, describe_response, sagemaker_model


@pytest.fixture
def s3():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="gt-bucket")
        yield client


def _read(s3_client, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_prepare_labeling_inputs_uploads_three_files(s3):
    images = [f"s3://gt-bucket/raw/shape_{i:03d}.jpg" for i in range(3)]
    uris = gt_s3.prepare_labeling_inputs(
        s3, image_uris=images, labels=LABELS, description="Box the shapes", inputs_prefix="s3://gt-bucket/labels/in"
    )
    assert uris == labeling_inputs.labeling_input_uris("s3://gt-bucket/labels/in")
    manifest = _read(s3, uris["input_manifest_uri"]).decode().splitlines()
    assert [json.loads(line) for line in manifest] == [{"source-ref": u} for u in images]
    assert json.loads(_read(s3, uris["categories_uri"])) == labeling_inputs.label_categories_document(LABELS)
    assert _read(s3, uris["template_uri"]).decode() == labeling_inputs.render_template(LABELS, "Box the shapes")


def test_prepare_labeling_inputs_uploads_nothing_when_an_image_uri_is_bad(s3):
    with pytest.raises(ConfigError, match=r"^image_uris\[1\]"):
        gt_s3.prepare_labeling_inputs(s3, image_uris=["s3://gt-bucket/raw/a.jpg", "raw/b.jpg"], labels=LABELS,
                                   description="d", inputs_prefix="s3://gt-bucket/labels/in")
    assert s3.list_objects_v2(Bucket="gt-bucket").get("KeyCount", 0) == 0


def test_prepare_labeling_inputs_without_images_keeps_the_existing_manifest(s3):
    s3.put_object(Bucket="gt-bucket", Key="labels/in/input.manifest", Body=b'{"source-ref":"s3://x/y.jpg"}\n')
    uris = gt_s3.prepare_labeling_inputs(s3, image_uris=None, labels=LABELS, description="d",
                                      inputs_prefix="s3://gt-bucket/labels/in")
    assert set(uris) == {"categories_uri", "template_uri"}
    assert _read(s3, "s3://gt-bucket/labels/in/input.manifest") == b'{"source-ref":"s3://x/y.jpg"}\n'


# -- waiter ------------------------------------------------------------------------------------
def test_waiter_json_loads_with_the_acceptors():
    config = load_waiter_config(WAITERS_FILE)
    model = WaiterModel(config)
    assert LABELING_JOB_COMPLETE in model.waiter_names  # one file holds every waiter of the package
    waiter = model.get_waiter(LABELING_JOB_COMPLETE)
    assert waiter.operation == "DescribeLabelingJob"
    states = {(a.argument, a.expected): a.state for a in waiter.acceptors}
    assert states == {
        ("LabelingJobStatus", "Completed"): "success",
        ("LabelingJobStatus", "Failed"): "failure",
        ("LabelingJobStatus", "Stopped"): "failure",
        ("LabelingJobStatus", "Initializing"): "retry",
        ("LabelingJobStatus", "InProgress"): "retry",
        ("LabelingJobStatus", "Stopping"): "retry",
    }
    # Every status the API can return has an acceptor.
    status_enum = sagemaker_model().shape_for("LabelingJobStatus").enum
    assert sorted(expected for _, expected in states) == sorted(status_enum)




def _hook_with_stubbed_client(responses: list[dict[str, Any]]) -> tuple[SageMakerVisionHook, Stubber]:
    """The hook, and a Stubber on a sync client answering DescribeLabelingJob with ``responses``."""
    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    for response in responses:
        stubber.add_response("describe_labeling_job", response, {"LabelingJobName": "shapes-1"})
    return SageMakerVisionHook(aws_conn_id=None, region_name=REGION), stubber


def test_sync_waiter_retries_in_progress_and_succeeds_on_completed():
    hook, stubber = _hook_with_stubbed_client(
        [describe_response("InProgress"), describe_response("Stopping"), describe_response("Completed")]
    )
    with stubber:
        waiter = hook.get_waiter(LABELING_JOB_COMPLETE, client=stubber.client)
        waiter.wait(LabelingJobName="shapes-1", WaiterConfig={"Delay": 0, "MaxAttempts": 5})
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_sync_waiter_fails_on_failed_and_stopped(status):
    response = describe_response(status, FailureReason="ClientError: no access")
    hook, stubber = _hook_with_stubbed_client([response])
    with stubber:
        waiter = hook.get_waiter(LABELING_JOB_COMPLETE, client=stubber.client)
        with pytest.raises(WaiterError, match="terminal failure") as err:
            waiter.wait(LabelingJobName="shapes-1", WaiterConfig={"Delay": 0, "MaxAttempts": 5})
    assert err.value.last_response["FailureReason"] == "ClientError: no access"


def test_hook_reads_this_packages_waiters():
    hook = SageMakerVisionHook(aws_conn_id=None, region_name=REGION)
    assert Path(hook.waiter_path) == WAITERS_FILE
    assert LABELING_JOB_COMPLETE in hook._list_custom_waiters()
    assert sorted(hook._list_custom_waiters()) == sorted(load_waiter_config(WAITERS_FILE)["waiters"])


def test_ensure_cors_adds_the_rule_once_and_keeps_the_buckets_rules(s3):
    s3.create_bucket(Bucket="gt-images")
    s3.create_bucket(Bucket="gt-other")
    theirs = {"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://uploads.example.com"], "MaxAgeSeconds": 30}
    s3.put_bucket_cors(Bucket="gt-images", CORSConfiguration={"CORSRules": [theirs]})
    buckets = labeling_inputs.image_buckets(["s3://gt-images/raw/a.jpg", "s3://gt-other/b.png", "s3://gt-images/raw/c.jpg"])
    assert buckets == ["gt-images", "gt-other"]
    assert gt_s3.ensure_cors(s3, buckets) == {"gt-images": "added", "gt-other": "added"}
    rules = s3.get_bucket_cors(Bucket="gt-images")["CORSRules"]
    assert [r["AllowedMethods"] for r in rules] == [["PUT"], ["GET"]] and rules[0]["MaxAgeSeconds"] == 30
    assert s3.get_bucket_cors(Bucket="gt-other")["CORSRules"][0]["AllowedOrigins"] == ["*"]
    assert gt_s3.ensure_cors(s3, buckets) == {"gt-images": "present", "gt-other": "present"}
    assert len(s3.get_bucket_cors(Bucket="gt-images")["CORSRules"]) == 2


def test_ensure_cors_names_the_bucket_and_permission_when_it_cannot_read_or_write():
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("get_bucket_cors", "AccessDenied", "denied", 403)
        with pytest.raises(ConfigError, match=r"bucket gt-images .*s3:GetBucketCORS"):
            gt_s3.ensure_cors(client, ["gt-images"])
        stub.add_client_error("get_bucket_cors", "NoSuchCORSConfiguration", "none", 404)
        stub.add_client_error("put_bucket_cors", "AccessDenied", "denied", 403)
        with pytest.raises(ConfigError, match=r"bucket gt-images .*s3:PutBucketCORS.*tasks fail"):
            gt_s3.ensure_cors(client, ["gt-images"])
        stub.add_client_error("get_bucket_cors", "NoSuchBucket", "gone", 404)
        with pytest.raises(ConfigError, match=r"bucket gt-images"):
            gt_s3.ensure_cors(client, ["gt-images"])


@pytest.mark.parametrize(("operation", "code", "status"), [
    ("get_bucket_cors", "SlowDown", 503), ("put_bucket_cors", "OperationAborted", 409),
    ("put_bucket_cors", "ExpiredToken", 400),
])
def test_ensure_cors_leaves_a_transient_error_to_the_tasks_retries(operation, code, status):
    """Only what no retry fixes is a ConfigError (which fails the task at once); the rest is raised as is."""
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        if operation == "put_bucket_cors":
            stub.add_client_error("get_bucket_cors", "NoSuchCORSConfiguration", "none", 404)
        stub.add_client_error(operation, code, "try again", status)
        with pytest.raises(ClientError) as error:
            gt_s3.ensure_cors(client, ["gt-images"])
        assert not isinstance(error.value, ConfigError) and error.value.response["Error"]["Code"] == code


def _hook_on(client: Any) -> SageMakerVisionHook:
    hook = SageMakerVisionHook(aws_conn_id=None, region_name=REGION)
    hook.__dict__["conn"] = client  # the hook's cached client, stubbed
    return hook


def test_the_labeling_job_methods_read_a_missing_job_by_the_one_not_found_rule():
    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("describe_labeling_job", "ResourceNotFound", "Could not find labeling job 'shapes-1'")
    stubber.add_client_error("describe_labeling_job", "ResourceNotFound", "Could not find labeling job 'shapes-1'")
    stubber.add_client_error("describe_labeling_job", "ValidationException", "1 validation error detected")
    stubber.add_response("describe_labeling_job", describe_response("InProgress"), {"LabelingJobName": "shapes-1"})
    stubber.add_response("stop_labeling_job", {}, {"LabelingJobName": "shapes-1"})
    hook = _hook_on(client)
    with stubber:
        assert hook.find_labeling_job("shapes-1") is None
        with pytest.raises(LookupError, match="labeling job 'shapes-1' does not exist in us-east-1"):
            hook.describe_labeling_job("shapes-1")
        with pytest.raises(ClientError, match="1 validation error"):  # a real validation error is not "missing"
            hook.find_labeling_job("shapes-1")
        assert hook.describe_labeling_job("shapes-1")["LabelingJobStatus"] == "InProgress"
        hook.stop_labeling_job("shapes-1")
        stubber.assert_no_pending_responses()
