"""Sync a local folder or an S3 prefix to an S3 prefix, like ``aws s3 sync``.

Three layers, each usable alone:

* :func:`plan_sync` is pure: two listings in, a :class:`SyncPlan` out (no I/O except the lazy
  local MD5 a caller may have attached to an :class:`ObjectInfo`).
* :func:`list_local` / :func:`list_s3` build the listings; :func:`sync` lists, plans and runs
  the transfers on one shared boto3 client, without Airflow.
* :class:`S3SyncOperator` is the thin Airflow wrapper that returns an XCom-friendly summary.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import mimetypes
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow.sdk import BaseOperator
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import ClientError
from s3transfer.subscribers import BaseSubscriber

from sagemaker_vision import aws
from sagemaker_vision.config import validate_bucket

if TYPE_CHECKING:
    from airflow.sdk import Context

Compare = Literal["size_and_etag", "size_and_mtime", "size_only"]
COMPARE_MODES: tuple[str, ...] = get_args(Compare)

MiB = 1024**2
GiB = 1024**3
# Below this a single put_object beats the TransferManager's per-file setup; at and above it
# a multipart upload (8 MiB parts, the s3transfer default) is the faster and retryable way.
SMALL_FILE_LIMIT = 8 * MiB
# copy_object copies at most 5 GiB in one atomic request; larger objects need a multipart copy.
COPY_OBJECT_LIMIT = 5 * GiB
DELETE_BATCH = 1000  # the delete_objects maximum per request
PROGRESS_INTERVAL_S = 2.0
MAX_FAILURES_IN_MESSAGE = 50

# mimetypes maps ".manifest" to the HTML5 appcache type; SageMaker manifests are JSON Lines.
_CONTENT_TYPE_OVERRIDES = {".manifest": "application/jsonlines", ".jsonl": "application/jsonlines"}

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Pure planning
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ObjectInfo:
    """One file or object: the S3 key (or the path relative to a local root) and what we compare.

    ``etag`` is the hex ETag without quotes. A local file leaves it ``None`` and passes
    ``etag_loader`` instead, so its MD5 is only computed when :func:`plan_sync` needs it
    (sizes equal and the other side has a plain MD5 ETag).
    """

    key_or_relpath: str
    size: int
    etag: str | None = None
    mtime: float | None = None
    etag_loader: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size: must be >= 0 for {self.key_or_relpath!r}, got {self.size}")
        if self.etag is not None:
            self.etag = self.etag.strip('"').lower()

    @property
    def is_multipart(self) -> bool:
        """True when the ETag is a multipart one ("<md5-of-md5s>-<parts>"), which is not an MD5."""
        return self.etag is not None and "-" in self.etag

    @property
    def has_md5(self) -> bool:
        """True when an MD5 is known or can be computed for this object."""
        return (self.etag is not None and not self.is_multipart) or (
            self.etag is None and self.etag_loader is not None
        )

    def resolve_etag(self) -> str | None:
        """The ETag, computing (once) and caching it through ``etag_loader`` if needed."""
        if self.etag is None and self.etag_loader is not None:
            self.etag = self.etag_loader().lower()
            self.etag_loader = None
        return self.etag


@dataclass(frozen=True)
class SyncPlan:
    """What a sync will do, keyed by path relative to the source and dest roots (sorted)."""

    to_copy: dict[str, ObjectInfo]  # relpath -> source object
    to_skip: tuple[str, ...]
    to_delete: tuple[str, ...]  # relpaths that only exist in dest
    bytes_to_copy: int
    copy_reasons: dict[str, str] = field(default_factory=dict)  # relpath -> missing|size|etag|mtime


def _etags_comparable(src: ObjectInfo, dst: ObjectInfo) -> bool:
    return src.has_md5 and dst.has_md5


def _copy_reason(src: ObjectInfo, dst: ObjectInfo | None, compare: str) -> str | None:
    if dst is None:
        return "missing"
    if src.size != dst.size:
        return "size"
    if compare == "size_only":
        return None
    if compare == "size_and_etag" and _etags_comparable(src, dst):
        return "etag" if src.resolve_etag() != dst.resolve_etag() else None
    # size_and_mtime, or an ETag that is not an MD5 on either side: like `aws s3 sync`, a
    # source newer than its copy means it changed after it was copied.
    if src.mtime is not None and dst.mtime is not None and src.mtime > dst.mtime:
        return "mtime"
    return None


def _check_compare(compare: str) -> None:
    if compare not in COMPARE_MODES:
        raise ValueError(f"compare: must be one of {', '.join(COMPARE_MODES)}, got {compare!r}")


def _check_concurrency(max_concurrency: int) -> None:
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency: must be a positive integer, got {max_concurrency!r}")


def plan_sync(
    source: Mapping[str, ObjectInfo],
    dest: Mapping[str, ObjectInfo],
    *,
    delete: bool = False,
    compare: Compare = "size_and_etag",
) -> SyncPlan:
    """Decide, per relative path, whether to copy, skip or delete.

    Copy when dest lacks the path, the sizes differ, or (``size_and_etag``) both MD5s are known
    and differ. A multipart ETag on either side falls back to mtime, as does ``size_and_mtime``:
    copy when the source is newer than dest. ``size_only`` compares sizes only. With
    ``delete``, paths only in dest are deleted.
    """
    _check_compare(compare)
    to_copy: dict[str, ObjectInfo] = {}
    reasons: dict[str, str] = {}
    to_skip: list[str] = []
    for relpath in sorted(source):
        src = source[relpath]
        reason = _copy_reason(src, dest.get(relpath), compare)
        if reason is None:
            to_skip.append(relpath)
        else:
            to_copy[relpath] = src
            reasons[relpath] = reason
    to_delete = tuple(sorted(k for k in dest if k not in source)) if delete else ()
    return SyncPlan(
        to_copy=to_copy,
        to_skip=tuple(to_skip),
        to_delete=to_delete,
        bytes_to_copy=sum(o.size for o in to_copy.values()),
        copy_reasons=reasons,
    )


# --------------------------------------------------------------------------------------------
# URIs, filters and listings
# --------------------------------------------------------------------------------------------


def parse_s3_uri(uri: str, field_name: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``; errors name ``field_name``.

    The prefix is treated as a folder (a trailing "/" is added), so ``s3://b/raw`` never
    matches ``s3://b/raw2/...``.
    """
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"{field_name}: expected an s3://bucket/prefix URI, got {uri!r}")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    validate_bucket(bucket, field_name)
    prefix = prefix.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if "//" in prefix:
        raise ValueError(f"{field_name}: empty path segment ('//') in {uri!r}")
    return bucket, prefix


