"""The endpoint lease on S3 (hooks.endpoint_lease): acquire, conflict, a lost race, expiry takeover, renew, release.

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

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.core.lease import LeaseLost
from sagemaker_vision.hooks.endpoint_lease import EndpointLease

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


def lease(s3: FakeS3, owner: str, ttl: float = 600) -> EndpointLease:
    return EndpointLease(s3, BUCKET, KEY, owner, ttl_seconds=ttl, endpoint_name="ep")


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
    with pytest.raises(LeaseLost, match="no longer holds its lease.*held by dag_b/run_2"):
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
    with pytest.raises(LeaseLost):
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
    with pytest.raises(LeaseLost, match="changed while renewing"):
        a.renew("deploy")
    assert a.read().owner == "dag_b/run_2"


def test_two_tasks_of_one_run_renewing_at_once_both_hold_the_lease():
    """The mapped load-test workers of one run renew the same owner's lease together: the loser of the
    compare-and-swap finds its own run's fresh lease, which is what it asked for."""
    s3 = FakeS3()
    worker_0, worker_1 = lease(s3, "dag_a/run_1", ttl=100), lease(s3, "dag_a/run_1", ttl=100)
    worker_0.try_acquire()
    s3.now += timedelta(seconds=50)
    s3.before_put = lambda: worker_1.renew("load_test_worker")
    view = worker_0.renew("load_test_worker")
    assert view.owner == "dag_a/run_1" and not view.released
    assert view.expires_at == s3.now.replace(microsecond=0) + timedelta(seconds=100)
    s3.before_put = lambda: worker_1.release()  # but a release in between is still a lost lease
    with pytest.raises(LeaseLost, match="changed while renewing"):
        worker_0.renew("load_test_worker")


def test_something_else_at_the_key_is_never_overwritten():
    s3 = FakeS3()
    s3.objects[KEY] = (b"not json", '"x"', s3.now)
    s3.now += timedelta(days=30)
    held, view = lease(s3, "dag_a/run_1").try_acquire()
    assert not held and "not a lease" in view.describe()


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
