"""Backfill through the Airflow CLI, as users run it: api-server, scheduler, dag-processor and
triggerer as real processes, `airflow backfill create` over three weekly intervals.

Each run must train on its own interval's data (every partition up to its own, no later one)
and nothing may be duplicated.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from sagemaker_vision.core.s3_sync_state import STATE_SUFFIX
from tests.airflow_cluster import AirflowCluster

pytestmark = pytest.mark.integration

DAG_ID = "shapes-detector.pipeline"
# Weekly intervals start on Sundays: Oct 11, 18 and 25 2026, ending Oct 18, 25 and Nov 1. (Not
# the latest weeks: unpausing schedules the latest complete week, and a backfill skips dates
# that already have a run.)
FROM, TO = "2026-10-11", "2026-10-25"
PARTITIONS = ["2026-10-11", "2026-10-18", "2026-10-25"]
PIPELINE = "backfill-detector"


def _wait_for_runs(cluster: AirflowCluster, count: int, timeout: float) -> list[dict]:
    token = cluster.token()
    deadline = time.monotonic() + timeout
    runs: list[dict] = []
    restarts = 0
    while time.monotonic() < deadline:
        if restarts < 1 and cluster.restart_exited("scheduler"):  # once: a second death is a real failure
            restarts += 1
            print(f"the scheduler had exited; restarted it:\n{cluster.log_tail('scheduler', 1500)}")
        # Unpausing also schedules the latest interval (catchup is off): only backfills count here.
        runs = [r for r in cluster.api(f"/dags/{DAG_ID}/dagRuns?limit=50", token)["dag_runs"]
                if r["run_type"] == "backfill"]
        if sum(r["state"] == "success" for r in runs) >= count:
            return runs
        failed = [r for r in runs if r["state"] == "failed"]
        assert not failed, f"a backfilled run failed: {failed}\n{cluster.log_tail('scheduler')}"
        time.sleep(3)
    raise AssertionError(f"only {[r['state'] for r in runs]} after {timeout} s\n{cluster.log_tail('scheduler')}")


def test_backfill_three_weeks_each_trains_on_its_own_interval(tmp_path, aws_clients, emulator_env):
    from local_aws import airflow_env

    s3, sm = aws_clients["s3"], aws_clients["sagemaker"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    env = {**os.environ, **airflow_env(emulator_env.endpoint_url)}
    cluster = AirflowCluster(tmp_path / "airflow-home", env)
    started = time.monotonic()
    try:
        cluster.start()
        # The dag-processor must have serialized the DAG before the CLI can see it.
        deadline = time.monotonic() + 120
        while cluster.airflow("dags", "unpause", DAG_ID).returncode != 0:
            assert time.monotonic() < deadline, cluster.log_tail("dag-processor")
            time.sleep(2)
        conf = {"pipeline_name": PIPELINE, "prefix": "backfill", "load_test_requests": 20,
                "load_test_concurrency": 2, "min_map": 0.0, "map_tolerance": 1.0}
        for _attempt in range(5):
            created = cluster.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", FROM,
                                      "--to-date", TO, "--dag-run-conf", json.dumps(conf),
                                      # one week after another: each trains on the weeks before it
                                      "--max-active-runs", "1")
            # SQLite allows one writer: with four components running, the CLI can lose the race.
            if created.returncode == 0 or "database is locked" not in created.stderr:
                break
            time.sleep(2)
        assert created.returncode == 0, created.stdout + created.stderr
        runs = _wait_for_runs(cluster, 3, timeout=600)
    finally:
        cluster.stop()
        print(f"backfill test wall time: {time.monotonic() - started:.1f} s")

    assert sorted(r["run_type"] for r in runs) == ["backfill"] * 3
    # Each run synced its own partition, once: 12 images per week, no duplicates.
    raw = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="backfill/raw/")
           for o in page.get("Contents", [])]
    # Beside each partition the sync keeps its state object (what it copied, and whose content).
    states = sorted(k for k in raw if k.endswith(STATE_SUFFIX))
    assert states == [f"backfill/raw/dt={p}{STATE_SUFFIX}" for p in PARTITIONS], states
    per_partition = Counter(k.split("/")[2] for k in raw if not k.endswith(STATE_SUFFIX))
    assert per_partition == {f"dt={p}": 12 for p in PARTITIONS}

    jobs = sorted(j["TrainingJobName"] for j in sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]
                  if j["TrainingJobName"].startswith(PIPELINE + "-"))
    assert jobs == [f"{PIPELINE}-{d}-000000" for d in ("20261018", "20261025", "20261101")], jobs
    for week, job in enumerate(jobs, start=1):
        stamp = job.removeprefix(PIPELINE + "-").replace("-", "T")
        refs = []
        for name in ("train", "validation"):
            key = f"backfill/runs/{PIPELINE}/{stamp}/manifests/{name}.manifest"
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            refs += [json.loads(line)["source-ref"] for line in body.read().splitlines()]
        partitions = sorted({ref.split("/raw/")[1].split("/")[0] for ref in refs})
        # Week k sees the partitions of weeks 1..k: what existed at its interval's end.
        assert partitions == [f"dt={p}" for p in PARTITIONS[:week]], (job, partitions)
        assert len(refs) == len(set(refs)) == 12 * week
        desc = sm.describe_training_job(TrainingJobName=job)
        train_count = int(desc["HyperParameters"]["num_training_samples"])
        assert 0 < train_count < 12 * week

    models = [m["ModelName"] for m in sm.list_models(MaxResults=100)["Models"] if m["ModelName"].startswith(PIPELINE)]
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
               if c["EndpointConfigName"].startswith(PIPELINE)]
    assert len(models) == len(set(models)) <= 3 and len(configs) == len(set(configs)) <= 3
    endpoint = sm.describe_endpoint(EndpointName=PIPELINE)
    assert endpoint["EndpointStatus"] == "InService"
