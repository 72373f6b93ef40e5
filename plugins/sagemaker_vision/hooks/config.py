"""A task's ``PipelineConfig``: from its params, its run and its AWS connection's region.

Here, below the operators and the pipeline, because both build it (the lease operator and every
task); the region is the one thing that needs the Airflow connection. Config errors cannot be
fixed by a retry, so a bad or unknown param fails the task at once (``AirflowFailException``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.pipeline_file import effective_params
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.base import connection_region


def pipeline_config(context: Mapping[str, Any], aws_conn_id: str | None = "aws_default") -> PipelineConfig:
    """Build from a task's context: its params, its run and the connection's region.

    A bad or unknown param fails the task at once (``AirflowFailException``), naming the param.
    A pipeline file's DAGs carry the file's settings in one hidden param, unfolded here.
    """
    try:
        params = effective_params(context["params"])
        region = params.get("region") or connection_region(aws_conn_id)
        return PipelineConfig.from_params(params, run=RunInfo.from_context(context), region=region)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
