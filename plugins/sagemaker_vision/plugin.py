"""AirflowPlugin ``sagemaker_vision``: AWS console links on the tasks that start SageMaker work.

What a task shows (in the UI's task instance view, under "Links"):

==================================  ===================================================================
operator                            links
==================================  ===================================================================
provider SageMakerTrainingOperator  SageMaker Training Job; Training Logs (CloudWatch): the
and ObjectDetectionTrainingOperator ``/aws/sagemaker/TrainingJobs`` streams whose name starts with the job
provider SageMakerEndpointOperator  SageMaker Endpoint
package DeployEndpointOperator      SageMaker Endpoint
GroundTruthLabelingOperator/Sensor  SageMaker Labeling Job (``ground_truth.SageMakerLabelingJobLink``)
PipelineGroundTruthOperator         SageMaker Labeling Job (the pipeline's label.ground_truth task)
==================================  ===================================================================

How Airflow 3 builds a link that a plugin adds: the api-server deserializes the DAG, attaches the
plugin's link to each task whose operator class is in the link's ``operators``, and calls its
``get_link(operator, ti_key=...)`` itself, outside any task. There is no Task SDK there
(``XCom.get_value`` needs a supervisor), so these links read the metadata DB directly, as Airflow's
own ``XComOperatorLink`` does. The resource name comes from, in this order: what an operator
persisted for the link (``BaseAwsLink.persist``: the labeling operator does), the task's return
value (the job is done), the trigger it is deferred on (the job is running, and this is the name the
operator really used, a timestamped one included), and its rendered template fields (the job has
not started yet, or failed). The region is the task's ``region_name`` or else its connection's
(:func:`sagemaker_vision.config.connection_region`), which is where the operator created the job.

Everything that reaches a URL is checked first: a region, a console domain and a SageMaker name
(``[a-zA-Z0-9](-*[a-zA-Z0-9])*``), so an XCom or a rendered field written by a task can never turn a
link into something else. A link that cannot be built is empty (a greyed-out button), never an error.

The plain links (:class:`SageMakerTrainingJobLink`, :class:`SageMakerTrainingLogsLink`,
:class:`SageMakerEndpointLink`) are the provider's kind: an operator of this package can list one in
its own ``operator_extra_links`` and call ``persist(...)`` in ``execute``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.plugins_manager import AirflowPlugin
from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from sagemaker_vision.config import ConfigError, connection_region, validate_sagemaker_name
from sagemaker_vision.ground_truth import SageMakerLabelingJobLink

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey

log = logging.getLogger(__name__)

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# Commercial, China and GovCloud: the partitions BaseAwsLink knows a console domain for.
CONSOLE_DOMAINS = frozenset({"aws.amazon.com", "amazonaws.cn", "amazonaws-us-gov.com"})
REGION_RE = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")

# Operators each link is shown on, by import path. Airflow matches a plugin link to a task by its
# exact class, so a subclass needs its own line. A module of this package that does not exist yet
# is skipped; one that exists must define the class (a rename should fail loudly, here).
TRAINING_OPERATORS = (
    "airflow.providers.amazon.aws.operators.sagemaker.SageMakerTrainingOperator",
    "sagemaker_vision.training.ObjectDetectionTrainingOperator",
)
ENDPOINT_OPERATORS = (
    "airflow.providers.amazon.aws.operators.sagemaker.SageMakerEndpointOperator",
    "sagemaker_vision.deploy.DeployEndpointOperator",
    "sagemaker_vision.deploy.RollbackEndpointOperator",  # its UpdateEndpoint back to the previous config
)
LABELING_OPERATORS = (
    "sagemaker_vision.ground_truth.GroundTruthLabelingOperator",
    "sagemaker_vision.ground_truth.GroundTruthLabelingJobSensor",
    "sagemaker_vision.labeling.PipelineGroundTruthOperator",  # the pipeline's label.ground_truth task
)


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------


def validate_region(region: Any) -> str:
    """``region`` if it looks like an AWS region (``eu-west-1``, ``us-gov-west-1``); ValueError otherwise."""
    if not isinstance(region, str) or not REGION_RE.match(region):
        raise ValueError(f"{region!r} is not an AWS region")
    return region


def console_domain(region: str) -> str:
    """The console domain of the region's partition (``aws.amazon.com`` for commercial regions)."""
    import botocore.session

    partition = botocore.session.get_session().get_partition_for_region(validate_region(region))
    domain = BaseAwsLink.get_aws_domain(partition)
    if domain is None:
        raise ValueError(f"partition {partition!r} of {region} has no AWS console")
    return domain


def link_fields(region: str, **names: str) -> dict[str, str]:
    """What ``BaseAwsLink.persist`` stores and ``format_link`` reads: region, console domain, names."""
    return {"region_name": region, "aws_domain": console_domain(region), **names}


