"""Moved (issue 10): the decoder and content types to :mod:`sagemaker_vision.core.inference`, the
InvokeEndpoint call to :mod:`sagemaker_vision.hooks.sagemaker_runtime`, the smoke-test stage to
:mod:`sagemaker_vision.pipeline.smoke_test`; this shim is removed by the lead."""

from sagemaker_vision.core.inference import (  # noqa: F401  (shim, removed by the lead)
    CONTENT_TYPES,
    COORD_TOLERANCE,
    Box,
    ClassMap,
    Detection,
    MalformedReply,
    content_type_for,
    decode_detections,
    image_size,
    normalise_class_map,
    parse_prediction,
)
from sagemaker_vision.core.naming import smoke_report_uri  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.hooks.sagemaker_runtime import invoke_and_decode  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.pipeline.smoke_test import smoke_test  # noqa: F401  (shim, removed by the lead)
