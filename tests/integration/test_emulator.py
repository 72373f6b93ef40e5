"""The embedded AWS emulator (local_aws), exercised through real boto3 / aiobotocore clients.

Uses the session ``emulator`` fixture from tests/conftest.py (one Emulator per process), sets a
0.3 s timeline for this module and resets all AWS state around every test.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from local_aws import Control, ControlError, Emulator, airflow_env
from local_aws.training import fake_map

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "sample_data"
TRANSITION = 0.3
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
BUCKET = "emu-test"
# botocore's retries.max_attempts counts retries; total_max_attempts=1 means a single attempt.
NO_RETRY = {"mode": "standard", "total_max_attempts": 1}
BOUNDING_BOX_LAMBDA = "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox"


# -- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(autouse=True)
def emu(emulator: Emulator) -> Iterator[Emulator]:
    """The shared emulator, emptied and set to a short timeline for each test."""
    previous = emulator.transition_seconds
    emulator.reset()
    emulator.set_transition_seconds(TRANSITION)
    yield emulator
    emulator.set_transition_seconds(previous)
    emulator.reset()


_clients: dict[str, Any] = {}


def client(emu: Emulator, service: str, **config: Any) -> Any:
    """A boto3 client on the emulator (cached: building one costs ~50 ms); ``config`` -> Config."""
    key = json.dumps([emu.endpoint_url, service, config], sort_keys=True)
    if key not in _clients:
        _clients[key] = boto3.client(service, endpoint_url=emu.endpoint_url, region_name="us-east-1",
                                     aws_access_key_id="testing", aws_secret_access_key="testing",
                                     config=Config(**config) if config else None)
    return _clients[key]


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """Poll ``read`` until ``done`` holds; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s; last value: {value!r}")
        time.sleep(0.05)


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def answer_key() -> dict[str, dict[str, Any]]:
    """The sample data's manifest lines by image basename."""
    lines = [json.loads(x) for x in (SAMPLE / "output.manifest").read_text().splitlines() if x.strip()]
    return {line["source-ref"].rsplit("/", 1)[-1]: line for line in lines}


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def start_training(emu: Emulator, name: str, channel_uri: str | None = None,
                   hyperparameters: dict[str, str] | None = None) -> dict[str, Any]:
    """Create a training job whose input manifest exists (unless ``channel_uri`` says otherwise)."""
    s3 = client(emu, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/train.manifest", Body=b'{"source-ref": "s3://x/y.jpg"}\n')
    uri = channel_uri or f"s3://{BUCKET}/data/train.manifest"
    client(emu, "sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/"
                                                 "object-detection:1", "TrainingInputMode": "Pipe"},
        RoleArn=ROLE,
        InputDataConfig=[{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "AugmentedManifestFile", "S3Uri": uri,
            "AttributeNames": ["source-ref", "bounding-box"]}}}],
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models"},
        ResourceConfig={"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        **({"HyperParameters": hyperparameters} if hyperparameters is not None else {}),
    )
    return client(emu, "sagemaker").describe_training_job(TrainingJobName=name)


def training_status(emu: Emulator, name: str) -> Callable[[], dict[str, Any]]:
    sm = client(emu, "sagemaker")
    return lambda: sm.describe_training_job(TrainingJobName=name)


def terminal(d: dict[str, Any]) -> bool:
    return d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped")


def make_endpoint_configs(emu: Emulator, *names: str, async_output: str | None = None) -> None:
    sm = client(emu, "sagemaker")
    sm.create_model(ModelName="od-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/od:1"})
    for name in names:
        extra = ({"AsyncInferenceConfig": {"OutputConfig": {"S3OutputPath": async_output}}}
                 if async_output else {})
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
            "VariantName": f"{name}-variant", "ModelName": "od-model", "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.xlarge", "InitialVariantWeight": 1.0}], **extra)


def endpoint_in_service(emu: Emulator, name: str, config: str) -> dict[str, Any]:
    sm = client(emu, "sagemaker")
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)
    return wait_for(lambda: sm.describe_endpoint(EndpointName=name),
                    lambda d: d["EndpointStatus"] == "InService")


