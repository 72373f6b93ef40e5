"""The A/B flow end to end through the DAGs, on the strict emulator.

champion (shapes-detector.pipeline, provisioned) -> a Challenger at 25 % (the pipeline again, with
challenger_weight) -> drop it (shapes-detector.promote_challenger, action=drop) -> a new Challenger -> promote
it (action=promote). Every variant-set change is an UpdateEndpoint without a DeploymentConfig: the
emulator refuses one when the variant names change, as AWS does (Deployment guardrails, Exclusions),
and refuses an update that removes an autoscaled variant (Update endpoints that use auto scaling).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local_aws import Control

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "ab-flow"
RUN = {"pipeline_name": NAME, "endpoint_type": "provisioned", "inference_instance_type": "ml.m5.large",
       "load_test_requests": 10, "load_test_concurrency": 2, "autoscaling_max_capacity": 2}


@pytest.fixture
def control(aws_clients: dict[str, Any], emulator_env: Any) -> Iterator[Control]:
    ctl = Control(emulator_env.endpoint_url)
    ctl.clear_faults()
    ctl.set_training_map(0.7, name_prefix=f"{NAME}-")  # every model passes the gate against the last
    yield ctl
    ctl.clear_training_map()


def dag(file: str, dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / file))
    assert not bag.import_errors, bag.import_errors
    built = bag.get_dag(dag_id)
    for task in built.tasks:
        task.retries = 0
    return built


def run_pipeline(at: datetime, **conf: Any) -> None:
    run = dag("pipelines.py", "shapes-detector.pipeline").test(run_after=at, run_conf={**RUN, **conf})
    assert run.state == "success", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def end_test(action: str) -> dict[str, Any]:
    run = dag("pipelines.py", "shapes-detector.promote_challenger").test(
        run_conf={"endpoint_name": NAME, "action": action})
    assert run.state == "success", {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return run


def variants(sm: Any) -> dict[str, tuple[str, float]]:
    """{variant: (model, current weight)} of what the endpoint serves now."""
    endpoint = sm.describe_endpoint(EndpointName=NAME)
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    return {v["VariantName"]: (models[v["VariantName"]], v["CurrentWeight"]) for v in endpoint["ProductionVariants"]}


def autoscaled(aas: Any) -> set[str]:
    targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    return {t["ResourceId"] for t in targets if t["ResourceId"].startswith(f"endpoint/{NAME}/")}


def test_champion_challenger_drop_then_promote_through_the_dags(airflow_db, aws_clients, control, emulator_env):
    import boto3

    sm = aws_clients["sagemaker"]
    aas = boto3.client("application-autoscaling", endpoint_url=emulator_env.endpoint_url, region_name="us-east-1")
    start = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    job = lambda at: f"{NAME}-{at:%Y%m%d-%H%M%S}"  # noqa: E731 - the pipeline's job/model name

    # 1. The champion: a first deploy, one AllTraffic variant, autoscaled.
    run_pipeline(start)
    assert variants(sm) == {"AllTraffic": (job(start), 1.0)}
    assert autoscaled(aas) == {f"endpoint/{NAME}/variant/AllTraffic"}

    # 2. A Challenger at 25 %: the variant names change, so no DeploymentConfig goes with the update,
    # and AllTraffic's autoscaling is released first (AWS fails the update otherwise).
    second = start + timedelta(days=7)
    run_pipeline(second, challenger_weight=0.25)
    assert variants(sm) == {"Champion": (job(start), 0.75), "Challenger": (job(second), 0.25)}
    assert sm.describe_endpoint(EndpointName=NAME).get("LastDeploymentConfig") is None
    assert autoscaled(aas) == {f"endpoint/{NAME}/variant/Champion", f"endpoint/{NAME}/variant/Challenger"}

    # 3. Drop it: the champion serves alone again, autoscaled as before.
    end_test("drop")
    assert variants(sm) == {"AllTraffic": (job(start), 1.0)}
    assert autoscaled(aas) == {f"endpoint/{NAME}/variant/AllTraffic"}

    # 4. Another Challenger, then promote it: all traffic to it, then it serves alone.
    third = start + timedelta(days=14)
    run_pipeline(third, challenger_weight=0.25)
    assert variants(sm) == {"Champion": (job(start), 0.75), "Challenger": (job(third), 0.25)}
    end_test("promote")
    assert variants(sm) == {"AllTraffic": (job(third), 1.0)}
    assert autoscaled(aas) == {f"endpoint/{NAME}/variant/AllTraffic"}

    # A rerun of the promotion changes nothing.
    before = sm.describe_endpoint(EndpointName=NAME)["LastModifiedTime"]
    end_test("promote")
    assert sm.describe_endpoint(EndpointName=NAME)["LastModifiedTime"] == before
