"""The pipeline DAGs' retry policy: a ConfigError a task raises is never retried (issue 10)."""

from __future__ import annotations

from airflow.sdk.definitions.retry_policy import RetryAction

from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.pipeline.context import FAIL_FAST_RETRY_POLICY


def test_a_config_error_fails_at_once_and_other_errors_keep_their_retries():
    decision = FAIL_FAST_RETRY_POLICY.evaluate(ConfigError("label", "no labeled partitions"), 1, 3)
    assert decision.action is RetryAction.FAIL and "config error" in (decision.reason or "")
    assert FAIL_FAST_RETRY_POLICY.evaluate(TimeoutError("throttled"), 1, 3).action is RetryAction.DEFAULT


def test_the_policy_serializes_with_the_errors_import_path():
    [rule] = FAIL_FAST_RETRY_POLICY.serialize()["rules"]
    assert rule["exception"] == "sagemaker_vision.core.validate.ConfigError" and rule["action"] == "fail"
