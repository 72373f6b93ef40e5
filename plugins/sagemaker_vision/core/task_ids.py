"""Task ids inside task groups: a task names a sibling by its id in the same group. Pure.

A task group prefixes its tasks' ids (``train_and_deploy.deploy``), so code that names another task
of its stage (the branch choosing a smoke test, the tests checking what the deploy put on the
endpoint, the lease reading the deploy's settings) derives the sibling's id from its own.
"""

from __future__ import annotations


def group_of(task_id: str) -> str | None:
    """The id of the task group ``task_id`` is in (``train_and_deploy.deploy`` -> ``train_and_deploy``)."""
    group, dot, _ = task_id.rpartition(".")
    return group if dot else None


def sibling_task_id(task_id: object, name: str) -> str:
    """The id of task ``name`` in the same task group as ``task_id``.

    ``sibling_task_id("train_and_deploy.smoke_test", "deploy") == "train_and_deploy.deploy"``; a task
    outside any group, or no task id at all (a context without a task instance), gets ``name`` itself.
    """
    group = group_of(task_id) if isinstance(task_id, str) else None
    return f"{group}.{name}" if group else name


def pipeline_dag_id(pipeline_name: str, kind: str) -> str:
    """A pipeline file's DAG ids: ``<pipeline>.<kind>`` (``shapes-detector.teardown``)."""
    return f"{pipeline_name}.{kind}"


def sibling_dag_id(dag_id: str, kind: str) -> str:
    """The DAG ``kind`` of the same pipeline file as ``dag_id`` (``shapes-detector.retrain`` ->
    ``shapes-detector.teardown``); a DAG id of no pipeline file gets ``<pipeline>.<kind>``."""
    pipeline, dot, _ = dag_id.rpartition(".")
    return pipeline_dag_id(pipeline if dot else "<pipeline>", kind)
