"""The console links (links/sagemaker.py): their URLs, what the operators persist, and how Airflow serves them.

Pure parts (URLs, checks) run without Airflow's DB; the last tests run a small DAG with ``dag.test()``
whose tasks persist link fields as the package's operators do, and read the links back the way the
api-server does. ``tests/integration/test_links_emulator.py`` runs the real operators.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagemaker_vision.core.console import console_escape, validate_region
from sagemaker_vision.links.sagemaker import (
    ALL_LINKS,
    TRAINING_LINKS,
    SageMakerEndpointLink,
    SageMakerLabelingJobLink,
    SageMakerTrainingJobLink,
    SageMakerTrainingLogsLink,
    link_fields,
    persist_links,
)

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
    assert SageMakerLabelingJobLink().format_link(**link_fields(region, job_name="shapes-labels-1")) == (
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
    for link in (SageMakerTrainingJobLink(), SageMakerTrainingLogsLink(), SageMakerLabelingJobLink()):
        assert link.format_link(**fields) == ""
    endpoint_fields = {("endpoint_name" if k == "job_name" else k): v for k, v in fields.items()}
    assert SageMakerEndpointLink().format_link(**endpoint_fields) == ""


def test_link_fields_refuse_what_is_not_a_region():
    with pytest.raises(ValueError, match="not an AWS region"):
        link_fields("https://evil.example", job_name="ok")
    with pytest.raises(ValueError, match="not an AWS region"):
        validate_region("localhost")  # botocore accepts it as a region name
    assert validate_region("us-gov-west-1") == "us-gov-west-1"


# --------------------------------------------------------------------------------------------
# What an operator persists: persist_links
# --------------------------------------------------------------------------------------------


class _TI:
    """The task instance of a context: records what the link pushes."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@pytest.fixture
def eu_connection(monkeypatch):
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": "eu-west-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_SV_LINKS_EU", json.dumps(conn))
    return "sv_links_eu"


def _operator(aws_conn_id: str, region_name: str | None = None, **kwargs: Any):
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator

    class _SageMakerWork(AwsBaseOperator[SageMakerHook]):
        aws_hook_class = SageMakerHook

    return _SageMakerWork(task_id="work", aws_conn_id=aws_conn_id, region_name=region_name, **kwargs)


def test_persist_links_stores_the_region_of_the_operators_client_else_its_connections(eu_connection):
    """The region is where the operator's hook creates the resource: its region_name, else its connection's."""
    ti = _TI()
    op = _operator(eu_connection, region_name="ap-south-1")
    persist_links({"ti": ti}, op, op.hook, TRAINING_LINKS, job_name="od-1")
    expected = {"region_name": "ap-south-1", "aws_domain": "aws.amazon.com", "job_name": "od-1"}
    assert ti.pushed == {"sagemaker_training_job": expected, "sagemaker_training_logs": expected}
    assert SageMakerTrainingJobLink().format_link(**ti.pushed["sagemaker_training_job"]) == (
        "https://console.aws.amazon.com/sagemaker/home?region=ap-south-1#/jobs/od-1")

    ti = _TI()
    op = _operator(eu_connection)
    persist_links({"ti": ti}, op, op.hook, (SageMakerEndpointLink,), endpoint_name="ep")
    assert ti.pushed == {"sagemaker_endpoint": {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com",
                                                "endpoint_name": "ep"}}

    ti = _TI()
    op = _operator(eu_connection, region_name="cn-north-1")
    persist_links({"ti": ti}, op, op.hook, (SageMakerLabelingJobLink,), job_name="lab")
    assert ti.pushed["sagemaker_labeling_job"]["aws_domain"] == "amazonaws.cn"


def test_persist_links_pushes_nothing_without_xcom_push_and_never_fails_the_task(eu_connection, monkeypatch):
    ti = _TI()
    op = _operator(eu_connection, do_xcom_push=False)
    persist_links({"ti": ti}, op, op.hook, ALL_LINKS, job_name="od-1", endpoint_name="ep")
    assert ti.pushed == {}

    class _Broken:
        @property
        def conn_region_name(self) -> str:
            raise RuntimeError("no client")

    op = _operator(eu_connection)
    persist_links({"ti": ti}, op, _Broken(), ALL_LINKS, job_name="od-1")  # type: ignore[arg-type]
    persist_links({}, op, op.hook, ALL_LINKS, job_name="od-1")  # no task instance at all
    assert ti.pushed == {}


