"""A config error stops a run at its first task, once, naming the param (issue 10).

Tried as a new user would: a bucket name ``MyBucket`` passed the form, then failed ``estimate_costs``
three times (about 25 s of retries); a misspelt key (``bukcet``) was silently ignored and the run
used the defaults. Now the form refuses a bad per-run value when the run is triggered, a bad file
setting given as conf (``MyBucket``) and an unknown key fail the first task at once, without
retries, naming the param (the closest one, for an unknown key).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("shapes-detector.pipeline")


def test_a_misspelt_conf_key_fails_the_first_task_once_and_nothing_is_synced(airflow_db, aws_clients, capfd):
    s3 = aws_clients["s3"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]

    def raw_keys() -> list[tuple[str, str]]:  # earlier tests of the session may have synced here
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="object-detection/raw/")
        return sorted((o["Key"], o["ETag"]) for page in pages for o in page.get("Contents", []))

    before = raw_keys()
    run = _dag().test(run_conf={"bukcet": "my-bucket"})
    assert run.state == "failed", run.state
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    first = tis["estimate_costs"]
    assert str(first.state) == "failed" and first.try_number == 1  # no retries: a retry cannot fix a config
    assert str(tis["sync_images"].state) == "upstream_failed"
    out = capfd.readouterr()
    assert "bukcet: is not a param of this pipeline; did you mean 'bucket'?" in out.out + out.err
    assert raw_keys() == before  # nothing synced, nothing overwritten


def test_the_form_refuses_a_per_run_value_the_config_would_refuse(airflow_db, aws_clients):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="epochs"):
        _dag().test(run_conf={"epochs": 0})


def test_a_bad_file_setting_given_as_conf_fails_the_first_task_once_naming_it(airflow_db, aws_clients, capfd):
    """The bucket is the pipeline file's (not on the form); a --conf override is checked by the config's
    rules in the first task, before anything is synced or paid for."""
    run = _dag().test(run_conf={"bucket": "MyBucket"})
    assert run.state == "failed", run.state
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert str(tis["estimate_costs"].state) == "failed" and tis["estimate_costs"].try_number == 1
    assert str(tis["sync_images"].state) == "upstream_failed"
    out = capfd.readouterr()
    assert "bucket: 'MyBucket'" in out.out + out.err
