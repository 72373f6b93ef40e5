"""hooks.s3_sync_listing: the sync's timestamp parser, and hashing while the destination is listed."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.utils import parse_timestamp
from moto import mock_aws

from sagemaker_vision.core import s3_sync as core_sync
from sagemaker_vision.hooks import s3_sync_listing
from sagemaker_vision.hooks.s3_sync import sync
from sagemaker_vision.hooks.s3_sync_listing import iso_timestamp, list_s3, use_iso_timestamps

BUCKET = "listing-bucket"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with mock_aws():
        yield boto3.session.Session()


@pytest.mark.parametrize("value", [
    "2026-11-25T10:04:00.000Z", "2026-11-25T10:04:00Z", "1999-12-31T23:59:59.123456Z",
    "2026-11-25T10:04:00.1234567Z",  # 7 digits: not S3's format, botocore's parser decides
    "2026-11-25T10:04:00+02:00", "Wed, 25 Nov 2026 10:04:00 GMT", 1764064800, "1764064800.5",
])
def test_iso_timestamp_gives_what_botocore_gives(value: Any) -> None:
    ours, botocore = iso_timestamp(value), parse_timestamp(value)
    assert ours == botocore and ours.utcoffset() == botocore.utcoffset()
    assert type(ours.tzinfo) is type(botocore.tzinfo)


def test_iso_timestamp_still_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid timestamp"):
        iso_timestamp("2026-13-45T99:00:00Z")


def test_use_iso_timestamps_changes_that_client_only_and_lists_the_same(session: Any) -> None:
    ours, other = session.client("s3"), session.client("s3")
    ours.create_bucket(Bucket=BUCKET)
    for i in range(3):
        ours.put_object(Bucket=BUCKET, Key=f"raw/{i}.jpg", Body=b"x" * i)
    before = list_s3(other, BUCKET, "raw/")

    assert use_iso_timestamps(ours) and use_iso_timestamps(ours)  # idempotent
    assert ours._endpoint._response_parser_factory is not other._endpoint._response_parser_factory
    assert other._endpoint._response_parser_factory.create_parser("rest-xml")._timestamp_parser is not iso_timestamp
    after = list_s3(ours, BUCKET, "raw/")
    assert {k: (o.size, o.etag, o.mtime) for k, o in after.items()} == \
           {k: (o.size, o.etag, o.mtime) for k, o in before.items()}
    assert ours.list_objects_v2(Bucket=BUCKET)["Contents"][0]["LastModified"] == \
           other.list_objects_v2(Bucket=BUCKET)["Contents"][0]["LastModified"]


def test_a_session_timestamp_parser_of_its_own_is_kept(session: Any) -> None:
    botocore_session = session._session
    botocore_session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    client = session.client("s3")
    assert not use_iso_timestamps(client)
    assert client._endpoint._response_parser_factory.create_parser("rest-xml")._timestamp_parser is str


def test_every_same_size_file_is_hashed_once_across_listing_pages(session: Any, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The hashing starts page by page while the listing goes on; each file is still hashed once."""
    client = session.client("s3")
    client.create_bucket(Bucket=BUCKET)
    root = tmp_path / "images"
    for i in range(23):
        (root / f"part-{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"part-{i % 3}" / f"{i:03d}.jpg").write_bytes(bytes([i]) * (100 + i))
    assert sync(str(root), f"s3://{BUCKET}/raw/", client=client)["copied"] == 23

    pages: Counter[str] = Counter()

    def small_pages(params: dict[str, Any], **_: Any) -> None:
        params["MaxKeys"] = 5  # 23 objects -> 5 pages, so hashing overlaps 4 more round trips
        pages["ListObjectsV2"] += 1

    client.meta.events.register("before-parameter-build.s3.ListObjectsV2", small_pages)
    edited = root / "part-1" / "004.jpg"
    edited.write_bytes(b"\xff" * edited.stat().st_size)  # same size, new content
    hashed: Counter[str] = Counter()
    lock = threading.Lock()
    real_md5 = core_sync.md5_file

    def counted(path: Any) -> str:
        with lock:
            hashed[str(path)] += 1
        return real_md5(path)

    monkeypatch.setattr(s3_sync_listing, "md5_file", counted)
    result = sync(str(root), f"s3://{BUCKET}/raw/", client=client, max_concurrency=4)
    assert pages["ListObjectsV2"] == 5
    assert (result["copied"], result["skipped"]) == (1, 22)
    assert len(hashed) == 23 and set(hashed.values()) == {1}
    assert client.get_object(Bucket=BUCKET, Key="raw/part-1/004.jpg")["Body"].read() == edited.read_bytes()
