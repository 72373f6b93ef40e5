"""One writer per endpoint: a lease object in S3, taken with a conditional write.

Two runs (of one DAG, of two DAGs, on any workers of any hosts: Celery included) that deploy to the
same endpoint must not interleave: each reads the serving model's mAP in its quality gate, so a run
that gates while another deploys compares against a model that is about to be replaced, and the
later deploy wins whatever its score (issue 9, finding 3). An Airflow pool cannot serialise them:
the endpoint name is a run parameter, and a task's pool is fixed when the DAG is parsed.

The lease is one small JSON object per endpoint, under the pipeline's S3 prefix::

    s3://<bucket>/<prefix>/locks/endpoints/<region>/<endpoint_name>.json

S3 conditional writes make it a mutual exclusion ("Add preconditions to S3 operations with
conditional requests", S3 User Guide, conditional writes; botocore ``PutObjectRequest.IfNoneMatch``
/ ``IfMatch``):

* **acquire**: ``PutObject`` with ``IfNoneMatch="*"`` when no lease exists; S3 answers
  ``412 PreconditionFailed`` to every writer but the first ("If multiple conditional writes occur
  for the same object name, the first write operation to finish succeeds");
* **take over** a released or expired lease: ``PutObject`` with ``IfMatch=<the ETag read>``, so
  of two runs that both saw it free only one replaces it (the other gets 412, or ``409
  ConditionalRequestConflict``, and reads again);
* **renew** (every task of the critical section does, before it acts): ``IfMatch`` on the ETag,
  after checking that this run still owns it; a run that lost its lease fails at once, naming the
  holder, instead of deploying;
* **release** (an Airflow teardown task, so it runs when the section failed too): the owner writes
  the lease back as released, ``IfMatch`` on the ETag it read. A run that does not own the lease
  never touches it.

Only ``GetObject`` and ``PutObject`` on that one key are used (no DeleteObject, no listing).

Expiry is decided on S3's clock, not a worker's: a lease expires ``ttl_seconds`` after its
``LastModified`` (stamped by S3 on every write), compared with the ``Date`` header of the
``GetObject`` response that read it. Hosts whose clocks disagree still agree on expiry.
``ttl_seconds`` (:func:`lease_ttl_seconds`) covers the longest stage of the section: the deploy's
wait budget from ``endpoint_waits`` (an update: new fleet, blue/green deployment, rollback), the
same again for a rollback to the previous config, the async smoke test's result budget, and the
load test; so a crashed run blocks the endpoint at most that long, and a live one never expires
between two renewals.

Waiting for a lease holds no worker slot: :class:`AcquireEndpointLeaseOperator` defers to
:class:`EndpointLeaseTrigger`, which polls the lease object in the triggerer until it is free,
released or expired, within a bounded wait.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

LEASE_FORMAT = "sagemaker-vision/endpoint-lease/1"
# A write that lost a race: 412 (the condition no longer holds) or 409 (a conflicting write was in
# flight); botocore PutObjectRequest.IfMatch / IfNoneMatch. 404: an IfMatch on a key that vanished.
LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"})
# Margin on top of the stage budgets: API calls, task start-up, a retry's delay.
TTL_MARGIN_S = 900


class LeaseLost(RuntimeError):
    """This run no longer owns the endpoint's lease: another run holds it, or it was released."""


class LeaseTimeout(RuntimeError):
    """The lease stayed held by another run for the whole bounded wait."""


# --------------------------------------------------------------------------------------------
# Pure: what a read lease means
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseView:
    """One read of the lease object: its body (None: no object), ETag, expiry and S3's time of the read."""

    body: Mapping[str, Any] | None
    etag: str | None
    expires_at: datetime | None
    now: datetime

    @property
    def exists(self) -> bool:
        return self.body is not None

    @property
    def owner(self) -> str | None:
        return None if self.body is None else self.body.get("owner")

    @property
    def released(self) -> bool:
        return bool(self.body is not None and self.body.get("released"))

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.now >= self.expires_at

    @property
    def free(self) -> bool:
        """Nobody holds it: no object, released, or expired."""
        return not self.exists or self.released or self.expired

    def describe(self) -> str:
        """``held by <owner> (dag, run, host) until <expiry>`` for logs and errors."""
        if not self.exists:
            return "free (no lease object)"
        body = self.body or {}
        who = f"{body.get('owner')} (host {body.get('host')}, try {body.get('try_number')})"
        if self.released:
            return f"released by {who}"
        if self.expires_at is None:
            return f"held by {who}, with no expiry"
        state = "expired at" if self.expired else "until"
        return f"held by {who} {state} {self.expires_at:%Y-%m-%dT%H:%M:%SZ} (S3 time now {self.now:%H:%M:%SZ})"


