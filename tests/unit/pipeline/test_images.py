"""Image validation (sagemaker_vision.pipeline.images): validate_partition, pick_smoke_image and smoke_test
against moto."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from sagemaker_vision.core import images
from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.images import ImageValidationError
from sagemaker_vision.core.params import param_defaults
from sagemaker_vision.pipeline import images as pipeline_images
from sagemaker_vision.pipeline.images import pick_smoke_image, validate_partition
from tests.unit.core.test_images import JPEG, PNG

BUCKET = "images-unit"


@pytest.fixture
def s3(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _cfg(**params: Any) -> PipelineConfig:
    run = RunInfo(run_id="manual__x", run_after=datetime(2026, 11, 29, 12, tzinfo=UTC))
    return PipelineConfig.from_params({**param_defaults(), "bucket": BUCKET, **params}, run=run, region="us-east-1")


def _put(s3, cfg, name: str, body: bytes) -> str:
    key = cfg.raw_prefix[len(f"s3://{BUCKET}/"):] + name
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return f"s3://{BUCKET}/{key}"


def test_the_policy_is_one_spec_for_form_and_config():
    from sagemaker_vision.core.validate import BAD_IMAGE_POLICIES, ConfigError
    from sagemaker_vision.pipeline.params import pipeline_params

    param = pipeline_params()["bad_image_policy"]
    assert param.value == "fail" and param.schema["enum"] == list(BAD_IMAGE_POLICIES)
    assert _cfg().bad_image_policy == "fail" and _cfg(bad_image_policy="skip").bad_image_policy == "skip"
    with pytest.raises(ConfigError, match="^bad_image_policy: must be one of fail, skip"):
        _cfg(bad_image_policy="ignore")


def test_fail_policy_names_every_bad_file_and_writes_the_report(s3):
    cfg = _cfg()
    _put(s3, cfg, "good.jpg", JPEG)
    _put(s3, cfg, "b.png", PNG)
    broken = _put(s3, cfg, "broken.jpg", os.urandom(3000))
    misnamed = _put(s3, cfg, "photo.jpeg", PNG)
    with pytest.raises(ImageValidationError) as err:
        validate_partition(cfg, s3)
    message = str(err.value)
    assert message.startswith("2 of 4 images under ")
    assert f"{broken}: not a readable image (3000 bytes" in message
    assert f"{misnamed}: extension says JPEG but the content is PNG" in message
    report = json.loads(s3.get_object(Bucket=BUCKET, Key=cfg.report_prefix.split("/", 3)[3] + "image_validation.json")
                        ["Body"].read())
    assert report["checked"] == 4 and report["valid"] == 2
    assert sorted(b["uri"] for b in report["bad"]) == sorted([broken, misnamed])


def test_skip_policy_reports_and_returns_but_fails_when_nothing_good_is_left(s3):
    cfg = _cfg(bad_image_policy="skip")
    _put(s3, cfg, "good.jpg", JPEG)
    _put(s3, cfg, "broken.jpg", b"")
    result = validate_partition(cfg, s3)
    assert (result["checked"], result["valid"], result["bad"]) == (2, 1, 1)
    s3.delete_object(Bucket=BUCKET, Key=cfg.raw_prefix.split("/", 3)[3] + "good.jpg")
    with pytest.raises(ImageValidationError, match="no good image is left"):
        validate_partition(cfg, s3)


def test_oversized_objects_are_refused_from_the_listing_without_a_download(s3, monkeypatch):
    cfg = _cfg()  # serverless: 4 MB
    big = _put(s3, cfg, "big.jpg", b"\xff" * (images.SERVERLESS_MAX_BYTES + 1))
    monkeypatch.setattr(pipeline_images.s3, "read_bytes", lambda *a, **k: pytest.fail("downloaded"))
    expected = re.escape(big) + r": 4,000,001 bytes \(3\.8 MiB\) is larger than the 4,000,000 bytes"
    with pytest.raises(ImageValidationError, match=expected):
        validate_partition(cfg, s3)


def _manifest(s3, uri: str, refs_and_boxes: list[tuple[str, int]]) -> None:
    lines = []
    for ref, n in refs_and_boxes:
        anns = [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}] * n
        lines.append(json.dumps({"source-ref": ref, "bounding-box": {"image_size": [{"width": 64, "height": 48}],
                                                                     "annotations": anns},
                                 "bounding-box-metadata": {"class-map": {"0": "circle"}}}))
    bucket, key = uri[5:].split("/", 1)
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(lines).encode())


def test_smoke_image_is_validated_labeled_and_from_the_validation_split_first(s3):
    cfg = _cfg(bad_image_policy="skip")
    good, other = _put(s3, cfg, "good.jpg", JPEG), _put(s3, cfg, "other.png", PNG)
    broken = _put(s3, cfg, "broken.jpg", os.urandom(3000))
    truncated = _put(s3, cfg, "truncated.jpg", JPEG[: len(JPEG) // 2])
    unlabeled = _put(s3, cfg, "empty.jpg", JPEG)
    validate_partition(cfg, s3)  # the report calls broken.jpg and truncated.jpg bad
    _manifest(s3, cfg.validation_manifest_uri, [(unlabeled, 0), (broken, 1), (truncated, 1), (other, 2)])
    _manifest(s3, cfg.train_manifest_uri, [(good, 1)])
    image = pick_smoke_image(cfg, s3)
    assert (image.uri, image.content_type, image.boxes) == (other, "image/png", 2)
    assert image.manifest_uri == cfg.validation_manifest_uri and image.body == PNG
    # Only the training split has a usable image: it is used, and said to be.
    _manifest(s3, cfg.validation_manifest_uri, [(broken, 1)])
    assert pick_smoke_image(cfg, s3).uri == good
    _manifest(s3, cfg.train_manifest_uri, [(unlabeled, 0)])
    with pytest.raises(RuntimeError, match=rf"no labeled, valid image .*{re.escape(broken)}: bad in"):
        pick_smoke_image(cfg, s3)


def test_smoke_image_is_rechecked_even_without_a_report(s3):
    """The retrain DAG validates nothing itself: a corrupt image in its manifests is still passed over."""
    cfg = _cfg()
    broken, good = _put(s3, cfg, "a-broken.jpg", os.urandom(3000)), _put(s3, cfg, "b.jpg", JPEG)
    _manifest(s3, cfg.validation_manifest_uri, [(broken, 1), (good, 1)])
    assert pick_smoke_image(cfg, s3).uri == good


def test_smoke_test_names_the_image_on_failure_and_success(s3, monkeypatch):
    from botocore.exceptions import ClientError

    from sagemaker_vision.core import inference
    from sagemaker_vision.hooks import base as aws
    from sagemaker_vision.pipeline import smoke_test as smoke

    cfg = _cfg()
    good = _put(s3, cfg, "good.jpg", JPEG)
    _manifest(s3, cfg.validation_manifest_uri, [(good, 1)])

    class SageMaker:
        status = "Creating"

        def describe_endpoint(self, EndpointName):  # noqa: N803
            return {"EndpointStatus": self.status}

    class Runtime:
        def invoke_endpoint(self, **kwargs):
            assert kwargs["Body"] == JPEG and kwargs["ContentType"] == "image/jpeg"
            raise ClientError({"Error": {"Code": "ModelError", "Message": "boom"}}, "InvokeEndpoint")

    sm, rt = SageMaker(), Runtime()
    monkeypatch.setattr(aws, "client", lambda name, *a, **k: {"sagemaker": sm, "sagemaker-runtime": rt, "s3": s3}[name])
    with pytest.raises(RuntimeError, match=rf"is Creating, not InService; smoke image {re.escape(good)} was not sent"):
        smoke.smoke_test(cfg, {"0": "circle"})
    sm.status = "InService"
    with pytest.raises(RuntimeError, match=rf"with {re.escape(good)} \(image/jpeg, 64x48\) failed: .*ModelError"):
        smoke.smoke_test(cfg, {"0": "circle"})

    class Replying:
        def invoke_endpoint(self, **kwargs):
            return {"Body": io.BytesIO(json.dumps({"prediction": [[0.0, 0.9, 0.1, 0.1, 0.5, 0.5]]}).encode())}

    rt = Replying()
    monkeypatch.setattr(aws, "client", lambda name, *a, **k: {"sagemaker": sm, "sagemaker-runtime": rt, "s3": s3}[name])
    result = smoke.smoke_test(cfg, {"0": "circle"})
    assert result["image"] == good and len(result["boxes"]) == 1
    assert dataclasses.asdict(inference.Box(**result["boxes"][0]))["label"] == "circle"


def test_load_test_payloads_from_a_manifest_are_its_images(s3):
    """The pipeline's load test sends the validation split's images, not whatever raw/ holds."""
    from sagemaker_vision.hooks.load_test import load_payloads

    cfg = _cfg()
    good, other = _put(s3, cfg, "b.jpg", JPEG), _put(s3, cfg, "a.png", PNG)
    _put(s3, cfg, "broken.jpg", os.urandom(3000))  # in raw/, not in the manifest: never sent
    _manifest(s3, cfg.validation_manifest_uri, [(good, 1), (other, 1)])
    payloads = load_payloads(cfg.validation_manifest_uri, s3_client=s3)
    assert [(name, ctype) for name, _, ctype in payloads] == [(other, "image/png"), (good, "image/jpeg")]
    assert payloads[1][1] == JPEG
    broken = _put(s3, cfg, "c-broken.jpg", os.urandom(3000))
    _manifest(s3, cfg.validation_manifest_uri, [(broken, 1)])
    with pytest.raises(ValueError, match=re.escape(broken)):
        load_payloads(cfg.validation_manifest_uri, s3_client=s3)


# --------------------------------------------------------------------------------------------
# Issue 9, finding 11: an empty or oversized image is refused before anything is paid, named with its size
# --------------------------------------------------------------------------------------------


def test_an_empty_and_a_50_mb_jpg_are_refused_naming_each_file_and_size(s3, monkeypatch):
    """The pipeline's validate_images (right after the sync, before labeling, training or deploy)."""
    cfg = _cfg()  # serverless, the default
    _put(s3, cfg, "good.jpg", JPEG)
    empty = _put(s3, cfg, "empty.jpg", b"")
    huge = _put(s3, cfg, "huge.jpg", JPEG + b"\0" * (50_000_000 - len(JPEG)))
    with pytest.raises(ImageValidationError) as err:
        validate_partition(cfg, s3)
    message = str(err.value)
    assert f"{empty}: empty file (0 bytes)" in message
    assert f"{huge}: 50,000,000 bytes (47.7 MiB) is larger than the 4,000,000 bytes (3.8 MiB) this endpoint" in message
    # A provisioned endpoint takes 6 MiB, an async one (input from S3) the 40 MB Ground Truth quota: still too big.
    limits = (("provisioned", "6,291,456 bytes (6.0 MiB)"), ("async", "40,000,000 bytes (38.1 MiB)"))
    for endpoint_type, limit in limits:
        cfg = _cfg(endpoint_type=endpoint_type)
        with pytest.raises(ImageValidationError, match=re.escape(f"{huge}: 50,000,000 bytes (47.7 MiB) is larger "
                                                                 f"than the {limit}")):
            validate_partition(cfg, s3)


