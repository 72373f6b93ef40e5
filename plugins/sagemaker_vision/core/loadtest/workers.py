"""Worker processes for the load engine: the process entry, the parent's handles, a pool.

Why: one boto3 ``invoke_endpoint`` costs 0.5-1.2 ms of client CPU, depending on the machine
(botocore builds, signs and parses every request; SigV4 is only ~0.05 ms of it), and Python
threads share one GIL, so one process saturates near one CPU-second per second. At C=100 with a
50 ms model (2000 req/s ideal) the 100 threads of :func:`sagemaker_vision.core.loadtest.engine.run_load_test`
also spend CPU handing the GIL over, and the generator -- not the endpoint -- sets the result.
Measured on 2 cores (``benchmarks/README.md``, P3b/P4), asyncio on two processes is the fastest
engine at both C=20 and C=100, and 1.66x Locust at C=100.

Each worker is a child interpreter (``python -m sagemaker_vision.core.loadtest.workers``, never a
fork of an Airflow task). It imports no Airflow: this module imports only the core, and the
setup it is sent (a picklable :class:`RunnerSetup`, e.g.
:class:`sagemaker_vision.hooks.sagemaker_runtime.WorkerSetup`) brings in only its own module.
The setup opens one :class:`PhaseRunner` (one client) for the worker's life; the pool splits
every phase's concurrency and request budget over the workers
(:func:`~sagemaker_vision.core.loadtest.engine.split_phase`) and merges their shares
(:func:`~sagemaker_vision.core.loadtest.engine.merge_steps`).

Parent and workers talk over a private socketpair; credentials travel there, never in argv or
the environment. Every wait on a worker is bounded, and a worker that dies or hangs fails the
run with :class:`~sagemaker_vision.core.loadtest.model.LoadTestError` naming it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from sagemaker_vision.core.loadtest.engine import merge_steps, split_phase
from sagemaker_vision.core.loadtest.model import JOIN_GRACE_S, LoadTestError, StepResult

MAX_PROCESSES = 64
# A worker imports botocore (and aiobotocore for the asyncio engine) before it can answer.
WORKER_START_TIMEOUT_S = 60.0
# The folder holding the sagemaker_vision package (plugins/).
_PACKAGE_PARENT = Path(__file__).resolve().parents[3]
# What a worker runs: ``python -m`` this module.
ENTRY_MODULE = "sagemaker_vision.core.loadtest.workers"


class PhaseRunner(Protocol):
    """Inside a worker: runs one phase per request on the worker's one client."""

    def phase(self, concurrency: int, max_requests: int, seconds: float, payload_offset: int) -> StepResult: ...

    def close(self) -> None: ...


class RunnerSetup(Protocol):
    """What the parent sends a worker once; picklable, and its module must import no Airflow."""

    def open(self) -> PhaseRunner: ...


def check_processes(processes: object) -> int:
    """``processes`` when it is an integer in [1, :data:`MAX_PROCESSES`]; ``ValueError`` otherwise."""
    if isinstance(processes, bool) or not isinstance(processes, int) or not 1 <= processes <= MAX_PROCESSES:
        raise ValueError(f"processes must be an integer in [1, {MAX_PROCESSES}], got {processes!r}")
    return processes


def _worker_main(fd: int) -> None:
    """A worker's loop: ``setup`` once, then ``phase`` messages until ``stop`` or EOF."""
    conn = Connection(fd)
    runner: PhaseRunner | None = None
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
                    runner = payload.open()
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


class _WorkerProcess:
    """The parent's handle on one worker process."""

    def __init__(self, index: int) -> None:
        self.index = index
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        # The worker imports this package from where the parent did, whatever its sys.path.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", ENTRY_MODULE, str(child_sock.fileno())],
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


class ProcessPool:
    """``processes`` workers, each opened from ``setup``; runs phases split across them."""

    def __init__(self, setup: RunnerSetup, *, processes: int = 2, request_timeout_s: float = 60.0) -> None:
        check_processes(processes)
        self.request_timeout_s = request_timeout_s
        self.workers: list[_WorkerProcess] = []
        try:
            for index in range(processes):
                self.workers.append(_WorkerProcess(index))
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

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "MAX_PROCESSES",
    "WORKER_START_TIMEOUT_S",
    "PhaseRunner",
    "ProcessPool",
    "RunnerSetup",
    "check_processes",
]


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
