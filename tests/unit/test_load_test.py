"""The load engine, its report, chart and sizing, the boto3 invoker and the operator."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from moto import mock_aws
from PIL import Image

from benchmarks.stub_server import start_in_thread
from sagemaker_vision import load_test
from sagemaker_vision.load_test import (
    InvocationError,
    LoadTestConfig,
    LoadTestError,
    LoadTestOperator,
    LoadTestReport,
    StepResult,
    boto3_invoker,
    endpoint_allows_load_test,
    error_code,
    load_payloads,
    percentile,
    render_chart,
    run_load_test,
)

SAMPLE_IMAGES = Path(__file__).resolve().parents[2] / "include" / "sample_data" / "images"
JPEG = (SAMPLE_IMAGES / "shape_000.jpg").read_bytes()
REGION = "us-east-1"


def config(**overrides) -> LoadTestConfig:
    values = {
        "endpoint_name": "shapes-ep",
        "concurrency_steps": (1,),
        "step_seconds": 1.0,
        "max_requests_per_step": 1000,
        "payloads": (("a.jpg", JPEG, "image/jpeg"),),
        "warmup_requests": 0,
        "request_timeout_s": 1.0,
    }
    values.update(overrides)
    return LoadTestConfig(**values)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"boom {code}"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "InvokeEndpoint")


def step(concurrency: int, latencies_ms: list[float], *, errors: dict[str, int] | None = None,
         duration_s: float = 1.0, cpu: float = 0.1, in_flight: float | None = None) -> StepResult:
    errors = errors or {}
    requests = len(latencies_ms) + sum(errors.values())
    return StepResult(
        concurrency=concurrency, requests=requests, successes=len(latencies_ms), errors_by_code=errors,
        duration_s=duration_s, stopped_by="time",
        achieved_concurrency=concurrency if in_flight is None else in_flight,
        client_cpu_ratio=cpu, latencies_ms=tuple(sorted(latencies_ms)),
    )


class FakeClock:
    """A clock that only moves when a fake invoke says so: exact latencies, no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


# ------------------------------------------------------------------------------------------------
# Percentiles and step maths


