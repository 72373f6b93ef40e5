"""Moved (issue 10): the pure checks to :mod:`sagemaker_vision.core.images`, the stage, reports and
smoke image to :mod:`sagemaker_vision.pipeline.images`; this shim is removed by the lead."""

from sagemaker_vision.core.images import (  # noqa: F401  (shim, removed by the lead)
    CONTENT_TYPES,
    GROUND_TRUTH_MAX_BYTES,
    IMAGE_FORMATS,
    MAX_BYTES_BY_ENDPOINT,
    MAX_LISTED,
    MAX_PIXELS,
    REALTIME_MAX_BYTES,
    REPORT_NAME,
    SERVERLESS_MAX_BYTES,
    UNLABELED_REPORT_NAME,
    ImageCheck,
    ImageValidationError,
    MiB,
    SmokeImage,
    check_image,
    check_name,
    max_bytes_for,
)
from sagemaker_vision.pipeline.images import (  # noqa: F401  (shim, removed by the lead)
    bad_image_uris,
    check_test_images,
    pick_smoke_image,
    report_unlabeled,
    report_uri,
    validate_images,
    validate_partition,
)
