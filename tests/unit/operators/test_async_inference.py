"""The async smoke operator's checks, all made before any AWS call."""

from __future__ import annotations

from typing import Any

import pytest

from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.operators import async_inference as ai


# -- the operator's checks before any AWS call, and its trigger --------------------------------------
def operator(**overrides: Any) -> ai.AsyncInferenceSmokeOperator:
    args: dict[str, Any] = {"task_id": "smoke", "endpoint_name": "shapes", "sample_image": "a.jpg",
                            "input_prefix": "s3://bucket/runs/1/", "class_map": {"0": "circle"}}
    args.update(overrides)
    return ai.AsyncInferenceSmokeOperator(**args)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"endpoint_name": "bad name"}, "endpoint_name"),
        ({"class_map": {}}, "class_map"),
        ({"class_map": {"x": "circle"}}, "class_map"),
        ({"class_map": "not json"}, "class_map"),
        ({"min_score": 1.5}, "min_score"),
        ({"min_score": "high"}, "min_score"),
        ({"waiter_delay": 0}, "waiter_delay"),
        ({"waiter_max_attempts": 0}, "waiter_max_attempts"),
        ({"sample_image": "a.gif"}, "sample_image"),
        ({"input_prefix": "runs/1/"}, "input_prefix"),
    ],
)
def test_operator_refuses_bad_input_before_touching_aws(overrides, field, monkeypatch):
    op = operator(**overrides)
    monkeypatch.setattr(ai.AsyncInferenceSmokeOperator, "_client",
                        lambda *a: (_ for _ in ()).throw(AssertionError("AWS touched")))
    monkeypatch.setattr(ai.s3io, "read_bytes", lambda *a: (_ for _ in ()).throw(AssertionError("S3 touched")))
    with pytest.raises(ConfigError) as err:
        op.execute({})
    assert err.value.field == field
