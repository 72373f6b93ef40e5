"""Clearing and rerunning every task of a run creates zero duplicates of anything paid for."""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
PIPELINE = "rerun-detector"


def inventory(clients, bucket: str) -> Counter:
    """Everything the pipeline can create, counted by kind, for this test's pipeline only."""
    sm, s3 = clients["sagemaker"], clients["s3"]
    counts: Counter = Counter()
    counts["training_jobs"] = sum(j["TrainingJobName"].startswith(PIPELINE)
                                  for j in sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"])
    counts["labeling_jobs"] = sum(j["LabelingJobName"].startswith(PIPELINE)
                                  for j in sm.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"])
    counts["models"] = sum(m["ModelName"].startswith(PIPELINE) for m in sm.list_models(MaxResults=100)["Models"])
    counts["endpoint_configs"] = sum(c["EndpointConfigName"].startswith(PIPELINE)
                                     for c in sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"])
    counts["endpoints"] = sum(e["EndpointName"].startswith(PIPELINE)
                              for e in sm.list_endpoints(MaxResults=100)["Endpoints"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="rerun/"):
        for obj in page.get("Contents", []):
            counts["s3:" + obj["Key"].split("/")[1]] += 1
    return counts


def test_rerunning_every_task_duplicates_nothing(airflow_db, aws_clients):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py")).get_dag("shapes-detector.pipeline")
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    conf = {"pipeline_name": PIPELINE, "prefix": "rerun", "label_backend": "ground_truth",
            "gt_workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/rerun-team",
            "load_test_requests": 20, "load_test_concurrency": 2}
    when = datetime(2026, 10, 4, tzinfo=UTC)

    first = dag.test(logical_date=when, run_after=when, run_conf=conf)
    assert first.state == "success"
    before = inventory(aws_clients, bucket)
    assert before["training_jobs"] == before["labeling_jobs"] == before["models"] == 1
    assert before["endpoint_configs"] == before["endpoints"] == 1

    # Same logical date: dag.test clears every task instance and runs each task again.
    second = dag.test(logical_date=when, run_after=when, run_conf=conf)
    assert second.state == "success"
    after = inventory(aws_clients, bucket)
    assert after == before, {k: (before[k], after[k]) for k in before.keys() | after.keys() if before[k] != after[k]}
