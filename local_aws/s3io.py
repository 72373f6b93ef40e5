"""Read and write moto's S3 backend directly, as the emulated SageMaker would via the S3 API.

Going through the backend (not HTTP) keeps writes atomic with the state change that causes
them: a job is never reported Completed before its output object exists.
"""

from __future__ import annotations

from moto.s3.exceptions import MissingBucket
from moto.s3.models import S3Backend, s3_backends


class S3PathError(ValueError):
    """An s3:// URI that does not resolve to what the caller needs."""


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; raises S3PathError on anything else."""
    if not isinstance(uri, str) or not uri.startswith("s3://") or len(uri) <= 5:
        raise S3PathError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise S3PathError(f"no bucket in {uri!r}")
    return bucket, key


def join(prefix: str, *parts: str) -> str:
    """Join S3 path segments with exactly one slash between them."""
    out = prefix.rstrip("/")
    for part in parts:
        out += "/" + part.strip("/")
    return out


def _backend(account_id: str, partition: str) -> S3Backend:
    return s3_backends[account_id][partition]


def bucket_exists(account_id: str, partition: str, bucket: str) -> bool:
    """Whether ``bucket`` exists (for this account)."""
    try:
        _backend(account_id, partition).get_bucket(bucket)
    except MissingBucket:
        return False
    return True


def read(account_id: str, partition: str, uri: str) -> bytes | None:
    """Object bytes, or None if the bucket or key does not exist."""
    bucket, key = split_uri(uri)
    try:
        obj = _backend(account_id, partition).get_object(bucket, key)
    except MissingBucket:
        return None
    return None if obj is None else bytes(obj.value)


def has_prefix(account_id: str, partition: str, uri: str) -> bool:
    """Whether at least one object's key starts with the URI's key (S3Prefix channels)."""
    bucket, prefix = split_uri(uri)
    try:
        keys = _backend(account_id, partition).get_bucket(bucket).keys
    except MissingBucket:
        return False
    return any(k.startswith(prefix) for k in list(keys.keys()))


def write(account_id: str, partition: str, uri: str, data: bytes) -> None:
    """Put an object; raises S3PathError if the bucket does not exist (AWS would fail the job)."""
    bucket, key = split_uri(uri)
    if not key:
        raise S3PathError(f"no key in {uri!r}")
    try:
        _backend(account_id, partition).put_object(bucket, key, data)
    except MissingBucket as exc:
        raise S3PathError(f"bucket {bucket!r} does not exist") from exc
