"""The param specs: a key no param has is refused up front, naming it and the closest param."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.params import ParamSpec, check_known_keys, param_defaults, param_specs
from sagemaker_vision.core.validate import ConfigError

RUN = RunInfo(run_id="manual__keys", run_after=datetime(2026, 11, 25, tzinfo=UTC))
ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"


def build(**overrides):
    return PipelineConfig.from_params({**param_defaults(), "role_arn": ROLE, **overrides}, run=RUN,
                                      region="us-east-1")


@pytest.mark.parametrize(("key", "closest"), [("bukcet", "bucket"), ("epoch", "epochs"),
                                              ("endpoint_typ", "endpoint_type"), ("budget", "budget_usd")])
def test_a_misspelt_key_is_refused_naming_it_and_the_closest_param(key: str, closest: str):
    """Issue 10: ``bukcet`` was silently ignored, so the run used the default bucket."""
    with pytest.raises(ConfigError) as info:
        build(**{key: "my-bucket"})
    assert info.value.field == key
    assert str(info.value) == f"{key}: is not a param of this pipeline; did you mean {closest!r}?"


def test_a_key_like_no_param_lists_the_params_and_every_unknown_key_is_named():
    with pytest.raises(ConfigError) as info:
        check_known_keys(["zzzzzz", "bucket", "qqqqqqqqqq"], ["bucket", "prefix"])
    message = str(info.value)
    assert message.startswith("qqqqqqqqqq: is not a param of this pipeline; the params are: bucket, prefix")
    assert "(and 1 more unknown: zzzzzz)" in message
    check_known_keys(["bucket"], ["bucket", "prefix"])  # known keys pass


def test_every_spec_is_a_known_key_and_the_defaults_build():
    assert set(param_defaults()) == set(param_specs())
    assert build().bucket == param_defaults()["bucket"]


def test_a_numeric_spec_needs_its_step_and_reads_like_the_config():
    with pytest.raises(ValueError, match="needs its step"):
        ParamSpec("x", 1.0, "number", "d", "s", minimum=0)
    spec = ParamSpec("n", 1, "integer", "d", "s", minimum=1, maximum=3)
    assert spec.step == 1 and spec.read({"n": 2}) == 2 and spec.read({"n": "3"}) == 3
    for value, problem in [(0, "must be >= 1, got 0"), (4, "must be <= 3, got 4"), (2.5, "whole number"),
                           (True, "must be a number"), (None, "must be a number"), ("x", "must be a number")]:
        with pytest.raises(ConfigError, match=problem):
            spec.read({"n": value})
    assert spec.schema() == {"type": "integer", "minimum": 1, "maximum": 3, "section": "s"}
