"""Sibling task ids inside a task group (core/task_ids.py)."""

from __future__ import annotations

import pytest

from sagemaker_vision.core.task_ids import group_of, sibling_task_id


@pytest.mark.parametrize(
    ("task_id", "name", "expected"),
    [
        ("train_and_deploy.smoke_test", "deploy", "train_and_deploy.deploy"),
        ("train_and_deploy.choose_smoke_test", "smoke_test_async", "train_and_deploy.smoke_test_async"),
        ("outer.inner.load_test", "deploy", "outer.inner.deploy"),  # nested groups: the innermost
        ("load_test", "deploy", "deploy"),  # no group
        (None, "deploy", "deploy"),  # no task instance
        (object(), "deploy", "deploy"),  # a stand-in task instance's attribute
    ],
)
def test_a_sibling_is_named_in_the_tasks_own_group(task_id, name, expected):
    assert sibling_task_id(task_id, name) == expected


def test_group_of():
    assert group_of("train_and_deploy.deploy") == "train_and_deploy"
    assert group_of("label.publish") == "label"
    assert group_of("estimate_costs") is None


def test_a_dag_names_its_pipelines_other_dags():
    from sagemaker_vision.core.task_ids import pipeline_dag_id, sibling_dag_id

    assert pipeline_dag_id("shapes-detector", "teardown") == "shapes-detector.teardown"
    assert sibling_dag_id("shapes-detector.retrain", "teardown") == "shapes-detector.teardown"
    assert sibling_dag_id("my.dots.pipeline", "teardown") == "my.dots.teardown"
    assert sibling_dag_id("handwritten_dag", "teardown") == "<pipeline>.teardown"
