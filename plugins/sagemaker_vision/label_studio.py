"""Shim: the Label Studio backend moved (issue 10) to ``core/label_studio`` (the pure part),
``hooks/label_studio`` (the REST API), ``operators/label_studio`` and ``triggers/label_studio``.
Removed by the lead."""

from sagemaker_vision.core.label_studio import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_PRESIGN_CONN_ID,
    IMAGE_EXTENSIONS,
    IMAGE_REFS,
    MAX_PRESIGN_SECONDS,
    PRESIGN_LIFETIME_SECONDS,
    READER_POLICY,
    RESUME_HINT,
    ImageRefs,
    ProjectProgress,
    TaskProgress,
    presigned_url_signer,
    rectangle_label_config,
    task_progress,
    task_s3_uri,
)
from sagemaker_vision.hooks.label_studio import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_CONN_ID,
    LabelStudioConnectionMissing,
    LabelStudioError,
    LabelStudioHook,
    connection_settings,
)
from sagemaker_vision.operators.label_studio import LabelStudioLabelingOperator  # noqa: F401  (shim)
