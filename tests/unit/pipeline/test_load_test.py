"""fanned_out_load_test: plan -> mapped workers (dynamic task mapping) -> reduce, each with its pre_execute hook."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, TaskGroup

from sagemaker_vision.pipeline.load_test import fanned_out_load_test

KW = {"endpoint_name": "ep", "payload_prefix": "s3://b/images/", "report_s3_prefix": "s3://b/lt/",
      "concurrency_steps": [4], "aws_conn_id": None}


def _build(**extra):
    stages = []

    def pre_execute(stage):
        stages.append(stage)
        return lambda context: None

    with DAG("lt", start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), schedule=None) as dag, TaskGroup("g"):
        first, last = fanned_out_load_test(load_workers="{{ params.n }}", pre_execute=pre_execute, **KW, **extra)
    return dag, first, last, stages


def test_three_tasks_the_workers_mapped_over_the_plans_result():
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    dag, first, last, stages = _build()
    assert (first.task_id, last.task_id) == ("g.load_test_plan", "g.load_test")
    worker = dag.get_task("g.load_test_worker")
    assert isinstance(worker, MappedOperator)
    assert worker.upstream_task_ids == {"g.load_test_plan"} and worker.downstream_task_ids == {"g.load_test"}
    # Mapped over the plan's return value (one kwargs dict per worker), never a custom XCom key.
    assert worker._get_specified_expand_input().value.operator is first
    assert worker.partial_kwargs["retries"] == 0  # a retried worker cannot rejoin its peers' steps
    assert worker.partial_kwargs["pre_execute"] is not None
    assert stages == ["load_test_plan", "load_test_worker", "load_test"]  # stage names, as hold_hook takes them
    assert last.upstream_task_ids == {"g.load_test_worker", "g.load_test_plan"}


def test_the_dag_serializes_as_the_scheduler_stores_it():
    from airflow.serialization.serialized_objects import DagSerialization

    dag, *_ = _build()
    restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert {"g.load_test_plan", "g.load_test_worker", "g.load_test"} <= set(restored.task_ids)
