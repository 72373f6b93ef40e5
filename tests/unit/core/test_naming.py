"""Every name a run derives fits AWS's limits, or the config (and the trigger form) refuses it.

Issue 9, finding 11c: a 47-character ``pipeline_name`` passed the form but derived a 70-character
labeling job name, refused by SageMaker after the sync had run. The limits live in
``core.naming.AWS_NAME_LIMITS``; these tests read them back from the botocore models, build configs for
scheduled, manual and backfill runs, and hand the derived names to the emulator's strict checks.
"""

from __future__ import annotations

from datetime import UTC, datetime

import botocore.session
import pytest
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamValidationError

from sagemaker_vision.core import naming as naming_module
from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.naming import AWS_NAME_LIMITS, derived_names, max_pipeline_name_length
from sagemaker_vision.core.params import param_defaults
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.pipeline.params import pipeline_params

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
SCHEDULED = RunInfo(run_id="scheduled__2026-11-16T00:00:00+00:00", run_after=datetime(2026, 11, 23, tzinfo=UTC),
                    data_interval_start=datetime(2026, 11, 16, tzinfo=UTC),
                    data_interval_end=datetime(2026, 11, 23, tzinfo=UTC), run_type="scheduled")
# A manual run has no data interval of its own (logical_date None): names come from run_after.
MANUAL = RunInfo(run_id="manual__2026-11-20T13:14:15.123456+00:00", run_after=datetime(2026, 11, 20, 13, 14, 15,
                                                                                         123456, tzinfo=UTC))
BACKFILL = RunInfo(run_id="backfill__2026-01-05T00:00:00+00:00", run_after=datetime(2026, 12, 1, tzinfo=UTC),
                   data_interval_start=datetime(2025, 12, 29, tzinfo=UTC),
                   data_interval_end=datetime(2026, 1, 5, tzinfo=UTC), run_type="backfill")


def build(run: RunInfo = SCHEDULED, **overrides) -> PipelineConfig:
    return PipelineConfig.from_params({**param_defaults(), "role_arn": ROLE, **overrides}, run=run,
                                      region="us-east-1")


@pytest.fixture(scope="module")
def session():
    return botocore.session.get_session()


def test_limits_are_the_botocore_models(session):
    for (service, shape), limit in AWS_NAME_LIMITS.items():
        metadata = session.get_service_model(service).shape_for(shape).metadata
        assert metadata.get("max") == limit, (service, shape, metadata)


def test_47_character_pipeline_name_is_refused_when_the_config_is_built():
    name = "p" * 47
    with pytest.raises(ConfigError) as info:
        build(pipeline_name=name)
    assert info.value.field == "pipeline_name"
    message = str(info.value)
    assert message.startswith("pipeline_name: ") and f"{name!r} is 47 characters" in message
    assert "at most 36" in message and "TrainingJobName" in message and "63" in message


def test_the_form_refuses_it_through_the_params_max_length():
    spec = pipeline_params()["pipeline_name"]
    assert spec.schema["maxLength"] == max_pipeline_name_length()
    longest = "p" * max_pipeline_name_length()
    assert Param(**{**_param_kwargs(spec), "default": longest}).resolve() == longest
    for value in ("p" * 47, "p" * (max_pipeline_name_length() + 1)):
        with pytest.raises(ParamValidationError, match="too long"):
            Param(**{**_param_kwargs(spec), "default": value}).resolve()


def _param_kwargs(spec: Param) -> dict:
    return {**spec.schema, "description": spec.description}


def test_max_length_is_computed_from_the_templates_not_written_down(monkeypatch):
    assert max_pipeline_name_length() == 63 - len("-20260101-000000") - len("-0123456789")
    monkeypatch.setitem(AWS_NAME_LIMITS, ("sagemaker", "LabelingJobName"), 40)
    # "<name>-<stamp>-labels": 23 characters on top of the name.
    assert max_pipeline_name_length() == 40 - 23