def console_escape(value: str) -> str:
    """A path or query value in the CloudWatch console's URL fragment: URL-encoded twice, ``%`` as ``$``.

    ``/aws/sagemaker/TrainingJobs`` becomes ``$252Faws$252Fsagemaker$252FTrainingJobs``, the form the
    console itself puts in its address bar (its own ``?`` and ``=`` are encoded once: ``$3F``, ``$3D``).
    """
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def _dig(value: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _first_str(*candidates: Any) -> str | None:
    return next((c for c in candidates if isinstance(c, str) and c), None)


@dataclass(frozen=True)
class TaskEvidence:
    """What the metadata DB holds about one task instance, as plain JSON values."""

    persisted: Any = None  # the link's own XCom (BaseAwsLink.persist)
    return_value: Any = None
    rendered: Mapping[str, Any] = field(default_factory=dict)  # rendered template fields
    trigger_kwargs: Mapping[str, Any] = field(default_factory=dict)  # while deferred
    trigger_classpath: str = ""


def training_job_name(evidence: TaskEvidence) -> str | None:
    """The training job of a SageMakerTrainingOperator task."""
    trigger = evidence.trigger_kwargs
    return _first_str(
        _dig(evidence.return_value, "Training", "TrainingJobName"),
        trigger.get("job_name") if str(trigger.get("job_type", "")).lower() == "training" else None,
        _dig(evidence.rendered, "config", "TrainingJobName"),
    )


def endpoint_name(evidence: TaskEvidence) -> str | None:
    """The endpoint of a SageMakerEndpointOperator or DeployEndpointOperator task."""
    trigger = evidence.trigger_kwargs
    config = _dig(evidence.rendered, "config")
    return _first_str(
        _dig(evidence.return_value, "Endpoint", "EndpointName"),  # provider operator
        _dig(evidence.return_value, "endpoint_name"),  # DeployEndpointOperator
        trigger.get("job_name") if str(trigger.get("job_type", "")).lower() == "endpoint" else None,
        _dig(evidence.rendered, "endpoint_name"),
        _dig(config, "Endpoint", "EndpointName"),  # provider config with Model/EndpointConfig/Endpoint
        _dig(config, "EndpointName"),  # provider config that is the endpoint request alone
    )


def labeling_job_name(evidence: TaskEvidence) -> str | None:
    """The labeling job of a Ground Truth labeling task (its operator also persists the link itself)."""
    deferred_on_job = evidence.trigger_classpath.endswith(".LabelingJobTrigger")
    return _first_str(evidence.trigger_kwargs.get("job_name") if deferred_on_job else None,
                      _dig(evidence.rendered, "job_name"))


def task_region(operator: Any, rendered: Mapping[str, Any]) -> str:
    """Where the task's operator created its resource: its ``region_name``, else its connection's."""
    region = rendered.get("region_name")
    if not region:
        region = getattr(operator, "region_name", None)
        if isinstance(region, str) and "{{" in region:
            region = None  # an unrendered template: the task has not run
    if region:
        return validate_region(region)
    conn_id = rendered.get("aws_conn_id") or getattr(operator, "aws_conn_id", "aws_default")
    return validate_region(connection_region(conn_id))


# --------------------------------------------------------------------------------------------
# The metadata DB (api-server side)
# --------------------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """An XCom column value as plain JSON; never instantiates Airflow-serialized classes."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def load_evidence(ti_key: TaskInstanceKey, link_key: str) -> TaskEvidence:
    """Read one task instance's link XCom, return value, rendered fields and trigger kwargs."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as RTIF
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:

        def xcom(key: str) -> Any:
            query = XComModel.get_many(
                key=key, run_id=ti_key.run_id, dag_ids=ti_key.dag_id, task_ids=ti_key.task_id,
                map_indexes=ti_key.map_index,
            ).with_only_columns(XComModel.value)
            return _json(session.scalar(query))

        rendered = session.scalar(
            select(RTIF.rendered_fields).where(
                RTIF.dag_id == ti_key.dag_id, RTIF.task_id == ti_key.task_id,
                RTIF.run_id == ti_key.run_id, RTIF.map_index == ti_key.map_index,
            )
        )
        trigger_id = session.scalar(
            select(TaskInstance.trigger_id).where(
                TaskInstance.dag_id == ti_key.dag_id, TaskInstance.task_id == ti_key.task_id,
                TaskInstance.run_id == ti_key.run_id, TaskInstance.map_index == ti_key.map_index,
            )
        )
        trigger = session.get(Trigger, trigger_id) if trigger_id is not None else None
        return TaskEvidence(
            persisted=xcom(link_key),
            return_value=xcom("return_value"),
            rendered=rendered if isinstance(rendered, Mapping) else {},
            trigger_kwargs=trigger.kwargs if trigger is not None else {},
            trigger_classpath=trigger.classpath if trigger is not None else "",
        )


# --------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------


class _CheckedAwsLink(BaseAwsLink):
    """A BaseAwsLink whose every URL part is validated and quoted; bad input gives no link."""

    name_fields: ClassVar[tuple[str, ...]] = ()

    def format_link(self, **kwargs: Any) -> str:
        try:
            values = {
                "region_name": validate_region(kwargs.get("region_name")),
                "aws_domain": kwargs.get("aws_domain"),
            }
            if values["aws_domain"] not in CONSOLE_DOMAINS:
                raise ValueError(f"{values['aws_domain']!r} is not an AWS console domain")
            for name_field in self.name_fields:
                values[name_field] = self.quote(validate_sagemaker_name(kwargs.get(name_field), name_field))
        except (ConfigError, ValueError) as error:
            log.warning("No %s link: %s", self.name, error)
            return ""
        return self.format_str.format(**values)

    @staticmethod
    def quote(value: str) -> str:
        return quote(value, safe="")


class SageMakerTrainingJobLink(_CheckedAwsLink):
    """The training job's page in the SageMaker console."""

    name = "SageMaker Training Job"
    key = "sagemaker_training_job"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/jobs/{job_name}"
    name_fields = ("job_name",)


class SageMakerTrainingLogsLink(_CheckedAwsLink):
    """The training job's log streams (``<job>/algo-<n>-<epoch>``) in the CloudWatch console."""

    name = "Training Logs (CloudWatch)"
    key = "sagemaker_training_logs"
    format_str = (
        BASE_AWS_CONSOLE_LINK + "/cloudwatch/home?region={region_name}#logsV2:log-groups/log-group/"
        + console_escape(TRAINING_LOG_GROUP) + "$3FlogStreamNameFilter$3D{job_name}"
    )
    name_fields = ("job_name",)
    quote = staticmethod(console_escape)


class SageMakerEndpointLink(_CheckedAwsLink):
    """The endpoint's page in the SageMaker console."""

    name = "SageMaker Endpoint"
    key = "sagemaker_endpoint"
    format_str = BASE_AWS_CONSOLE_LINK + "/sagemaker/home?region={region_name}#/endpoints/{endpoint_name}"
    name_fields = ("endpoint_name",)


class _ApiServerLink(_CheckedAwsLink):
    """Built by the api-server from the metadata DB (see the module docstring)."""

    @staticmethod
    def resource_name(evidence: TaskEvidence) -> str | None:
        raise NotImplementedError

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        try:
            evidence = load_evidence(ti_key, self.key)
            if isinstance(evidence.persisted, Mapping):
                return self.format_link(**evidence.persisted)
            name = self.resource_name(evidence)
            if not name:
                return ""  # nothing started yet
            region = task_region(operator, evidence.rendered)
            return self.format_link(**link_fields(region, **{self.name_fields[0]: name}))
        except Exception:  # a link must never break the task view
            log.warning("Could not build the %r link of %s", self.name, ti_key, exc_info=True)
            return ""


def operator_classes(paths: tuple[str, ...]) -> list[type]:
    """Import the operator classes at ``paths``, skipping modules of this package not written yet."""
    classes = []
    for path in paths:
        module_name, _, class_name = path.rpartition(".")
        if module_name.startswith("sagemaker_vision.") and importlib.util.find_spec(module_name) is None:
            log.debug("%s does not exist; no links for %s", module_name, class_name)
            continue
        classes.append(getattr(importlib.import_module(module_name), class_name))
    return classes


class TrainingJobConsoleLink(_ApiServerLink, SageMakerTrainingJobLink):
    operators = operator_classes(TRAINING_OPERATORS)
    resource_name = staticmethod(training_job_name)


class TrainingLogsConsoleLink(_ApiServerLink, SageMakerTrainingLogsLink):
    operators = operator_classes(TRAINING_OPERATORS)
    resource_name = staticmethod(training_job_name)


class EndpointConsoleLink(_ApiServerLink, SageMakerEndpointLink):
    operators = operator_classes(ENDPOINT_OPERATORS)
    resource_name = staticmethod(endpoint_name)


class LabelingJobConsoleLink(_ApiServerLink, SageMakerLabelingJobLink):
    """Same name as the operators' own link, so the api-server uses this one, which also works
    before the operator persisted the link or with ``do_xcom_push=False``."""

    operators = operator_classes(LABELING_OPERATORS)
    name_fields = ("job_name",)
    resource_name = staticmethod(labeling_job_name)


class SageMakerVisionPlugin(AirflowPlugin):
    """Console links for training jobs, their logs, endpoints and labeling jobs."""

    name = "sagemaker_vision"
    operator_extra_links = [
        TrainingJobConsoleLink(),
        TrainingLogsConsoleLink(),
        EndpointConsoleLink(),
        LabelingJobConsoleLink(),
    ]


__all__ = [
    "SageMakerEndpointLink",
    "SageMakerTrainingJobLink",
    "SageMakerTrainingLogsLink",
    "SageMakerVisionPlugin",
    "TaskEvidence",
    "console_domain",
    "console_escape",
    "endpoint_name",
    "labeling_job_name",
    "link_fields",
    "load_evidence",
    "task_region",
    "training_job_name",
]
