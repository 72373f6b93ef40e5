"""P7: `make demo` wall time, next to Airflow's own floor for running as many tasks.

The demo is ``scripts/demo.py`` exactly as ``make demo`` runs it (emulator, ``airflow dags test
shapes-detector.pipeline``, the summary). The floor, run right after with the same Airflow
home, settings and interpreter, is ``airflow dags test`` of a generated DAG: a chain of as many
no-op ``@task`` functions as the pipeline has tasks. Their ratio says how much of the demo is
the pipeline's own work (emulated AWS waits included) rather than Airflow running N tasks.

The brief asks only to report the demo's time; the line's target (<= 4x the floor) is this
benchmark's own yardstick, chosen so a demo that starts sleeping or polling slowly shows up.

Usage: benchmarks/p7_demo.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _bench import ROOT, detail, emit, loadavg, run_child

TARGET = 4.0
DAG_ID = "shapes-detector.pipeline"


def floor_dag_source(tasks: int) -> str:
    """A DAG of ``tasks`` chained no-op Python tasks."""
    return "\n".join([
        '"""Airflow\'s floor for P7: as many no-op tasks as the pipeline has, in a chain."""',
        "import pendulum",
        "from airflow.sdk import chain, dag, task",
        "",
        "",
        '@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False)',
        "def bench_floor():",
        "    @task",
        "    def noop(i: int) -> int:",
        "        return i",
        "",
        f"    chain(*[noop.override(task_id=f'noop_{{i}}')(i) for i in range({tasks})])",
        "",
        "",
        "bench_floor()",
        "",
    ])


def count_tasks() -> int:
    """How many tasks the pipeline DAG has (parsed here, before any timing)."""
    sys.path[:0] = [str(ROOT / "scripts")]
    from _local import airflow_base_env

    os.environ.update({k: v for k, v in airflow_base_env().items() if k != "PYTHONPATH"})
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))  # every pipeline file's DAGs
    if DAG_ID not in bag.dags:
        raise RuntimeError(f"{DAG_ID} did not parse: {bag.import_errors}")
    return len(bag.dags[DAG_ID].tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)

    tasks = count_tasks()
    python = str(ROOT / ".venv" / "bin" / "python")
    demo = run_child([python, str(ROOT / "scripts" / "demo.py")], timeout_s=500, cwd=ROOT)
    if demo.returncode != 0:
        raise RuntimeError(f"make demo failed ({demo.returncode}):\n{(demo.stdout + demo.stderr)[-3000:]}")
    # The demo's own summary: the lines between its two rules of "=".
    lines = demo.stdout.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    summary = lines[rules[-2] + 1:rules[-1]] if len(rules) >= 2 else []

    from _local import BIN, DEMO_AIRFLOW_HOME, airflow_base_env

    with tempfile.TemporaryDirectory(prefix="bench-p7-") as tmp:
        Path(tmp, "bench_floor.py").write_text(floor_dag_source(tasks))
        # The demo's Airflow home: the demo has just migrated its DB (make airflow's may not exist yet).
        env = {**os.environ, **airflow_base_env(DEMO_AIRFLOW_HOME), "AIRFLOW__CORE__DAGS_FOLDER": tmp}
        floor = run_child([str(BIN / "airflow"), "dags", "test", "bench_floor"], timeout_s=300, env=env, cwd=ROOT)
    if floor.returncode != 0:
        raise RuntimeError(f"the floor DAG failed ({floor.returncode}):\n{(floor.stdout + floor.stderr)[-3000:]}")

    for line in summary:
        detail(f"demo:{line}")
    detail(f"make demo {demo.wall_s:.1f} s wall ({demo.cpu_s:.0f} CPU-s with its children; demo.py itself peaked at "
           f"{demo.max_rss_mb:.0f} MB RSS); floor ({tasks} no-op tasks, airflow dags test) {floor.wall_s:.1f} s "
           f"({loadavg()})")
    emit("P7", "make-demo-vs-airflow-floor", demo.wall_s / floor.wall_s, "<=", TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
