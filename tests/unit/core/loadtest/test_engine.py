"""The load engine in one process: bounds, timeouts, error codes, the cold start and payload cycling."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import (
    ClientError,
)

from sagemaker_vision.core.loadtest import engine
from sagemaker_vision.core.loadtest.engine import run_load_test
from sagemaker_vision.core.loadtest.model import (
    InvocationError,
    LoadTestError,
    error_code,
)
from tests.unit.core.loadtest.support import (
    FakeClock,
    client_error,
    config,
    set_aws_env,
)


@pytest.fixture
def aws_env(monkeypatch):
    set_aws_env(monkeypatch)


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
        monkeypatch.setattr(engine, "JOIN_GRACE_S", 0.05)
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
