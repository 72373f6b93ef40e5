"""Cluster policy of tests/integration/test_no_local_handover.py: every task process works as if on a
worker of its own.

Put on the Airflow components' PYTHONPATH (never the test process's): Airflow imports
``airflow_local_settings`` at start-up and applies :func:`task_policy` to every task of every DAG
it parses, the task process's own parse included. The wrapped ``prepare_for_execution`` is the
first thing the task runner calls on the task, before rendering its templates, so from then on
the process

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


def _enter(task: Any) -> None:
    if _entered:  # one directory per process
        return
    _sweep()
    root = tempfile.mkdtemp(prefix=f"{task.task_id}-", dir=_base())
    cwd, tmp = os.path.join(root, "cwd"), os.path.join(root, "tmp")
    os.mkdir(cwd)
    os.mkdir(tmp)
    os.chdir(cwd)
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = tmp
    _entered.update(root=root, cwd=cwd)
    _append({"event": "enter", "dag_id": task.dag_id, "task_id": task.task_id, "pid": os.getpid(),
             "root": root, "cwd": cwd, "listing": os.listdir(cwd), "time": time.time()})


def task_policy(task: Any) -> None:
    if not hasattr(task, "_pre_execute_hook"):  # a mapped operator: this pipeline has none
        return
    prepare = task.prepare_for_execution  # bound to the parsed task, on which the runner calls it
    hook = task._pre_execute_hook  # a plain callable(context), copied along with the task

    def prepare_for_execution() -> Any:
        _enter(task)
        return prepare()

    def pre_execute(context: Any) -> None:
        ti = context["ti"]
        _append({"event": "pre_execute", "dag_id": ti.dag_id, "task_id": ti.task_id, "run_id": ti.run_id,
                 "try_number": ti.try_number, "map_index": ti.map_index, "pid": os.getpid(),
                 "cwd": os.getcwd(), "entered": _entered.get("cwd"), "listing": os.listdir(os.getcwd()),
                 "time": time.time()})
        if hook is not None:
            hook(context)

    task.prepare_for_execution = prepare_for_execution
    task._pre_execute_hook = pre_execute
