"""One writer per endpoint: a lease object in S3, taken with a conditional write.

Two runs (of one DAG, of two DAGs, on any workers of any hosts: Celery included) that deploy to the
same endpoint must not interleave: each reads the serving model's mAP in its quality gate, so a run
that gates while another deploys compares against a model that is about to be replaced, and the
later deploy wins whatever its score (issue 9, finding 3). An Airflow pool cannot serialise them:
the endpoint name is a run parameter, and a task's pool is fixed when the DAG is parsed.

The lease is one small JSON object per endpoint, at a fixed location of the project bucket that
does not depend on the pipeline's ``prefix`` (two runs with different prefixes deploy to one
endpoint, so they must lock one object)::

    s3://<bucket>/sagemaker-vision-locks/endpoints/<region>/<endpoint name, lowercase>.json

One object per account, region and endpoint: a bucket belongs to one account, endpoint names are
per region, and SageMaker endpoint names are case-insensitive (``MyEndpoint`` and ``myendpoint``
are one endpoint, so they are one lock). Every run and DAG that writes to an endpoint must use the
same lock bucket: the ``bucket`` param, default ``$SAGEMAKER_VISION_BUCKET``. The pipeline DAGs,
``endpoint_promote_challenger`` and ``endpoint_teardown`` all take it (:func:`lease_section`).

S3 conditional writes make it a mutual exclusion ("Add preconditions to S3 operations with
conditional requests", S3 User Guide, conditional writes; botocore ``PutObjectRequest.IfNoneMatch``
/ ``IfMatch``):

* **acquire**: ``PutObject`` with ``IfNoneMatch="*"`` first (so a missing lease is never read, and
  no listing is needed to tell a missing key from a forbidden one); S3 answers
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
``ttl_seconds`` (:func:`lease_ttl_seconds`) covers the longest single stage of the section: the
deploy's wait budget from ``endpoint_waits`` (an update: new fleet, blue/green deployment,
rollback, with the deploy task's own settings), the async smoke test's result budget, or the load
test. Every task of the section renews the lease before it acts (the rollback too, right before
its UpdateEndpoint, whose all-at-once update waits less than the deploy's), so the longest stage
bounds the TTL, not their sum: a crashed run blocks the endpoint at most that long, and a live one
never expires between two renewals.

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

from sagemaker_vision import s3io

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
            if s3io.key_missing(self.s3, exc, self.bucket, self.key):
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
# The lease of a run: key, owner, TTL
# --------------------------------------------------------------------------------------------

LOCK_PREFIX = "sagemaker-vision-locks/endpoints"
LEASE_TASK_ID = "acquire_endpoint_lease"
DEPLOY_TASK_ID = "deploy"


@dataclass(frozen=True)
class LeaseTarget:
    """What a lease locks, and for how long: the bucket of the lock, the endpoint's region and name, the TTL."""

    bucket: str
    region: str
    endpoint_name: str
    ttl_seconds: float


def lease_key(target: Any) -> str:
    """``sagemaker-vision-locks/endpoints/<region>/<endpoint name, lowercase>.json``.

    ``target``: anything with ``region`` and ``endpoint_name`` (a :class:`LeaseTarget`, a
    ``PipelineConfig``). Independent of the pipeline's ``prefix``: one object per endpoint of the
    bucket's account. Lowercase, as SageMaker endpoint names are case-insensitive.
    """
    return f"{LOCK_PREFIX}/{target.region}/{str(target.endpoint_name).lower()}.json"


def owner_of(context: Mapping[str, Any]) -> str:
    """``<dag_id>/<run_id>/<run_after>``: the same for every task, try and clear of one run.

    ``run_id`` alone repeats: a run deleted and triggered again with its id, or another Airflow
    installation running the same DAG. ``run_after`` (when the run was created to run: the trigger
    time of a manual run, the interval's end of a scheduled one) is fixed when the run is created
    and kept by retries and clears (unlike ``start_date``, which a clear resets, or a try's
    hostname), so a re-created manual run is another owner. Two installations scheduling one DAG
    for the same interval still agree on it: give them lock buckets of their own, or distinct
    DAG ids.
    """
    dag_run = context["dag_run"]
    run_after = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
    stamp = run_after.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if run_after else "-"
    return f"{dag_run.dag_id}/{dag_run.run_id}/{stamp}"


