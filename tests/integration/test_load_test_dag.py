"""shapes-detector.load_test end to end on the emulator: the ramp, the report and the safety tag."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _endpoint(sm, name: str, tags: list[dict]) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                    PrimaryContainer={"Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
                                      "ModelDataUrl": "s3://sagemaker-vision-test/m.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "ServerlessConfig": {"MemorySizeInMB": 2048,
                                                                             "MaxConcurrency": 5}}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def _images(s3, bucket: str) -> str:
    """The sample images in S3: the load workers read payloads from S3 only (they may run on any machine)."""
    for path in sorted((ROOT / "include" / "sample_data" / "images").glob("*.jpg"))[:4]:
        s3.put_object(Bucket=bucket, Key=f"load-test-images/{path.name}", Body=path.read_bytes())
    return f"s3://{bucket}/load-test-images/"


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py")).get_dag("shapes-detector.load_test")


def test_ramp_writes_a_report_per_step(airflow_db, aws_clients):
    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    _endpoint(sm, "ramp-allowed", [{"Key": "load-test-allowed", "Value": "true"}])
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    run = _dag().test(run_conf={"endpoint_name": "ramp-allowed", "concurrency_steps": [1, 3],
                                "payload_prefix": _images(s3, bucket), "load_workers": 1,
                                "step_seconds": 1, "max_requests_per_step": 30,
                                "report_s3_prefix": f"s3://{bucket}/load-tests/"})
    assert run.state == "success"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="load-tests/")["Contents"]]
    report_key = next(k for k in keys if k.endswith("report.json"))
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert [step["concurrency"] for step in report["steps"]] == [1, 3]
    assert all(0 < step["requests"] <= 30 for step in report["steps"])
    assert any(k.endswith("chart.png") for k in keys)
    assert report["fanout"]["merged_workers"] == 1 and report["cost"]["kind"] == "serverless"
    assert float(report["cost"]["usd_per_1000_inferences"]) > 0


def test_untagged_endpoint_is_refused_without_force(airflow_db, aws_clients):
    _endpoint(aws_clients["sagemaker"], "ramp-production", [])
    run = _dag().test(run_conf={"endpoint_name": "ramp-production", "concurrency_steps": [1], "step_seconds": 1,
                                "max_requests_per_step": 5})
    assert run.state == "failed"


def test_garbage_200s_are_invalid_responses_that_fail_the_slo(airflow_db, aws_clients, emulator_env):
    """Issue 9, findings 6 and 7 through the DAG's defaults (asyncio engine, two processes) at C=1.

    The emulator's ``garbage_body`` fault answers about half the invocations with HTTP 200 and an HTML
    body. Every one is counted as ``InvalidResponse``, the SLO gate fails the run, and the C=1 step
    sends its whole budget of 20 (the old split over two processes sent 10).
    """
    import random

    from local_aws import Control

    name = "ramp-garbage"
    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    _endpoint(sm, name, [{"Key": "load-test-allowed", "Value": "true"}])
    control = Control(emulator_env.endpoint_url)
    control.clear_faults()
    # The rule rolls random.Random(seed) once per invocation: take a seed whose first roll (the cold start,
    # which must answer for the ramp to run) passes.
    seed = next(s for s in range(1000) if random.Random(s).random() >= 0.5)
    rule = control.add_fault(kind="garbage_body", name_prefix=name, rate=0.5, seed=seed)
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    try:
        run = _dag().test(run_conf={"endpoint_name": name, "concurrency_steps": [1], "step_seconds": 10,
                                    "payload_prefix": _images(s3, bucket), "load_workers": 1,
                                    "max_requests_per_step": 20, "max_error_rate": 0.01,
                                    "report_s3_prefix": f"s3://{bucket}/load-tests-garbage/"})
        (fired,) = [r["fired"] for r in control.faults() if r["id"] == rule["id"]]
    finally:
        control.clear_faults()
    assert run.state == "failed"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="load-tests-garbage/")["Contents"]]
    report_key = next(k for k in keys if k.endswith("report.json"))
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    (step,) = report["steps"]
    assert step["requests"] == 20 and step["stopped_by"] == "requests"
    assert set(step["errors_by_code"]) == {"InvalidResponse"} and 0.2 <= step["errors"] / 20 <= 0.8
    assert step["successes"] == 20 - step["errors"] and step["slo_met"] is False
    warmup_invalid = report["warmup"]["errors_by_code"].get("InvalidResponse", 0)
    assert fired == warmup_invalid + step["errors"]  # every garbage reply was counted, none as a success
    assert "InvalidResponse" in report["error_codes_explained"]
    assert "reply is not JSON" in step["error_examples"]["InvalidResponse"]


def test_garbage_body_rules_are_validated_and_answer_200(aws_clients, emulator_env):
    """The fault kind itself: count or rate required, unknown fields refused, a 200 with the rule's body."""
    from local_aws import Control
    from local_aws.control import ControlError

    control = Control(emulator_env.endpoint_url)
    control.clear_faults()
    try:
        with pytest.raises(ControlError, match="garbage_body needs count or rate"):
            control.add_fault(kind="garbage_body")
        with pytest.raises(ControlError, match=r"unexpected field\(s\) for garbage_body: \['code'\]"):
            control.add_fault(kind="garbage_body", count=1, code="ModelError")
        _endpoint(aws_clients["sagemaker"], "garbage-once", [])
        control.add_fault(kind="garbage_body", name_prefix="garbage-once", count=1, body='{"prediction": "x"}')
        runtime = aws_clients["sagemaker-runtime"]
        image = (ROOT / "include" / "sample_data" / "images" / "shape_000.jpg").read_bytes()
        first = runtime.invoke_endpoint(EndpointName="garbage-once", ContentType="image/jpeg", Body=image)
        assert first["ResponseMetadata"]["HTTPStatusCode"] == 200 and first["Body"].read() == b'{"prediction": "x"}'
        second = runtime.invoke_endpoint(EndpointName="garbage-once", ContentType="image/jpeg", Body=image)
        assert isinstance(json.loads(second["Body"].read())["prediction"], list)
    finally:
        control.clear_faults()
