"""The endpoint lease on its own: acquire, conflict, a lost race, expiry takeover, renew, release.

A fake S3 client with S3's conditional-write semantics (PutObject IfNoneMatch="*" / IfMatch:
412 PreconditionFailed; IfMatch on a missing key: 404 NoSuchKey) and a clock the test moves.
The emulator's enforcement of the same rules is in tests/integration/test_endpoint_lease_emulator.py.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision import endpoint_lease as el

BUCKET, KEY = "lease-bucket", "p/locks/endpoints/us-east-1/ep.json"


class FakeS3:
    """GetObject / PutObject with S3's conditional writes, LastModified and Date from ``self.now``."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        self.objects: dict[str, tuple[bytes, str, datetime]] = {}
        self.before_put = None  # a competing writer, run once just before the next put
        self.puts = 0

    def _meta(self) -> dict:
        return {"HTTPHeaders": {"date": format_datetime(self.now, usegmt=True)}}

    def _error(self, code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {
            **self._meta(), "HTTPStatusCode": status}}, "PutObject")

    def get_object(self, Bucket, Key):  # noqa: N803 - boto3's names
        if Key not in self.objects:
            raise self._error("NoSuchKey", 404)
        body, etag, modified = self.objects[Key]
        return {"Body": io.BytesIO(body), "ETag": etag, "LastModified": modified, "ResponseMetadata": self._meta()}

    def put_object(self, Bucket, Key, Body, ContentType=None, IfNoneMatch=None, IfMatch=None):  # noqa: N803
        if self.before_put is not None:
            competitor, self.before_put = self.before_put, None
            competitor()
        existing = self.objects.get(Key)
        if IfNoneMatch == "*" and existing is not None:
            raise self._error("PreconditionFailed", 412)
        if IfMatch is not None:
            if existing is None:
                raise self._error("NoSuchKey", 404)
            if existing[1] != IfMatch:
                raise self._error("PreconditionFailed", 412)
        self.puts += 1
        etag = f'"{hashlib.md5(Body + str(self.puts).encode()).hexdigest()}"'
        # S3 stamps LastModified to the second (the Last-Modified header of GetObject).
        self.objects[Key] = (Body, etag, self.now.replace(microsecond=0))
        return {"ETag": etag, "ResponseMetadata": self._meta()}


def lease(s3: FakeS3, owner: str, ttl: float = 600) -> el.EndpointLease:
    return el.EndpointLease(s3, BUCKET, KEY, owner, ttl_seconds=ttl, endpoint_name="ep")


def test_acquire_then_a_second_owner_must_wait_and_is_told_who_holds_it():
    s3 = FakeS3()
    held, view = lease(s3, "dag_a/run_1").try_acquire()
    assert held and view.owner == "dag_a/run_1" and not view.released
    held, view = lease(s3, "dag_b/run_9").try_acquire()
    assert not held
    assert view.owner == "dag_a/run_1" and "held by dag_a/run_1" in view.describe()
    assert json.loads(s3.objects[KEY][0])["owner"] == "dag_a/run_1"


def test_the_same_run_acquiring_again_renews_its_own_lease():
    """A retry of the acquire task (same dag_id/run_id) gets the lease back, not a wait for itself."""
    s3 = FakeS3()
    assert lease(s3, "dag_a/run_1").try_acquire()[0]
    s3.now += timedelta(seconds=500)
    held, view = lease(s3, "dag_a/run_1").try_acquire()
    assert held and view.expires_at == s3.now.replace(microsecond=0) + timedelta(seconds=600)


def test_a_lost_race_reads_again_and_waits():
    """Both saw no lease; the other's IfNoneMatch write lands first, so ours gets 412 and waits."""
    s3 = FakeS3()
    other = lease(s3, "dag_b/run_2")
    s3.before_put = lambda: other.try_acquire()
    held, view = lease(s3, "dag_a/run_1").try_acquire()
    assert not held and view.owner == "dag_b/run_2"
    assert s3.puts == 1  # only the winner wrote


def test_an_expired_lease_is_taken_over_and_its_old_owner_loses_it():
    s3 = FakeS3()
    a, b = lease(s3, "dag_a/run_1", ttl=60), lease(s3, "dag_b/run_2", ttl=60)
    assert a.try_acquire()[0]
    s3.now += timedelta(seconds=59)
    assert not b.try_acquire()[0]  # not yet expired
    s3.now += timedelta(seconds=2)
    held, view = b.try_acquire()
    assert held and view.owner == "dag_b/run_2"
    with pytest.raises(el.LeaseLost, match="no longer holds its lease.*held by dag_b/run_2"):
        a.renew("deploy")
    assert a.release() is False  # never releases another run's lease
    assert lease(s3, "x/y").read().owner == "dag_b/run_2" and not lease(s3, "x/y").read().released


