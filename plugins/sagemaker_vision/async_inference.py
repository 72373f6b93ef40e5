"""Moved (issue 10): the pure requests to :mod:`sagemaker_vision.core.async_inference`, scale-to-zero
calls to :mod:`sagemaker_vision.hooks.scaling`, the invocation to :mod:`sagemaker_vision.hooks.async_inference`,
the smoke operator to :mod:`sagemaker_vision.operators.async_inference`. This shim is removed by the lead."""

from sagemaker_vision.core.async_inference import (  # noqa: F401  (shim, removed by the lead)
    BACKLOG_METRIC,
    DEFAULT_TARGET_BACKLOG_PER_INSTANCE,
    HAS_BACKLOG_METRIC,
    MAX_ALARM_WINDOW_S,
    MAX_CONCURRENT_INVOCATIONS,
    METRIC_NAMESPACE,
    S3_PATH_MAX,
    SERVING_STATES,
    SNS_TOPIC_ARN_RE,
    AsyncInvocation,
    async_autoscaling_requests,
    async_endpoint_config_request,
    check_async_endpoint,
    invoke_async_request,
    scale_from_zero_alarm,
    smoke_input_uri,
)
from sagemaker_vision.core.naming import (  # noqa: F401  (shim, removed by the lead)
    backlog_alarm_name,
    backlog_policy_name,
    scale_from_zero_policy_name,
)
from sagemaker_vision.hooks.async_inference import invoke_async, start_async_inference  # noqa: F401  (shim)
from sagemaker_vision.hooks.scaling import apply_async_autoscaling  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.operators.async_inference import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_WAITER_DELAY,
    DEFAULT_WAITER_MAX_ATTEMPTS,
    FAILURE_EXCERPT_CHARS,
    SMOKE_INVOCATION_TIMEOUT_S,
    SMOKE_REQUEST_TTL_S,
    AsyncInferenceSmokeOperator,
)
