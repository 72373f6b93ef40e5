"""The trigger form of the pipeline DAGs: one Airflow ``Param`` per spec of ``core/params.py``.

Each param's JSON schema (type, bounds, allowed values, pattern) comes from the same spec that
``PipelineConfig`` validates with, so the form refuses what the config would refuse. A pipeline
file's DAGs show only the per-run params (``PER_RUN_PARAMS``), with the file's values as
defaults; the file's other settings travel with the DAG (its ``pipeline_settings`` macro, read by
``hooks/config.py``), not as params.
"""

from __future__ import annotations

from airflow.sdk import Param

from sagemaker_vision.core.params import (  # noqa: F401  (param_defaults, default_poll_seconds: re-exported)
    PER_RUN_PARAMS,
    ParamSpec,
    default_poll_seconds,
    param_defaults,
    param_specs,
)
from sagemaker_vision.core.pipeline_file import PipelineDefinition

_SPEC_DEFAULT = object()


def to_param(spec: ParamSpec, default: object = _SPEC_DEFAULT) -> Param:
    """The form field of ``spec``: its default (or a pipeline file's value), description and JSON schema."""
    value = spec.default if default is _SPEC_DEFAULT else default
    return Param(value, description=spec.description, **spec.schema())


def pipeline_form(definition: PipelineDefinition) -> dict[str, Param]:
    """The params of a pipeline file's training DAGs: the per-run fields, defaulting to the file's values."""
    specs = param_specs()
    return {name: to_param(specs[name], value) for name, value in definition.run_settings.items()}


def pipeline_params() -> dict[str, Param]:
    """Params of ``<pipeline>.pipeline``, grouped into sections of the trigger form."""
    return {name: to_param(spec) for name, spec in param_specs().items()}


LOAD_TEST_REPORTS = "load-tests"


def default_load_test_report_prefix(definition: PipelineDefinition | None = None) -> str:
    """The load-test DAG's default report location: ``s3://<bucket>/<prefix>/load-tests/``.

    Under the pipeline's bucket and prefix, the only place the Airflow role may write
    (include/iam/airflow-role-policy.json); a location beside the prefix would be refused by AWS
    when the report is written, at the end of the test.
    """
    values = param_defaults() if definition is None else definition.settings
    return f"s3://{values['bucket']}/{values['prefix']}/{LOAD_TEST_REPORTS}/"
