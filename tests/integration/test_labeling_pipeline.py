"""The pipeline's ``label`` task group on the emulator, with Airflow's executor safeguard made strict.

Airflow 3 wraps every operator's ``execute`` in ``ExecutorSafeguard``: an ``execute`` that the
task runner did not start (one operator running another's) logs a warning, or raises when the
operator has ``allow_nested_operators=False``. ``strict_safeguard`` makes that False for every
operator, including any built inside another's ``execute``, so a nested call fails the run.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
PRIVATE_TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/shapes-team"


@pytest.fixture
def strict_safeguard(monkeypatch):
    """Every operator refuses to be executed by another operator (allow_nested_operators=False)."""
    from airflow.sdk import BaseOperator

    monkeypatch.setattr(BaseOperator, "allow_nested_operators",
                        property(lambda self: False, lambda self, value: None), raising=False)


def _pipeline():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("shapes-detector.pipeline")


def test_the_strict_safeguard_fails_an_operator_that_runs_another_ones_execute(strict_safeguard):
    """The detector can fail: the old ``label`` task's shape, run the way the task runner runs a task."""
    from airflow.sdk import BaseOperator
    from airflow.sdk.execution_time.task_runner import _run_execute_callable

    class Inner(BaseOperator):
        def execute(self, context: Any) -> str:
            return "inner ran"

    class Outer(BaseOperator):
        def execute(self, context: Any) -> str:
            return Inner(task_id=self.task_id).execute(context)

    class Alone(BaseOperator):
        def execute(self, context: Any) -> str:
            return "ran"

    alone = Alone(task_id="alone")
    assert _run_execute_callable({}, alone.execute, alone) == "ran"
    outer = Outer(task_id="outer")
    with pytest.raises(RuntimeError, match="Inner.execute cannot be called outside of the Task Runner"):
        _run_execute_callable({}, outer.execute, outer)


def test_pipeline_labels_with_ground_truth_on_a_private_team(airflow_db, aws_clients, strict_safeguard):
    """Ground Truth on a private team, through the DAG, green on the strict emulator, nothing nested."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    s3, sm = aws_clients["s3"], aws_clients["sagemaker"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    # The bucket owner's own rule, which must survive next to Ground Truth's.
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://uploads.example.com"]}]})
    when = datetime(2026, 11, 8, tzinfo=UTC)
    conf = {"pipeline_name": "gt-private", "prefix": "gt-private", "label_backend": "ground_truth",
            "gt_workteam_arn": PRIVATE_TEAM, "load_test_requests": 10, "load_test_concurrency": 1}

    run = _pipeline().test(logical_date=when, run_after=when, run_conf=conf)
    assert run.state == "success", run.state

    states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.task_id.startswith("label.")}
    assert states == {"label.choose_backend": "success", "label.ground_truth": "success",
                      "label.import": "skipped", "label.label_studio": "skipped", "label.publish": "success"}

    (job,) = [j for j in sm.list_labeling_jobs(MaxResults=100)["LabelingJobSummaryList"]
              if j["LabelingJobName"].startswith("gt-private-")]
    described = sm.describe_labeling_job(LabelingJobName=job["LabelingJobName"])
    assert described["LabelingJobStatus"] == "Completed"
    assert described["HumanTaskConfig"]["WorkteamArn"] == PRIVATE_TEAM
    assert "PublicWorkforceTaskPrice" not in described["HumanTaskConfig"]
    assert described["LabelCounters"]["TotalLabeled"] == 12

    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["https://uploads.example.com"]
    assert [r for r in rules if r["AllowedMethods"] == ["GET"] and r["AllowedOrigins"] == ["*"]]

    (published,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="gt-private/")["Contents"]
                    if "/labels/dt=" in o["Key"] and o["Key"].endswith("/output.manifest")
                    and "/work/" not in o["Key"]]
    lines = s3.get_object(Bucket=bucket, Key=published)["Body"].read().decode().splitlines()
    assert len(lines) == 12 and all("bounding-box" in json.loads(line) for line in lines)
    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if e.source_run_id == run.run_id]
    assert [(e.source_task_id, e.extra["manifest_uri"]) for e in events] == [
        ("label.publish", f"s3://{bucket}/{published}")]
