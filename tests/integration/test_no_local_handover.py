"""No local handover: the pipeline's tasks exchange data only through S3 and XCom.

On the CeleryExecutor (docker-compose.yaml) the tasks of one run land on any worker, so no task
may read a file another task, or the checkout, left on a worker's disk. Here the whole pipeline
runs on real Airflow components (api-server, scheduler, dag-processor, triggerer; LocalExecutor,
so every task instance, and every resumption of a deferred one, is a supervised process of its
own), from a DAG folder that is a copy of dags/, plugins/ and include/pipelines/ without
include/sample_data, with images and labels from s3:// only. A cluster policy
(no_handover_policy/airflow_local_settings.py) puts every task process in a new, empty working
directory with its own temp directory, and deletes the directories of ended task processes
before the next one starts: a task that reads a relative path, or a file another task wrote,
fails the run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from tests.airflow_cluster import ROOT, AirflowCluster

pytestmark = pytest.mark.integration

DAG_ID = "shapes-detector.pipeline"
PIPELINE = "handover-detector"
PREFIX = "handover"
POLICY_DIR = Path(__file__).resolve().parent / "no_handover_policy"
SAMPLE = ROOT / "include" / "sample_data"
# Environment that would point the copy back at the checkout's files.
CHECKOUT_POINTERS = ("SAGEMAKER_VISION_PIPELINES_DIR", "SAGEMAKER_VISION_INCLUDE_DIR",
                     "SAGEMAKER_VISION_IMAGE_ROOTS", "SAGEMAKER_VISION_PRICES")
RUN_TIMEOUT_S = 420  # a cold, busy CI machine: the run takes ~2 min here


def _copy_dag_folder(dest: Path) -> Path:
    """What a worker gets: the code (dags/, plugins/) and the pipeline files, no sample data.

    The copy's pipeline file runs on manual triggers only (``schedule: null``): unpausing its DAG
    would otherwise also start the latest week's scheduled run, with the file's own sources
    (include/sample_data, which the copy has not).
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("dags", "plugins", "include/pipelines"):
        shutil.copytree(ROOT / part, dest / part, ignore=ignore)
    assert not (dest / "include" / "sample_data").exists()
    pipeline_file = dest / "include" / "pipelines" / f"{DAG_ID.split('.')[0]}.yaml"
    text, count = re.subn(r"^schedule: .*$", "schedule: null", pipeline_file.read_text(), count=1, flags=re.M)
    assert count == 1, f"no top-level schedule in {pipeline_file}"
    pipeline_file.write_text(text)
    return dest


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of the DAG folder copy (bytecode caches aside) with its size and mtime."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def _upload_sources(s3, bucket: str) -> dict[str, str]:
    """The sample images and their labels, in S3 as a user's would be: nothing is read from include/."""
    images = sorted(p for p in (SAMPLE / "images").iterdir() if p.suffix in (".jpg", ".jpeg", ".png"))
    assert images
    for path in images:
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}-source/images/{path.name}", Body=path.read_bytes(),
                      ContentType="image/jpeg" if path.suffix != ".png" else "image/png")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}-source/output.manifest",
                  Body=(SAMPLE / "output.manifest").read_bytes(), ContentType="application/jsonl")
    return {"image_source": f"s3://{bucket}/{PREFIX}-source/images/",
            "import_manifest": f"s3://{bucket}/{PREFIX}-source/output.manifest"}


def _retry_on_lock(cluster: AirflowCluster, *args: str):
    for _attempt in range(5):
        result = cluster.airflow(*args)
        # SQLite allows one writer: with four components running, the CLI can lose the race.
        if result.returncode == 0 or "database is locked" not in result.stderr:
            return result
        time.sleep(2)
    return result


def _wait_for_run(cluster: AirflowCluster, run_id: str, timeout: float) -> dict:
    token = cluster.token()
    deadline = time.monotonic() + timeout
    restarts = 0
    run: dict = {}
    while time.monotonic() < deadline:
        if restarts < 1 and cluster.restart_exited("scheduler"):  # once: a second death is a real failure
            restarts += 1
            print(f"the scheduler had exited; restarted it:\n{cluster.log_tail('scheduler', 1500)}")
        run = cluster.api(f"/dags/{DAG_ID}/dagRuns/{run_id}", token)
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(3)
    raise AssertionError(f"run {run_id} still {run.get('state')} after {timeout} s\n{cluster.log_tail('scheduler')}")