# --------------------------------------------------------------------------------------------
# Which operators carry which links
# --------------------------------------------------------------------------------------------


def _kinds() -> dict[str, tuple[type, ...]]:
    """Which operators start which resource: the links their tasks must carry."""
    from sagemaker_vision.operators.deploy import DeployEndpointOperator
    from sagemaker_vision.operators.ground_truth import GroundTruthLabelingOperator
    from sagemaker_vision.operators.rollback import RollbackEndpointOperator
    from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator
    from sagemaker_vision.pipeline.label import PipelineGroundTruthOperator
    from sagemaker_vision.sensors.ground_truth import GroundTruthLabelingJobSensor

    return {
        "training": (ObjectDetectionTrainingOperator,),
        "endpoint": (DeployEndpointOperator, RollbackEndpointOperator),
        "labeling": (GroundTruthLabelingOperator, GroundTruthLabelingJobSensor, PipelineGroundTruthOperator),
    }


KIND_LINKS = {
    "training": {"SageMaker Training Job", "Training Logs (CloudWatch)"},
    "endpoint": {"SageMaker Endpoint"},
    "labeling": {"SageMaker Labeling Job"},
}


def test_each_operator_that_starts_sagemaker_work_lists_its_links():
    for kind, operators in _kinds().items():
        for operator in operators:
            names = {link.name for link in operator.operator_extra_links}
            assert names == KIND_LINKS[kind], f"{operator.__name__} lists {names}"
            assert all(isinstance(link, tuple(ALL_LINKS)) for link in operator.operator_extra_links), operator
    assert {link.name for link in (cls() for cls in ALL_LINKS)} == LINK_NAMES


def test_the_labeling_link_is_one_definition_and_no_link_is_attached_to_a_class_by_a_plugin():
    from sagemaker_vision.operators.ground_truth import GroundTruthLabelingOperator
    from sagemaker_vision.sensors.ground_truth import GroundTruthLabelingJobSensor

    for operator in (GroundTruthLabelingOperator, GroundTruthLabelingJobSensor):
        (link,) = operator.operator_extra_links
        assert type(link) is SageMakerLabelingJobLink, operator
    # A plugin link naming a class would replace the operator's own in the api-server.
    assert all(link.operators == [] for link in ALL_LINKS)


def test_the_api_server_attaches_the_links_to_every_dag_task_that_starts_sagemaker_work(airflow_db, monkeypatch):
    """Round-trip each DAG of dags/ through serialization as the api-server does, with this plugin.

    A new operator that starts SageMaker work in a DAG fails here until it lists its links.
    """
    from pathlib import Path

    from airflow import plugins_manager
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.definitions.operatorlink import XComOperatorLink
    from airflow.serialization.serialized_objects import DagSerialization

    from sagemaker_vision.plugin import SageMakerVisionPlugin

    monkeypatch.setattr(plugins_manager, "get_operator_extra_links",
                        lambda: list(SageMakerVisionPlugin.operator_extra_links))
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[3] / "dags"))
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
    pipeline = DagSerialization.from_dict(DagSerialization.to_dict(bag.get_dag("shapes-detector.pipeline")))
    train = next(t for t in pipeline.tasks if "SageMaker Training Job" in t.extra_links)
    link = train.operator_extra_link_dict["SageMaker Training Job"]
    assert isinstance(link, XComOperatorLink) and link.xcom_key == "_link_SageMakerTrainingJobLink"


# --------------------------------------------------------------------------------------------
# From persist to the api-server, on a real metadata DB
# --------------------------------------------------------------------------------------------


