"""Moved to :mod:`sagemaker_vision.hooks.s3` (issue 10); this shim is removed by the lead."""

from sagemaker_vision.hooks.s3 import (  # noqa: F401  (shim, removed by the lead)
    ACCESS_DENIED_CODES,
    NOT_FOUND_CODES,
    READS_AFTER_A_LISTED_403,
    exists,
    get_object_if_exists,
    head_object_if_exists,
    head_object_if_exists_async,
    iter_lines,
    iter_source_lines,
    key_missing,
    key_missing_async,
    list_keys,
    put_bytes,
    put_json,
    read_bytes,
    read_if_exists,
    split_uri,
    staged_upload,
)
