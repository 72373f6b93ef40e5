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
