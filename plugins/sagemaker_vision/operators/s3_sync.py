"""The S3 sync operator: a local folder or an S3 prefix mirrored to an S3 prefix, like ``aws s3 sync``.

Thin over :func:`sagemaker_vision.hooks.s3_sync.sync`; what "unchanged" means, the sync state and the
upload journal are described in :mod:`sagemaker_vision.core.s3_sync`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from sagemaker_vision.core.s3_sync import (
    Compare,
    check_compare,
    check_concurrency,
    check_stale_seconds,
    encryption_args,
    resolve_endpoints,
)
from sagemaker_vision.core.s3_sync_state import STALE_UPLOAD_SECONDS, task_owner
from sagemaker_vision.hooks import base
from sagemaker_vision.hooks.s3_sync import sync

if TYPE_CHECKING:
    from airflow.sdk import Context


class S3SyncOperator(BaseOperator):
    """Sync a local folder or an S3 prefix to an S3 prefix (like ``aws s3 sync``).

    :param source: local folder on the worker, or ``s3://bucket/prefix`` (templated)
    :param dest: ``s3://bucket/prefix`` to mirror ``source`` into (templated)
    :param delete: delete objects under ``dest`` that are not in ``source``
    :param include: comma-separated globs such as ``"*.jpg,*.png"``, matched case-insensitively
        against the relative path on both sides (templated); ``None`` syncs everything
    :param max_concurrency: parallel transfers, and the client's connection pool size
    :param compare: ``size_and_etag`` (default: content, whatever the encryption and upload
        method; see the module doc), ``size_and_mtime`` or ``size_only``
    :param sse: ``AES256``, ``aws:kms`` or ``aws:kms:dsse`` for what is written (``None``: the
        bucket's default encryption)
    :param sse_kms_key_id: the KMS key with ``sse="aws:kms"``
    :param sse_customer_key: a 32-byte SSE-C key for what is written (never templated or logged)
    :param source_sse_customer_key: the SSE-C key of an S3 source
    :param stale_upload_seconds: multipart uploads under ``dest`` left open by a killed sync: those
        an earlier try of this task journaled are aborted at once; another sync's once its journal
        heartbeat, and an unjournaled upload once its last part, is this old on S3's clock (default
        15 minutes; ``None``: no journal, left to a lifecycle rule)
    :param aws_conn_id: Airflow connection for AWS credentials and endpoint
    :param region_name: AWS region; the connection's when ``None``
    :return: ``{"copied", "skipped", "deleted", "bytes_copied", "verified_by_head", "refused",
        "refused_files", "aborted_uploads", "source", "dest"}``; ``refused`` counts files whose names S3 or a manifest
        cannot carry (control characters, keys over 1,024 bytes, not UTF-8): skipped and logged
    """

    template_fields: Sequence[str] = ("source", "dest", "include")
    ui_color = "#ffd79b"

    def __init__(
        self,
        *,
        source: str,
        dest: str,
        delete: bool = False,
        include: str | None = None,
        max_concurrency: int = 16,
        compare: Compare = "size_and_etag",
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        sse_customer_key: bytes | str | None = None,
        source_sse_customer_key: bytes | str | None = None,
        stale_upload_seconds: float | None = STALE_UPLOAD_SECONDS,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # source/dest/include may be Jinja templates: they are validated in execute().
        check_compare(compare)
        check_concurrency(max_concurrency)
        check_stale_seconds(stale_upload_seconds)
        encryption_args(sse, sse_kms_key_id, sse_customer_key, source_sse_customer_key)
        self.stale_upload_seconds = stale_upload_seconds
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self._sse_customer_key = sse_customer_key
        self._source_sse_customer_key = source_sse_customer_key
        self.source = source
        self.dest = dest
        self.delete = delete
        self.include = include
        self.max_concurrency = max_concurrency
        self.compare = compare
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @cached_property
    def client(self) -> Any:
        """One S3 client shared by every transfer thread, with a pool to match."""
        return base.client("s3", self.aws_conn_id, self.region_name,
                           max_pool_connections=self.max_concurrency)

    def execute(self, context: Context) -> dict[str, Any]:
        resolve_endpoints(self.source, self.dest, self.include)  # fail on bad input before AWS
        return sync(
            self.source,
            self.dest,
            client=self.client,
            delete=self.delete,
            include=self.include,
            max_concurrency=self.max_concurrency,
            compare=self.compare,
            log=self.log,
            sse=self.sse,
            sse_kms_key_id=self.sse_kms_key_id,
            sse_customer_key=self._sse_customer_key,
            source_sse_customer_key=self._source_sse_customer_key,
            stale_upload_seconds=self.stale_upload_seconds,
            owner=task_owner(context.get("ti")),
        )
