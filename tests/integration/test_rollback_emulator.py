"""A failed load test after a deploy rolls the endpoint back to the config that served before (issue 9, item 5).

Through the retrain DAG on the strict emulator, over an endpoint that serves a baseline model. The
load test is made to breach its SLO with the emulator's ``invoke_latency_ms`` fault (every
InvokeEndpoint of the endpoint answers 400 ms late, ``slo_p95_ms`` is 150). The deploy is rolled
back (UpdateEndpoint to the previous config, waited for until InService) and the run fails with a
message naming the config and model serving again. A first deploy has nothing older: the new model
stays serving and the message says so.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local_aws import Control

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "rb-detector"
PREFIX = "rollback"
STAGE = "train_and_deploy."  # the task group of the deploy and its tests
CONF = {"pipeline_name": NAME, "prefix": PREFIX, "load_test_requests": 6, "load_test_concurrency": 2,
        "slo_p95_ms": 150}


def seed_labels(s3: Any, bucket: str, prefix: str, day: str) -> None:
    """The sample images and their manifest as one published labeled partition (what the pipeline's
    ``label`` step leaves), so the retrain DAG has data without a sync or a labeling job."""
    lines = []
    for raw in (ROOT / "include/sample_data/output.manifest").read_text().splitlines():
        record = json.loads(raw)
        name = record["source-ref"].rsplit("/", 1)[-1]
        key = f"{prefix}/raw/dt={day}/{name}"
        s3.put_object(Bucket=bucket, Key=key, Body=(ROOT / "include/sample_data/images" / name).read_bytes(),
                      ContentType="image/jpeg")
        record["source-ref"] = f"s3://{bucket}/{key}"
        lines.append(json.dumps(record))
    s3.put_object(Bucket=bucket, Key=f"{prefix}/labels/dt={day}/output.manifest",
                  Body=("\n".join(lines) + "\n").encode())


def retrain_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("shapes-detector.retrain")
    for task in dag.tasks:
        task.retries = 0
    return dag


def outcome(run: Any, task_id: str) -> str | None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id,
                                                 key="outcome").one_or_none()
        return None if row is None else XComModel.deserialize_value(row)


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def serving(sm: Any, name: str = NAME) -> str:
    endpoint = sm.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService", endpoint
    return endpoint["EndpointConfigName"]


@pytest.fixture
def control(aws_clients: dict[str, Any], emulator_env: Any) -> Iterator[Control]:
    ctl = Control(emulator_env.endpoint_url)
    ctl.clear_faults()
    ctl.set_training_map(0.7, name_prefix=f"{NAME}-")  # every model passes the gate against the last
    seed_labels(aws_clients["s3"], os.environ["SAGEMAKER_VISION_BUCKET"], PREFIX, "2026-05-01")
    yield ctl
    ctl.clear_faults()
    ctl.clear_training_map()


def seed_endpoint(sm: Any, s3: Any, bucket: str, prefix: str, endpoint: str, validation_map: float) -> str:
    """An endpoint InService on a baseline model tagged ``validation-map``, as an earlier deploy leaves it."""
    from sagemaker_vision.core.algorithms import object_detection_image_uri

    name = f"{endpoint}-baseline"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/baseline/{name}/model.tar.gz", Body=b"baseline model")
    sm.create_model(ModelName=name, ExecutionRoleArn=os.environ["SAGEMAKER_VISION_ROLE_ARN"],
                    PrimaryContainer={"Image": object_detection_image_uri("us-east-1"),
                                      "ModelDataUrl": f"s3://{bucket}/{prefix}/baseline/{name}/model.tar.gz"},
                    Tags=[{"Key": "validation-map", "Value": str(validation_map)},
                          {"Key": "managed-by", "Value": "sagemaker-vision"}])
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": name,
        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10}}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=name,
                       Tags=[{"Key": "managed-by", "Value": "sagemaker-vision"},
                             {"Key": "load-test-allowed", "Value": "true"}])
    for _ in range(300):
        if sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService":
            return name
        time.sleep(0.1)
    raise AssertionError(f"{endpoint} never came InService")


def test_a_failed_load_test_rolls_back_to_the_config_that_served_before(airflow_db, aws_clients, control):
    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    baseline = seed_endpoint(sm, s3, os.environ["SAGEMAKER_VISION_BUCKET"], PREFIX, NAME, 0.6)
    at = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
    new = f"{NAME}-{at:%Y%m%d-%H%M%S}"  # the run's model and config

    control.add_fault(kind="invoke_latency_ms", name_prefix=NAME, ms=400)  # p95 > slo_p95_ms 150
    run = retrain_dag().test(run_after=at, run_conf=CONF)

    assert run.state == "failed", states(run)
    assert states(run)[STAGE + "deploy"] == "success" and states(run)[STAGE + "load_test"] == "failed", states(run)
    assert serving(sm) == baseline
    assert sm.describe_endpoint(EndpointName=NAME)["EndpointStatus"] == "InService"
    message = outcome(run, STAGE + "rollback")
    assert f"{STAGE}load_test failed: rolled back" in message, message
    assert f"InService on config {baseline} (model {baseline}, validation-map 0.6)" in message, message
    assert f"the new config {new} no longer serves" in message, message
    assert states(run)[STAGE + "release_endpoint_lease"] == "success"  # the lease is given back, failed run or not
    assert states(run)[STAGE + "tests_passed"] == "upstream_failed"


class _TI:
    """What the rollback operator reads of its task instance: the deploy's result, and where it reports."""

    def __init__(self, deployed: dict[str, Any] | None) -> None:
        self.deployed, self.pushed = deployed, {}
        self.dag_id, self.run_id, self.task_id = "shapes-detector.retrain", "manual__x", "rollback"

    def xcom_pull(self, task_ids: str) -> Any:
        return self.deployed

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_a_first_deploy_cannot_roll_back_and_says_the_new_model_stays_serving(aws_clients, control):
    from airflow.providers.common.compat.sdk import AirflowFailException

    from sagemaker_vision.operators.rollback import RollbackEndpointOperator

    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    endpoint = f"{NAME}-first"
    created = seed_endpoint(sm, s3, os.environ["SAGEMAKER_VISION_BUCKET"], PREFIX, endpoint, 0.7)
    operator = RollbackEndpointOperator(task_id="rollback", endpoint_name=endpoint, check_interval=1)
    ti = _TI({"endpoint_name": endpoint, "endpoint_config_name": created, "previous_config": None,
              "action": "created"})
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": ti})
    message = str(raised.value)
    assert "no older config to roll back to, so the NEW model stays serving" in message, message
    assert f"on config {created} (model {created}, validation-map 0.7)" in message, message
    assert "shapes-detector.teardown" in message and ti.pushed["outcome"] == message
    assert serving(sm, endpoint) == created  # left serving, not deleted


