"""Moved to :mod:`sagemaker_vision.core.training_budget` (issue 10); this shim is removed by the lead."""

from sagemaker_vision.core.training_budget import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_MAX_RUNTIME_SECONDS,
    MAX_RUNTIME_LIMIT_SECONDS,
    PROVIDER_DEFAULT_ATTEMPTS,
    RETRY_BASE_MAX,
    SIGTERM_GRACE_SECONDS,
    STARTUP_MARGIN_SECONDS,
    UPLOAD_MARGIN_SECONDS,
    elapsed_seconds,
    ended_message,
    is_run_job,
    retry_job_name,
    retry_would_repeat,
    still_running_message,
    stopping_limit_seconds,
    wait_attempts,
    wait_budget_seconds,
)
