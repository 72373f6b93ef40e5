"""Each console link of a real operator run, the way Airflow 3 builds and serves it, on the emulator.

A small DAG runs the package's operators with ``dag.test()`` against the embedded emulator: the
training operator, the deploy and rollback operators, the Ground Truth operator and sensor. Each
persists its link's fields (``BaseAwsLink.persist``); the task runner turns them into a URL at the
end of the try and stores it under the link's ``xcom_key``; the api-server's deserialized task
serves that URL (``get_extra_links``). Nothing here, or in the links, reads Airflow's own tables
beyond that XCom.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "sample_data"
ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"
TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/shapes-team"
GT_BUCKET = "links-emulator"
JOB, ENDPOINT, LABELING_JOB = "links-train-1", "links-endpoint-1", "links-labels-1"
CONSOLE = "https://console.aws.amazon.com"

LINKS_DAG = """
import pendulum
from airflow.sdk import DAG

from sagemaker_vision.operators.deploy import DeployEndpointOperator
from sagemaker_vision.operators.ground_truth import GroundTruthLabelingOperator
from sagemaker_vision.operators.rollback import RollbackEndpointOperator
from sagemaker_vision.sensors.ground_truth import GroundTruthLabelingJobSensor
from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator

SETTINGS = {settings!r}

