"""The load engine: phases of concurrent requests around an ``invoke`` callable, and the ramp.

Pure: no Airflow, no AWS call. :func:`run_phase` is plain threads around any
``invoke(body, content_type)`` callable, so it is tested without AWS; against a real endpoint,
:func:`sagemaker_vision.hooks.sagemaker_runtime.boto3_invoker` makes that callable from ONE shared
``sagemaker-runtime`` client: botocore clients are thread-safe, and a pool of
``max_pool_connections >= concurrency`` keeps one keep-alive connection per worker. Measured
against ``benchmarks/stub_server.py`` on 2 cores, threads on one shared client reach about 0.9 of
the ideal rate at C=20 with a 50 ms service time and at C=200 with 500 ms; at C=100 with 50 ms
(2000 req/s ideal) the client's own CPU (signing, parsing, one GIL) is the limit at about 0.3.
Each step records ``client_cpu_ratio`` so a report says when that happened.

:func:`run_async_phase` is the asyncio twin (coroutines around an async ``invoke``), and
:func:`split_phase` / :func:`merge_steps` the arithmetic that spreads one phase over worker
processes (:mod:`sagemaker_vision.core.loadtest.workers`) and merges their shares. Every engine
runs the same ramp, :func:`run_ramp`: a cold-start request on its own, the warm-up, then each step.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sagemaker_vision.core.loadtest.model import (
    JOIN_GRACE_S,
    TIMEOUT_CODE,
    Invoke,
    LoadTestConfig,
    LoadTestReport,
    Payload,
    StepResult,
    cold_start_error,
    error_code,
)

log = logging.getLogger(__name__)

AsyncInvoke = Callable[[bytes, str], Awaitable[None]]
# One phase of a ramp: (concurrency, max_requests, seconds, payload_offset) -> its result.
Phase = Callable[..., StepResult]


# --------------------------------------------------------------------------------------------
# Threads (one process)


class _Budget:
    """A shared request counter: workers take tickets until the step's limit is spent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        with self._lock:
            if self.taken >= self.limit:
                return None
            self.taken += 1
            return self.taken - 1


@dataclass
class _ThreadState:
    records: list[tuple[float, str | None]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)
    in_flight: bool = False


