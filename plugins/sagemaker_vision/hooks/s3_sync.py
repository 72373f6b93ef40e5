"""Run a sync (``aws s3 sync``-like) on one shared boto3 client, without Airflow: the listings, the
HEADs that verify what nothing vouches for, the transfers, the deletions and the sync state.

What "unchanged" means, the state and the journal are described in :mod:`sagemaker_vision.core.s3_sync`
(the pure plan and models); :mod:`sagemaker_vision.hooks.s3_upload_journal` aborts the multipart uploads
a killed sync left open; :class:`sagemaker_vision.operators.s3_sync.S3SyncOperator` is the operator.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision.core.s3_sync import (
    COPY_OBJECT_LIMIT,
    MAX_FAILURES_IN_MESSAGE,
    MD5_METADATA,
    SMALL_FILE_LIMIT,
    Compare,
    Encryption,
    Endpoints,
    ObjectInfo,
    S3SyncError,
    SyncLog,
    SyncPlan,
    check_compare,
    check_concurrency,
    check_stale_seconds,
    content_type,
    encryption_args,
    matches_include,
    md5_b64,
    md5_file,
    md5_from_metadata,
    needs_head,
    parse_include,
    plan_sync,
    refuse_unsafe_names,
    resolve_endpoints,
)
from sagemaker_vision.core.s3_sync_state import (
    JOURNAL_SUFFIX,
    STALE_UPLOAD_SECONDS,
    STATE_SUFFIX,
    STATE_VERSION,
    apply_state,
    state_entry,
    state_key,
)
from sagemaker_vision.hooks import s3
from sagemaker_vision.hooks.s3 import error_code
from sagemaker_vision.hooks.s3_transfer import Progress, copy_large, delete_keys, human_bytes, run_bounded
from sagemaker_vision.hooks.s3_upload_journal import UploadJournal, abort_stale_uploads

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------


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
            if not matches_include(relpath, patterns):
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
            if skip or not matches_include(relpath, patterns):
                continue
            out[relpath] = ObjectInfo(
                key, obj["Size"], etag=obj.get("ETag"), mtime=obj["LastModified"].timestamp()
            )
    return out


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------

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
    run_bounded(executor, lambda o: o.resolve_etag(), todo, limit)
    return len(todo)


def load_state(client: Any, bucket: str, prefix: str, read_args: Mapping[str, Any],
               log: SyncLog = logger) -> dict[str, dict[str, Any]]:
    """The entries of the state object, ``{}`` when there is none or it is unreadable (logged)."""
    key = state_key(prefix)
    try:
        body = client.get_object(Bucket=bucket, Key=key, **read_args)["Body"].read()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if not s3.key_missing(client, exc, bucket, key):
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


def _head(client: Any, bucket: str, key: str, read_args: Mapping[str, Any]) -> dict[str, Any] | None:
    try:
        return client.head_object(Bucket=bucket, Key=key, **read_args)
    except ClientError as exc:
        logger.info("Cannot verify s3://%s/%s (%s): it will be copied", bucket, key, error_code(exc))
        return None


def _verify_by_head(executor: ThreadPoolExecutor, client: Any, ep: Endpoints, source: Mapping[str, ObjectInfo],
                    dest: Mapping[str, ObjectInfo], compare: str, enc: Encryption, limit: int) -> int:
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
                dst.md5 = md5_from_metadata(head.get("Metadata"))
        if not src.local and src.md5 is None and dst.md5 is not None:
            assert ep.source_bucket is not None  # an S3 object is a source only of an S3 source
            head = _head(client, ep.source_bucket, src.key_or_relpath, enc.source_read)
            calls += 1
            if head is not None and str(head.get("ETag", "")).strip('"').lower() == src.etag:
                src.md5 = md5_from_metadata(head.get("Metadata"))
        with lock:
            count += calls

    run_bounded(executor, verify, pairs, limit)
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
    log: SyncLog = logger,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
    sse_customer_key: bytes | str | None = None,
    source_sse_customer_key: bytes | str | None = None,
    stale_upload_seconds: float | None = STALE_UPLOAD_SECONDS,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Make ``dest`` (s3://) mirror ``source`` (a local folder or s3://); see :func:`plan_sync`.

    Uses ``client`` from up to ``max_concurrency`` threads, so give it at least that many pool
    connections (``hooks.base.client(..., max_pool_connections=max_concurrency)``). Failed transfers
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
    check_compare(compare)
    check_concurrency(max_concurrency)
    check_stale_seconds(stale_upload_seconds)
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


def _transfer(client: Any, ep: Endpoints, src_objects: dict[str, ObjectInfo], dest_objects: dict[str, ObjectInfo],
              refused: list[str], state: Mapping[str, Any], aborted: list[str], enc: Encryption,
              log: SyncLog, *, source: str, dest: str, delete: bool, compare: Compare, max_concurrency: int,
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
                len(src_objects), len(dest_objects), len(plan.to_copy), human_bytes(plan.bytes_to_copy),
                len(plan.to_skip), len(plan.to_delete), hashed, heads,
            )
            progress = Progress(log, len(plan.to_copy), plan.bytes_to_copy)
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
                                                 Metadata={MD5_METADATA: md5_b64(md5)}, **enc.write)
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

            run_bounded(executor, copy_one, small, limit)
            if large:
                done = copy_large(client, ep, large, progress, max_concurrency, enc)

                def record_large(item: tuple[str, ObjectInfo, str | None]) -> None:
                    # s3transfer does not return the final ETag: one HEAD per large object.
                    relpath, obj, md5 = item
                    head = _head(client, ep.dest_bucket, ep.dest_prefix + relpath, enc.dest_read)
                    if head is None:
                        return
                    if obj.local:
                        assert ep.local_root is not None  # a local object is a source only of a local root
                        st = (ep.local_root / obj.key_or_relpath).stat()
                        if st.st_size != obj.size or st.st_mtime != obj.mtime:
                            return  # changed while uploading: record nothing, verify next time
                        md5 = md5_from_metadata(head.get("Metadata")) if md5 else None
                        record(relpath, head.get("ETag"), obj.size, md5, None)
                    else:
                        record(relpath, head.get("ETag"), obj.size, obj.md5, obj.etag)

                run_bounded(executor, record_large, done, limit)

            deleted = 0
            failures = list(progress.failures)
            if failures:
                if plan.to_delete:
                    log.warning("Skipping %d deletions because copies failed", len(plan.to_delete))
            elif plan.to_delete:
                deleted, delete_failures = delete_keys(executor, client, ep, plan.to_delete, limit, log)
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
        source, dest, elapsed, progress.copied, human_bytes(progress.bytes_copied), human_bytes(rate),
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


def _save_state(client: Any, ep: Endpoints, old: Mapping[str, Any], source: Mapping[str, ObjectInfo],
                dest: Mapping[str, ObjectInfo], plan: SyncPlan, recorded: Mapping[str, ObjectInfo],
                deleted: int, enc: Encryption, log: SyncLog, learn: bool = True) -> None:
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
        if (entry := state_entry(obj)) is not None:
            entries[rel] = entry
    for rel, obj in recorded.items():
        if (entry := state_entry(obj)) is not None:
            entries[rel] = entry
    if ep.include:  # objects outside this run's include filter were not looked at: keep what is known
        entries.update({rel: e for rel, e in old.items()
                        if rel not in entries and not matches_include(rel, ep.include)})
    if entries == old:
        return
    body = json.dumps({"version": STATE_VERSION, "entries": dict(sorted(entries.items()))},
                      separators=(",", ":")).encode()
    try:
        client.put_object(Bucket=ep.dest_bucket, Key=state_key(ep.dest_prefix), Body=body,
                          ContentType="application/json", **enc.write)
    except ClientError as exc:
        log.warning("Could not write the sync state s3://%s/%s (%s): the next sync verifies by HEAD",
                    ep.dest_bucket, state_key(ep.dest_prefix), error_code(exc))
