"""Sync a local folder or an S3 prefix to an S3 prefix, like ``aws s3 sync``.

Three layers, each usable alone:

* :func:`plan_sync` is pure: two listings in, a :class:`SyncPlan` out (no I/O except the lazy
  local MD5 a caller may have attached to an :class:`ObjectInfo`).
* :func:`list_local` / :func:`list_s3` build the listings; :func:`sync` lists, plans and runs
  the transfers on one shared boto3 client, without Airflow.
* :class:`S3SyncOperator` is the thin Airflow wrapper that returns an XCom-friendly summary.

How "unchanged" is decided (``compare="size_and_etag"``, the default). An ETag is the MD5 of the
data only for single-part, unencrypted or SSE-S3 objects; SSE-KMS and SSE-C objects and multipart
uploads have ETags that are not MD5s (botocore's ``s3`` model, ``Object.ETag``), and a listing
does not say which kind an object has. So an ETag is only ever trusted as an identity of one
write, never assumed to be an MD5:

* every object this sync writes carries its content MD5 in metadata (``x-amz-meta-md5chksum``,
  base64, the name rclone uses), and the sync keeps a state object next to the destination
  prefix (``<prefix>.s3sync-state.json``, see :func:`state_key`), mapping each key to the ETag
  and size it had after the sync, with its content MD5 (and, for S3 sources, the source ETag it was copied from);
* a destination object is unchanged when its listed ETag and size are the ones the state
  recorded and the recorded MD5 (or source ETag) matches the source; or when the source's MD5
  (or, S3 to S3, its ETag) equals the destination ETag; or, when neither is known, after one
  ``HeadObject`` of each side that reads ``md5chksum``. Anything still undecided is copied:
  an unverifiable object is re-copied once (and recorded), never skipped on a guess.

So a no-op re-sync costs the listings, one GET of the state object and the local MD5s of
same-size files, and no HEAD per object; a one-byte edit that keeps size and mtime is copied
whatever the encryption or upload method.

Multipart uploads a killed sync leaves open (their parts are billed until aborted) are found again
through the upload journal (``<prefix>.s3sync-uploads.json``, :class:`UploadJournal`): each attempt
journals every UploadId it opens before sending a part, so the next try of the same Airflow task
aborts the killed try's uploads at once, whatever their age, while another run's live sync into the
same destination keeps its uploads until its heartbeat is ``stale_upload_seconds`` old on S3's clock.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import logging
import mimetypes
import os
import socket
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow.sdk import BaseOperator
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.exceptions import ClientError
from s3transfer.subscribers import BaseSubscriber

from sagemaker_vision import aws, s3io
from sagemaker_vision.config import s3_key_problem, validate_bucket

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
# The sync's own record of what it wrote, next to the destination prefix ("raw/dt=1" keeps it in
# "raw/dt=1.s3sync-state.json"), so the synced folder holds only synced files. Never synced itself.
STATE_SUFFIX = ".s3sync-state.json"
STATE_VERSION = 1
# User metadata holding the base64 MD5 of the data (rclone's name, so its uploads compare too).
MD5_METADATA = "md5chksum"
SSE_MODES = ("AES256", "aws:kms", "aws:kms:dsse")
# Each sync attempt journals the multipart uploads it opens (``<prefix>.s3sync-uploads.json``, see
# UploadJournal), so the next attempt aborts a killed one's at once. Another owner's attempt counts as
# dead once its journal heartbeat (renewed every HEARTBEAT_SECONDS) is STALE_UPLOAD_SECONDS old on S3's
# clock; an upload no journal lists (an older sync, another tool) is aborted once no part was written to
# it for that long, also on S3's clock. A live upload writes an 8 MiB part far more often than that.
STALE_UPLOAD_SECONDS = 15 * 60
JOURNAL_SUFFIX = ".s3sync-uploads.json"
JOURNAL_VERSION = 1
HEARTBEAT_SECONDS = 60.0

# mimetypes maps ".manifest" to the HTML5 appcache type; SageMaker manifests are JSON Lines.
_CONTENT_TYPE_OVERRIDES = {".manifest": "application/jsonlines", ".jsonl": "application/jsonlines"}

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Pure planning
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ObjectInfo:
    """One file or object: the S3 key (or the path relative to a local root) and what we compare.

    ``etag`` is the hex ETag without quotes: for an S3 object an opaque identity of one write
    (it may or may not be an MD5), for a local file its MD5. A local file leaves it ``None`` and
    passes ``etag_loader`` instead, so its MD5 is only computed when :func:`plan_sync` needs it
    (sizes equal). ``md5`` is an S3 object's content MD5 when something vouches for it (the
    sync state or ``md5chksum`` metadata); ``source_etag`` is, for a destination object, the
    ETag of the source object the sync state says it was copied from.
    """

    key_or_relpath: str
    size: int
    etag: str | None = None
    mtime: float | None = None
    etag_loader: Callable[[], str] | None = field(default=None, repr=False, compare=False)
    md5: str | None = None
    source_etag: str | None = None
    local: bool = False

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"size: must be >= 0 for {self.key_or_relpath!r}, got {self.size}")
        if self.etag is not None:
            self.etag = self.etag.strip('"').lower()
        if self.etag_loader is not None:
            self.local = True
        if self.md5 is not None:
            self.md5 = self.md5.lower()
        if self.source_etag is not None:
            self.source_etag = self.source_etag.strip('"').lower()

    @property
    def is_multipart(self) -> bool:
        """True when the ETag is a multipart one ("<md5-of-md5s>-<parts>"), which is not an MD5."""
        return self.etag is not None and "-" in self.etag

    def content_md5(self) -> str | None:
        """The MD5 of the data when known: a local file's (computed), an S3 object's if vouched for."""
        return self.resolve_etag() if self.local else self.md5

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


def same_content(src: ObjectInfo, dst: ObjectInfo) -> bool:
    """True only when something proves ``dst`` holds ``src``'s bytes (sizes already equal).

    Equal ETags prove it (an MD5 against an MD5, or the same write's identity); so does a
    source ETag the sync state recorded for this very destination write, or two known MD5s.
    A local file's MD5 against an ETag that is not an MD5 proves nothing, and gives False.
    """
    if not src.local and src.etag is not None and src.etag == dst.source_etag:
        return True
    identity = src.resolve_etag()
    if identity is not None and identity == dst.etag:
        return True
    digest = src.content_md5()
    return digest is not None and digest == dst.md5


def needs_head(src: ObjectInfo, dst: ObjectInfo | None, compare: str) -> bool:
    """Whether a ``HeadObject`` could still prove a same-size pair equal (nothing vouches yet)."""
    if compare != "size_and_etag" or dst is None or src.size != dst.size or same_content(src, dst):
        return False
    return dst.md5 is None or (not src.local and src.md5 is None)


def _copy_reason(src: ObjectInfo, dst: ObjectInfo | None, compare: str) -> str | None:
    if dst is None:
        return "missing"
    if src.size != dst.size:
        return "size"
    if compare == "size_only":
        return None
    if compare == "size_and_etag":
        # Never a guess from mtimes: an edit that keeps size and mtime must still be copied.
        return None if same_content(src, dst) else "etag"
    # size_and_mtime: like `aws s3 sync`, a source newer than its copy changed after it was copied.
    if src.mtime is not None and dst.mtime is not None and src.mtime > dst.mtime:
        return "mtime"
    return None


def _check_compare(compare: str) -> None:
    if compare not in COMPARE_MODES:
        raise ValueError(f"compare: must be one of {', '.join(COMPARE_MODES)}, got {compare!r}")


def _check_stale_seconds(value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise ValueError(f"stale_upload_seconds: must be a number of seconds >= 0 or None, got {value!r}")


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

    Copy when dest lacks the path, the sizes differ, or (``size_and_etag``) nothing proves the
    contents equal (:func:`same_content`; :func:`sync` first fills in what the sync state and,
    where needed, ``HeadObject`` know). ``size_and_mtime`` copies when the source is newer than
    dest; ``size_only`` compares sizes only. With ``delete``, paths only in dest are deleted.
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
    are not followed (no loops), a symlinked file is followed only when its target is inside
    ``root`` (else skipped, with a warning naming both), and the MD5 is left to a lazy
    ``etag_loader``.
    """
    root_path = Path(root)
    patterns = parse_include(include)
    out: dict[str, ObjectInfo] = {}
    real_root = os.path.realpath(root_path)
    for dirpath, dirnames, filenames in os.walk(root_path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            abspath = os.path.join(dirpath, name)
            relpath = os.path.relpath(abspath, root_path).replace(os.sep, "/")
            if not _matches(relpath, patterns):
                continue
            if os.path.islink(abspath):
                target = os.path.realpath(abspath)
                if os.path.commonpath([real_root, target]) != real_root:
                    # Never read outside the source: a link to /etc/passwd is not an image to upload.
                    logger.warning("Skipping symlink %s -> %s: it points outside the source folder %s",
                                   abspath, target, real_root)
                    continue
                logger.info("Following symlink %s -> %s (inside the source folder)", abspath, target)
            try:
                st = os.stat(abspath)
            except FileNotFoundError:  # a dangling symlink, or deleted while we walked
                logger.warning("Skipping %s: it no longer exists or is a dangling symlink", abspath)
                continue
            if not stat.S_ISREG(st.st_mode):  # never try to upload a FIFO or a socket
                continue
            out[relpath] = ObjectInfo(
                relpath, st.st_size, mtime=st.st_mtime, etag_loader=partial(md5_file, abspath), local=True
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
            skip = not relpath or relpath.endswith("/") or relpath.endswith((STATE_SUFFIX, JOURNAL_SUFFIX))
            if skip or not _matches(relpath, patterns):
                continue
            out[relpath] = ObjectInfo(
                key, obj["Size"], etag=obj.get("ETag"), mtime=obj["LastModified"].timestamp()
            )
    return out


def key_name_problem(key: str) -> str | None:
    """Why ``key`` cannot be synced safely (``config.s3_key_problem``: the rule the manifest
    converters apply too), or None when it can. Such files are skipped; the others still sync."""
    return s3_key_problem(key)


def refuse_unsafe_names(objects: dict[str, ObjectInfo], dest_prefix: str, where: str,
                        log: logging.Logger = logger) -> list[str]:
    """Drop (in place) the objects whose destination key :func:`key_name_problem` refuses; log each.

    Returns the refused relative paths, sorted. The rest still sync: one odd name never fails the run.
    """
    refused = []
    for relpath in sorted(objects):
        problem = key_name_problem(dest_prefix + relpath)
        if problem is not None:
            del objects[relpath]
            refused.append(relpath)
            log.warning("Not syncing %s (%s): its name %s; rename it to sync it",
                        ascii(relpath), where, problem)
    return refused


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
        and (dst := dest.get(rel)) is not None and dst.size == src.size
    ]
    _run_bounded(executor, lambda o: o.resolve_etag(), todo, limit)
    return len(todo)


# --------------------------------------------------------------------------------------------
# Encryption arguments, content digests and the sync state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encryption:
    """Request arguments for the destination's encryption and, S3 to S3, the source's SSE-C key."""

    write: dict[str, Any]  # PutObject / CopyObject / multipart upload
    dest_read: dict[str, Any]  # HeadObject / GetObject of destination objects
    source_read: dict[str, Any]  # HeadObject of source objects
    copy_source: dict[str, Any]  # CopyObject / UploadPartCopy of an SSE-C source

    def __repr__(self) -> str:  # never show a customer key
        return "_Encryption(...)"


def _customer_key(value: bytes | str | None, field_name: str) -> bytes | None:
    if value is None:
        return None
    raw = value.encode() if isinstance(value, str) else value
    if not isinstance(raw, bytes) or len(raw) != 32:
        raise ValueError(f"{field_name}: an SSE-C key must be 32 bytes (AES-256)")
    return raw


def encryption_args(sse: str | None = None, sse_kms_key_id: str | None = None,
                    sse_customer_key: bytes | str | None = None,
                    source_sse_customer_key: bytes | str | None = None) -> _Encryption:
    """Validate the encryption settings and turn them into request arguments (no AWS call)."""
    if sse is not None and sse not in SSE_MODES:
        raise ValueError(f"sse: must be one of {', '.join(SSE_MODES)} or None, got {sse!r}")
    if sse_kms_key_id and not (sse or "").startswith("aws:kms"):
        raise ValueError("sse_kms_key_id: only with sse='aws:kms' or 'aws:kms:dsse'")
    key = _customer_key(sse_customer_key, "sse_customer_key")
    source_key = _customer_key(source_sse_customer_key, "source_sse_customer_key")
    if key is not None and sse is not None:
        raise ValueError("sse_customer_key: SSE-C cannot be combined with sse")
    write: dict[str, Any] = {}
    if sse:
        write["ServerSideEncryption"] = sse
    if sse_kms_key_id:
        write["SSEKMSKeyId"] = sse_kms_key_id
    dest_read = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key} if key else {}
    write.update(dest_read)
    source_read = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": source_key} if source_key else {}
    copy_source = ({"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": source_key}
                   if source_key else {})
    return _Encryption(write, dest_read, source_read, copy_source)


def _md5_b64(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode()


def _md5_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """The hex MD5 in ``md5chksum`` metadata, or None when absent or malformed."""
    value = (metadata or {}).get(MD5_METADATA)
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None


def state_key(dest_prefix: str) -> str:
    """Where the sync keeps its state for ``dest_prefix`` ("raw/" -> "raw.s3sync-state.json"), a key
    that no listing of the prefix returns (at the bucket root, a name the sync never copies)."""
    return dest_prefix[:-1] + STATE_SUFFIX if dest_prefix else STATE_SUFFIX


def load_state(client: Any, bucket: str, prefix: str, read_args: Mapping[str, Any],
               log: logging.Logger = logger) -> dict[str, dict[str, Any]]:
    """The entries of the state object, ``{}`` when there is none or it is unreadable (logged)."""
    key = state_key(prefix)
    try:
        body = client.get_object(Bucket=bucket, Key=key, **read_args)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if not s3io.key_missing(client, exc, bucket, key):
            log.warning("Ignoring the sync state s3://%s/%s (%s): every object will be verified", bucket, key, code)
        return {}
    try:
        data = json.loads(body)
        entries = data["entries"] if data.get("version") == STATE_VERSION else None
        if not isinstance(entries, dict):
            raise ValueError(f"unsupported version {data.get('version')!r}")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("Ignoring the malformed sync state s3://%s/%s (%s): every object will be verified",
                    bucket, key, exc)
        return {}
    return {rel: e for rel, e in entries.items() if isinstance(e, dict)}


def apply_state(dest: Mapping[str, ObjectInfo], entries: Mapping[str, Mapping[str, Any]]) -> int:
    """Fill ``md5``/``source_etag`` of dest objects whose ETag and size are those the state recorded."""
    applied = 0
    for rel, entry in entries.items():
        obj = dest.get(rel)
        etag = str(entry.get("etag") or "").strip('"').lower()
        if obj is None or not etag or obj.etag != etag or obj.size != entry.get("size"):
            continue  # rewritten by someone else since: the entry says nothing about it
        if isinstance(entry.get("md5"), str):
            obj.md5 = entry["md5"].lower()
        if isinstance(entry.get("source_etag"), str):
            obj.source_etag = entry["source_etag"].strip('"').lower()
        applied += 1
    return applied


def _entry(obj: ObjectInfo) -> dict[str, Any] | None:
    if obj.etag is None or (obj.md5 is None and obj.source_etag is None):
        return None
    entry: dict[str, Any] = {"etag": obj.etag, "size": obj.size}
    if obj.md5 is not None:
        entry["md5"] = obj.md5
    if obj.source_etag is not None:
        entry["source_etag"] = obj.source_etag
    return entry


def _head(client: Any, bucket: str, key: str, read_args: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return client.head_object(Bucket=bucket, Key=key, **read_args)
    except ClientError as exc:
        logger.info("Cannot verify s3://%s/%s (%s): it will be copied", bucket, key, _error_code(exc))
        return None


def abort_stale_uploads(client: Any, bucket: str, prefix: str, *,
                        idle_seconds: float = STALE_UPLOAD_SECONDS, journal: UploadJournal | None = None,
                        log: logging.Logger = logger) -> tuple[list[str], list[str]]:
    """Abort the multipart uploads a killed sync left open under ``prefix``; returns (aborted, left open) keys.

    When uploads are open, ``journal`` (:meth:`UploadJournal.abort_dead`) first aborts those of dead
    sync attempts, whatever their age, and the uploads it lists are not looked at again. Any other
    upload (opened by an older sync or another
    tool) is aborted once nothing was written to it (its newest part, or its initiation if it has
    none) for ``idle_seconds`` on S3's clock (the ``Date`` of the ListParts response), never the
    worker's; a younger one may be a concurrent writer's live upload and is left, named in the log.
    A failure to list or abort is logged, never fatal: a bucket lifecycle rule
    (``AbortIncompleteMultipartUpload``) is the backstop. Calls ListMultipartUploads (with ``Prefix``),
    ListParts and AbortMultipartUpload.
    """
    aborted: list[str] = []
    left: list[str] = []
    try:
        uploads = [(u, s3_clock(page)) for page in client.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=prefix) for u in page.get("Uploads", ())]
        skip: set[str] = set()
        if uploads and journal is not None:
            aborted, skip = journal.abort_dead()
        for upload, listed_at in uploads:
            key, upload_id, initiated = upload["Key"], upload["UploadId"], upload["Initiated"]
            if upload_id in skip:
                continue
            last, now = initiated, listed_at
            for parts in client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id):
                last = max([last, *(p["LastModified"] for p in parts.get("Parts", ()))])
                now = s3_clock(parts) or now
            where = f"s3://{bucket}/{key} (upload {upload_id}, initiated {initiated.isoformat()})"
            # The Date header has whole seconds: the idle time is underestimated, never overestimated.
            idle = (now - last).total_seconds() if now is not None else None
            if idle is None or idle < idle_seconds:
                left.append(key)
                log.info("Leaving the multipart upload of %s open: %s, it may belong to a sync still running "
                         "(aborted once idle for %.0f s on S3's clock)", where,
                         "S3 sent no Date" if idle is None else f"written {idle:.0f} s ago", idle_seconds)
                continue
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if _error_code(exc) != "NoSuchUpload":  # completed or aborted meanwhile: nothing left
                    raise
                continue
            aborted.append(key)
            log.warning("Aborted the multipart upload of %s, idle for %.0f s on S3's clock and in no sync's "
                        "journal: a killed sync left it open", where, idle)
    except ClientError as exc:
        log.warning("Could not clean up the open multipart uploads under s3://%s/%s (%s): they stay (and are "
                    "billed) until a later sync or an AbortIncompleteMultipartUpload lifecycle rule removes them",
                    bucket, prefix, _error_code(exc))
    return aborted, left


def _verify_by_head(executor: ThreadPoolExecutor, client: Any, ep: _Endpoints, source: Mapping[str, ObjectInfo],
                    dest: Mapping[str, ObjectInfo], compare: str, enc: _Encryption, limit: int) -> int:
    """HEAD the same-size pairs nothing vouches for, reading ``md5chksum``; returns the HEAD count."""
    pairs = [(rel, src, dest[rel]) for rel, src in source.items() if needs_head(src, dest.get(rel), compare)]
    count = 0
    lock = threading.Lock()

    def verify(item: tuple[str, ObjectInfo, ObjectInfo]) -> None:
        nonlocal count
        rel, src, dst = item
        calls = 0
        if dst.md5 is None:
            head = _head(client, ep.dest_bucket, ep.dest_prefix + rel, enc.dest_read)
            calls += 1
            if head is not None and str(head.get("ETag", "")).strip('"').lower() == dst.etag:
                dst.md5 = _md5_from_metadata(head.get("Metadata"))
        if not src.local and src.md5 is None and dst.md5 is not None:
            head = _head(client, ep.source_bucket, src.key_or_relpath, enc.source_read)
            calls += 1
            if head is not None and str(head.get("ETag", "")).strip('"').lower() == src.etag:
                src.md5 = _md5_from_metadata(head.get("Metadata"))
        with lock:
            count += calls

    _run_bounded(executor, verify, pairs, limit)
    return count


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
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
    sse_customer_key: bytes | str | None = None,
    source_sse_customer_key: bytes | str | None = None,
    stale_upload_seconds: float | None = STALE_UPLOAD_SECONDS,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make ``dest`` (s3://) mirror ``source`` (a local folder or s3://); see :func:`plan_sync`.

    Uses ``client`` from up to ``max_concurrency`` threads, so give it at least that many pool
    connections (``aws.client(..., max_pool_connections=max_concurrency)``). Failed transfers
    are collected and raised together as :class:`S3SyncError` once the others have finished;
    deletions are then skipped, so a failing run never removes anything.

    ``sse`` (``AES256``, ``aws:kms``, ``aws:kms:dsse``) with ``sse_kms_key_id``, or an SSE-C
    ``sse_customer_key`` (32 bytes), encrypt what is written; ``source_sse_customer_key``
    reads an SSE-C source. The state object is written with the same encryption.

    Multipart uploads a killed sync left open under ``dest`` are aborted first: every upload an earlier
    try of the same task instance (``owner``, see :func:`task_owner`) journaled, at once, and those of
    other attempts whose heartbeat is ``stale_upload_seconds`` old on S3's clock (:class:`UploadJournal`);
    then uploads no journal lists, once idle that long (:func:`abort_stale_uploads`). ``None`` skips the
    journal and the cleanup (a lifecycle rule's job then).
    """
    _check_compare(compare)
    _check_concurrency(max_concurrency)
    _check_stale_seconds(stale_upload_seconds)
    enc = encryption_args(sse, sse_kms_key_id, sse_customer_key, source_sse_customer_key)
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
    refused = refuse_unsafe_names(src_objects, ep.dest_prefix, f"in {source}", log)
    for relpath in refused:
        dest_objects.pop(relpath, None)  # never deleted, never compared: the sync leaves it alone
    if delete and not src_objects and dest_objects:
        # An empty (or unmounted) source folder would otherwise wipe the destination.
        raise ValueError(f"source: {source!r} has no files to sync; refusing to delete all "
                         f"{len(dest_objects)} objects under dest {dest!r}")
    state = load_state(client, ep.dest_bucket, ep.dest_prefix, enc.dest_read, log) if compare == "size_and_etag" else {}
    apply_state(dest_objects, state)
    aborted: list[str] = []
    journal: UploadJournal | None = None
    if stale_upload_seconds is not None:
        journal = UploadJournal(client, ep.dest_bucket, ep.dest_prefix, owner=owner,
                                stale_seconds=stale_upload_seconds, enc=enc, log=log)
        aborted, _ = abort_stale_uploads(client, ep.dest_bucket, ep.dest_prefix, idle_seconds=stale_upload_seconds,
                                         journal=journal, log=log)
        journal.track()
    try:
        return _transfer(client, ep, src_objects, dest_objects, refused, state, aborted, enc, log,
                         source=source, dest=dest, delete=delete, compare=compare,
                         max_concurrency=max_concurrency, started=started)
    finally:
        if journal is not None:
            journal.finish()


def _transfer(client: Any, ep: _Endpoints, src_objects: dict[str, ObjectInfo], dest_objects: dict[str, ObjectInfo],
              refused: list[str], state: Mapping[str, Any], aborted: list[str], enc: _Encryption,
              log: logging.Logger, *, source: str, dest: str, delete: bool, compare: str, max_concurrency: int,
              started: float) -> dict[str, Any]:
    """The second half of :func:`sync`: plan, copy, delete, save the state, report."""
    limit = 4 * max_concurrency
    recorded: dict[str, ObjectInfo] = {}  # relpath -> what this run wrote (etag, md5/source etag)
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="s3sync") as executor:
        try:
            hashed = _prefetch_md5s(executor, src_objects, dest_objects, compare, limit)
            heads = _verify_by_head(executor, client, ep, src_objects, dest_objects, compare, enc, limit)
            plan = plan_sync(src_objects, dest_objects, delete=delete, compare=compare)
            log.info(
                "Sync %s -> %s: %d source files, %d dest objects; %d to copy (%s), %d unchanged, "
                "%d to delete (%d local files hashed, %d objects verified by HEAD)", source, dest,
                len(src_objects), len(dest_objects), len(plan.to_copy), _human(plan.bytes_to_copy),
                len(plan.to_skip), len(plan.to_delete), hashed, heads,
            )
            progress = _Progress(log, len(plan.to_copy), plan.bytes_to_copy)
            big_limit = SMALL_FILE_LIMIT if ep.local_root is not None else COPY_OBJECT_LIMIT
            small = [(r, o) for r, o in plan.to_copy.items() if o.size < big_limit]
            large = [(r, o) for r, o in plan.to_copy.items() if o.size >= big_limit]
            lock = threading.Lock()

            def record(relpath: str, etag: str | None, size: int, md5: str | None,
                       source_etag: str | None) -> None:
                if etag:
                    with lock:
                        recorded[relpath] = ObjectInfo(ep.dest_prefix + relpath, size, etag=etag, md5=md5,
                                                       source_etag=source_etag)

            def copy_one(item: tuple[str, ObjectInfo]) -> None:
                relpath, obj = item
                key = ep.dest_prefix + relpath
                try:
                    if ep.local_root is not None:
                        # The bytes sent are the bytes hashed, so the recorded MD5 is exact.
                        data = (ep.local_root / obj.key_or_relpath).read_bytes()
                        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
                        resp = client.put_object(Bucket=ep.dest_bucket, Key=key, Body=data,
                                                 ContentType=content_type(relpath),
                                                 Metadata={MD5_METADATA: _md5_b64(md5)}, **enc.write)
                        record(relpath, resp.get("ETag"), len(data), md5, None)
                    else:
                        resp = client.copy_object(Bucket=ep.dest_bucket, Key=key,
                                                  CopySource={"Bucket": ep.source_bucket, "Key": obj.key_or_relpath},
                                                  **enc.write, **enc.copy_source)
                        record(relpath, resp.get("CopyObjectResult", {}).get("ETag"), obj.size, obj.md5, obj.etag)
                except Exception as exc:  # collected, raised together at the end
                    progress.done(key, obj.size, exc)
                else:
                    progress.done(key, obj.size)

            _run_bounded(executor, copy_one, small, limit)
            if large:
                done = _copy_large(client, ep, large, progress, max_concurrency, enc)

                def record_large(item: tuple[str, ObjectInfo, str | None]) -> None:
                    # s3transfer does not return the final ETag: one HEAD per large object.
                    relpath, obj, md5 = item
                    head = _head(client, ep.dest_bucket, ep.dest_prefix + relpath, enc.dest_read)
                    if head is None:
                        return
                    if obj.local:
                        st = (ep.local_root / obj.key_or_relpath).stat()
                        if st.st_size != obj.size or st.st_mtime != obj.mtime:
                            return  # changed while uploading: record nothing, verify next time
                        md5 = _md5_from_metadata(head.get("Metadata")) if md5 else None
                        record(relpath, head.get("ETag"), obj.size, md5, None)
                    else:
                        record(relpath, head.get("ETag"), obj.size, obj.md5, obj.etag)

                _run_bounded(executor, record_large, done, limit)

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

    _save_state(client, ep, state, src_objects, dest_objects, plan, recorded, deleted, enc, log,
                learn=compare == "size_and_etag")
    elapsed = time.monotonic() - started
    rate = progress.bytes_copied / elapsed if elapsed > 0 else 0.0
    log.info(
        "Synced %s -> %s in %.1f s: copied %d (%s, %s/s), skipped %d, deleted %d, failed %d%s",
        source, dest, elapsed, progress.copied, _human(progress.bytes_copied), _human(rate),
        len(plan.to_skip), deleted, len(failures),
        f", refused {len(refused)} unsafe names (see the warnings above)" if refused else "",
    )
    if failures:
        raise S3SyncError(failures, f"{len(failures)} of {len(plan.to_copy) + len(plan.to_delete)} "
                                    f"operations failed syncing {source} -> {dest}")
    return {
        "copied": progress.copied,
        "skipped": len(plan.to_skip),
        "deleted": deleted,
        "bytes_copied": progress.bytes_copied,
        "verified_by_head": heads,
        "refused": len(refused),
        "aborted_uploads": len(aborted),
        "refused_files": [ascii(r) for r in refused[:MAX_FAILURES_IN_MESSAGE]],
        "source": source,
        "dest": dest,
    }


def _save_state(client: Any, ep: _Endpoints, old: Mapping[str, Any], source: Mapping[str, ObjectInfo],
                dest: Mapping[str, ObjectInfo], plan: SyncPlan, recorded: Mapping[str, ObjectInfo],
                deleted: int, enc: _Encryption, log: logging.Logger, learn: bool = True) -> None:
    """Write what is now known of each dest object, when it changed; a failure only costs HEADs later.

    ``learn``: the skipped pairs were proven equal (``size_and_etag``), so what the source knows
    holds for the destination too; ``size_only`` and ``size_and_mtime`` skips prove nothing.
    """
    entries: dict[str, dict[str, Any]] = {}
    gone = set(plan.to_delete) if deleted else set()
    for rel, obj in dest.items():
        if rel in gone or rel in plan.to_copy:
            continue
        src = source.get(rel) if learn else None
        if src is not None and rel in plan.to_skip and obj.md5 is None and src.local and src.etag is not None:
            obj.md5 = src.etag  # proven equal to the local file: its MD5 is the object's
        if src is not None and rel in plan.to_skip and obj.source_etag is None and not src.local:
            obj.source_etag = src.etag
        if (entry := _entry(obj)) is not None:
            entries[rel] = entry
    for rel, obj in recorded.items():
        if (entry := _entry(obj)) is not None:
            entries[rel] = entry
    if ep.include:  # objects outside this run's include filter were not looked at: keep what is known
        entries.update({rel: e for rel, e in old.items() if rel not in entries and not _matches(rel, ep.include)})
    if entries == old:
        return
    body = json.dumps({"version": STATE_VERSION, "entries": dict(sorted(entries.items()))},
                      separators=(",", ":")).encode()
    try:
        client.put_object(Bucket=ep.dest_bucket, Key=state_key(ep.dest_prefix), Body=body,
                          ContentType="application/json", **enc.write)
    except ClientError as exc:
        log.warning("Could not write the sync state s3://%s/%s (%s): the next sync verifies by HEAD",
                    ep.dest_bucket, state_key(ep.dest_prefix), _error_code(exc))


def _copy_large(client: Any, ep: _Endpoints, items: Sequence[tuple[str, ObjectInfo]],
                progress: _Progress, max_concurrency: int,
                enc: _Encryption | None = None) -> list[tuple[str, ObjectInfo, str | None]]:
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
                extra = {"ContentType": content_type(relpath), "Metadata": {MD5_METADATA: _md5_b64(md5)}, **enc.write}
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
        _check_compare(compare)
        _check_concurrency(max_concurrency)
        _check_stale_seconds(stale_upload_seconds)
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
            sse=self.sse,
            sse_kms_key_id=self.sse_kms_key_id,
            sse_customer_key=self._sse_customer_key,
            source_sse_customer_key=self._source_sse_customer_key,
            stale_upload_seconds=self.stale_upload_seconds,
            owner=task_owner(context.get("ti")),
        )


# --------------------------------------------------------------------------------------------
# The multipart-upload journal: what a killed sync left open, and who is still alive
# --------------------------------------------------------------------------------------------

# Codes of a conditional PutObject that lost a race (S3 user guide, conditional writes; botocore
# PutObjectRequest.IfMatch / IfNoneMatch): 412 another writer won, 409 a concurrent conditional
# write, 404 NoSuchKey an If-Match on a key that vanished. Any of them: read again and retry.
_JOURNAL_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"})
_JOURNAL_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
# A GET of a missing key is 403 for a principal without an unconditional s3:ListBucket (GetObject,
# "Permissions"); the If-None-Match create that follows tells a missing journal from a denied one.
_JOURNAL_DENIED = frozenset({"AccessDenied", "403", "Forbidden"})
_JOURNAL_WRITE_TRIES = 20
_TI_FIELDS = ("dag_id", "task_id", "run_id", "map_index")


def journal_key(dest_prefix: str) -> str:
    """The upload journal of ``dest_prefix`` ("raw/dt=1/" -> "raw/dt=1.s3sync-uploads.json"), beside its state."""
    return dest_prefix[:-1] + JOURNAL_SUFFIX if dest_prefix else JOURNAL_SUFFIX


def s3_clock(response: Mapping[str, Any] | None) -> datetime | None:
    """S3's time of a response (its ``Date`` header), or None; never the worker's clock."""
    header = (((response or {}).get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
    if not header:
        return None
    try:
        return parsedate_to_datetime(header).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def task_owner(ti: Any) -> dict[str, Any] | None:
    """The journal owner of an Airflow task instance: its identity and try number (None without one)."""
    if ti is None:
        return None
    owner = {f: getattr(ti, f, None) for f in (*_TI_FIELDS, "try_number")}
    if any(owner[f] is None for f in ("dag_id", "task_id", "run_id")) or not isinstance(owner["try_number"], int):
        return None
    return owner


def attempt_is_dead(entry: Mapping[str, Any], owner: Mapping[str, Any] | None, s3_now: datetime | None,
                    stale_seconds: float) -> str | None:
    """Why another attempt's journal entry belongs to a sync that is no longer running, or None if it may be.

    * An earlier try of this very task instance (same dag, task, run and map index, lower try number)
      is dead at once, whatever its age: Airflow starts the next try of a task instance only once the
      previous one has ended (failed, been killed, or lost its heartbeat and been failed by the scheduler).
    * Any other attempt (another DAG run or task syncing to the same destination, or a sync run outside
      Airflow) renews its ``heartbeat`` every ``HEARTBEAT_SECONDS`` while it runs; it is dead once that is
      older than ``stale_seconds`` on S3's clock (the ``Date`` of S3's responses, never a worker's clock).
      Without a usable S3 time or heartbeat nothing is judged dead.
    """
    other = entry.get("owner")
    if isinstance(owner, Mapping) and isinstance(other, Mapping) \
            and all(other.get(f) == owner.get(f) for f in _TI_FIELDS) \
            and isinstance(other.get("try_number"), int) and other["try_number"] < owner["try_number"]:
        return f"try {other['try_number']} of this task instance (this is try {owner['try_number']})"
    try:
        beat = datetime.fromisoformat(str(entry.get("heartbeat")))
    except ValueError:
        return None
    if s3_now is None or beat.tzinfo is None:
        return None
    age = (s3_now - beat).total_seconds()
    return f"no heartbeat for {age:.0f} s on S3's clock" if age >= stale_seconds else None


class UploadJournal:
    """One sync attempt's record of the multipart uploads it opens under a destination.

    The journal object (:func:`journal_key`, beside the sync state) maps each attempt to its owner
    (:func:`task_owner`), a heartbeat (S3's time, read from the ``Date`` of the response the write was
    based on) and the UploadIds it opened. It is only ever rewritten with a conditional PutObject
    (``If-Match`` the ETag read, ``If-None-Match: *`` to create it), so concurrent attempts never lose
    each other's entries. An UploadId is journaled by an ``after-call`` hook of CreateMultipartUpload,
    before any part is sent (s3transfer sends parts only once the create has returned); if the journal
    cannot be written the new upload is aborted and the file fails.

    :meth:`abort_dead` aborts the journaled uploads of dead attempts (:func:`attempt_is_dead`; called
    only when uploads are open under the prefix), :meth:`track` journals this attempt's, and
    :meth:`finish` aborts what this attempt left open and removes its entry.
    A sync killed outright (SIGKILL, a lost worker) leaves its entry, which the next attempt reads.
    """

    def __init__(self, client: Any, bucket: str, prefix: str, *, owner: Mapping[str, Any] | None,
                 stale_seconds: float, enc: _Encryption | None = None, log: logging.Logger = logger):
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.key = journal_key(prefix)
        self.owner = dict(owner) if owner else None
        self.stale_seconds = stale_seconds
        self.enc = enc or encryption_args()
        self.log = log
        self.attempt = uuid.uuid4().hex
        self.open: dict[str, str] = {}  # UploadId -> key, opened by this attempt and not completed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heart: threading.Thread | None = None
        self._entered = False  # this attempt has an entry in the journal object
        self._hook = f"s3sync-journal-{self.attempt}"

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    # -- the journal object ---------------------------------------------------------------
    def _read(self) -> tuple[dict[str, Any], str | None, datetime | None, bool]:
        """(attempts, ETag, S3's time, read was denied)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key, **self.enc.dest_read)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _JOURNAL_MISSING or code in _JOURNAL_DENIED:
                return {}, None, s3_clock(exc.response), code in _JOURNAL_DENIED
            raise
        body = response["Body"].read()
        try:
            data = json.loads(body)
            attempts = data["attempts"] if data.get("version") == JOURNAL_VERSION else None
            if not isinstance(attempts, dict):
                raise ValueError(f"unsupported version {data.get('version')!r}")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.log.warning("Replacing the malformed upload journal %s (%s)", self.uri, exc)
            attempts = {}
        attempts = {a: e for a, e in attempts.items() if isinstance(e, dict) and isinstance(e.get("uploads"), dict)}
        return attempts, response.get("ETag"), s3_clock(response), False

    def update(self, change: Callable[[dict[str, Any], datetime | None], None]) -> dict[str, Any]:
        """Read, ``change(attempts, s3_now)`` in place, write back conditionally; retried on a lost race."""
        for _ in range(_JOURNAL_WRITE_TRIES):
            attempts, etag, now, denied = self._read()
            change(attempts, now)
            body = json.dumps({"version": JOURNAL_VERSION, "attempts": attempts}, sort_keys=True,
                              separators=(",", ":")).encode()
            condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                       ContentType="application/json", **condition, **self.enc.write)
            except ClientError as exc:
                if _error_code(exc) not in _JOURNAL_RACE:
                    raise
                if denied and etag is None:
                    exc.add_note(f"{self.uri} exists but reading it was refused (AccessDenied): a permission "
                                 "problem (IAM policy, KMS or SSE-C key)")
                    raise
                time.sleep(0.05)
                continue
            return attempts
        raise RuntimeError(f"Could not update the upload journal {self.uri}: {_JOURNAL_WRITE_TRIES} "
                           "conditional writes in a row lost to other writers")

    def _mine(self, attempts: dict[str, Any], now: datetime | None) -> dict[str, Any]:
        entry = attempts.setdefault(self.attempt, {"owner": self.owner, "uploads": {}, "host": socket.gethostname()})
        if now is not None:
            entry["heartbeat"] = now.isoformat()
        return entry

    # -- the attempt's life ------------------------------------------------------------------
    def abort_dead(self) -> tuple[list[str], set[str]]:
        """Abort the journaled uploads of dead attempts, drop them from the journal; returns (aborted keys,
        the UploadIds the journal accounts for, live or aborted)."""
        attempts, _, now, _ = self._read()
        aborted: list[str] = []
        closed: dict[str, set[str]] = {}
        for attempt, entry in attempts.items():
            why = None if attempt == self.attempt else attempt_is_dead(entry, self.owner, now, self.stale_seconds)
            if why is None:
                if entry["uploads"]:
                    self.log.info("Leaving the %d multipart uploads of sync attempt %s (%s) open: it may still be "
                                  "running", len(entry["uploads"]), attempt, entry.get("owner") or "outside Airflow")
                continue
            closed[attempt] = set()
            for upload_id, key in entry["uploads"].items():
                if self._abort(key, upload_id, f"attempt {attempt} is dead: {why}", aborted):
                    closed[attempt].add(upload_id)

        def forget(current: dict[str, Any], s3_now: datetime | None) -> None:
            for attempt, ids in closed.items():
                entry = current.get(attempt)
                if entry is None:
                    continue
                for upload_id in ids:
                    entry["uploads"].pop(upload_id, None)
                if not entry["uploads"]:
                    del current[attempt]

        current = self.update(forget) if closed else attempts
        journaled = {u for e in current.values() for u in e["uploads"]}
        return aborted, journaled | {u for ids in closed.values() for u in ids}

    def track(self) -> None:
        """Journal every multipart upload this client opens under the prefix, from now until :meth:`finish`.

        This attempt enters the journal with its first multipart upload: a sync of small files only (or
        a no-op one) writes no journal."""
        self.client.meta.events.register("after-call.s3.CreateMultipartUpload", self._created, unique_id=self._hook)
        self.client.meta.events.register("after-call.s3.CompleteMultipartUpload", self._completed,
                                         unique_id=self._hook + "-done")

    def _abort(self, key: str, upload_id: str, why: str, aborted: list[str]) -> bool:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _error_code(exc) == "NoSuchUpload":  # completed or aborted already: nothing is left
                return True
            self.log.warning("Could not abort the multipart upload of s3://%s/%s (upload %s, %s): %s", self.bucket,
                             key, upload_id, why, _error_code(exc))
            return False
        aborted.append(key)
        self.log.warning("Aborted the multipart upload of s3://%s/%s (upload %s): %s", self.bucket, key,
                         upload_id, why)
        return True

    def _created(self, http_response: Any = None, parsed: Mapping[str, Any] | None = None, **_: Any) -> None:
        parsed = parsed or {}
        upload_id, key = parsed.get("UploadId"), parsed.get("Key")
        if getattr(http_response, "status_code", 500) >= 300 or not upload_id or not isinstance(key, str) \
                or parsed.get("Bucket") not in (None, self.bucket) or not key.startswith(self.prefix):
            return
        with self._lock:
            self.open[upload_id] = key
            try:
                self.update(lambda attempts, now: self._mine(attempts, now)["uploads"].__setitem__(upload_id, key))
                self._entered = True
                if self._heart is None:
                    self._heart = threading.Thread(target=self._beat, name="s3sync-heartbeat", daemon=True)
                    self._heart.start()
            except Exception as exc:
                self.open.pop(upload_id, None)
                self._abort(key, upload_id, "its UploadId could not be journaled", [])
                raise RuntimeError(f"Could not journal the multipart upload of s3://{self.bucket}/{key} in "
                                   f"{self.uri}; the upload was aborted") from exc

    def _completed(self, http_response: Any = None, parsed: Mapping[str, Any] | None = None, **_: Any) -> None:
        key = (parsed or {}).get("Key")
        if getattr(http_response, "status_code", 500) < 300 and key:
            with self._lock:
                for upload_id in [u for u, k in self.open.items() if k == key]:
                    del self.open[upload_id]

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                with self._lock:
                    self.update(self._mine)
            except Exception as exc:  # a missed beat only risks an early abort by another owner's sync
                self.log.warning("Could not renew the heartbeat in %s: %s", self.uri, _error_code(exc))

    def finish(self) -> None:
        """Abort the uploads this attempt opened and did not complete; drop its entry when none is left."""
        self._stop.set()
        if self._heart is not None:
            self._heart.join()
        self.client.meta.events.unregister("after-call.s3.CreateMultipartUpload", unique_id=self._hook)
        self.client.meta.events.unregister("after-call.s3.CompleteMultipartUpload", unique_id=self._hook + "-done")
        try:
            with self._lock:
                for upload_id, key in list(self.open.items()):
                    if self._abort(key, upload_id, "this sync did not complete it", []):
                        del self.open[upload_id]
                left = dict(self.open)
                if not self._entered:
                    return

                def drop(attempts: dict[str, Any], now: datetime | None) -> None:
                    if left:
                        self._mine(attempts, now)["uploads"] = left
                    else:
                        attempts.pop(self.attempt, None)

                self.update(drop)
        except Exception as exc:  # the next sync of this destination cleans up instead
            self.log.warning("Could not close this sync's entry in the upload journal %s (%s): the next sync "
                             "aborts what it lists", self.uri, _error_code(exc))
