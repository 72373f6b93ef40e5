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
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    md5_from_metadata,
    needs_head,
    plan_sync,
    refuse_unsafe_names,
    resolve_endpoints,
)
from sagemaker_vision.core.s3_sync_state import (
    STALE_UPLOAD_SECONDS,
    STATE_VERSION,
    apply_state,
    state_entry,
    state_key,
)
from sagemaker_vision.hooks.s3 import error_code
from sagemaker_vision.hooks.s3_sync_listing import list_local as list_local  # re-exported: the listings' home
from sagemaker_vision.hooks.s3_sync_listing import list_s3 as list_s3
from sagemaker_vision.hooks.s3_sync_listing import load_state as load_state
from sagemaker_vision.hooks.s3_sync_listing import prefetch_md5s, read_listings
from sagemaker_vision.hooks.s3_transfer import Progress, copy_large, delete_keys, human_bytes, run_bounded
from sagemaker_vision.hooks.s3_upload_journal import UploadJournal, abort_stale_uploads

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


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
    with ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="s3sync") as executor:
        try:
            return _sync(executor, client, ep, enc, log, source=source, dest=dest, delete=delete, compare=compare,
                         max_concurrency=max_concurrency, stale_upload_seconds=stale_upload_seconds, owner=owner,
                         started=started)
        except BaseException:
            # Killed or a bug: don't start anything still queued, let running requests finish.
            executor.shutdown(wait=True, cancel_futures=True)
            raise


def _sync(executor: ThreadPoolExecutor, client: Any, ep: Endpoints, enc: Encryption, log: SyncLog, *,
          source: str, dest: str, delete: bool, compare: Compare, max_concurrency: int,
          stale_upload_seconds: float | None, owner: Mapping[str, Any] | None, started: float) -> dict[str, Any]:
    """:func:`sync` once its arguments are checked, on its pool of ``max_concurrency`` threads."""
    src_objects, dest_objects, state, hashing = read_listings(executor, client, ep, compare, enc, log)
    refused = refuse_unsafe_names(src_objects, ep.dest_prefix, f"in {source}", log)
    for relpath in refused:
        dest_objects.pop(relpath, None)  # never deleted, never compared: the sync leaves it alone
    if delete and not src_objects and dest_objects:
        # An empty (or unmounted) source folder would otherwise wipe the destination.
        raise ValueError(f"source: {source!r} has no files to sync; refusing to delete all "
                         f"{len(dest_objects)} objects under dest {dest!r}")
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
        return _transfer(executor, client, ep, src_objects, dest_objects, refused, state, aborted, enc, log,
                         source=source, dest=dest, delete=delete, compare=compare,
                         max_concurrency=max_concurrency, started=started, hashing=hashing)
    finally:
        if journal is not None:
            journal.finish()


def _transfer(executor: ThreadPoolExecutor, client: Any, ep: Endpoints, src_objects: dict[str, ObjectInfo],
              dest_objects: dict[str, ObjectInfo], refused: list[str], state: Mapping[str, Any], aborted: list[str],
              enc: Encryption, log: SyncLog, *, source: str, dest: str, delete: bool, compare: Compare,
              max_concurrency: int, started: float, hashing: Sequence[Future[None]] = ()) -> dict[str, Any]:
    """The second half of :func:`sync`: plan, copy, delete, save the state, report."""
    limit = 4 * max_concurrency
    recorded: dict[str, ObjectInfo] = {}  # relpath -> what this run wrote (etag, md5/source etag)
    hashed = prefetch_md5s(executor, src_objects, dest_objects, compare, hashing)
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
    skipped = set(plan.to_skip)  # a tuple's `in` would scan it once per object
    for rel, obj in dest.items():
        if rel in gone or rel in plan.to_copy:
            continue
        src = source.get(rel) if learn and rel in skipped else None
        if src is not None and obj.md5 is None and src.local and src.etag is not None:
            obj.md5 = src.etag  # proven equal to the local file: its MD5 is the object's
        if src is not None and obj.source_etag is None and not src.local:
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