LINKS_DAG = """
import pendulum
from airflow.sdk import DAG, BaseOperator

from sagemaker_vision.links.sagemaker import SageMakerEndpointLink, SageMakerTrainingJobLink, SageMakerTrainingLogsLink


class Persisting(BaseOperator):
    \"\"\"Lists the links and persists ``fields`` for them, as the package's operators do (no AWS call).\"\"\"

    operator_extra_links = (SageMakerTrainingJobLink(), SageMakerTrainingLogsLink(), SageMakerEndpointLink())
    template_fields = ("fields",)

    def __init__(self, *, fields=None, fail=False, **kwargs):
        super().__init__(**kwargs)
        self.fields, self.fail = fields, fail

    def execute(self, context):
        if self.fields is not None:
            names = dict(self.fields)
            region = names.pop("region_name", "eu-west-1")
            for link in (SageMakerTrainingJobLink, SageMakerTrainingLogsLink, SageMakerEndpointLink):
                link.persist(context=context, operator=self, region_name=region, aws_partition="aws", **names)
        if self.fail:
            raise RuntimeError("the job failed after its name was known")


with DAG("sv_links_db", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
    Persisting(task_id="train", fields={"job_name": "od-{{ run_id | length }}"})
    Persisting(task_id="deploy", fields={"endpoint_name": "ep-1", "region_name": "ap-south-1"})
    Persisting(task_id="failed_train", fields={"job_name": "od-failed"}, fail=True)
    Persisting(task_id="tampered", fields={"job_name": "x/../evil"})
    Persisting(task_id="nothing_yet")
    Persisting(task_id="no_xcom", fields={"job_name": "od-2"}, do_xcom_push=False)
"""


@pytest.fixture(scope="module")
def finished_run(airflow_db, tmp_path_factory):
    """Run the DAG; yield (its run, the DAG as the api-server deserializes it).

    ``dag.test()`` runs only DAGs known to a bundle, so the DAG is parsed from a temporary file and
    recorded under the dags-folder bundle first, as the dag-processor would.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.serialization.serialized_objects import DagSerialization

    dag_file = tmp_path_factory.mktemp("sv_links_dags") / "sv_links_db.py"
    dag_file.write_text(LINKS_DAG)
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    dag = bag.get_dag("sv_links_db")
    run = dag.test()
    assert run.state == "failed", run.state  # failed_train fails on purpose
    return run, DagSerialization.from_dict(DagSerialization.to_dict(dag))


def _links(finished_run, task_id: str) -> dict[str, str | None]:
    """What GET .../taskInstances/{task_id}/links answers."""
    run, dag = finished_run
    ti = next(ti for ti in run.get_task_instances() if ti.task_id == task_id)
    task = dag.get_task(task_id)
    return {name: task.get_extra_links(ti, name) or None for name in task.extra_links}


def test_the_api_server_serves_the_url_built_from_what_the_task_persisted(finished_run):
    run, _ = finished_run
    job = f"od-{len(run.run_id)}"  # a rendered name
    links = _links(finished_run, "train")
    assert links["SageMaker Training Job"] == f"https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/{job}"
    assert (links["Training Logs (CloudWatch)"] or "").endswith(
        f"#logsV2:log-groups/log-group/$252Faws$252Fsagemaker$252FTrainingJobs$3FlogStreamNameFilter$3D{job}")
    assert links["SageMaker Endpoint"] is None  # nothing named an endpoint
    assert _links(finished_run, "deploy")["SageMaker Endpoint"] == (
        "https://console.aws.amazon.com/sagemaker/home?region=ap-south-1#/endpoints/ep-1")


def test_a_failed_task_keeps_the_link_of_the_job_it_named(finished_run):
    assert _links(finished_run, "failed_train")["SageMaker Training Job"] == (
        "https://console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/od-failed")


def test_no_link_for_a_tampered_name_nothing_persisted_or_no_xcom_push(finished_run):
    for task_id in ("tampered", "nothing_yet", "no_xcom"):
        links = _links(finished_run, task_id)
        assert set(links) == {"SageMaker Training Job", "Training Logs (CloudWatch)", "SageMaker Endpoint"}, links
        assert set(links.values()) == {None}, (task_id, links)
