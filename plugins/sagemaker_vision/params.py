"""Moved to :mod:`sagemaker_vision.pipeline.params` (the form) and :mod:`sagemaker_vision.core.params`
(the specs); issue 10. This shim is removed by the lead."""

from sagemaker_vision.core.params import default_poll_seconds, param_defaults  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.pipeline.params import (  # noqa: F401  (shim, removed by the lead)
    LOAD_TEST_REPORTS,
    default_load_test_report_prefix,
    pipeline_params,
)
