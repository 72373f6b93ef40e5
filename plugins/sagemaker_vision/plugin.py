"""AirflowPlugin ``sagemaker_vision``: registers this package's AWS console links.

The links themselves (:mod:`sagemaker_vision.links.sagemaker`) are listed by the operators that
start SageMaker work and persisted by them (``BaseAwsLink.persist``); Airflow shows them from what
the task stored. The plugin makes them known to Airflow (the api-server's Plugins page lists them)
without attaching them to any operator class: a plugin link on a class would replace the
operator's own link in the api-server, where the task's XComs cannot be read through the Task SDK.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from sagemaker_vision.links.sagemaker import ALL_LINKS


class SageMakerVisionPlugin(AirflowPlugin):
    """Console links for training jobs, their logs, endpoints and labeling jobs."""

    name = "sagemaker_vision"
    operator_extra_links = [link() for link in ALL_LINKS]


__all__ = ["SageMakerVisionPlugin"]