def _int_setting(operator: Any, name: str, context: Mapping[str, Any] | None) -> int:
    """An operator's integer setting as it will run (a template rendered with ``context``)."""
    value = getattr(operator, name)
    if isinstance(value, str) and context is not None and "{" in value:
        value = operator.render_template(value, context)
    return int(value)


def lease_ttl_seconds(cfg: Any, deploy: Any = None, context: Mapping[str, Any] | None = None) -> int:
    """Seconds a lease lives without renewal: the longest stage of the critical section, plus a margin.

    A deploy waits at most ``endpoint_wait_budget("update", ...)`` (AWS's limits for the new fleet,
    the blue/green deployment of ``deployment_policy`` with the settings of ``deploy``, the run's
    :class:`~sagemaker_vision.deploy.DeployEndpointOperator`, and a rollback by SageMaker), an async
    smoke test at most ``async_result_budget()`` and the load test ``load_test_max_seconds`` per
    step. Each task renews the lease before it acts (the rollback, an all-at-once update with no
    baking, right before its UpdateEndpoint), so the longest stage bounds the TTL. ``deploy`` None:
    the operator's defaults (a DAG without a deploy task).
    """
    from sagemaker_vision import endpoint_waits as waits
    from sagemaker_vision.deploy import DeployEndpointOperator, deployment_config, rollback_alarm_names

    if deploy is None:
        deploy = DeployEndpointOperator(task_id="lease_ttl_defaults", endpoint_name="-", endpoint_config_name="-")
    endpoint_type = "serverless" if cfg.endpoint.endpoint_type == "serverless" else "provisioned"

    def setting(name: str) -> int:
        return _int_setting(deploy, name, context)

    deployment = deployment_config(
        cfg.deploy.deployment_policy, endpoint_type=endpoint_type,
        canary_percent=setting("canary_percent"), linear_step_percent=setting("linear_step_percent"),
        wait_interval_s=setting("wait_interval_s"), termination_wait_s=setting("termination_wait_s"),
        maximum_execution_timeout_s=setting("maximum_execution_timeout_s"),
        alarm_names=rollback_alarm_names(cfg.endpoint_name) if endpoint_type == "provisioned" else [],
    )
    window = setting("alarm_period_s") * setting("alarm_evaluation_periods")
    variants = [{"InitialInstanceCount": cfg.endpoint.instance_count}]
    deploy_s = max(waits.endpoint_wait_budget("update", variants, deployment or None, alarm_window_s=window),
                   waits.endpoint_wait_budget("create", variants))
    smoke_s = waits.async_result_budget() if cfg.endpoint.endpoint_type == "async" else 0
    load_s = int(cfg.load_test.max_seconds) * 2
    return int(max(deploy_s, smoke_s, load_s) + TTL_MARGIN_S)


def endpoint_write_ttl_seconds() -> int:
    """TTL of the lease of ``endpoint_promote_challenger`` and ``endpoint_teardown``.

    Promote: a weights update, then an UpdateEndpoint with no DeploymentConfig (each at most
    ``endpoint_wait_budget("update", ...)`` of one fleet); teardown: deletions, which wait less than
    that. Their tasks renew the lease before each of them acts.
    """
    from sagemaker_vision import endpoint_waits as waits

    return int(2 * waits.endpoint_wait_budget("update", [{}]) + TTL_MARGIN_S)


def _deploy_task(context: Mapping[str, Any]) -> Any:
    dag = context.get("dag")
    try:
        return dag.get_task(DEPLOY_TASK_ID) if dag is not None and dag.has_task(DEPLOY_TASK_ID) else None
    except Exception:  # noqa: BLE001 - a context without a DAG (unit tests): the operator's defaults
        return None


