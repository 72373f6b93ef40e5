"""The multi-process engine (``core/loadtest/workers`` and ``hooks/sagemaker_runtime``): issue 9,
findings 6 and 7, and workers that import no Airflow.

* 7: every phase sends exactly its request budget, whatever the split over worker processes
  (at C=1 with two processes the old split gave the second worker no concurrency and dropped
  its half of the budget).
* 6: a 200 whose body is not the object-detection format is an ``InvalidResponse`` error in
  both engines, through the same decoder the smoke test uses.
* A worker process (a fresh interpreter running the entry module, then unpickling its setup and
  opening its client) imports no Airflow.

The real runs go against ``benchmarks/stub_server.py`` on 127.0.0.1, with real botocore and
aiobotocore parsing, in worker processes.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.stub_server import start_in_thread
from sagemaker_vision.core.loadtest import workers
from sagemaker_vision.core.loadtest.engine import split_phase
from sagemaker_vision.core.loadtest.model import InvocationError, LoadTestConfig, LoadTestError, StepResult
from sagemaker_vision.hooks.sagemaker_runtime import (
    ClientSpec,
    WorkerSetup,
    boto3_invoker,
    run_load_test_processes,
    run_phase_async,
)
from tests.unit.core.loadtest.support import GARBAGE_BODIES, Replying

PAYLOADS = (("a.jpg", b"\xff\xd8\xff\xe0jpeg", "image/jpeg"),)


def spec(url: str, pool: int = 8) -> ClientSpec:
    return ClientSpec(region_name="us-east-1", endpoint_url=url, access_key_id="testing",
                      secret_access_key="testing", max_pool_connections=pool, read_timeout_s=5.0)


def config(**overrides) -> LoadTestConfig:
    values = {"endpoint_name": "shapes-ep", "concurrency_steps": (1,), "step_seconds": 10.0,
              "max_requests_per_step": 10, "payloads": PAYLOADS, "warmup_requests": 0, "request_timeout_s": 5.0}
    values.update(overrides)
    return LoadTestConfig(**values)


# -- finding 7: the split ------------------------------------------------------------------------


def _check_split(budget: int, concurrency: int, processes: int) -> None:
    shares = split_phase(budget, concurrency, processes)
    assert sum(r for _, r in shares) == budget, shares
    assert sum(c for c, _ in shares) == concurrency, shares
    assert len(shares) == min(processes, concurrency, budget), shares
    assert all(c >= 1 and r >= 1 for c, r in shares), shares
    assert max(c for c, _ in shares) - min(c for c, _ in shares) <= 1, shares


def test_split_sends_the_whole_budget_for_every_small_combination():
    for budget, concurrency, processes in itertools.product(range(1, 41), range(1, 41), range(1, 9)):
        _check_split(budget, concurrency, processes)


def test_split_sends_the_whole_budget_for_random_large_combinations():
    rng = random.Random(9)
    for _ in range(3000):
        _check_split(rng.randint(1, 100_000), rng.randint(1, 1000), rng.randint(1, 64))


@pytest.mark.parametrize(("budget", "concurrency", "processes", "expected"), [
    (10, 1, 2, [(1, 10)]),  # the reported case: one worker takes it all
    (10, 3, 2, [(2, 7), (1, 3)]),  # requests follow concurrency, so the shares finish together
    (1, 10, 2, [(10, 1)]),
    (40, 4, 2, [(2, 20), (2, 20)]),
])
def test_split_examples(budget, concurrency, processes, expected):
    assert split_phase(budget, concurrency, processes) == expected


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_split_refuses_nonsense(bad):
    for args in ((bad, 1, 1), (1, bad, 1), (1, 1, bad)):
        with pytest.raises(ValueError, match="must be a positive integer"):
            split_phase(*args)


def test_c1_with_two_processes_sends_the_whole_budget():
    """The reported run: C=1, budget 10, two asyncio worker processes sent 5."""
    url, stop = start_in_thread(0, 1)
    try:
        report = run_load_test_processes(config(), spec(url), processes=2, engine="asyncio")
    finally:
        stop()
    (step,) = report.steps
    assert (step.concurrency, step.requests, step.successes) == (1, 10, 10), step.summary()
    assert step.stopped_by == "requests"
    assert stop.stub.invocations == 1 + 10  # the cold start, then the whole step


# -- finding 6: a reply is a success only when it decodes ---------------------------------------------


def test_async_phase_counts_garbage_200s_as_invalid_response():
    url, stop = start_in_thread(0, 1, garbage_every=3)
    try:
        async def run() -> StepResult:
            async with spec(url).aiobotocore_client() as client:
                return await run_phase_async(client, "shapes-ep", PAYLOADS, concurrency=3, max_requests=30,
                                             seconds=10, request_timeout_s=5, payload_offset=0)

        result = asyncio.run(run())
    finally:
        stop()
    assert result.requests == 30 == stop.stub.invocations
    assert result.errors_by_code == {"InvalidResponse": 10}
    assert result.successes == 20 and len(result.latencies_ms) == 20
    assert "reply is not JSON" in result.error_examples["InvalidResponse"]


@pytest.mark.parametrize("engine", ["asyncio", "threads"])
def test_garbage_fails_the_slo_in_worker_processes(engine):
    # Invocation 1 is the cold start (a good reply); every 2nd after it is 200 + HTML.
    url, stop = start_in_thread(0, 1, garbage_every=2)
    try:
        report = run_load_test_processes(config(concurrency_steps=(2,), max_requests_per_step=20,
                                                max_error_rate=0.01), spec(url), processes=2, engine=engine)
    finally:
        stop()
    (step,) = report.steps
    assert (step.requests, step.errors_by_code) == (20, {"InvalidResponse": 10}), step.summary()
    (breach,) = report.slo_breaches()
    assert "InvalidResponse=10" in breach
    assert "InvalidResponse" in report.to_dict()["error_codes_explained"]


def test_a_garbage_cold_start_stops_the_run():
    url, stop = start_in_thread(0, 1, garbage_every=1)
    try:
        with pytest.raises(LoadTestError, match="cold-start request .* failed with InvalidResponse: reply is not JSON"):
            run_load_test_processes(config(), spec(url), processes=1, engine="asyncio")
    finally:
        stop()
    assert stop.stub.invocations == 1


class _Stream:
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aenter__(self) -> _Stream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self.body


class _AsyncReplying:
    """An aiobotocore-shaped client answering 200 with ``body``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def invoke_endpoint(self, **kwargs):
        return {"Body": _Stream(self.body)}


