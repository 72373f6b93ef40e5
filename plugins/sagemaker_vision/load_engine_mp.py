"""The load engine spread over worker processes, each with ONE shared client; results merged.

Why: one boto3 ``invoke_endpoint`` costs 0.5-1.2 ms of client CPU, depending on the machine
(botocore builds, signs and parses every request; SigV4 is only ~0.05 ms of it), and Python
threads share one GIL, so one process saturates near one CPU-second per second. At C=100 with a
50 ms model (2000 req/s ideal) the 100 threads of :func:`sagemaker_vision.load_test.run_load_test`
also spend CPU handing the GIL over, and the generator -- not the endpoint -- sets the result.
Measured on 2 cores (``benchmarks/README.md``, P3b/P4), asyncio on two processes is the fastest
engine at both C=20 and C=100, and 1.66x Locust at C=100.

:func:`run_load_test_processes` keeps the engine's contract (same :class:`LoadTestConfig`, same
:class:`LoadTestReport`, cold start, warm-up, bounded steps) and splits every phase's
concurrency and request budget over ``processes`` workers. Each worker is a child interpreter
(``python -m sagemaker_vision.load_engine_mp``, never a fork of an Airflow task) that builds one
client from a :class:`ClientSpec` and runs each phase with either

* ``engine="threads"``: the package's own phase runner (threads on one shared boto3 client), or
* ``engine="asyncio"``: coroutines on one aiobotocore client (no GIL hand-offs between workers).

Parent and workers talk over a private socketpair; credentials travel there, never in argv or
the environment. Every wait on a worker is bounded, and a worker that dies or hangs fails the
run with :class:`LoadTestError` naming it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from sagemaker_vision.load_test import (
    JOIN_GRACE_S,
    TIMEOUT_CODE,
    LoadTestConfig,
    LoadTestError,
    LoadTestReport,
    Payload,
    StepResult,
    _run_phase,
    boto3_invoker,
    check_reply,
    cold_start_error,
    error_code,
)

log = logging.getLogger(__name__)

Engine = Literal["threads", "asyncio"]
ENGINES: tuple[str, ...] = ("threads", "asyncio")
MAX_PROCESSES = 64
# A worker imports botocore (and Airflow's SDK, via load_test) before it can answer.
WORKER_START_TIMEOUT_S = 60.0
_PACKAGE_PARENT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ClientSpec:
    """Everything a worker needs to build its own ``sagemaker-runtime`` client; picklable.

    Retries are off (one attempt), as in the operator's client: a load test must count
    throttling and errors, not hide them in latency.
    """

    region_name: str
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    max_pool_connections: int = 10
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.region_name, str) or not self.region_name:
            raise ValueError(f"region_name must be a non-empty string, got {self.region_name!r}")
        if (isinstance(self.max_pool_connections, bool) or not isinstance(self.max_pool_connections, int)
                or self.max_pool_connections < 1):
            raise ValueError(f"max_pool_connections must be a positive integer, got {self.max_pool_connections!r}")

    @classmethod
    def from_session(cls, session: Any, *, region_name: str, endpoint_url: str | None = None,
                     **settings: Any) -> ClientSpec:
        """From a boto3 session: its current credentials, frozen (refresh is up to the caller)."""
        credentials = session.get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
        return cls(
            region_name=region_name,
            endpoint_url=endpoint_url,
            access_key_id=frozen.access_key if frozen else None,
            secret_access_key=frozen.secret_key if frozen else None,
            session_token=frozen.token if frozen else None,
            **settings,
        )

    @classmethod
    def from_hook(cls, hook: Any, **settings: Any) -> ClientSpec:
        """From an ``AwsBaseHook``: the connection's region, endpoint_url and credentials."""
        region = hook.region_name or hook.get_session().region_name
        return cls.from_session(hook.get_session(region_name=region), region_name=region,
                                endpoint_url=hook.conn_config.endpoint_url, **settings)

    def _client_kwargs(self) -> dict[str, Any]:
        from sagemaker_vision import aws

        return {
            "region_name": self.region_name,
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "config": aws.botocore_config(
                max_pool_connections=self.max_pool_connections,
                retries={"mode": "standard", "total_max_attempts": 1},
                connect_timeout=self.connect_timeout_s,
                read_timeout=self.read_timeout_s,
            ),
        }

    def boto3_client(self) -> Any:
        """A thread-safe boto3 client with a pool of ``max_pool_connections``."""
        import boto3

        return boto3.session.Session().client("sagemaker-runtime", **self._client_kwargs())

    def aiobotocore_client(self) -> Any:
        """An aiobotocore client context manager (``async with spec.aiobotocore_client() as c``)."""
        from aiobotocore.session import get_session

        return get_session().create_client("sagemaker-runtime", **self._client_kwargs())


# --------------------------------------------------------------------------------------------
# Pure helpers


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


