"""Labeling and the image report: bad images are left out, unlabeled images are reported (issue 8, defect 9)."""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws
from PIL import Image

from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.params import param_defaults
from sagemaker_vision.pipeline import images, label

BUCKET = "labeling-images-unit"


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _cfg(tmp_path, **params: Any) -> PipelineConfig:
    run = RunInfo(run_id="manual__x", run_after=datetime(2026, 11, 29, 12, tzinfo=UTC))
    return PipelineConfig.from_params({**param_defaults(), "bucket": BUCKET, "bad_image_policy": "skip", **params},
                                      run=run, region="us-east-1")


def _key(uri: str) -> str:
    return uri.split("/", 3)[3]


def _line(ref: str) -> str:
    return json.dumps({"source-ref": ref,
                       "bounding-box": {"image_size": [{"width": 64, "height": 48, "depth": 3}],
                                        "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}]},
                       "bounding-box-metadata": {"class-map": {"0": "circle"}, "type": "groundtruth/object-detection"}})


@pytest.fixture
def partition(s3, tmp_path):
    """good_a.jpg, good_b.jpg, unlabeled.jpg and broken.jpg synced; validate_images (skip) has run."""
    cfg = _cfg(tmp_path)
    uris = {}
    for name, body in (("good_a.jpg", _jpeg()), ("good_b.jpg", _jpeg()), ("unlabeled.jpg", _jpeg()),
                       ("broken.jpg", os.urandom(3000))):
        uris[name] = cfg.raw_prefix + name
        s3.put_object(Bucket=BUCKET, Key=_key(uris[name]), Body=body)
    images.validate_partition(cfg, s3)
    return cfg, uris


def test_synced_images_leave_out_what_the_report_calls_bad(s3, partition):
    cfg, uris = partition
    assert label.synced_images(cfg, s3) == sorted([uris["good_a.jpg"], uris["good_b.jpg"], uris["unlabeled.jpg"]])


def test_import_drops_bad_images_and_reports_the_unlabeled_ones(s3, partition, tmp_path, caplog):
    cfg, uris = partition
    manifest = tmp_path / "import.manifest"
    old = "s3://somewhere/images/"
    manifest.write_text("".join(_line(old + n) + "\n" for n in ("good_a.jpg", "broken.jpg", "good_b.jpg")))
    cfg = _cfg(tmp_path, import_manifest=str(manifest))
    caplog.set_level(logging.INFO)
    out = label.import_labels(cfg, s3)
    body = s3.get_object(Bucket=BUCKET, Key=_key(out["manifest_uri"]))["Body"].read().decode()
    assert [json.loads(x)["source-ref"] for x in body.splitlines()] == [uris["good_a.jpg"], uris["good_b.jpg"]]
    assert out["images"] == 2
    assert f"{uris['broken.jpg']}" in caplog.text and "bad image" in caplog.text

    published = label.publish_manifest(cfg, s3, out["manifest_uri"])
    assert published["images"] == 2
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=_key(cfg.report_prefix + "unlabeled_images.json"))
                        ["Body"].read())
    assert [d["uri"] for d in report["dropped"]] == [uris["unlabeled.jpg"]]
    assert "import_manifest" in report["dropped"][0]["reason"]
    assert f"Image left out of training: {uris['unlabeled.jpg']}" in caplog.text


def test_ground_truth_failed_objects_are_reported_at_publish(s3, partition, tmp_path, caplog):
    """Ground Truth leaves failed objects out of its output manifest: publish names each one."""
    cfg, uris = partition
    cfg = _cfg(tmp_path, label_backend="ground_truth",
               gt_workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team")
    output = cfg.labeling_work_prefix + "ground-truth/job/manifests/output/output.manifest"
    s3.put_object(Bucket=BUCKET, Key=_key(output), Body=(_line(uris["good_a.jpg"]) + "\n" +
                                                        _line(uris["good_b.jpg"]) + "\n").encode())
    caplog.set_level(logging.INFO)
    label.publish_manifest(cfg, s3, output)
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=_key(cfg.report_prefix + "unlabeled_images.json"))
                        ["Body"].read())
    assert report["backend"] == "ground_truth"
    assert [d["uri"] for d in report["dropped"]] == [uris["unlabeled.jpg"]]
    assert "Ground Truth" in report["dropped"][0]["reason"]
    assert f"Image left out of training: {uris['unlabeled.jpg']}" in caplog.text
