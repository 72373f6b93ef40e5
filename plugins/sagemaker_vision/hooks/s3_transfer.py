"""The transfer machinery of a sync: a bounded thread pool, progress logging, managed multipart
uploads and copies through one TransferManager, and batched deletions (S3 calls, no Airflow).

:func:`sagemaker_vision.hooks.s3_sync.sync` decides what to copy and delete; this module moves the bytes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from s3transfer.subscribers import BaseSubscriber

from sagemaker_vision.core.s3_sync import (
    DELETE_BATCH,
    MD5_METADATA,
    PROGRESS_INTERVAL_S,
    SMALL_FILE_LIMIT,
    Encryption,
    Endpoints,
    ObjectInfo,
    SyncFailure,
    SyncLog,
    content_type,
    encryption_args,
    md5_b64,
    md5_file,
)
from sagemaker_vision.hooks.s3 import error_code

logger = logging.getLogger(__name__)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Thread-safe counters that log at most every ~2 s, or when crossing a 10% step."""

    def __init__(self, logger: SyncLog, files_total: int, bytes_total: int):
        self._log = logger
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.files_done = 0
        self.bytes_done = 0
        self.copied = 0
        self.bytes_copied = 0
        self.failures: list[SyncFailure] = []
        self._lock = threading.Lock()
        self._last_log = time.monotonic()
        self._last_decile = 0

    def _fraction(self) -> float:
        if self.bytes_total:
            return self.bytes_done / self.bytes_total
        return self.files_done / self.files_total if self.files_total else 1.0

    def done(self, key: str, size: int, exc: BaseException | None = None) -> None:
        with self._lock:
            self.files_done += 1
            self.bytes_done += size
            if exc is None:
                self.copied += 1
                self.bytes_copied += size
            else:
                failure = SyncFailure(key, error_code(exc), str(exc))
                self.failures.append(failure)
                self._log.error("Failed to copy to %s: %s", key, exc)
            fraction = self._fraction()
            now = time.monotonic()
            decile = int(fraction * 10)
            if now - self._last_log >= PROGRESS_INTERVAL_S or decile > self._last_decile:
                self._last_log, self._last_decile = now, decile
                self._log.info(
                    "Copied %d/%d files, %s/%s (%.0f%%)%s",
                    self.files_done, self.files_total, human_bytes(self.bytes_done),
                    human_bytes(self.bytes_total), 100 * fraction,
                    f", {len(self.failures)} failed" if self.failures else "",
                )


class _OnDone(BaseSubscriber):
    """Reports a TransferManager future's outcome to :class:`Progress`."""

    def __init__(self, progress: Progress, key: str, size: int):
        self._progress, self._key, self._size = progress, key, size

    def on_done(self, future: Any, **kwargs: Any) -> None:
        try:
            future.result()
        except Exception as exc:  # every failure is collected and reported
            self._progress.done(self._key, self._size, exc)
        else:
            self._progress.done(self._key, self._size)


def run_bounded(executor: ThreadPoolExecutor, fn: Callable[[Any], None], items: Iterable[Any],
                 limit: int) -> None:
    """Run ``fn`` over ``items`` with at most ``limit`` futures alive (memory stays flat)."""
    pending: set[Future[None]] = set()
    for item in items:
        if len(pending) >= limit:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                f.result()
        pending.add(executor.submit(fn, item))
    for f in wait(pending).done:
        f.result()


def copy_large(client: Any, ep: Endpoints, items: Sequence[tuple[str, ObjectInfo]],
                progress: Progress, max_concurrency: int,
                enc: Encryption | None = None) -> list[tuple[str, ObjectInfo, str | None]]:
    """Managed multipart uploads/copies, all through ONE TransferManager.

    A manager per file (what ``upload_file`` does) would multiply the threads; one manager keeps
    every part of every file in a single pool of ``max_concurrency`` requests. Local files are
    hashed first, so their MD5 goes up as ``md5chksum`` metadata. Returns the items that
    completed, with that MD5.
    """
    enc = enc or encryption_args()
    config = TransferConfig(
        multipart_threshold=SMALL_FILE_LIMIT,
        max_concurrency=max_concurrency,
        preferred_transfer_client="classic",  # CRT would ignore this client and its endpoint
    )
    futures = []
    with create_transfer_manager(client, config) as manager:
        for relpath, obj in items:
            key = ep.dest_prefix + relpath
            done = [_OnDone(progress, key, obj.size)]
            if ep.local_root is not None:
                md5 = md5_file(ep.local_root / obj.key_or_relpath)
                extra = {"ContentType": content_type(relpath), "Metadata": {MD5_METADATA: md5_b64(md5)}, **enc.write}
                future = manager.upload(str(ep.local_root / obj.key_or_relpath), ep.dest_bucket, key,
                                        extra_args=extra, subscribers=done)
            else:
                md5 = None
                # s3transfer copies ContentType and Metadata to the multipart copy itself.
                future = manager.copy({"Bucket": ep.source_bucket, "Key": obj.key_or_relpath}, ep.dest_bucket,
                                      key, extra_args={**enc.write, **enc.copy_source} or None, subscribers=done)
            futures.append((relpath, obj, md5, future))
    completed = []
    for relpath, obj, md5, future in futures:
        try:
            future.result()
        except Exception:  # already reported through _OnDone
            continue
        completed.append((relpath, obj, md5))
    return completed


def delete_keys(executor: ThreadPoolExecutor, client: Any, ep: Endpoints, relpaths: Sequence[str],
            limit: int, log: SyncLog) -> tuple[int, list[SyncFailure]]:
    """Delete in batches of 1000; returns (deleted, failures) from each batch's ``Errors``."""
    keys = [ep.dest_prefix + r for r in relpaths]
    batches = [keys[i:i + DELETE_BATCH] for i in range(0, len(keys), DELETE_BATCH)]
    lock = threading.Lock()
    deleted = 0
    failures: list[SyncFailure] = []

    def delete_batch(batch: list[str]) -> None:
        nonlocal deleted
        try:
            resp = client.delete_objects(
                Bucket=ep.dest_bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            errors = [SyncFailure(e.get("Key", "?"), e.get("Code", "?"), e.get("Message", ""))
                      for e in resp.get("Errors", ())]
        except Exception as exc:  # the whole batch failed
            errors = [SyncFailure(k, error_code(exc), str(exc)) for k in batch]
        with lock:
            deleted += len(batch) - len(errors)
            failures.extend(errors)

    run_bounded(executor, delete_batch, batches, limit)
    for f in failures:
        log.error("Failed to delete s3://%s/%s: %s %s", ep.dest_bucket, f.key, f.code, f.message)
    return deleted, failures
