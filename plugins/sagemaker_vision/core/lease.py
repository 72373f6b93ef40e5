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
``<pipeline>.promote_challenger`` and ``<pipeline>.teardown`` all take it (:func:`lease_section`).

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
deploy's wait budget from ``core.endpoint_waits`` (an update: new fleet, blue/green deployment,
rollback, with the deploy task's own settings), the async smoke test's result budget, or the load
test. Every task of the section renews the lease before it acts (the rollback too, right before
its UpdateEndpoint, whose all-at-once update waits less than the deploy's), so the longest stage
bounds the TTL, not their sum: a crashed run blocks the endpoint at most that long, and a live one
never expires between two renewals.

This module holds the pure part: what a read lease means (:func:`decide`), its key, owner and TTL.
The S3 calls are ``hooks.endpoint_lease.EndpointLease``. Waiting for a lease holds no worker slot:
``operators.endpoint_lease.AcquireEndpointLeaseOperator`` defers to
``triggers.endpoint_lease.EndpointLeaseTrigger``, which polls the lease object in the triggerer until it is free,
released or expired, within a bounded wait.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.deployment import deployment_config
from sagemaker_vision.core.naming import rollback_alarm_names

# A write that lost a race (412, 409, or 404 for an IfMatch on a key that vanished): the one set, also the sync's.
from sagemaker_vision.core.s3_responses import LOST_RACE  # noqa: F401  (re-exported: hooks/endpoint_lease)

if TYPE_CHECKING:
    from sagemaker_vision.core.config import PipelineConfig

LEASE_FORMAT = "sagemaker-vision/endpoint-lease/1"
# Margin on top of the stage budgets: API calls, task start-up, a retry's delay.
TTL_MARGIN_S = 900



class LeaseLost(RuntimeError):
    """This run no longer owns the endpoint's lease: another run holds it, or it was released."""


class LeaseTimeout(RuntimeError):
    """The lease stayed held by another run for the whole bounded wait."""


# --------------------------------------------------------------------------------------------
# What a read lease means
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


def lease_ttl_for(cfg: PipelineConfig, settings: Mapping[str, int]) -> int:
    """Seconds a lease lives without renewal: the longest stage of the critical section, plus a margin.

    A deploy waits at most ``endpoint_wait_budget("update", ...)`` (AWS's limits for the new fleet,
    the blue/green deployment of ``deployment_policy`` with the deploy task's ``settings``, keys as
    :data:`~sagemaker_vision.core.deployment.DEPLOY_DEFAULTS`, and a rollback by SageMaker), an async
    smoke test at most ``async_result_budget()`` and the load test ``load_test_max_seconds`` per
    step. Each task renews the lease before it acts (the rollback, an all-at-once update with no
    baking, right before its UpdateEndpoint), so the longest stage bounds the TTL.
    """
    endpoint_type = "serverless" if cfg.endpoint.endpoint_type == "serverless" else "provisioned"

    def setting(name: str) -> int:
        return int(settings[name])

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
    """TTL of the lease of ``<pipeline>.promote_challenger`` and ``<pipeline>.teardown``.

    Promote: a weights update, then an UpdateEndpoint with no DeploymentConfig (each at most
    ``endpoint_wait_budget("update", ...)`` of one fleet); teardown: deletions, which wait less than
    that. Their tasks renew the lease before each of them acts.
    """
    return int(2 * waits.endpoint_wait_budget("update", [{}]) + TTL_MARGIN_S)


def acquire_wait_seconds(ttl_seconds: float) -> float:
    """How long a run waits for another's lease: twice its TTL (the holder's section, then its expiry)."""
    return 2 * float(ttl_seconds)
