"""A task's PipelineConfig: a config error fails the task at once, without retries (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from sagemaker_vision.core.params import param_defaults
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.config import pipeline_config

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"


def context(**params):
    dag_run = SimpleNamespace(run_id="manual__ctx", run_after=datetime(2026, 11, 25, tzinfo=UTC), run_type="manual")
    return {"params": {**param_defaults(), "role_arn": ROLE, "region": "us-east-1", **params}, "dag_run": dag_run}


def test_a_good_context_builds_the_config():
    cfg = pipeline_config(context())
    assert cfg.region == "us-east-1" and cfg.run.run_id == "manual__ctx"


@pytest.mark.parametrize(("params", "message"), [
    ({"bucket": "MyBucket"}, "bucket: 'MyBucket' is not a valid S3 bucket name"),
    ({"bukcet": "my-bucket"}, "bukcet: is not a param of this pipeline; did you mean 'bucket'?"),
    ({"epochs": 5000}, "epochs: must be <= 1000, got 5000"),
])
def test_a_config_error_fails_the_task_at_once_naming_the_param(params, message):
    with pytest.raises(AirflowFailException) as info:
        pipeline_config(context(**params))
    assert str(info.value).startswith(message)
    assert isinstance(info.value.__cause__, ConfigError)