@pytest.mark.parametrize("run", [SCHEDULED, MANUAL, BACKFILL], ids=["scheduled", "manual", "backfill"])
@pytest.mark.parametrize("backend", ["import", "ground_truth", "label_studio"])
def test_the_longest_allowed_name_derives_only_names_aws_accepts(run, backend):
    from local_aws import strict

    longest = "p" * (max_pipeline_name_length() - 1) + "q"
    extra = {"gt_workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team"}
    cfg = build(run, pipeline_name=longest, label_backend=backend, endpoint_type="provisioned", **extra)
    names = derived_names(cfg)
    assert all(d.size <= d.limit for d in names)
    assert cfg.labeling_job_name in {d.name for d in names}
    assert cfg.job_name == f"{longest}-{cfg.run.stamp.replace('T', '-')}"
    # The emulator's strict checks (botocore patterns and lengths) accept each SageMaker name.
    for operation, member, value in [
        ("CreateTrainingJob", "TrainingJobName", cfg.job_name),
        ("CreateTrainingJob", "TrainingJobName", cfg.job_name + "-1765000000"),
        ("CreateLabelingJob", "LabelingJobName", cfg.labeling_job_name),
        ("CreateModel", "ModelName", cfg.model_name),
        ("CreateEndpointConfig", "EndpointConfigName", cfg.endpoint_config_name),
        ("CreateEndpoint", "EndpointName", cfg.endpoint_name),
    ]:
        found = [v for v in strict.violations("sagemaker", operation, {member: value})
                 if v.path == member[0].lower() + member[1:]]
        assert not found, (operation, value, found)


def test_the_emulator_refuses_a_70_character_labeling_job_name():
    from local_aws import strict

    name = "p" * 47 + "-20261123-000000-labels"
    assert len(name) == 70
    found = [str(v) for v in strict.violations("sagemaker", "CreateLabelingJob", {"LabelingJobName": name})
             if v.path == "labelingJobName"]
    # AWS states it twice: the length, and the pattern's {0,62} repetition.
    assert f"Value '{name}' at 'labelingJobName' failed to satisfy constraint: " \
        "Member must have length less than or equal to 63" in found
    assert any("regular expression pattern" in v for v in found)


def test_a_long_prefix_is_refused_naming_prefix_and_the_key():
    with pytest.raises(ConfigError) as info:
        build(prefix="deep/" * 190)
    assert info.value.field == "prefix"
    assert "(S3 object key)" in str(info.value) and "the limit is 1024" in str(info.value)


def test_label_studio_title_limits_name_their_field():
    with pytest.raises(ConfigError) as info:
        build(label_backend="label_studio", label_studio_project="t" * 51)
    assert info.value.field == "label_studio_project" and "the limit is 50" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build(label_backend="label_studio", pipeline_name="ab")
    assert info.value.field == "pipeline_name" and "at least 3" in str(info.value)
    # Other backends never create a project: its title is not checked.
    assert build(label_backend="import", label_studio_project="t" * 51)


def test_an_explicit_endpoint_name_is_checked_as_endpoint_name(monkeypatch):
    monkeypatch.setitem(AWS_NAME_LIMITS, ("cloudwatch", "AlarmName"), 50)
    with pytest.raises(ConfigError) as info:
        build(endpoint_name="e" * 30)
    assert info.value.field == "endpoint_name" and "AlarmName" in str(info.value)
    assert naming_module.check_derived_names  # the one check from_params runs


ENDPOINT_CONFIGS = [
    pytest.param(SCHEDULED, {"label_backend": "import"}, id="scheduled-import"),
    pytest.param(MANUAL, {"label_backend": "ground_truth", "pipeline_name": "p" * max_pipeline_name_length(),
                          "gt_workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team"},
                 id="manual-ground-truth-longest"),
    pytest.param(BACKFILL, {"label_backend": "label_studio", "endpoint_name": "kept-endpoint",
                            "endpoint_type": "provisioned", "prefix": "deep/er"},
                 id="backfill-label-studio-own-endpoint"),
    pytest.param(SCHEDULED, {"endpoint_type": "async", "pipeline_name": "cam-7"}, id="scheduled-async"),
]


