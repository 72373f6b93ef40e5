"""The ``sagemaker-runtime`` side: InvokeEndpoint for the smoke test and the load engines.

No Airflow: load-test worker processes import this module (it holds :class:`WorkerSetup`, the
setup a worker is sent). :class:`ClientSpec` builds a worker's client from frozen credentials
(:meth:`ClientSpec.from_hook` takes them from an Airflow connection's hook in the parent).

* :func:`boto3_invoker`: the ``invoke(body, content_type)`` callable the threads engine
  (:func:`sagemaker_vision.core.loadtest.engine.run_load_test`) runs on ONE shared client;
* :func:`run_phase_async`: one phase of coroutines on one aiobotocore client;
* :class:`WorkerPool` / :func:`run_load_test_processes`: the engine's contract (same
  :class:`LoadTestConfig`, same :class:`LoadTestReport`, cold start, warm-up, bounded steps) over
  ``processes`` workers (:mod:`sagemaker_vision.core.loadtest.workers`), each with ONE client and
  either ``engine="threads"`` (the package's own phase runner on one boto3 client) or
  ``engine="asyncio"`` (coroutines on one aiobotocore client: no GIL hand-offs between workers);
* :func:`invoke_and_decode`: one call decoded into pixel boxes (the smoke test's).

Every reply a load engine reads is checked by :func:`~sagemaker_vision.core.loadtest.model.check_reply`:
a 200 that is not the object-detection format counts as ``InvalidResponse``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from sagemaker_vision import __version__
from sagemaker_vision.core.aws_config import botocore_config
from sagemaker_vision.core.inference import CONTENT_TYPES, Box, ClassMap, MalformedReply, decode_detections, image_size
from sagemaker_vision.core.loadtest.engine import run_async_phase, run_phase, run_ramp
from sagemaker_vision.core.loadtest.model import (
    TIMEOUT_CODE,
    InvocationError,
    Invoke,
    LoadTestConfig,
    LoadTestReport,
    Payload,
    StepResult,
    check_reply,
    error_code,
)
from sagemaker_vision.core.loadtest.workers import ProcessPool, check_processes

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

Engine = Literal["threads", "asyncio"]
ENGINES: tuple[str, ...] = ("threads", "asyncio")
# The load-test clients' User-Agent. Without one, botocore builds its standard header (SDK, OS,
# language, feature metadata, each part sanitised) twice per request: in a profiled asyncio worker
# at C=100, useragent.to_string took 0.82 of 5.1 s, and with this header the same 6 s sent 2,826
# requests instead of 1,830 -- CPU the load generator otherwise lacks. It also marks the load
# test's requests as such wherever the endpoint's traffic is looked at.
LOAD_TEST_USER_AGENT = f"sagemaker-vision-load-test/{__version__}"  # botocore appends its own name


def load_test_config(*, max_pool_connections: int, connect_timeout_s: float, read_timeout_s: float) -> Any:
    """The botocore config of every load-test client, whatever the engine: one attempt (throttling and
    errors are counted, not hidden in latency), the request timeout as read timeout, the fixed User-Agent."""
    return botocore_config(
        max_pool_connections=max_pool_connections,
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        user_agent=LOAD_TEST_USER_AGENT,
    )


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
    def from_hook(cls, hook: AwsBaseHook, **settings: Any) -> ClientSpec:
        """From an ``AwsBaseHook``: the connection's region, endpoint_url and credentials."""
        region = hook.region_name or hook.get_session().region_name
        return cls.from_session(hook.get_session(region_name=region), region_name=region,
                                endpoint_url=hook.conn_config.endpoint_url, **settings)

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "region_name": self.region_name,
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "aws_session_token": self.session_token,
            "config": load_test_config(max_pool_connections=self.max_pool_connections,
                                       connect_timeout_s=self.connect_timeout_s, read_timeout_s=self.read_timeout_s),
        }

    def boto3_client(self) -> Any:
        """A thread-safe boto3 client with a pool of ``max_pool_connections``."""
        return boto3.session.Session().client("sagemaker-runtime", **self._client_kwargs())

    def aiobotocore_client(self) -> Any:
        """An aiobotocore client context manager (``async with spec.aiobotocore_client() as c``)."""
        from aiobotocore.session import get_session  # lazy: only the asyncio engine's workers need it

        return get_session().create_client("sagemaker-runtime", **self._client_kwargs())


def boto3_invoker(client: Any, endpoint_name: str, *, target_variant: str | None = None) -> Invoke:
    """``invoke(body, content_type)`` making one InvokeEndpoint call on a shared client.

    The reply body is read to the end so latency covers the transfer and the connection goes
    back to the pool, then checked by :func:`check_reply`. Failures raise :class:`InvocationError`
    with the service error code (``ModelError``, ``ThrottlingException``...), ``Timeout``,
    ``ConnectionError`` or ``InvalidResponse``.
    """
    if not endpoint_name:
        raise ValueError("endpoint_name must be a non-empty string")
    base: dict[str, Any] = {"EndpointName": endpoint_name, "Accept": "application/json"}
    if target_variant:
        base["TargetVariant"] = target_variant

    def invoke(body: bytes, content_type: str) -> None:
        try:
            response = client.invoke_endpoint(Body=body, ContentType=content_type, **base)
            reply = response["Body"].read()
        except ClientError as exc:
            raise InvocationError(error_code(exc), str(exc)) from exc
        # Timeouts first: botocore's ConnectTimeoutError is also a connection error.
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise InvocationError(TIMEOUT_CODE, str(exc)) from exc
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise InvocationError("ConnectionError", str(exc)) from exc
        check_reply(reply)

    return invoke


