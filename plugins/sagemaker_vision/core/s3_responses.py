"""What S3's answers mean, the pure part: the error codes of a missing key, a refused read and a
conditional write that lost a race, and S3's own clock. No Airflow, no AWS call.

:func:`sagemaker_vision.hooks.s3.key_missing` applies the first two (it settles a 403 with a listing);
the sync's upload journal and the endpoint lease retry a lost conditional write, and judge ages by
:func:`s3_clock`, never by a worker's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

# S3 API Reference, GetObject / HeadObject "Permissions": a missing key is 404 (NoSuchKey; HEAD:
# "404") only for a principal with s3:ListBucket on the bucket, else 403 AccessDenied. The Airflow
# role may list only under its prefix (include/iam/airflow-role-policy.json: an s3:prefix
# condition, which a GET/HEAD does not carry), so a missing key may well be a 403. A 403 is then
# settled by ListObjectsV2(Prefix=key, MaxKeys=1), which that condition allows: the key itself
# sorts first among the keys it prefixes, so it exists iff it is the first one listed.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
ACCESS_DENIED_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
# Codes of a conditional PutObject that lost a race (S3 user guide, conditional writes; botocore
# PutObjectRequest.IfMatch / IfNoneMatch): 412 another writer won (the condition no longer holds),
# 409 a concurrent conditional write was in flight, 404 NoSuchKey an If-Match on a key that
# vanished. Any of them: read again and retry.
LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"})


def s3_clock(response: Mapping[str, Any] | None) -> datetime | None:
    """S3's time of a response (its ``Date`` header), or None; never the worker's clock."""
    header = (((response or {}).get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC)
    except (TypeError, ValueError):
        return None
