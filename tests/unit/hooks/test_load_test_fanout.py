"""S3Clock: S3's time from whole-second Date headers, to well under a second; the bounded wait names who is missing."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from sagemaker_vision.core.loadtest.fanout import MAX_ENVELOPE_BYTES, StepEnvelope, abort_key, envelope_key, plan_fanout
from sagemaker_vision.core.loadtest.model import LoadTestError
from sagemaker_vision.hooks.load_test_fanout import (
    MAX_ABORT_BYTES,
    MAX_ABORT_REASON_CHARS,
    S3Clock,
    read_step,
    wait_for_step,
    write_abort,
)


class FakeS3:
    """A listing answered after ``rtt`` seconds, dated by an S3 clock ``skew`` seconds ahead of ours (whole seconds)."""

    def __init__(self, skew: float, rtt: float = 0.01, dated: bool = True) -> None:
        self.t, self.skew, self.rtt, self.dated, self.calls = 1_000_000.37, skew, rtt, dated, 0
        self.keys: list[str] = []
        self.bodies: dict[str, bytes] = {}
        self.sized = True  # S3 always sends Content-Length

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    def list_objects_v2(self, **kwargs):
        self.calls += 1
        self.t += self.rtt / 2
        date = formatdate(int(self.t + self.skew), usegmt=True)  # S3 stamps mid-request, in whole seconds
        self.t += self.rtt / 2
        headers = {"date": date} if self.dated else {}
        return {"ResponseMetadata": {"HTTPHeaders": headers}, "Contents": [{"Key": k} for k in self.keys]}

    def get_object(self, Bucket, Key):  # noqa: N803 - boto3's argument names
        import io

        body = self.bodies[Key]
        return {"Body": io.BytesIO(body), **({"ContentLength": len(body)} if self.sized else {})}

    def get_paginator(self, name):
        s3 = self

        class Pages:
            def paginate(self, **kwargs):
                yield s3.list_objects_v2(**kwargs)

        return Pages()


@pytest.mark.parametrize("skew", [0.0, 3.25, -7.9, 1234.5])
def test_the_offset_is_found_to_within_the_probe_gap(skew):
    s3 = FakeS3(skew)
    clock = S3Clock(s3, "b", "p/", monotonic=s3.monotonic, sleep=s3.sleep)
    uncertainty = clock.sync()
    assert uncertainty <= 0.03
    assert abs(clock.now() - (s3.t + skew)) <= uncertainty + 1e-6
    assert s3.calls <= 1.5 / 0.02 + 2  # bounded: one tick is at most a second away


def test_no_date_header_is_a_clear_error():
    s3 = FakeS3(0, dated=False)
    with pytest.raises(LoadTestError, match="without a Date header"):
        S3Clock(s3, "b", "p/", monotonic=s3.monotonic, sleep=s3.sleep).sync()


def test_the_wait_for_peers_is_bounded_and_names_the_missing_worker():
    s3 = FakeS3(0)
    clock = S3Clock(s3, "b", "p/", monotonic=s3.monotonic, sleep=s3.sleep)
    plan = plan_fanout(load_workers=3, concurrency_steps=[3], max_requests_per_step=9, step_seconds=1,
                       request_timeout_s=1, s3_now=clock.now(), start_lead_s=0, bucket="b", prefix="p")
    # This worker's own envelope is in; worker 1's key holds an earlier plan's (a rerun's leftover); 2's is absent.
    for worker, plan_id in ((0, plan.plan_id), (1, "12345")):
        key = envelope_key(plan, 0, worker)
        s3.keys.append(key)
        s3.bodies[key] = StepEnvelope.idle(worker, 0, 1.0, plan_id).to_json().encode()
    with pytest.raises(LoadTestError, match=r"load worker\(s\) \[1, 2\] wrote no result for step 0 .*dags test"):
        wait_for_step(s3, plan, 0, deadline=clock.now() + 5, clock=clock, me=0)
    assert clock.now() >= plan.first_start + 5 - 1  # it waited until the deadline, not forever


def _plan_on(s3: FakeS3):
    clock = S3Clock(s3, "b", "p/", monotonic=s3.monotonic, sleep=s3.sleep)
    return plan_fanout(load_workers=2, concurrency_steps=[2], max_requests_per_step=4, step_seconds=1,
                       request_timeout_s=1, s3_now=clock.now(), start_lead_s=0, bucket="b", prefix="p")


def test_an_envelope_at_another_workers_key_is_refused_naming_the_key():
    s3 = FakeS3(0)
    plan = _plan_on(s3)
    key = envelope_key(plan, 0, 1)
    s3.keys.append(key)
    s3.bodies[key] = StepEnvelope.idle(0, 0, 1.0, plan.plan_id).to_json().encode()  # worker 0's, at worker 1's key
    with pytest.raises(ValueError, match=rf"s3://b/{key}: fields 'worker' and 'step' are 0 and 0, but the key is "
                                         r"worker 1's envelope of step 0"):
        read_step(s3, plan, 0)


@pytest.mark.parametrize("sized", [True, False])
def test_an_oversized_envelope_or_abort_marker_is_refused_unread_naming_the_key(sized):
    s3 = FakeS3(0)
    s3.sized = sized
    plan = _plan_on(s3)
    key = envelope_key(plan, 0, 0)
    s3.keys.append(key)
    s3.bodies[key] = b"{" + b" " * (MAX_ENVELOPE_BYTES * 4) + b"}"
    size = rf"{len(s3.bodies[key])} bytes, over the {MAX_ENVELOPE_BYTES} such" if sized else \
        rf"over the {MAX_ENVELOPE_BYTES} bytes such"
    with pytest.raises(ValueError, match=rf"s3://b/{key}: {size} an object can be"):
        read_step(s3, plan, 0)

    abort = abort_key(plan, 1)  # a peer's marker: read while this worker waits for the step
    s3.keys.append(abort)
    s3.bodies[abort] = json.dumps({"plan_id": plan.plan_id, "reason": "x" * MAX_ABORT_BYTES}).encode()
    clock = S3Clock(s3, "b", "p/", monotonic=s3.monotonic, sleep=s3.sleep)
    with pytest.raises(ValueError, match=rf"s3://b/{abort}: .*over the {MAX_ABORT_BYTES}"):
        wait_for_step(s3, plan, 1, deadline=clock.now() + 5, clock=clock, me=0)


def test_a_real_abort_marker_fits_its_bound_whatever_the_reason():
    s3 = FakeS3(0)
    plan = _plan_on(s3)
    s3.put_object = lambda **kw: s3.bodies.__setitem__(kw["Key"], kw["Body"])
    write_abort(s3, plan, 1, "\U0001F4A5" * (2 * MAX_ABORT_REASON_CHARS))  # each is 12 bytes of JSON
    assert MAX_ABORT_BYTES - 1024 < len(s3.bodies[abort_key(plan, 1)]) <= MAX_ABORT_BYTES
