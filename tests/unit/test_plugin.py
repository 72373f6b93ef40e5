"""The sagemaker_vision AirflowPlugin: console links, how Airflow loads them, and how they resolve.

Pure parts (URLs, name and region resolution) run without Airflow's DB; the last tests run a small
DAG with ``dag.test()`` and read its task instances back the way the api-server does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagemaker_vision import plugin as sv_plugin
from sagemaker_vision.plugin import (
    EndpointConsoleLink,
    LabelingJobConsoleLink,
    SageMakerEndpointLink,
    SageMakerTrainingJobLink,
    SageMakerTrainingLogsLink,
    SageMakerVisionPlugin,
    TaskEvidence,
    TrainingJobConsoleLink,
    TrainingLogsConsoleLink,
    console_escape,
    endpoint_name,
    labeling_job_name,
    link_fields,
    task_region,
    training_job_name,
)

ROOT = Path(__file__).resolve().parents[2]
LINK_NAMES = {"SageMaker Training Job", "Training Logs (CloudWatch)", "SageMaker Endpoint", "SageMaker Labeling Job"}


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "console"),
    [
        ("eu-west-1", "https://console.aws.amazon.com"),
        ("ap-southeast-2", "https://console.aws.amazon.com"),
        ("cn-north-1", "https://console.amazonaws.cn"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com"),
    ],
)
def test_each_link_builds_the_console_url_of_its_region(region, console):
    job = "shapes-detector-20260105T000000"
    assert SageMakerTrainingJobLink().format_link(**link_fields(region, job_name=job)) == (
        f"{console}/sagemaker/home?region={region}#/jobs/{job}"
    )
    assert SageMakerTrainingLogsLink().format_link(**link_fields(region, job_name=job)) == (
        f"{console}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
        f"$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{job}"
    )
    assert SageMakerEndpointLink().format_link(**link_fields(region, endpoint_name="shapes-detector")) == (
        f"{console}/sagemaker/home?region={region}#/endpoints/shapes-detector"
    )
    assert LabelingJobConsoleLink().format_link(**link_fields(region, job_name="shapes-labels-1")) == (
        f"{console}/sagemaker/groundtruth?region={region}#/labeling-jobs/details/shapes-labels-1"
    )


def test_console_escape_writes_what_the_cloudwatch_console_writes():
    assert console_escape("/aws/sagemaker/TrainingJobs") == "$252Faws$252Fsagemaker$252FTrainingJobs"
    assert console_escape("job/algo-1") == "job$252Falgo-1"


@pytest.mark.parametrize(
    "fields",
    [
        {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "job_name": "x/../y"},
        {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "job_name": "job#frag"},
        {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "job_name": "a" * 64},
        {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com", "job_name": ""},
        {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com"},
        {"region_name": "eu-west-1.evil.example", "aws_domain": "aws.amazon.com", "job_name": "ok"},
        {"region_name": "", "aws_domain": "aws.amazon.com", "job_name": "ok"},
        {"region_name": "eu-west-1", "aws_domain": "evil.example/", "job_name": "ok"},
        {"region_name": "eu-west-1", "aws_domain": None, "job_name": "ok"},
    ],
)
def test_a_bad_part_gives_no_link_rather_than_a_wrong_one(fields):
    for link in (SageMakerTrainingJobLink(), SageMakerTrainingLogsLink(), LabelingJobConsoleLink()):
        assert link.format_link(**fields) == ""


def test_link_fields_refuse_what_is_not_a_region():
    with pytest.raises(ValueError, match="not an AWS region"):
        link_fields("https://evil.example", job_name="ok")


# --------------------------------------------------------------------------------------------
# Which name, which region
# --------------------------------------------------------------------------------------------

TRAINING_CONFIG = {"config": {"TrainingJobName": "od-rendered", "RoleArn": "arn:aws:iam::1:role/r"}}


def test_training_job_name_prefers_the_result_then_the_trigger_then_the_rendered_config():
    done = TaskEvidence(
        return_value={"Training": {"TrainingJobName": "od-done"}},
        trigger_kwargs={"job_name": "od-deferred", "job_type": "Training"},
        rendered=TRAINING_CONFIG,
    )
    assert training_job_name(done) == "od-done"
    deferred = TaskEvidence(trigger_kwargs={"job_name": "od-deferred", "job_type": "Training"},
                            rendered=TRAINING_CONFIG)
    assert training_job_name(deferred) == "od-deferred"
    assert training_job_name(TaskEvidence(rendered=TRAINING_CONFIG)) == "od-rendered"
    # A trigger for something else, a truncated rendered config, nothing at all: no name.
    assert training_job_name(TaskEvidence(trigger_kwargs={"job_name": "ep", "job_type": "endpoint"})) is None
    assert training_job_name(TaskEvidence(rendered={"config": "Truncated. {'TrainingJobName': ..."})) is None
    assert training_job_name(TaskEvidence()) is None


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (TaskEvidence(return_value={"EndpointConfig": {}, "Endpoint": {"EndpointName": "ep-provider"}}),
         "ep-provider"),
        (TaskEvidence(return_value={"endpoint_name": "ep-deploy", "action": "updated"}), "ep-deploy"),
        (TaskEvidence(trigger_kwargs={"job_name": "ep-deferred", "job_type": "endpoint"}), "ep-deferred"),
        (TaskEvidence(rendered={"endpoint_name": "ep-field"}), "ep-field"),
        (TaskEvidence(rendered={"config": {"Model": {}, "Endpoint": {"EndpointName": "ep-nested"}}}), "ep-nested"),
        (TaskEvidence(rendered={"config": {"EndpointName": "ep-flat", "EndpointConfigName": "c"}}), "ep-flat"),
        (TaskEvidence(trigger_kwargs={"job_name": "od-1", "job_type": "Training"}), None),
        (TaskEvidence(), None),
    ],
)
def test_endpoint_name_reads_the_provider_and_the_package_operator(evidence, expected):
    assert endpoint_name(evidence) == expected


def test_labeling_job_name_from_its_trigger_or_the_rendered_field():
    deferred = TaskEvidence(trigger_kwargs={"job_name": "lab-2"}, rendered={"job_name": "x"},
                            trigger_classpath="sagemaker_vision.triggers.LabelingJobTrigger")
    assert labeling_job_name(deferred) == "lab-2"
    assert labeling_job_name(TaskEvidence(rendered={"job_name": "lab-1"})) == "lab-1"
    # Deferred on something else (Label Studio's trigger): its kwargs name no labeling job.
    other = TaskEvidence(trigger_kwargs={"job_name": "not-a-job"},
                         trigger_classpath="sagemaker_vision.triggers.LabelStudioTrigger")
    assert labeling_job_name(other) is None
    assert labeling_job_name(TaskEvidence()) is None


class _Op:
    """Stands for the serialized operator the api-server passes to ``get_link``."""

    def __init__(self, aws_conn_id: str | None = "aws_default", region_name: str | None = None):
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name


@pytest.fixture
def eu_connection(monkeypatch):
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": "eu-west-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_SV_LINKS_EU", json.dumps(conn))
    return "sv_links_eu"


def test_region_is_the_tasks_region_name_else_its_connections(eu_connection, monkeypatch):
    assert task_region(_Op(eu_connection), {"region_name": "ap-south-1"}) == "ap-south-1"
    assert task_region(_Op(eu_connection, region_name="us-west-2"), {}) == "us-west-2"
    # An unrendered template on the serialized operator says nothing: ask the connection.
    assert task_region(_Op(eu_connection, region_name="{{ params.region }}"), {}) == "eu-west-1"
    assert task_region(_Op("aws_default"), {"aws_conn_id": eu_connection}) == "eu-west-1"
    bad = {"conn_type": "aws", "extra": {"region_name": "localhost"}}  # botocore accepts it
    monkeypatch.setenv("AIRFLOW_CONN_SV_LINKS_BAD", json.dumps(bad))
    with pytest.raises(ValueError, match="not an AWS region"):
        task_region(_Op("sv_links_bad"), {})


# --------------------------------------------------------------------------------------------
# The plugin in Airflow
# --------------------------------------------------------------------------------------------


def _operator_paths(link) -> set[str]:
    return {f"{op.__module__}.{op.__name__}" for op in link.operators}


def test_plugin_declares_its_links_on_the_right_operators():
    links = {link.name: link for link in SageMakerVisionPlugin.operator_extra_links}
    assert set(links) == LINK_NAMES
    training = {"airflow.providers.amazon.aws.operators.sagemaker.SageMakerTrainingOperator",
                "sagemaker_vision.training.ObjectDetectionTrainingOperator"}
    assert _operator_paths(links["SageMaker Training Job"]) == training
    assert _operator_paths(links["Training Logs (CloudWatch)"]) == training
    assert _operator_paths(links["SageMaker Endpoint"]) == {
        "airflow.providers.amazon.aws.operators.sagemaker.SageMakerEndpointOperator",
        "sagemaker_vision.deploy.DeployEndpointOperator",
        "sagemaker_vision.deploy.RollbackEndpointOperator",
    }
    assert _operator_paths(links["SageMaker Labeling Job"]) == {
        "sagemaker_vision.ground_truth.GroundTruthLabelingOperator",
        "sagemaker_vision.ground_truth.GroundTruthLabelingJobSensor",
        "sagemaker_vision.labeling.PipelineGroundTruthOperator",
    }
    # Same name as the operators' own link, so the api-server uses the plugin's.
    from sagemaker_vision.ground_truth import GroundTruthLabelingOperator

    assert {link.name for link in GroundTruthLabelingOperator.operator_extra_links} <= set(links)


def test_operator_classes_skips_a_package_module_not_written_yet_and_fails_on_a_missing_class():
    assert sv_plugin.operator_classes(("sagemaker_vision.not_written_yet.SomeOperator",)) == []
    with pytest.raises(AttributeError):
        sv_plugin.operator_classes(("sagemaker_vision.ground_truth.NoSuchOperator",))


def test_airflows_loader_loads_the_plugin_from_a_plugins_file(tmp_path):
    """What the loader does with a plugins/*.py that imports the plugin from the package."""
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    (tmp_path / "sv_plugin_entry.py").write_text("from sagemaker_vision.plugin import SageMakerVisionPlugin\n")
    plugins, errors = _load_plugins_from_plugin_directory(plugins_folder=str(tmp_path), load_examples=False)
    assert errors == {}
    (loaded,) = plugins
    assert loaded.name == "sagemaker_vision"
    assert {link.name for link in loaded.operator_extra_links} == LINK_NAMES


def test_the_plugins_folder_registers_the_plugin():
    """airflow.plugins_manager on the project's plugins/ (what every Airflow component loads)."""
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert errors == {}, errors
    names = [p.name for p in plugins]
    assert "sagemaker_vision" in names, (
        f"plugins/ registers {names}: add plugins/sagemaker_vision_plugin.py with "
        "`from sagemaker_vision.plugin import SageMakerVisionPlugin`"
    )
    assert {link.name for link in plugins_manager.get_operator_extra_links()} >= LINK_NAMES


def _kinds() -> dict[str, tuple[type, ...]]:
    """Which operators start which resource: the links their tasks must carry."""
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerEndpointOperator, SageMakerTrainingOperator

    from sagemaker_vision.deploy import DeployEndpointOperator
    from sagemaker_vision.ground_truth import GroundTruthLabelingJobSensor, GroundTruthLabelingOperator
    from sagemaker_vision.labeling import PipelineGroundTruthOperator

    return {
        "training": (SageMakerTrainingOperator,),
        "endpoint": (SageMakerEndpointOperator, DeployEndpointOperator),
        "labeling": (GroundTruthLabelingOperator, GroundTruthLabelingJobSensor, PipelineGroundTruthOperator),
    }


KIND_LINKS = {
    "training": {"SageMaker Training Job", "Training Logs (CloudWatch)"},
    "endpoint": {"SageMaker Endpoint"},
    "labeling": {"SageMaker Labeling Job"},
}


def test_the_api_server_attaches_the_links_to_every_dag_task_that_starts_sagemaker_work(airflow_db, monkeypatch):
    """Round-trip each DAG of dags/ through serialization as the api-server does, with this plugin.

    Airflow matches plugin links by exact class: a new subclass of a SageMaker operator in a DAG
    fails here until the plugin lists it.
    """
    from airflow import plugins_manager
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    monkeypatch.setattr(plugins_manager, "get_operator_extra_links",
                        lambda: list(SageMakerVisionPlugin.operator_extra_links))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    kinds, seen = _kinds(), set()
    for dag_id, dag in bag.dags.items():
        served = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        for task in dag.tasks:
            expected = set().union(*(KIND_LINKS[k] for k, bases in kinds.items() if isinstance(task, bases)))
            seen.update(k for k, bases in kinds.items() if isinstance(task, bases))
            assert expected <= set(served.get_task(task.task_id).extra_links), (
                f"{dag_id}.{task.task_id} ({type(task).__module__}.{type(task).__name__}) lacks {expected}")
    assert seen == set(kinds), f"the DAGs have no task of kind {set(kinds) - seen}: the check proved nothing"
    pipeline = DagSerialization.from_dict(DagSerialization.to_dict(bag.get_dag("object_detection_pipeline")))
    train = next(t for t in pipeline.tasks if "SageMaker Training Job" in t.extra_links)
    assert isinstance(train.operator_extra_link_dict["SageMaker Training Job"], TrainingJobConsoleLink)


# --------------------------------------------------------------------------------------------
# get_link on a real metadata DB
# --------------------------------------------------------------------------------------------


LINKS_DAG = """
import pendulum
from airflow.sdk import DAG, BaseOperator, task


class Rendered(BaseOperator):
    \"\"\"Renders config/endpoint_name/job_name as the SageMaker operators do; returns nothing.\"\"\"

    template_fields = ("config", "endpoint_name", "job_name", "aws_conn_id", "region_name")

    def __init__(self, *, config=None, endpoint_name=None, job_name=None, aws_conn_id="aws_default",
                 region_name=None, **kwargs):
        super().__init__(**kwargs)
        self.config, self.endpoint_name, self.job_name = config, endpoint_name, job_name
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    def execute(self, context):
        return None


with DAG("sv_plugin_links", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:

    @task(task_id="train_done")
    def train_done():
        return {"Training": {"TrainingJobName": "od-done", "TrainingJobStatus": "Completed"}}

    train_done()
    Rendered(task_id="train_running", config={"TrainingJobName": "od-{{ run_id | length }}"},
             aws_conn_id="sv_links_eu")
    Rendered(task_id="deploy", config={"Endpoint": {"EndpointName": "ep-{{ dag.dag_id | length }}"}},
             region_name="{{ 'ap-south' ~ '-1' }}")
    Rendered(task_id="label", job_name="lab-1")
"""


@pytest.fixture(scope="module")
def finished_run(airflow_db, tmp_path_factory):
    """Run a small DAG whose tasks leave what SageMaker tasks leave: results and rendered fields.

    ``dag.test()`` runs only DAGs known to a bundle, so the DAG is parsed from a temporary file and
    recorded under the dags-folder bundle first, as the dag-processor would.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    dag_file = tmp_path_factory.mktemp("sv_links_dags") / "sv_plugin_links.py"
    dag_file.write_text(LINKS_DAG)
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    run = bag.get_dag("sv_plugin_links").test()
    assert run.state == "success", run.state
    return run


def _key(run, task_id: str):
    from airflow.models.taskinstancekey import TaskInstanceKey

    return TaskInstanceKey(dag_id=run.dag_id, task_id=task_id, run_id=run.run_id, try_number=1)


def test_get_link_builds_the_link_from_the_task_result(finished_run, eu_connection):
    link = TrainingJobConsoleLink().get_link(_Op(eu_connection), ti_key=_key(finished_run, "train_done"))
    assert link == "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/od-done"
    logs = TrainingLogsConsoleLink().get_link(_Op(eu_connection), ti_key=_key(finished_run, "train_done"))
    assert logs.endswith("#logsV2:log-groups/log-group/$252Faws$252Fsagemaker$252FTrainingJobs"
                         "$3FlogStreamNameFilter$3Dod-done")


def test_get_link_reads_rendered_fields_and_the_connections_region(finished_run, eu_connection):
    expected_job = f"od-{len(finished_run.run_id)}"
    link = TrainingJobConsoleLink().get_link(_Op("sv_links_eu"), ti_key=_key(finished_run, "train_running"))
    assert link == f"https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/{expected_job}"
    endpoint = EndpointConsoleLink().get_link(_Op(), ti_key=_key(finished_run, "deploy"))
    assert endpoint == (
        f"https://console.aws.amazon.com/sagemaker/home?region=ap-south-1#/endpoints/ep-{len('sv_plugin_links')}"
    )


def test_get_link_prefers_the_trigger_of_a_deferred_task(finished_run, eu_connection):
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    key = _key(finished_run, "train_running")
    with create_session() as session:
        trigger = Trigger(classpath="airflow.providers.amazon.aws.triggers.sagemaker.SageMakerTrigger",
                          kwargs={"job_name": "od-retry-20260101", "job_type": "Training"})
        session.add(trigger)
        session.flush()
        ti = session.scalar(select(TaskInstance).where(TaskInstance.dag_id == key.dag_id,
                                                       TaskInstance.task_id == key.task_id,
                                                       TaskInstance.run_id == key.run_id))
        ti.trigger_id = trigger.id
    try:
        link = TrainingJobConsoleLink().get_link(_Op("sv_links_eu"), ti_key=key)
        assert link == "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/od-retry-20260101"
    finally:
        with create_session() as session:
            ti = session.scalar(select(TaskInstance).where(TaskInstance.dag_id == key.dag_id,
                                                           TaskInstance.task_id == key.task_id,
                                                           TaskInstance.run_id == key.run_id))
            ti.trigger_id = None


def test_get_link_uses_what_an_operator_persisted_and_refuses_a_tampered_value(finished_run):
    from airflow.models.xcom import XComModel

    key = _key(finished_run, "label")
    persisted = {"region_name": "ap-southeast-2", "aws_domain": "aws.amazon.com", "job_name": "lab-persisted"}
    XComModel.set(key=LabelingJobConsoleLink.key, value=persisted, dag_id=key.dag_id, task_id=key.task_id,
                  run_id=key.run_id)
    assert LabelingJobConsoleLink().get_link(_Op(), ti_key=key) == (
        "https://console.aws.amazon.com/sagemaker/groundtruth?region=ap-southeast-2"
        "#/labeling-jobs/details/lab-persisted"
    )
    XComModel.set(key=LabelingJobConsoleLink.key, value={**persisted, "aws_domain": "evil.example/#"},
                  dag_id=key.dag_id, task_id=key.task_id, run_id=key.run_id)
    assert LabelingJobConsoleLink().get_link(_Op(), ti_key=key) == ""


def test_get_link_is_empty_when_nothing_names_a_resource(finished_run):
    # The labeling task rendered job_name, but nothing names an endpoint or a training job.
    assert EndpointConsoleLink().get_link(_Op(), ti_key=_key(finished_run, "label")) == ""
    assert TrainingJobConsoleLink().get_link(_Op(), ti_key=_key(finished_run, "no_such_task")) == ""
