"""Moved (issue 10): validators to :mod:`sagemaker_vision.core.validate`, names to
:mod:`sagemaker_vision.core.naming`, ``PipelineConfig`` to :mod:`sagemaker_vision.core.config`,
``connection_region`` to :mod:`sagemaker_vision.hooks.base`, ``pipeline_macro`` to
:mod:`sagemaker_vision.pipeline.context`. This shim is removed by the lead."""

from typing import Any

from sagemaker_vision.core.config import (  # noqa: F401  (shim, removed by the lead)
    DeploySpec,
    EndpointSpec,
    GroundTruthSpec,
    LabelStudioSpec,
    LoadTestSpec,
    PipelineConfig,
    RunInfo,
    TrainingSpec,
)
from sagemaker_vision.core.naming import (  # noqa: F401  (shim, removed by the lead)
    AWS_NAME_LIMITS,
    LABEL_STUDIO_TITLE_LENGTH,
    STAMP_FORMAT,
    DerivedName,
    check_derived_names,
    derived_names,
    labeling_job_name_of,
    max_pipeline_name_length,
    run_job_name,
)
from sagemaker_vision.core.validate import (  # noqa: F401  (shim, removed by the lead)
    BAD_IMAGE_POLICIES,
    BUCKET_RE,
    DEPLOYMENT_POLICIES,
    ENDPOINT_TYPES,
    IMAGE_ROOTS_ENV,
    INCLUDE_DIR,
    IP_LIKE_RE,
    LABEL_BACKENDS,
    PROJECT_ROOT,
    S3_KEY_MAX_BYTES,
    SAGEMAKER_NAME_MAX,
    SAGEMAKER_NAME_RE,
    SERVERLESS_MAX_CONCURRENCY,
    SERVERLESS_MEMORY_MB,
    UNSAFE_KEY_CHAR_RE,
    ConfigError,
    check_local_image_source,
    image_roots,
    parse_s3_uri,
    resolve_local_path,
    s3_key_problem,
    unsafe_key_character,
    validate_bucket,
    validate_prefix,
    validate_sagemaker_name,
)


def __getattr__(name: str) -> Any:
    if name == "connection_region":
        # lazy: needs Airflow; core modules not yet moved off this shim must not load it
        from sagemaker_vision.hooks.base import connection_region

        return connection_region
    if name == "pipeline_macro":
        # lazy: needs Airflow; core modules not yet moved off this shim must not load it
        from sagemaker_vision.pipeline.context import pipeline_macro

        return pipeline_macro
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
