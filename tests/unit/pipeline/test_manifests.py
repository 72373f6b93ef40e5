"""Which training records are a run's own: its base job name, whichever try's job trained."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.params import param_defaults
from sagemaker_vision.pipeline.manifests import is_own_record


def cfg_at(hour: int, pipeline: str = "shapes-detector") -> PipelineConfig:
    run = RunInfo(run_id=f"manual__{hour}", run_after=datetime(2026, 12, 1, hour, tzinfo=UTC))
    return PipelineConfig.from_params({**param_defaults(), "pipeline_name": pipeline}, run=run, region="us-east-1")


def test_a_record_of_the_runs_retry_job_is_its_own_and_another_runs_is_not():
    cfg, other = cfg_at(9), cfg_at(10)
    retry = f"{cfg.job_name}-1764579600"
    assert is_own_record(cfg, {"job_name": retry, "run_job_name": cfg.job_name})
    assert is_own_record(cfg, {"job_name": cfg.job_name, "run_job_name": cfg.job_name})
    assert not is_own_record(cfg, {"job_name": other.job_name, "run_job_name": other.job_name})
    # A backfill of the same interval is the same run: same names, whatever its run id.
    assert is_own_record(cfg, {"job_name": retry, "run_job_name": cfg.job_name, "run_id": "backfill__x"})


@pytest.mark.parametrize(("job", "own"), [("{base}", True), ("{base}-1764579600", True), ("{other}", False),
                                          ("{base}-17645796", False), (None, False)])
def test_records_written_before_run_job_name_are_recognised_by_the_job_name(job, own):
    cfg, other = cfg_at(9), cfg_at(10)
    record = {"job_name": job.format(base=cfg.job_name, other=other.job_name) if job else None}
    assert is_own_record(cfg, record) is own

