"""Console links of the SageMaker work this package starts: the amazon provider's ``BaseAwsLink`` kind.

==================================  ===================================================================
operator                            links
==================================  ===================================================================
ObjectDetectionTrainingOperator     SageMaker Training Job; Training Logs (CloudWatch): the
                                    ``/aws/sagemaker/TrainingJobs`` streams whose name starts with the job
DeployEndpointOperator, Rollback…   SageMaker Endpoint
GroundTruthLabelingOperator/Sensor  SageMaker Labeling Job (PipelineGroundTruthOperator too: a subclass)
==================================  ===================================================================

How a link gets its URL, the provider's way: the operator lists the link in its
``operator_extra_links`` and, once it knows the resource's name (the training job's, a timestamped
retry name included; the endpoint's; the labeling job's), calls :func:`persist_links`, which stores
the region, console domain and name with ``BaseAwsLink.persist`` (an XCom of the task, key
``link.key``). At the end of each try, a deferral included, Airflow's task runner calls the link's
``get_link`` in the worker (``BaseAwsLink.get_link`` reads those fields back, ``format_link`` builds
the URL) and stores the URL under ``link.xcom_key``; the api-server shows that URL. Nothing reads
Airflow's own tables.

Everything that reaches a URL is checked first (:mod:`sagemaker_vision.core.console`): a region, a
console domain and a SageMaker name (``[a-zA-Z0-9](-*[a-zA-Z0-9])*``), so a value written by a task
can never turn a link into something else. A link that cannot be built is empty (a greyed-out
button), never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

from sagemaker_vision.core.console import (
    TRAINING_LOG_GROUP,
    console_escape,
    path_quote,
    validate_console_domain,
    validate_region,
)
from sagemaker_vision.core.validate import validate_sagemaker_name

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsGenericHook
    from airflow.sdk import BaseOperator, Context

log = logging.getLogger(__name__)


def console_domain(region: str) -> str:
    """The console domain of the region's partition (``aws.amazon.com`` for commercial regions)."""
    import botocore.session  # lazy: keeps DAG parsing fast

    partition = botocore.session.get_session().get_partition_for_region(validate_region(region))
    domain = BaseAwsLink.get_aws_domain(partition)
    if domain is None:
        raise ValueError(f"partition {partition!r} of {region} has no AWS console")
    return domain


def link_fields(region: str, **names: str) -> dict[str, str]:
    """What ``BaseAwsLink.persist`` stores and ``format_link`` reads: region, console domain, names."""
    return {"region_name": region, "aws_domain": console_domain(region), **names}


class _CheckedAwsLink(BaseAwsLink):
    """A BaseAwsLink whose every URL part is validated and quoted; bad input gives no link.

    ``operators`` stays empty: these links are listed by the operators themselves. (A plugin link
    that names an operator class replaces the operator's own link in the api-server, where
    ``get_link`` cannot read the task's XComs.)
    """

    name_fields: ClassVar[tuple[str, ...]] = ()

    def format_link(self, **kwargs: Any) -> str:
        try:
            values = {
                "region_name": validate_region(kwargs.get("region_name")),
                "aws_domain": validate_console_domain(kwargs.get("aws_domain")),
            }
            for name_field in self.name_fields:
                values[name_field] = self.quote(validate_sagemaker_name(kwargs.get(name_field), name_field))
        except ValueError as error:  # ConfigError is one
            log.warning("No %s link: %s", self.name, error)
            return ""
        return self.format_str.format(**values)

    @staticmethod
    def quote(value: str) -> str:
        return path_quote(value)


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


class SageMakerLabelingJobLink(_CheckedAwsLink):
    """The labeling job's page in the SageMaker Ground Truth console."""

    name = "SageMaker Labeling Job"
    key = "sagemaker_labeling_job"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/sagemaker/groundtruth?region={region_name}#/labeling-jobs/details/{job_name}"
    )
    name_fields = ("job_name",)


TRAINING_LINKS = (SageMakerTrainingJobLink, SageMakerTrainingLogsLink)
ALL_LINKS = (*TRAINING_LINKS, SageMakerEndpointLink, SageMakerLabelingJobLink)


def persist_links(context: Context, operator: BaseOperator, hook: AwsGenericHook[Any],
                  links: Sequence[type[BaseAwsLink]], **names: str) -> None:
    """Persist ``links`` of ``operator``'s task for the resource ``names`` name, in ``hook``'s region.

    The region and partition are those of the hook's client (``conn_region_name``,
    ``conn_partition``), where the operator creates the resource, as the provider's operators do.
    A link must never fail its task: an error here is logged and the link stays empty.
    """
    try:
        region, partition = hook.conn_region_name, hook.conn_partition
        for link in links:
            link.persist(context=context, operator=operator, region_name=region, aws_partition=partition,
                         **names)
    except Exception:  # noqa: BLE001 - the link is a convenience; the task goes on without it
        log.warning("Could not persist the console links %s of %s", [link.name for link in links], names,
                    exc_info=True)


__all__ = [
    "ALL_LINKS",
    "TRAINING_LINKS",
    "SageMakerEndpointLink",
    "SageMakerLabelingJobLink",
    "SageMakerTrainingJobLink",
    "SageMakerTrainingLogsLink",
    "console_domain",
    "link_fields",
    "persist_links",
]
