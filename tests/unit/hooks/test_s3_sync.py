"""hooks.s3_sync: the listings and sync() against moto (transfers, deletions, the state)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from sagemaker_vision.core import s3_sync as core_sync
from sagemaker_vision.core import s3_sync_state as sync_state
from sagemaker_vision.core.s3_sync import S3SyncError
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import s3_sync, s3_sync_listing, s3_transfer
from sagemaker_vision.hooks.s3_sync import list_local, sync

SRC = "src-bucket"
DEST = "dest-bucket"
DEST_URI = f"s3://{DEST}/raw/"

# --------------------------------------------------------------------------------------------
# Local listing
# --------------------------------------------------------------------------------------------


def test_list_local_skips_hidden_and_filters(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / ".cache").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "cats" / "B.JPG").write_bytes(b"bb")
    (tmp_path / "cats" / "notes.txt").write_bytes(b"n")
    (tmp_path / ".DS_Store").write_bytes(b"h")
    (tmp_path / ".cache" / "c.jpg").write_bytes(b"c")
    os.mkfifo(tmp_path / "pipe.jpg")  # would block an upload forever
    os.symlink(tmp_path / "missing.jpg", tmp_path / "dangling.jpg")

    everything = list_local(tmp_path)
    assert sorted(everything) == ["a.jpg", "cats/B.JPG", "cats/notes.txt"]
    assert everything["cats/B.JPG"].key_or_relpath == "cats/B.JPG"
    assert everything["cats/B.JPG"].size == 2
    assert everything["cats/B.JPG"].etag is None  # not hashed while listing
    assert sorted(list_local(tmp_path, "*.jpg,*.png")) == ["a.jpg", "cats/B.JPG"]
    assert sorted(list_local(tmp_path, "cats/*")) == ["cats/B.JPG", "cats/notes.txt"]


def test_list_local_follows_symlinks_only_inside_the_source(tmp_path: Path, caplog) -> None:
    """Issue 9, item 1: a link to /etc/passwd (or any file outside the folder) is never uploaded."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"outside")
    (root / "inside-link.jpg").symlink_to(root / "a.jpg")
    (root / "outside-link.jpg").symlink_to(secret)
    (root / "passwd").symlink_to("/etc/passwd")
    caplog.set_level(logging.INFO, logger=s3_sync.__name__)
    listed = list_local(root)
    assert sorted(listed) == ["a.jpg", "inside-link.jpg"]
    assert f"Skipping symlink {root / 'outside-link.jpg'} -> {secret}: it points outside" in caplog.text
    assert "Skipping symlink" in caplog.text and "/etc/passwd" in caplog.text
    assert "Following symlink" in caplog.text


# --------------------------------------------------------------------------------------------
# sync() against moto
# --------------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type":"aws","extra":{"region_name":"us-east-1"}}')
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


class CallLog:
    """Counts S3 API calls (thread-safe) via a botocore event hook."""

    def __init__(self, client: Any):
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self.calls[event_name.rsplit(".", 1)[-1]] += 1


@pytest.fixture
def s3(aws_env: None):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", config=aws.botocore_config(8))
        client.create_bucket(Bucket=SRC)
        client.create_bucket(Bucket=DEST)
        yield client


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """24 small images in two folders, plus files the sync must ignore."""
    root = tmp_path / "images"
    for folder in ("cats", "dogs"):
        (root / folder).mkdir(parents=True)
        for i in range(12):
            ext = "jpg" if i % 2 else "png"
            (root / folder / f"{i:03d}.{ext}").write_bytes(f"{folder}-{i}".encode() * (50 + i))
    (root / ".DS_Store").write_bytes(b"hidden")
    (root / ".thumbs").mkdir()
    (root / ".thumbs" / "x.jpg").write_bytes(b"hidden")
    return root


def _dest_keys(client: Any, prefix: str = "raw/") -> dict[str, dict[str, Any]]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=DEST, Prefix=prefix):
        for obj in page.get("Contents", ()):
            out[obj["Key"]] = obj
    return out


