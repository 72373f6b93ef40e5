"""The load test's payloads: local directories, S3 prefixes, size and decode checks."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from sagemaker_vision.core.loadtest import payloads as payload_checks
from sagemaker_vision.hooks.load_test import load_payloads
from tests.unit.core.loadtest.support import (
    JPEG,
    REGION,
    SAMPLE_IMAGES,
    png,
    set_aws_env,
)


@pytest.fixture
def aws_env(monkeypatch):
    set_aws_env(monkeypatch)


# ------------------------------------------------------------------------------------------------
# Payloads (moto for S3)


class TestPayloads:
    def test_local_directory_sorted_and_capped(self):
        payloads = load_payloads(str(SAMPLE_IMAGES), max_payloads=3)
        assert [(n, c) for n, _, c in payloads] == [("shape_000.jpg", "image/jpeg"),
                                                    ("shape_001.jpg", "image/jpeg"),
                                                    ("shape_002.jpg", "image/jpeg")]

    def test_relative_path_is_relative_to_the_project_root_not_the_working_directory(self, monkeypatch, tmp_path):
        # A worker's working directory may hold what another task left there: it is never read.
        decoy = tmp_path / "include" / "sample_data" / "images"
        decoy.mkdir(parents=True)
        (decoy / "left_by_another_task.jpg").write_bytes((SAMPLE_IMAGES / "shape_000.jpg").read_bytes())
        monkeypatch.chdir(tmp_path)
        payloads = load_payloads("include/sample_data/images")
        assert len(payloads) == 12 and "left_by_another_task.jpg" not in [n for n, _, _ in payloads]

    def test_errors_name_the_source(self, tmp_path):
        with pytest.raises(ValueError, match="neither an s3:// prefix nor an existing directory"):
            load_payloads(str(tmp_path / "missing"))
        (tmp_path / "notes.txt").write_text("x")
        with pytest.raises(ValueError, match="holds no .jpg/.jpeg/.png files"):
            load_payloads(str(tmp_path))
        (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
        with pytest.raises(ValueError, match=r"payload 'broken.jpg': image data \(10 bytes\) is not a"):
            load_payloads(str(tmp_path))

    def test_oversized_payloads_are_refused_before_reading(self, aws_env, monkeypatch):
        monkeypatch.setattr(payload_checks, "MAX_PAYLOAD_BYTES", 100)
        with pytest.raises(ValueError, match=r"shape_000.jpg' is 4171 bytes, over the 100 byte real-time"):
            load_payloads(str(SAMPLE_IMAGES))
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="images")
            s3.put_object(Bucket="images", Key="big.jpg", Body=JPEG)
            with pytest.raises(ValueError, match=rf"'s3://images/big.jpg' is {len(JPEG)} bytes, over"):
                load_payloads("s3://images/", s3_client=s3)

    def test_s3_prefix(self, aws_env):
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="images")
            s3.put_object(Bucket="images", Key="eval/b.png", Body=png())
            s3.put_object(Bucket="images", Key="eval/a.jpg", Body=JPEG)
            s3.put_object(Bucket="images", Key="eval/labels.json", Body=b"{}")
            s3.put_object(Bucket="images", Key="other/c.jpg", Body=JPEG)
            payloads = load_payloads("s3://images/eval/", s3_client=s3)
            assert [(n, c) for n, _, c in payloads] == [("s3://images/eval/a.jpg", "image/jpeg"),
                                                        ("s3://images/eval/b.png", "image/png")]
            assert payloads[0][1] == JPEG
            with pytest.raises(ValueError, match="payload_prefix 's3://images/none/' holds no"):
                load_payloads("s3://images/none/", s3_client=s3)