@pytest.mark.parametrize(("run", "overrides"), ENDPOINT_CONFIGS)
def test_the_checked_names_are_the_names_the_run_uses(run, overrides):
    """Drift guard: what check_derived_names measures is what the config's properties and the
    modules' builders hand to AWS, for several configs."""
    from local_aws.runtime import async_result_uris
    from sagemaker_vision.core import labeling_job, naming, training_budget
    from sagemaker_vision.core.naming import rollback_alarm_names

    cfg = build(run, **overrides)
    by_what: dict[str, list[str]] = {}
    for d in derived_names(cfg):
        by_what.setdefault(d.what.split(" (")[0], []).append(d.name)
    key = lambda uri: uri.removeprefix(f"s3://{cfg.bucket}/")  # noqa: E731
    assert by_what["training job name"] == [cfg.job_name]
    assert by_what["model name"] == [cfg.model_name] and by_what["endpoint config name"] == [cfg.endpoint_config_name]
    assert by_what["labeling job name"] == [cfg.labeling_job_name]
    assert by_what["endpoint name"] == [cfg.endpoint_name]
    assert by_what["rollback alarm name"] == list(rollback_alarm_names(cfg.endpoint_name))
    [retry] = by_what["training retry job name, job name + '-' + 10 digits"]
    # The cap keeps the provider's cut off the run's name: the retry it makes is the name checked.
    assert retry == training_budget.retry_job_name(cfg.job_name) and training_budget.is_run_job(retry, cfg.job_name)
    assert by_what["training artifact key"] == [key(naming.model_artifact_uri(cfg, retry))]
    [gt_key] = by_what["Ground Truth output key"]
    manifest = labeling_job.output_manifest_uri(cfg.ground_truth_output_prefix, cfg.labeling_job_name)
    assert gt_key.startswith(key(manifest).removesuffix("manifests/output/output.manifest"))
    assert by_what["report key"] == [key(naming.smoke_report_uri(cfg))]
    assert by_what["labeled manifest key"] == [key(cfg.labeled_manifest_uri)]
    # SageMaker names an async error <S3FailurePath>/<uuid>-error.out (the emulator's builder).
    [failure] = by_what["async failure key"]
    assert failure == key(async_result_uris(cfg.async_output_prefix, cfg.async_failure_prefix,
                                            failure.rsplit("/", 1)[1].removesuffix("-error.out"))[1])


def test_one_naming_rule_changes_the_names_and_the_limit_together(monkeypatch):
    """The properties and the limit check call the same builders: changing one rule moves both."""
    assert max_pipeline_name_length() == 36
    monkeypatch.setattr(naming_module, "labeling_job_name_of", lambda job: f"{job}-labels-of-the-week")
    # "<name>-<stamp>-labels-of-the-week": 16 + 19 characters on top of the name.
    assert max_pipeline_name_length() == 63 - 16 - 19
    cfg = build(pipeline_name="p" * (63 - 16 - 19))
    assert cfg.labeling_job_name == cfg.job_name + "-labels-of-the-week"
    with pytest.raises(ConfigError, match="LabelingJobName"):
        build(pipeline_name="p" * (63 - 16 - 19 + 1))
    monkeypatch.setattr(naming_module, "run_job_name", lambda name, stamp: f"{name}-v2-{stamp.replace('T', '-')}")
    assert max_pipeline_name_length() == 63 - 16 - 19 - 3
    cfg = build(pipeline_name="cam")
    assert cfg.job_name == cfg.model_name == f"cam-v2-{cfg.run.stamp.replace('T', '-')}"
    assert cfg.job_name in {d.name for d in derived_names(cfg)}


@pytest.mark.parametrize("backend", ["import", "ground_truth"])
def test_the_cap_keeps_the_providers_cut_off_every_runs_job_name(backend):
    """Guard on the cap: with the longest pipeline_name, a run's job name is the longest base the
    provider's retry name keeps whole, so runs a second apart never claim each other's retries
    (the training operator refuses a longer base: tests/integration/test_training_budget_emulator.py)."""
    from datetime import timedelta

    from sagemaker_vision.core import training_budget

    extra = {"gt_workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team"}
    longest = "p" * max_pipeline_name_length()
    a = build(MANUAL, pipeline_name=longest, label_backend=backend, **extra)
    b = build(RunInfo(run_id="manual__b", run_after=MANUAL.run_after + timedelta(seconds=1)), pipeline_name=longest,
              label_backend=backend, **extra)
    assert len(a.job_name) == training_budget.RETRY_BASE_MAX
    retry_a, retry_b = (training_budget.retry_job_name(c.job_name, "1764548000") for c in (a, b))
    assert retry_a == f"{a.job_name}-1764548000" and training_budget.is_run_job(retry_a, a.job_name)
    assert not training_budget.is_run_job(retry_b, a.job_name) and not training_budget.is_run_job(retry_a, b.job_name)