def _age(path: Path, seconds: float = 3600) -> None:
    """Set a file's mtime in the past, as if it had not changed since before the upload."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_first_sync_copies_all_then_noop_resync(s3: Any, images: Path, caplog) -> None:
    calls = CallLog(s3)
    caplog.set_level(logging.INFO, logger=s3_sync.__name__)
    result = sync(str(images), DEST_URI, client=s3, max_concurrency=8)

    total = sum(p.stat().st_size for p in images.rglob("*") if p.is_file() and ".thumbs" not in p.parts
                and not p.name.startswith("."))
    assert result == {"copied": 24, "skipped": 0, "deleted": 0, "bytes_copied": total, "verified_by_head": 0,
                      "refused": 0, "aborted_uploads": 0, "refused_files": [], "source": str(images),
                      "dest": DEST_URI}
    keys = _dest_keys(s3)
    assert len(keys) == 24 and "raw/cats/001.jpg" in keys and "raw/.DS_Store" not in keys
    assert s3.head_object(Bucket=DEST, Key="raw/cats/001.jpg")["ContentType"] == "image/jpeg"
    assert s3.head_object(Bucket=DEST, Key="raw/dogs/002.png")["ContentType"] == "image/png"
    body = s3.get_object(Bucket=DEST, Key="raw/dogs/003.jpg")["Body"].read()
    assert body == (images / "dogs/003.jpg").read_bytes()
    assert calls.calls["PutObject"] == 24 + 1 and calls.calls["CreateMultipartUpload"] == 0  # + the state
    assert "Copied 24/24 files" in caplog.text and "(100%)" in caplog.text
    assert "copied 24" in caplog.text  # the final summary

    calls.calls.clear()
    again = sync(str(images), DEST_URI, client=s3, max_concurrency=8)
    assert again["copied"] == 0 and again["skipped"] == 24 and again["bytes_copied"] == 0
    assert calls.calls["PutObject"] == 0  # not even the state: nothing changed
    assert calls.calls["HeadObject"] == 0 and calls.calls["GetObject"] == 1  # the state, once


def test_changed_files_are_recopied(s3: Any, images: Path, monkeypatch) -> None:
    sync(str(images), DEST_URI, client=s3)
    same_size = images / "cats/001.jpg"
    same_size.write_bytes(bytes(reversed(same_size.read_bytes())))  # same size, new content
    _age(same_size)  # older than the upload: only the ETag can tell it changed
    (images / "dogs/000.png").write_bytes(b"a different size")

    hashed: list[str] = []
    real_md5 = core_sync.md5_file
    for module in (s3_sync_listing, s3_transfer):  # the listing's lazy MD5s and the multipart uploads'
        monkeypatch.setattr(module, "md5_file", lambda p: hashed.append(str(p)) or real_md5(p))
    result = sync(str(images), DEST_URI, client=s3)

    assert result["copied"] == 2 and result["skipped"] == 22
    assert s3.get_object(Bucket=DEST, Key="raw/cats/001.jpg")["Body"].read() == same_size.read_bytes()
    assert s3.get_object(Bucket=DEST, Key="raw/dogs/000.png")["Body"].read() == b"a different size"
    assert len(hashed) == 23  # every same-size file, but not the resized one
    assert not any(h.endswith("000.png") and "dogs" in h for h in hashed)


def test_size_and_mtime_recopies_newer_source(s3: Any, images: Path) -> None:
    sync(str(images), DEST_URI, client=s3, compare="size_and_mtime")
    for p in images.rglob("*.*"):
        _age(p)
    assert sync(str(images), DEST_URI, client=s3, compare="size_and_mtime")["copied"] == 0
    future = time.time() + 3600
    os.utime(images / "cats/002.png", (future, future))
    assert sync(str(images), DEST_URI, client=s3, compare="size_and_mtime")["copied"] == 1


def test_delete_false_keeps_and_delete_true_removes_extras(s3: Any, images: Path, monkeypatch) -> None:
    sync(str(images), DEST_URI, client=s3)
    extras = [f"raw/old/{i}.jpg" for i in range(7)]
    for key in extras:
        s3.put_object(Bucket=DEST, Key=key, Body=b"stale")
    s3.put_object(Bucket=DEST, Key="other/keep.jpg", Body=b"outside the prefix")

    assert sync(str(images), DEST_URI, client=s3)["deleted"] == 0
    assert set(extras) <= set(_dest_keys(s3))

    monkeypatch.setattr(s3_transfer, "DELETE_BATCH", 3)  # 7 keys -> batches of 3, 3, 1
    calls = CallLog(s3)
    result = sync(str(images), DEST_URI, client=s3, delete=True)
    assert result["deleted"] == 7 and result["copied"] == 0
    assert calls.calls["DeleteObjects"] == 3
    assert len(_dest_keys(s3)) == 24
    assert "other/keep.jpg" in _dest_keys(s3, prefix="other/")


def test_delete_errors_are_reported_by_key(s3: Any, images: Path) -> None:
    s3.put_object(Bucket=DEST, Key="raw/locked.jpg", Body=b"x")
    s3.put_object(Bucket=DEST, Key="raw/stale.jpg", Body=b"x")

    class Proxy:
        def __getattr__(self, name: str) -> Any:
            return getattr(s3, name)

        def delete_objects(self, **kwargs: Any) -> dict[str, Any]:
            objs = kwargs["Delete"]["Objects"]
            kwargs["Delete"]["Objects"] = [o for o in objs if o["Key"] != "raw/locked.jpg"]
            s3.delete_objects(**kwargs)
            return {"Errors": [{"Key": "raw/locked.jpg", "Code": "AccessDenied", "Message": "Access Denied"}]}

    with pytest.raises(S3SyncError, match=r"raw/locked\.jpg \(AccessDenied\)") as err:
        sync(str(images), DEST_URI, client=Proxy(), delete=True)
    assert [f.key for f in err.value.failures] == ["raw/locked.jpg"]
    assert "raw/stale.jpg" not in _dest_keys(s3)


def test_delete_refuses_to_empty_dest_from_an_empty_source(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=DEST, Key="raw/a.jpg", Body=b"x")
    with pytest.raises(ValueError, match="^source: .* has no files to sync; refusing to delete all 1"):
        sync(str(tmp_path), DEST_URI, client=s3, delete=True)
    assert "raw/a.jpg" in _dest_keys(s3)


def test_include_glob_filters_both_sides(s3: Any, images: Path) -> None:
    s3.put_object(Bucket=DEST, Key="raw/labels.json", Body=b"{}")
    result = sync(str(images), DEST_URI, client=s3, include="*.jpg", delete=True)
    assert result["copied"] == 12
    keys = _dest_keys(s3)
    assert all(k.endswith(".jpg") for k in keys if k != "raw/labels.json")
    assert "raw/labels.json" in keys  # outside the filter, so not deleted


def test_s3_to_s3_uses_server_side_copy(s3: Any) -> None:
    for i in range(10):
        s3.put_object(Bucket=SRC, Key=f"in/img{i}.jpg", Body=b"x" * (100 + i), ContentType="image/jpeg")
    s3.put_object(Bucket=SRC, Key="in/", Body=b"")  # a "folder" marker, not an image
    s3.put_object(Bucket=SRC, Key="in2/not-me.jpg", Body=b"sibling prefix")
    calls = CallLog(s3)

    result = sync(f"s3://{SRC}/in", DEST_URI, client=s3)
    assert result["copied"] == 10 and result["bytes_copied"] == sum(100 + i for i in range(10))
    assert calls.calls["CopyObject"] == 10
    assert calls.calls["PutObject"] == 1 and calls.calls["GetObject"] == 1  # the sync state, read then written
    assert sorted(_dest_keys(s3)) == sorted(f"raw/img{i}.jpg" for i in range(10))
    assert s3.head_object(Bucket=DEST, Key="raw/img3.jpg")["ContentType"] == "image/jpeg"

    calls.calls.clear()
    assert sync(f"s3://{SRC}/in", DEST_URI, client=s3)["skipped"] == 10  # equal MD5 ETags
    assert calls.calls["CopyObject"] == 0


def test_large_local_file_uses_multipart_and_resync_does_not_hash_it(s3: Any, tmp_path: Path,
                                                                      monkeypatch) -> None:
    (tmp_path / "big.tif").write_bytes(os.urandom(core_sync.SMALL_FILE_LIMIT + 1024))
    (tmp_path / "small.jpg").write_bytes(b"small")
    _age(tmp_path / "big.tif")
    calls = CallLog(s3)
    assert sync(str(tmp_path), DEST_URI, client=s3)["copied"] == 2
    assert calls.calls["CreateMultipartUpload"] == 1 and calls.calls["UploadPart"] == 2
    # small.jpg, the sync state, and the upload journal: entered with the upload, left at the end
    assert calls.calls["PutObject"] == 1 + 1 + 2
    head = s3.head_object(Bucket=DEST, Key="raw/big.tif")
    assert head["ContentType"] == "image/tiff" and head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"] == {"md5chksum": __import__("base64").b64encode(
        __import__("hashlib").md5((tmp_path / "big.tif").read_bytes()).digest()).decode()}

    calls.calls.clear()
    result = sync(str(tmp_path), DEST_URI, client=s3)
    assert result["copied"] == 0 and result["skipped"] == 2 and result["verified_by_head"] == 0
    assert calls.calls["HeadObject"] == 0  # the state vouches for the multipart object's MD5

    # Issue 9, item 4: one byte changed, size and mtime kept: copied, although the ETag is multipart.
    big = tmp_path / "big.tif"
    st = big.stat()
    data = bytearray(big.read_bytes())
    data[len(data) // 2] ^= 0xFF
    big.write_bytes(bytes(data))
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = sync(str(tmp_path), DEST_URI, client=s3)
    assert result["copied"] == 1 and result["skipped"] == 1
    assert s3.get_object(Bucket=DEST, Key="raw/big.tif")["Body"].read() == bytes(data)


def test_large_s3_object_uses_managed_multipart_copy(s3: Any, monkeypatch) -> None:
    monkeypatch.setattr(s3_sync, "COPY_OBJECT_LIMIT", 1024)  # stand-in for 5 GiB
    s3.put_object(Bucket=SRC, Key="in/big.tif", Body=os.urandom(core_sync.SMALL_FILE_LIMIT + 1024),
                  ContentType="image/tiff", Metadata={"camera": "c1"})
    calls = CallLog(s3)
    assert sync(f"s3://{SRC}/in/", DEST_URI, client=s3)["copied"] == 1
    assert calls.calls["UploadPartCopy"] == 2 and calls.calls["CopyObject"] == 0
    head = s3.head_object(Bucket=DEST, Key="raw/big.tif")
    assert head["ContentType"] == "image/tiff" and head["Metadata"] == {"camera": "c1"}


def test_failed_transfer_names_the_key_and_the_others_complete(s3: Any, images: Path) -> None:
    def deny(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] in ("raw/cats/005.jpg", "raw/dogs/010.png"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "PutObject")

    s3.put_object(Bucket=DEST, Key="raw/stale.jpg", Body=b"x")
    s3.meta.events.register("provide-client-params.s3.PutObject", deny)
    with pytest.raises(S3SyncError) as err:
        sync(str(images), DEST_URI, client=s3, delete=True)

    message = str(err.value)
    assert "raw/cats/005.jpg (AccessDenied)" in message and "raw/dogs/010.png (AccessDenied)" in message
    assert message.startswith("2 of 25 operations failed")
    assert sorted(f.key for f in err.value.failures) == ["raw/cats/005.jpg", "raw/dogs/010.png"]
    s3.meta.events.unregister("provide-client-params.s3.PutObject", deny)
    keys = _dest_keys(s3)
    assert len(keys) == 23  # 22 copied, plus the stale object
    assert "raw/stale.jpg" in keys  # a failing run deletes nothing


def test_sync_rejects_bad_arguments_before_any_call(tmp_path: Path) -> None:
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"client.{name} used")

    with pytest.raises(ValueError, match="^max_concurrency: "):
        sync(str(tmp_path), DEST_URI, client=NoCalls(), max_concurrency=0)
    with pytest.raises(ValueError, match="^dest: "):
        sync(str(tmp_path), "s3:/typo/raw", client=NoCalls())
    with pytest.raises(FileNotFoundError, match="^source: "):
        sync(str(tmp_path / "nope"), DEST_URI, client=NoCalls())


def test_a_size_only_skip_teaches_the_state_nothing(s3: Any) -> None:
    """size_only skips a same-size changed source; a later content sync must still copy it."""
    s3.put_object(Bucket=SRC, Key="in/a.jpg", Body=b"aaaa")
    sync(f"s3://{SRC}/in/", DEST_URI, client=s3)
    s3.put_object(Bucket=SRC, Key="in/a.jpg", Body=b"bbbb")
    s3.delete_object(Bucket=DEST, Key=sync_state.state_key("raw/"))  # nothing known of raw/a.jpg
    assert sync(f"s3://{SRC}/in/", DEST_URI, client=s3, compare="size_only")["copied"] == 0
    assert sync(f"s3://{SRC}/in/", DEST_URI, client=s3)["copied"] == 1
    assert s3.get_object(Bucket=DEST, Key="raw/a.jpg")["Body"].read() == b"bbbb"
