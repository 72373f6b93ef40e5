"""What the pipeline DAGs give every task: its ``PipelineConfig``, the ``pipeline()`` macro, and a
retry policy under which a config error fails at once.

Config errors cannot be fixed by a retry: :func:`pipeline_config` turns a
:class:`~sagemaker_vision.core.validate.ConfigError` into ``AirflowFailException``, and
:data:`FAIL_FAST_RETRY_POLICY` (in the DAGs' ``default_args``) does the same for a ConfigError a
task raises later (a manifest naming one class id twice, a missing partition).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

from sagemaker_vision.core.config import PipelineConfig
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.config import pipeline_config

__all__ = ["FAIL_FAST_RETRY_POLICY", "pipeline_config", "pipeline_macro"]

FAIL_FAST_RETRY_POLICY = ExceptionRetryPolicy(rules=[
    RetryRule(exception=ConfigError, action=RetryAction.FAIL,
              reason="a config error: no retry can fix it; correct the param named in the message"),
])


def pipeline_macro() -> Callable[..., PipelineConfig]:
    """The ``pipeline()`` Jinja macro: ``{{ pipeline().raw_prefix }}`` in templated fields."""

    @jinja2.pass_context
    def pipeline(jinja_context: Any) -> PipelineConfig:
        return pipeline_config(jinja_context)

    return pipeline
