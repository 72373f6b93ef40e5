"""<pipeline>.right_size end to end on the emulator, and the AWS rules it relies on.

The emulator answers every size alike, so the test gives each size its own latency (``invoke_latency_ms``
on the candidate's name prefix): 1024 MB is the cheapest per inference but misses the p95 SLO, 2048 MB
meets it; the recommendation must be 2048 MB, and no temporary endpoint or config may remain.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local_aws import Control, Emulator
from sagemaker_vision.core import right_size as rs
from sagemaker_vision.hooks.right_size import delete_candidate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "shapes-detector"  # include/pipelines/shapes-detector.yaml: prefix object-detection, serverless
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
OURS = [{"Key": "managed-by", "Value": "sagemaker-vision"}, {"Key": "load-test-allowed", "Value": "true"}]


@pytest.fixture
def emu(airflow_db, aws_clients, emulator_env: Emulator) -> Iterator[dict[str, Any]]:
    emulator_env.reset()
    emulator_env.set_transition_seconds(0.2)
    aws_clients["s3"].create_bucket(Bucket=os.environ["SAGEMAKER_VISION_BUCKET"])
    control = Control(emulator_env.endpoint_url)
    yield {**aws_clients, "control": control}
    control.clear_faults()
    emulator_env.reset()


def _wait(sm: Any, name: str, status: str = "InService", timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != status:
        assert time.monotonic() < deadline, f"{name} never reached {status}"
        time.sleep(0.05)


def _model(sm: Any, name: str, data_url: str | None = None) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Tags=OURS[:1],
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": data_url or f"s3://bucket/{name}/model.tar.gz"})


def _production(sm: Any, variant: dict[str, Any], data_url: str | None = None) -> None:
    """The pipeline's endpoint, serving model shapes-detector-m1."""
    _model(sm, "shapes-detector-m1", data_url)
    sm.create_endpoint_config(EndpointConfigName="shapes-detector-prod", Tags=OURS[:1], ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "shapes-detector-m1", **variant}])
    sm.create_endpoint(EndpointName=PIPELINE, EndpointConfigName="shapes-detector-prod", Tags=OURS)
    _wait(sm, PIPELINE)


def _images(s3: Any, bucket: str) -> str:
    for path in sorted((ROOT / "include" / "sample_data" / "images").glob("*.jpg"))[:4]:
        s3.put_object(Bucket=bucket, Key=f"right-size-images/{path.name}", Body=path.read_bytes())
    return f"s3://{bucket}/right-size-images/"


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py")).get_dag(f"{PIPELINE}.right_size")


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _left(sm: Any) -> tuple[list[str], list[str]]:
    return ([e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]],
            [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]])