def _async_error_code(exc: BaseException) -> str:
    """Like :func:`boto3_invoker`'s mapping, for aiobotocore's exceptions."""
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

    :func:`~sagemaker_vision.core.loadtest.engine.run_async_phase` on one aiobotocore client:
    the asyncio twin of the threads engine's phase, with the same budget, deadline, error codes
    and result, and the same check of every reply (:func:`check_reply`). Each request is cut off
    at ``request_timeout_s`` plus the engine's grace.
    """
    base: dict[str, Any] = {"EndpointName": endpoint_name, "Accept": "application/json"}
    if target_variant:
        base["TargetVariant"] = target_variant

    async def invoke(body: bytes, content_type: str) -> None:
        response = await client.invoke_endpoint(Body=body, ContentType=content_type, **base)
        async with response["Body"] as stream:
            reply = await stream.read()
        check_reply(reply)

    return await run_async_phase(invoke, payloads, concurrency=concurrency, max_requests=max_requests,
                                 seconds=seconds, request_timeout_s=request_timeout_s,
                                 payload_offset=payload_offset, classify=_async_error_code, clock=clock)


# --------------------------------------------------------------------------------------------
# Worker processes


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker is sent once (:class:`~sagemaker_vision.core.loadtest.workers.RunnerSetup`)."""

    spec: ClientSpec
    engine: str
    endpoint_name: str
    payloads: tuple[Payload, ...]
    request_timeout_s: float
    target_variant: str | None = None

    def open(self) -> _Runner:
        """In the worker: its one client, for its life."""
        return _Runner(self)


class _Runner:
    """Inside a worker: one client for the worker's life, one phase per request."""

    def __init__(self, setup: WorkerSetup) -> None:
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
            return run_phase(self.invoke, s.payloads, concurrency=concurrency, max_requests=max_requests,
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


class WorkerPool(ProcessPool):
    """``processes`` workers, each with one client; runs phases split across them."""

    def __init__(self, spec: ClientSpec, endpoint_name: str, payloads: Sequence[Payload], *,
                 processes: int = 2, engine: Engine = "asyncio", request_timeout_s: float = 60.0,
                 target_variant: str | None = None) -> None:
        check_processes(processes)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if not endpoint_name:
            raise ValueError("endpoint_name must be a non-empty string")
        setup = WorkerSetup(spec, engine, endpoint_name, tuple(payloads), request_timeout_s, target_variant)
        super().__init__(setup, processes=processes, request_timeout_s=request_timeout_s)

    def __enter__(self) -> WorkerPool:
        return self


def run_load_test_processes(
    config: LoadTestConfig,
    spec: ClientSpec,
    *,
    processes: int = 2,
    engine: Engine = "asyncio",
    target_variant: str | None = None,
    on_step: Callable[[StepResult], None] | None = None,
) -> LoadTestReport:
    """:func:`sagemaker_vision.core.loadtest.engine.run_load_test` over ``processes`` worker processes.

    Same phases and bounds (:func:`~sagemaker_vision.core.loadtest.engine.run_ramp`): a
    cold-start request on its own (the ramp is not run if it fails), the warm-up, then each step,
    every one split evenly across the workers and merged. Worker start-up (about a second each,
    in parallel) happens before the cold start is timed.
    """
    if spec.max_pool_connections < math.ceil(config.max_concurrency / processes):
        raise ValueError(f"max_pool_connections ({spec.max_pool_connections}) is below the largest worker share "
                         f"of concurrency {config.max_concurrency} over {processes} processes")
    # A worker beyond the largest step's concurrency would never get a request: do not start it.
    processes = min(processes, config.max_concurrency)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    with WorkerPool(spec, config.endpoint_name, config.payloads, processes=processes, engine=engine,
                    request_timeout_s=config.request_timeout_s, target_variant=target_variant) as pool:
        return run_ramp(pool.phase, config, on_step=on_step, started_at=started_at)


# --------------------------------------------------------------------------------------------
# The smoke test's call


def invoke_and_decode(
    client: Any,
    endpoint_name: str,
    image_bytes: bytes,
    content_type: str,
    class_map: ClassMap,
    *,
    min_score: float = 0.0,
    target_variant: str | None = None,
) -> list[Box]:
    """One ``InvokeEndpoint`` call on a ``sagemaker-runtime`` client, decoded into pixel boxes.

    The image size comes from the image header, so boxes land on the pixels that were sent.
    """
    if content_type not in set(CONTENT_TYPES.values()):
        raise ValueError(f"content_type must be one of {sorted(set(CONTENT_TYPES.values()))}, "
                         f"got {content_type!r}")
    width, height = image_size(image_bytes)
    request: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "Body": image_bytes,
        "ContentType": content_type,
        "Accept": "application/json",
    }
    if target_variant:
        request["TargetVariant"] = target_variant
    response = client.invoke_endpoint(**request)
    body = response["Body"].read()
    try:
        return decode_detections(
            body, class_map=class_map, image_width=width, image_height=height, min_score=min_score
        )
    except MalformedReply as exc:
        raise MalformedReply(f"endpoint {endpoint_name!r} returned a malformed reply: {exc}") from exc


__all__ = [
    "ENGINES",
    "ClientSpec",
    "WorkerPool",
    "WorkerSetup",
    "boto3_invoker",
    "invoke_and_decode",
    "run_load_test_processes",
    "run_phase_async",
]
