"""Thin S3 helpers shared by the stages: the one not-found rule, stream lines, publish whole objects,
read local or S3 (the old ``s3io`` module; callers still import it ``as s3io``).

S3 ``PutObject`` is atomic per object, so a manifest is either the old one or the new one,
never half written: writers build the body (or a temp file) first and publish with one put.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

from botocore.exceptions import ClientError

from sagemaker_vision.core.manifest_parse import iter_lines as read_lines
from sagemaker_vision.core.s3_responses import ACCESS_DENIED_CODES, NOT_FOUND_CODES
from sagemaker_vision.core.validate import ConfigError, parse_s3_uri, resolve_local_path


def split_uri(uri: str, field_name: str = "uri") -> tuple[str, str]:
    return parse_s3_uri(uri, field_name)


def iter_lines(s3_client: Any, uri: str, field_name: str = "uri") -> Iterator[bytes]:
    """Stream an object's lines (each ending in its newline) without holding it in memory.

    Linear in the object's size however long a line is (botocore's ``StreamingBody.iter_lines``
    adds every chunk to the pending line: quadratic in the line's length), and a line past
    ``core.manifest_parse.MAX_LINE_BYTES`` is a ManifestError naming ``uri:line`` and the cap.
    """
    bucket, key = split_uri(uri, field_name)
    response = get_object_if_exists(s3_client, bucket, key)
    if response is None:
        raise ConfigError(field_name, f"{uri} does not exist")
    body = response["Body"]
    try:
        yield from cast(Iterator[bytes], read_lines(body, chunk_size=1 << 16, source=uri, keepends=True))
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
    with open(path, "rb") as fh:
        yield from cast(Iterator[bytes], read_lines(fh, chunk_size=1 << 16, source=str(path), keepends=True))


def read_bytes(s3_client: Any, location: str, field_name: str = "uri") -> bytes:
    if location.startswith("s3://"):
        data = read_if_exists(s3_client, location, field_name)
        if data is None:
            raise ConfigError(field_name, f"{location} does not exist")
        return data
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


# -- maybe-missing keys: the one not-found rule -------------------------------------------------
# A missing key is 404 only for a principal with s3:ListBucket, else 403 (core.s3_responses:
# NOT_FOUND_CODES, ACCESS_DENIED_CODES); a 403 is settled by ListObjectsV2(Prefix=key, MaxKeys=1):
# the key itself sorts first among the keys it prefixes, so it exists iff it is the first one listed.


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = (response.get("Error") or {}).get("Code")
    return None if code is None else str(code)


def error_code(exc: BaseException) -> str:
    """The S3 error code, looking through wrappers such as boto3's S3UploadFailedError (used by
    ``hooks.s3_sync`` for the messages and retries of the sync; the not-found rule reads the error itself)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            return str(seen.response.get("Error", {}).get("Code", "ClientError"))
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _listed(response: dict[str, Any], key: str) -> bool:
    contents = response.get("Contents") or []
    return bool(contents) and contents[0].get("Key") == key


def _denied(exc: BaseException, bucket: str, key: str) -> BaseException:
    exc.add_note(f"s3://{bucket}/{key} exists (ListObjectsV2 lists it) but reading it was refused with "
                 "AccessDenied: a permission problem (IAM policy, bucket policy, KMS or SSE-C key), "
                 "not a missing object")
    return exc


def _unlistable(exc: BaseException, bucket: str, key: str) -> BaseException:
    exc.add_note(f"reading s3://{bucket}/{key} was refused (403), and listing it to tell a missing object "
                 "from a forbidden one was refused too: the role needs s3:ListBucket with an s3:prefix "
                 "condition matching the key")
    return exc


def key_missing(s3_client: Any, exc: BaseException, bucket: str, key: str) -> bool:
    """Whether ``exc`` (from a GET/HEAD of ``bucket``/``key``) means the key is absent.

    True for 404/NoSuchKey, and for 403 AccessDenied when the key is not listed; False for every
    other error, and for a 403 on a key that exists (the caller re-raises; the error then carries
    a note naming the key as a permission problem).
    """
    code = _error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    if code not in ACCESS_DENIED_CODES:
        return False
    try:
        listing = s3_client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError as list_exc:
        raise _unlistable(list_exc, bucket, key) from exc
    if _listed(listing, key):
        _denied(exc, bucket, key)
        return False
    return True


async def key_missing_async(client: Any, exc: BaseException, bucket: str, key: str) -> bool:
    """:func:`key_missing` for an aiobotocore client (the same rule, an awaited listing)."""
    code = _error_code(exc)
    if code in NOT_FOUND_CODES:
        return True
    if code not in ACCESS_DENIED_CODES:
        return False
    try:
        listing = await client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError as list_exc:
        raise _unlistable(list_exc, bucket, key) from exc
    if _listed(listing, key):
        _denied(exc, bucket, key)
        return False
    return True


# A 403 read and the listing that settles it are two requests: a key written between them (an
# async result, a lease) is listed though the read was refused as missing. S3 is strongly
# consistent, so one more read tells "appeared" from "forbidden".
READS_AFTER_A_LISTED_403 = 2


def _may_read_again(exc: BaseException, attempt: int) -> bool:
    return attempt < READS_AFTER_A_LISTED_403 and _error_code(exc) in ACCESS_DENIED_CODES


def _read_if_exists(s3_client: Any, call: Any, bucket: str, key: str, kwargs: dict[str, Any]) -> Any:
    for attempt in range(1, READS_AFTER_A_LISTED_403 + 1):
        try:
            return call(Bucket=bucket, Key=key, **kwargs)
        except ClientError as exc:
            if key_missing(s3_client, exc, bucket, key):
                return None
            if not _may_read_again(exc, attempt):
                raise
    raise AssertionError("unreachable")


def get_object_if_exists(s3_client: Any, bucket: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
    """GetObject's response, or None when the key does not exist (see :func:`key_missing`)."""
    return _read_if_exists(s3_client, s3_client.get_object, bucket, key, kwargs)


def head_object_if_exists(s3_client: Any, bucket: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
    """HeadObject's response, or None when the key does not exist (see :func:`key_missing`)."""
    return _read_if_exists(s3_client, s3_client.head_object, bucket, key, kwargs)


async def head_object_if_exists_async(client: Any, bucket: str, key: str, **kwargs: Any) -> dict[str, Any] | None:
    """:func:`head_object_if_exists` for an aiobotocore client (the same rule, awaited)."""
    for attempt in range(1, READS_AFTER_A_LISTED_403 + 1):
        try:
            return await client.head_object(Bucket=bucket, Key=key, **kwargs)
        except ClientError as exc:
            if await key_missing_async(client, exc, bucket, key):
                return None
            if not _may_read_again(exc, attempt):
                raise
    raise AssertionError("unreachable")


def read_if_exists(s3_client: Any, uri: str, field_name: str = "uri") -> bytes | None:
    """An s3:// object's bytes, or None when it does not exist."""
    bucket, key = split_uri(uri, field_name)
    response = get_object_if_exists(s3_client, bucket, key)
    return None if response is None else response["Body"].read()


def exists(s3_client: Any, uri: str) -> bool:
    bucket, key = split_uri(uri)
    return head_object_if_exists(s3_client, bucket, key) is not None
