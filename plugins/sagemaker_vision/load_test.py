"""Moved (issue 10): the config, results and report to :mod:`sagemaker_vision.core.loadtest.model`,
the engine to :mod:`sagemaker_vision.core.loadtest.engine`, the chart to
:mod:`sagemaker_vision.core.loadtest.chart`, the payload checks to
:mod:`sagemaker_vision.core.loadtest.payloads`, the S3 payloads and the opt-in tag to
:mod:`sagemaker_vision.hooks.load_test`, the boto3 invoker to
:mod:`sagemaker_vision.hooks.sagemaker_runtime`, ``parse_s3_uri`` to
:mod:`sagemaker_vision.core.validate` and the operator to :mod:`sagemaker_vision.operators.load_test`;
this shim is removed by the lead."""

from sagemaker_vision.core.loadtest.chart import render_chart  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.core.loadtest.engine import (  # noqa: F401  (shim, removed by the lead)
    run_load_test,
    run_phase,
)
from sagemaker_vision.core.loadtest.engine import run_phase as _run_phase  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.core.loadtest.model import (  # noqa: F401  (shim, removed by the lead)
    CLIENT_CPU_LIMIT,
    INVALID_RESPONSE_CODE,
    JOIN_GRACE_S,
    KNOWN_ERROR_CODES,
    LOAD_TEST_TAG,
    MAX_CONCURRENCY,
    MAX_REQUEST_TIMEOUT_S,
    MAX_STEP_SECONDS,
    TIMEOUT_CODE,
    InvocationError,
    Invoke,
    LoadTestConfig,
    LoadTestError,
    LoadTestReport,
    Payload,
    StepResult,
    check_reply,
    cold_start_error,
    error_code,
    percentile,
)
from sagemaker_vision.core.loadtest.payloads import (  # noqa: F401  (shim, removed by the lead)
    MAX_PAYLOAD_BYTES,
    payload_limit,
)
from sagemaker_vision.core.validate import parse_s3_uri  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.hooks.load_test import (  # noqa: F401  (shim, removed by the lead)
    endpoint_allows_load_test,
    load_payloads,
)
from sagemaker_vision.hooks.sagemaker_runtime import boto3_invoker  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.operators.load_test import (  # noqa: F401  (shim, removed by the lead)
    LoadTestOperator,
    _as_bool,
    _as_number,
    _as_steps,
)