def test_the_test_images_are_checked_against_the_deployed_endpoint_type_before_training(s3):
    """check_test_images makes the smoke and load tests' own choices before the deploy: an image validated
    for a provisioned endpoint (6 MiB) is refused, named with its size, when the run deploys serverless."""
    from sagemaker_vision.pipeline.images import check_test_images

    serverless, provisioned = _cfg(), _cfg(endpoint_type="provisioned")
    good = _put(s3, serverless, "a-good.jpg", JPEG)
    big = _put(s3, serverless, "b-big.jpg", JPEG + b"\0" * (4_500_000 - len(JPEG)))  # decodable, 4.5 MB
    _manifest(s3, serverless.validation_manifest_uri, [(good, 1), (big, 1)])
    result = check_test_images(provisioned, s3)
    assert (result["smoke_image"], result["load_test_payloads"]) == (good, 2)
    with pytest.raises(ImageValidationError, match=rf"load test could not send .* serverless endpoint: payload "
                                                   rf"'{re.escape(big)}' is 4500000 bytes, over the 4000000 byte"):
        check_test_images(serverless, s3)
    # A 0-byte image in the split is named too; an async run sends only the smoke image (and within 40 MB).
    empty = _put(s3, serverless, "c-empty.jpg", b"")
    _manifest(s3, serverless.validation_manifest_uri, [(good, 1), (empty, 1)])
    with pytest.raises(ImageValidationError, match=rf"payload '{re.escape(empty)}' is empty \(0 bytes\)"):
        check_test_images(provisioned, s3)
    assert "load_test_payloads" not in check_test_images(_cfg(endpoint_type="async"), s3)
    # No image fits at all: the smoke test's reason names each file.
    _manifest(s3, serverless.validation_manifest_uri, [(big, 1), (empty, 1)])
    _manifest(s3, serverless.train_manifest_uri, [])
    with pytest.raises(ImageValidationError, match=rf"smoke test would have no image .*{re.escape(big)}: 4,500,000 "
                                                   rf"bytes .*{re.escape(empty)}: empty file \(0 bytes\)"):
        check_test_images(serverless, s3)