# -- training ----------------------------------------------------------------------------------
def test_training_job_walks_the_secondary_statuses_then_reports_map_and_writes_the_model(emu):
    first = start_training(emu, "od-train-1")
    assert first["TrainingJobStatus"] == "InProgress"
    assert first["SecondaryStatus"] in ("Starting", "Downloading", "Training")
    assert "FinalMetricDataList" not in first
    assert "MetricDefinitions" not in first["AlgorithmSpecification"]  # moto's stray example is gone

    done = wait_for(training_status(emu, "od-train-1"), terminal)

    assert done["TrainingJobStatus"] == "Completed"
    assert [t["Status"] for t in done["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    [metric] = done["FinalMetricDataList"]
    assert metric["MetricName"] == "validation:mAP"
    assert metric["Value"] == fake_map(1, 30)  # one manifest line, the default 30 epochs
    assert done["TrainingEndTime"] >= done["TrainingStartTime"]
    artifact = done["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == f"s3://{BUCKET}/models/od-train-1/output/model.tar.gz"
    blob = client(emu, "s3").get_object(Bucket=BUCKET, Key=artifact.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        info = json.load(tar.extractfile("EMULATED_MODEL.json"))
    assert info["emulated"] is True and info["validation:mAP"] == metric["Value"]
    listed = client(emu, "sagemaker").list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert [j["TrainingJobName"] for j in listed] == ["od-train-1"]
    logs = client(emu, "logs").describe_log_streams(logGroupName="/aws/sagemaker/TrainingJobs",
                                                    logStreamNamePrefix="od-train-1/")
    assert len(logs["logStreams"]) == 1


def test_training_map_can_be_set_per_name_prefix(emu):
    Control(emu.endpoint_url).set_training_map(0.73, name_prefix="od-")
    start_training(emu, "od-mapped")
    done = wait_for(training_status(emu, "od-mapped"), terminal)
    assert done["FinalMetricDataList"][0]["Value"] == 0.73


def test_fake_map_grows_with_data_and_epochs_and_is_a_fraction():
    grid = [(n, e) for n in (0, 1, 2, 5, 10, 100, 10_000, 10**7) for e in (1, 2, 10, 30, 200, 1000)]
    for n, e in grid:
        assert 0 < fake_map(n, e) < 1
        assert fake_map(n + 1, e) > fake_map(n, e) or n == 0 and e == 0
        assert fake_map(n, e + 1) > fake_map(n, e) or n == 0
    assert fake_map(10, 30) >= 0.5  # the sample data at the default epochs clears the default min_map


def test_training_map_follows_data_and_epochs_not_the_job_name(emu):
    """Two runs on the same data score the same; more samples or epochs score higher."""
    jobs = {"od-a": ("10", "30"), "od-b": ("10", "30"), "od-more-data": ("100", "30"),
            "od-more-epochs": ("10", "60"), "od-one-epoch": ("10", "1")}
    for name, (samples, epochs) in jobs.items():
        start_training(emu, name, hyperparameters={"num_training_samples": samples, "epochs": epochs})
    value = {name: wait_for(training_status(emu, name), terminal)["FinalMetricDataList"][0]["Value"]
             for name in jobs}
    assert value["od-a"] == value["od-b"] == fake_map(10, 30)
    assert value["od-more-data"] > value["od-a"] and value["od-more-epochs"] > value["od-a"]
    assert value["od-one-epoch"] < value["od-a"]
    # An explicit override still wins, per name prefix (how a test makes one run's model worse).
    Control(emu.endpoint_url).set_training_map(0.31, name_prefix="od-worse")
    start_training(emu, "od-worse-1", hyperparameters={"num_training_samples": "100", "epochs": "30"})
    assert wait_for(training_status(emu, "od-worse-1"), terminal)["FinalMetricDataList"][0]["Value"] == 0.31


def test_training_failure_and_stopped_faults_only_hit_matching_names(emu):
    control = Control(emu.endpoint_url)
    control.add_fault(kind="training_failure", name_prefix="od-fail", reason="AlgorithmError: boom")
    control.add_fault(kind="training_stopped", name_prefix="od-stop")
    for name in ("od-fail-1", "od-stop-1", "od-fine-1"):
        start_training(emu, name)

    failed = wait_for(training_status(emu, "od-fail-1"), terminal)
    stopped = wait_for(training_status(emu, "od-stop-1"), terminal)
    fine = wait_for(training_status(emu, "od-fine-1"), terminal)

    assert (failed["TrainingJobStatus"], failed["FailureReason"]) == ("Failed", "AlgorithmError: boom")
    assert "FinalMetricDataList" not in failed
    assert stopped["TrainingJobStatus"] == "Stopped"
    assert [t["Status"] for t in stopped["SecondaryStatusTransitions"]][-2:] == ["Stopping", "Stopped"]
    assert fine["TrainingJobStatus"] == "Completed"


def test_stop_training_job_and_its_validation(emu):
    emu.set_transition_seconds(2)  # long enough to stop it mid-flight
    start_training(emu, "od-to-stop")
    sm = client(emu, "sagemaker")
    sm.stop_training_job(TrainingJobName="od-to-stop")
    assert sm.describe_training_job(TrainingJobName="od-to-stop")["TrainingJobStatus"] == "Stopping"
    assert wait_for(training_status(emu, "od-to-stop"), terminal)["TrainingJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as exc:
        sm.stop_training_job(TrainingJobName="od-to-stop")
    assert error_code(exc) == "ValidationException" and "Stopped" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.stop_training_job(TrainingJobName="od-nonexistent")
    assert error_code(exc) == "ResourceNotFound"


def test_training_fails_when_its_input_channel_is_missing(emu):
    start_training(emu, "od-no-data", channel_uri=f"s3://{BUCKET}/data/absent.manifest")
    failed = wait_for(training_status(emu, "od-no-data"), terminal)
    assert failed["TrainingJobStatus"] == "Failed"
    assert "absent.manifest" in failed["FailureReason"] and "'train'" in failed["FailureReason"]


def test_training_job_names_are_unique(emu):
    start_training(emu, "od-twice")
    with pytest.raises(ClientError) as exc:
        start_training(emu, "od-twice")
    assert error_code(exc) == "ResourceInUse"


# -- endpoints ---------------------------------------------------------------------------------
def test_endpoint_create_then_update_then_failed_update_rolls_back(emu):
    sm, rt = client(emu, "sagemaker"), client(emu, "sagemaker-runtime", retries=NO_RETRY)
    make_endpoint_configs(emu, "cfg-a", "cfg-b")
    sm.create_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-a")
    assert sm.describe_endpoint(EndpointName="od-ep")["EndpointStatus"] == "Creating"
    with pytest.raises(ClientError) as exc:  # not serving while Creating
        rt.invoke_endpoint(EndpointName="od-ep", Body=png(8, 8), ContentType="image/png")
    assert error_code(exc) == "ValidationError"
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-b")
    assert error_code(exc) == "ValidationException"  # cannot update an in-progress endpoint
    wait_for(lambda: sm.describe_endpoint(EndpointName="od-ep"), lambda d: d["EndpointStatus"] == "InService")

    deployment = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}}}
    with pytest.raises(ClientError, match="same variant names"):  # cfg-b renames the variant (guardrails)
        sm.update_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-b", DeploymentConfig=deployment)
    sm.update_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-b")
    updating = sm.describe_endpoint(EndpointName="od-ep")
    assert (updating["EndpointStatus"], updating["EndpointConfigName"]) == ("Updating", "cfg-a")
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == "cfg-b"
    served = rt.invoke_endpoint(EndpointName="od-ep", Body=png(8, 8), ContentType="image/png")
    assert served["InvokedProductionVariant"] == "cfg-a-variant"  # the old config serves meanwhile
    updated = wait_for(lambda: sm.describe_endpoint(EndpointName="od-ep"),
                       lambda d: d["EndpointStatus"] == "InService")
    assert updated["EndpointConfigName"] == "cfg-b" and "FailureReason" not in updated
    assert "LastDeploymentConfig" not in updated
    assert updated["ProductionVariants"][0]["VariantName"] == "cfg-b-variant"

    Control(emu.endpoint_url).add_fault(kind="update_endpoint_failure", name_prefix="od-",
                                        reason="ClientError: health check failed")
    sm.update_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-a")
    assert sm.describe_endpoint(EndpointName="od-ep")["EndpointStatus"] == "Updating"
    rolled_back = wait_for(lambda: sm.describe_endpoint(EndpointName="od-ep"),
                           lambda d: d["EndpointStatus"] != "Updating")
    assert (rolled_back["EndpointStatus"], rolled_back["EndpointConfigName"]) == ("InService", "cfg-b")
    assert "rolled back" in rolled_back["FailureReason"]
    assert "health check failed" in rolled_back["FailureReason"]
    served = rt.invoke_endpoint(EndpointName="od-ep", Body=png(8, 8), ContentType="image/png")
    assert served["InvokedProductionVariant"] == "cfg-b-variant"


def test_update_endpoint_validates_names_and_create_rejects_duplicates(emu):
    sm = client(emu, "sagemaker")
    make_endpoint_configs(emu, "cfg-a")
    endpoint_in_service(emu, "od-ep", "cfg-a")
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-missing")
    assert error_code(exc) == "ValidationException" and "cfg-missing" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.update_endpoint(EndpointName="od-missing", EndpointConfigName="cfg-a")
    assert error_code(exc) == "ValidationException" and "od-missing" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.create_endpoint(EndpointName="od-ep", EndpointConfigName="cfg-a")
    assert error_code(exc) == "ValidationException"


def test_endpoint_weights_update_and_tags(emu):
    sm = client(emu, "sagemaker")
    make_endpoint_configs(emu, "cfg-a")
    arn = endpoint_in_service(emu, "od-ep", "cfg-a")["EndpointArn"]
    sm.update_endpoint_weights_and_capacities(EndpointName="od-ep", DesiredWeightsAndCapacities=[
        {"VariantName": "cfg-a-variant", "DesiredWeight": 0.5, "DesiredInstanceCount": 2}])
    assert sm.describe_endpoint(EndpointName="od-ep")["EndpointStatus"] == "Updating"
    done = wait_for(lambda: sm.describe_endpoint(EndpointName="od-ep"),
                    lambda d: d["EndpointStatus"] == "InService")
    assert done["ProductionVariants"][0]["CurrentInstanceCount"] == 2
    config_arn = sm.describe_endpoint_config(EndpointConfigName="cfg-a")["EndpointConfigArn"]
    model_arn = sm.describe_model(ModelName="od-model")["ModelArn"]
    for resource in (arn, config_arn, model_arn):
        sm.add_tags(ResourceArn=resource, Tags=[{"Key": "project", "Value": "vision"}])
        assert sm.list_tags(ResourceArn=resource)["Tags"] == [{"Key": "project", "Value": "vision"}]


# -- invocations -------------------------------------------------------------------------------
def test_invoke_endpoint_returns_the_true_boxes_of_sample_images(emu):
    make_endpoint_configs(emu, "cfg-a")
    endpoint_in_service(emu, "od-ep", "cfg-a")
    rt = client(emu, "sagemaker-runtime")
    for basename, line in answer_key().items():
        response = rt.invoke_endpoint(EndpointName="od-ep", ContentType="image/jpeg",
                                      Body=(SAMPLE / "images" / basename).read_bytes())
        assert response["ContentType"] == "application/json"
        predictions = json.loads(response["Body"].read())["prediction"]
        size = line["bounding-box"]["image_size"][0]
        expected = [[a["class_id"], a["left"] / size["width"], a["top"] / size["height"],
                     (a["left"] + a["width"]) / size["width"], (a["top"] + a["height"]) / size["height"]]
                    for a in line["bounding-box"]["annotations"]]
        got = [[p[0], *p[2:]] for p in predictions]
        assert len(got) == len(expected), basename
        for box, want in zip(got, expected, strict=True):
            assert box == pytest.approx(want, abs=1e-4), basename
        assert all(0.9 <= p[1] < 1.0 for p in predictions)


def test_invoke_endpoint_unknown_bad_and_missing_inputs(emu):
    make_endpoint_configs(emu, "cfg-a")
    endpoint_in_service(emu, "od-ep", "cfg-a")
    rt = client(emu, "sagemaker-runtime", retries=NO_RETRY)
    unknown = json.loads(rt.invoke_endpoint(EndpointName="od-ep", ContentType="image/png",
                                            Body=png(64, 48))["Body"].read())["prediction"]
    again = json.loads(rt.invoke_endpoint(EndpointName="od-ep", ContentType="image/png",
                                          Body=png(64, 48))["Body"].read())["prediction"]
    assert unknown == again and len(unknown) == 2  # deterministic noise
    assert all(p[1] < 0.35 and 0 <= p[2] < p[4] <= 1 and 0 <= p[3] < p[5] <= 1 for p in unknown)
    cases = [("od-ep", b"not an image", "image/jpeg", "ModelError"),
             ("od-ep", png(8, 8), "application/json", "ModelError"),
             ("od-missing", png(8, 8), "image/png", "ValidationError")]
    for name, body, content_type, code in cases:
        with pytest.raises(ClientError) as exc:
            rt.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type)
        assert error_code(exc) == code, (name, content_type)


def test_invoke_error_and_latency_faults(emu):
    make_endpoint_configs(emu, "cfg-a")
    endpoint_in_service(emu, "od-ep", "cfg-a")
    rt = client(emu, "sagemaker-runtime", retries=NO_RETRY)
    control = Control(emu.endpoint_url)
    body = (SAMPLE / "images" / "shape_000.jpg").read_bytes()
    control.add_fault(kind="invoke_error", code="ModelError", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            rt.invoke_endpoint(EndpointName="od-ep", Body=body, ContentType="image/jpeg")
        assert error_code(exc) == "ModelError"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    rt.invoke_endpoint(EndpointName="od-ep", Body=body, ContentType="image/jpeg")  # count used up

    control.clear_faults()
    control.add_fault(kind="invoke_error", code="ServiceUnavailable", rate=0.5, seed=7)
    outcomes = []
    for _ in range(40):
        try:
            rt.invoke_endpoint(EndpointName="od-ep", Body=body, ContentType="image/jpeg")
            outcomes.append(True)
        except ClientError as err:
            assert err.response["Error"]["Code"] == "ServiceUnavailable"
            outcomes.append(False)
    assert 5 < outcomes.count(False) < 35

    control.clear_faults()
    control.add_fault(kind="invoke_latency_ms", ms=250)
    started = time.monotonic()
    rt.invoke_endpoint(EndpointName="od-ep", Body=body, ContentType="image/jpeg")
    assert time.monotonic() - started >= 0.25


def test_invoke_endpoint_async_writes_the_prediction_to_s3(emu):
    s3 = client(emu, "s3")
    s3.create_bucket(Bucket=BUCKET)
    make_endpoint_configs(emu, "cfg-async", async_output=f"s3://{BUCKET}/async-out")
    endpoint_in_service(emu, "od-async", "cfg-async")
    image = (SAMPLE / "images" / "shape_001.jpg").read_bytes()
    s3.put_object(Bucket=BUCKET, Key="in/shape_001.jpg", Body=image)
    rt = client(emu, "sagemaker-runtime")
    response = rt.invoke_endpoint_async(EndpointName="od-async", ContentType="image/jpeg",
                                        InputLocation=f"s3://{BUCKET}/in/shape_001.jpg")
    bucket, key = response["OutputLocation"][5:].split("/", 1)
    assert key.startswith("async-out/") and key.endswith(".out")

    def read() -> bytes | None:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            return None

    body = wait_for(read, lambda b: b is not None)
    sync = rt.invoke_endpoint(EndpointName="od-async", ContentType="image/jpeg", Body=image)["Body"].read()
    assert json.loads(body) == json.loads(sync)


# -- throttling --------------------------------------------------------------------------------
def test_throttling_is_survived_with_retries_and_not_without(emu, monkeypatch):
    from botocore.retries import standard

    delays: list[int] = []

    def fast_delay(self: Any, context: Any) -> float:
        delays.append(context.attempt_number)
        return 0.01  # keep botocore's retry decision, skip its (up to 7 s) jittered sleep

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", fast_delay)
    start_training(emu, "od-throttled")
    control = Control(emu.endpoint_url)
    rule = control.add_fault(kind="throttle", service="sagemaker", action="DescribeTrainingJob", count=3)

    patient = client(emu, "sagemaker", retries={"mode": "standard", "max_attempts": 8})
    patient.list_training_jobs()  # other actions are not throttled
    described = patient.describe_training_job(TrainingJobName="od-throttled")
    assert described["ResponseMetadata"]["RetryAttempts"] == 3
    assert delays == [1, 2, 3]
    [used] = [r for r in control.faults() if r["id"] == rule["id"]]
    assert (used["remaining"], used["fired"]) == (0, 3)

    control.add_fault(kind="throttle", service="sagemaker", action="DescribeTrainingJob", count=3)
    impatient = client(emu, "sagemaker", retries={"mode": "standard", "max_attempts": 1})
    with pytest.raises(ClientError) as exc:
        impatient.describe_training_job(TrainingJobName="od-throttled")
    assert error_code(exc) == "ThrottlingException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert exc.value.response["ResponseMetadata"]["RetryAttempts"] == 1  # 1 retry, still throttled


@pytest.mark.parametrize(("service", "call", "code"), [
    ("s3", lambda c: c.list_buckets(), "SlowDown"),
    ("sts", lambda c: c.get_caller_identity(), "Throttling"),
    ("sagemaker-runtime", lambda c: c.invoke_endpoint(EndpointName="x", Body=b"x"), "ThrottlingException"),
])
def test_throttle_speaks_each_protocol(emu, service, call, code):
    Control(emu.endpoint_url).add_fault(kind="throttle", service=service, count=1)
    impatient = client(emu, service, retries=NO_RETRY)
    with pytest.raises(ClientError) as exc:
        call(impatient)
    assert error_code(exc) == code


# -- labeling ----------------------------------------------------------------------------------
def upload_labeling_inputs(emu: Emulator, basenames: list[str], extra_refs: list[str],
                           labels: list[str] | None) -> dict[str, Any]:
    """Images + input manifest (+ label category file); returns CreateLabelingJob kwargs."""
    s3 = client(emu, "s3")
    s3.create_bucket(Bucket=BUCKET)
    # Ground Truth's tasks fail on images in a bucket without this CORS rule (sms-cors-update).
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": [
        {"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"], "ExposeHeaders": []}]})
    refs = []
    for name in basenames:
        s3.put_object(Bucket=BUCKET, Key=f"raw/{name}", Body=(SAMPLE / "images" / name).read_bytes())
        refs.append(f"s3://{BUCKET}/raw/{name}")
    manifest = "".join(json.dumps({"source-ref": r}) + "\n" for r in refs + extra_refs)
    s3.put_object(Bucket=BUCKET, Key="in/input.manifest", Body=manifest.encode())
    kwargs: dict[str, Any] = {
        "LabelAttributeName": "bounding-box",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": f"s3://{BUCKET}/in/input.manifest"}}},
        "OutputConfig": {"S3OutputPath": f"s3://{BUCKET}/labels/"},
        "RoleArn": ROLE,
        "HumanTaskConfig": {
            "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
            "UiConfig": {"UiTemplateS3Uri": f"s3://{BUCKET}/template.liquid"},
            "PreHumanTaskLambdaArn": BOUNDING_BOX_LAMBDA,
            "TaskTitle": "Boxes", "TaskDescription": "Draw boxes", "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 300,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn":
                                              "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"},
        },
    }
    if labels is not None:
        doc = {"document-version": "2018-11-28", "labels": [{"label": x} for x in labels]}
        s3.put_object(Bucket=BUCKET, Key="in/labels.json", Body=json.dumps(doc).encode())
        kwargs["LabelCategoryConfigS3Uri"] = f"s3://{BUCKET}/in/labels.json"
    return kwargs


