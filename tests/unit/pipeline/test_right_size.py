"""pipeline.right_size's check: every refusal names its field and comes before any AWS call."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from sagemaker_vision.pipeline import right_size

PARAMS = {"endpoint_name": "shapes", "model_name": "", "memory_sizes_mb": [1024, 2048], "concurrency": 4,
          "requests_per_size": 20, "seconds_per_size": 10, "load_workers": 1, "slo_p95_ms": 1000,
          "max_error_rate": 0.01, "budget_usd": 5, "payload_prefix": "s3://bucket/raw/"}
SETTINGS = {"run_id": "r1", "pipeline_name": "shapes", "endpoint_type": "serverless", "max_concurrency": 10,
            "bucket": "bucket", "prefix": "p"}


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("check called AWS before refusing")

    monkeypatch.setattr(right_size.aws, "client", refuse)


@pytest.mark.parametrize(("params", "settings", "message"), [
    ({}, {"endpoint_type": "provisioned"}, r"^endpoint_type: pipeline shapes deploys provisioned endpoints"),
    ({}, {"endpoint_type": "async"}, r"^endpoint_type: pipeline shapes deploys async endpoints"),
    ({"memory_sizes_mb": [1024, 1536]}, {}, r"^memory_sizes_mb\[1\]: must be 1024-6144 in steps of 1024"),
    ({"memory_sizes_mb": [2048, 2048]}, {}, r"^memory_sizes_mb: lists 2048 twice"),
    ({"concurrency": 11}, {}, r"^concurrency: 11 exceeds serverless_max_concurrency 10"),
    ({"budget_usd": "lots"}, {}, r"^budget_usd"),
    ({"payload_prefix": "include/sample_data/images"}, {}, r"^payload_prefix: must be an s3:// prefix"),
])
def test_check_refuses_naming_the_field_before_any_aws_call(params, settings, message):
    with pytest.raises(AirflowFailException, match=message):
        right_size.check_task({**PARAMS, **params}, **{**SETTINGS, **settings})


def test_create_skips_a_size_not_asked_for():
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="3072 MB is not in memory_sizes_mb"):
        right_size.create_task({"sizes": [1024, 2048]}, 3072, "r1")