def test_a_takeover_race_on_an_expired_lease_has_one_winner():
    """Two waiters saw the same expired lease; IfMatch on its ETag lets only the first replace it."""
    s3 = FakeS3()
    assert lease(s3, "dag_a/run_1", ttl=10).try_acquire()[0]
    s3.now += timedelta(seconds=11)
    c = lease(s3, "dag_c/run_3")
    s3.before_put = lambda: c.try_acquire()
    held, view = lease(s3, "dag_b/run_2").try_acquire()
    assert not held and view.owner == "dag_c/run_3"


def test_release_by_a_non_owner_is_refused_and_by_the_owner_frees_it():
    s3 = FakeS3()
    a, b = lease(s3, "dag_a/run_1"), lease(s3, "dag_b/run_2")
    assert a.try_acquire()[0]
    assert b.release() is False
    assert a.read().owner == "dag_a/run_1" and not a.read().released
    assert a.release() is True
    assert a.read().released
    assert a.release() is False  # already released: nothing written again
    with pytest.raises(el.LeaseLost):
        a.renew("load_test")  # a released lease is not renewed behind the next run's back
    held, view = b.try_acquire()
    assert held and view.owner == "dag_b/run_2"


def test_renew_extends_the_expiry_on_s3s_clock_and_checks_ownership_first():
    s3 = FakeS3()
    a = lease(s3, "dag_a/run_1", ttl=100)
    a.try_acquire()
    s3.now += timedelta(seconds=90)
    view = a.renew("deploy")
    assert view.expires_at == s3.now.replace(microsecond=0) + timedelta(seconds=100)
    s3.now += timedelta(seconds=95)
    assert not lease(s3, "dag_b/run_2", ttl=100).try_acquire()[0]


def test_a_renewal_racing_a_takeover_loses():
    s3 = FakeS3()
    a, b = lease(s3, "dag_a/run_1", ttl=10), lease(s3, "dag_b/run_2", ttl=10)
    a.try_acquire()
    s3.now += timedelta(seconds=30)
    s3.before_put = lambda: b.try_acquire()
    with pytest.raises(el.LeaseLost, match="changed while renewing"):
        a.renew("deploy")
    assert a.read().owner == "dag_b/run_2"


def test_something_else_at_the_key_is_never_overwritten():
    s3 = FakeS3()
    s3.objects[KEY] = (b"not json", '"x"', s3.now)
    s3.now += timedelta(days=30)
    held, view = lease(s3, "dag_a/run_1").try_acquire()
    assert not held and "not a lease" in view.describe()


def test_server_time_comes_from_the_date_header():
    when = datetime(2026, 12, 1, 8, 30, 5, tzinfo=UTC)
    assert el.server_time({"ResponseMetadata": {"HTTPHeaders": {"date": format_datetime(when, usegmt=True)}}}) == when


def cfg(policy: str = "all_at_once", endpoint_type: str = "serverless", max_seconds: float = 300):
    return SimpleNamespace(prefix="object-detection", region="us-east-1", endpoint_name="shapes-detector",
                           bucket="b", endpoint=SimpleNamespace(endpoint_type=endpoint_type, instance_count=1),
                           deploy=SimpleNamespace(deployment_policy=policy),
                           load_test=SimpleNamespace(max_seconds=max_seconds))


def test_ttl_covers_the_longest_stage_of_the_section():
    from sagemaker_vision import endpoint_waits as waits
    from sagemaker_vision.deploy import deployment_config, rollback_alarm_names

    serverless = el.lease_ttl_seconds(cfg())
    assert serverless >= waits.endpoint_wait_budget("update", [{}]) + el.TTL_MARGIN_S
    canary = el.lease_ttl_seconds(cfg("canary", "provisioned"))
    sent = deployment_config("canary", endpoint_type="provisioned", alarm_names=rollback_alarm_names("shapes-detector"))
    assert canary >= waits.endpoint_wait_budget("update", [{}], sent, alarm_window_s=120) > serverless
    assert el.lease_ttl_seconds(cfg(endpoint_type="async")) >= waits.async_result_budget()
    assert el.acquire_wait_seconds(100) == 200


