"""shapes-detector.pipeline end to end on the embedded emulator, asserting real outcomes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag("shapes-detector.pipeline")


def _latest_run_prefix(s3, bucket: str) -> str:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="object-detection/runs/shapes-detector/",
                                                         Delimiter="/")
    prefixes = sorted(p["Prefix"] for page in pages for p in page.get("CommonPrefixes", []))
    assert prefixes, "the run wrote nothing under runs/"
    return prefixes[-1]


def test_dag_test_runs_the_whole_pipeline(airflow_db, aws_clients):
    s3, sm = aws_clients["s3"], aws_clients["sagemaker"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]

    run = _dag().test(run_conf={"load_test_requests": 60, "load_test_concurrency": 3})
    assert run.state == "success", run.state

    # Images synced into the run's partition, and the labeled + split manifests exist.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="object-detection/")["Contents"]]
    raw = [k for k in keys if "/raw/dt=" in k and k.endswith(".jpg")]
    assert len(raw) == 12
    assert any(k.endswith("/labels/" + k.split("/labels/")[-1]) and k.endswith("output.manifest") for k in keys)
    run_prefix = _latest_run_prefix(s3, bucket)
    train_lines = s3.get_object(Bucket=bucket, Key=run_prefix + "manifests/train.manifest")["Body"].read()
    val_lines = s3.get_object(Bucket=bucket, Key=run_prefix + "manifests/validation.manifest")["Body"].read()
    n_train, n_val = len(train_lines.splitlines()), len(val_lines.splitlines())
    assert n_train + n_val == 12 and n_train > 0 and n_val > 0
    for line in train_lines.splitlines():
        assert json.loads(line)["source-ref"].startswith(f"s3://{bucket}/object-detection/raw/dt=")

    # The training job: augmented manifests, RecordIO, Pipe, both channels.
    (job,) = [j for j in sm.list_training_jobs()["TrainingJobSummaries"]
              if j["TrainingJobName"].startswith("shapes-detector-")]
    desc = sm.describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["AlgorithmSpecification"]["TrainingInputMode"] == "Pipe"
    assert desc["AlgorithmSpecification"]["TrainingImage"].endswith("/object-detection:1")
    channels = {c["ChannelName"]: c for c in desc["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    for channel in channels.values():
        src = channel["DataSource"]["S3DataSource"]
        assert src["S3DataType"] == "AugmentedManifestFile"
        assert src["AttributeNames"] == ["source-ref", "bounding-box"]
        assert channel["RecordWrapperType"] == "RecordIO"
        assert channel["ContentType"] == "application/x-recordio"
    assert desc["HyperParameters"]["num_classes"] == "3"
    assert desc["HyperParameters"]["num_training_samples"] == str(n_train)

    # The endpoint serves the serverless config of this run's model.
    endpoint = sm.describe_endpoint(EndpointName="shapes-detector")
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 4096, "MaxConcurrency": 10}
    assert variant["ModelName"] == job["TrainingJobName"]

    # Smoke test: an image of the validation split, named, whose true boxes it decoded in pixels.
    smoke = json.loads(s3.get_object(Bucket=bucket, Key=run_prefix + "reports/smoke_test.json")["Body"].read())
    assert smoke["image"] in {json.loads(line)["source-ref"] for line in val_lines.splitlines()}
    assert smoke["image_from"].endswith("manifests/validation.manifest")
    truth = next(json.loads(line) for line in (ROOT / "include/sample_data/output.manifest").read_text().splitlines()
                 if json.loads(line)["source-ref"].rsplit("/", 1)[-1] == smoke["image"].rsplit("/", 1)[-1])
    expected = sorted((a["left"], a["top"], a["width"], a["height"]) for a in truth["bounding-box"]["annotations"])
    got = sorted((b["left"], b["top"], b["width"], b["height"]) for b in smoke["boxes"])
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert all(abs(x - y) <= 1 for x, y in zip(g, e, strict=True)), (got, expected)
    assert {b["label"] for b in smoke["boxes"]} <= {"circle", "square", "triangle"}

    # Load-test report with percentiles, and its chart.
    report = json.loads(s3.get_object(Bucket=bucket, Key=run_prefix + "reports/report.json")["Body"].read())
    (step,) = report["steps"]
    assert step["concurrency"] == 3 and step["requests"] == 60 and step["successes"] == 60
    assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"] <= step["max_ms"]
    chart = s3.get_object(Bucket=bucket, Key=run_prefix + "reports/chart.png")["Body"].read()
    assert chart.startswith(b"\x89PNG")


def test_airflow_dags_test_cli_as_a_user_runs_it(airflow_db, aws_clients, emulator_env):
    """`airflow dags test` in a subprocess, with only env vars pointing it at the emulator."""
    from local_aws import airflow_env

    env = {**os.environ, **airflow_env(emulator_env.endpoint_url)}
    conf = {"pipeline_name": "cli-detector", "load_test_requests": 20, "load_test_concurrency": 2}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "shapes-detector.pipeline",
         "--conf", json.dumps(conf)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    sm = aws_clients["sagemaker"]
    assert sm.describe_endpoint(EndpointName="cli-detector")["EndpointStatus"] == "InService"
    assert any(j["TrainingJobName"].startswith("cli-detector-")
               for j in sm.list_training_jobs()["TrainingJobSummaries"])