def test_a_failed_deploy_skips_the_rollback_and_the_run_still_fails(airflow_db, aws_clients, control):
    """``one_failed`` also fires on the upstream_failed of a failure inside the lease before anything of
    this run serves (here the deploy: SageMaker rolled the update back). The rollback skips (this run
    deployed nothing) instead of failing, and the skipped leaf does not turn the run green:
    ``tests_passed`` is upstream_failed."""
    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    endpoint = f"{NAME}-faildeploy"
    baseline = seed_endpoint(sm, s3, os.environ["SAGEMAKER_VISION_BUCKET"], PREFIX, endpoint, 0.6)
    control.add_fault(kind="update_endpoint_failure", name_prefix=endpoint, reason="boom", count=1)
    at = datetime(2026, 5, 11, 6, 0, tzinfo=UTC)
    run = retrain_dag().test(run_after=at, run_conf={**CONF, "endpoint_name": endpoint})

    got = states(run)
    assert run.state == "failed", got
    assert got[STAGE + "deploy"] == "failed" and got[STAGE + "rollback"] == "skipped", got
    assert got[STAGE + "tests_passed"] == "upstream_failed" and got[STAGE + "release_endpoint_lease"] == "success", got
    assert outcome(run, STAGE + "rollback") is None
    assert serving(sm, endpoint) == baseline


