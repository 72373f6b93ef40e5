"""endpoint_load_test end to end on the emulator: the ramp, the report and the safety tag."""

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


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / "endpoint_load_test.py")).get_dag("endpoint_load_test")


def test_ramp_writes_a_report_per_step(airflow_db, aws_clients):
    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    _endpoint(sm, "ramp-allowed", [{"Key": "load-test-allowed", "Value": "true"}])
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    run = _dag().test(run_conf={"endpoint_name": "ramp-allowed", "concurrency_steps": [1, 3],
                                "step_seconds": 1, "max_requests_per_step": 30,
                                "report_s3_prefix": f"s3://{bucket}/load-tests/"})
    assert run.state == "success"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="load-tests/")["Contents"]]
    report_key = next(k for k in keys if k.endswith("report.json"))
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    assert [step["concurrency"] for step in report["steps"]] == [1, 3]
    assert all(0 < step["requests"] <= 30 for step in report["steps"])
    assert any(k.endswith("chart.png") for k in keys)


def test_untagged_endpoint_is_refused_without_force(airflow_db, aws_clients):
    _endpoint(aws_clients["sagemaker"], "ramp-production", [])
    run = _dag().test(run_conf={"endpoint_name": "ramp-production", "concurrency_steps": [1], "step_seconds": 1,
                                "max_requests_per_step": 5})
    assert run.state == "failed"
