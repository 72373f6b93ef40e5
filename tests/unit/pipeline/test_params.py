"""One spec per param: the trigger form (Airflow ``Param``, validated with jsonschema by
``Param.resolve``) and ``PipelineConfig`` accept and refuse the same values (issue 10, Done when).

Before, the form's schema and ``PipelineConfig.from_params`` disagreed on 12 of the numeric bounds:
the form took ``epochs`` 5000 or ``image_shape`` 4096, and the first task refused them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamValidationError

from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.naming import check_derived_names
from sagemaker_vision.core.params import ParamSpec, param_defaults, param_specs
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.pipeline.params import pipeline_params

RUN = RunInfo(run_id="manual__bounds", run_after=datetime(2026, 11, 25, tzinfo=UTC))
ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
# Provisioned, so the serverless-only cross-field rules (load_test_concurrency <= max concurrency,
# no A/B split) leave each param's own bounds to decide.
# Enough concurrency for the most load_workers (each worker needs one concurrent request).
BASE = {"role_arn": ROLE, "endpoint_type": "provisioned", "load_test_concurrency": 16}
NUMERIC = [spec for spec in param_specs().values() if spec.numeric]


def form_accepts(name: str, value: Any) -> bool:
    param: Param = copy.copy(pipeline_params()[name])
    try:
        param.resolve(value)
    except ParamValidationError:
        return False
    return True


def config_accepts(name: str, value: Any) -> bool:
    params = {**param_defaults(), **BASE, name: value}
    try:
        PipelineConfig.from_params(params, run=RUN, region="us-east-1")
    except ConfigError as exc:
        # Refused for this param, not for another one the value happens to upset.
        assert exc.field == name, str(exc)
        return False
    return True


def probes(spec: ParamSpec) -> list[tuple[Any, bool]]:
    """(value, expected) at each limit and one step either side of it."""
    assert spec.step is not None
    cast = int if spec.type == "integer" else float
    out: list[tuple[Any, bool]] = []
    for limit, outward in ((spec.minimum, -1), (spec.maximum, +1)):
        if limit is None:
            continue
        out += [(cast(limit), True), (cast(limit - outward * spec.step), True),
                (cast(limit + outward * spec.step), False)]
    return out


def test_every_numeric_param_has_bounds_and_a_step():
    assert len(NUMERIC) == 28
    for spec in NUMERIC:
        assert spec.minimum is not None and spec.step, spec.name


@pytest.mark.parametrize("spec", NUMERIC, ids=[spec.name for spec in NUMERIC])
def test_the_form_and_the_config_agree_at_each_limit_and_one_step_beyond(spec: ParamSpec):
    for value, expected in probes(spec):
        assert (form_accepts(spec.name, value), config_accepts(spec.name, value)) == (expected, expected), \
            (spec.name, value)


def test_the_bounds_the_form_used_to_miss_are_refused_by_both():
    for name, value in [("epochs", 1001), ("mini_batch_size", 1025), ("image_shape", 1025),
                        ("training_volume_gb", 16385), ("inference_instance_count", 101),
                        ("autoscaling_min_capacity", 1001), ("autoscaling_max_capacity", 1001),
                        ("target_invocations_per_instance", 1e6 + 1), ("load_test_max_seconds", 3601),
                        ("slo_p95_ms", 600_001), ("label_studio_timeout_hours", 24 * 30 + 0.01),
                        ("learning_rate", 0)]:
        assert not form_accepts(name, value) and not config_accepts(name, value), (name, value)


def test_serverless_memory_takes_its_sizes_only_in_both():
    spec = param_specs()["serverless_memory_mb"]
    assert spec.enum is not None
    for size in spec.enum:
        assert form_accepts(spec.name, size) and config_accepts(spec.name, size)
    for bad in (0, 1000, 1500, 4095, 7168, 8192):
        assert not form_accepts(spec.name, bad) and not config_accepts(spec.name, bad), bad


@pytest.mark.parametrize(("name", "value"), [
    ("bucket", "MyBucket"), ("bucket", "my..bucket"), ("bucket", "192.168.1.1"), ("bucket", "-bucket"),
    ("pipeline_name", "bad_name"), ("label_attribute", "boxes-metadata"), ("label_attribute", "boxes-ref"),
    ("endpoint_name", "has space"), ("inference_instance_type", "g4dn.xlarge"), ("label_backend", "mturk"),
    ("endpoint_type", "edge"), ("deployment_policy", "rolling"), ("base_network", "resnet-18"),
    ("role_arn", "arn:aws:iam::12:role/x"), ("role_arn", "sagemaker-vision-execution"),
])
def test_a_bad_name_or_choice_is_refused_by_the_form_as_by_the_config(name: str, value: str):
    """Issue 10: the bucket MyBucket passed the form, then failed estimate_costs three times."""
    assert not form_accepts(name, value)
    assert not config_accepts(name, value)


def test_the_region_and_the_training_instance_are_the_ones_the_config_takes():
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException

    from sagemaker_vision.hooks.config import pipeline_config

    dag_run = SimpleNamespace(run_id=RUN.run_id, run_after=RUN.run_after, run_type="manual")
    for region, ok in [("eu-west-1", True), ("", True), (None, True), ("mars-north-1", False), ("EU-WEST-1", False)]:
        assert form_accepts("region", region) is ok, region
        if region:
            context = {"params": {**param_defaults(), **BASE, "region": region}, "dag_run": dag_run}
            if ok:
                assert pipeline_config(context).region == region
            else:
                with pytest.raises(AirflowFailException, match="^region: "):
                    pipeline_config(context)
    for instance, ok in [("ml.p3.8xlarge", True), ("ml.p2.xlarge", True), ("ml.g4dn.xlarge", False),
                         ("ml.m5.large", False)]:
        assert (form_accepts("training_instance_type", instance),
                config_accepts("training_instance_type", instance)) == (ok, ok), instance


@pytest.mark.parametrize("classes", [["cat", "cat"], ["cat", " "], [], ["c"] * 11])
def test_label_classes_the_config_refuses_the_form_refuses(classes: list[str]):
    overrides = {"label_backend": "label_studio"}
    assert not form_accepts("label_classes", classes)
    with pytest.raises(ConfigError, match="^label_classes: "):
        PipelineConfig.from_params({**param_defaults(), **BASE, **overrides, "label_classes": classes}, run=RUN,
                                   region="us-east-1")


@pytest.mark.parametrize(("name", "value"), [("bucket", "my-bucket.example"), ("endpoint_name", ""),
                                             ("endpoint_name", "kept-endpoint"), ("label_attribute", "boxes")])
def test_a_good_name_passes_both(name: str, value: str):
    assert form_accepts(name, value) and config_accepts(name, value)


def test_each_form_field_is_its_spec():
    params, specs = pipeline_params(), param_specs()
    assert list(params) == list(specs)
    for name, param in params.items():
        assert param.value == specs[name].default and param.description == specs[name].description
        assert param.schema == specs[name].schema()
        param.resolve()  # every default passes its own schema


def test_the_defaults_build_a_config():
    assert PipelineConfig.from_params({**param_defaults(), "role_arn": ROLE}, run=RUN, region="us-east-1")


def test_a_label_studio_title_label_studio_refuses_is_refused_by_the_form_as_by_the_config():
    params = {**param_defaults(), **BASE, "label_backend": "label_studio"}
    assert form_accepts("label_studio_project", "") and form_accepts("label_studio_project", "abc")
    for bad in ("ab", "x" * 51):
        assert not form_accepts("label_studio_project", bad), bad
        with pytest.raises(ConfigError) as error:
            check_derived_names(PipelineConfig.from_params({**params, "label_studio_project": bad}, run=RUN,
                                                           region="us-east-1"))
        assert error.value.field == "label_studio_project", str(error.value)


@pytest.mark.parametrize(("env", "value"), [("SAGEMAKER_VISION_BUCKET", "MyBucket"),
                                            ("SAGEMAKER_VISION_PIPELINE_NAME", "bad_name"),
                                            ("SAGEMAKER_VISION_ROLE_ARN", "not-an-arn")])
def test_a_bad_environment_default_names_the_variable_when_the_dags_load(monkeypatch, env, value):
    """Airflow refuses a scheduled DAG whose param default fails its schema, naming neither the
    param nor the variable; the specs refuse it first, naming both."""
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=rf"\${env}={value!r} is not a valid default for the param"):
        pipeline_params()