def run_phase(
    invoke: Invoke,
    payloads: Sequence[Payload],
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    request_timeout_s: float,
    payload_offset: int,
    clock: Callable[[], float],
) -> StepResult:
    """``concurrency`` threads invoking until ``seconds`` pass or ``max_requests`` are sent."""
    budget = _Budget(max_requests)
    stop = threading.Event()
    workers = [_ThreadState() for _ in range(concurrency)]
    start = clock()
    deadline = start + seconds
    cpu_start, wall_start = time.process_time(), time.monotonic()

    def work(state: _ThreadState) -> None:
        while not stop.is_set() and clock() < deadline:
            ticket = budget.take()
            if ticket is None:
                return
            _, body, content_type = payloads[(payload_offset + ticket) % len(payloads)]
            state.in_flight = True
            began = clock()
            try:
                invoke(body, content_type)
                code = None
            except Exception as exc:  # every failure is data for the report, never a crash
                code = error_code(exc)
                state.examples.setdefault(code, str(exc)[:300])
            state.records.append((clock() - began, code))
            state.in_flight = False

    threads = [threading.Thread(target=work, args=(w,), name=f"load-test-{i}", daemon=True)
               for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    # Real time, not `clock`: a request already started may run up to its timeout past the deadline.
    hard_stop = time.monotonic() + seconds + request_timeout_s + JOIN_GRACE_S
    for thread in threads:
        thread.join(max(0.0, hard_stop - time.monotonic()))
    stop.set()
    duration = clock() - start
    wall = time.monotonic() - wall_start
    cpu_ratio = (time.process_time() - cpu_start) / wall if wall > 0 else 0.0

    records: list[tuple[float, str | None]] = []
    examples: dict[str, str] = {}
    abandoned = 0
    for thread, state in zip(threads, workers, strict=True):
        records.extend(list(state.records))  # copy: an abandoned thread may still append
        for code, text in state.examples.items():
            examples.setdefault(code, text)
        if thread.is_alive() and state.in_flight:
            abandoned += 1
    if abandoned:
        log.warning("%d request(s) still in flight %.0f s after the C=%d deadline; counted as %s",
                    abandoned, request_timeout_s + JOIN_GRACE_S, concurrency, TIMEOUT_CODE)
        examples.setdefault(TIMEOUT_CODE, "invoke did not return within request_timeout_s + grace")

    errors: Counter[str] = Counter(code for _, code in records if code is not None)
    errors.update({TIMEOUT_CODE: abandoned} if abandoned else {})
    latencies = sorted(lat * 1000.0 for lat, code in records if code is None)
    busy = sum(lat for lat, _ in records) + abandoned * (seconds + request_timeout_s)
    return StepResult(
        concurrency=concurrency,
        requests=len(records) + abandoned,
        successes=len(latencies),
        errors_by_code=dict(errors),
        duration_s=duration,
        stopped_by="requests" if budget.taken >= max_requests else "time",
        achieved_concurrency=busy / duration if duration > 0 else 0.0,
        client_cpu_ratio=cpu_ratio,
        latencies_ms=tuple(latencies),
        error_examples=examples,
    )


def run_ramp(
    phase: Phase,
    config: LoadTestConfig,
    *,
    on_step: Callable[[StepResult], None] | None = None,
    started_at: str | None = None,
) -> LoadTestReport:
    """Cold-start probe, warm-up, then each concurrency step in turn, each through ``phase``.

    ``phase(concurrency=, max_requests=, seconds=, payload_offset=)`` runs one bounded phase
    (:func:`run_phase` in this process, a worker pool's ``phase`` over processes). The first
    request is timed on its own as the cold start; if it fails the ramp is not run. Payloads
    are cycled across phases, never restarting. ``on_step`` is called with each step as it finishes.
    """
    if started_at is None:
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
    sent = 0

    cold = phase(concurrency=1, max_requests=1, seconds=config.request_timeout_s, payload_offset=0)
    sent += cold.requests
    if cold.successes != 1:
        raise cold_start_error(config.endpoint_name, cold)
    cold_start_ms = cold.latencies_ms[0]
    log.info("cold start: %.1f ms", cold_start_ms)

    warmup = None
    if config.warmup_requests:
        warmup = phase(concurrency=min(config.warmup_requests, config.concurrency_steps[0]),
                       max_requests=config.warmup_requests, seconds=config.step_seconds, payload_offset=sent)
        sent += warmup.requests
        log.info("warm-up (not counted): %s", warmup.summary())

    steps = []
    for concurrency in config.concurrency_steps:
        step = phase(concurrency=concurrency, max_requests=config.max_requests_per_step,
                     seconds=config.step_seconds, payload_offset=sent)
        sent += step.requests
        steps.append(step)
        if on_step is not None:
            on_step(step)
    return LoadTestReport(config=config, steps=tuple(steps), cold_start_ms=cold_start_ms, warmup=warmup,
                          started_at=started_at)


def run_load_test(
    invoke: Invoke,
    config: LoadTestConfig,
    *,
    clock: Callable[[], float] = time.perf_counter,
    on_step: Callable[[StepResult], None] | None = None,
) -> LoadTestReport:
    """:func:`run_ramp` on threads in this process, around one ``invoke``.

    ``invoke(body, content_type)`` makes one request and raises on failure (see
    :func:`~sagemaker_vision.core.loadtest.model.error_code` for how failures are counted). It must
    enforce its own timeout of about ``config.request_timeout_s``; a call still running past that
    plus a grace period is counted as ``Timeout`` and abandoned, so the whole run never exceeds
    ``config.worst_case_seconds``. The first request is timed on its own as the cold start; if it
    fails the ramp is not run. ``on_step`` is called with each step as it finishes.
    """
    def phase(*, concurrency: int, max_requests: int, seconds: float, payload_offset: int) -> StepResult:
        return run_phase(invoke, config.payloads, concurrency=concurrency, max_requests=max_requests,
                         seconds=seconds, request_timeout_s=config.request_timeout_s,
                         payload_offset=payload_offset, clock=clock)

    return run_ramp(phase, config, on_step=on_step)


# --------------------------------------------------------------------------------------------
# Asyncio (coroutines instead of threads)


async def run_async_phase(
    invoke: AsyncInvoke,
    payloads: Sequence[Payload],
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    request_timeout_s: float,
    payload_offset: int,
    classify: Callable[[BaseException], str] = error_code,
    clock: Callable[[], float] = time.perf_counter,
) -> StepResult:
    """``concurrency`` coroutines awaiting ``invoke`` until ``seconds`` pass or ``max_requests`` are sent.

    The asyncio twin of :func:`run_phase`: same budget, deadline and result. ``classify`` names
    the error code of a failure (the client library's exceptions map differently). Each request
    is cut off at ``request_timeout_s`` plus the engine's grace.
    """
    taken = 0
    records: list[tuple[float, str | None]] = []
    examples: dict[str, str] = {}
    start = clock()
    deadline = start + seconds
    cpu_start, wall_start = time.process_time(), time.monotonic()

    async def work() -> None:
        nonlocal taken
        while clock() < deadline and taken < max_requests:
            ticket = taken
            taken += 1  # single-threaded: no lock needed between the check and the take
            _, body, content_type = payloads[(payload_offset + ticket) % len(payloads)]
            began = clock()
            try:
                # asyncio.timeout, unlike wait_for, costs no extra task per request.
                async with asyncio.timeout(request_timeout_s + JOIN_GRACE_S):
                    await invoke(body, content_type)
                code = None
            except Exception as exc:  # every failure is data for the report, never a crash
                code = classify(exc)
                examples.setdefault(code, str(exc)[:300] or type(exc).__name__)
            records.append((clock() - began, code))

    await asyncio.gather(*(work() for _ in range(concurrency)))
    duration = clock() - start
    wall = time.monotonic() - wall_start
    errors = Counter(code for _, code in records if code is not None)
    latencies = sorted(lat * 1000.0 for lat, code in records if code is None)
    return StepResult(
        concurrency=concurrency,
        requests=len(records),
        successes=len(latencies),
        errors_by_code=dict(errors),
        duration_s=duration,
        stopped_by="requests" if taken >= max_requests else "time",
        achieved_concurrency=sum(lat for lat, _ in records) / duration if duration > 0 else 0.0,
        client_cpu_ratio=(time.process_time() - cpu_start) / wall if wall > 0 else 0.0,
        latencies_ms=tuple(latencies),
        error_examples=examples,
    )


# --------------------------------------------------------------------------------------------
# Splitting one phase over worker processes, and merging their shares


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` integers differing by at most one, largest first (zeros kept)."""
    if parts < 1 or total < 0:
        raise ValueError(f"cannot split {total} into {parts} parts")
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def split_phase(budget: int, concurrency: int, processes: int) -> list[tuple[int, int]]:
    """``(concurrency, requests)`` per worker for one phase: the whole budget and concurrency, no idle share.

    ``min(processes, concurrency, budget)`` workers take part, so each has at least one coroutine
    and at least one request; the concurrency is spread evenly and the requests in proportion to
    it (largest remainder), so shares that run at the same per-coroutine rate finish together.
    ``sum`` of the requests is ``budget`` and of the concurrency ``concurrency``, always.
    """
    for name, value in (("budget", budget), ("concurrency", concurrency), ("processes", processes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    used = min(processes, concurrency, budget)
    shares = split_evenly(concurrency, used)
    exact = [budget * c / concurrency for c in shares]
    requests = [math.floor(x) for x in exact]
    for index in sorted(range(used), key=lambda i: (requests[i] - exact[i], i))[:budget - sum(requests)]:
        requests[index] += 1
    # A share rounded down to nothing takes one from the largest (budget >= used, so one has two).
    for index in range(used):
        if requests[index] == 0:
            requests[requests.index(max(requests))] -= 1
            requests[index] = 1
    return list(zip(shares, requests, strict=True))


def merge_steps(parts: Sequence[StepResult]) -> StepResult:
    """One step from the workers' shares of it, as if one generator had run them all.

    Counts and latencies add up; the duration is the longest share's (they start together), so
    throughput is all successes over the step's wall time. ``client_cpu_ratio`` is the busiest
    worker's: the GIL limit it warns about is per process.
    """
    if not parts:
        raise ValueError("merge_steps needs at least one step")
    duration = max(p.duration_s for p in parts)
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for part in parts:
        errors.update(part.errors_by_code)
        for code, text in part.error_examples.items():
            examples.setdefault(code, text)
    busy = sum(p.achieved_concurrency * p.duration_s for p in parts)
    return StepResult(
        concurrency=sum(p.concurrency for p in parts),
        requests=sum(p.requests for p in parts),
        successes=sum(p.successes for p in parts),
        errors_by_code=dict(errors),
        duration_s=duration,
        stopped_by="requests" if all(p.stopped_by == "requests" for p in parts) else "time",
        achieved_concurrency=busy / duration if duration > 0 else 0.0,
        client_cpu_ratio=max(p.client_cpu_ratio for p in parts),
        latencies_ms=tuple(heapq.merge(*(p.latencies_ms for p in parts))),
        error_examples=examples,
    )
