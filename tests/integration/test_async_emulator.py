"""Asynchronous endpoints end to end on the embedded emulator (local_aws).

The endpoint is created from ``async_endpoint_config_request`` (so boto3 validates it against the
API model), invoked with InvokeEndpointAsync, and the smoke operator's deferral is driven by
running its trigger's ``run()`` with asyncio, as the triggerer would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from airflow.triggers.base import TriggerEvent

from local_aws import Control, Emulator
from sagemaker_vision.core.async_inference import async_endpoint_config_request, check_async_endpoint
from sagemaker_vision.core.inference import decode_detections, image_size
from sagemaker_vision.core.naming import (
    PACKAGE_TAG,
    PACKAGE_TAG_VALUE,
    backlog_alarm_name,
    backlog_policy_name,
    scale_from_zero_policy_name,
)
from sagemaker_vision.hooks.async_inference import invoke_async
from sagemaker_vision.hooks.scaling import apply_async_autoscaling
from sagemaker_vision.operators.async_inference import (
    SMOKE_INVOCATION_TIMEOUT_S,
    SMOKE_REQUEST_TTL_S,
    AsyncInferenceSmokeOperator,
)
from sagemaker_vision.triggers.async_inference import AsyncInferenceOutputTrigger

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "sample_data"
IMAGE = SAMPLE / "images" / "shape_000.jpg"
CLASSES = json.loads((SAMPLE / "classes.json").read_text())
TRUTH = json.loads((SAMPLE / "output.manifest").read_text().splitlines()[0])
BUCKET = "async-emulator"
ENDPOINT = "shapes-async"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
TAGS = [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "pipeline", "Value": "shapes-async"}]
TRANSITION = 0.3


def client(emu: Emulator, service: str) -> Any:
    return boto3.client(service, endpoint_url=emu.endpoint_url, region_name="us-east-1")


def wait_in_service(sm: Any, name: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] == "InService":
            return described
        assert time.monotonic() < deadline, described["EndpointStatus"]
        time.sleep(0.05)


def config_request(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "endpoint_config_name": f"{ENDPOINT}-1", "model_name": f"{ENDPOINT}-1", "instance_type": "ml.g4dn.xlarge",
        "instance_count": 1, "output_s3_uri": f"s3://{BUCKET}/async/output/",
        "failure_s3_uri": f"s3://{BUCKET}/async/failures/", "max_concurrent_invocations_per_instance": 2,
        "tags": TAGS,
    }
    args.update(overrides)
    return async_endpoint_config_request(**args)


@pytest.fixture
def emu(emulator_env: Emulator) -> Iterator[Emulator]:
    """An emptied emulator with an InService async endpoint built from our config request."""
    emulator_env.reset()
    emulator_env.set_transition_seconds(TRANSITION)
    client(emulator_env, "s3").create_bucket(Bucket=BUCKET)
    sm = client(emulator_env, "sagemaker")
    sm.create_model(ModelName=f"{ENDPOINT}-1", ExecutionRoleArn=ROLE, Tags=TAGS, PrimaryContainer={
        "Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
        "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})
    sm.create_endpoint_config(**config_request())
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-1", Tags=TAGS)
    wait_in_service(sm, ENDPOINT)
    yield emulator_env
    emulator_env.reset()


def read(emu: Emulator, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return client(emu, "s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def first_event(trigger: AsyncInferenceOutputTrigger, timeout: float = 30) -> TriggerEvent:
    async def run() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(run(), timeout))


def expected_boxes() -> list[tuple[int, int, int, int, str]]:
    annotations = TRUTH["bounding-box"]["annotations"]
    return sorted((a["left"], a["top"], a["width"], a["height"], CLASSES[a["class_id"]]) for a in annotations)


def assert_true_boxes(boxes: list[dict[str, Any]]) -> None:
    got = sorted((b["left"], b["top"], b["width"], b["height"], b["label"]) for b in boxes)
    want = expected_boxes()
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert g[4] == w[4] and all(abs(x - y) <= 1 for x, y in zip(g[:4], w[:4], strict=True)), (got, want)


def operator(**overrides: Any) -> AsyncInferenceSmokeOperator:
    args: dict[str, Any] = {
        "task_id": "async_smoke", "endpoint_name": ENDPOINT, "sample_image": str(IMAGE),
        "input_prefix": f"s3://{BUCKET}/runs/1/", "class_map": CLASSES, "min_score": 0.5,
        "waiter_delay": 1, "waiter_max_attempts": 20, "deferrable": True,
    }
    args.update(overrides)
    return AsyncInferenceSmokeOperator(**args)


# -- the endpoint and InvokeEndpointAsync ------------------------------------------------------------
def test_endpoint_serves_the_async_config_we_built(emu):
    sm = client(emu, "sagemaker")
    described = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert described["AsyncInferenceConfig"] == config_request()["AsyncInferenceConfig"]
    check_async_endpoint(described, "AllTraffic")


def test_invoke_async_writes_the_boxes_to_the_output_location(emu):
    s3 = client(emu, "s3")
    s3.upload_file(str(IMAGE), BUCKET, "in/shape_000.jpg")
    output = invoke_async(client(emu, "sagemaker-runtime"), ENDPOINT, f"s3://{BUCKET}/in/shape_000.jpg")
    assert output.startswith(f"s3://{BUCKET}/async/output/") and output.endswith(".out")
    event = first_event(AsyncInferenceOutputTrigger(output_location=output, poll_interval=0.1, max_attempts=100))
    assert event.payload["status"] == "success"
    width, height = image_size(IMAGE.read_bytes())
    boxes = decode_detections(read(emu, output), class_map=CLASSES, image_width=width, image_height=height,
                              min_score=0.5)
    assert_true_boxes([b.to_dict() for b in boxes])


def test_invoke_async_of_a_missing_input_is_refused(emu):
    with pytest.raises(client(emu, "sagemaker-runtime").exceptions.ValidationError):
        invoke_async(client(emu, "sagemaker-runtime"), ENDPOINT, f"s3://{BUCKET}/in/nothing.jpg")


# -- the operator, deferred --------------------------------------------------------------------------
def test_deferred_operator_uploads_invokes_and_decodes_the_true_boxes(emu):
    op = operator()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.async_inference.AsyncInferenceOutputTrigger"
    resume = deferred.value.kwargs
    assert resume["input_location"] == f"s3://{BUCKET}/runs/1/async-smoke/shape_000.jpg"
    assert read(emu, resume["input_location"]) == IMAGE.read_bytes()
    assert (resume["image_width"], resume["image_height"]) == image_size(IMAGE.read_bytes())
    assert json.loads(json.dumps(kwargs)) == kwargs and json.loads(json.dumps(resume)) == resume

    event = first_event(AsyncInferenceOutputTrigger(**kwargs))
    assert event.payload["status"] == "success"
    result = op.execute_complete({}, event.payload, **resume)
    assert result["output_location"] == resume["output_location"]
    assert_true_boxes(result["boxes"])
    assert {b["label"] for b in result["boxes"]} <= set(CLASSES)


def test_operator_without_deferral_polls_and_decodes(emu):
    result = operator(deferrable=False, waiter_delay=1, waiter_max_attempts=10).execute({})
    assert_true_boxes(result["boxes"])


def test_failure_object_fails_the_task_naming_it(emu):
    Control(emu.endpoint_url).add_fault(kind="invoke_error", code="ModelError", name_prefix=ENDPOINT, count=1)
    op = operator()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    event = first_event(AsyncInferenceOutputTrigger(**deferred.value.trigger.serialize()[1]))
    assert event.payload["status"] == "failed"
    failure = deferred.value.kwargs["failure_location"]
    assert failure.startswith(f"s3://{BUCKET}/async/failures/") and failure.endswith("-error.out")
    with pytest.raises(AirflowException) as err:
        op.execute_complete({}, event.payload, **deferred.value.kwargs)
    assert f"failure object {failure}" in str(err.value)
    assert "injected ModelError" in str(err.value)


def test_malformed_output_fails_naming_the_object(emu):
    op = operator()
    bad = f"s3://{BUCKET}/async/output/garbage.out"
    client(emu, "s3").put_object(Bucket=BUCKET, Key="async/output/garbage.out", Body=b'{"predictions": []}')
    resume = {"input_location": f"s3://{BUCKET}/in/x.jpg", "output_location": bad, "failure_location": None,
              "image_width": 320, "image_height": 240}
    with pytest.raises(AirflowException, match=f"async output {bad} is not object-detection JSON: reply has no "
                                               "'prediction' field"):
        op.execute_complete({}, {"status": "success", "output_location": bad}, **resume)


def test_trigger_times_out_after_its_attempts(emu):
    trigger = AsyncInferenceOutputTrigger(output_location=f"s3://{BUCKET}/async/output/never.out",
                                          failure_location=f"s3://{BUCKET}/async/failures/never-error.out",
                                          poll_interval=0.05, max_attempts=3)
    event = first_event(trigger)
    assert event.payload["status"] == "timeout"
    assert "after 3 polls" in event.payload["message"]
    with pytest.raises(AirflowException, match="ended with timeout"):
        operator().execute_complete({}, event.payload, input_location="s3://x/y.jpg",
                                    output_location=event.payload["output_location"],
                                    failure_location=event.payload["failure_location"],
                                    image_width=1, image_height=1)


def test_operator_refuses_a_real_time_endpoint(emu):
    sm = client(emu, "sagemaker")
    sm.create_endpoint_config(EndpointConfigName="shapes-rt", Tags=TAGS, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{ENDPOINT}-1", "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1}])
    sm.create_endpoint(EndpointName="shapes-rt", EndpointConfigName="shapes-rt")
    wait_in_service(sm, "shapes-rt")
    with pytest.raises(ValueError, match="'shapes-rt' is not an asynchronous endpoint"):
        operator(endpoint_name="shapes-rt").execute({})


# -- scale to zero -------------------------------------------------------------------------------------
def test_scale_to_zero_autoscaling_is_applied_and_idempotent(emu):
    aas, cloudwatch, sm = client(emu, "application-autoscaling"), client(emu, "cloudwatch"), client(emu, "sagemaker")
    first = apply_async_autoscaling(aas, cloudwatch, sm, ENDPOINT, max_capacity=3)
    second = apply_async_autoscaling(aas, cloudwatch, sm, ENDPOINT, max_capacity=3)
    # Moto mints a new policy ARN on every PutScalingPolicy; the alarm must follow the latest one.
    arns = ("target_tracking_policy_arn", "scale_from_zero_policy_arn")
    assert {k: v for k, v in first.items() if k not in arns} == {k: v for k, v in second.items() if k not in arns}

    (target,) = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        "endpoint/shapes-async/variant/AllTraffic", 0, 3)
    policies = {p["PolicyName"]: p for p in aas.describe_scaling_policies(
        ServiceNamespace="sagemaker", ResourceId=target["ResourceId"])["ScalingPolicies"]}
    assert set(policies) == {backlog_policy_name(ENDPOINT), scale_from_zero_policy_name(ENDPOINT)}
    metric = policies[backlog_policy_name(ENDPOINT)]["TargetTrackingScalingPolicyConfiguration"]
    assert metric["CustomizedMetricSpecification"]["MetricName"] == "ApproximateBacklogSizePerInstance"

    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[backlog_alarm_name(ENDPOINT)])["MetricAlarms"]
    assert alarm["MetricName"] == "HasBacklogWithoutCapacity"
    assert alarm["AlarmActions"] == [second["scale_from_zero_policy_arn"]]
    assert policies[scale_from_zero_policy_name(ENDPOINT)]["PolicyARN"] == second["scale_from_zero_policy_arn"]


# -- the request's lifetime: the wait covers it, and an expired request fails ---------------------------
def test_the_wait_covers_the_requests_lifetime_and_an_expired_request_fails(emu):
    # The old default, 120 checks of 30 s (1 h), ended the wait before AWS's default request
    # lifetime (RequestTTLSeconds 6 h + InvocationTimeoutSeconds 15 min) did.
    Control(emu.endpoint_url).set_duration("async_inference", 5000, ENDPOINT)  # > 3600 + 900
    op = operator(waiter_max_attempts=None, waiter_delay=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    kwargs = deferred.value.trigger.serialize()[1]
    # 1 s apart, and n checks span n - 1 delays: one more check than the lifetime in seconds.
    assert kwargs["max_attempts"] == SMOKE_REQUEST_TTL_S + SMOKE_INVOCATION_TIMEOUT_S + 1
    event = first_event(AsyncInferenceOutputTrigger(**{**kwargs, "poll_interval": 0.1}))
    assert event.payload["status"] == "failed"
    with pytest.raises(AirflowException, match="expired: it was not processed within RequestTTLSeconds 3600"):
        op.execute_complete({}, event.payload, **deferred.value.kwargs)
