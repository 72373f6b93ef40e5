"""The listings a sync compares (a local folder, an S3 prefix, the sync state) and the local MD5s
it needs, read at once on the sync's pool so the hashing overlaps the listing's round trips.

Part of :mod:`sagemaker_vision.hooks.s3_sync` (which re-exports ``list_local``, ``list_s3`` and
``load_state``) and logs through its logger; what "unchanged" means is in
:mod:`sagemaker_vision.core.s3_sync`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, tzinfo
from functools import partial
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserFactory
from botocore.utils import parse_timestamp

from sagemaker_vision.core.s3_sync import (
    Encryption,
    Endpoints,
    ObjectInfo,
    SyncLog,
    matches_include,
    md5_file,
    parse_include,
)
from sagemaker_vision.core.s3_sync_state import JOURNAL_SUFFIX, STATE_SUFFIX, STATE_VERSION, state_key, versioned_field
from sagemaker_vision.hooks import s3

logger = logging.getLogger("sagemaker_vision.hooks.s3_sync")  # the sync's own: one logger to configure

# S3's listing timestamps ("2026-11-25T10:04:00.000Z"); anything else goes to botocore's parser.
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")


@functools.cache
def _utc() -> tzinfo | None:
    return parse_timestamp("1970-01-01T00:00:00Z").tzinfo  # what botocore gives "Z" on this host


def iso_timestamp(value: Any) -> datetime:
    """botocore's ``parse_timestamp``, with S3's own format read by ``datetime.fromisoformat``.

    The same value with the same tzinfo as botocore's parser gives (which hands every string to
    dateutil: 55 us each, a fifth of a no-op re-sync's client CPU for 2,000 keys); 0.3 us here.
    """
    if isinstance(value, str) and _ISO_UTC.fullmatch(value):
        with contextlib.suppress(ValueError):  # a month 13: botocore's parser words the error
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=_utc())
    return parse_timestamp(value)


def use_iso_timestamps(client: Any) -> bool:
    """Have ``client`` parse timestamps with :func:`iso_timestamp`; True when it does.

    What the AWS CLI does for its sessions (``set_parser_defaults(timestamp_parser=...)``), done for
    this client alone: it gets a parser factory of its own with the same defaults, so the other
    clients of its session are untouched. A client whose session set a timestamp parser keeps it.
    botocore keeps the factory on the client's endpoint (no public handle): if that changes, the
    client is left as it is and the sync only runs slower.
    """
    endpoint = getattr(client, "_endpoint", None)
    factory = getattr(endpoint, "_response_parser_factory", None)
    defaults = getattr(factory, "_defaults", None)
    if not isinstance(factory, ResponseParserFactory) or not isinstance(defaults, dict):
        return False
    if "timestamp_parser" in defaults:
        return defaults["timestamp_parser"] is iso_timestamp
    own = ResponseParserFactory()
    own.set_parser_defaults(**defaults, timestamp_parser=iso_timestamp)
    endpoint._response_parser_factory = own  # type: ignore[union-attr]
    return True

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
        # One relpath per folder, not per file (os.path.relpath costs two abspaths a call).
        rel_dir = os.path.relpath(dirpath, root_path).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames:
            if name.startswith("."):
                continue
            abspath = os.path.join(dirpath, name)
            relpath = rel_dir + name
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
    client: Any, bucket: str, prefix: str, include: str | Sequence[str] | None = None,
    on_page: Callable[[dict[str, ObjectInfo]], None] | None = None,
) -> dict[str, ObjectInfo]:
    """Objects under ``prefix`` keyed by the key relative to it; "folder" markers are skipped.

    ``on_page`` is called with each page's objects as it arrives (the sync starts hashing the
    matching local files while the next page is on its way).
    """
    patterns = parse_include(include)
    out: dict[str, ObjectInfo] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        listed: dict[str, ObjectInfo] = {}
        for obj in page.get("Contents", ()):
            key = obj["Key"]
            relpath = key[len(prefix):]
            skip = not relpath or relpath.endswith("/") or relpath.endswith((STATE_SUFFIX, JOURNAL_SUFFIX))
            if skip or not matches_include(relpath, patterns):
                continue
            listed[relpath] = ObjectInfo(
                key, obj["Size"], etag=obj.get("ETag"), mtime=obj["LastModified"].timestamp()
            )
        out.update(listed)
        if on_page is not None:
            on_page(listed)
    return out


# --------------------------------------------------------------------------------------------
# Local MD5s, and the listings read together
# --------------------------------------------------------------------------------------------

HASH_BATCH = 64  # local files per hashing task: one future per file cost more than the hashing


def _unhashed_same_size(source: Mapping[str, ObjectInfo], dest: Mapping[str, ObjectInfo]) -> list[ObjectInfo]:
    """The local files the planner will ask the MD5 of: a same-size destination object, no MD5 yet."""
    return [
        src for rel, dst in dest.items()
        if (src := source.get(rel)) is not None and src.etag is None and src.etag_loader is not None
        and dst.size == src.size
    ]


def _hash_all(objects: Sequence[ObjectInfo]) -> None:
    for obj in objects:
        obj.resolve_etag()


def _hash_in_batches(executor: ThreadPoolExecutor, todo: Sequence[ObjectInfo]) -> list[Future[None]]:
    """Hash ``todo`` on the pool, HASH_BATCH files a task (hashlib releases the GIL: they run in parallel)."""
    return [executor.submit(_hash_all, todo[i:i + HASH_BATCH]) for i in range(0, len(todo), HASH_BATCH)]


def prefetch_md5s(executor: ThreadPoolExecutor, source: Mapping[str, ObjectInfo],
                  dest: Mapping[str, ObjectInfo], compare: str, pending: Sequence[Future[None]] = ()) -> int:
    """Hash the local files whose MD5 the planner will ask for; returns how many were hashed.

    Only same-size pairs qualify, so a first sync hashes nothing. ``pending`` are the hashing
    tasks :func:`read_listings` started while the destination was being listed: they finish first
    (an object is never hashed by two threads at once), then whatever is left is hashed.
    """
    for future in wait(pending).done:
        future.result()
    if compare != "size_and_etag":
        return 0
    for future in wait(_hash_in_batches(executor, _unhashed_same_size(source, dest))).done:
        future.result()
    return sum(1 for rel, src in source.items() if src.local and src.etag is not None and rel in dest)


def _listing(client: Any, bucket: str, prefix: str, include: tuple[str, ...], uri: str, where: str,
             on_page: Callable[[dict[str, ObjectInfo]], None] | None = None) -> dict[str, ObjectInfo]:
    try:
        return list_s3(client, bucket, prefix, include or None, on_page)
    except ClientError as exc:
        exc.add_note(f"while listing {where} {uri!r}")
        raise


def read_listings(executor: ThreadPoolExecutor, client: Any, ep: Endpoints, compare: str, enc: Encryption, log: SyncLog
                  ) -> tuple[dict[str, ObjectInfo], dict[str, ObjectInfo], dict[str, Any], list[Future[None]]]:
    """The source and destination listings and the sync state, read at once on the pool.

    While the destination's pages arrive, the same-size local files of each page start hashing
    (``size_and_etag`` needs their MD5 anyway), so the hashing overlaps the listing's round trips.
    Returns (source, dest, state entries, the hashing tasks still running).
    """
    use_iso_timestamps(client)  # 2,000 keys' LastModified by dateutil cost more than hashing the files
    if ep.local_root is not None:
        src_future = executor.submit(list_local, ep.local_root, ep.include or None)
    else:
        assert ep.source_bucket is not None and ep.source_prefix is not None
        src_future = executor.submit(_listing, client, ep.source_bucket, ep.source_prefix, ep.include,
                                     ep.source, "source")
    learn = compare == "size_and_etag"
    state_future = executor.submit(load_state, client, ep.dest_bucket, ep.dest_prefix, enc.dest_read, log) \
        if learn else None
    hashing: list[Future[None]] = []

    def on_page(page: dict[str, ObjectInfo]) -> None:
        if learn and ep.local_root is not None and src_future.exception() is None:
            hashing.extend(_hash_in_batches(executor, _unhashed_same_size(src_future.result(), page)))

    dest_objects = _listing(client, ep.dest_bucket, ep.dest_prefix, ep.include, ep.dest, "dest", on_page)
    return src_future.result(), dest_objects, state_future.result() if state_future else {}, hashing


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
        entries = versioned_field(body, STATE_VERSION, "entries")
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("Ignoring the malformed sync state s3://%s/%s (%s): every object will be verified",
                    bucket, key, exc)
        return {}
    return {rel: e for rel, e in entries.items() if isinstance(e, dict)}