def parse_include(include: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"*.jpg, *.png"`` -> ``("*.jpg", "*.png")``; ``None`` means everything."""
    if include is None:
        return ()
    parts = include.split(",") if isinstance(include, str) else list(include)
    patterns = tuple(p.strip() for p in parts if p and p.strip())
    if not patterns:
        raise ValueError(f"include: no glob patterns in {include!r}; use None to include everything")
    return patterns


def _matches(relpath: str, patterns: tuple[str, ...]) -> bool:
    # Case-insensitive on purpose: "*.jpg" should take a camera's "IMG_0001.JPG". "*" also
    # crosses "/", so "*.jpg" matches at any depth, like `aws s3 sync --include`.
    if not patterns:
        return True
    lowered = relpath.lower()
    return any(fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


def md5_file(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, streamed (what S3 reports as the ETag of a single-part upload)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, partial(hashlib.md5, usedforsecurity=False)).hexdigest()


def list_local(
    root: str | os.PathLike[str], include: str | Sequence[str] | None = None
) -> dict[str, ObjectInfo]:
    """Regular files under ``root``, recursively, keyed by "/"-separated relative path.

    Hidden files and directories (name starting with ".") are skipped, symlinked directories
    are not followed (no loops), and the MD5 is left to a lazy ``etag_loader``.
    """
    root_path = Path(root)
    patterns = parse_include(include)
    out: dict[str, ObjectInfo] = {}
    for dirpath, dirnames, filenames in os.walk(root_path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            abspath = os.path.join(dirpath, name)
            relpath = os.path.relpath(abspath, root_path).replace(os.sep, "/")
            if not _matches(relpath, patterns):
                continue
            try:
                st = os.stat(abspath)
            except FileNotFoundError:  # a dangling symlink, or deleted while we walked
                logger.warning("Skipping %s: it no longer exists or is a dangling symlink", abspath)
                continue
            if not stat.S_ISREG(st.st_mode):  # never try to upload a FIFO or a socket
                continue
            out[relpath] = ObjectInfo(
                relpath, st.st_size, mtime=st.st_mtime, etag_loader=partial(md5_file, abspath)
            )
    return out


def list_s3(
    client: Any, bucket: str, prefix: str, include: str | Sequence[str] | None = None
) -> dict[str, ObjectInfo]:
    """Objects under ``prefix`` keyed by the key relative to it; "folder" markers are skipped."""
    patterns = parse_include(include)
    out: dict[str, ObjectInfo] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            key = obj["Key"]
            relpath = key[len(prefix):]
            if not relpath or relpath.endswith("/") or not _matches(relpath, patterns):
                continue
            out[relpath] = ObjectInfo(
                key, obj["Size"], etag=obj.get("ETag"), mtime=obj["LastModified"].timestamp()
            )
    return out


def content_type(path: str) -> str:
    """Content-Type from the file extension, ``application/octet-stream`` when unknown."""
    override = _CONTENT_TYPE_OVERRIDES.get(os.path.splitext(path)[1].lower())
    return override or mimetypes.guess_type(path)[0] or "application/octet-stream"


@dataclass(frozen=True)
class _Endpoints:
    source: str
    dest: str
    dest_bucket: str
    dest_prefix: str
    local_root: Path | None
    source_bucket: str | None
    source_prefix: str | None
    include: tuple[str, ...]


def resolve_endpoints(source: str, dest: str, include: str | Sequence[str] | None) -> _Endpoints:
    """Validate ``source``/``dest``/``include`` before any AWS call; errors name the field."""
    patterns = parse_include(include)
    dest_bucket, dest_prefix = parse_s3_uri(dest, "dest")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source: expected a local folder or an s3:// URI, got {source!r}")
    if source.startswith("s3://"):
        src_bucket, src_prefix = parse_s3_uri(source, "source")
        if src_bucket == dest_bucket and (
            src_prefix.startswith(dest_prefix) or dest_prefix.startswith(src_prefix)
        ):
            # Nested prefixes would list the sync's own output (or delete the source).
            raise ValueError(f"dest: {dest!r} overlaps source {source!r}; use disjoint prefixes")
        return _Endpoints(source, dest, dest_bucket, dest_prefix, None, src_bucket, src_prefix, patterns)
    if "://" in source:
        raise ValueError(f"source: unsupported scheme in {source!r}; use a local folder or s3://")
    root = Path(source).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"source: local folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"source: {str(root)!r} is not a folder")
    return _Endpoints(source, dest, dest_bucket, dest_prefix, root, None, None, patterns)


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncFailure:
    """One object that could not be copied or deleted."""

    key: str
    code: str
    message: str


class S3SyncError(RuntimeError):
    """Some transfers failed; ``failures`` lists every one (the others completed)."""

    def __init__(self, failures: Sequence[SyncFailure], summary: str):
        self.failures = list(failures)
        shown = "; ".join(f"{f.key} ({f.code})" for f in self.failures[:MAX_FAILURES_IN_MESSAGE])
        more = len(self.failures) - MAX_FAILURES_IN_MESSAGE
        super().__init__(f"{summary}: {shown}" + (f"; and {more} more" if more > 0 else ""))


def _error_code(exc: BaseException) -> str:
    """The S3 error code, looking through wrappers such as boto3's S3UploadFailedError."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            return str(seen.response.get("Error", {}).get("Code", "ClientError"))
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class _Progress:
    """Thread-safe counters that log at most every ~2 s, or when crossing a 10% step."""

    def __init__(self, logger: logging.Logger, files_total: int, bytes_total: int):
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
                failure = SyncFailure(key, _error_code(exc), str(exc))
                self.failures.append(failure)
                self._log.error("Failed to copy to %s: %s", key, exc)
            fraction = self._fraction()
            now = time.monotonic()
            decile = int(fraction * 10)
            if now - self._last_log >= PROGRESS_INTERVAL_S or decile > self._last_decile:
                self._last_log, self._last_decile = now, decile
                self._log.info(
                    "Copied %d/%d files, %s/%s (%.0f%%)%s",
                    self.files_done, self.files_total, _human(self.bytes_done),
                    _human(self.bytes_total), 100 * fraction,
                    f", {len(self.failures)} failed" if self.failures else "",
                )


class _OnDone(BaseSubscriber):
    """Reports a TransferManager future's outcome to :class:`_Progress`."""

    def __init__(self, progress: _Progress, key: str, size: int):
        self._progress, self._key, self._size = progress, key, size

    def on_done(self, future: Any, **kwargs: Any) -> None:
        try:
            future.result()
        except Exception as exc:  # every failure is collected and reported
            self._progress.done(self._key, self._size, exc)
        else:
            self._progress.done(self._key, self._size)


def _run_bounded(executor: ThreadPoolExecutor, fn: Callable[[Any], None], items: Iterable[Any],
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


def _prefetch_md5s(executor: ThreadPoolExecutor, source: Mapping[str, ObjectInfo],
                   dest: Mapping[str, ObjectInfo], compare: str, limit: int) -> int:
    """Hash, in parallel, the local files whose MD5 the planner will ask for; returns the count.

    Only same-size pairs with MD5s on both sides qualify, so a first sync hashes nothing.
    hashlib releases the GIL, so the threads really do run in parallel.
    """
    if compare != "size_and_etag":
        return 0
    todo = [
        src for rel, src in source.items()
        if src.etag is None and src.etag_loader is not None
        and (dst := dest.get(rel)) is not None and dst.size == src.size and _etags_comparable(src, dst)
    ]
    _run_bounded(executor, lambda o: o.resolve_etag(), todo, limit)
    return len(todo)


def sync(
    source: str,
    dest: str,
    *,
    client: Any,
    delete: bool = False,
    include: str | Sequence[str] | None = None,
    max_concurrency: int = 16,
    compare: Compare = "size_and_etag",
    log: logging.Logger = logger,
) -> dict[str, Any]:
    """Make ``dest`` (s3://) mirror ``source`` (a local folder or s3://); see :func:`plan_sync`.

    Uses ``client`` from up to ``max_concurrency`` threads, so give it at least that many pool
    connections (``aws.client(..., max_pool_connections=max_concurrency)``). Failed transfers
    are collected and raised together as :class:`S3SyncError` once the others have finished;
    deletions are then skipped, so a failing run never removes anything.
    """
    _check_compare(compare)
    _check_concurrency(max_concurrency)
    ep = resolve_endpoints(source, dest, include)
    pool = getattr(getattr(getattr(client, "meta", None), "config", None), "max_pool_connections", None)
    if isinstance(pool, int) and pool < max_concurrency:
        log.warning("The S3 client has %d pool connections for %d threads; connections will be "
                    "discarded and reopened", pool, max_concurrency)

    started = time.monotonic()
    if ep.local_root is not None:
        src_objects = list_local(ep.local_root, ep.include or None)
    else:
        assert ep.source_bucket is not None and ep.source_prefix is not None
        try:
            src_objects = list_s3(client, ep.source_bucket, ep.source_prefix, ep.include or None)
        except ClientError as exc:
            exc.add_note(f"while listing source {source!r}")
            raise
    try:
        dest_objects = list_s3(client, ep.dest_bucket, ep.dest_prefix, ep.include or None)
    except ClientError as exc:
        exc.add_note(f"while listing dest {dest!r}")
        raise
    if delete and not src_objects and dest_objects:
        # An empty (or unmounted) source folder would otherwise wipe the destination.
        raise ValueError(f"source: {source!r} has no files to sync; refusing to delete all "
                         f"{len(dest_objects)} objects under dest {dest!r}")

    limit = 4 * max_concurrency
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="s3sync") as executor:
        try:
            hashed = _prefetch_md5s(executor, src_objects, dest_objects, compare, limit)
            plan = plan_sync(src_objects, dest_objects, delete=delete, compare=compare)
            log.info(
                "Sync %s -> %s: %d source files, %d dest objects; %d to copy (%s), %d unchanged, "
                "%d to delete (%d local files hashed)", source, dest, len(src_objects),
                len(dest_objects), len(plan.to_copy), _human(plan.bytes_to_copy), len(plan.to_skip),
                len(plan.to_delete), hashed,
            )
            progress = _Progress(log, len(plan.to_copy), plan.bytes_to_copy)
            big_limit = SMALL_FILE_LIMIT if ep.local_root is not None else COPY_OBJECT_LIMIT
            small = [(r, o) for r, o in plan.to_copy.items() if o.size < big_limit]
            large = [(r, o) for r, o in plan.to_copy.items() if o.size >= big_limit]

            def copy_one(item: tuple[str, ObjectInfo]) -> None:
                relpath, obj = item
                key = ep.dest_prefix + relpath
                try:
                    if ep.local_root is not None:
                        with open(ep.local_root / obj.key_or_relpath, "rb") as body:
                            client.put_object(Bucket=ep.dest_bucket, Key=key, Body=body,
                                              ContentType=content_type(relpath))
                    else:
                        client.copy_object(Bucket=ep.dest_bucket, Key=key,
                                           CopySource={"Bucket": ep.source_bucket, "Key": obj.key_or_relpath})
                except Exception as exc:  # collected, raised together at the end
                    progress.done(key, obj.size, exc)
                else:
                    progress.done(key, obj.size)

            _run_bounded(executor, copy_one, small, limit)
            if large:
                _copy_large(client, ep, large, progress, max_concurrency)

            deleted = 0
            failures = list(progress.failures)
            if failures:
                if plan.to_delete:
                    log.warning("Skipping %d deletions because copies failed", len(plan.to_delete))
            elif plan.to_delete:
                deleted, delete_failures = _delete(executor, client, ep, plan.to_delete, limit, log)
                failures.extend(delete_failures)
        except BaseException:
            # Killed or a bug: don't start anything still queued, let running requests finish.
            executor.shutdown(wait=True, cancel_futures=True)
            raise

    elapsed = time.monotonic() - started
    rate = progress.bytes_copied / elapsed if elapsed > 0 else 0.0
    log.info(
        "Synced %s -> %s in %.1f s: copied %d (%s, %s/s), skipped %d, deleted %d, failed %d",
        source, dest, elapsed, progress.copied, _human(progress.bytes_copied), _human(rate),
        len(plan.to_skip), deleted, len(failures),
    )
    if failures:
        raise S3SyncError(failures, f"{len(failures)} of {len(plan.to_copy) + len(plan.to_delete)} "
                                    f"operations failed syncing {source} -> {dest}")
    return {
        "copied": progress.copied,
        "skipped": len(plan.to_skip),
        "deleted": deleted,
        "bytes_copied": progress.bytes_copied,
        "source": source,
        "dest": dest,
    }


def _copy_large(client: Any, ep: _Endpoints, items: Sequence[tuple[str, ObjectInfo]],
                progress: _Progress, max_concurrency: int) -> None:
    """Managed multipart uploads/copies, all through ONE TransferManager.

    A manager per file (what ``upload_file`` does) would multiply the threads; one manager keeps
    every part of every file in a single pool of ``max_concurrency`` requests.
    """
    config = TransferConfig(
        multipart_threshold=SMALL_FILE_LIMIT,
        max_concurrency=max_concurrency,
        preferred_transfer_client="classic",  # CRT would ignore this client and its endpoint
    )
    with create_transfer_manager(client, config) as manager:
        for relpath, obj in items:
            key = ep.dest_prefix + relpath
            done = [_OnDone(progress, key, obj.size)]
            if ep.local_root is not None:
                manager.upload(str(ep.local_root / obj.key_or_relpath), ep.dest_bucket, key,
                               extra_args={"ContentType": content_type(relpath)}, subscribers=done)
            else:
                # s3transfer copies ContentType and Metadata to the multipart copy itself.
                manager.copy({"Bucket": ep.source_bucket, "Key": obj.key_or_relpath}, ep.dest_bucket,
                             key, subscribers=done)


def _delete(executor: ThreadPoolExecutor, client: Any, ep: _Endpoints, relpaths: Sequence[str],
            limit: int, log: logging.Logger) -> tuple[int, list[SyncFailure]]:
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
            errors = [SyncFailure(k, _error_code(exc), str(exc)) for k in batch]
        with lock:
            deleted += len(batch) - len(errors)
            failures.extend(errors)

    _run_bounded(executor, delete_batch, batches, limit)
    for f in failures:
        log.error("Failed to delete s3://%s/%s: %s %s", ep.dest_bucket, f.key, f.code, f.message)
    return deleted, failures


# --------------------------------------------------------------------------------------------
# Airflow operator
# --------------------------------------------------------------------------------------------


class S3SyncOperator(BaseOperator):
    """Sync a local folder or an S3 prefix to an S3 prefix (like ``aws s3 sync``).

    :param source: local folder on the worker, or ``s3://bucket/prefix`` (templated)
    :param dest: ``s3://bucket/prefix`` to mirror ``source`` into (templated)
    :param delete: delete objects under ``dest`` that are not in ``source``
    :param include: comma-separated globs such as ``"*.jpg,*.png"``, matched case-insensitively
        against the relative path on both sides (templated); ``None`` syncs everything
    :param max_concurrency: parallel transfers, and the client's connection pool size
    :param compare: ``size_and_etag`` (default), ``size_and_mtime`` or ``size_only``
    :param aws_conn_id: Airflow connection for AWS credentials and endpoint
    :param region_name: AWS region; the connection's when ``None``
    :return: ``{"copied", "skipped", "deleted", "bytes_copied", "source", "dest"}``
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
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # source/dest/include may be Jinja templates: they are validated in execute().
        _check_compare(compare)
        _check_concurrency(max_concurrency)
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
        return aws.client("s3", self.aws_conn_id, self.region_name,
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
        )
