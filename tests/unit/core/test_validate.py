"""A local image_source is confined to include/ and $SAGEMAKER_VISION_IMAGE_ROOTS (issue 9, item 1).

The refusal happens when the config is built (the form, estimate_costs, every task), so nothing is
listed, uploaded or paid for; the message names the field and the allowed roots.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sagemaker_vision.core import validate as config
from sagemaker_vision.core.config import PipelineConfig, RunInfo
from sagemaker_vision.core.params import param_defaults
from sagemaker_vision.core.validate import ConfigError

RUN = RunInfo(run_id="manual__x", run_after=datetime(2026, 11, 25, tzinfo=UTC))
ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
IMAGE_ROOTS_ENV = "SAGEMAKER_VISION_IMAGE_ROOTS"  # the setting, spelled out as users spell it


def build(image_source: str) -> PipelineConfig:
    params = {**param_defaults(), "role_arn": ROLE, "image_source": image_source}
    return PipelineConfig.from_params(params, run=RUN, region="us-east-1")


@pytest.fixture(autouse=True)
def no_extra_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IMAGE_ROOTS_ENV, raising=False)


def test_the_demo_folder_and_s3_sources_are_accepted() -> None:
    assert build("include/sample_data/images").sync_source == str(config.PROJECT_ROOT / "include/sample_data/images")
    assert build(str(config.INCLUDE_DIR / "sample_data" / "images")).image_source.endswith("images")
    assert build("s3://camera-uploads/site-a/").sync_source == "s3://camera-uploads/site-a/"


@pytest.mark.parametrize("source", ["/etc", "/", "plugins", "include/../../..", "../outside", "include/../plugins",
                                    "include/sample_data/../sample_data/images", "/tmp"])
def test_paths_outside_the_roots_or_with_dotdot_are_refused_naming_field_and_roots(source: str) -> None:
    with pytest.raises(ConfigError) as info:
        build(source)
    message = str(info.value)
    assert message.startswith("image_source: ") and info.value.field == "image_source"
    assert os.path.realpath(config.INCLUDE_DIR) in message and IMAGE_ROOTS_ENV in message


def test_the_allow_list_adds_roots_and_is_matched_by_path_segments(tmp_path: Path, monkeypatch) -> None:
    allowed, sibling = tmp_path / "allowed", tmp_path / "allowed-not"
    (allowed / "cam1").mkdir(parents=True)
    sibling.mkdir()
    with pytest.raises(ConfigError, match="^image_source: .* outside the allowed roots"):
        build(str(allowed / "cam1"))
    monkeypatch.setenv(IMAGE_ROOTS_ENV, os.pathsep.join(["/nonexistent-root", str(allowed)]))
    assert build(str(allowed / "cam1")).sync_source == str(allowed / "cam1")
    assert build(str(allowed)).image_source == str(allowed)
    with pytest.raises(ConfigError, match="outside the allowed roots"):
        build(str(sibling))  # a string prefix of the root is not inside it


def test_symlinks_are_resolved_before_the_check(tmp_path: Path, monkeypatch) -> None:
    real_root, outside = tmp_path / "real-root", tmp_path / "outside"
    (real_root / "images").mkdir(parents=True)
    outside.mkdir()
    (real_root / "escape").symlink_to(outside, target_is_directory=True)
    (tmp_path / "root-link").symlink_to(real_root, target_is_directory=True)
    monkeypatch.setenv(IMAGE_ROOTS_ENV, str(tmp_path / "root-link"))  # the root itself through a link
    assert build(str(real_root / "images")).image_source == str(real_root / "images")
    assert build(str(tmp_path / "root-link" / "images")).image_source.endswith("images")
    with pytest.raises(ConfigError, match=f"resolves to {outside}, outside the allowed roots"):
        build(str(real_root / "escape"))


def test_a_relative_allow_list_entry_is_refused(monkeypatch) -> None:
    monkeypatch.setenv(IMAGE_ROOTS_ENV, "images")
    with pytest.raises(ConfigError, match=r"^image_source: \$SAGEMAKER_VISION_IMAGE_ROOTS entry 'images' is not an"):
        build("include/sample_data/images")


# ---- the one S3 URI parser and the ARN rules (issue 10: three parse_s3_uri became one) ----------------


def test_parse_s3_uri_splits_checks_the_bucket_and_names_the_field() -> None:
    from sagemaker_vision.core.validate import parse_s3_uri

    assert parse_s3_uri("s3://my-bucket/a/b.jpg", "image") == ("my-bucket", "a/b.jpg")
    assert parse_s3_uri("s3://my-bucket", "image") == ("my-bucket", "")
    assert parse_s3_uri("s3://my-bucket/raw", "dest", folder=True) == ("my-bucket", "raw/")
    assert parse_s3_uri("s3://my-bucket//raw/", "dest", folder=True) == ("my-bucket", "raw/")
    for value, problem in [("/tmp/x", "is not an s3:// URI"), (None, "is not an s3:// URI"),
                           ("s3://My_Bucket/x", "is not a valid S3 bucket name"), ("s3:///x", "valid S3 bucket"),
                           ("s3://my-bucket/a//b", "empty path segment")]:
        with pytest.raises(ConfigError, match=f"^field: .*{problem}"):
            parse_s3_uri(value, "field")  # type: ignore[arg-type]


def test_the_arn_rules_are_the_ones_ground_truth_and_iam_take() -> None:
    from sagemaker_vision.core.validate import ROLE_ARN_RE, WORKTEAM_ARN_RE, validate_role_arn

    assert validate_role_arn("arn:aws:iam::123456789012:role/service-role/SageMaker+Exec=1")
    for bad in ("arn:aws:iam::123456789012:rolex", "arn:aws:iam::123456789012:role/é", "arn:aws:iam::12:role/x"):
        assert not ROLE_ARN_RE.match(bad), bad
    match = WORKTEAM_ARN_RE.match("arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/team-a")
    assert match and (match["region"], match["kind"], match["name"]) == ("eu-west-1", "private-crowd", "team-a")
    assert not WORKTEAM_ARN_RE.match("arn:aws:sagemaker:eu-west-1:123456789012:workteam/team-a")
