"""The load engines the benchmarks compare, each run as the operator would run it, one step.

* ``threads``: today's operator path, :func:`sagemaker_vision.core.loadtest.engine.run_load_test` with
  :func:`~sagemaker_vision.hooks.sagemaker_runtime.boto3_invoker` on ONE shared client (pool = concurrency),
  in this process.
* ``threads-xN`` / ``asyncio-xN``: :func:`sagemaker_vision.hooks.sagemaker_runtime.run_load_test_processes`
  over N worker processes, each with one client, running threads or aiobotocore coroutines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from _bench import FAKE_CREDENTIALS, REGION, payloads, runtime_client

ENGINE_RE = re.compile(r"^(threads|asyncio)(?:-x(\d+))?$")
ENDPOINT = "bench-endpoint"


# The engine benchmarks/README.md proposes for LoadTestOperator (P3b's choice): asyncio on one
# aiobotocore client per process, spread over two processes.
PROPOSED_ENGINE = "asyncio-x2"


def operator_engine() -> str:
    """The engine ``LoadTestOperator`` runs: ``<engine>-x<processes>`` from its keyword
    defaults once it has them (the proposed wiring), else today's in-process ``threads``."""
    import inspect

    from sagemaker_vision.operators.load_test import LoadTestOperator

    params = inspect.signature(LoadTestOperator.__init__).parameters
    engine, processes = params.get("engine"), params.get("processes")
    if engine is None or processes is None:
        return "threads"
    return f"{engine.default}-x{processes.default}"


@dataclass(frozen=True)
class Run:
    """One measured step and what it means against the ideal."""

    engine: str
    concurrency: int
    service_ms: float
    throughput_rps: float
    client_cpu_ratio: float
    summary: str

    @property
    def ideal_rps(self) -> float:
        return ideal_rps(self.concurrency, self.service_ms)

    @property
    def ratio(self) -> float:
        return self.throughput_rps / self.ideal_rps


def ideal_rps(concurrency: int, service_ms: float) -> float:
    """What a closed loop of ``concurrency`` workers gets from a server taking ``service_ms``."""
    if concurrency < 1 or service_ms <= 0:
        raise ValueError(f"need concurrency >= 1 and service_ms > 0, got {concurrency}, {service_ms}")
    return concurrency * 1000.0 / service_ms


class Engine:
    """One engine under test, its client(s) kept across steps (worker start-up is paid once).

    Use as a context manager; :meth:`step` runs one warmed-up step against ``url``.
    """

    def __init__(self, name: str, url: str, max_concurrency: int, request_timeout_s: float = 30.0) -> None:
        match = ENGINE_RE.match(name)
        if not match:
            raise ValueError(f"engine must be threads, threads-xN or asyncio-xN, got {name!r}")
        self.name, self.url, self.request_timeout_s = name, url, request_timeout_s
        kind, processes = match.group(1), match.group(2)
        self.client = self.pool = None
        if processes is None:
            if kind != "threads":
                raise ValueError(f"{name!r}: the asyncio engine runs in worker processes; say asyncio-x1")
            self.client = runtime_client(url, pool=max_concurrency, request_timeout_s=request_timeout_s)
        else:
            from sagemaker_vision.hooks.sagemaker_runtime import ClientSpec, WorkerPool

            spec = ClientSpec(region_name=REGION, endpoint_url=url,
                              access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
                              secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
                              max_pool_connections=max_concurrency, read_timeout_s=request_timeout_s)
            self.pool = WorkerPool(spec, ENDPOINT, payloads(), processes=int(processes), engine=kind,
                                   request_timeout_s=request_timeout_s)

    def step(self, concurrency: int, service_ms: float, *, seconds: float, max_requests: int) -> Run:
        """A warm-up of ``concurrency`` requests (every pooled connection opened), then the step.

        In-process threads go through ``run_load_test`` itself, as the operator calls it; the
        worker pool runs the same two phases directly, reusing its warm workers.
        """
        from sagemaker_vision.core.loadtest.engine import run_load_test
        from sagemaker_vision.core.loadtest.model import LoadTestConfig
        from sagemaker_vision.hooks.sagemaker_runtime import boto3_invoker

        if self.client is not None:
            config = LoadTestConfig(endpoint_name=ENDPOINT, concurrency_steps=(concurrency,), step_seconds=seconds,
                                    max_requests_per_step=max_requests, payloads=payloads(),
                                    request_timeout_s=self.request_timeout_s, warmup_requests=concurrency)
            step = run_load_test(boto3_invoker(self.client, ENDPOINT), config).steps[0]
        else:
            self.pool.phase(concurrency=concurrency, max_requests=concurrency, seconds=seconds, payload_offset=0)
            step = self.pool.phase(concurrency=concurrency, max_requests=max_requests, seconds=seconds,
                                   payload_offset=concurrency)
        if step.errors:
            raise RuntimeError(f"{self.name} at C={concurrency}: {step.errors} failed requests: {step.errors_by_code}")
        return Run(self.name, concurrency, service_ms, step.throughput_rps, step.client_cpu_ratio, step.summary())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
