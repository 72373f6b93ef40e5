"""Sync a local folder or an S3 prefix to an S3 prefix, like ``aws s3 sync``: the pure part (no Airflow,
no AWS call).

Three layers, each usable alone:

* :func:`plan_sync` (here) is pure: two listings in, a :class:`SyncPlan` out (no I/O except the
  lazy local MD5 a caller may have attached to an :class:`ObjectInfo`). This module also holds
  the encryption arguments, the MD5 metadata and the input checks; the sync state's and the upload
  journal's models are in :mod:`sagemaker_vision.core.s3_sync_state`.
* :mod:`sagemaker_vision.hooks.s3_sync` builds the listings (``list_local`` / ``list_s3``) and runs
  ``sync``: lists, plans and runs the transfers (:mod:`sagemaker_vision.hooks.s3_transfer`) on one
  shared boto3 client, without Airflow; :mod:`sagemaker_vision.hooks.s3_upload_journal` finds the
  multipart uploads a killed sync left open.
* :class:`sagemaker_vision.operators.s3_sync.S3SyncOperator` is the thin Airflow wrapper that returns
  an XCom-friendly summary.

How "unchanged" is decided (``compare="size_and_etag"``, the default). An ETag is the MD5 of the
data only for single-part, unencrypted or SSE-S3 objects; SSE-KMS and SSE-C objects and multipart
uploads have ETags that are not MD5s (botocore's ``s3`` model, ``Object.ETag``), and a listing
does not say which kind an object has. So an ETag is only ever trusted as an identity of one
write, never assumed to be an MD5:

* every object this sync writes carries its content MD5 in metadata (``x-amz-meta-md5chksum``,
  base64, the name rclone uses), and the sync keeps a state object next to the destination
  prefix (``<prefix>.s3sync-state.json``, see ``core.s3_sync_state.state_key``), mapping each key
  to the ETag and size it had after the sync, with its content MD5 (and, for S3 sources, the
  source ETag it was copied from);
* a destination object is unchanged when its listed ETag and size are the ones the state
  recorded and the recorded MD5 (or source ETag) matches the source; or when the source's MD5
  (or, S3 to S3, its ETag) equals the destination ETag; or, when neither is known, after one
  ``HeadObject`` of each side that reads ``md5chksum``. Anything still undecided is copied:
  an unverifiable object is re-copied once (and recorded), never skipped on a guess.

So a no-op re-sync costs the listings, one GET of the state object and the local MD5s of
same-size files, and no HEAD per object; a one-byte edit that keeps size and mtime is copied
whatever the encryption or upload method.

Multipart uploads a killed sync leaves open (their parts are billed until aborted) are found again
through the upload journal (``<prefix>.s3sync-uploads.json``,
:class:`sagemaker_vision.hooks.s3_upload_journal.UploadJournal`): each attempt
journals every UploadId it opens before sending a part, so the next try of the same Airflow task
aborts the killed try's uploads at once, whatever their age, while another run's live sync into the
same destination keeps its uploads until its heartbeat is ``stale_upload_seconds`` old on S3's clock.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import logging
import mimetypes
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

from sagemaker_vision.core.validate import parse_s3_uri, s3_key_problem

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
# User metadata holding the base64 MD5 of the data (rclone's name, so its uploads compare too).
MD5_METADATA = "md5chksum"
SSE_MODES = ("AES256", "aws:kms", "aws:kms:dsse")

# mimetypes maps ".manifest" to the HTML5 appcache type; SageMaker manifests are JSON Lines.
_CONTENT_TYPE_OVERRIDES = {".manifest": "application/jsonlines", ".jsonl": "application/jsonlines"}

logger = logging.getLogger(__name__)


class SyncLog(Protocol):
    """What the sync logs through: a ``logging.Logger``, or an Airflow task's ``self.log``."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any) -> Any: ...

    def error(self, msg: Any, /, *args: Any) -> Any: ...


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


def check_compare(compare: str) -> None:
    if compare not in COMPARE_MODES:
        raise ValueError(f"compare: must be one of {', '.join(COMPARE_MODES)}, got {compare!r}")