class TestPercentile:
    def test_nearest_rank_hand_computed(self):
        values = [15, 20, 35, 40, 50]  # the textbook nearest-rank example
        assert [percentile(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]

    def test_one_to_ten(self):
        values = list(range(1, 11))
        assert [percentile(values, p) for p in (50, 90, 95, 99)] == [5, 9, 10, 10]

    def test_one_to_hundred_ranks_are_exact(self):
        values = list(range(1, 101))
        assert [percentile(values, p) for p in (50, 90, 95, 99, 100)] == [50, 90, 95, 99, 100]
        assert percentile(list(range(1, 21)), 95) == 19  # 0.95 * 20 = 19.0 exactly: no float creep

    def test_empty_and_bad_p(self):
        assert percentile([], 95) is None
        with pytest.raises(ValueError, match=r"p must be in \(0, 100\]"):
            percentile([1.0], 0)

    def test_step_result_numbers(self):
        s = step(4, [float(v) for v in range(1, 21)], errors={"ModelError": 3, "ThrottlingException": 2},
                 duration_s=2.0)
        assert (s.requests, s.successes, s.errors) == (25, 20, 5)
        assert s.error_rate == pytest.approx(0.2)
        assert s.throughput_rps == pytest.approx(10.0)
        assert (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms) == (10, 18, 19, 20, 20)
        assert s.mean_ms == pytest.approx(10.5)
        data = s.to_dict()
        assert data["errors_by_code"] == {"ModelError": 3, "ThrottlingException": 2}
        assert "latencies_ms" not in data

    def test_step_without_successes(self):
        s = step(2, [], errors={"ValidationError": 4})
        assert (s.p95_ms, s.max_ms, s.throughput_rps, s.error_rate) == (None, None, 0.0, 1.0)
        assert s.breaches(100.0, None) == ["C=2: no successful request, p95 unknown (SLO 100 ms)"]


# ------------------------------------------------------------------------------------------------
# Config validation


class TestConfig:
    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"endpoint_name": " "}, "endpoint_name must be a non-empty string"),
            ({"concurrency_steps": ()}, "concurrency_steps must be a non-empty list"),
            ({"concurrency_steps": (5, 5)}, r"concurrency_steps must be strictly ascending, got \[5, 5\]"),
            ({"concurrency_steps": (10, 5)}, "concurrency_steps must be strictly ascending"),
            ({"concurrency_steps": (0, 5)}, r"concurrency_steps: 0 is not an integer in \[1, 1000\]"),
            ({"concurrency_steps": (1, 1001)}, r"concurrency_steps: 1001 is not an integer"),
            ({"concurrency_steps": (1.0, 2)}, r"concurrency_steps: 1.0 is not an integer"),
            ({"step_seconds": 0}, r"step_seconds must be in \(0, 3600\], got 0"),
            ({"step_seconds": float("inf")}, "step_seconds must be in"),
            ({"max_requests_per_step": 0}, "max_requests_per_step must be a positive integer, got 0"),
            ({"request_timeout_s": 61}, r"request_timeout_s must be in \(0, 60\], got 61"),
            ({"warmup_requests": -1}, "warmup_requests must be an integer >= 0"),
            ({"payloads": ()}, "payloads must be a non-empty list"),
            ({"payloads": (("a", b"", "image/jpeg"),)}, r"payloads\[0\] \('a'\): body must be non-empty"),
            ({"payloads": (("a", b"x", "jpeg"),)}, r"payloads\[0\] \('a'\): content_type 'jpeg' is not a"),
            ({"payloads": (("a", b"x"),)}, r"payloads\[0\] must be \(name, bytes, content_type\)"),
            ({"slo_p95_ms": 0}, "slo_p95_ms must be a positive number or None, got 0"),
            ({"max_error_rate": 1.5}, r"max_error_rate must be in \[0, 1\] or None, got 1.5"),
            ({"safety_factor": 0}, r"safety_factor must be in \(0, 1\], got 0"),
            ({"instance_count": 0}, "instance_count must be a positive integer, got 0"),
        ],
    )
    def test_bad_values_name_the_field(self, overrides, message):
        with pytest.raises(ValueError, match=message):
            config(**overrides)

    def test_lists_are_stored_as_tuples(self):
        cfg = config(concurrency_steps=[1, 5, 10], payloads=[["a.jpg", JPEG, "image/jpeg"]])
        assert cfg.concurrency_steps == (1, 5, 10)
        assert cfg.payloads == (("a.jpg", JPEG, "image/jpeg"),)
        assert cfg.max_concurrency == 10

    def test_worst_case_seconds_bounds_every_phase(self):
        cfg = config(concurrency_steps=(1, 2, 4), step_seconds=10, request_timeout_s=2, warmup_requests=3)
        grace = load_test.JOIN_GRACE_S
        assert cfg.worst_case_seconds == pytest.approx((2 + grace) + (10 + 2 + grace) + 3 * (10 + 2 + grace))

    def test_to_dict_lists_payloads_without_bytes(self):
        assert config().to_dict()["payloads"] == [
            {"name": "a.jpg", "bytes": len(JPEG), "content_type": "image/jpeg"}]


# ------------------------------------------------------------------------------------------------
# The engine


