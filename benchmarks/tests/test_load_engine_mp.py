"""The multi-process engine (``core/loadtest`` and ``hooks/sagemaker_runtime``): the split/merge
arithmetic, the asyncio phase runner, and the worker processes end to end against the stub server
(real botocore/aiobotocore parsing).

Belongs with tests/unit once the lead wires the engine in; it runs from here meanwhile.
"""

from __future__ import annotations

import asyncio
import pickle

import boto3
import pytest

from benchmarks.stub_server import start_in_thread
from sagemaker_vision.core.loadtest.engine import merge_steps, split_evenly
from sagemaker_vision.core.loadtest.model import LoadTestConfig, LoadTestError, StepResult
from sagemaker_vision.hooks.sagemaker_runtime import (
    ClientSpec,
    WorkerPool,
    run_load_test_processes,
    run_phase_async,
)

PAYLOADS = (("a.jpg", b"\xff\xd8\xff\xe0jpeg", "image/jpeg"), ("b.png", b"\x89PNG\r\n", "image/png"))


def spec(url: str, pool: int = 8, **overrides) -> ClientSpec:
    return ClientSpec(region_name="us-east-1", endpoint_url=url, access_key_id="testing",
                      secret_access_key="testing", max_pool_connections=pool, **overrides)


def config(**overrides) -> LoadTestConfig:
    values = {"endpoint_name": "shapes-ep", "concurrency_steps": (2, 4), "step_seconds": 5.0,
              "max_requests_per_step": 40, "payloads": PAYLOADS, "warmup_requests": 3, "request_timeout_s": 5.0}
    values.update(overrides)
    return LoadTestConfig(**values)


def step(concurrency=2, requests=10, successes=10, latencies=(), duration=1.0, cpu=0.5, stopped_by="time",
         errors=None, examples=None) -> StepResult:
    return StepResult(concurrency=concurrency, requests=requests, successes=successes, errors_by_code=errors or {},
                      duration_s=duration, stopped_by=stopped_by, achieved_concurrency=concurrency * 0.9,
                      client_cpu_ratio=cpu, latencies_ms=tuple(latencies), error_examples=examples or {})


@pytest.fixture
def stub():
    url, stop = start_in_thread(0, 20, fail_every=7)
    yield url, stop.stub
    stop()


class TestArithmetic:
    @pytest.mark.parametrize("total, parts, expected", [(100, 2, [50, 50]), (5, 2, [3, 2]), (1, 3, [1, 0, 0]),
                                                        (0, 2, [0, 0]), (7, 1, [7])])
    def test_split_evenly(self, total, parts, expected):
        assert split_evenly(total, parts) == expected
        assert sum(split_evenly(total, parts)) == total

    def test_split_refuses_nonsense(self):
        with pytest.raises(ValueError):
            split_evenly(3, 0)

    def test_merge_adds_counts_and_keeps_latencies_sorted(self):
        a = step(2, 10, 9, latencies=(1.0, 3.0, 5.0), duration=2.0, cpu=0.4, errors={"ModelError": 1},
                 examples={"ModelError": "boom"}, stopped_by="requests")
        b = step(3, 12, 10, latencies=(2.0, 4.0), duration=2.5, cpu=0.9, errors={"ModelError": 1, "Timeout": 1},
                 stopped_by="time")
        merged = merge_steps([a, b])
        assert (merged.concurrency, merged.requests, merged.successes) == (5, 22, 19)
        assert merged.errors_by_code == {"ModelError": 2, "Timeout": 1}
        assert merged.latencies_ms == (1.0, 2.0, 3.0, 4.0, 5.0)
        assert merged.duration_s == 2.5  # the step lasted as long as its slowest share
        assert merged.client_cpu_ratio == 0.9  # the busiest process: the GIL limit is per process
        assert merged.stopped_by == "time"
        assert merged.achieved_concurrency == pytest.approx((1.8 * 2.0 + 2.7 * 2.5) / 2.5)
        assert merged.error_examples == {"ModelError": "boom"}

    def test_merge_of_request_bounded_shares_is_request_bounded(self):
        assert merge_steps([step(stopped_by="requests"), step(stopped_by="requests")]).stopped_by == "requests"
        with pytest.raises(ValueError):
            merge_steps([])