def test_a_failure_before_the_lease_fails_the_run_without_a_rollback(airflow_db, aws_clients, control):
    """estimate_costs over ``budget_usd``: the lease is never taken, the rollback never runs (its setup did
    not succeed), and the run fails."""
    at = datetime(2026, 5, 12, 6, 0, tzinfo=UTC)
    run = retrain_dag().test(run_after=at, run_conf={**CONF, "budget_usd": 0})

    got = states(run)
    assert run.state == "failed", got
    assert got["estimate_costs"] == "failed" and got[STAGE + "rollback"] in ("upstream_failed", "skipped"), got
    assert got[STAGE + "tests_passed"] == "upstream_failed", got


def test_a_rollback_with_nothing_deployed_by_this_run_skips(aws_clients, control):
    from airflow.providers.common.compat.sdk import AirflowSkipException

    from sagemaker_vision.operators.rollback import RollbackEndpointOperator

    operator = RollbackEndpointOperator(task_id="rollback", endpoint_name=f"{NAME}-none", check_interval=1)
    with pytest.raises(AirflowSkipException, match="this run deployed nothing"):
        operator.execute({"ti": _TI(None)})


def test_a_test_after_a_rollback_refuses_to_measure_the_old_config(airflow_db, aws_clients, control, monkeypatch):
    """Clearing a failed ``load_test`` after a rollback clears rollback, release and acquire but not
    ``deploy``: the cleared tests would measure the config the rollback restored and turn the run
    green. Each test's pre_execute checks the endpoint serves this run's deployed config."""
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import AirflowFailException

    from sagemaker_vision.core.params import param_defaults
    from sagemaker_vision.pipeline import deploy as pipeline_deploy

    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    endpoint = f"{NAME}-cleared"
    baseline = seed_endpoint(sm, s3, os.environ["SAGEMAKER_VISION_BUCKET"], PREFIX, endpoint, 0.6)
    ours = f"{NAME}-20260518-060000"  # what this run's deploy put there before the rollback
    renewed = []
    monkeypatch.setattr(pipeline_deploy, "hold", lambda context, stage: renewed.append(stage))
    at = datetime(2026, 5, 18, 6, 0, tzinfo=UTC)
    context = {
        "params": {**param_defaults(), **CONF, "endpoint_name": endpoint},
        "dag_run": SimpleNamespace(dag_id="shapes-detector.retrain", run_id="manual__x", run_after=at,
                                   data_interval_start=at, data_interval_end=at, run_type="manual"),
        "ti": _TI({"endpoint_name": endpoint, "endpoint_config_name": ours, "previous_config": baseline,
                   "action": "updated"}),
    }
    dag = retrain_dag()
    for task_id in ("smoke_test", "smoke_test_async", "load_test"):
        context["ti"].task_id = STAGE + task_id  # the test names its sibling deploy task from its own id
        with pytest.raises(AirflowFailException) as refused:
            dag.get_task(STAGE + task_id)._pre_execute_hook(context)
        assert (f"the endpoint serves {baseline}, not this run's {ours} (rolled back?); clear `{STAGE}deploy` to "
                "deploy again") in str(refused.value), str(refused.value)
    assert renewed == ["smoke_test", "smoke_test_async", "load_test"]  # the lease is renewed first
    # Serving this run's config: the tests go ahead.
    context["ti"] = _TI({"endpoint_name": endpoint, "endpoint_config_name": baseline, "action": "created"})
    context["ti"].task_id = STAGE + "load_test"
    dag.get_task(STAGE + "load_test")._pre_execute_hook(context)
