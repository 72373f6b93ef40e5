"""What every DAG of a pipeline file shares: its id, tags, docs, retries and params."""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import Param

from sagemaker_vision.core.pipeline_file import SETTINGS_MACRO, PipelineDefinition, endpoint_of
from sagemaker_vision.core.validate import SAGEMAKER_NAME_MAX, SAGEMAKER_NAME_PATTERN
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.pipeline.context import FAIL_FAST_RETRY_POLICY, pipeline_macro
from sagemaker_vision.pipeline.params import pipeline_form


def retry_delay_seconds() -> int:
    """Seconds between task retries: $SAGEMAKER_VISION_RETRY_DELAY_SECONDS (the emulator uses 1)."""
    return int(os.environ.get("SAGEMAKER_VISION_RETRY_DELAY_SECONDS", "30"))


def describe(definition: PipelineDefinition, doc_md: str) -> str:
    """The DAG's docs, headed by the pipeline and the file it comes from."""
    return f"**Pipeline `{definition.name}`**, defined by `{definition.path}`.\n\n{doc_md.strip()}\n"


def _common(definition: PipelineDefinition, kind: str, doc_md: str, tags: list[str]) -> dict[str, Any]:
    return {
        "dag_id": definition.dag_id(kind),
        "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
        "max_active_runs": 1,
        "doc_md": describe(definition, doc_md),
        "tags": ["sagemaker", "object-detection", f"pipeline:{definition.name}", *tags],
        "default_args": {"retries": 2, "retry_delay": pendulum.duration(seconds=retry_delay_seconds()),
                         "botocore_config": aws.BOTOCORE_CONFIG, "retry_policy": FAIL_FAST_RETRY_POLICY},
    }


def dag_kwargs(definition: PipelineDefinition, kind: str, doc_md: str, tags: list[str]) -> dict[str, Any]:
    """The training DAGs' (pipeline, retrain): the per-run form, the file's settings, the ``pipeline()`` macro."""
    return {**_common(definition, kind, doc_md, tags), "params": pipeline_form(definition),
            "user_defined_macros": {"pipeline": pipeline_macro(), SETTINGS_MACRO: definition.fixed_settings}}


def manual_dag_kwargs(definition: PipelineDefinition, kind: str, doc_md: str, tags: list[str],
                      params: dict[str, Any]) -> dict[str, Any]:
    """The manual DAGs' (load test, teardown, promote, right-size); they pass schedule=None.

    Their endpoint lease lives in the pipeline's bucket (and region, when the file names one), which
    they carry as the file's settings: a run of theirs and a run of the pipeline take the same lease object.
    """
    where = {"bucket": definition.settings["bucket"]}
    if definition.settings.get("region"):
        where["region"] = definition.settings["region"]
    return {**_common(definition, kind, doc_md, tags), "catchup": False,
            "params": params, "user_defined_macros": {SETTINGS_MACRO: where}}


def endpoint_name_param(definition: PipelineDefinition, description: str) -> Param:
    """The ``endpoint_name`` param of the manual DAGs: the pipeline's endpoint by default."""
    return Param(endpoint_of(definition), type="string", minLength=1, maxLength=SAGEMAKER_NAME_MAX,
                 pattern=SAGEMAKER_NAME_PATTERN, description=description)