def check_stale_seconds(value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise ValueError(f"stale_upload_seconds: must be a number of seconds >= 0 or None, got {value!r}")


def check_concurrency(max_concurrency: int) -> None:
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
    contents equal (:func:`same_content`; ``hooks.s3_sync.sync`` first fills in what the sync state and,
    where needed, ``HeadObject`` know). ``size_and_mtime`` copies when the source is newer than
    dest; ``size_only`` compares sizes only. With ``delete``, paths only in dest are deleted.
    """
    check_compare(compare)
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
# URIs, filters, names and endpoints
# --------------------------------------------------------------------------------------------


def parse_include(include: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"*.jpg, *.png"`` -> ``("*.jpg", "*.png")``; ``None`` means everything."""
    if include is None:
        return ()
    parts = include.split(",") if isinstance(include, str) else list(include)
    patterns = tuple(p.strip() for p in parts if p and p.strip())
    if not patterns:
        raise ValueError(f"include: no glob patterns in {include!r}; use None to include everything")
    return patterns


def matches_include(relpath: str, patterns: tuple[str, ...]) -> bool:
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


def key_name_problem(key: str) -> str | None:
    """Why ``key`` cannot be synced safely (``core.validate.s3_key_problem``: the rule the manifest
    converters apply too), or None when it can. Such files are skipped; the others still sync."""
    return s3_key_problem(key)


def refuse_unsafe_names(objects: dict[str, ObjectInfo], dest_prefix: str, where: str,
                        log: SyncLog = logger) -> list[str]:
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
class Endpoints:
    source: str
    dest: str
    dest_bucket: str
    dest_prefix: str
    local_root: Path | None
    source_bucket: str | None
    source_prefix: str | None
    include: tuple[str, ...]


def resolve_endpoints(source: str, dest: str, include: str | Sequence[str] | None) -> Endpoints:
    """Validate ``source``/``dest``/``include`` before any AWS call; errors name the field."""
    patterns = parse_include(include)
    dest_bucket, dest_prefix = parse_s3_uri(dest, "dest", folder=True)  # a prefix is a folder: raw != raw2
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source: expected a local folder or an s3:// URI, got {source!r}")
    if source.startswith("s3://"):
        src_bucket, src_prefix = parse_s3_uri(source, "source", folder=True)
        if src_bucket == dest_bucket and (
            src_prefix.startswith(dest_prefix) or dest_prefix.startswith(src_prefix)
        ):
            # Nested prefixes would list the sync's own output (or delete the source).
            raise ValueError(f"dest: {dest!r} overlaps source {source!r}; use disjoint prefixes")
        return Endpoints(source, dest, dest_bucket, dest_prefix, None, src_bucket, src_prefix, patterns)
    if "://" in source:
        raise ValueError(f"source: unsupported scheme in {source!r}; use a local folder or s3://")
    root = Path(source).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"source: local folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"source: {str(root)!r} is not a folder")
    return Endpoints(source, dest, dest_bucket, dest_prefix, root, None, None, patterns)


# --------------------------------------------------------------------------------------------
# Failures
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


# --------------------------------------------------------------------------------------------
# Encryption arguments and content digests
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encryption:
    """Request arguments for the destination's encryption and, S3 to S3, the source's SSE-C key."""

    write: dict[str, Any]  # PutObject / CopyObject / multipart upload
    dest_read: dict[str, Any]  # HeadObject / GetObject of destination objects
    source_read: dict[str, Any]  # HeadObject of source objects
    copy_source: dict[str, Any]  # CopyObject / UploadPartCopy of an SSE-C source

    def __repr__(self) -> str:  # never show a customer key
        return "Encryption(...)"


def _customer_key(value: bytes | str | None, field_name: str) -> bytes | None:
    if value is None:
        return None
    raw = value.encode() if isinstance(value, str) else value
    if not isinstance(raw, bytes) or len(raw) != 32:
        raise ValueError(f"{field_name}: an SSE-C key must be 32 bytes (AES-256)")
    return raw


def encryption_args(sse: str | None = None, sse_kms_key_id: str | None = None,
                    sse_customer_key: bytes | str | None = None,
                    source_sse_customer_key: bytes | str | None = None) -> Encryption:
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
    return Encryption(write, dest_read, source_read, copy_source)


def md5_b64(hex_md5: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_md5)).decode()


def md5_from_metadata(metadata: Mapping[str, str] | None) -> str | None:
    """The hex MD5 in ``md5chksum`` metadata, or None when absent or malformed."""
    value = (metadata or {}).get(MD5_METADATA)
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == 16 else None
