"""Teardown, provisioned autoscaling and A/B promotion against the embedded emulator (local_aws).

A pipeline's leftovers are built with the package's builders (A/B config, autoscaling) and tags,
then torn down through the same task functions the DAG calls, reading ``aws_default`` (pointed at
the emulator by ``emulator_env``), and once through ``dag.test()``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from local_aws import Emulator
from sagemaker_vision.core.ab_test import ab_endpoint_config_request, is_promoted
from sagemaker_vision.core.naming import CHALLENGER, PACKAGE_TAG, PACKAGE_TAG_VALUE
from sagemaker_vision.core.teardown import plan_teardown
from sagemaker_vision.hooks.ab_test import promote_challenger
from sagemaker_vision.hooks.scaling import apply_autoscaling
from sagemaker_vision.hooks.teardown import execute_plan, gather_inventory
from sagemaker_vision.pipeline.teardown import execute_task, plan_task

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "shapes-td"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
TAGS = [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "pipeline", "Value": PIPELINE}]
TRANSITION = 0.2
# The built-in price table: ml.m5.large $0.115/h x 24 h x 30 days = $82.80 per instance.
M5_LARGE_MONTH = 82.80


def client(emu: Emulator, service: str) -> Any:
    return boto3.client(service, endpoint_url=emu.endpoint_url, region_name="us-east-1")


@pytest.fixture
def emu(emulator_env: Emulator) -> Iterator[Emulator]:
    emulator_env.reset()
    emulator_env.set_transition_seconds(TRANSITION)
    yield emulator_env
    emulator_env.reset()


def wait_in_service(sm: Any, name: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while sm.describe_endpoint(EndpointName=name)["EndpointStatus"] != "InService":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def make_model(sm: Any, name: str, tags: list[dict[str, str]] | None = TAGS) -> None:
    sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, Tags=tags or [], PrimaryContainer={
        "Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
        "ModelDataUrl": f"s3://bucket/{name}/model.tar.gz"})
    time.sleep(0.01)  # distinct CreationTimes: keep_models ranks by them


def make_config(sm: Any, name: str, model: str, tags: list[dict[str, str]] | None = TAGS) -> None:
    sm.create_endpoint_config(EndpointConfigName=name, Tags=tags or [], ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
        "InitialVariantWeight": 1.0}])


def build_pipeline(emu: Emulator) -> None:
    """Four runs' models and configs; the endpoint runs an A/B of the last two, with autoscaling and alarms;
    a staging endpoint still runs run 1; plus things that are not ours."""
    sm, cw = client(emu, "sagemaker"), client(emu, "cloudwatch")
    for n in range(1, 5):
        make_model(sm, f"{PIPELINE}-{n}")
        make_config(sm, f"{PIPELINE}-{n}", f"{PIPELINE}-{n}")
    sm.create_endpoint_config(**ab_endpoint_config_request(
        endpoint_config_name=f"{PIPELINE}-ab", champion_model=f"{PIPELINE}-3", challenger_model=f"{PIPELINE}-4",
        instance_type="ml.m5.large", instance_count=1, challenger_weight=0.2, tags=TAGS))
    sm.create_endpoint(EndpointName=PIPELINE, EndpointConfigName=f"{PIPELINE}-ab", Tags=TAGS)
    sm.create_endpoint(EndpointName=f"{PIPELINE}-staging", EndpointConfigName=f"{PIPELINE}-1", Tags=TAGS)
    make_model(sm, f"{PIPELINE}-handmade", tags=None)  # same name prefix, no tags: never touched
    wait_in_service(sm, PIPELINE)
    wait_in_service(sm, f"{PIPELINE}-staging")
    apply_autoscaling(client(emu, "application-autoscaling"), sm, PIPELINE, CHALLENGER,
                      min_capacity=1, max_capacity=3, target_invocations_per_instance=50)
    for alarm in (f"{PIPELINE}-5xx", f"{PIPELINE}-latency", f"{PIPELINE}-unrelated"):
        cw.put_metric_alarm(AlarmName=alarm, MetricName="Invocation5XXErrors", Namespace="AWS/SageMaker",
                            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                            ComparisonOperator="GreaterThanOrEqualToThreshold",
                            Dimensions=[{"Name": "EndpointName", "Value": PIPELINE}])


def names(emu: Emulator) -> dict[str, set[str]]:
    sm, cw, aas = client(emu, "sagemaker"), client(emu, "cloudwatch"), client(emu, "application-autoscaling")
    return {
        "endpoints": {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]},
        "configs": {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]},
        "models": {m["ModelName"] for m in sm.list_models()["Models"]},
        "alarms": {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]},
        "targets": {t["ResourceId"] for t in aas.describe_scalable_targets(ServiceNamespace="sagemaker")[
            "ScalableTargets"]},
        "policies": {p["PolicyName"] for p in aas.describe_scaling_policies(ServiceNamespace="sagemaker")[
            "ScalingPolicies"]},
    }


def params(**overrides: Any) -> dict[str, Any]:
    return {"endpoint_name": PIPELINE, "keep_models": 1, "delete_endpoint": True, "dry_run": False, **overrides}


AFTER_TEARDOWN = {
    "endpoints": {f"{PIPELINE}-staging"},
    "configs": {f"{PIPELINE}-1"},  # staging runs it
    "models": {f"{PIPELINE}-1", f"{PIPELINE}-4", f"{PIPELINE}-handmade"},  # in use, newest, not ours
    "alarms": {f"{PIPELINE}-unrelated"},
    "targets": set(),
    "policies": set(),
}


# -- teardown ----------------------------------------------------------------------------------------
def test_teardown_deletes_exactly_what_it_should(emu):
    build_pipeline(emu)
    before = names(emu)
    plan = plan_task(params())
    assert plan["monthly_usd_stopped"] == f"{2 * M5_LARGE_MONTH:.2f}"  # Champion + Challenger, 1 x ml.m5.large each
    assert names(emu) == before  # planning deletes nothing

    result = execute_task(plan, params())
    assert names(emu) == AFTER_TEARDOWN
    assert {(a["kind"], a["name"]) for a in result["deleted"]} == {(a["kind"], a["name"]) for a in plan["delete"]}
    assert result["deleted"][-1]["kind"] == "endpoint"
    assert result["monthly_usd_stopped"] == plan["monthly_usd_stopped"]

    # A rerun finds nothing more to do, and does not fail.
    again = plan_task(params())
    assert again["delete"] == []
    assert execute_task(again, params())["deleted"] == []
    assert names(emu) == AFTER_TEARDOWN


def test_a_rerun_after_a_partial_teardown_finishes_the_job(emu):
    build_pipeline(emu)
    plan = plan_task(params())
    sm, cw, aas = client(emu, "sagemaker"), client(emu, "cloudwatch"), client(emu, "application-autoscaling")

    class DiesOnSecondModel:
        """The worker dies after deleting one model: configs gone, endpoint still up."""

        def __init__(self) -> None:
            self.models = 0

        def __getattr__(self, name: str) -> Any:
            return getattr(sm, name)

        def delete_model(self, **kwargs: Any) -> Any:
            self.models += 1
            if self.models == 2:
                raise RuntimeError("worker lost")
            return sm.delete_model(**kwargs)

    fresh = plan_teardown(gather_inventory(sm, cw, aas, PIPELINE), keep_models=1, delete_endpoint=True)
    with pytest.raises(RuntimeError, match="worker lost"):
        execute_plan(fresh, DiesOnSecondModel(), cw, aas, approved=plan)
    assert PIPELINE in names(emu)["endpoints"]

    # The execute task's retry: same approved plan (XCom), fresh inventory; it finishes the job.
    result = execute_task(plan, params())
    assert names(emu) == AFTER_TEARDOWN
    assert result["skipped"] == []
    done_before = {(a["kind"], a["name"]) for a in result["already_gone"]}
    assert ("endpoint-config", f"{PIPELINE}-ab") in done_before and ("alarm", f"{PIPELINE}-5xx") in done_before
    assert ("endpoint", PIPELINE) in {(a["kind"], a["name"]) for a in result["deleted"]}
    assert done_before | {(a["kind"], a["name"]) for a in result["deleted"]} == {
        (a["kind"], a["name"]) for a in plan["delete"]}


def test_pruning_keeps_the_endpoint_and_what_it_uses(emu):
    build_pipeline(emu)
    result = execute_task(plan_task(params(delete_endpoint=False, keep_models=0)), params(
        delete_endpoint=False, keep_models=0))
    left = names(emu)
    assert left["endpoints"] == {PIPELINE, f"{PIPELINE}-staging"}
    # Configs of kept models stay deployable (rollback); only run 2's config and model go.
    assert left["configs"] == {f"{PIPELINE}-1", f"{PIPELINE}-3", f"{PIPELINE}-4", f"{PIPELINE}-ab"}
    assert left["models"] == {f"{PIPELINE}-1", f"{PIPELINE}-3", f"{PIPELINE}-4", f"{PIPELINE}-handmade"}
    assert {f"{PIPELINE}-5xx", f"{PIPELINE}-latency"} <= left["alarms"] and left["targets"]
    assert {(a["kind"], a["name"]) for a in result["deleted"]} == {("endpoint-config", f"{PIPELINE}-2"),
                                                                    ("model", f"{PIPELINE}-2")}
    assert result["monthly_usd_stopped"] == "0"


def test_untagged_endpoint_is_refused_and_nothing_is_deleted(emu):
    sm = client(emu, "sagemaker")
    make_model(sm, "handmade-1", tags=None)
    make_config(sm, "handmade-1", "handmade-1", tags=None)
    sm.create_endpoint(EndpointName="handmade", EndpointConfigName="handmade-1")
    wait_in_service(sm, "handmade")
    before = names(emu)
    with pytest.raises(AirflowFailException, match=r"endpoint handmade is not tagged managed-by=sagemaker-vision"):
        plan_task(params(endpoint_name="handmade"))
    assert names(emu) == before


def test_dry_run_plans_and_skips(emu):
    build_pipeline(emu)
    before = names(emu)
    plan = plan_task(params(dry_run=True))
    assert plan["dry_run"] is True and plan["delete"]
    with pytest.raises(AirflowSkipException, match="dry_run"):
        execute_task(plan, params(dry_run=True))
    assert names(emu) == before


def test_dag_test_tears_the_endpoint_down(airflow_db, emu):
    from airflow.dag_processing.dagbag import DagBag

    build_pipeline(emu)
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]  # the lock bucket (the bucket param's default)
    s3 = client(emu, "s3")
    s3.create_bucket(Bucket=bucket)
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("shapes-detector.teardown")
    run = dag.test(run_conf=params())
    assert run.state == "success", run.state
    assert names(emu) == AFTER_TEARDOWN
    # The deletion ran inside the endpoint's lease, the same object the pipeline DAGs take, given back after.
    lease = json.loads(s3.get_object(Bucket=bucket, Key=f"sagemaker-vision-locks/endpoints/us-east-1/{PIPELINE}.json"
                                     )["Body"].read())
    assert lease["owner"].startswith(f"shapes-detector.teardown/{run.run_id}/") and lease["released"] is True, lease


# -- A/B promotion and provisioned autoscaling ---------------------------------------------------------
def test_promote_challenger_shifts_all_traffic_and_is_idempotent(emu):
    sm = client(emu, "sagemaker")
    build_pipeline(emu)
    first = promote_challenger(sm, PIPELINE, waiter_delay=1, waiter_max_attempts=20)
    assert first["changed"] is True
    assert first["weights"] == {"Champion": 0.0, "Challenger": 1.0}
    assert is_promoted(sm.describe_endpoint(EndpointName=PIPELINE))
    second = promote_challenger(sm, PIPELINE, waiter_delay=1, waiter_max_attempts=20)
    assert second == {**first, "changed": False}


def test_provisioned_autoscaling_is_an_upsert(emu):
    sm, aas = client(emu, "sagemaker"), client(emu, "application-autoscaling")
    build_pipeline(emu)  # applied once, 1-3 instances
    summary = apply_autoscaling(aas, sm, PIPELINE, CHALLENGER, min_capacity=2, max_capacity=5,
                                target_invocations_per_instance=80)
    (target,) = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (summary["resource_id"], 2, 5)
    (policy,) = aas.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    config = policy["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 80.0
    assert config["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