def parse_body(raw: bytes | str) -> dict[str, Any] | None:
    """The lease body, or None when it is not one of ours (treated as held: never overwritten blindly)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("format") != LEASE_FORMAT:
        return None
    return body


def view_from(raw: bytes | None, etag: str | None, last_modified: datetime | None, now: datetime) -> LeaseView:
    """A :class:`LeaseView` from what GetObject returned (``raw`` None: NoSuchKey)."""
    if raw is None:
        return LeaseView(None, None, None, now)
    body = parse_body(raw)
    if body is None:
        # Something else sits at the key: never expire or overwrite it, report it.
        return LeaseView({"owner": f"<not a lease: {raw[:60]!r}>", "released": False}, etag, None, now)
    ttl = body.get("ttl_seconds")
    expires = None
    if last_modified is not None and isinstance(ttl, int | float) and not isinstance(ttl, bool):
        expires = last_modified + timedelta(seconds=float(ttl))
    return LeaseView(body, etag, expires, now)


def decide(view: LeaseView, owner: str) -> str:
    """What ``owner`` does with the lease it read: ``create``, ``take``, ``renew`` or ``wait``."""
    if not view.exists:
        return "create"
    if view.owner == owner and not view.released:
        return "renew"  # this run's own lease: an earlier try of the acquire task, or a renewal
    if view.released or view.expired:
        return "take"
    return "wait"


def server_time(response: Mapping[str, Any]) -> datetime:
    """S3's clock: the ``Date`` header of a response (RFC 7231), as an aware UTC datetime."""
    header = ((response.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).get("date")
    if header:
        try:
            return parsedate_to_datetime(header).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error") or {}
    return str(error.get("Code") or (exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or "")


# --------------------------------------------------------------------------------------------
# The lease on S3 (sync: tasks)
# --------------------------------------------------------------------------------------------


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
            if _error_code(exc) in ("NoSuchKey", "404"):
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
            if _error_code(exc) in LOST_RACE:
                return None
            raise
        return response.get("ETag") or ""

    def try_acquire(self, attempts: int = 5) -> tuple[bool, LeaseView]:
        """One round of taking the lease: ``(True, view)`` when this owner holds it now, else
        ``(False, view of the holder)``. A lost race is read again (``attempts`` times)."""
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
            raise LeaseLost(f"{stage or 'This task'}: the lease {self.uri} changed while renewing it (now "
                            f"{self.read().describe()}); nothing was changed")
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


# --------------------------------------------------------------------------------------------
# The pipeline's lease: key, owner, TTL
# --------------------------------------------------------------------------------------------


def lease_key(cfg: Any) -> str:
    """``<prefix>/locks/endpoints/<region>/<endpoint_name>.json``: endpoint names are per region."""
    return f"{cfg.prefix}/locks/endpoints/{cfg.region}/{cfg.endpoint_name}.json"


def owner_of(context: Mapping[str, Any]) -> str:
    """``<dag_id>/<run_id>``: the same for every task and every try of one run."""
    dag_run = context["dag_run"]
    return f"{dag_run.dag_id}/{dag_run.run_id}"


def lease_ttl_seconds(cfg: Any) -> int:
    """Seconds a lease lives without renewal: the longest stage of the critical section, plus a margin.

    A deploy waits at most ``endpoint_wait_budget("update", ...)`` (AWS's limits for the new fleet,
    the blue/green deployment of ``deployment_policy`` with the deploy operator's settings, and a
    rollback by SageMaker), a rollback to the previous config as long again, an async smoke test
    at most ``async_result_budget()`` and the load test ``load_test_max_seconds`` per step. Each
    stage renews the lease before it starts, so the longest one bounds the TTL.
    """
    from sagemaker_vision import endpoint_waits as waits
    from sagemaker_vision.deploy import DeployEndpointOperator, deployment_config, rollback_alarm_names

    defaults = DeployEndpointOperator.__init__.__kwdefaults__ or {}
    endpoint_type = "serverless" if cfg.endpoint.endpoint_type == "serverless" else "provisioned"
    deployment = deployment_config(
        cfg.deploy.deployment_policy, endpoint_type=endpoint_type,
        canary_percent=defaults.get("canary_percent", 10),
        linear_step_percent=defaults.get("linear_step_percent", 20),
        wait_interval_s=defaults.get("wait_interval_s", 300),
        termination_wait_s=defaults.get("termination_wait_s", 120),
        maximum_execution_timeout_s=defaults.get("maximum_execution_timeout_s", 3600),
        alarm_names=rollback_alarm_names(cfg.endpoint_name) if endpoint_type == "provisioned" else [],
    )
    window = defaults.get("alarm_period_s", 60) * defaults.get("alarm_evaluation_periods", 2)
    variants = [{"InitialInstanceCount": cfg.endpoint.instance_count}]
    deploy_s = max(waits.endpoint_wait_budget("update", variants, deployment or None, alarm_window_s=window),
                   waits.endpoint_wait_budget("create", variants))
    smoke_s = waits.async_result_budget() if cfg.endpoint.endpoint_type == "async" else 0
    load_s = int(cfg.load_test.max_seconds) * 2
    return int(max(deploy_s, smoke_s, load_s) + TTL_MARGIN_S)


def lease_for(cfg: Any, context: Mapping[str, Any], s3_client: Any = None) -> EndpointLease:
    """This run's view of ``cfg.endpoint_name``'s lease."""
    from sagemaker_vision import aws

    ti = context.get("ti")
    details = {"dag_id": context["dag_run"].dag_id, "run_id": context["dag_run"].run_id,
               "task_id": getattr(ti, "task_id", None), "try_number": getattr(ti, "try_number", None)}
    return EndpointLease(s3_client or aws.client("s3"), cfg.bucket, lease_key(cfg), owner_of(context),
                         ttl_seconds=lease_ttl_seconds(cfg), endpoint_name=cfg.endpoint_name, details=details)


def hold(context: Mapping[str, Any], stage: str) -> None:
    """Renew this run's lease before ``stage`` acts on the endpoint; fail the task (no retry) if it was lost."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from sagemaker_vision.config import PipelineConfig

    try:
        lease_for(PipelineConfig.from_context(context), context).renew(stage)
    except LeaseLost as exc:
        raise AirflowFailException(str(exc)) from None


def hold_hook(stage: str) -> Callable[[Context], None]:
    """An operator ``pre_execute`` hook that renews the lease before ``stage`` (a task id) runs."""

    def renew_before(context: Context) -> None:
        hold(context, stage)

    return renew_before


# --------------------------------------------------------------------------------------------
# Airflow: acquire (deferrable) and the trigger that waits
# --------------------------------------------------------------------------------------------


def acquire_wait_seconds(ttl_seconds: float) -> float:
    """How long a run waits for another's lease: twice its TTL (the holder's section, then its expiry)."""
    return 2 * float(ttl_seconds)


class AcquireEndpointLeaseOperator(BaseOperator):
    """Take this run's endpoint lease, waiting deferred (no worker slot) while another run holds it.

    Returns ``{"uri", "owner", "ttl_seconds", "endpoint_name"}``. Waits at most
    :func:`acquire_wait_seconds` of the TTL, then fails naming the holder. Use as the setup of the
    critical section, with a release task as its teardown.

    :param poll_seconds: Seconds between two reads of the lease while waiting.
    :param wait_seconds: Give up after this long (default: twice the lease TTL).
    """

    ui_color = "#f4d9a6"

    def __init__(self, *, poll_seconds: float = 30, wait_seconds: float | None = None,
                 aws_conn_id: str | None = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        return self._attempt(context, deadline=None)

    def _attempt(self, context: Context, deadline: float | None) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowException

        from sagemaker_vision.config import PipelineConfig

        cfg = PipelineConfig.from_context(context, self.aws_conn_id)
        lease = lease_for(cfg, context)
        if deadline is None:
            deadline = time.time() + (self.wait_seconds or acquire_wait_seconds(lease.ttl_seconds))
        held, view = lease.try_acquire()
        if held:
            return {"uri": lease.uri, "owner": lease.owner, "ttl_seconds": lease.ttl_seconds,
                    "endpoint_name": cfg.endpoint_name}
        remaining = deadline - time.time()
        if remaining <= 0:
            raise AirflowException(
                f"Endpoint {cfg.endpoint_name} stayed locked by another run: its lease {lease.uri} is "
                f"{view.describe()}. Nothing was deployed; rerun when that run has finished")
        self.log.info("Endpoint %s is locked: lease %s is %s. Waiting deferred up to %.0f s, reading it every %s s",
                      cfg.endpoint_name, lease.uri, view.describe(), remaining, self.poll_seconds)
        self.defer(
            trigger=EndpointLeaseTrigger(bucket=lease.bucket, key=lease.key, owner=lease.owner,
                                         poll_seconds=self.poll_seconds, deadline=deadline,
                                         aws_conn_id=self.aws_conn_id, region_name=cfg.region),
            method_name="execute_complete",
            kwargs={"deadline": deadline},
            timeout=timedelta(seconds=remaining + 2 * float(self.poll_seconds)),
        )
        raise AssertionError("defer() returned")  # pragma: no cover

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         deadline: float | None = None) -> dict[str, Any]:
        """The lease looked free (or the wait ran out): try again; a lost race waits again."""
        event = event or {}
        if event.get("status") == "error":
            from airflow.providers.common.compat.sdk import AirflowException

            raise AirflowException(f"Waiting for the endpoint lease failed: {event.get('message')}")
        # The deadline travels in the event too: dag.test() resumes with the event only, not the defer kwargs.
        deadline = event.get("deadline", deadline)
        return self._attempt(context, deadline=deadline if event.get("status") != "timeout" else 0)


class EndpointLeaseTrigger(BaseTrigger):
    """Poll a lease object in the triggerer until it is free for ``owner`` (absent, released, expired or
    its own) or ``deadline`` (epoch seconds) passes. Events: ``free``, ``timeout`` (with the holder),
    ``error``."""

    def __init__(self, *, bucket: str, key: str, owner: str, poll_seconds: float, deadline: float,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None) -> None:
        super().__init__()
        self.bucket, self.key, self.owner = bucket, key, owner
        self.poll_seconds, self.deadline = float(poll_seconds), float(deadline)
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"bucket": self.bucket, "key": self.key, "owner": self.owner, "poll_seconds": self.poll_seconds,
                 "deadline": self.deadline, "aws_conn_id": self.aws_conn_id, "region_name": self.region_name})

    async def _read(self, client: Any) -> LeaseView:
        try:
            response = await client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                return view_from(None, None, None, server_time(exc.response))
            raise
        async with response["Body"] as stream:
            raw = await stream.read()
        return view_from(raw, response.get("ETag"), response.get("LastModified"), server_time(response))

    async def run(self):  # type: ignore[override]
        import asyncio

        from airflow.triggers.base import TriggerEvent

        from sagemaker_vision import aws

        hook = aws.hook("s3", self.aws_conn_id, self.region_name)
        uri = f"s3://{self.bucket}/{self.key}"
        try:
            async with await hook.get_async_conn() as client:
                while True:
                    view = await self._read(client)
                    if view.free or decide(view, self.owner) != "wait":
                        yield TriggerEvent({"status": "free", "uri": uri, "was": view.describe(),
                                            "deadline": self.deadline})
                        return
                    if time.time() >= self.deadline:
                        yield TriggerEvent({"status": "timeout", "uri": uri, "holder": view.describe(),
                                            "deadline": self.deadline})
                        return
                    self.log.info("Lease %s is %s; next look in %s s", uri, view.describe(), self.poll_seconds)
                    await asyncio.sleep(max(0.0, min(self.poll_seconds, self.deadline - time.time())))
        except Exception as exc:  # noqa: BLE001 - reported to the task, which fails with it
            yield TriggerEvent({"status": "error", "uri": uri, "message": f"{type(exc).__name__}: {exc}"})


def release_lease(context: Mapping[str, Any]) -> dict[str, Any]:
    """The teardown: release this run's lease if it still holds it (never another run's)."""
    from sagemaker_vision.config import PipelineConfig

    cfg = PipelineConfig.from_context(context)
    lease = lease_for(cfg, context)
    released = lease.release()
    return {"uri": lease.uri, "released": released, "now": lease.read().describe()}