# --------------------------------------------------------------------------------------------
# The asyncio phase runner (one aiobotocore client, coroutines instead of threads)


def _async_error_code(exc: BaseException) -> str:
    """Like :func:`boto3_invoker`'s mapping, for aiobotocore's exceptions."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | asyncio.TimeoutError):
        return TIMEOUT_CODE
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ConnectionError):
        return "ConnectionError"
    return error_code(exc)


async def run_phase_async(
    client: Any,
    endpoint_name: str,
    payloads: Sequence[Payload],
    *,
    concurrency: int,
    max_requests: int,
    seconds: float,
    request_timeout_s: float,
    payload_offset: int,
    target_variant: str | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> StepResult:
    """``concurrency`` coroutines invoking until ``seconds`` pass or ``max_requests`` are sent.

    The asyncio twin of ``load_test._run_phase``: same budget, deadline, error codes and
    result, and the same check of every reply (:func:`sagemaker_vision.load_test.check_reply`:
    a 200 that is not the object-detection format counts as ``InvalidResponse``). Each request
    is cut off at ``request_timeout_s`` plus the engine's grace.
    """
    base: dict[str, Any] = {"EndpointName": endpoint_name, "Accept": "application/json"}
    if target_variant:
        base["TargetVariant"] = target_variant
    taken = 0
    records: list[tuple[float, str | None]] = []
    examples: dict[str, str] = {}
    start = clock()
    deadline = start + seconds
    cpu_start, wall_start = time.process_time(), time.monotonic()

    async def invoke(body: bytes, content_type: str) -> None:
        response = await client.invoke_endpoint(Body=body, ContentType=content_type, **base)
        async with response["Body"] as stream:
            reply = await stream.read()
        check_reply(reply)

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
                code = _async_error_code(exc)
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
# Workers


@dataclass(frozen=True)
class _WorkerSetup:
    spec: ClientSpec
    engine: str
    endpoint_name: str
    payloads: tuple[Payload, ...]
    request_timeout_s: float
    target_variant: str | None = None


class _Runner:
    """Inside a worker: one client for the worker's life, one phase per request."""

    def __init__(self, setup: _WorkerSetup) -> None:
        self.setup = setup
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client_cm: Any = None
        if setup.engine == "threads":
            self.client = setup.spec.boto3_client()
            self.invoke = boto3_invoker(self.client, setup.endpoint_name, target_variant=setup.target_variant)
        else:
            self._loop = asyncio.new_event_loop()
            self._client_cm = setup.spec.aiobotocore_client()
            self.client = self._loop.run_until_complete(self._client_cm.__aenter__())

    def phase(self, concurrency: int, max_requests: int, seconds: float, payload_offset: int) -> StepResult:
        s = self.setup
        if self._loop is None:
            return _run_phase(self.invoke, s.payloads, concurrency=concurrency, max_requests=max_requests,
                              seconds=seconds, request_timeout_s=s.request_timeout_s,
                              payload_offset=payload_offset, clock=time.perf_counter)
        return self._loop.run_until_complete(run_phase_async(
            self.client, s.endpoint_name, s.payloads, concurrency=concurrency, max_requests=max_requests,
            seconds=seconds, request_timeout_s=s.request_timeout_s, payload_offset=payload_offset,
            target_variant=s.target_variant,
        ))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._client_cm.__aexit__(None, None, None))
            self._loop.close()


def _worker_main(fd: int) -> None:
    """A worker's loop: ``setup`` once, then ``phase`` messages until ``stop`` or EOF."""
    conn = Connection(fd)
    runner: _Runner | None = None
    try:
        while True:
            try:
                kind, payload = conn.recv()
            except EOFError:
                return  # the parent went away
            if kind == "stop":
                return
            try:
                if kind == "setup":
                    runner = _Runner(payload)
                    reply: tuple[str, Any] = ("ok", None)
                elif kind == "phase" and runner is not None:
                    reply = ("ok", runner.phase(**payload))
                else:
                    reply = ("error", f"unexpected message {kind!r}")
            except Exception as exc:  # reported to the parent, which fails the run with it
                reply = ("error", f"{type(exc).__name__}: {exc}")
            try:
                conn.send(reply)
            except OSError:
                return  # the parent went away while this phase ran (it is bounded, so we got here)
    finally:
        if runner is not None:
            runner.close()
        conn.close()


