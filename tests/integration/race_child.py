"""One "Airflow installation" of the race test: its own AIRFLOW_HOME and metadata DB, the shared emulator.

Started by tests/integration/test_deploy_race.py. Parses the DAGs once, writes ``ready`` into its
directory, then for every JSON line on stdin (``{"dag_id", "run_after", "conf", "result"}``) runs
``dag.test()`` and writes ``{"state", "tasks": {task_id: state}}`` to the ``result`` path.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(workdir: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    for dag in bag.dags.values():
        for task in dag.tasks:
            task.retries = 0
    Path(workdir, "ready").write_text("ready")
    for line in sys.stdin:
        job = json.loads(line)
        try:
            run = bag.get_dag(job["dag_id"]).test(run_after=datetime.fromisoformat(job["run_after"]),
                                                  run_conf=job["conf"])
            result = {"state": str(run.state), "tasks": {ti.task_id: str(ti.state) for ti in run.get_task_instances()}}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
            result = {"state": "error", "error": f"{type(exc).__name__}: {exc}"}
        tmp = Path(job["result"] + ".tmp")
        tmp.write_text(json.dumps(result))
        tmp.rename(job["result"])


if __name__ == "__main__":
    main(sys.argv[1])
