"""core.s3_sync: the pure planner, the URIs, include patterns, endpoints and content types."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagemaker_vision.core import s3_sync
from sagemaker_vision.core.s3_sync import (
    ObjectInfo,
    parse_include,
    plan_sync,
    resolve_endpoints,
)
from sagemaker_vision.core.validate import parse_s3_uri

DEST = "dest-bucket"
DEST_URI = f"s3://{DEST}/raw/"

# --------------------------------------------------------------------------------------------
# plan_sync (pure)
# --------------------------------------------------------------------------------------------


def _loader(value: str, calls: list[str]):
    def load() -> str:
        calls.append(value)
        return value

    return load


def test_plan_copies_missing_and_resized_and_skips_equal() -> None:
    src = {
        "new.jpg": ObjectInfo("new.jpg", 10, etag="a" * 32),
        "grown.jpg": ObjectInfo("grown.jpg", 20, etag="b" * 32),
        "same.jpg": ObjectInfo("same.jpg", 30, etag="c" * 32),
    }
    dst = {
        "grown.jpg": ObjectInfo("raw/grown.jpg", 19, etag="b" * 32),
        "same.jpg": ObjectInfo("raw/same.jpg", 30, etag='"' + "C" * 32 + '"'),  # quotes and case
    }
    plan = plan_sync(src, dst)
    assert list(plan.to_copy) == ["grown.jpg", "new.jpg"]
    assert plan.copy_reasons == {"grown.jpg": "size", "new.jpg": "missing"}
    assert plan.to_skip == ("same.jpg",)
    assert plan.bytes_to_copy == 30
    assert plan.to_delete == ()


def test_plan_etag_differs_same_size_is_copied_even_if_dest_is_newer() -> None:
    src = {"a.jpg": ObjectInfo("a.jpg", 5, etag="1" * 32, mtime=100.0)}
    dst = {"a.jpg": ObjectInfo("raw/a.jpg", 5, etag="2" * 32, mtime=200.0)}
    assert plan_sync(src, dst).copy_reasons == {"a.jpg": "etag"}
    # Same content but touched later: the ETag says it is unchanged.
    src_touched = {"a.jpg": ObjectInfo("a.jpg", 5, etag="2" * 32, mtime=300.0)}
    assert plan_sync(src_touched, dst).to_skip == ("a.jpg",)


def test_plan_hashes_local_files_lazily_only_when_sizes_match() -> None:
    calls: list[str] = []
    src = {
        "first.jpg": ObjectInfo("first.jpg", 5, etag_loader=_loader("x" * 32, calls)),
        "resized.jpg": ObjectInfo("resized.jpg", 6, etag_loader=_loader("y" * 32, calls)),
        "same.jpg": ObjectInfo("same.jpg", 7, etag_loader=_loader("z" * 32, calls)),
    }
    dst = {
        "resized.jpg": ObjectInfo("raw/resized.jpg", 60, etag="y" * 32),
        "same.jpg": ObjectInfo("raw/same.jpg", 7, etag="z" * 32),
    }
    plan = plan_sync(src, dst)
    assert plan.to_skip == ("same.jpg",)
    assert calls == ["z" * 32]  # neither the new nor the resized file was hashed
    assert src["same.jpg"].etag == "z" * 32 and src["same.jpg"].etag_loader is None  # cached


@pytest.mark.parametrize(("src_mtime", "dst_mtime"), [(300.0, 200.0), (200.0, 200.0), (100.0, 200.0), (None, 200.0)])
def test_plan_multipart_etag_never_falls_back_to_mtime(src_mtime, dst_mtime) -> None:
    """Issue 9, item 4: a multipart ETag proves nothing, so an older or equal mtime is no reason to skip."""
    calls: list[str] = []
    src = {"big.tif": ObjectInfo("big.tif", 9, mtime=src_mtime, etag_loader=_loader("m" * 32, calls))}
    dst = {"big.tif": ObjectInfo("raw/big.tif", 9, etag="abcdef-2", mtime=dst_mtime)}
    assert plan_sync(src, dst).copy_reasons == {"big.tif": "etag"}
    # With the MD5 the sync state (or md5chksum metadata) vouches for, the same pair is decided by content.
    dst["big.tif"].md5 = "m" * 32
    assert plan_sync(src, dst).to_skip == ("big.tif",)
    dst["big.tif"].md5 = "n" * 32
    assert plan_sync(src, dst).copy_reasons == {"big.tif": "etag"}


def test_plan_s3_source_uses_the_recorded_source_etag_not_mtime() -> None:
    src = {"k": ObjectInfo("p/k", 9, etag="aa-3", mtime=50.0)}
    dst = {"k": ObjectInfo("raw/k", 9, etag="b" * 32, mtime=100.0)}
    assert plan_sync(src, dst).copy_reasons == {"k": "etag"}  # nothing proves them equal
    dst["k"].source_etag = "aa-3"  # the state: raw/k's write was a copy of exactly this source
    assert plan_sync(src, dst).to_skip == ("k",)
    dst["k"].source_etag = "aa-4"
    assert plan_sync(src, dst).copy_reasons == {"k": "etag"}


def test_plan_local_md5_against_a_non_md5_etag_is_decided_by_the_vouched_md5() -> None:
    """SSE-KMS / SSE-C: the ETag is not the MD5, so only the recorded MD5 can prove equality."""
    src = {"a.jpg": ObjectInfo("a.jpg", 5, etag_loader=lambda: "c" * 32)}
    dst = {"a.jpg": ObjectInfo("raw/a.jpg", 5, etag="9" * 32)}  # looks like an MD5, is not
    assert plan_sync(src, dst).copy_reasons == {"a.jpg": "etag"}
    dst["a.jpg"].md5 = "c" * 32
    assert plan_sync(src, dst).to_skip == ("a.jpg",)


def test_plan_compare_modes() -> None:
    src = {"a": ObjectInfo("a", 5, etag="1" * 32, mtime=300.0)}
    dst = {"a": ObjectInfo("raw/a", 5, etag="2" * 32, mtime=200.0)}
    assert plan_sync(src, dst, compare="size_and_mtime").copy_reasons == {"a": "mtime"}
    assert plan_sync(src, dst, compare="size_only").to_skip == ("a",)
    with pytest.raises(ValueError, match="^compare: "):
        plan_sync(src, dst, compare="md5")  # type: ignore[arg-type]


def test_plan_delete_only_when_asked() -> None:
    src = {"a": ObjectInfo("a", 1)}
    dst = {"a": ObjectInfo("raw/a", 1), "old": ObjectInfo("raw/old", 1), "b/old": ObjectInfo("raw/b/old", 1)}
    assert plan_sync(src, dst).to_delete == ()
    assert plan_sync(src, dst, delete=True).to_delete == ("b/old", "old")


def test_object_info_rejects_negative_size() -> None:
    with pytest.raises(ValueError, match="^size: .*'a.jpg'"):
        ObjectInfo("a.jpg", -1)


# --------------------------------------------------------------------------------------------
# URIs, include and local listing
# --------------------------------------------------------------------------------------------


def test_parse_s3_uri_normalises_prefix_as_folder() -> None:
    """The sync reads its URIs with the one parser, as folders (it was its own parser before issue 10)."""
    assert parse_s3_uri("s3://my-bucket", "dest", folder=True) == ("my-bucket", "")
    assert parse_s3_uri("s3://my-bucket/", "dest", folder=True) == ("my-bucket", "")
    assert parse_s3_uri("s3://my-bucket/raw/dt=2024-01-01", "dest", folder=True) == ("my-bucket", "raw/dt=2024-01-01/")


@pytest.mark.parametrize(
    ("source", "dest", "include", "exc", "match"),
    [
        ("s3://ok-bucket/a", "/tmp/out", None, ValueError, "^dest: '/tmp/out' is not an s3:// URI"),
        ("s3://ok-bucket/a", "s3://Bad_Bucket/x", None, ValueError, "^dest: 'Bad_Bucket' is not a valid"),
        ("s3://ok-bucket/a", "s3://b/x", None, ValueError, "^dest: 'b' is not a valid"),
        ("s3://ok-bucket/a", "s3://ok-bucket/a//b", None, ValueError, "^dest: .* has an empty path segment"),
        ("s3://x/a", "s3://ok-bucket/raw", None, ValueError, "^source: 'x' is not a valid"),
        ("gs://ok-bucket/a", "s3://ok-bucket/raw", None, ValueError, "^source: unsupported scheme"),
        ("", "s3://ok-bucket/raw", None, ValueError, "^source: expected"),
        ("/no/such/folder", "s3://ok-bucket/raw", None, FileNotFoundError, "^source: local folder"),
        ("s3://ok-bucket/raw", "s3://ok-bucket/raw/sub", None, ValueError, "^dest: .* overlaps source"),
        ("s3://ok-bucket/raw/sub", "s3://ok-bucket/raw", None, ValueError, "^dest: .* overlaps source"),
        ("s3://ok-bucket/a", "s3://ok-bucket/b", " , ", ValueError, "^include: no glob patterns"),
    ],
)
def test_resolve_endpoints_errors_name_the_field(source, dest, include, exc, match) -> None:
    with pytest.raises(exc, match=match):
        resolve_endpoints(source, dest, include)


def test_resolve_endpoints_rejects_a_file_as_source(tmp_path: Path) -> None:
    (tmp_path / "f.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="^source: .* is not a folder"):
        resolve_endpoints(str(tmp_path / "f.jpg"), DEST_URI, None)


def test_parse_include() -> None:
    assert parse_include(None) == ()
    assert parse_include("*.jpg, *.png,") == ("*.jpg", "*.png")
    assert parse_include(["*.jpg"]) == ("*.jpg",)


def test_content_type() -> None:
    assert s3_sync.content_type("a/b.JPG") == "image/jpeg"
    assert s3_sync.content_type("b.png") == "image/png"
    assert s3_sync.content_type("train.manifest") == "application/jsonlines"
    assert s3_sync.content_type("blob.unknownext") == "application/octet-stream"