class _Worker:
    """The parent's handle on one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        # The worker imports this package from where the parent did, whatever its sys.path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sagemaker_vision.load_engine_mp", str(child_sock.fileno())],
                pass_fds=(child_sock.fileno(),), env=env, stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self.conn = Connection(parent_sock.detach())

    def send(self, kind: str, payload: Any) -> None:
        self.conn.send((kind, payload))

    def receive(self, timeout_s: float, what: str) -> Any:
        if not self.conn.poll(timeout_s):
            raise LoadTestError(f"load worker {self.index} gave no answer to {what} within {timeout_s:.0f} s")
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            code = self.process.poll()
            raise LoadTestError(f"load worker {self.index} exited (code {code}) during {what}") from None
        if status != "ok":
            raise LoadTestError(f"load worker {self.index} failed during {what}: {value}")
        return value

    def stop(self) -> None:
        try:
            self.send("stop", None)
        except OSError:
            pass
        self.conn.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class WorkerPool:
    """``processes`` workers, each with one client; runs phases split across them."""

    def __init__(self, spec: ClientSpec, endpoint_name: str, payloads: Sequence[Payload], *,
                 processes: int = 2, engine: Engine = "asyncio", request_timeout_s: float = 60.0,
                 target_variant: str | None = None) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or not 1 <= processes <= MAX_PROCESSES:
            raise ValueError(f"processes must be an integer in [1, {MAX_PROCESSES}], got {processes!r}")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if not endpoint_name:
            raise ValueError("endpoint_name must be a non-empty string")
        self.request_timeout_s = request_timeout_s
        setup = _WorkerSetup(spec, engine, endpoint_name, tuple(payloads), request_timeout_s, target_variant)
        self.workers: list[_Worker] = []
        try:
            for index in range(processes):
                self.workers.append(_Worker(index))
            for worker in self.workers:  # all start in parallel; then wait for each
                worker.send("setup", setup)
            for worker in self.workers:
                worker.receive(WORKER_START_TIMEOUT_S, "setup")
        except BaseException:
            self.close()
            raise

    def phase(self, *, concurrency: int, max_requests: int, seconds: float, payload_offset: int) -> StepResult:
        """One phase over the workers: all of its concurrency and request budget (:func:`split_phase`)."""
        shares = split_phase(max_requests, concurrency, len(self.workers))
        busy = self.workers[:len(shares)]
        offset = payload_offset
        for worker, (c, r) in zip(busy, shares, strict=True):
            worker.send("phase", {"concurrency": c, "max_requests": r, "seconds": seconds, "payload_offset": offset})
            offset += r
        # The worker's own phase gives up on stuck requests after this; add room for the reply.
        limit = seconds + self.request_timeout_s + JOIN_GRACE_S + 10.0
        return merge_steps([w.receive(limit, f"the C={concurrency} phase") for w in busy])

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_load_test_processes(
    config: LoadTestConfig,
    spec: ClientSpec,
    *,
    processes: int = 2,
    engine: Engine = "asyncio",
    target_variant: str | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> LoadTestReport:
    """:func:`sagemaker_vision.load_test.run_load_test` over ``processes`` worker processes.

    Same phases and bounds: a cold-start request on its own (the ramp is not run if it fails),
    the warm-up, then each step, every one split evenly across the workers and merged. Worker
    start-up (about a second each, in parallel) happens before the cold start is timed.
    """
    if spec.max_pool_connections < math.ceil(config.max_concurrency / processes):
        raise ValueError(f"max_pool_connections ({spec.max_pool_connections}) is below the largest worker share "
                         f"of concurrency {config.max_concurrency} over {processes} processes")
    # A worker beyond the largest step's concurrency would never get a request: do not start it.
    processes = min(processes, config.max_concurrency)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with WorkerPool(spec, config.endpoint_name, config.payloads, processes=processes, engine=engine,
                    request_timeout_s=config.request_timeout_s, target_variant=target_variant) as pool:
        sent = 0
        cold = pool.phase(concurrency=1, max_requests=1, seconds=config.request_timeout_s, payload_offset=0)
        sent += cold.requests
        if cold.successes != 1:
            raise cold_start_error(config.endpoint_name, cold)
        cold_start_ms = cold.latencies_ms[0]
        warmup = None
        if config.warmup_requests:
            warmup = pool.phase(concurrency=min(config.warmup_requests, config.concurrency_steps[0]),
                                max_requests=config.warmup_requests, seconds=config.step_seconds,
                                payload_offset=sent)
            sent += warmup.requests
            log.info("warm-up (not counted): %s", warmup.summary())
        steps = []
        for concurrency in config.concurrency_steps:
            step = pool.phase(concurrency=concurrency, max_requests=config.max_requests_per_step,
                              seconds=config.step_seconds, payload_offset=sent)
            sent += step.requests
            steps.append(step)
            if on_step is not None:
                on_step(step)
    return LoadTestReport(config=config, steps=tuple(steps), cold_start_ms=cold_start_ms, warmup=warmup,
                          started_at=started_at)


__all__ = [
    "ENGINES",
    "ClientSpec",
    "WorkerPool",
    "merge_steps",
    "run_load_test_processes",
    "run_phase_async",
    "split_evenly",
    "split_phase",
]


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
