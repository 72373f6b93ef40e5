"""What an S3 sync keeps beside its destination, the pure part: the sync state object (what each
destination object held after the last sync) and the multipart-upload journal (who opened which
upload, and whether that attempt is still alive, on S3's clock: ``core.s3_responses.s3_clock``). No
Airflow, no AWS call.

The planner and the rest of the sync's model are in :mod:`sagemaker_vision.core.s3_sync`; the reads and
writes of these objects in :mod:`sagemaker_vision.hooks.s3_sync` and
:mod:`sagemaker_vision.hooks.s3_upload_journal`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sagemaker_vision.core.s3_sync import ObjectInfo

# The sync's own record of what it wrote, next to the destination prefix ("raw/dt=1" keeps it in
# "raw/dt=1.s3sync-state.json"), so the synced folder holds only synced files. Never synced itself.
STATE_SUFFIX = ".s3sync-state.json"
STATE_VERSION = 1
# Each sync attempt journals the multipart uploads it opens (``<prefix>.s3sync-uploads.json``, see
# UploadJournal), so the next attempt aborts a killed one's at once. Another owner's attempt counts as
# dead once its journal heartbeat (renewed every HEARTBEAT_SECONDS) is STALE_UPLOAD_SECONDS old on S3's
# clock; an upload no journal lists (an older sync, another tool) is aborted once no part was written to
# it for that long, also on S3's clock. A live upload writes an 8 MiB part far more often than that.
STALE_UPLOAD_SECONDS = 15 * 60
# S3's Date header (RFC 7231) counts whole seconds, and its listed timestamps may too.
S3_CLOCK_RESOLUTION_S = 1.0
JOURNAL_SUFFIX = ".s3sync-uploads.json"
JOURNAL_VERSION = 1
HEARTBEAT_SECONDS = 60.0


def state_key(dest_prefix: str) -> str:
    """Where the sync keeps its state for ``dest_prefix`` ("raw/" -> "raw.s3sync-state.json"), a key
    that no listing of the prefix returns (at the bucket root, a name the sync never copies)."""
    return dest_prefix[:-1] + STATE_SUFFIX if dest_prefix else STATE_SUFFIX


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


def state_entry(obj: ObjectInfo) -> dict[str, Any] | None:
    if obj.etag is None or (obj.md5 is None and obj.source_etag is None):
        return None
    entry: dict[str, Any] = {"etag": obj.etag, "size": obj.size}
    if obj.md5 is not None:
        entry["md5"] = obj.md5
    if obj.source_etag is not None:
        entry["source_etag"] = obj.source_etag
    return entry


# --------------------------------------------------------------------------------------------
# The multipart-upload journal: its key, S3's clock, owners, and who is still alive
# --------------------------------------------------------------------------------------------

_TI_FIELDS = ("dag_id", "task_id", "run_id", "map_index")


def journal_key(dest_prefix: str) -> str:
    """The upload journal of ``dest_prefix`` ("raw/dt=1/" -> "raw/dt=1.s3sync-uploads.json"), beside its state."""
    return dest_prefix[:-1] + JOURNAL_SUFFIX if dest_prefix else JOURNAL_SUFFIX


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


def versioned_field(body: bytes | str, version: int, field: str) -> dict[str, Any]:
    """``field`` of a sync state or upload journal object written as ``{"version": version, field: {...}}``.

    Raises ValueError (or TypeError, KeyError, AttributeError) for anything else, which the callers
    treat as a malformed object: the state is ignored, the journal replaced.
    """
    data = json.loads(body)
    value = data[field] if data.get("version") == version else None
    if not isinstance(value, dict):
        raise ValueError(f"unsupported version {data.get('version')!r}")
    return value