class TestRunLoadTest:
    def test_exact_latencies_and_time_bound_with_a_fake_clock(self):
        clock = FakeClock()
        report = run_load_test(lambda body, ct: clock.advance(0.125), config(step_seconds=1.0), clock=clock)
        (s,) = report.steps
        # 1.0 s / 0.125 s per request: the eighth request ends exactly at the deadline.
        assert (s.requests, s.successes, s.stopped_by) == (8, 8, "time")
        assert s.latencies_ms == (125.0,) * 8
        assert s.duration_s == 1.0 and s.throughput_rps == 8.0
        assert report.cold_start_ms == 125.0

    def test_ramp_is_bounded_by_request_count(self):
        calls = []
        lock = threading.Lock()

        def invoke(body: bytes, content_type: str) -> None:
            with lock:
                calls.append(content_type)

        started = time.monotonic()
        report = run_load_test(invoke, config(concurrency_steps=(1, 4, 8), step_seconds=30,
                                              max_requests_per_step=37, warmup_requests=3))
        assert time.monotonic() - started < 5  # nowhere near 3 x 30 s
        assert [(s.concurrency, s.requests, s.stopped_by) for s in report.steps] == [
            (1, 37, "requests"), (4, 37, "requests"), (8, 37, "requests")]
        assert report.warmup is not None and report.warmup.requests == 3
        assert len(calls) == 1 + 3 + 3 * 37  # cold start + warm-up + steps, nothing more

    def test_ramp_is_bounded_by_time(self):
        def invoke(body: bytes, content_type: str) -> None:
            time.sleep(0.01)

        started = time.monotonic()
        report = run_load_test(invoke, config(concurrency_steps=(1, 3), step_seconds=0.3,
                                              max_requests_per_step=100_000))
        elapsed = time.monotonic() - started
        assert elapsed < 2.0
        for s in report.steps:
            assert s.stopped_by == "time"
            assert 0.3 <= s.duration_s < 1.0
            # ideal is concurrency x 30 requests; sleep overshoot makes it fewer, never more
            assert 0.3 * s.concurrency * 30 <= s.requests <= s.concurrency * 30 + s.concurrency
            assert 9 <= s.p50_ms < 250  # the recorded latency includes the 10 ms sleep

    def test_hung_invoke_is_abandoned_and_counted_as_timeout(self, monkeypatch):
        monkeypatch.setattr(load_test, "JOIN_GRACE_S", 0.05)
        release = threading.Event()
        calls = []

        def invoke(body: bytes, content_type: str) -> None:
            calls.append(1)
            if len(calls) == 2:  # the first step request hangs, past timeout + grace
                release.wait(10)

        started = time.monotonic()
        try:
            report = run_load_test(invoke, config(step_seconds=0.1, request_timeout_s=0.1,
                                                  max_requests_per_step=5))
        finally:
            release.set()
        assert time.monotonic() - started < 2.0
        (s,) = report.steps
        assert (s.requests, s.successes, s.errors_by_code) == (1, 0, {"Timeout": 1})

    def test_errors_counted_by_code(self):
        # Payload i fails in its own way; the budget of 30 visits each of 3 payloads 10 times.
        failures = {b"ok": None, b"throttle": client_error("ThrottlingException", 400),
                    b"model": client_error("ModelError", 424)}

        def invoke(body: bytes, content_type: str) -> None:
            if failures[body] is not None:
                raise failures[body]

        payloads = tuple((name.decode(), name, "image/jpeg") for name in failures)
        report = run_load_test(invoke, config(concurrency_steps=(3,), max_requests_per_step=30,
                                              step_seconds=10, payloads=payloads, max_error_rate=0.01))
        (s,) = report.steps
        assert (s.requests, s.successes) == (30, 10)
        assert s.errors_by_code == {"ThrottlingException": 10, "ModelError": 10}
        assert report.total_errors_by_code == {"ModelError": 10, "ThrottlingException": 10}
        assert "boom ModelError" in s.error_examples["ModelError"]
        assert set(report.to_dict()["error_codes_explained"]) == {"ModelError", "ThrottlingException"}
        assert report.slo_breaches() == [
            "C=3: error rate 66.67% (20/30; ModelError=10, ThrottlingException=10) > max 1.00%"]

    def test_error_code_mapping(self):
        assert error_code(InvocationError("ModelError")) == "ModelError"
        assert error_code(client_error("ServiceUnavailable", 503)) == "ServiceUnavailable"
        no_code = ClientError({"Error": {}, "ResponseMetadata": {"HTTPStatusCode": 502}}, "InvokeEndpoint")
        assert error_code(no_code) == "HTTP502"
        assert error_code(TimeoutError()) == "Timeout"
        assert error_code(KeyError("x")) == "KeyError"

    def test_cold_start_failure_stops_before_the_ramp(self):
        calls = []

        def invoke(body: bytes, content_type: str) -> None:
            calls.append(1)
            raise client_error("ValidationError")

        with pytest.raises(LoadTestError, match=r"cold-start request to endpoint 'shapes-ep' failed with "
                                                r"ValidationError: .*boom ValidationError"):
            run_load_test(invoke, config(concurrency_steps=(1, 10)))
        assert calls == [1]

    def test_on_step_is_called_as_each_step_finishes(self):
        seen = []
        run_load_test(lambda b, c: None, config(concurrency_steps=(1, 2), max_requests_per_step=3),
                      on_step=lambda s: seen.append((s.concurrency, s.requests)))
        assert seen == [(1, 3), (2, 3)]

    def test_payloads_are_cycled(self):
        seen = []
        lock = threading.Lock()

        def invoke(body: bytes, content_type: str) -> None:
            with lock:
                seen.append(body)

        payloads = (("a", b"a", "image/jpeg"), ("b", b"b", "image/png"))
        run_load_test(invoke, config(payloads=payloads, max_requests_per_step=5))
        assert seen == [b"a", b"b", b"a", b"b", b"a", b"b"]  # cold start, then the step continues