SERVERLESS = {"ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10}}


def test_right_size_recommends_the_cheapest_size_that_meets_the_slo_and_leaves_nothing_behind(emu):
    sm, s3, control = emu["sagemaker"], emu["s3"], emu["control"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    _production(sm, SERVERLESS)
    # 1024 MB: 0.7 s x 1 GB = 0.7 GB-s per inference, the cheapest, but its p95 misses the 600 ms SLO;
    # 2048 MB: 0.45 s x 2 GB = 0.9 GB-s, and meets it.
    control.add_fault(kind="invoke_latency_ms", ms=700, name_prefix=f"{PIPELINE}-rs1024-")
    control.add_fault(kind="invoke_latency_ms", ms=450, name_prefix=f"{PIPELINE}-rs2048-")
    started = time.monotonic()
    run = _dag().test(run_conf={"memory_sizes_mb": [2048, 1024], "concurrency": 2, "requests_per_size": 8,
                                "seconds_per_size": 20, "load_workers": 1, "slo_p95_ms": 600, "max_error_rate": 0.01,
                                "payload_prefix": _images(s3, bucket), "budget_usd": 5})
    elapsed = time.monotonic() - started
    states = _states(run)
    assert run.state == "success", states
    assert states["size_1024.load_test"] == states["size_2048.load_test"] == "success"
    assert states["size_3072.create"] == states["size_6144.load_test"] == "skipped"
    assert states["teardown"] == "success"

    reports = rs.reports_prefix(bucket, "object-detection", run.run_id)
    key = reports.removeprefix(f"s3://{bucket}/") + "recommendation.json"
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert doc["recommended_memory_mb"] == 2048 and doc["current_memory_mb"] == 4096
    assert doc["model_name"] == "shapes-detector-m1" and doc["missing_memory_mb"] == []
    small, large = doc["candidates"]
    assert (small["memory_mb"], large["memory_mb"]) == (1024, 2048)
    assert small["meets_slo"] is False and large["meets_slo"] is True
    assert small["p95_ms"] > 600 > large["p95_ms"] >= large["p50_ms"] >= 450
    # the cheaper size lost on the SLO, not on the price
    assert float(small["usd_per_1000_inferences"]) < float(large["usd_per_1000_inferences"])
    assert all(c["requests"] == 8 and c["errors"] == 0 and c["throughput_rps"] > 0 and c["p99_ms"]
               and float(c["usd_per_hour"]) > 0 for c in doc["candidates"])
    for candidate in doc["candidates"]:  # each size's own report, written by the load test's reduce
        report_key = candidate["report_uri"].removeprefix(f"s3://{bucket}/")
        report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
        assert report["cost"]["memory_mb"] == candidate["memory_mb"]

    # Nothing temporary remains; the production endpoint serves what it served.
    assert _left(sm) == ([PIPELINE], ["shapes-detector-prod"])
    production = sm.describe_endpoint(EndpointName=PIPELINE)
    assert production["EndpointStatus"] == "InService" and production["EndpointConfigName"] == "shapes-detector-prod"
    assert elapsed < 150, elapsed


def test_a_size_that_cannot_start_does_not_stop_the_next_and_fails_the_run_after_the_report(emu):
    sm, s3, control = emu["sagemaker"], emu["s3"], emu["control"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    # The model a pipeline run trained; no payload_prefix: the images are that run's validation manifest.
    run_prefix = f"object-detection/runs/{PIPELINE}/20261201T030000/"
    _production(sm, SERVERLESS, f"s3://{bucket}/{run_prefix}training-output/j-1/output/model.tar.gz")
    images = _images(s3, bucket)
    names = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="right-size-images/")["Contents"]][:2]
    s3.put_object(Bucket=bucket, Key=f"{run_prefix}manifests/validation.manifest", Body="".join(
        json.dumps({"source-ref": f"s3://{bucket}/{key}"}) + "\n" for key in names).encode())
    assert images.endswith("/right-size-images/")
    control.add_fault(kind="endpoint_failure", name_prefix=f"{PIPELINE}-rs1024-",
                      reason="The model does not fit in 1024 MB")
    run = _dag().test(run_conf={"memory_sizes_mb": [1024, 2048], "concurrency": 1, "requests_per_size": 4,
                                "seconds_per_size": 10, "load_workers": 1})
    states = _states(run)
    assert run.state == "failed", states
    assert states["size_1024.deploy"] == "failed" and states["size_1024.load_test"] == "upstream_failed"
    assert states["size_2048.load_test"] == "success"  # tested after the failed size
    assert states["recommend"] == "failed" and states["teardown"] == "success"
    key = rs.reports_prefix(bucket, "object-detection", run.run_id).removeprefix(f"s3://{bucket}/")
    doc = json.loads(s3.get_object(Bucket=bucket, Key=key + "recommendation.json")["Body"].read())
    assert doc["missing_memory_mb"] == [1024] and doc["recommended_memory_mb"] == 2048
    tested = json.loads(s3.get_object(Bucket=bucket, Key=key + "2048mb/report.json")["Body"].read())
    assert [p["name"] for p in tested["config"]["payloads"]] == sorted(f"s3://{bucket}/{n}" for n in names)
    assert _left(sm) == ([PIPELINE], ["shapes-detector-prod"])  # the Failed endpoint was deleted too


def test_a_provisioned_endpoint_or_an_estimate_over_budget_fails_before_anything_is_created(emu):
    sm = emu["sagemaker"]
    _production(sm, {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1, "InitialVariantWeight": 1.0})
    run = _dag().test(run_conf={"memory_sizes_mb": [1024]})
    states = _states(run)
    assert run.state == "failed" and states["check"] == "failed", states
    assert states["estimate"] == "upstream_failed" and states["size_1024.create"] == "upstream_failed"
    assert _left(sm) == ([PIPELINE], ["shapes-detector-prod"])

    # A serverless model tested by name, with a budget its tests exceed: the estimate fails, nothing is created.
    _model(sm, "shapes-detector-m2")
    run = _dag().test(run_conf={"memory_sizes_mb": [1024, 6144], "model_name": "shapes-detector-m2",
                                "endpoint_name": "no-such-endpoint", "budget_usd": 0.01,
                                "payload_prefix": "s3://bucket/images/"})
    states = _states(run)
    assert run.state == "failed" and states["check"] == "success" and states["estimate"] == "failed", states
    assert states["size_1024.create"] == "upstream_failed" and states["teardown"] == "upstream_failed"
    assert states["recommend"] == "skipped"
    assert _left(sm) == ([PIPELINE], ["shapes-detector-prod"])


def test_the_emulator_serves_and_deletes_serverless_endpoints_of_several_sizes_as_aws_allows(emu):
    """The AWS rules right_size relies on: the memory sizes, the name limit, DeleteEndpoint of a Creating endpoint."""
    sm = emu["sagemaker"]
    _model(sm, "m")
    for memory in (1500, 7168):
        with pytest.raises(ClientError, match="MemorySizeInMB|memorySizeInMB") as refused:
            sm.create_endpoint_config(EndpointConfigName=f"c{memory}", ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": "m",
                "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 2}}])
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    names = [rs.candidate_name(PIPELINE, "run-1", memory) for memory in (1024, 3072, 6144)]
    for memory, name in zip((1024, 3072, 6144), names, strict=True):
        sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "m",
            "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 2}}])
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    with pytest.raises(ClientError, match="length less than or equal to 63"):
        sm.create_endpoint(EndpointName="e" * 64, EndpointConfigName=names[0])
    with pytest.raises(ClientError, match=r"Cannot delete in-progress endpoint .*status Creating") as creating:
        sm.delete_endpoint(EndpointName=names[0])
    assert creating.value.response["Error"]["Code"] == "ValidationException"
    for memory, name in zip((1024, 3072, 6144), names, strict=True):
        _wait(sm, name)
        variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
        assert variant["CurrentServerlessConfig"]["MemorySizeInMB"] == memory
        sm.delete_endpoint(EndpointName=name)
        sm.delete_endpoint_config(EndpointConfigName=name)
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.delete_endpoint(EndpointName=names[0])
    assert _left(sm) == ([], [])


def test_the_teardown_waits_out_a_creating_endpoint_and_keeps_what_is_not_this_runs(emu, emulator_env):
    sm = emu["sagemaker"]
    _model(sm, "m")
    emulator_env.set_transition_seconds(1.0)
    mine, theirs = rs.candidate_name(PIPELINE, "run-1", 2048), rs.candidate_name(PIPELINE, "run-2", 2048)
    for name, run_id in ((mine, "run-1"), (theirs, "run-2")):
        (candidate,) = rs.plan_candidates(PIPELINE, run_id, [2048], production_endpoint=PIPELINE, reports="s3://b/")
        tags = rs.candidate_tags(PIPELINE, run_id, 2048)
        sm.create_endpoint_config(**rs.endpoint_config_request(candidate, model_name="m", max_concurrency=2, tags=tags))
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)
    assert sm.describe_endpoint(EndpointName=mine)["EndpointStatus"] == "Creating"
    waited: list[float] = []
    outcome = delete_candidate(sm, mine, "run-1", poll_s=0.1, sleep=lambda s: (waited.append(s), time.sleep(s)))
    assert outcome == {"endpoint": "deleted", "endpoint_config": "deleted"} and waited
    # idempotent: a second teardown finds both gone; another run's same-size candidate is never touched
    assert delete_candidate(sm, mine, "run-1", poll_s=0.1) == {"endpoint": "already gone",
                                                               "endpoint_config": "already gone"}
    assert delete_candidate(sm, theirs, "run-1", poll_s=0.1) == {"endpoint": "not this run's: kept",
                                                                 "endpoint_config": "not this run's: kept"}
    assert _left(sm) == ([theirs], [theirs])


def test_the_emulator_refuses_tag_values_sagemaker_refuses_and_takes_the_run_tag(emu):
    """SageMaker's TagValue (botocore sagemaker service-2.json): at most 256 of [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]."""
    sm = emu["sagemaker"]
    _model(sm, "m")
    variant = [{"VariantName": "AllTraffic", "ModelName": "m",
                "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 2}}]
    for bad in ("manual~1", "v" * 257):
        with pytest.raises(ClientError, match="tags.1.member.value") as refused:
            sm.create_endpoint_config(EndpointConfigName="c-bad", ProductionVariants=variant,
                                      Tags=[{"Key": rs.RUN_TAG, "Value": bad}])
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    # the run tag of a run id SageMaker could not take as a tag value is accepted
    run_id = "manual~" + "x" * 240
    sm.create_endpoint_config(EndpointConfigName="c-ok", ProductionVariants=variant,
                              Tags=rs.candidate_tags(PIPELINE, run_id, 1024))
    arn = sm.describe_endpoint_config(EndpointConfigName="c-ok")["EndpointConfigArn"]
    tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}
    assert rs.is_this_runs(tags, run_id)


def test_a_cleared_sizes_test_gets_back_the_endpoint_the_teardown_deleted(emu):
    """What clearing size_X's test after a finished run relies on: its plan brings the endpoint up again."""
    from sagemaker_vision.pipeline.right_size import endpoint_ready_task, teardown_task

    sm = emu["sagemaker"]
    _model(sm, "m")
    candidates = rs.plan_candidates(PIPELINE, "run-1", [2048], production_endpoint=PIPELINE, reports="s3://b/")
    checked = {"pipeline_name": PIPELINE, "model_name": "m", "sizes": [2048], "load": {"concurrency": 2},
               "candidates": [c.to_dict() for c in candidates]}
    name = candidates[0].endpoint_name
    assert endpoint_ready_task(checked, 2048, "run-1", poll_s=0.05) == "recreated"  # never created: created now
    assert endpoint_ready_task(checked, 2048, "run-1", poll_s=0.05) == "in service"
    variant = sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]
    assert variant["CurrentServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 2}
    assert teardown_task(checked, "run-1")[name] == {"endpoint": "deleted", "endpoint_config": "deleted"}
    assert _left(sm) == ([], [])
    # the clear: the teardown deleted both; the test's plan creates them again, this run's, InService
    assert endpoint_ready_task(checked, 2048, "run-1", poll_s=0.05) == "recreated"
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"
    assert teardown_task(checked, "run-1")[name] == {"endpoint": "deleted", "endpoint_config": "deleted"}
