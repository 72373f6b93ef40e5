"""Every DAG that writes to an endpoint does it inside the endpoint's lease, and says so in its docs.

Issue 9 review: the lease must cover every writer (the promote and teardown DAGs too), the acquire
task must not retry (it already waits deferred up to twice the TTL), and the doc_md flow lines
must name the real tasks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
# The tasks of each DAG that call a SageMaker write API on the endpoint (UpdateEndpoint,
# UpdateEndpointWeightsAndCapacities, CreateEndpoint, DeleteEndpoint, autoscaling of its variants).
# The pipeline DAGs' writers are in the train_and_deploy task group, their lease tasks too.
STAGE = "train_and_deploy."
WRITERS = {
    "shapes-detector.pipeline": {STAGE + "deploy", STAGE + "autoscaling", STAGE + "rollback"},
    "shapes-detector.retrain": {STAGE + "deploy", STAGE + "autoscaling", STAGE + "rollback"},
    "shapes-detector.promote_challenger": {"end_test"},
    "shapes-detector.teardown": {"execute"},
}
LEASE_GROUP = {"shapes-detector.pipeline": STAGE, "shapes-detector.retrain": STAGE}


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


@pytest.mark.parametrize("dag_id", sorted(WRITERS))
def test_every_endpoint_writer_runs_between_acquire_and_release(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    group = LEASE_GROUP.get(dag_id, "")
    acquire = dag.get_task(group + "acquire_endpoint_lease")
    release = dag.get_task(group + "release_endpoint_lease")
    assert acquire.retries == 0
    assert release.is_teardown and acquire.task_id in release.upstream_task_ids
    assert acquire.is_setup
    inside = acquire.get_flat_relative_ids(upstream=False)
    for task_id in WRITERS[dag_id]:
        assert task_id in inside, f"{dag_id}.{task_id} runs outside the endpoint lease"
        assert release.task_id in dag.get_task(task_id).get_flat_relative_ids(upstream=False), task_id


@pytest.mark.parametrize("dag_id", ["shapes-detector.promote_challenger", "shapes-detector.teardown"])
def test_the_manual_writers_take_the_lease_in_their_pipelines_bucket(dag_bag, dag_id):
    """From the pipeline file, as the pipeline's runs take it: the same lease object, no form field."""
    from sagemaker_vision.hooks.config import file_settings
    from sagemaker_vision.pipeline.deploy import lease_target

    pipeline_settings = file_settings({"dag": dag_bag.dags["shapes-detector.pipeline"]})
    dag = dag_bag.dags[dag_id]
    assert file_settings({"dag": dag}) == {"bucket": pipeline_settings["bucket"]} and "bucket" not in dag.params
    target = lease_target({"dag": dag, "params": {"endpoint_name": "shapes-detector"}}, aws_conn_id=None)
    assert target.bucket == pipeline_settings["bucket"]


def _flow_tasks(doc: str) -> list[str]:
    """The task ids of a doc_md's flow line(s): the backticked names of the paragraph with arrows."""
    paragraph = next(p for p in doc.split("\n\n") if "→" in p)
    return re.findall(r"`([a-z_]+)`", paragraph)


@pytest.mark.parametrize("dag_id", ["shapes-detector.pipeline", "shapes-detector.retrain"])
def test_the_flow_line_names_real_tasks_including_the_lease_and_rollback(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    named = _flow_tasks(dag.doc_md)
    task_ids = {part for t in dag.tasks for part in (t.task_id.rsplit(".", 1)[-1], t.task_id.split(".")[0])}
    assert not [n for n in named if n not in task_ids], f"{dag_id} doc names tasks it does not have"
    for needed in ("acquire_endpoint_lease", "quality_gate", "deploy", "autoscaling", "choose_smoke_test",
                   "smoke_test", "load_test", "rollback", "release_endpoint_lease"):
        assert needed in named, f"{dag_id}'s flow line leaves out {needed}"


@pytest.mark.parametrize("dag_id", ["shapes-detector.pipeline", "shapes-detector.retrain"])
def test_every_task_of_the_stage_finds_its_groups_deploy_task(dag_bag, dag_id):
    """The lease's TTL comes from the deploy's own settings and the tests check what the deploy put on the
    endpoint: each task of the task group finds ``train_and_deploy.deploy`` from its own id."""
    from types import SimpleNamespace

    from sagemaker_vision.core.task_ids import sibling_task_id
    from sagemaker_vision.operators.endpoint_lease import deploy_task

    dag = dag_bag.dags[dag_id]
    deploy = dag.get_task(STAGE + "deploy")
    for task in dag.tasks:
        if task.task_id.startswith(STAGE):
            assert deploy_task({"dag": dag, "ti": SimpleNamespace(task_id=task.task_id)}) is deploy, task.task_id
            assert sibling_task_id(task.task_id, "smoke_test_async") in dag.task_dict, task.task_id
    assert dag.get_task(STAGE + "rollback").deploy_task_id == deploy.task_id