def _failures(cluster: AirflowCluster, run_id: str, instances: list[dict]) -> str:
    """Each failed task's exception and where it was raised, so a failure says which read broke."""
    out = []
    for ti in instances:
        if ti["state"] != "failed":
            continue
        log = cluster.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={ti['task_id']}" / \
            f"attempt={ti['try_number']}.log"
        errors = []
        for line in (log.read_text(errors="replace").splitlines() if log.exists() else []):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            for error in record.get("error_detail") or []:
                frames = [f"{f['filename'].rsplit('/', 1)[-1]}:{f['lineno']} {f['name']}" for f in error["frames"][-3:]]
                errors.append(f"{error['exc_type']}: {error['exc_value']} (at {' < '.join(reversed(frames))})")
        out.append(f"--- {ti['task_id']} (try {ti['try_number']}): " + ("\n    ".join(errors) or f"no error in {log}"))
    return "\n".join(out)


def test_every_task_runs_in_its_own_empty_directory(tmp_path, aws_clients, emulator_env, monkeypatch):
    from local_aws import airflow_env

    s3 = aws_clients["s3"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    folder = _copy_dag_folder(tmp_path / "dag-folder")
    before = _snapshot(folder)
    task_dirs = tmp_path / "task-dirs"
    task_dirs.mkdir()
    sources = _upload_sources(s3, bucket)

    env = {**os.environ, **airflow_env(emulator_env.endpoint_url)}
    for name in CHECKOUT_POINTERS:
        env.pop(name, None)
    cluster = AirflowCluster(tmp_path / "airflow-home", env)
    cluster.env.update({
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(folder / "plugins"),
        # The package from the copy, and the policy; not the checkout.
        "PYTHONPATH": os.pathsep.join([str(folder / "plugins"), str(POLICY_DIR)]),
        "NO_HANDOVER_BASE": str(task_dirs),
    })
    # The components (and so every task process until the policy moves it) start in an empty
    # directory too, not in the checkout, where a relative include/... path would resolve.
    components_cwd = tmp_path / "components-cwd"
    components_cwd.mkdir()
    monkeypatch.chdir(components_cwd)

    run_id = "manual__no-local-handover"
    conf = {**sources, "pipeline_name": PIPELINE, "prefix": PREFIX, "load_test_requests": 20,
            "load_test_concurrency": 2, "min_map": 0.0, "map_tolerance": 1.0}
    started = time.monotonic()
    try:
        cluster.start()
        # The dag-processor must have serialized the DAG before the CLI can see it.
        deadline = time.monotonic() + 180
        while _retry_on_lock(cluster, "dags", "unpause", DAG_ID).returncode != 0:
            assert time.monotonic() < deadline, cluster.log_tail("dag-processor")
            time.sleep(2)
        triggered = _retry_on_lock(cluster, "dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run = _wait_for_run(cluster, run_id, RUN_TIMEOUT_S)
        token = cluster.token()
        instances = cluster.api(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100", token)["task_instances"]
        assert run["state"] == "success", _failures(cluster, run_id, instances)
    finally:
        cluster.stop()
        print(f"no-local-handover test wall time: {time.monotonic() - started:.1f} s")

    records = [json.loads(line) for line in (task_dirs / "records.jsonl").read_text().splitlines()]
    enters = {r["pid"]: r for r in records if r.get("event") == "enter"}
    ours = [r for r in records if r.get("event") == "pre_execute" and r["run_id"] == run_id]
    # Every task that ran as a process (EmptyOperators do not run), and only those, went through the policy.
    ran = {ti["task_id"] for ti in instances
           if ti["state"] in ("success", "failed") and ti["operator"] != "EmptyOperator"}
    assert {"sync_images", "label.import", "prepare_manifests", "train_and_deploy.train",
            "train_and_deploy.deploy", "train_and_deploy.smoke_test", "train_and_deploy.load_test"} <= ran
    assert {r["task_id"] for r in ours} == ran
    for record in ours:
        # It works where the policy put it: its own directory, still empty when its work began.
        assert record["cwd"] == record["entered"] == enters[record["pid"]]["cwd"], record
        assert record["listing"] == [] and enters[record["pid"]]["listing"] == [], record
    # One directory per task process: deferred tasks resumed in a new process and a new directory.
    cwds = [r["cwd"] for r in ours]
    assert len(cwds) == len(set(cwds)) == len({r["pid"] for r in ours})
    assert len(ours) > len(ran), "no deferred task resumed in a process of its own"
    # The directories of ended processes were deleted as the run went on (all but the last ones').
    swept = {r["swept"] for r in records if "swept" in r}
    ended_early = [enters[r["pid"]]["root"] for r in sorted(ours, key=lambda r: r["time"])[:-2]]
    assert set(ended_early) <= swept, sorted(set(ended_early) - swept)
    # Nothing was written into the DAG folder either.
    assert _snapshot(folder) == before