with DAG("sv_links_emulator", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    ObjectDetectionTrainingOperator(task_id="train", config=SETTINGS["training"], deferrable=False,
                                    check_interval=1, print_log=False)
    deploy = DeployEndpointOperator(task_id="deploy", endpoint_name=SETTINGS["endpoint"],
                                    endpoint_config_name=SETTINGS["endpoint"], check_interval=1,
                                    max_ingestion_time=60, deferrable=False)
    # Nothing of a task "never_deployed" to roll back: it skips, and still links its endpoint.
    deploy >> RollbackEndpointOperator(task_id="rollback", endpoint_name=SETTINGS["endpoint"],
                                       deploy_task_id="never_deployed", check_interval=1, trigger_rule="all_done")
    GroundTruthLabelingOperator(task_id="label", deferrable=False, waiter_delay=1, waiter_max_attempts=60,
                                **SETTINGS["labeling"]) >> GroundTruthLabelingJobSensor(
        task_id="wait_for_labels", job_name=SETTINGS["labeling"]["job_name"], poke_interval=1, timeout=60)
"""


def _training_config(s3: Any, bucket: str, name: str) -> dict[str, Any]:
    key = f"links/{name}/train.manifest"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"source-ref": "s3://x/y.jpg"}\n')
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "Pipe"},
        "RoleArn": ROLE,
        "HyperParameters": {"epochs": "2", "num_training_samples": "10"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "AugmentedManifestFile", "S3Uri": f"s3://{bucket}/{key}",
            "AttributeNames": ["source-ref", "bounding-box"]}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/links/models/"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
    }


def _settings(s3: Any, bucket: str) -> dict[str, Any]:
    s3.create_bucket(Bucket=GT_BUCKET)
    images = sorted((SAMPLE / "images").glob("*.jpg"))[:3]
    for path in images:
        s3.upload_file(str(path), GT_BUCKET, f"raw/{path.name}")
    labeling = {
        "job_name": LABELING_JOB, "role_arn": ROLE, "output_path": f"s3://{GT_BUCKET}/labels/output/",
        "label_attribute": "bounding-box", "labels": json.loads((SAMPLE / "classes.json").read_text()),
        "task_description": "Draw a box around every shape", "inputs_prefix": f"s3://{GT_BUCKET}/labels/inputs/",
        "image_uris": [f"s3://{GT_BUCKET}/raw/{path.name}" for path in images], "workteam_arn": TEAM,
    }
    return {"training": _training_config(s3, bucket, JOB), "endpoint": ENDPOINT, "labeling": labeling}


def _model_and_config(sm: Any, bucket: str) -> None:
    sm.create_model(ModelName=ENDPOINT, ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/links/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": ENDPOINT,
        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])


@pytest.fixture(scope="module")
def served(airflow_db, emulator, tmp_path_factory):
    """Run the DAG once on the emulator; yield (its run, the DAG as the api-server deserializes it)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.serialization.serialized_objects import DagSerialization

    from local_aws import airflow_env

    saved = {key: os.environ.get(key) for key in airflow_env(emulator.endpoint_url)}
    os.environ.update(airflow_env(emulator.endpoint_url))
    try:
        kwargs = {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1"}
        s3, sm = boto3.client("s3", **kwargs), boto3.client("sagemaker", **kwargs)
        bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        _model_and_config(sm, bucket)
        dag_file = tmp_path_factory.mktemp("sv_links_emulator") / "sv_links_emulator.py"
        dag_file.write_text(LINKS_DAG.format(settings=_settings(s3, bucket)))
        bag = DagBag(dag_folder=str(dag_file))
        assert not bag.import_errors, bag.import_errors
        DagBundlesManager().sync_bundles_to_db()
        sync_bag_to_db(bag, "dags-folder", None)
        dag = bag.get_dag("sv_links_emulator")
        run = dag.test()
        yield run, DagSerialization.from_dict(DagSerialization.to_dict(dag))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _links(served: Any, task_id: str) -> dict[str, str | None]:
    """What GET .../taskInstances/{task_id}/links answers: the deserialized task's links from the DB."""
    run, dag = served
    ti = next(ti for ti in run.get_task_instances() if ti.task_id == task_id)
    task = dag.get_task(task_id)
    return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}


def test_the_run_succeeds_and_the_rollback_skips(served):
    run, _ = served
    states = _states(run)
    assert states == {"train": "success", "deploy": "success", "rollback": "skipped", "label": "success",
                      "wait_for_labels": "success"}, states


def test_the_training_task_links_its_job_and_its_logs(served):
    links = _links(served, "train")
    assert links["SageMaker Training Job"] == f"{CONSOLE}/sagemaker/home?region=us-east-1#/jobs/{JOB}"
    assert links["Training Logs (CloudWatch)"] == (
        f"{CONSOLE}/cloudwatch/home?region=us-east-1#logsV2:log-groups/log-group/"
        f"$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{JOB}")
    assert set(links) == {"SageMaker Training Job", "Training Logs (CloudWatch)"}


def test_the_deploy_and_rollback_tasks_link_the_endpoint(served):
    expected = f"{CONSOLE}/sagemaker/home?region=us-east-1#/endpoints/{ENDPOINT}"
    assert _links(served, "deploy") == {"SageMaker Endpoint": expected}
    assert _links(served, "rollback") == {"SageMaker Endpoint": expected}  # skipped, still linked


def test_the_labeling_operator_and_sensor_link_the_labeling_job(served):
    expected = f"{CONSOLE}/sagemaker/groundtruth?region=us-east-1#/labeling-jobs/details/{LABELING_JOB}"
    assert _links(served, "label") == {"SageMaker Labeling Job": expected}
    assert _links(served, "wait_for_labels") == {"SageMaker Labeling Job": expected}


def test_the_api_server_serves_the_url_the_worker_stored_under_the_links_xcom_key(served):
    """The served task's link is Airflow's XComOperatorLink on the link's own xcom_key: the api-server
    never builds a link itself, so nothing there needs the Task SDK or Airflow's tables."""
    from airflow.serialization.definitions.operatorlink import XComOperatorLink

    from sagemaker_vision.links.sagemaker import SageMakerTrainingJobLink

    _, dag = served
    link = dag.get_task("train").operator_extra_link_dict["SageMaker Training Job"]
    assert isinstance(link, XComOperatorLink)
    assert link.xcom_key == SageMakerTrainingJobLink().xcom_key == "_link_SageMakerTrainingJobLink"


def _wait_for_status(sm: Any, name: str, status: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while sm.describe_training_job(TrainingJobName=name)["TrainingJobStatus"] != status:
        assert time.monotonic() < deadline, f"{name} never reached {status}"
        time.sleep(0.2)


def test_the_training_links_name_a_retrys_timestamped_job_while_the_task_is_deferred(control, aws_clients):
    """The provider renames a retry's job (``<name>-<timestamp>``) inside its execute: the links name
    that job, and are persisted before the task defers, so they show while it waits; a later try
    that resumes the wait (the reuse path) persists the same job."""
    from unittest import mock

    from airflow.providers.common.compat.sdk import TaskDeferred

    from sagemaker_vision.links.sagemaker import SageMakerTrainingJobLink
    from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator

    sm, bucket = aws_clients["sagemaker"], os.environ["SAGEMAKER_VISION_BUCKET"]
    name = "links-retry-2026-12-01-000000"
    control.add_fault(kind="training_failure", name_prefix=name, reason="InternalServerError: emulated", count=1)
    control.set_duration("training", 3600, name_prefix=name)  # the retry's job stays InProgress
    config = _training_config(aws_clients["s3"], bucket, name)
    sm.create_training_job(**config)  # the run's first job, which fails
    _wait_for_status(sm, name, "Failed")

    def deferred_try() -> tuple[Any, dict[str, Any]]:
        ti = mock.MagicMock()
        op = ObjectDetectionTrainingOperator(task_id="train", config=dict(config), deferrable=True,
                                             check_interval=1, print_log=False)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute({"ti": ti})
        return deferred.value.trigger, {c.kwargs["key"]: c.kwargs["value"] for c in ti.xcom_push.call_args_list}

    try:
        trigger, pushed = deferred_try()
        jobs = [s["TrainingJobName"] for s in sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]]
        (retry,) = [job for job in jobs if job != name]
        assert trigger.job_name == retry
        fields = {"region_name": "us-east-1", "aws_domain": "aws.amazon.com", "job_name": retry}
        assert pushed["sagemaker_training_job"] == fields
        assert pushed["sagemaker_training_logs"] == fields
        assert SageMakerTrainingJobLink().format_link(**fields) == (
            f"{CONSOLE}/sagemaker/home?region=us-east-1#/jobs/{retry}")

        resumed_trigger, resumed = deferred_try()  # the next try finds the retry's job running
        assert resumed_trigger.job_name == retry
        assert resumed["sagemaker_training_job"] == resumed["sagemaker_training_logs"] == fields
    finally:
        for job in sm.list_training_jobs(NameContains=name)["TrainingJobSummaries"]:
            if job["TrainingJobStatus"] == "InProgress":
                sm.stop_training_job(TrainingJobName=job["TrainingJobName"])
        control.clear_durations()
