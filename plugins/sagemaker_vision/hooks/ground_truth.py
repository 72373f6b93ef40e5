"""The S3 side of a Ground Truth labeling job: publishing its inputs and the buckets' CORS.

The SageMaker side (describe, stop, the ``labeling_job_complete`` waiter) is on
:class:`~sagemaker_vision.hooks.sagemaker.SageMakerVisionHook`; what the inputs hold is built by
:mod:`sagemaker_vision.core.labeling_inputs`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision.core.labeling_inputs import (
    DEFAULT_TEMPLATE_PATH,
    input_manifest_lines,
    input_manifest_refs,
    label_categories_document,
    labeling_input_uris,
    merged_cors_rules,
    render_template,
)
from sagemaker_vision.core.s3_responses import ACCESS_DENIED_CODES
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import s3 as s3io

__all__ = ["ensure_cors", "manifest_refs", "prepare_labeling_inputs"]


def prepare_labeling_inputs(
    s3_client: Any,
    *,
    image_uris: Iterable[str] | None,
    labels: Sequence[str],
    description: str,
    inputs_prefix: str,
    template_path: str | Path = DEFAULT_TEMPLATE_PATH,
) -> dict[str, str]:
    """Publish the input manifest, label categories and worker UI under ``inputs_prefix``.

    Each is one S3 object written in one put, so a reader sees the old file or the new one,
    never half of one; the manifest is streamed to a temp file first and only uploaded if every
    image URI is valid. Returns ``{"input_manifest_uri", "categories_uri", "template_uri"}``;
    ``image_uris=None`` writes no manifest (the job reads an existing one) and leaves
    ``input_manifest_uri`` out.
    """
    uris = labeling_input_uris(inputs_prefix)
    categories = label_categories_document(labels)
    template = render_template(labels, description, template_path)
    if image_uris is None:
        del uris["input_manifest_uri"]
    else:
        manifest_uri = uris["input_manifest_uri"]
        with s3io.staged_upload(s3_client, manifest_uri, content_type="application/jsonl") as out:
            for line in input_manifest_lines(image_uris):
                out.write(line + "\n")
    s3io.put_json(s3_client, uris["categories_uri"], categories)
    s3io.put_bytes(s3_client, uris["template_uri"], template.encode("utf-8"), "text/html; charset=utf-8")
    return uris


# What no retry fixes: the role may not touch the bucket's CORS, or the bucket is not there.
CORS_CONFIG_ERRORS = ACCESS_DENIED_CODES | {"NoSuchBucket"}


def ensure_cors(s3_client: Any, buckets: Iterable[str], log: Any = None) -> dict[str, str]:
    """Give each bucket the CORS rule Ground Truth needs, keeping every rule it already has.

    AWS: "If you do not add a CORS configuration to the Amazon S3 buckets that contain your
    input data, labeling tasks for those input data objects will fail" (Ground Truth guide,
    ``sms-cors-update``). ``PutBucketCors`` replaces the whole configuration, so the existing
    rules are read first and written back ahead of the new one. Returns ``{bucket: "present" |
    "added"}``. A bucket whose CORS the role may not read or write, or that does not exist, raises
    ConfigError naming it and the permission, before the job is created (no retry fixes that); any
    other error (throttling, a conflicting bucket change in flight, expired credentials) is raised as
    it is, so the task's retries apply.
    """
    outcome: dict[str, str] = {}
    for bucket in buckets:
        try:
            existing = s3_client.get_bucket_cors(Bucket=bucket).get("CORSRules") or []
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "NoSuchCORSConfiguration":
                existing = []
            elif code in CORS_CONFIG_ERRORS:
                raise ConfigError(
                    "image_uris", f"cannot read the CORS configuration of bucket {bucket} (needs "
                    f"s3:GetBucketCORS): {exc}"
                ) from exc
            else:
                raise
        rules = merged_cors_rules(existing)
        if rules is None:
            outcome[bucket] = "present"
            continue
        try:
            s3_client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in CORS_CONFIG_ERRORS:
                raise
            raise ConfigError(
                "image_uris", f"cannot add Ground Truth's CORS rule to bucket {bucket} (needs "
                f"s3:PutBucketCORS; without it the labeling tasks fail): {exc}"
            ) from exc
        outcome[bucket] = "added"
        if log is not None:
            log.info("Added Ground Truth's CORS rule (GET from *) to bucket %s, after its %d existing "
                     "rule(s)", bucket, len(existing))
    return outcome


def manifest_refs(s3_client: Any, manifest_uri: str) -> Iterator[str]:
    """The ``source-ref`` of each line of an existing input manifest in S3, checked line by line
    (:func:`~sagemaker_vision.core.labeling_inputs.input_manifest_refs`)."""
    return input_manifest_refs(s3io.iter_lines(s3_client, manifest_uri, "input_manifest_uri"), manifest_uri)
