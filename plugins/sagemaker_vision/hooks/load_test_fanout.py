"""The fanned-out load test's S3 side: S3's clock, the envelopes and abort markers, the bounded waits.

No Airflow. The workers of one load test may run on different machines, so they agree on time by
S3's clock, never their own: :class:`S3Clock` reads the ``Date`` header of ListObjectsV2 answers
(whole seconds, S3 API Reference "Common Response Headers") and finds the offset to this
machine's monotonic clock to well under a second by watching for the header's second to tick
(the tick happened between the last answer with the old second and the first with the new).
The plan and the workers list only under the load test's own prefix (which the Airflow role may
list: include/iam/), so no HeadBucket and no bucket-wide permission is needed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sagemaker_vision.core.loadtest.fanout import (
    MAX_ENVELOPE_BYTES,
    FanoutPlan,
    StepEnvelope,
    abort_key,
    envelope_key,
    parse_envelope,
)
from sagemaker_vision.core.loadtest.model import LoadTestError
from sagemaker_vision.core.s3_responses import s3_clock

log = logging.getLogger(__name__)

# The tick of S3's Date second is looked for this long at most; without one the offset is +-1 s.
TICK_SEARCH_S = 1.5
TICK_PROBE_INTERVAL_S = 0.02
POLL_INTERVAL_S = 0.5


class S3Clock:
    """S3's time on this machine: ``now()`` is monotonic time plus the measured offset (epoch s)."""

    def __init__(self, s3_client: Any, bucket: str, prefix: str, *,
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.s3, self.bucket, self.prefix = s3_client, bucket, prefix
        self.monotonic, self.sleep = monotonic, sleep
        self.offset: float | None = None
        self.uncertainty_s = 1.0

    def _probe(self) -> tuple[float, float, int]:
        """One listing: (monotonic before, after, S3's Date as whole epoch seconds)."""
        before = self.monotonic()
        response = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        after = self.monotonic()
        date = s3_clock(response)
        if date is None:
            raise LoadTestError(f"S3 answered a listing of s3://{self.bucket}/{self.prefix} without a Date header: "
                                "the load test cannot synchronise its workers on S3's clock")
        return before, after, int(date.timestamp())

    def sync(self) -> float:
        """Measure the offset; returns its uncertainty in seconds (half the probes' gap around the tick)."""
        first = previous = self._probe()
        give_up = first[1] + TICK_SEARCH_S
        while True:
            self.sleep(TICK_PROBE_INTERVAL_S)
            probe = self._probe()
            if probe[2] != previous[2]:
                # S3's clock read probe[2].000 somewhere between the previous answer's sending and this one's arrival.
                low, high = previous[0], probe[1]
                self.offset = probe[2] - (low + high) / 2
                self.uncertainty_s = (high - low) / 2
                return self.uncertainty_s
            previous = probe
            if probe[1] > give_up:  # no tick seen (a very slow S3): the second is known, its fraction is not
                self.offset = probe[2] + 0.5 - (probe[0] + probe[1]) / 2
                self.uncertainty_s = 1.0
                return self.uncertainty_s

    def now(self) -> float:
        if self.offset is None:
            self.sync()
        assert self.offset is not None
        return self.monotonic() + self.offset

    def offset_to_wall(self) -> float:
        """How far S3's clock is ahead of this machine's wall clock, in seconds (for the log)."""
        return self.now() - time.time()

    def sleep_until(self, at: float) -> None:
        while (left := at - self.now()) > 0:
            self.sleep(min(left, 1.0))


def write_envelope(s3_client: Any, plan: FanoutPlan, envelope: StepEnvelope) -> str:
    key = envelope_key(plan, envelope.step, envelope.worker)
    s3_client.put_object(Bucket=plan.bucket, Key=key, Body=envelope.to_json().encode(),
                         ContentType="application/json")
    return f"s3://{plan.bucket}/{key}"


# An abort marker is a plan id and a reason of at most MAX_ABORT_REASON_CHARS, each JSON-escaped to
# at most 12 bytes (a character outside the BMP becomes two \uXXXX escapes).
MAX_ABORT_REASON_CHARS = 4000
MAX_ABORT_BYTES = 12 * MAX_ABORT_REASON_CHARS + 1024


def write_abort(s3_client: Any, plan: FanoutPlan, worker: int, reason: str) -> None:
    """Tell the other workers this one gave up, so they stop waiting for it."""
    body = json.dumps({"plan_id": plan.plan_id, "reason": reason[:MAX_ABORT_REASON_CHARS]}).encode()
    s3_client.put_object(Bucket=plan.bucket, Key=abort_key(plan, worker), Body=body, ContentType="application/json")


def _listed(s3_client: Any, plan: FanoutPlan) -> set[str]:
    keys: set[str] = set()
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=plan.bucket, Prefix=plan.prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def _read_bounded(s3_client: Any, bucket: str, key: str, limit: int, where: str) -> bytes:
    """The object's bytes, refused naming ``where`` when it is over ``limit``, before it is read whole.

    S3's Content-Length decides first; without one (not S3's way) at most ``limit + 1`` bytes are read.
    A read that ends short is followed by an empty one: botocore checks the length and the checksum
    only then."""
    response = s3_client.get_object(Bucket=bucket, Key=key)
    body, size = response["Body"], response.get("ContentLength")
    try:
        if isinstance(size, int) and size > limit:
            raise ValueError(f"{where}: {size} bytes, over the {limit} such an object can be")
        data = body.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{where}: over the {limit} bytes such an object can be")
        body.read()
        return data
    finally:
        body.close()


def read_step(s3_client: Any, plan: FanoutPlan, step: int, keys: set[str] | None = None,
              known: dict[str, StepEnvelope] | None = None) -> list[StepEnvelope]:
    """Every envelope of ``step`` this plan's workers have written (each checked by :func:`parse_envelope`).

    The keys are the same in every try of a run, so a key holding an earlier plan's envelope counts
    as not written yet. ``known`` caches this plan's envelopes already read (they never change).
    """
    keys = _listed(s3_client, plan) if keys is None else keys
    known = {} if known is None else known
    found = []
    for worker in range(plan.workers):
        key = envelope_key(plan, step, worker)
        if key not in known and key in keys:
            where = f"s3://{plan.bucket}/{key}"
            envelope = parse_envelope(_read_bounded(s3_client, plan.bucket, key, MAX_ENVELOPE_BYTES, where), where)
            if envelope.plan_id == plan.plan_id:
                if (envelope.worker, envelope.step) != (worker, step):
                    raise ValueError(f"{where}: fields 'worker' and 'step' are {envelope.worker} and {envelope.step}, "
                                     f"but the key is worker {worker}'s envelope of step {step}")
                known[key] = envelope
        if key in known:
            found.append(known[key])
    return found


def _raise_if_aborted(s3_client: Any, plan: FanoutPlan, keys: set[str], me: int) -> None:
    for worker in range(plan.workers):
        if worker != me and abort_key(plan, worker) in keys:
            key = abort_key(plan, worker)
            body = _read_bounded(s3_client, plan.bucket, key, MAX_ABORT_BYTES, f"s3://{plan.bucket}/{key}")
            try:
                marker = json.loads(body)
            except ValueError:
                marker = {}
            if isinstance(marker, dict) and marker.get("plan_id") == plan.plan_id:  # not an earlier try's
                raise LoadTestError(f"load worker {worker} gave up, so the others stop: {marker.get('reason')}")


def wait_for_step(s3_client: Any, plan: FanoutPlan, step: int, *, deadline: float, clock: S3Clock,
                  me: int) -> list[StepEnvelope]:
    """Every envelope of ``step``, polled until S3's clock passes ``deadline``; then fail naming the missing."""
    known: dict[str, StepEnvelope] = {}
    while True:
        keys = _listed(s3_client, plan)
        _raise_if_aborted(s3_client, plan, keys, me)
        envelopes = read_step(s3_client, plan, step, keys, known)
        present = [e.worker for e in envelopes]
        if len(present) == plan.workers:
            return envelopes
        if clock.now() > deadline:
            missing = sorted(set(range(plan.workers)) - set(present))
            raise LoadTestError(
                f"load worker(s) {missing} wrote no result for step {step} (C={plan.steps[step]}) under "
                f"s3://{plan.bucket}/{plan.prefix} by its deadline ({deadline - plan.first_start:.0f} s after the "
                "first step's start, on S3's clock): were all workers running at once? (`airflow dags test` runs "
                "mapped tasks one after another: use load_workers=1 there)")
        clock.sleep(POLL_INTERVAL_S)
