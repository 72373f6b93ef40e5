"""The sagemaker-runtime side: the boto3 invoker's error codes and reply check, and invoke_and_decode,
against fakes and the stub."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from benchmarks.stub_server import start_in_thread
from sagemaker_vision.core.inference import Box, content_type_for
from sagemaker_vision.core.loadtest.engine import run_load_test
from sagemaker_vision.core.loadtest.model import (
    InvocationError,
    LoadTestError,
    error_code,
)
from sagemaker_vision.hooks.sagemaker_runtime import boto3_invoker, invoke_and_decode
from tests.unit.core.loadtest.support import (
    GARBAGE_BODIES,
    JPEG,
    SAMPLE_IMAGES,
    FakeRuntime,
    Replying,
    client_error,
    config,
    runtime_client,
    set_aws_env,
)
from tests.unit.core.test_inference import CLASSES, encode


@pytest.fixture
def aws_env(monkeypatch):
    set_aws_env(monkeypatch)


# ------------------------------------------------------------------------------------------------
# boto3 against the stub server



class TestBoto3Invoker:
    @pytest.mark.parametrize(
        ("exc", "code"),
        [
            (client_error("ModelError", 424), "ModelError"),
            (client_error("ThrottlingException", 429), "ThrottlingException"),
            (client_error("ServiceUnavailable", 503), "ServiceUnavailable"),
            (client_error("ValidationError", 400), "ValidationError"),
            (client_error("InternalFailure", 500), "InternalFailure"),
            (ReadTimeoutError(endpoint_url="https://runtime"), "Timeout"),
            (ConnectTimeoutError(endpoint_url="https://runtime"), "Timeout"),
            (EndpointConnectionError(endpoint_url="https://runtime"), "ConnectionError"),
        ],
    )
    def test_botocore_failures_map_to_codes(self, exc, code):
        with pytest.raises(InvocationError) as info:
            boto3_invoker(FakeRuntime(exc), "ep")(JPEG, "image/jpeg")
        assert info.value.code == code and error_code(info.value) == code

    @pytest.mark.parametrize(("body", "why"), GARBAGE_BODIES)
    def test_a_reply_that_is_not_detections_is_invalid_response(self, body, why):
        """Issue 9, finding 6: an HTTP 200 counts as a success only when it decodes."""
        with pytest.raises(InvocationError, match=why) as info:
            boto3_invoker(Replying(body), "ep")(JPEG, "image/jpeg")
        assert info.value.code == "InvalidResponse" == error_code(info.value)

    @pytest.mark.parametrize("body", [b'{"prediction": []}', b'{"prediction": [[1.0, 0.9, 0.1, 0.2, 0.3, 0.4]]}',
                                      b'{"prediction": [[0, 1, 0, 0, 1, 1]], "model": "v2"}'])
    def test_a_reply_in_the_detection_format_is_a_success(self, body):
        assert boto3_invoker(Replying(body), "ep")(JPEG, "image/jpeg") is None

    def test_garbage_200s_from_the_stub_fail_the_slo(self, aws_env):
        # Invocation 1 is the cold start (a good reply); every 3rd is 200 + HTML.
        url, stop = start_in_thread(0, 1, garbage_every=3)
        try:
            invoke = boto3_invoker(runtime_client(url, 2), "shapes-ep")
            report = run_load_test(invoke, config(concurrency_steps=(2,), max_requests_per_step=30,
                                                  step_seconds=10, max_error_rate=0.01))
        finally:
            stop()
        (s,) = report.steps
        assert (s.requests, s.successes, s.errors_by_code) == (30, 20, {"InvalidResponse": 10})
        assert report.slo_breaches() and "InvalidResponse=10" in report.slo_breaches()[0]
        assert report.to_dict()["error_codes_explained"]["InvalidResponse"].startswith("the endpoint answered")

    def test_a_garbage_cold_start_stops_the_ramp(self, aws_env):
        url, stop = start_in_thread(0, 1, garbage_every=1)
        try:
            with pytest.raises(LoadTestError, match=r"cold-start request .* failed with InvalidResponse: reply is not"):
                run_load_test(boto3_invoker(runtime_client(url, 1), "shapes-ep"), config())
        finally:
            stop()
        assert stop.stub.invocations == 1

    def test_throughput_against_the_stub_is_near_ideal(self, aws_env):
        concurrency, service_ms = 10, 20
        url, stop = start_in_thread(0, service_ms)
        try:
            invoke = boto3_invoker(runtime_client(url, concurrency), "shapes-ep")
            report = run_load_test(invoke, config(concurrency_steps=(concurrency,), step_seconds=1.0,
                                                  max_requests_per_step=100_000, warmup_requests=concurrency))
        finally:
            stop()
        (s,) = report.steps
        ideal = concurrency / (service_ms / 1000)
        assert s.errors_by_code == {}
        assert s.throughput_rps >= 0.5 * ideal, s.summary()
        assert s.p50_ms >= service_ms
        assert report.cold_start_ms >= service_ms
        assert stop.stub.max_open_connections <= concurrency  # one shared pool, reused connections

    def test_model_errors_through_real_botocore_parsing(self, aws_env):
        url, stop = start_in_thread(0, 1, fail_every=4)
        try:
            invoke = boto3_invoker(runtime_client(url, 2), "shapes-ep")
            report = run_load_test(invoke, config(concurrency_steps=(2,), max_requests_per_step=40,
                                                  step_seconds=10))
        finally:
            stop()
        (s,) = report.steps
        # 41 invocations in all (cold start first); every 4th fails: 10 of them, all in the step.
        assert (s.requests, s.errors_by_code) == (40, {"ModelError": 10})


# ------------------------------------------------------------------------------------------------
# invoke_and_decode: the smoke test's call


class FakeBody:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


class RecordingRuntime:
    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.calls: list[dict] = []

    def invoke_endpoint(self, **kwargs):
        self.calls.append(kwargs)
        return {"Body": FakeBody(self.reply), "ContentType": "application/json"}


class TestInvokeAndDecode:
    def test_sends_the_image_and_scales_boxes_to_its_size(self):
        client = RecordingRuntime(json.dumps({"prediction": [[0.0, 0.8, 0.5, 0.5, 1.0, 1.0]]}).encode())
        image = encode("PNG", (200, 100))
        (box,) = invoke_and_decode(client, "shapes-ep", image, "image/png", CLASSES, target_variant="blue")
        assert box == Box("circle", 0, 0.8, 100, 50, 100, 50)
        assert client.calls == [{"EndpointName": "shapes-ep", "Body": image, "ContentType": "image/png",
                                 "Accept": "application/json", "TargetVariant": "blue"}]

    def test_malformed_reply_names_the_endpoint_and_row(self):
        client = RecordingRuntime(b'{"prediction": [[0.0, 0.8, 0.5]]}')
        expected = r"endpoint 'shapes-ep' returned a malformed reply: prediction\[0\]"
        with pytest.raises(ValueError, match=expected):
            invoke_and_decode(client, "shapes-ep", encode("JPEG"), "image/jpeg", CLASSES)

    def test_rejects_unsupported_content_type_before_calling(self):
        client = RecordingRuntime(b"{}")
        with pytest.raises(ValueError, match="content_type must be one of"):
            invoke_and_decode(client, "ep", encode("JPEG"), "application/x-npy", CLASSES)
        assert client.calls == []

    def test_against_the_stub_server_with_a_real_boto3_client(self, monkeypatch):
        import boto3

        from benchmarks.stub_server import start_in_thread

        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
            monkeypatch.setenv(name, value)
        url, stop = start_in_thread(0, 1)
        try:
            client = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1")
            image = (SAMPLE_IMAGES / "shape_003.jpg").read_bytes()
            boxes = invoke_and_decode(client, "shapes-ep", image, content_type_for("shape_003.jpg"), CLASSES)
        finally:
            stop()
        # The stub's fixed reply, scaled to the 320x240 sample image.
        assert [b.to_dict() for b in boxes] == [
            {"label": "square", "class_id": 1, "score": 0.91, "left": 80, "top": 72, "width": 112,
             "height": 101},
            {"label": "circle", "class_id": 0, "score": 0.47, "left": 16, "top": 24, "width": 48,
             "height": 60},
        ]
        assert stop.stub.invocations == 1