def test_prepare_manifests_checks_the_test_images_before_anything_downstream(s3, monkeypatch):
    """The wiring: both pipeline DAGs' prepare_manifests task (before needs_training, train and deploy) runs
    check_test_images on the manifests it just wrote, and fails the task when an image does not fit."""
    from sagemaker_vision.hooks import base as aws
    from sagemaker_vision.pipeline import manifests, tasks

    cfg = _cfg()
    big = _put(s3, cfg, "big.jpg", JPEG + b"\0" * (4_500_000 - len(JPEG)))
    _manifest(s3, cfg.validation_manifest_uri, [(big, 1)])
    _manifest(s3, cfg.train_manifest_uri, [])
    written = {"validation_uri": cfg.validation_manifest_uri, "train_uri": cfg.train_manifest_uri}
    monkeypatch.setattr(manifests, "prepare_manifests", lambda *a, **k: written)
    monkeypatch.setattr(tasks, "pipeline_config", lambda context: cfg)
    monkeypatch.setattr(aws, "client", lambda name, *a, **k: s3)
    with pytest.raises(ImageValidationError, match=rf"{re.escape(big)}: 4,500,000 bytes"):
        tasks.prepare_manifests.function()
    good = _put(s3, cfg, "good.jpg", JPEG)
    _manifest(s3, cfg.validation_manifest_uri, [(good, 1)])
    assert tasks.prepare_manifests.function() is written
