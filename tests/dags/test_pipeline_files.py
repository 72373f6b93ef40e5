"""A bad pipeline file is one import error naming its file, line and field; the others still load.

Airflow marks every DAG of a file with an import error stale, so the error is raised by
dags/pipeline_errors.py, a file with no DAGs, and dags/pipelines.py keeps building the good ones.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROKEN = """\
data:
  prefix: broken-detector
training:
  epochs: 5000
"""


def test_a_broken_third_file_is_an_import_error_and_the_other_two_still_load(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    for name in ("shapes-detector", "shapes-realtime"):
        shutil.copy(ROOT / "include" / "pipelines" / f"{name}.yaml", pipelines)
    (pipelines / "broken-detector.yaml").write_text(BROKEN)
    monkeypatch.setenv("SAGEMAKER_VISION_PIPELINES_DIR", str(pipelines))

    bag = DagBag(dag_folder=str(ROOT / "dags"))

    assert {dag_id.split(".")[0] for dag_id in bag.dag_ids} == {"shapes-detector", "shapes-realtime"}
    assert len(bag.dag_ids) == 12
    assert list(bag.import_errors) == [str(ROOT / "dags" / "pipeline_errors.py")], bag.import_errors
    message = bag.import_errors[str(ROOT / "dags" / "pipeline_errors.py")]
    assert f"{pipelines / 'broken-detector.yaml'}, line 4: epochs: 5000 is greater than the maximum of 1000" in message
    # The DAGs come from a file that has no import error, so Airflow never marks them stale.
    assert {dag.fileloc for dag in bag.dags.values()} == {str(ROOT / "dags" / "pipelines.py")}


def test_no_bad_file_no_import_error(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("SAGEMAKER_VISION_PIPELINES_DIR", str(tmp_path))
    (tmp_path / "only.yaml").write_text("data:\n  prefix: only\n")
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {} and sorted(bag.dag_ids)[0] == "only.load_test"


def test_a_worker_builds_only_the_dag_of_its_task(monkeypatch):
    """Airflow's parsing context names the DAG a task runner parses for: the factory builds that one."""
    from sagemaker_vision.dags.factory import build_pipelines

    only = build_pipelines(only_dag_id="shapes-realtime.teardown")
    assert list(only) == ["shapes-realtime.teardown"]
    assert len(build_pipelines()) == 12


def test_a_task_runner_parsing_for_one_dag_gets_that_dag_alone(monkeypatch):
    """What the task runner sets before it parses the DAG file for a task (mapped or not)."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "shapes-realtime.pipeline")
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_TASK_ID", "train_and_deploy.load_test_worker")
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert list(bag.dags) == ["shapes-realtime.pipeline"] and bag.import_errors == {}
    assert bag.dags["shapes-realtime.pipeline"].get_task("train_and_deploy.load_test_worker")
