"""Cluster policy of tests/integration/test_no_local_handover.py: every task process works as if on a
worker of its own.

Put on the Airflow components' PYTHONPATH (never the test process's): Airflow imports
``airflow_local_settings`` at start-up and applies :func:`task_policy` to every task of every DAG
it parses, the task process's own parse included. The wrapped ``prepare_for_execution`` is the
first thing the task runner calls on the task, before rendering its templates (a mapped task has
no attribute of its own to wrap: its pre-execute hook is its first chance), so from then on the
process

- works in a new, empty directory (``<base>/<task>-<random>/cwd``): a relative path reads nothing;
- has its own temp directory beside it (``tempfile`` and ``$TMPDIR``);
- first deletes the directories of every task process that has ended (deferred, failed or done),
  as if that process had run on a worker that is gone: a file another task wrote, passed on by
  its absolute path, is no longer there.

Each task process appends one line to ``<base>/records.jsonl`` when it enters its directory and
one when its pre-execute hook runs (with the run id and try number), and one per directory it
deletes, so the test can check that every task ran, each in a directory of its own.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from typing import Any

BASE_ENV = "NO_HANDOVER_BASE"
_entered: dict[str, Any] = {}


def _base() -> str:
    return os.environ[BASE_ENV]


def _append(record: dict[str, Any]) -> None:
    with open(os.path.join(_base(), "records.jsonl"), "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(record) + "\n")


def _records() -> list[dict[str, Any]]:
    path = os.path.join(_base(), "records.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_SH)
        return [json.loads(line) for line in fh if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (ended, not yet reaped by its supervisor) still answers kill(0): read its state.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _sweep() -> None:
    """Delete the directories of the task processes that have ended: their worker is gone."""
    swept = {r["swept"] for r in _records() if "swept" in r}
    for record in _records():
        root = record.get("root")
        if record.get("event") != "enter" or root in swept or record["pid"] == os.getpid():
            continue
        if not _alive(record["pid"]):
            shutil.rmtree(root, ignore_errors=True)
            swept.add(root)
            _append({"swept": root, "by": os.getpid(), "time": time.time()})


def _enter(dag_id: str, task_id: str, where: str) -> None:
    if _entered:  # one directory per process
        return
    _sweep()
    root = tempfile.mkdtemp(prefix=f"{task_id}-", dir=_base())
    cwd, tmp = os.path.join(root, "cwd"), os.path.join(root, "tmp")
    os.mkdir(cwd)
    os.mkdir(tmp)
    os.chdir(cwd)
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    _entered.update(root=root, cwd=cwd)
    _append({"event": "enter", "dag_id": dag_id, "task_id": task_id, "pid": os.getpid(), "root": root,
             "cwd": cwd, "where": where, "listing": os.listdir(cwd), "time": time.time()})


def _pre_execute(hook: Any) -> Any:
    """``hook`` (the task's own pre_execute, or None) after entering the directory and recording the run."""

    def pre_execute(context: Any) -> None:
        ti = context["ti"]
        _enter(ti.dag_id, ti.task_id, "pre_execute")  # a mapped task's first chance
        _append({"event": "pre_execute", "dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
                 "try_number": ti.try_number, "map_index": ti.map_index, "pid": os.getpid(),
                 "cwd": os.getcwd(), "entered": _entered.get("cwd"), "listing": os.listdir(os.getcwd()),
                 "time": time.time()})
        if hook is not None:
            hook(context)

    return pre_execute


def task_policy(task: Any) -> None:
    partial_kwargs = getattr(task, "partial_kwargs", None)
    if isinstance(partial_kwargs, dict):
        # A mapped operator (attrs slots: no attribute of its own can be added). The runner unmaps it
        # into an operator made from these kwargs, after rendering, so that one's pre_execute enters.
        partial_kwargs["pre_execute"] = _pre_execute(partial_kwargs.get("pre_execute"))
        return
    prepare = task.prepare_for_execution  # bound to the parsed task, on which the runner calls it

    def prepare_for_execution() -> Any:
        _enter(task.dag_id, task.task_id, "prepare_for_execution")
        return prepare()

    task.prepare_for_execution = prepare_for_execution
    # A plain callable(context), so it is copied along with the task prepare_for_execution returns.
    task._pre_execute_hook = _pre_execute(task._pre_execute_hook)
