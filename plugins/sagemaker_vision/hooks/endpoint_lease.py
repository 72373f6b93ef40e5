"""The endpoint lease on S3: conditional ``PutObject`` writes and ``GetObject`` reads of one key.

What a read means, the key, the owner and the TTL are ``core.lease``'s (the design is in its
docstring); this is the one class that talks to S3 for a task. The triggerer's read is
``triggers.endpoint_lease``'s.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision.core.lease import LEASE_FORMAT, LOST_RACE, LeaseLost, LeaseView, decide, server_time, view_from
from sagemaker_vision.hooks.s3 import key_missing

log = logging.getLogger(__name__)


def error_code(exc: ClientError) -> str:
    """The S3 error code of ``exc``, or its HTTP status when it has none (``412``, ``409``, ``404``)."""
    error = exc.response.get("Error") or {}
    return str(error.get("Code") or (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "")


class EndpointLease:
    """The lease of one endpoint, as seen by one owner (a DAG run).

    :param s3_client: a boto3 S3 client.
    :param bucket: The project bucket.
    :param key: The lease key (:func:`lease_key`).
    :param owner: Who takes it: ``<dag_id>/<run_id>``, the same for every try of a run.
    :param ttl_seconds: How long the lease lives after each write without a renewal.
    :param endpoint_name: For messages and the body.
    :param clock: S3's time of a response; default its ``Date`` header (tests pass their own).
    """

    def __init__(self, s3_client: Any, bucket: str, key: str, owner: str, *, ttl_seconds: float,
                 endpoint_name: str = "", details: Mapping[str, Any] | None = None,
                 clock: Callable[[Mapping[str, Any]], datetime] = server_time) -> None:
        if not owner:
            raise ValueError("owner is required")
        if not ttl_seconds or ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be above 0, got {ttl_seconds!r}")
        self.s3, self.bucket, self.key, self.owner = s3_client, bucket, key, owner
        self.ttl_seconds = float(ttl_seconds)
        self.endpoint_name = endpoint_name
        self.details = dict(details or {})
        self.clock = clock

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def read(self) -> LeaseView:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if key_missing(self.s3, exc, self.bucket, self.key):
                return view_from(None, None, None, self.clock(exc.response))
            raise
        raw = response["Body"].read()
        return view_from(raw, response.get("ETag"), response.get("LastModified"), self.clock(response))

    def _body(self, *, released: bool = False) -> bytes:
        body = {"format": LEASE_FORMAT, "owner": self.owner, "endpoint_name": self.endpoint_name,
                "ttl_seconds": self.ttl_seconds, "released": released, "host": socket.gethostname(),
                "written_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **self.details}
        return json.dumps(body, sort_keys=True).encode()

    def _put(self, body: bytes, *, if_match: str | None) -> str | None:
        """The conditional write; returns the new ETag, or None when another writer won the race."""
        condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        try:
            response = self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body,
                                          ContentType="application/json", **condition)
        except ClientError as exc:
            if error_code(exc) in LOST_RACE:
                return None
            raise
        return response.get("ETag") or ""

    def try_acquire(self, attempts: int = 5) -> tuple[bool, LeaseView]:
        """One round of taking the lease: ``(True, view)`` when this owner holds it now, else
        ``(False, view of the holder)``. A lost race is read again (``attempts`` times).

        It writes first (``IfNoneMatch="*"``) and reads only on a 412: the object then exists, so the
        read needs ``s3:GetObject`` only, never a listing to tell a missing key from a forbidden one.
        """
        if self._put(self._body(), if_match=None) is not None:
            log.info("Lease %s acquired by %s for %.0f s", self.uri, self.owner, self.ttl_seconds)
            return True, self.read()
        view = self.read()
        for _ in range(attempts):
            action = decide(view, self.owner)
            if action == "wait":
                return False, view
            etag = self._put(self._body(), if_match=None if action == "create" else view.etag)
            if etag is not None:
                if action == "take":
                    log.warning("Took over the lease of %s at %s: it was %s", self.endpoint_name, self.uri,
                                view.describe())
                log.info("Lease %s %s by %s for %.0f s", self.uri,
                         {"create": "acquired", "take": "taken over", "renew": "renewed"}[action], self.owner,
                         self.ttl_seconds)
                return True, self.read()
            view = self.read()  # somebody else wrote in between: look again
        return False, view

    def renew(self, stage: str = "") -> LeaseView:
        """Check this owner still holds the lease and extend it by ``ttl_seconds``; :class:`LeaseLost` if not."""
        view = self.read()
        if view.owner != self.owner or view.released:
            raise LeaseLost(f"{stage or 'This task'} refuses to act on endpoint {self.endpoint_name}: this run "
                            f"({self.owner}) no longer holds its lease {self.uri}, which is {view.describe()}. "
                            "Another run may be deploying; nothing was changed")
        if self._put(self._body(), if_match=view.etag) is None:
            # Lost a race. The mapped load-test workers of one run renew the same owner's lease at the same
            # moment: when the winner is this owner, the lease was just extended, which is what was asked.
            now = self.read()
            if now.owner != self.owner or now.released:
                raise LeaseLost(f"{stage or 'This task'}: the lease {self.uri} changed while renewing it (now "
                                f"{now.describe()}); nothing was changed")
            log.info("Lease %s was renewed by another task of this run (%s) at the same moment", self.uri,
                     self.owner)
            return now
        return self.read()

    def release(self) -> bool:
        """Mark the lease released if this owner holds it; True when released by this call.

        A lease held by another owner is never touched (a release that checks ownership): that
        happens when this run's lease expired and another run took it over.
        """
        view = self.read()
        if not view.exists:
            log.info("No lease at %s: nothing to release", self.uri)
            return False
        if view.owner != self.owner:
            log.warning("Not releasing %s: it is %s, not this run's (%s)", self.uri, view.describe(), self.owner)
            return False
        if view.released:
            log.info("Lease %s was already released by %s", self.uri, self.owner)
            return False
        if self._put(self._body(released=True), if_match=view.etag) is None:
            log.warning("Lease %s changed while releasing it; now %s", self.uri, self.read().describe())
            return False
        log.info("Released the lease of %s (%s)", self.endpoint_name, self.uri)
        return True