def test_labeling_job_lifecycle_writes_the_answer_key_as_output_manifest(emu):
    sm, s3 = client(emu, "sagemaker"), client(emu, "s3")
    key = answer_key()
    known = sorted(key)[:5]
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="raw/new_photo.png", Body=png(40, 30))
    labels = ["triangle", "circle", "square"]  # not the sample order: class ids must follow it
    kwargs = upload_labeling_inputs(emu, known, [f"s3://{BUCKET}/raw/new_photo.png",
                                                 f"s3://{BUCKET}/raw/vanished.jpg"], labels)
    sm.create_labeling_job(LabelingJobName="od-labels", **kwargs)

    first = sm.describe_labeling_job(LabelingJobName="od-labels")
    assert first["LabelingJobStatus"] == "InProgress"
    assert first["LabelCounters"]["Unlabeled"] + first["LabelCounters"]["HumanLabeled"] == 7
    listed = sm.list_labeling_jobs(StatusEquals="InProgress", NameContains="labels")["LabelingJobSummaryList"]
    assert [j["LabelingJobName"] for j in listed] == ["od-labels"]
    assert sm.list_labeling_jobs(NameContains="nope")["LabelingJobSummaryList"] == []

    done = wait_for(lambda: sm.describe_labeling_job(LabelingJobName="od-labels"),
                    lambda d: d["LabelingJobStatus"] != "InProgress")
    assert done["LabelingJobStatus"] == "Completed"
    assert done["LabelCounters"] == {"TotalLabeled": 6, "HumanLabeled": 6, "MachineLabeled": 0,
                                     "FailedNonRetryableError": 1, "Unlabeled": 0}
    uri = done["LabelingJobOutput"]["OutputDatasetS3Uri"]
    assert uri == f"s3://{BUCKET}/labels/od-labels/manifests/output/output.manifest"
    body = s3.get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read().decode()
    lines = {line["source-ref"].rsplit("/", 1)[-1]: line for line in map(json.loads, body.splitlines())}
    assert set(lines) == {*known, "new_photo.png"}  # the missing object is left out
    for name in known:
        truth = key[name]["bounding-box"]
        sample_classes = key[name]["bounding-box-metadata"]["class-map"]
        expected = [{**a, "class_id": labels.index(sample_classes[str(a["class_id"])])}
                    for a in truth["annotations"]]
        assert lines[name]["bounding-box"] == {"image_size": truth["image_size"], "annotations": expected}
        meta = lines[name]["bounding-box-metadata"]
        assert meta["class-map"] == {"0": "triangle", "1": "circle", "2": "square"}
        assert meta["type"] == "groundtruth/object-detection" and meta["job-name"] == "labeling-job/od-labels"
        assert len(meta["objects"]) == len(expected)
    assert lines["new_photo.png"]["bounding-box"] == {
        "image_size": [{"width": 40, "height": 30, "depth": 3}], "annotations": []}
    assert sm.list_labeling_jobs(StatusEquals="Completed")["LabelingJobSummaryList"][0]["LabelingJobName"] \
        == "od-labels"
    sm.add_tags(ResourceArn=done["LabelingJobArn"], Tags=[{"Key": "stage", "Value": "label"}])
    assert sm.list_tags(ResourceArn=done["LabelingJobArn"])["Tags"] == [{"Key": "stage", "Value": "label"}]