# ------------------------------------------------------------------------------------------------
# Report: SLO, sizing, JSON, chart


def report_of(steps: list[StepResult], **overrides) -> LoadTestReport:
    return LoadTestReport(config=config(concurrency_steps=tuple(s.concurrency for s in steps), **overrides),
                          steps=tuple(steps), cold_start_ms=812.5, started_at="2026-01-01T00:00:00+00:00")


RAMP = [
    step(1, [40.0] * 19 + [60.0], duration_s=2.0),  # 10 rps, p95 40
    step(5, [70.0] * 19 + [90.0], duration_s=0.5),  # 40 rps, p95 70
    step(10, [150.0] * 20 + [400.0] * 10, duration_s=0.5, errors={"ModelError": 2}),  # 60 rps, p95 400
]


class TestReport:
    def test_slo_breach_messages_carry_the_numbers(self):
        report = report_of(RAMP, slo_p95_ms=100.0, max_error_rate=0.05)
        assert report.slo_breaches() == [
            "C=10: p95 400.0 ms > SLO 100 ms",
            "C=10: error rate 6.25% (2/32; ModelError=2) > max 5.00%",
        ]
        assert [report.step_passed(s) for s in report.steps] == [True, True, False]

    def test_sizing_uses_the_best_step_within_slo(self):
        report = report_of(RAMP, slo_p95_ms=100.0)
        assert report.max_sustainable_rps == pytest.approx(40.0)
        assert report.recommended_invocations_per_instance == pytest.approx(40.0 * 60 * 0.5)

    def test_sizing_without_slo_uses_the_overall_maximum(self):
        report = report_of(RAMP, safety_factor=0.4)
        assert report.slo_breaches() == []
        assert report.max_sustainable_rps == pytest.approx(60.0)
        assert report.recommended_invocations_per_instance == pytest.approx(60.0 * 60 * 0.4)

    def test_sizing_is_per_instance(self):
        report = report_of(RAMP, slo_p95_ms=100.0, instance_count=2)
        assert report.max_sustainable_rps_per_instance == pytest.approx(20.0)
        assert report.recommended_invocations_per_instance == pytest.approx(20.0 * 60 * 0.5)

    def test_nothing_sustainable_when_every_step_breaches(self):
        report = report_of(RAMP, slo_p95_ms=10.0)
        assert report.max_sustainable_rps == 0.0 and report.recommended_invocations_per_instance == 0.0

    def test_notes_flag_a_client_bound_step_and_an_open_ended_ramp(self):
        notes = report_of([step(1, [5.0]), step(50, [5.0], cpu=0.97), step(80, [5.0], in_flight=30.0)],
                          slo_p95_ms=100.0).notes()
        assert notes[0].startswith("C=50: the load generator used 0.97 CPU-s per s")
        assert notes[1].startswith("C=80: only 30.0 requests were in flight")
        assert "highest step (C=80) still met the SLO" in notes[2]

    def test_to_dict_is_json_safe_and_complete(self):
        report = report_of(RAMP, slo_p95_ms=100.0)
        data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        assert data["endpoint_name"] == "shapes-ep" and data["cold_start_ms"] == 812.5
        assert [s["slo_met"] for s in data["steps"]] == [True, True, False]
        assert data["steps"][2]["p95_ms"] == 400.0 and data["steps"][2]["throughput_rps"] == 60.0
        assert data["totals"] == {"requests": 72, "successes": 70, "errors_by_code": {"ModelError": 2},
                                  "duration_s": 3.0}
        assert data["max_sustainable_rps"] == 40.0 and data["recommended_invocations_per_instance"] == 1200.0
        assert json.loads(report.to_json()) == data

    def test_chart_is_a_valid_png(self, tmp_path):
        report = report_of(RAMP + [step(20, [], errors={"ThrottlingException": 9})], slo_p95_ms=100.0)
        buffer = io.BytesIO()
        render_chart(report, buffer)
        data = buffer.getvalue()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size == (800, 450)
        render_chart(report, tmp_path / "chart.png")
        assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------