def test_the_lease_key_is_per_region_and_endpoint_whatever_the_pipeline_prefix():
    """Two runs with different ``prefix`` params deploying one endpoint lock one object (and the
    manual DAGs, which have no prefix, the same one); SageMaker endpoint names are case-insensitive."""
    key = "sagemaker-vision-locks/endpoints/us-east-1/shapes-detector.json"
    assert el.lease_key(cfg()) == key
    other_prefix = SimpleNamespace(**{**vars(cfg()), "prefix": "team-b/experiments"})
    assert el.lease_key(other_prefix) == key
    assert el.lease_key(el.LeaseTarget("b", "us-east-1", "Shapes-Detector", 60)) == key
    assert el.lease_key(el.LeaseTarget("b", "eu-west-1", "shapes-detector", 60)) != key


def test_the_ttl_takes_the_deploy_tasks_own_settings_not_the_class_defaults():
    from sagemaker_vision.deploy import DeployEndpointOperator

    canary = cfg("canary", "provisioned")
    slow = DeployEndpointOperator(task_id="deploy", endpoint_name="e", endpoint_config_name="c",
                                  wait_interval_s=3000, maximum_execution_timeout_s=14400)
    assert el.lease_ttl_seconds(canary, slow) > el.lease_ttl_seconds(canary) + 3000
    templated = DeployEndpointOperator(task_id="deploy", endpoint_name="e", endpoint_config_name="c",
                                       wait_interval_s="{{ params.wait }}", maximum_execution_timeout_s=14400)
    assert el.lease_ttl_seconds(canary, templated, {"params": {"wait": 3000}}) == el.lease_ttl_seconds(canary, slow)


def test_the_owner_tells_a_re_created_run_from_the_first_and_stays_the_same_for_one_run():
    def context(run_after, start):
        return {"dag_run": SimpleNamespace(dag_id="object_detection_pipeline", run_id="manual__x",
                                           run_after=run_after, start_date=start)}

    first = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    owner = el.owner_of(context(first, first))
    assert owner.startswith("object_detection_pipeline/manual__x/")
    # A clear or a retry restarts the run (start_date changes), not its identity.
    assert el.owner_of(context(first, first + timedelta(hours=1))) == owner
    # The same run id triggered again later (the run was deleted) is another owner.
    assert el.owner_of(context(first + timedelta(days=1), first + timedelta(days=1))) != owner


def test_acquire_writes_first_and_reads_only_an_object_that_exists():
    """No GetObject of a missing lease: real S3 answers 403 for it without s3:ListBucket, which the
    lock location is not granted (include/iam/airflow-role-policy.json: GetObject and PutObject only)."""
    s3 = FakeS3()
    reads = []
    get = s3.get_object

    def get_object(Bucket, Key):  # noqa: N803
        reads.append(Key in s3.objects)
        return get(Bucket, Key)

    s3.get_object = get_object
    assert lease(s3, "dag_a/run_1").try_acquire()[0]
    assert reads and all(reads)
    assert not lease(s3, "dag_b/run_2").try_acquire()[0] and all(reads)


def test_the_acquire_operator_defers_while_held_then_fails_naming_the_holder(monkeypatch):
    from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

    from sagemaker_vision.config import PipelineConfig

    s3 = FakeS3()
    assert lease(s3, "dag_a/run_1").try_acquire()[0]
    monkeypatch.setattr(PipelineConfig, "from_context", classmethod(lambda cls, context, conn=None: cfg()))
    monkeypatch.setattr(el, "lease_target", lambda context, conn=None: el.LeaseTarget("b", "us-east-1", "ep", 600))
    monkeypatch.setattr(el, "lease_for", lambda c, context, s3_client=None: lease(s3, "dag_b/run_2"))
    op = el.AcquireEndpointLeaseOperator(task_id="acquire_endpoint_lease", poll_seconds=5, wait_seconds=60)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, el.EndpointLeaseTrigger) and trigger.owner == "dag_b/run_2"
    assert trigger.key == KEY and trigger.poll_seconds == 5
    # The wait ran out: the task fails and says who holds the endpoint.
    with pytest.raises(AirflowException, match="stayed locked by another run.*held by dag_a/run_1"):
        op.execute_complete({}, {"status": "timeout", "deadline": trigger.deadline})
    # Released meanwhile: the resumed task takes it.
    lease(s3, "dag_a/run_1").release()
    taken = op.execute_complete({}, {"status": "free", "deadline": trigger.deadline})
    assert taken["owner"] == "dag_b/run_2" and lease(s3, "x/y").read().owner == "dag_b/run_2"