class TestClientSpec:
    def test_from_session_freezes_credentials_and_hides_them(self):
        session = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s3cr3t",
                                        aws_session_token="tok", region_name="eu-west-1")
        made = ClientSpec.from_session(session, region_name="eu-west-1", endpoint_url="http://127.0.0.1:9",
                                       max_pool_connections=50)
        assert (made.access_key_id, made.secret_access_key, made.session_token) == ("AKIAEXAMPLE", "s3cr3t", "tok")
        assert "s3cr3t" not in repr(made) and "AKIAEXAMPLE" not in repr(made)
        assert pickle.loads(pickle.dumps(made)) == made
        client = made.boto3_client()
        assert client.meta.config.max_pool_connections == 50
        assert client.meta.config.retries["total_max_attempts"] == 1

    @pytest.mark.parametrize("field, value", [("region_name", ""), ("max_pool_connections", 0),
                                              ("max_pool_connections", True)])
    def test_bad_fields_are_named(self, field, value):
        kwargs = {"region_name": "us-east-1", field: value}
        with pytest.raises(ValueError, match=field):
            ClientSpec(**kwargs)


class TestAsyncPhase:
    def test_counts_successes_model_errors_and_respects_the_budget(self, stub):
        url, counters = stub

        async def run() -> StepResult:
            async with spec(url).aiobotocore_client() as client:
                return await run_phase_async(client, "shapes-ep", PAYLOADS, concurrency=4, max_requests=21,
                                             seconds=10, request_timeout_s=5, payload_offset=0)

        result = asyncio.run(run())
        assert result.requests == 21 == counters.invocations
        assert result.errors_by_code == {"ModelError": 3}  # the stub fails every 7th invocation
        assert result.successes == 18 and len(result.latencies_ms) == 18
        assert result.stopped_by == "requests"
        assert all(lat >= 20 for lat in result.latencies_ms)
        assert "stub model error" in result.error_examples["ModelError"]

    def test_a_slow_reply_counts_as_timeout(self):
        url, stop = start_in_thread(0, 1500)
        try:
            async def run() -> StepResult:
                async with spec(url, read_timeout_s=0.2).aiobotocore_client() as client:
                    return await run_phase_async(client, "shapes-ep", PAYLOADS, concurrency=1, max_requests=1,
                                                 seconds=5, request_timeout_s=0.2, payload_offset=0)

            result = asyncio.run(run())
        finally:
            stop()
        assert result.errors_by_code == {"Timeout": 1}
        assert result.successes == 0


class TestWorkers:
    @pytest.mark.parametrize("engine", ["threads", "asyncio"])
    def test_a_full_run_over_two_processes(self, stub, engine):
        url, counters = stub
        seen = []
        report = run_load_test_processes(config(), spec(url), processes=2, engine=engine, on_step=seen.append)
        assert [s.concurrency for s in report.steps] == [2, 4] and seen == list(report.steps)
        for s in report.steps:
            assert s.requests == 40 and s.stopped_by == "requests"
            assert set(s.errors_by_code) <= {"ModelError"} and s.successes == 40 - s.errors
            assert list(s.latencies_ms) == sorted(s.latencies_ms)
        assert report.warmup is not None and report.warmup.requests == 3
        assert report.cold_start_ms > 0
        # Cold start + warm-up + both steps: exactly what the stub saw, with every 7th failing.
        assert counters.invocations == 1 + 3 + 40 + 40
        assert sum(s.errors for s in report.steps) + report.warmup.errors == counters.invocations // 7

    def test_an_endpoint_that_does_not_answer_stops_the_run_at_the_cold_start(self):
        with pytest.raises(LoadTestError, match="cold-start request .* failed with ConnectionError"):
            run_load_test_processes(config(), spec("http://127.0.0.1:9", connect_timeout_s=1), processes=1)

    def test_bad_arguments_fail_before_any_process_starts(self):
        with pytest.raises(ValueError, match="processes"):
            WorkerPool(spec("http://127.0.0.1:9"), "ep", PAYLOADS, processes=0)
        with pytest.raises(ValueError, match="engine"):
            WorkerPool(spec("http://127.0.0.1:9"), "ep", PAYLOADS, engine="greenlets")
        with pytest.raises(ValueError, match="max_pool_connections"):
            run_load_test_processes(config(concurrency_steps=(40,)), spec("http://127.0.0.1:9", pool=8), processes=2)


def test_client_spec_from_an_airflow_connection(monkeypatch):
    """What the operator would call: the connection's endpoint_url, region and credentials."""
    import json

    from sagemaker_vision.hooks import base

    monkeypatch.setenv("AIRFLOW_CONN_BENCH_AWS", json.dumps({
        "conn_type": "aws", "login": "AKIACONN", "password": "conn-secret",
        "extra": {"region_name": "eu-west-1", "endpoint_url": "http://127.0.0.1:4566"},
    }))
    made = ClientSpec.from_hook(base.hook("sagemaker-runtime", "bench_aws"), max_pool_connections=100)
    assert (made.region_name, made.endpoint_url) == ("eu-west-1", "http://127.0.0.1:4566")
    assert (made.access_key_id, made.secret_access_key) == ("AKIACONN", "conn-secret")
    assert made.max_pool_connections == 100
