"""The endpoint lease on the emulator: S3 conditional writes as AWS enforces them, and the lease's trigger.

AWS: PutObject ``If-None-Match: *`` fails with 412 PreconditionFailed when the key exists, ``If-Match``
with 412 when the ETag differs and 404 NoSuchKey when there is no object; of concurrent conditional
writes of one key "the first write operation to finish succeeds" (S3 User Guide, "How to prevent
object overwrites with conditional writes"; botocore PutObjectRequest.IfNoneMatch / IfMatch).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.hooks.endpoint_lease import EndpointLease
from sagemaker_vision.triggers.endpoint_lease import EndpointLeaseTrigger

pytestmark = pytest.mark.integration


def client(emulator_env: Any) -> Any:
    return boto3.client("s3", endpoint_url=emulator_env.endpoint_url, region_name="us-east-1")


def code(exc: ClientError) -> tuple[str, int]:
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_object_preconditions_are_enforced(aws_clients, emulator_env):
    s3, bucket, key = aws_clients["s3"], os.environ["SAGEMAKER_VISION_BUCKET"], "lease-tests/conditional.json"
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")["ETag"]
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
    assert code(exists.value) == ("PreconditionFailed", 412)
    second = s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfMatch=first)["ETag"]
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=bucket, Key=key, Body=b"3", IfMatch=first)
    assert code(stale.value) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as missing:
        s3.put_object(Bucket=bucket, Key=key + ".absent", Body=b"3", IfMatch=second)
    assert code(missing.value) == ("NoSuchKey", 404)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"2"


def test_a_conditional_write_is_atomic_even_when_the_check_is_slow(aws_clients, emulator_env, monkeypatch):
    """Two IfNoneMatch writers whose existence checks both run before either writes: only one may win."""
    from moto.s3.models import S3Backend

    bucket, key = os.environ["SAGEMAKER_VISION_BUCKET"], "lease-tests/slow-check.json"
    original = S3Backend.get_object

    def slow_get_object(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        found = original(self, bucket_name, key_name, *args, **kwargs)
        if key_name == key:
            time.sleep(0.3)  # widen the window between moto's precondition check and its write
        return found

    monkeypatch.setattr(S3Backend, "get_object", slow_get_object)
    outcomes: list[str] = []

    def write(body: bytes) -> None:
        try:
            client(emulator_env).put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(code(exc)[0])

    threads = [threading.Thread(target=write, args=(b"writer %d" % i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["PreconditionFailed", "ok"], outcomes


def test_of_eight_runs_acquiring_at_once_exactly_one_holds_the_lease(aws_clients, emulator_env):
    bucket, key = os.environ["SAGEMAKER_VISION_BUCKET"], "lease-tests/locks/endpoints/us-east-1/eight.json"
    barrier, won = threading.Barrier(8), []

    def acquire(i: int) -> None:
        lease = EndpointLease(client(emulator_env), bucket, key, f"dag/run_{i}", ttl_seconds=600)
        barrier.wait()
        if lease.try_acquire()[0]:
            won.append(i)

    threads = [threading.Thread(target=acquire, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1, won
    view = EndpointLease(client(emulator_env), bucket, key, "x/y", ttl_seconds=1).read()
    assert view.owner == f"dag/run_{won[0]}" and not view.expired


def test_the_trigger_waits_while_the_lease_is_held_and_fires_once_it_is_released(aws_clients, emulator_env):
    bucket, key = os.environ["SAGEMAKER_VISION_BUCKET"], "lease-tests/locks/endpoints/us-east-1/trigger.json"
    holder = EndpointLease(client(emulator_env), bucket, key, "dag/holder", ttl_seconds=600)
    assert holder.try_acquire()[0]

    async def first_event(deadline: float) -> dict:
        trigger = EndpointLeaseTrigger(bucket=bucket, key=key, owner="dag/waiter", poll_seconds=0.2,
                                          deadline=deadline, region_name="us-east-1")
        return (await anext(trigger.run())).payload

    timed_out = asyncio.run(first_event(time.time() + 0.5))
    assert timed_out["status"] == "timeout" and "held by dag/holder" in timed_out["holder"], timed_out

    threading.Timer(0.8, holder.release).start()
    started = time.monotonic()
    event = asyncio.run(first_event(time.time() + 20))
    assert event["status"] == "free" and "released by dag/holder" in event["was"], event
    assert time.monotonic() - started >= 0.7
