"""A run keeps its training identity across a training retry and a clear: the rerun deploys.

The run's first training job fails (an emulator fault), Airflow retries ``train``, and the provider
starts a new job named ``<job_name>-<10 digits of time>``. The run then fails at its deploy (a
second fault), after ``quality_gate`` recorded the training under the data's fingerprint. Clearing
the run must find that record to be the run's own, reuse the retry's job and deploy its model,
instead of skipping everything after ``needs_training`` and reporting success.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "identity-detector"
STAGE = "train_and_deploy."  # the task group of training, deploy and tests


def pipeline_dag():
    """The pipeline with one retry of ``train`` and none elsewhere (a failure stays a failure)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("shapes-detector.pipeline")
    for task in dag.tasks:
        task.retries = 1 if task.task_id == "train_and_deploy.train" else 0
    return dag


def config_of(run):
    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults

    info = RunInfo(run_id=run.run_id, run_after=run.run_after, data_interval_start=run.data_interval_start,
                   data_interval_end=run.data_interval_end)
    return PipelineConfig.from_params({**param_defaults(), **run.conf}, run=info, region="us-east-1")


def serve_previous_model(sm, endpoint_name: str) -> str:
    """An endpoint already serving an older model, as a weekly run finds it; returns its config name."""
    from sagemaker_vision.core.algorithms import object_detection_image_uri

    previous = f"{endpoint_name}-previous"
    sm.create_model(ModelName=previous, ExecutionRoleArn=os.environ["SAGEMAKER_VISION_ROLE_ARN"],
                    PrimaryContainer={"Image": object_detection_image_uri("us-east-1")})
    sm.create_endpoint_config(EndpointConfigName=previous, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": previous,
        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10}}])
    # Tagged as the pipeline tags its own endpoints, so the load test may run against it.
    sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=previous,
                       Tags=[{"Key": "load-test-allowed", "Value": "true"}])
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return previous


def states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def unfinished(states: dict[str, str]) -> dict[str, str]:
    """The tasks that neither succeeded nor were skipped: short enough that pytest prints it whole."""
    return {task: state for task, state in states.items() if state not in ("success", "skipped")}


def test_a_rerun_after_a_training_retry_deploys_the_runs_model(airflow_db, aws_clients, control):
    from sagemaker_vision.core.training_budget import is_run_job
    from sagemaker_vision.pipeline.manifests import _marker_uri

    sm, s3 = aws_clients["sagemaker"], aws_clients["s3"]
    previous = serve_previous_model(sm, PIPELINE)
    conf = {"pipeline_name": PIPELINE, "prefix": "identity", "load_test_requests": 10, "load_test_concurrency": 2}
    when = datetime(2026, 10, 11, tzinfo=UTC)
    dag = pipeline_dag()

    # First run: the first job fails once, the retry's job trains; then the deploy fails.
    control.add_fault(kind="training_failure", name_prefix=f"{PIPELINE}-", count=1,
                      reason="InternalServerError: emulated capacity error (identity test)")
    control.add_fault(kind="update_endpoint_failure", name_prefix=PIPELINE, count=1,
                      reason="emulated deployment failure (identity test)")
    first = dag.test(logical_date=when, run_after=when, run_conf=conf)
    assert first.state == "failed", states(first)
    assert states(first)[STAGE + "train"] == "success" and states(first)[STAGE + "deploy"] == "failed", states(first)
    cfg = config_of(first)
    jobs = sorted(j["TrainingJobName"] for j in sm.list_training_jobs(NameContains=PIPELINE, MaxResults=100)
                  ["TrainingJobSummaries"])
    assert len(jobs) == 2 and jobs[0] == cfg.job_name, jobs
    retry_job = jobs[1]
    assert retry_job != cfg.job_name and is_run_job(retry_job, cfg.job_name), jobs
    assert sm.describe_training_job(TrainingJobName=cfg.job_name)["TrainingJobStatus"] == "Failed"
    assert sm.describe_training_job(TrainingJobName=retry_job)["TrainingJobStatus"] == "Completed"
    assert sm.describe_endpoint(EndpointName=PIPELINE)["EndpointConfigName"] == previous

    # The quality gate recorded the retry's job for this data, under the run's identity.
    manifests = first.get_task_instance("prepare_manifests").xcom_pull(task_ids="prepare_manifests")
    bucket, _, key = _marker_uri(cfg, manifests["fingerprint"]).removeprefix("s3://").partition("/")
    record = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert (record["job_name"], record["run_job_name"]) == (retry_job, cfg.job_name), record

    # The rerun (dag.test clears every task of the same run): no fault left, it must deploy.
    second = dag.test(logical_date=when, run_after=when, run_conf=conf)
    after = states(second)
    assert second.state == "success", unfinished(after)
    assert after[STAGE + "needs_training"] == "success" and after[STAGE + "train"] == "success", after
    assert after[STAGE + "deploy"] == "success" and after[STAGE + "load_test"] == "success", after

    # It reused the retry's job (no third one) and serves that job's model.
    again = sorted(j["TrainingJobName"] for j in sm.list_training_jobs(NameContains=PIPELINE, MaxResults=100)
                   ["TrainingJobSummaries"])
    assert again == jobs, again
    endpoint = sm.describe_endpoint(EndpointName=PIPELINE)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == cfg.endpoint_config_name
    variant = sm.describe_endpoint_config(EndpointConfigName=cfg.endpoint_config_name)["ProductionVariants"][0]
    assert variant["ModelName"] == cfg.model_name
    artifacts = sm.describe_training_job(TrainingJobName=retry_job)["ModelArtifacts"]["S3ModelArtifacts"]
    assert sm.describe_model(ModelName=cfg.model_name)["PrimaryContainer"]["ModelDataUrl"] == artifacts
