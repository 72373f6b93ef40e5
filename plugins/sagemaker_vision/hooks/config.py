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
from sagemaker_vision.core.pipeline_file import SETTINGS_MACRO, effective_params
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.base import connection_region


def file_settings(context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pipeline file's settings of the task's DAG, set by its builder as a user-defined macro: they
    come with the DAG (as its code does), so a run never reads them from a worker's disk of its own,
    and no param carries them (a param the form hides must be a JSON-schema const, which a file edit
    would turn into a validation error for every run in flight)."""
    macros = getattr(context.get("dag"), "user_defined_macros", None) or {}
    return macros.get(SETTINGS_MACRO) or {}


def run_params(context: Mapping[str, Any]) -> dict[str, Any]:
    """The task's params over its pipeline file's settings."""
    return effective_params(context["params"], file_settings(context))


def pipeline_config(context: Mapping[str, Any], aws_conn_id: str | None = "aws_default") -> PipelineConfig:
    """Build from a task's context: its params, its run and the connection's region.

    A bad or unknown param fails the task at once (``AirflowFailException``), naming the param.
    A pipeline file's DAGs carry the file's settings (:func:`file_settings`), the params go over them.
    """
    try:
        params = run_params(context)
        region = params.get("region") or connection_region(aws_conn_id)
        return PipelineConfig.from_params(params, run=RunInfo.from_context(context), region=region)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from exc
