"""The multipart-upload journal: what a killed sync left open, and who is still alive (S3 calls).

Each sync attempt journals the multipart uploads it opens (``<prefix>.s3sync-uploads.json``), so the
next try of the same Airflow task aborts a killed try's uploads at once, whatever their age, while
another run's live sync into the same destination keeps its uploads until its heartbeat is
``stale_upload_seconds`` old on S3's clock. The pure rules (the journal's key, S3's clock, owners,
:func:`~sagemaker_vision.core.s3_sync_state.attempt_is_dead`) are in
:mod:`sagemaker_vision.core.s3_sync_state` and :mod:`sagemaker_vision.core.s3_responses`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision.core.s3_responses import ACCESS_DENIED_CODES, LOST_RACE, NOT_FOUND_CODES, s3_clock
from sagemaker_vision.core.s3_sync import (
    Encryption,
    SyncLog,
    encryption_args,
)
from sagemaker_vision.core.s3_sync_state import (
    HEARTBEAT_SECONDS,
    JOURNAL_VERSION,
    S3_CLOCK_RESOLUTION_S,
    STALE_UPLOAD_SECONDS,
    attempt_is_dead,
    journal_key,
    versioned_field,
)
from sagemaker_vision.hooks.s3 import error_code

logger = logging.getLogger(__name__)


# A conditional write of the journal that lost a race (core.s3_responses.LOST_RACE) reads again and
# retries. A GET of a missing journal is 404 (NOT_FOUND_CODES), or 403 (ACCESS_DENIED_CODES) for a
# principal without an unconditional s3:ListBucket (GetObject, "Permissions"); the If-None-Match
# create that follows tells a missing journal from a denied one.
_JOURNAL_WRITE_TRIES = 20


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
                 stale_seconds: float, enc: Encryption | None = None, log: SyncLog = logger):
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
            code = error_code(exc)
            if code in NOT_FOUND_CODES or code in ACCESS_DENIED_CODES:
                return {}, None, s3_clock(exc.response), code in ACCESS_DENIED_CODES
            raise
        body = response["Body"].read()
        try:
            attempts = versioned_field(body, JOURNAL_VERSION, "attempts")
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.log.warning("Replacing the malformed upload journal %s (%s)", self.uri, exc)
            attempts = {}
        attempts = {a: e for a, e in attempts.items() if isinstance(e, dict) and isinstance(e.get("uploads"), dict)}
        return attempts, response.get("ETag"), s3_clock(response), False

    def update(self, change: Callable[[dict[str, Any], datetime | None], object]) -> dict[str, Any]:
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
                if error_code(exc) not in LOST_RACE:
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
            if error_code(exc) == "NoSuchUpload":  # completed or aborted already: nothing is left
                return True
            self.log.warning("Could not abort the multipart upload of s3://%s/%s (upload %s, %s): %s", self.bucket,
                             key, upload_id, why, error_code(exc))
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
                self.log.warning("Could not renew the heartbeat in %s: %s", self.uri, error_code(exc))

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
                             "aborts what it lists", self.uri, error_code(exc))


def abort_stale_uploads(client: Any, bucket: str, prefix: str, *,
                        idle_seconds: float = STALE_UPLOAD_SECONDS, journal: UploadJournal | None = None,
                        log: SyncLog = logger) -> tuple[list[str], list[str]]:
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
            # The Date header and S3's Initiated/LastModified may each count whole seconds, so the
            # difference can be a second too long: count one second less, never abort a live upload early.
            idle = max(0.0, (now - last).total_seconds() - S3_CLOCK_RESOLUTION_S) if now is not None else None
            if idle is None or idle < idle_seconds:
                left.append(key)
                log.info("Leaving the multipart upload of %s open: %s, it may belong to a sync still running "
                         "(aborted once idle for %.0f s on S3's clock)", where,
                         "S3 sent no Date" if idle is None else f"written {idle:.0f} s ago", idle_seconds)
                continue
            try:
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except ClientError as exc:
                if error_code(exc) != "NoSuchUpload":  # completed or aborted meanwhile: nothing left
                    raise
                continue
            aborted.append(key)
            log.warning("Aborted the multipart upload of %s, idle for %.0f s on S3's clock and in no sync's "
                        "journal: a killed sync left it open", where, idle)
    except ClientError as exc:
        log.warning("Could not clean up the open multipart uploads under s3://%s/%s (%s): they stay (and are "
                    "billed) until a later sync or an AbortIncompleteMultipartUpload lifecycle rule removes them",
                    bucket, prefix, error_code(exc))
    return aborted, left