def _async_codes(body: bytes) -> tuple[dict[str, int], dict[str, str]]:
    result = asyncio.run(run_phase_async(_AsyncReplying(body), "ep", PAYLOADS, concurrency=1, max_requests=1,
                                         seconds=5, request_timeout_s=5, payload_offset=0))
    return result.errors_by_code, result.error_examples


@pytest.mark.parametrize(("body", "why"), GARBAGE_BODIES)
def test_the_async_engine_refuses_what_the_threads_engine_refuses(body, why):
    """One decoder for both engines: the same garbage is InvalidResponse, with the same reason."""
    codes, examples = _async_codes(body)
    assert codes == {"InvalidResponse": 1}
    assert re.search(why, examples["InvalidResponse"])
    with pytest.raises(InvocationError) as info:
        boto3_invoker(Replying(body), "ep")(b"x", "image/jpeg")
    assert str(info.value)[:300] == examples["InvalidResponse"]


def test_the_async_engine_counts_a_detection_reply_as_a_success():
    assert _async_codes(b'{"prediction": [[1.0, 0.9, 0.1, 0.2, 0.3, 0.4]]}') == ({}, {})


# -- workers import no Airflow -----------------------------------------------------------------

# Run in a fresh interpreter, as a worker starts: import the entry module, then do what a worker
# does with its setup message (unpickle it: that imports the setup's own module) and open its
# client. Prints the Airflow modules that got imported (none, or the test fails naming them).
_WORKER_IMPORTS = """
import pickle, sys
import {entry}
setup = pickle.loads(bytes.fromhex(sys.stdin.read()))
runner = setup.open()
runner.close()
print(sorted(m for m in sys.modules if m == "airflow" or m.startswith("airflow.")))
"""


@pytest.mark.parametrize("engine", ["threads", "asyncio"])
def test_a_worker_process_imports_no_airflow(engine):
    setup = WorkerSetup(spec("http://127.0.0.1:9"), engine, "shapes-ep", PAYLOADS, 5.0)
    plugins = str(Path(workers.__file__).resolve().parents[3])
    done = subprocess.run([sys.executable, "-c", _WORKER_IMPORTS.format(entry=workers.ENTRY_MODULE)],
                          input=pickle.dumps(setup).hex(), capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": plugins, "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"a load-test worker imported Airflow: {done.stdout.strip()}"
    # The entry the pool starts is the module this test imported.
    assert workers.ENTRY_MODULE == workers.__name__