def test_labeling_job_without_category_file_uses_the_sample_classes(emu):
    sm, s3 = client(emu, "sagemaker"), client(emu, "s3")
    kwargs = upload_labeling_inputs(emu, ["shape_002.jpg"], [], labels=None)
    sm.create_labeling_job(LabelingJobName="od-default-classes", **kwargs)
    done = wait_for(lambda: sm.describe_labeling_job(LabelingJobName="od-default-classes"),
                    lambda d: d["LabelingJobStatus"] != "InProgress")
    uri = done["LabelingJobOutput"]["OutputDatasetS3Uri"]
    [line] = [json.loads(x) for x in s3.get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"]
              .read().decode().splitlines()]
    truth = answer_key()["shape_002.jpg"]
    assert line["bounding-box"] == truth["bounding-box"]
    assert line["bounding-box-metadata"]["class-map"] == truth["bounding-box-metadata"]["class-map"]


def test_stop_labeling_job(emu):
    emu.set_transition_seconds(2)
    sm = client(emu, "sagemaker")
    sm.create_labeling_job(LabelingJobName="od-stop-me",
                           **upload_labeling_inputs(emu, ["shape_000.jpg"], [], None))
    sm.stop_labeling_job(LabelingJobName="od-stop-me")
    assert sm.describe_labeling_job(LabelingJobName="od-stop-me")["LabelingJobStatus"] == "Stopping"
    stopped = wait_for(lambda: sm.describe_labeling_job(LabelingJobName="od-stop-me"),
                       lambda d: d["LabelingJobStatus"] != "Stopping")
    assert stopped["LabelingJobStatus"] == "Stopped"


