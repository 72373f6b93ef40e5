"""Small S3 helpers shared by the stages: stream lines, publish whole objects, read local or S3.

S3 ``PutObject`` is atomic per object, so a manifest is either the old one or the new one,
never half written: writers build the body (or a temp file) first and publish with one put.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from sagemaker_vision.config import ConfigError, parse_s3_uri, resolve_local_path


def split_uri(uri: str, field_name: str = "uri") -> tuple[str, str]:
    return parse_s3_uri(uri, field_name)


def iter_lines(s3_client: Any, uri: str, field_name: str = "uri") -> Iterator[bytes]:
    """Stream an object's lines (each ending in its newline) without holding it in memory.

    Linear in the object's size however long a line is (botocore's ``StreamingBody.iter_lines``
    adds every chunk to the pending line: quadratic in the line's length), and a line past
    ``labels.MAX_LINE_BYTES`` is a ManifestError naming ``uri:line`` and the cap.
    """
    from sagemaker_vision.labels import iter_lines as read_lines

    bucket, key = split_uri(uri, field_name)
    try:
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    except s3_client.exceptions.NoSuchKey:
        raise ConfigError(field_name, f"{uri} does not exist") from None
    try:
        yield from read_lines(body, chunk_size=1 << 16, source=uri, keepends=True)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def iter_source_lines(s3_client: Any, location: str, field_name: str) -> Iterator[bytes]:
    """Lines of a local file (relative to the project root) or an s3:// object."""
    if location.startswith("s3://"):
        yield from iter_lines(s3_client, location, field_name)
        return
    path = resolve_local_path(location)
    if not path.is_file():
        raise ConfigError(field_name, f"{path} is not a file")
    from sagemaker_vision.labels import iter_lines as read_lines

    with open(path, "rb") as fh:
        yield from read_lines(fh, chunk_size=1 << 16, source=str(path), keepends=True)


def read_bytes(s3_client: Any, location: str, field_name: str = "uri") -> bytes:
    if location.startswith("s3://"):
        bucket, key = split_uri(location, field_name)
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    path = resolve_local_path(location)
    if not path.is_file():
        raise ConfigError(field_name, f"{path} is not a file")
    return path.read_bytes()


def put_bytes(s3_client: Any, uri: str, body: bytes, content_type: str = "application/octet-stream") -> str:
    bucket, key = split_uri(uri)
    s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
    return uri


def put_json(s3_client: Any, uri: str, data: Any) -> str:
    return put_bytes(s3_client, uri, json.dumps(data, indent=2, default=str).encode(), "application/json")


@contextmanager
def staged_upload(s3_client: Any, uri: str, content_type: str = "application/jsonl") -> Iterator[IO[str]]:
    """Write to a local temp file; upload it to ``uri`` only if the block finishes cleanly."""
    bucket, key = split_uri(uri)
    with tempfile.NamedTemporaryFile("w+", suffix=Path(key).suffix, encoding="utf-8") as fh:
        yield fh
        fh.flush()
        s3_client.upload_file(fh.name, bucket, key, ExtraArgs={"ContentType": content_type})


def list_keys(s3_client: Any, prefix_uri: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every object under an s3:// prefix."""
    bucket, prefix = split_uri(prefix_uri)
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"], obj["Size"]


def exists(s3_client: Any, uri: str) -> bool:
    bucket, key = split_uri(uri)
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
    except s3_client.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True
