"""A failed load test after a deploy rolls the endpoint back to the config that served before (issue 9, item 5).

Through the retrain DAG on the strict emulator. The load test is made to breach its SLO with the
emulator's ``invoke_latency_ms`` fault (every InvokeEndpoint of the endpoint answers 400 ms late,
``slo_p95_ms`` is 150). A first deploy has nothing older: the new model stays serving and the
message says so. A later deploy is rolled back (UpdateEndpoint to the previous config, waited for
until InService) and the run fails with a message naming the config and model serving again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local_aws import Control

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "rb-detector"
PREFIX = "rollback"
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

    bag = DagBag(dag_folder=str(ROOT / "dags" / "object_detection_retrain.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("object_detection_retrain")
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


def serving(sm: Any) -> str:
    endpoint = sm.describe_endpoint(EndpointName=NAME)
    assert endpoint["EndpointStatus"] == "InService", endpoint
    return endpoint["EndpointConfigName"]


@pytest.fixture
def control(aws_clients: dict[str, Any], emulator_env: Any) -> Iterator[Control]:
    import os

    ctl = Control(emulator_env.endpoint_url)
    ctl.clear_faults()
    ctl.set_training_map(0.7, name_prefix=f"{NAME}-")  # every model passes the gate against the last
    seed_labels(aws_clients["s3"], os.environ["SAGEMAKER_VISION_BUCKET"], PREFIX, "2026-05-01")
    yield ctl
    ctl.clear_faults()
    ctl.clear_training_map()


def test_a_failed_load_test_rolls_back_to_the_config_that_served_before(airflow_db, aws_clients, control):
    sm = aws_clients["sagemaker"]
    dag = retrain_dag()
    start = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
    config = lambda at: f"{NAME}-{at:%Y%m%d-%H%M%S}"  # noqa: E731 - the run's model and config name
    slow = {"kind": "invoke_latency_ms", "name_prefix": NAME, "ms": 400}

    # 1. A first deploy whose load test breaches the SLO: nothing older exists, so the new model stays.
    control.add_fault(slow)
    first = dag.test(run_after=start, run_conf={**CONF, "epochs": 30})
    assert first.state == "failed", states(first)
    assert states(first)["load_test"] == "failed" and states(first)["rollback"] == "failed", states(first)
    assert serving(sm) == config(start)
    message = outcome(first, "rollback")
    assert "load_test failed" in message and "no older config" in message and "NEW model stays serving" in message
    assert f"on config {config(start)} (model {config(start)}, validation-map 0.7)" in message, message

    # 2. A good deploy on top of it.
    control.clear_faults()
    second_at = start + timedelta(days=1)
    second = dag.test(run_after=second_at, run_conf={**CONF, "epochs": 31})
    assert second.state == "success", states(second)
    assert states(second)["rollback"] == "skipped"
    assert serving(sm) == config(second_at)

    # 3. A deploy whose load test fails: rolled back to the second run's config, and the run fails saying so.
    control.add_fault(slow)
    third_at = start + timedelta(days=2)
    third = dag.test(run_after=third_at, run_conf={**CONF, "epochs": 32})
    assert third.state == "failed", states(third)
    assert states(third)["deploy"] == "success" and states(third)["load_test"] == "failed"
    assert serving(sm) == config(second_at)
    message = outcome(third, "rollback")
    assert "load_test failed: rolled back" in message, message
    assert f"InService on config {config(second_at)} (model {config(second_at)}" in message, message
    assert f"the new config {config(third_at)} no longer serves" in message, message
    # The lease was given back each time, failed runs included.
    assert states(third)["release_endpoint_lease"] == "success"