# boto3 against the stub server


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)


def runtime_client(url: str, pool: int):
    from sagemaker_vision.aws import botocore_config

    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name=REGION,
                        config=botocore_config(pool, retries={"mode": "standard", "total_max_attempts": 1}))


class FakeRuntime:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def invoke_endpoint(self, **kwargs):
        raise self.exc


class Replying:
    """A runtime client whose every invocation answers 200 with ``body``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def invoke_endpoint(self, **kwargs):
        return {"Body": io.BytesIO(self.body)}


# Bodies a hostile or broken endpoint answers with a 200, and what the error says.
GARBAGE_BODIES = [
    (b"<html>502 Bad Gateway</html>", "reply is not JSON"),
    (b"", "reply is not JSON"),
    (b"\xff\xd8\xff\xe0", "reply is not UTF-8"),
    (b'"ok"', "must be a JSON object, got str"),
    (b'{"predictions": [[1.0, 0.9, 0.1, 0.1, 0.2, 0.2]]}', "no 'prediction' field"),
    (b'{"prediction": "none"}', "'prediction' must be a list"),
    (b'{"prediction": [[1.0, 0.9, 0.1, 0.1]]}', r"prediction\[0\] must be \[class_id"),
    (b'{"prediction": [[1.0, 7.5, 0.1, 0.1, 0.2, 0.2]]}', r"score=7.5 is outside \[0, 1\]"),
    (b'{"prediction": [[1.0, 0.9, 10, 20, 200, 120]]}', "outside the normalised range"),
    (b'{"prediction": [[1.0, 0.9, 0.1, 0.1, 0.2, 0.2], ["cat", 0.9, 0.1, 0.1, 0.2, 0.2]]}',
     r"prediction\[1\]: class_id must be a number"),
    (b'{"prediction": [[1e999, 0.9, 0.1, 0.1, 0.2, 0.2]]}', "class_id must be finite"),
    (b'{"prediction": [[' + b"9" * 400 + b', 0.9, 0.1, 0.1, 0.2, 0.2]]}', "400-digit integer"),
    (b"[" * 100_000, "reply is not JSON"),
]


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
# Payloads and the operator (moto for SageMaker and S3, the stub for InvokeEndpoint)


class TestPayloads:
    def test_local_directory_sorted_and_capped(self):
        payloads = load_payloads(str(SAMPLE_IMAGES), max_payloads=3)
        assert [(n, c) for n, _, c in payloads] == [("shape_000.jpg", "image/jpeg"),
                                                    ("shape_001.jpg", "image/jpeg"),
                                                    ("shape_002.jpg", "image/jpeg")]

    def test_relative_path_falls_back_to_the_project_root(self, monkeypatch, tmp_path):
        monkeypatch.chdir(tmp_path)
        assert len(load_payloads("include/sample_data/images")) == 12

    def test_errors_name_the_source(self, tmp_path):
        with pytest.raises(ValueError, match="neither an s3:// prefix nor an existing directory"):
            load_payloads(str(tmp_path / "missing"))
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(ValueError, match="holds no .jpg/.jpeg/.png files"):
            load_payloads(str(tmp_path))
        (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
        with pytest.raises(ValueError, match=r"payload 'broken.jpg': image data \(10 bytes\) is not a"):
            load_payloads(str(tmp_path))

    def test_oversized_payloads_are_refused_before_reading(self, aws_env, monkeypatch):
        monkeypatch.setattr(load_test, "MAX_PAYLOAD_BYTES", 100)
        with pytest.raises(ValueError, match=r"shape_000.jpg' is 4171 bytes, over the 100 byte real-time"):
            load_payloads(str(SAMPLE_IMAGES))
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="images")
            s3.put_object(Bucket="images", Key="big.jpg", Body=JPEG)
            with pytest.raises(ValueError, match=rf"'s3://images/big.jpg' is {len(JPEG)} bytes, over"):
                load_payloads("s3://images/", s3_client=s3)

    def test_s3_prefix(self, aws_env):
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="images")
            s3.put_object(Bucket="images", Key="eval/b.png", Body=_png())
            s3.put_object(Bucket="images", Key="eval/a.jpg", Body=JPEG)
            s3.put_object(Bucket="images", Key="eval/labels.json", Body=b"{}")
            s3.put_object(Bucket="images", Key="other/c.jpg", Body=JPEG)
            payloads = load_payloads("s3://images/eval/", s3_client=s3)
            assert [(n, c) for n, _, c in payloads] == [("s3://images/eval/a.jpg", "image/jpeg"),
                                                        ("s3://images/eval/b.png", "image/png")]
            assert payloads[0][1] == JPEG
            with pytest.raises(ValueError, match="payload_prefix 's3://images/none/' holds no"):
                load_payloads("s3://images/none/", s3_client=s3)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def stub():
    url, stop = start_in_thread(0, 5)
    yield url, stop
    stop()


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        sm = boto3.client("sagemaker", region_name=REGION)
        sm.create_model(ModelName="shapes-model", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/od:1"})
        sm.create_endpoint_config(EndpointConfigName="shapes-config", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "shapes-model", "InitialInstanceCount": 2,
             "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName="tagged-ep", EndpointConfigName="shapes-config",
                           Tags=[{"Key": "load-test-allowed", "Value": "true"}])
        sm.create_endpoint(EndpointName="untagged-ep", EndpointConfigName="shapes-config",
                           Tags=[{"Key": "load-test-allowed", "Value": "false"}])
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="reports")
        yield sm, s3


def make_operator(stub_url: str, endpoint: str, **overrides) -> LoadTestOperator:
    kwargs = {
        "task_id": "load_test", "endpoint_name": endpoint, "payload_prefix": "include/sample_data/images",
        "report_s3_prefix": "s3://reports/load-tests/run-1/", "concurrency_steps": [1, 2],
        "step_seconds": 0.3, "max_requests_per_step": 20, "slo_p95_ms": 1000, "max_error_rate": 0.0,
        "warmup_requests": 2, "aws_conn_id": None, "region_name": REGION,
        # The client below is injected: only the in-process engine uses it.
        "engine": "threads", "processes": 1,
    }
    kwargs.update(overrides)
    op = LoadTestOperator(**kwargs)
    op.client = runtime_client(stub_url, 2)  # InvokeEndpoint goes to the stub, the rest to moto
    return op


class TestPayloadLimitFollowsTheEndpoint:
    """Issue 9, finding 11b: an image too large for the endpoint is refused, named with its size, before
    the first request; a serverless endpoint takes 4 MB, a provisioned one 6 MiB."""

    @staticmethod
    def _serverless(sm) -> None:
        sm.create_endpoint_config(EndpointConfigName="sl-config", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "shapes-model",
             "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])
        sm.create_endpoint(EndpointName="sl-ep", EndpointConfigName="sl-config",
                           Tags=[{"Key": "load-test-allowed", "Value": "true"}])

    def test_limit_from_the_description(self, aws):
        sm, _ = aws
        self._serverless(sm)
        assert load_test.payload_limit(sm.describe_endpoint(EndpointName="sl-ep")) == 4_000_000
        assert load_test.payload_limit(sm.describe_endpoint(EndpointName="tagged-ep")) == 6_291_456

    def test_an_image_over_the_serverless_limit_is_refused_before_any_request(self, aws, tmp_path):
        sm, _ = aws
        self._serverless(sm)
        big = JPEG + b"\0" * (4_500_000 - len(JPEG))  # decodable, 4.5 MB: fine for 6 MiB, not for 4 MB
        (tmp_path / "big.jpg").write_bytes(big)
        url, stop = start_in_thread(0, 1)
        try:
            with pytest.raises(ValueError, match=r"payload '.*big\.jpg' is 4500000 bytes, over the 4000000 byte "
                                                 r"serverless InvokeEndpoint limit"):
                make_operator(url, "sl-ep", payload_prefix=str(tmp_path)).execute({})
            assert stop.stub.invocations == 0
            assert len(load_payloads(str(tmp_path), max_bytes=6_291_456)) == 1
        finally:
            stop()

    def test_an_empty_image_is_named(self, tmp_path):
        (tmp_path / "a.jpg").write_bytes(JPEG)
        (tmp_path / "empty.jpg").write_bytes(b"")
        with pytest.raises(ValueError, match=r"payload 'empty\.jpg' is empty \(0 bytes\)"):
            load_payloads(str(tmp_path))


def s3_keys(s3) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket="reports").get("Contents", []))


class TestLoadTestOperator:
    def test_tag_check(self, aws):
        sm, _ = aws
        arn = sm.describe_endpoint(EndpointName="tagged-ep")["EndpointArn"]
        assert endpoint_allows_load_test(sm, arn) is True
        assert endpoint_allows_load_test(sm, arn.replace("tagged-ep", "untagged-ep")) is False

    def test_refuses_an_untagged_endpoint(self, aws, stub):
        _, s3 = aws
        url, stop = stub
        op = make_operator(url, "untagged-ep")
        from airflow.sdk.exceptions import AirflowException

        with pytest.raises(AirflowException, match=r"refusing to load-test endpoint 'untagged-ep': it is not "
                                                   r"tagged load-test-allowed=true.*force=True"):
            op.execute({})
        assert stop.stub.invocations == 0 and s3_keys(s3) == []

    def test_runs_on_a_tagged_endpoint_and_publishes_the_report(self, aws, stub, capfd):
        _, s3 = aws
        url, stop = stub
        result = make_operator(url, "tagged-ep").execute({})
        assert result["report_uri"] == "s3://reports/load-tests/run-1/report.json"
        assert result["chart_uri"] == "s3://reports/load-tests/run-1/chart.png"
        assert s3_keys(s3) == ["load-tests/run-1/chart.png", "load-tests/run-1/report.json"]
        stored = json.loads(s3.get_object(Bucket="reports", Key="load-tests/run-1/report.json")["Body"]
                            .read())
        assert stored == {k: v for k, v in result.items() if not k.endswith("_uri")}
        assert [s["concurrency"] for s in stored["steps"]] == [1, 2]
        assert stored["config"]["instance_count"] == 2 and len(stored["config"]["payloads"]) == 12
        assert stored["slo_breaches"] == [] and stored["max_sustainable_rps"] > 0
        assert stored["recommended_invocations_per_instance"] == pytest.approx(
            stored["max_sustainable_rps"] / 2 * 60 * 0.5, abs=0.1)
        chart = s3.get_object(Bucket="reports", Key="load-tests/run-1/chart.png")
        assert chart["ContentType"] == "image/png" and chart["Body"].read()[:4] == b"\x89PNG"
        json.dumps(result)  # XCom-safe
        assert stop.stub.invocations == 1 + 2 + stored["totals"]["requests"]
        # Each step is logged as it finishes (Airflow's task logger writes to stdout here).
        logged = capfd.readouterr().out
        assert "step done: C=1: 20 req" in logged and "step done: C=2: 20 req" in logged
        assert "report: s3://reports/load-tests/run-1/report.json" in logged

    def test_force_runs_an_untagged_endpoint(self, aws, stub):
        url, _ = stub
        result = make_operator(url, "untagged-ep", force=True, concurrency_steps="[1]").execute({})
        assert [s["concurrency"] for s in result["steps"]] == [1]

    def test_slo_breach_fails_after_writing_the_report(self, aws, stub):
        _, s3 = aws
        url, _ = stub
        op = make_operator(url, "tagged-ep", slo_p95_ms=1, concurrency_steps="1,2")
        from airflow.sdk.exceptions import AirflowException

        expected = (r"breached its SLO at 2 point\(s\): C=1: p95 \d+\.\d ms > SLO 1 ms; "
                    r"C=2: p95 .* \(report s3://reports/load-tests/run-1/report.json\)")
        with pytest.raises(AirflowException, match=expected):
            op.execute({})
        assert s3_keys(s3) == ["load-tests/run-1/chart.png", "load-tests/run-1/report.json"]

    def test_slo_breach_only_reported_when_asked(self, aws, stub):
        url, _ = stub
        result = make_operator(url, "tagged-ep", slo_p95_ms=1, fail_on_slo_breach=False).execute({})
        assert len(result["slo_breaches"]) == 2 and result["max_sustainable_rps"] == 0.0

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"concurrency_steps": "[5, 1]"}, "concurrency_steps must be strictly ascending"),
            ({"step_seconds": "soon"}, "step_seconds must be a number, got 'soon'"),
            ({"max_requests_per_step": "12.5"}, "max_requests_per_step must be an integer, got '12.5'"),
            ({"concurrency_steps": ["1", "many"]}, r"concurrency_steps\[1\] must be an integer, got 'many'"),
            ({"report_s3_prefix": "/tmp/reports"}, "report_s3_prefix must be an s3:// URI"),
            ({"max_error_rate": "2"}, r"max_error_rate must be in \[0, 1\]"),
        ],
    )
    def test_bad_arguments_fail_before_any_aws_call(self, aws, stub, overrides, message):
        url, stop = stub
        op = make_operator(url, "tagged-ep", **overrides)
        op.sagemaker_client = None  # any AWS call would now raise AttributeError
        with pytest.raises(ValueError, match=message):
            op.execute({})
        assert stop.stub.invocations == 0

    @pytest.mark.parametrize(
        ("rendered", "expected"),
        [
            ({"concurrency_steps": ["4"], "max_requests_per_step": "500", "step_seconds": "60"},
             ((4,), 500, 60.0, 0.01, None)),
            ({"concurrency_steps": "[1, 5, 10]", "max_requests_per_step": "500.0", "slo_p95_ms": "2000",
              "max_error_rate": "0.05"}, ((1, 5, 10), 500, 60.0, 0.05, 2000.0)),
            ({"concurrency_steps": "1, 5", "slo_p95_ms": "None", "max_error_rate": ""},
             ((1, 5), 10_000, 60.0, None, None)),
            ({"concurrency_steps": 8}, ((8,), 10_000, 60.0, 0.01, None)),
        ],
    )
    def test_rendered_template_strings_become_numbers(self, rendered, expected):
        op = LoadTestOperator(task_id="t", endpoint_name="ep", payload_prefix="x", report_s3_prefix="s3://b/",
                              aws_conn_id=None, **rendered)
        cfg = op.build_config([("a.jpg", JPEG, "image/jpeg")], 1)
        assert (cfg.concurrency_steps, cfg.max_requests_per_step, cfg.step_seconds, cfg.max_error_rate,
                cfg.slo_p95_ms) == expected

    def test_runtime_client_has_the_pool_timeout_and_no_retries(self, aws_env):
        op = LoadTestOperator(task_id="t", endpoint_name="ep", payload_prefix="x", report_s3_prefix="s3://b/",
                              concurrency_steps=[1, 50], request_timeout_s=7, aws_conn_id=None,
                              region_name=REGION)
        cfg = op.client.meta.config
        assert cfg.max_pool_connections == 50
        assert cfg.read_timeout == 7 and cfg.connect_timeout == 7
        assert cfg.retries["total_max_attempts"] == 1  # botocore's max_attempts counts retries only
        assert op.client.meta.service_model.service_name == "sagemaker-runtime"
        assert op.client.meta.region_name == REGION
