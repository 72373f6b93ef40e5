"""The trigger form of the pipeline DAGs: one Airflow ``Param`` per spec of ``core/params.py``.

Each param's JSON schema (type, bounds, allowed values, pattern) comes from the same spec that
``PipelineConfig`` validates with, so the form refuses what the config would refuse.
"""

from __future__ import annotations

from airflow.sdk import Param

from sagemaker_vision.core.params import (  # noqa: F401  (param_defaults, default_poll_seconds: re-exported)
    ParamSpec,
    default_poll_seconds,
    param_defaults,
    param_specs,
)


def to_param(spec: ParamSpec) -> Param:
    """The form field of ``spec``: its default, description and JSON schema (with its section)."""
    return Param(spec.default, description=spec.description, **spec.schema())


def pipeline_params() -> dict[str, Param]:
    """Params of ``object_detection_pipeline``, grouped into sections of the trigger form."""
    return {name: to_param(spec) for name, spec in param_specs().items()}


LOAD_TEST_REPORTS = "load-tests"


def default_load_test_report_prefix() -> str:
    """``endpoint_load_test``'s default report location: ``s3://<bucket>/<prefix>/load-tests/``.

    Under the pipeline's default bucket and prefix, the only place the Airflow role may write
    (include/iam/airflow-role-policy.json); a location beside the prefix would be refused by AWS
    when the report is written, at the end of the test.
    """
    defaults = param_defaults()
    return f"s3://{defaults['bucket']}/{defaults['prefix']}/{LOAD_TEST_REPORTS}/"
