"""The pipeline's load test fanned out over two mapped workers on real Airflow components (the emulator).

`airflow dags test` runs mapped task instances one after another, so two workers that must start
each step together need a scheduler: api-server, scheduler (LocalExecutor, parallelism 4),
dag-processor and triggerer run the whole ``shapes-detector.pipeline`` with ``load_workers=2``. The
report must merge both workers (each named with its share), the steps must have started together
on S3's clock, and the two mapped task instances must both have succeeded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from sagemaker_vision.core.pipeline_file import PIPELINES_DIR_ENV
from tests.airflow_cluster import ROOT, AirflowCluster

pytestmark = pytest.mark.integration

PIPELINE_FILE = "shapes-detector"
DAG_ID = f"{PIPELINE_FILE}.pipeline"  # the one place this test names the DAG
PREFIX = "fanout"
RUN_TIMEOUT_S = 480


def _manual_only_pipelines(dest: Path) -> Path:
    """The pipeline files with ``schedule: null``: unpausing must not also start the latest week's run."""
    shutil.copytree(ROOT / "include" / "pipelines", dest)
    path = dest / f"{PIPELINE_FILE}.yaml"
    text, count = re.subn(r"^schedule: .*$", "schedule: null", path.read_text(), count=1, flags=re.M)
    assert count == 1
    path.write_text(text)
    return dest


def _retry_on_lock(cluster: AirflowCluster, *args: str):
    for _attempt in range(8):
        result = cluster.airflow(*args)
        if result.returncode == 0 or "database is locked" not in result.stderr:  # SQLite: one writer
            return result
        time.sleep(2)
    return result


def test_the_pipeline_merges_two_mapped_load_workers(tmp_path, aws_clients, emulator_env):
    from local_aws import airflow_env

    s3 = aws_clients["s3"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    env = {**os.environ, **airflow_env(emulator_env.endpoint_url),
           PIPELINES_DIR_ENV: str(_manual_only_pipelines(tmp_path / "pipelines"))}
    cluster = AirflowCluster(tmp_path / "airflow-home", env)
    run_id = "manual__fanout-two-workers"
    conf = {"pipeline_name": "fanout-detector", "prefix": PREFIX, "load_test_requests": 80,
            "load_test_concurrency": 4, "load_workers": 2, "min_map": 0.0, "map_tolerance": 1.0}
    try:
        cluster.start()
        deadline = time.monotonic() + 180
        while _retry_on_lock(cluster, "dags", "unpause", DAG_ID).returncode != 0:
            assert time.monotonic() < deadline, cluster.log_tail("dag-processor")
            time.sleep(2)
        triggered = _retry_on_lock(cluster, "dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        token, deadline, run = cluster.token(), time.monotonic() + RUN_TIMEOUT_S, {}
        while time.monotonic() < deadline:
            cluster.restart_exited("scheduler")  # SQLite's StaleDataError can kill it; a supervisor restarts it
            run = cluster.api(f"/dags/{DAG_ID}/dagRuns/{run_id}", token)
            if run["state"] in ("success", "failed"):
                break
            time.sleep(3)
        instances = cluster.api(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=100", token)["task_instances"]
    finally:
        cluster.stop()
    states = {(t["task_id"], t["map_index"]): t["state"] for t in instances}
    assert run.get("state") == "success", (states, cluster.log_tail("scheduler", 2000))
    stage = "train_and_deploy."
    assert states[(stage + "load_test_worker", 0)] == states[(stage + "load_test_worker", 1)] == "success", states
    assert states[(stage + "load_test_plan", -1)] == states[(stage + "load_test", -1)] == "success"

    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/runs/")
            for o in page.get("Contents", [])]
    (report_key,) = [k for k in keys if k.endswith("/reports/report.json")]
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    fanout = report["fanout"]
    assert fanout["merged_workers"] == 2 and "merged 2 workers" in fanout["summary"]
    (step,) = report["steps"]
    shares = {w["worker"]: w["steps"][0] for w in fanout["workers"]}
    assert sorted(shares) == [0, 1]
    assert [shares[w]["concurrency"] for w in (0, 1)] == [2, 2]
    assert step["concurrency"] == 4 and step["requests"] == sum(shares[w]["requests"] for w in (0, 1)) == 80
    assert step["successes"] == 80 and step["merged_workers"] == 2
    starts = [shares[w]["started_at"] for w in (0, 1)]
    assert max(starts) - min(starts) < 1.0, starts  # together, on S3's clock
    # Each worker's envelope is in S3 beside the report, and the cost of the serverless endpoint is priced.
    envelopes = [k for k in keys if re.search(r"/fanout/step-000/worker-00[01]\.json$", k)]
    assert len(envelopes) == 2, keys
    assert report["cost"]["kind"] == "serverless" and float(report["cost"]["usd_per_1000_inferences"]) > 0