def lease_target(context: Mapping[str, Any], aws_conn_id: str | None = "aws_default") -> LeaseTarget:
    """The lease a task of this run takes: the pipeline DAGs' from their ``PipelineConfig`` (TTL from
    the run's deploy task); the manual DAGs' from their ``bucket`` and ``endpoint_name`` params and
    the connection's region."""
    from sagemaker_vision.config import PipelineConfig, connection_region

    params = context["params"]
    if "pipeline_name" in params:
        cfg = PipelineConfig.from_context(context, aws_conn_id)
        return LeaseTarget(cfg.bucket, cfg.region, cfg.endpoint_name,
                           lease_ttl_seconds(cfg, _deploy_task(context), context))
    return LeaseTarget(params["bucket"], params.get("region") or connection_region(aws_conn_id),
                       params["endpoint_name"], endpoint_write_ttl_seconds())


def lease_for(target: LeaseTarget, context: Mapping[str, Any], s3_client: Any = None) -> EndpointLease:
    """This run's view of ``target``'s lease."""
    from sagemaker_vision import aws

    ti = context.get("ti")
    details = {"dag_id": context["dag_run"].dag_id, "run_id": context["dag_run"].run_id,
               "task_id": getattr(ti, "task_id", None), "try_number": getattr(ti, "try_number", None)}
    return EndpointLease(s3_client or aws.client("s3"), target.bucket, lease_key(target), owner_of(context),
                         ttl_seconds=target.ttl_seconds, endpoint_name=target.endpoint_name, details=details)


def hold(context: Mapping[str, Any], stage: str) -> None:
    """Renew this run's lease before ``stage`` acts on the endpoint; fail the task (no retry) if it was lost."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    try:
        lease_for(lease_target(context), context).renew(stage)
    except LeaseLost as exc:
        raise AirflowFailException(str(exc)) from None


def hold_hook(stage: str, *, serving_this_run: bool = False) -> Callable[[Context], None]:
    """An operator ``pre_execute`` hook that renews the lease before ``stage`` (a task id) runs.

    ``serving_this_run``: also check that the endpoint serves the config this run's deploy put there
    (:func:`sagemaker_vision.deploy.require_run_config_serving`), for the smoke and load tests.
    """

    def renew_before(context: Context) -> None:
        hold(context, stage)
        if serving_this_run:
            from sagemaker_vision.deploy import require_run_config_serving

            require_run_config_serving(context, stage)

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

        target = lease_target(context, self.aws_conn_id)
        lease = lease_for(target, context)
        if deadline is None:
            deadline = time.time() + (self.wait_seconds or acquire_wait_seconds(lease.ttl_seconds))
        held, view = lease.try_acquire()
        if held:
            return {"uri": lease.uri, "owner": lease.owner, "ttl_seconds": lease.ttl_seconds,
                    "endpoint_name": target.endpoint_name}
        remaining = deadline - time.time()
        if remaining <= 0:
            raise AirflowException(
                f"Endpoint {target.endpoint_name} stayed locked by another run: its lease {lease.uri} is "
                f"{view.describe()}. Nothing was deployed; rerun when that run has finished")
        self.log.info("Endpoint %s is locked: lease %s is %s. Waiting deferred up to %.0f s, reading it every %s s",
                      target.endpoint_name, lease.uri, view.describe(), remaining, self.poll_seconds)
        self.defer(
            trigger=EndpointLeaseTrigger(bucket=lease.bucket, key=lease.key, owner=lease.owner,
                                         poll_seconds=self.poll_seconds, deadline=deadline,
                                         aws_conn_id=self.aws_conn_id, region_name=target.region),
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
            if await s3io.key_missing_async(client, exc, self.bucket, self.key):
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
    lease = lease_for(lease_target(context), context)
    released = lease.release()
    return {"uri": lease.uri, "released": released, "now": lease.read().describe()}