def test_labeling_job_validation_and_failure_fault(emu):
    sm = client(emu, "sagemaker")
    kwargs = upload_labeling_inputs(emu, ["shape_000.jpg"], [], None)
    sm.create_labeling_job(LabelingJobName="od-dup", **kwargs)
    with pytest.raises(ClientError) as exc:
        sm.create_labeling_job(LabelingJobName="od-dup", **kwargs)
    assert error_code(exc) == "ResourceInUse"

    bad_manifest = json.loads(json.dumps(kwargs))
    bad_manifest["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] = f"s3://{BUCKET}/none"
    invalid = [
        ({**kwargs, "LabelAttributeName": "boxes-metadata"}, "-metadata"),
        ({**kwargs, "LabelAttributeName": "boxes-ref"}, "-ref"),
        (bad_manifest, f"s3://{BUCKET}/none"),
        ({**kwargs, "LabelCategoryConfigS3Uri": f"s3://{BUCKET}/no-labels.json"}, "no-labels.json"),
    ]
    for i, (bad, needle) in enumerate(invalid):
        with pytest.raises(ClientError) as exc:
            sm.create_labeling_job(LabelingJobName=f"od-bad-{i}", **bad)
        assert error_code(exc) == "ValidationException" and needle in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.describe_labeling_job(LabelingJobName="od-never")
    assert error_code(exc) == "ResourceNotFound"

    Control(emu.endpoint_url).add_fault(kind="labeling_failure", name_prefix="od-doomed",
                                        reason="ClientError: x")
    sm.create_labeling_job(LabelingJobName="od-doomed", **kwargs)
    failed = wait_for(lambda: sm.describe_labeling_job(LabelingJobName="od-doomed"),
                      lambda d: d["LabelingJobStatus"] != "InProgress")
    assert (failed["LabelingJobStatus"], failed["FailureReason"]) == ("Failed", "ClientError: x")
    assert "LabelingJobOutput" not in failed


# -- control API, clients, process behaviour ---------------------------------------------------
def test_control_api_round_trip(emu):
    control = Control(emu.endpoint_url)
    assert control.health()
    rule = control.add_fault({"kind": "training_failure", "name_prefix": "od-",
                              "reason": "AlgorithmError: x"})
    assert rule["id"] > 0 and control.faults() == [rule]
    state = control.state()
    assert state["transition_seconds"] == TRANSITION and state["faults"] == [rule]
    with pytest.raises(ControlError, match="unknown kind"):
        control.add_fault(kind="meteor_strike")
    with pytest.raises(ControlError, match="count or rate"):
        control.add_fault(kind="invoke_error", code="ModelError")
    with pytest.raises(ControlError, match="unknown service"):
        control.add_fault(kind="throttle", service="not-a-service")
    with pytest.raises(ControlError, match="map"):
        control.set_training_map(1.5)
    control.clear_faults()
    assert control.faults() == []
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{emu.endpoint_url}/_emulator/nowhere")
    assert exc.value.code == 404


def test_aiobotocore_client_reaches_the_emulator(emu):
    from aiobotocore.session import get_session

    start_training(emu, "od-async-client")

    async def describe() -> dict[str, Any]:
        async with get_session().create_client(
            "sagemaker", endpoint_url=emu.endpoint_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ) as sm:
            return await sm.describe_training_job(TrainingJobName="od-async-client")

    assert asyncio.run(describe())["TrainingJobName"] == "od-async-client"


def test_airflow_env_points_everything_at_the_emulator(emu):
    env = airflow_env(emu.endpoint_url, region="eu-west-1")
    conn = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn == {"conn_type": "aws", "login": "testing", "password": "testing",
                    "extra": {"region_name": "eu-west-1", "endpoint_url": emu.endpoint_url}}
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1" and env["AWS_ENDPOINT_URL"] == emu.endpoint_url


def test_only_one_emulator_runs_per_process(emu):
    with pytest.raises(RuntimeError, match="already running"):
        Emulator().start()
    assert Control(emu.endpoint_url).health()  # the running one is unharmed


def test_in_process_moto_use_is_not_affected_by_the_extension(emu):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse

    backend = sagemaker_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    job = backend.create_training_job(  # e.g. a unit test driving moto directly, not via the server
        training_job_name="direct", hyper_parameters={}, role_arn=ROLE, input_data_config=[],
        algorithm_specification={"TrainingImage": "x", "TrainingInputMode": "File"},
        output_data_config={"S3OutputPath": "s3://nowhere/out"}, resource_config={}, vpc_config={},
        stopping_condition={}, tags=[], enable_network_isolation=False,
        enable_inter_container_traffic_encryption=False, enable_managed_spot_training=False,
        checkpoint_config={}, debug_hook_config={}, debug_rule_configurations=[],
        tensor_board_output_config={}, experiment_config={})
    assert job.training_job_status == "Completed"  # moto's stock behaviour
    with pytest.raises(NotImplementedError):
        SageMakerResponse().update_endpoint()


def test_start_stop_start_in_one_process():
    script = (
        "import boto3\n"
        "from moto.sagemaker.responses import SageMakerResponse\n"
        "from local_aws import Emulator\n"
        "e = Emulator(transition_seconds=0)\n"
        "for _ in range(2):\n"
        "    url = e.start()\n"
        "    sm = boto3.client('sagemaker', endpoint_url=url, region_name='us-east-1',\n"
        "                      aws_access_key_id='testing', aws_secret_access_key='testing')\n"
        "    assert sm.list_labeling_jobs()['LabelingJobSummaryList'] == []\n"
        "    e.stop()\n"
        "    assert not hasattr(SageMakerResponse, 'update_endpoint')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cli_serve_runs_until_sigterm_and_cleans_up(tmp_path):
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "local_aws", "serve", "--port", "0", "--transition-seconds", "0.1",
         "--state-dir", str(state_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        assert Control(url).health()
        assert json.loads((state_dir / "emulator.json").read_text())["endpoint_url"] == url
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert list(state_dir.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serverless_endpoints_refuse_payloads_over_4_mb(emu):
    # serverless-endpoints-invoke: "The maximum request and response payload size for serverless
    # invocations is 4 MB"; provisioned endpoints take up to 6 MB (botocore BodyBlob max 6291456).
    sm = client(emu, "sagemaker")
    make_endpoint_configs(emu, "cfg-rt")
    sm.create_endpoint_config(EndpointConfigName="cfg-sl", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "od-model",
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])
    endpoint_in_service(emu, "od-rt", "cfg-rt")
    endpoint_in_service(emu, "od-sl", "cfg-sl")
    rt = client(emu, "sagemaker-runtime", retries=NO_RETRY)
    small = (SAMPLE / "images" / "shape_000.jpg").read_bytes()
    big = small + b"\0" * (4_000_001 - len(small))  # a JPEG with trailing bytes: still decodable
    assert rt.invoke_endpoint(EndpointName="od-sl", ContentType="image/jpeg", Body=small)["Body"].read()
    assert rt.invoke_endpoint(EndpointName="od-rt", ContentType="image/jpeg", Body=big)["Body"].read()
    with pytest.raises(ClientError) as exc:
        rt.invoke_endpoint(EndpointName="od-sl", ContentType="image/jpeg", Body=big)
    assert error_code(exc) == "ValidationError"
    assert "4000001 bytes" in str(exc.value) and "od-sl" in str(exc.value)
