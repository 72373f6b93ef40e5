"""Every DAG imports cleanly, without network, and follows the house rules."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
PIPELINES = ("shapes-detector", "shapes-realtime")  # include/pipelines/*.yaml
KINDS = ("pipeline", "retrain", "load_test", "teardown", "promote_challenger", "right_size")
EXPECTED_DAGS = {f"{name}.{kind}" for name in PIPELINES for kind in KINDS}


@pytest.fixture(scope="module")
def dag_bag(tmp_path_factory):
    """Parse dags/ with sockets disabled: parsing must never touch the network."""
    from airflow.dag_processing.dagbag import DagBag

    real_connect = socket.socket.connect

    def no_network(self, address):  # pragma: no cover - only runs when a DAG misbehaves
        raise AssertionError(f"DAG parsing tried to connect to {address}")

    socket.socket.connect = no_network
    try:
        return DagBag(dag_folder=str(DAGS_DIR))
    finally:
        socket.socket.connect = real_connect


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}, dag_bag.import_errors


def test_expected_dags_present(dag_bag):
    assert EXPECTED_DAGS <= set(dag_bag.dag_ids)


def test_every_dag_has_tags_docs_and_retries(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 50, f"{dag_id} has no doc_md"
        for t in dag.tasks:
            # (train_and_deploy.acquire_endpoint_lease in the pipeline DAGs' task group)
            # acquire_endpoint_lease waits deferred (a retry waits 2 x TTL again); a retried load_test_worker would
            # start after its peers and could never rejoin their steps (pipeline/load_test.py).
            if t.task_id.rsplit(".", 1)[-1] in ("acquire_endpoint_lease", "load_test_worker"):
                assert t.retries == 0, f"{dag_id}.{t.task_id} has retries={t.retries}"
                continue
            assert t.retries >= 2, f"{dag_id}.{t.task_id} has retries={t.retries}"


def test_every_param_has_a_description(dag_bag):
    for dag_id, dag in dag_bag.dags.items():
        for name, param in dag.params.items():
            param = dag.params.get_param(name)
            assert param.description, f"{dag_id} param {name!r} has no description"


def test_params_defaults_validate_against_their_schema(dag_bag):
    """The trigger form must be submittable as it stands."""
    for dag in dag_bag.dags.values():
        dag.params.validate()


# What the UI shows as one unit: every task of the train -> deploy -> test stage, in one task group.
STAGE_TASKS = {
    "needs_training", "training_request", "train", "acquire_endpoint_lease", "quality_gate", "deploy_requests",
    "create_model", "create_endpoint_config", "deploy", "autoscaling", "choose_smoke_test", "smoke_test",
    "smoke_image", "smoke_test_async", "load_test_plan", "load_test_worker", "load_test", "rollback", "tests_passed",
    "release_endpoint_lease",
}


@pytest.mark.parametrize("dag_id", [f"{name}.{kind}" for name in PIPELINES for kind in ("pipeline", "retrain")])
def test_the_train_and_deploy_stage_is_one_task_group(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    group = dag.task_group_dict["train_and_deploy"]
    children = {task_id.removeprefix("train_and_deploy.") for task_id in group.children}
    assert children == STAGE_TASKS, children ^ STAGE_TASKS
    outside = {t.task_id for t in dag.tasks if not t.task_id.startswith("train_and_deploy.")}
    assert not outside & STAGE_TASKS, outside & STAGE_TASKS
    # The group starts after the manifests: nothing of it runs before prepare_manifests.
    assert "prepare_manifests" in dag.get_task("train_and_deploy.needs_training").upstream_task_ids


@pytest.mark.parametrize("dag_id", [f"{name}.{kind}" for name in PIPELINES for kind in ("pipeline", "retrain")])
def test_the_form_shows_only_the_per_run_params_and_hides_the_file(dag_bag, dag_id):
    from sagemaker_vision.core.params import PER_RUN_PARAMS
    from sagemaker_vision.core.pipeline_file import SETTINGS_MACRO, load_pipeline_file, pipelines_dir
    from sagemaker_vision.hooks.config import file_settings, run_params

    dag = dag_bag.dags[dag_id]
    definition = load_pipeline_file(pipelines_dir() / f"{dag_id.split('.')[0]}.yaml")
    assert list(dag.params) == list(PER_RUN_PARAMS)
    assert {name: dag.params[name] for name in PER_RUN_PARAMS} == definition.run_settings
    # The file's other settings come with the DAG, not as params: no form field, no const to go stale.
    assert dag.user_defined_macros[SETTINGS_MACRO] == definition.fixed_settings == file_settings({"dag": dag})
    form = {name: dag.params[name] for name in dag.params}
    assert run_params({"dag": dag, "params": {**form, "epochs": 3}}) == {**definition.settings, "epochs": 3}


def test_each_pipeline_has_its_own_labels_asset_and_schedule(dag_bag):
    uris = {}
    for name in PIPELINES:
        publish = dag_bag.dags[f"{name}.pipeline"].get_task("label.publish")
        (asset,) = publish.outlets
        assert asset.name == f"{name}.labels"
        uris[name] = asset.uri
        retrain = dag_bag.dags[f"{name}.retrain"]
        assert asset.name in str(retrain.timetable.asset_condition)
    assert len(set(uris.values())) == len(PIPELINES), uris
    assert dag_bag.dags["shapes-detector.pipeline"].timetable.summary != dag_bag.dags[
        "shapes-realtime.pipeline"].timetable.summary
