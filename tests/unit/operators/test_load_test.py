"""LoadTestOperator: the opt-in tag, the payload limit, the report it publishes and its argument checks."""

from __future__ import annotations

import json

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException
from moto import mock_aws

from benchmarks.stub_server import start_in_thread
from sagemaker_vision.core.loadtest.payloads import payload_limit
from sagemaker_vision.hooks.load_test import endpoint_allows_load_test, load_payloads
from sagemaker_vision.operators.load_test import LoadTestOperator
from tests.unit.core.loadtest.support import (
    JPEG,
    REGION,
    runtime_client,
    set_aws_env,
)


@pytest.fixture
def aws_env(monkeypatch):
    set_aws_env(monkeypatch)


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
        assert payload_limit(sm.describe_endpoint(EndpointName="sl-ep")) == 4_000_000
        assert payload_limit(sm.describe_endpoint(EndpointName="tagged-ep")) == 6_291_456

    def test_an_image_over_the_serverless_limit_is_refused_before_any_request(self, aws, tmp_path):
        sm, _ = aws
        self._serverless(sm)
        big = JPEG + b"\0" * (4_500_000 - len(JPEG))  # decodable, 4.5 MB: fine for 6 MiB, not for 4 MB
        (tmp_path / "big.jpg").write_bytes(big)
        url, stop = start_in_thread(0, 1)
        try:
            with pytest.raises(AirflowFailException, match=r"payload '.*big\.jpg' is 4500000 bytes, over the "
                                                           r"4000000 byte serverless InvokeEndpoint limit"):
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
            ({"report_s3_prefix": "/tmp/reports"}, "report_s3_prefix: '/tmp/reports' is not an s3:// URI"),
            ({"max_error_rate": "2"}, r"max_error_rate must be in \[0, 1\]"),
        ],
    )
    def test_bad_arguments_fail_before_any_aws_call(self, aws, stub, overrides, message):
        url, stop = stub
        op = make_operator(url, "tagged-ep", **overrides)
        op.sagemaker_client = None  # any AWS call would now raise AttributeError
        with pytest.raises(AirflowFailException, match=message):  # fails at once: no retry can fix it
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
