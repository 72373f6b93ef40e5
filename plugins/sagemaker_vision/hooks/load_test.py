"""The load test's AWS reads: its payloads from S3, and the endpoint's opt-in tag.

Every payload is checked by :mod:`sagemaker_vision.core.loadtest.payloads` (decodes, not empty,
within the endpoint's body limit) before the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sagemaker_vision.core import manifest_parse
from sagemaker_vision.core.loadtest import payloads as checks
from sagemaker_vision.core.loadtest.model import LOAD_TEST_TAG, Payload
from sagemaker_vision.core.validate import parse_s3_uri
from sagemaker_vision.hooks.sagemaker import all_tags


def _manifest_payloads(source: str, s3_client: Any, max_payloads: int, max_bytes: int | None) -> list[Payload]:
    """The images an augmented manifest names (its ``source-ref``s, sorted): the pipeline passes its
    validation split, so only images that validated and were labeled are sent, never a bad file
    the sync left in the partition."""
    bucket, key = parse_s3_uri(source, "payload_prefix")
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    found: set[str] = set()
    # The one manifest reader and parser: a bad line is named by file, line and field.
    for lineno, raw in enumerate(manifest_parse.iter_lines(body, chunk_size=1 << 16, source=source), start=1):
        rec = manifest_parse.load_line(raw, source=source, lineno=lineno)
        if rec is None:
            continue
        if not isinstance(rec.get("source-ref"), str):
            raise ValueError(f"{source}:{lineno}: source-ref: missing or not a string")
        found.add(rec["source-ref"])
    refs = sorted(found)[:max_payloads]
    if not refs:
        raise ValueError(f"payload_prefix {source!r} names no images")
    payloads = []
    for uri in refs:
        ref_bucket, ref_key = parse_s3_uri(uri, f"source-ref in {source}")
        body = s3_client.get_object(Bucket=ref_bucket, Key=ref_key)["Body"].read()
        payloads.append(checks.check_payload(uri, body, max_bytes))
    return payloads


def _prefix_payloads(source: str, s3_client: Any, max_payloads: int, max_list_pages: int,
                     max_bytes: int | None) -> list[Payload]:
    """The first ``max_payloads`` JPEG/PNG objects under an s3:// prefix, sorted by key."""
    bucket, prefix = parse_s3_uri(source, "payload_prefix")
    found: list[tuple[str, int]] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix,
                               PaginationConfig={"PageSize": 1000, "MaxItems": 1000 * max_list_pages})
    for page in pages:
        found.extend((o["Key"], o["Size"]) for o in page.get("Contents", []) if checks.is_image_name(o["Key"]))
        if len(found) >= max_payloads:
            break
    found = sorted(found)[:max_payloads]
    if not found:
        raise ValueError(f"payload_prefix {source!r} holds no .jpg/.jpeg/.png objects")
    payloads = []
    for key, size in found:
        uri = f"s3://{bucket}/{key}"
        if size > checks.limit(max_bytes):  # checked from the listing, before downloading it
            raise checks.too_large(uri, size, max_bytes)
        payloads.append(checks.check_payload(uri, s3_client.get_object(Bucket=bucket, Key=key)["Body"].read(),
                                             max_bytes))
    return payloads


def load_payloads(source: str | Path, *, s3_client: Any = None, max_payloads: int = 20,
                  max_list_pages: int = 50, max_bytes: int | None = None) -> list[Payload]:
    """Up to ``max_payloads`` JPEG/PNG images, sorted by name, from an s3:// prefix or a local dir.

    A relative local path is relative to the project root, never to the working directory, so
    ``include/sample_data/images`` is the same folder on every worker. Listing S3 stops after
    ``max_list_pages`` pages of 1000 keys. Each image is checked to decode, so a corrupt file
    fails here, naming it, rather than as thousands of ModelErrors; so does an empty file or one
    over ``max_bytes`` (default: the real-time limit;
    :func:`~sagemaker_vision.core.loadtest.payloads.payload_limit` gives an endpoint's).
    """
    checks.check_max_payloads(max_payloads)
    if isinstance(source, str) and source.startswith("s3://"):
        if s3_client is None:
            raise ValueError("payload_prefix is an s3:// URI but no S3 client was given")
        if source.endswith(".manifest"):
            return _manifest_payloads(source, s3_client, max_payloads, max_bytes)
        return _prefix_payloads(source, s3_client, max_payloads, max_list_pages, max_bytes)
    return checks.local_payloads(source, max_payloads=max_payloads, max_bytes=max_bytes)


def endpoint_allows_load_test(sagemaker_client: Any, endpoint_arn: str) -> bool:
    """Whether the endpoint carries the tag ``load-test-allowed=true`` (value case-insensitive)."""
    key, wanted = LOAD_TEST_TAG
    return str(all_tags(sagemaker_client, endpoint_arn).get(key, "")).strip().lower() == wanted
