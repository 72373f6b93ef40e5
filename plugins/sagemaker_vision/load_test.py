"""Load-test a SageMaker real-time endpoint: the engine, its report and chart, and the operator.

The engine (:func:`run_load_test`) is plain threads around any ``invoke(body, content_type)``
callable, so it is tested without AWS. Against a real endpoint, :func:`boto3_invoker` makes that
callable from ONE shared ``sagemaker-runtime`` client: botocore clients are thread-safe, and a
pool of ``max_pool_connections >= concurrency`` keeps one keep-alive connection per worker.
Measured against ``benchmarks/stub_server.py`` on 2 cores, threads on one shared client reach
about 0.9 of the ideal rate at C=20 with a 50 ms service time and at C=200 with 500 ms; at
C=100 with 50 ms (2000 req/s ideal) the client's own CPU (signing, parsing, one GIL) is the
limit at about 0.3. Each step records ``client_cpu_ratio`` so a report says when that happened.

Sizing follows AWS's documented method for the ``SageMakerVariantInvocationsPerInstance``
target: ``MAX_RPS * SAFETY_FACTOR * 60``, with ``MAX_RPS`` per instance.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sagemaker_vision import aws
from sagemaker_vision import images as _images
from sagemaker_vision.inference import MalformedReply, content_type_for, image_size, parse_prediction

if TYPE_CHECKING:
    from os import PathLike

    from airflow.sdk import Context

log = logging.getLogger(__name__)

Invoke = Callable[[bytes, str], None]
Payload = tuple[str, bytes, str]

MAX_CONCURRENCY = 1000
MAX_STEP_SECONDS = 3600.0
# SageMaker's own limit on a real-time invocation is 60 s; a longer client timeout only hides hangs.
MAX_REQUEST_TIMEOUT_S = 60.0
# Slack on top of step_seconds + request_timeout_s before a worker stuck in invoke is abandoned.
JOIN_GRACE_S = 5.0
TIMEOUT_CODE = "Timeout"
# A 200 whose body is not the object-detection format: counted as an error, never as a success.
INVALID_RESPONSE_CODE = "InvalidResponse"
# Process CPU per wall second above which a step is reported as limited by the load generator.
CLIENT_CPU_LIMIT = 0.85
LOAD_TEST_TAG = ("load-test-allowed", "true")
# Real-time InvokeEndpoint rejects request bodies over 6 MiB (botocore BodyBlob max); serverless
# endpoints take 4 MB. The numbers and their sources live in sagemaker_vision.images.
MAX_PAYLOAD_BYTES = _images.REALTIME_MAX_BYTES
# What the common error codes mean, explained in the report for the codes a run saw; any other
# code is passed through unchanged.
KNOWN_ERROR_CODES = {
    "ModelError": "the model container answered with an error (HTTP 424)",
    "ModelNotReadyException": "the model is not ready to serve yet",
    "ThrottlingException": "the invocation rate exceeded the account or endpoint limit",
    "ServiceUnavailable": "the endpoint or service is temporarily unavailable (HTTP 503)",
    "InternalFailure": "SageMaker failed internally (HTTP 500)",
    "InternalDependencyException": "a SageMaker dependency failed (HTTP 530)",
    "ValidationError": "the request was rejected: wrong endpoint name, content type or payload",
    TIMEOUT_CODE: "no reply within the client timeout (connect or read)",
    INVALID_RESPONSE_CODE: "the endpoint answered, but not with the object-detection format "
                           '({"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]})',
    "ConnectionError": "the connection could not be made or was dropped",
}


class LoadTestError(RuntimeError):
    """The load test could not run (as opposed to running and missing its SLO)."""


class InvocationError(Exception):
    """One failed invocation, carrying the error code the report counts it under."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


def error_code(exc: BaseException) -> str:
    """The code an invocation failure is counted under.

    :class:`InvocationError` carries its code; anything shaped like a botocore ``ClientError``
    (a ``response`` dict with ``Error.Code``) gives that code; ``TimeoutError`` is ``Timeout``;
    anything else is counted by its exception type name.
    """
    if isinstance(exc, InvocationError):
        return exc.code
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if status:
            return f"HTTP{status}"
    if isinstance(exc, TimeoutError):
        return TIMEOUT_CODE
    return type(exc).__name__


def check_reply(body: bytes) -> None:
    """Raise :class:`InvocationError` ``InvalidResponse`` unless ``body`` decodes as detections.

    Both engines call it on every reply they read, so a reply is a success only when
    :func:`sagemaker_vision.inference.parse_prediction` (the smoke test's decoder) accepts it.
    """
    try:
        parse_prediction(body)
    except MalformedReply as exc:
        raise InvocationError(INVALID_RESPONSE_CODE, str(exc)) from None


def boto3_invoker(client: Any, endpoint_name: str, *, target_variant: str | None = None) -> Invoke:
    """``invoke(body, content_type)`` making one InvokeEndpoint call on a shared client.

    The reply body is read to the end so latency covers the transfer and the connection goes
    back to the pool, then checked by :func:`check_reply`. Failures raise :class:`InvocationError`
    with the service error code (``ModelError``, ``ThrottlingException``...), ``Timeout``,
    ``ConnectionError`` or ``InvalidResponse``.
    """
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

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


# --------------------------------------------------------------------------------------------
# Configuration


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class LoadTestConfig:
    """What to send, how hard, for how long, and what counts as passing."""

    endpoint_name: str
    concurrency_steps: tuple[int, ...]
    step_seconds: float
    max_requests_per_step: int
    payloads: tuple[Payload, ...] = field(repr=False)
    request_timeout_s: float = MAX_REQUEST_TIMEOUT_S
    warmup_requests: int = 5
    slo_p95_ms: float | None = None
    max_error_rate: float | None = None
    safety_factor: float = 0.5
    instance_count: int = 1

    def __post_init__(self) -> None:
        # Accept lists from callers and templates; store tuples so the config stays hashable-ish.
        if isinstance(self.concurrency_steps, list):
            object.__setattr__(self, "concurrency_steps", tuple(self.concurrency_steps))
        if isinstance(self.payloads, list):
            object.__setattr__(self, "payloads", tuple(tuple(p) for p in self.payloads))
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.endpoint_name, str) or not self.endpoint_name.strip():
            raise ValueError(f"endpoint_name must be a non-empty string, got {self.endpoint_name!r}")
        steps = self.concurrency_steps
        if not isinstance(steps, tuple) or not steps:
            raise ValueError(f"concurrency_steps must be a non-empty list of integers, got {steps!r}")
        for step in steps:
            if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= MAX_CONCURRENCY:
                raise ValueError(
                    f"concurrency_steps: {step!r} is not an integer in [1, {MAX_CONCURRENCY}]"
                )
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"concurrency_steps must be strictly ascending, got {list(steps)}")
        if not _is_number(self.step_seconds) or not 0 < self.step_seconds <= MAX_STEP_SECONDS:
            raise ValueError(f"step_seconds must be in (0, {MAX_STEP_SECONDS:g}], got {self.step_seconds!r}")
        if (isinstance(self.max_requests_per_step, bool) or not isinstance(self.max_requests_per_step, int)
                or self.max_requests_per_step < 1):
            raise ValueError(
                f"max_requests_per_step must be a positive integer, got {self.max_requests_per_step!r}"
            )
        if not _is_number(self.request_timeout_s) or not 0 < self.request_timeout_s <= MAX_REQUEST_TIMEOUT_S:
            raise ValueError(
                f"request_timeout_s must be in (0, {MAX_REQUEST_TIMEOUT_S:g}], got {self.request_timeout_s!r}"
            )
        if isinstance(self.warmup_requests, bool) or not isinstance(self.warmup_requests, int) \
                or self.warmup_requests < 0:
            raise ValueError(f"warmup_requests must be an integer >= 0, got {self.warmup_requests!r}")
        if not isinstance(self.payloads, tuple) or not self.payloads:
            raise ValueError("payloads must be a non-empty list of (name, bytes, content_type)")
        for index, payload in enumerate(self.payloads):
            if not (isinstance(payload, tuple) and len(payload) == 3):
                raise ValueError(
                    f"payloads[{index}] must be (name, bytes, content_type), got {type(payload).__name__}"
                )
            name, body, content_type = payload
            if not isinstance(body, bytes) or not body:
                raise ValueError(f"payloads[{index}] ({name!r}): body must be non-empty bytes")
            if not isinstance(content_type, str) or "/" not in content_type:
                raise ValueError(
                    f"payloads[{index}] ({name!r}): content_type {content_type!r} is not a MIME type"
                )
        if self.slo_p95_ms is not None and (not _is_number(self.slo_p95_ms) or self.slo_p95_ms <= 0):
            raise ValueError(f"slo_p95_ms must be a positive number or None, got {self.slo_p95_ms!r}")
        if self.max_error_rate is not None and (
            not _is_number(self.max_error_rate) or not 0 <= self.max_error_rate <= 1
        ):
            raise ValueError(f"max_error_rate must be in [0, 1] or None, got {self.max_error_rate!r}")
        if not _is_number(self.safety_factor) or not 0 < self.safety_factor <= 1:
            raise ValueError(f"safety_factor must be in (0, 1], got {self.safety_factor!r}")
        if isinstance(self.instance_count, bool) or not isinstance(self.instance_count, int) \
                or self.instance_count < 1:
            raise ValueError(f"instance_count must be a positive integer, got {self.instance_count!r}")

    @property
    def max_concurrency(self) -> int:
        """The largest step: the client pool must hold at least this many connections."""
        return self.concurrency_steps[-1]

    @property
    def has_slo(self) -> bool:
        """Whether any pass/fail threshold is set."""
        return self.slo_p95_ms is not None or self.max_error_rate is not None

    @property
    def worst_case_seconds(self) -> float:
        """Upper bound on the run's wall time: every phase is cut off at this budget."""
        per_phase = self.request_timeout_s + JOIN_GRACE_S
        warmup = (self.step_seconds + per_phase) if self.warmup_requests else 0.0
        return per_phase + warmup + len(self.concurrency_steps) * (self.step_seconds + per_phase)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary; payloads by name and size, never their bytes."""
        return {
            "endpoint_name": self.endpoint_name,
            "concurrency_steps": list(self.concurrency_steps),
            "step_seconds": self.step_seconds,
            "max_requests_per_step": self.max_requests_per_step,
            "request_timeout_s": self.request_timeout_s,
            "warmup_requests": self.warmup_requests,
            "slo_p95_ms": self.slo_p95_ms,
            "max_error_rate": self.max_error_rate,
            "safety_factor": self.safety_factor,
            "instance_count": self.instance_count,
            "payloads": [{"name": n, "bytes": len(b), "content_type": c} for n, b, c in self.payloads],
        }


# --------------------------------------------------------------------------------------------
# Results


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of ascending values: the smallest value with >= p% at or below it."""
    if not 0 < p <= 100:
        raise ValueError(f"p must be in (0, 100], got {p}")
    if not sorted_values:
        return None
    # round() guards against float error turning an exact rank like 19.0 into 19.000000000000004.
    rank = math.ceil(round(p * len(sorted_values) / 100, 9))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def _ms(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class StepResult:
    """One concurrency step. Latency percentiles cover successful requests only."""

    concurrency: int
    requests: int
    successes: int
    errors_by_code: dict[str, int]
    duration_s: float
    stopped_by: str  # "time" or "requests": which bound ended the step
    achieved_concurrency: float  # mean requests in flight (busy time / wall time)
    client_cpu_ratio: float  # CPU-seconds this process used per wall second; the GIL caps it near 1
    latencies_ms: tuple[float, ...] = field(repr=False, compare=False)
    error_examples: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def errors(self) -> int:
        """Failed requests of any code."""
        return self.requests - self.successes

    @property
    def error_rate(self) -> float:
        """Failed / sent; 0 when nothing was sent."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def throughput_rps(self) -> float:
        """Successful requests per second of step wall time."""
        return self.successes / self.duration_s if self.duration_s > 0 else 0.0

    def percentile_ms(self, p: float) -> float | None:
        """Nearest-rank latency percentile in ms, or None with no successes."""
        return percentile(self.latencies_ms, p)

    @property
    def p50_ms(self) -> float | None:
        return self.percentile_ms(50)

    @property
    def p90_ms(self) -> float | None:
        return self.percentile_ms(90)

    @property
    def p95_ms(self) -> float | None:
        return self.percentile_ms(95)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile_ms(99)

    @property
    def max_ms(self) -> float | None:
        return self.latencies_ms[-1] if self.latencies_ms else None

    @property
    def mean_ms(self) -> float | None:
        return sum(self.latencies_ms) / len(self.latencies_ms) if self.latencies_ms else None

    def breaches(self, slo_p95_ms: float | None, max_error_rate: float | None) -> list[str]:
        """Human-readable SLO misses with the measured numbers; empty when the step passed."""
        found: list[str] = []
        if slo_p95_ms is not None:
            if self.p95_ms is None:
                found.append(
                    f"C={self.concurrency}: no successful request, p95 unknown (SLO {slo_p95_ms:g} ms)"
                )
            elif self.p95_ms > slo_p95_ms:
                found.append(f"C={self.concurrency}: p95 {self.p95_ms:.1f} ms > SLO {slo_p95_ms:g} ms")
        if max_error_rate is not None and self.error_rate > max_error_rate:
            codes = ", ".join(f"{c}={n}" for c, n in sorted(self.errors_by_code.items()))
            found.append(
                f"C={self.concurrency}: error rate {self.error_rate:.2%} "
                f"({self.errors}/{self.requests}; {codes}) > max {max_error_rate:.2%}"
            )
        return found

    def summary(self) -> str:
        """One log line a person can follow during the run."""
        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1f}"

        errors = ", ".join(f"{c}={n}" for c, n in sorted(self.errors_by_code.items())) or "none"
        return (
            f"C={self.concurrency}: {self.requests} req in {self.duration_s:.1f} s "
            f"({self.throughput_rps:.1f} ok/s, stopped by {self.stopped_by}, "
            f"in flight {self.achieved_concurrency:.1f}, client CPU {self.client_cpu_ratio:.2f}), "
            f"p50 {fmt(self.p50_ms)} / p95 {fmt(self.p95_ms)} / "
            f"p99 {fmt(self.p99_ms)} / max {fmt(self.max_ms)} ms, errors {self.error_rate:.2%} ({errors})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe numbers; raw samples are left out."""
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "successes": self.successes,
            "errors": self.errors,
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "error_rate": round(self.error_rate, 6),
            "duration_s": round(self.duration_s, 3),
            "throughput_rps": round(self.throughput_rps, 3),
            "achieved_concurrency": round(self.achieved_concurrency, 2),
            "client_cpu_ratio": round(self.client_cpu_ratio, 3),
            "stopped_by": self.stopped_by,
            "p50_ms": _ms(self.p50_ms),
            "p90_ms": _ms(self.p90_ms),
            "p95_ms": _ms(self.p95_ms),
            "p99_ms": _ms(self.p99_ms),
            "max_ms": _ms(self.max_ms),
            "mean_ms": _ms(self.mean_ms),
            "error_examples": dict(sorted(self.error_examples.items())),
        }


@dataclass(frozen=True)
class LoadTestReport:
    """All steps plus the sizing they imply."""

    config: LoadTestConfig = field(repr=False)
    steps: tuple[StepResult, ...]
    cold_start_ms: float
    warmup: StepResult | None = None
    started_at: str = ""

    @property
    def endpoint_name(self) -> str:
        return self.config.endpoint_name

    @property
    def total_requests(self) -> int:
        return sum(s.requests for s in self.steps)

    @property
    def total_successes(self) -> int:
        return sum(s.successes for s in self.steps)

    @property
    def total_errors_by_code(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for step in self.steps:
            totals.update(step.errors_by_code)
        return dict(sorted(totals.items()))

    @property
    def total_duration_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    def step_passed(self, step: StepResult) -> bool:
        """Whether a step met every configured SLO (always true with none configured)."""
        return not step.breaches(self.config.slo_p95_ms, self.config.max_error_rate)

    @property
    def max_sustainable_rps(self) -> float:
        """Highest step throughput that met the SLO (any step when no SLO is set); 0 if none did."""
        passing = [s.throughput_rps for s in self.steps if self.step_passed(s)]
        return max(passing, default=0.0)

    @property
    def max_sustainable_rps_per_instance(self) -> float:
        return self.max_sustainable_rps / self.config.instance_count

    @property
    def recommended_invocations_per_instance(self) -> float:
        """Target for ``SageMakerVariantInvocationsPerInstance``: per-instance MAX_RPS x SAFETY x 60."""
        return self.max_sustainable_rps_per_instance * self.config.safety_factor * 60

    def slo_breaches(self) -> list[str]:
        """Every step's SLO misses, with the numbers."""
        return [b for s in self.steps for b in s.breaches(self.config.slo_p95_ms, self.config.max_error_rate)]

    def notes(self) -> list[str]:
        """Caveats a reader needs to trust the sizing: client-bound steps, an open-ended ramp."""
        notes = []
        for step in self.steps:
            # Python threads share one GIL: near one CPU-second per second the client is the bottleneck
            # and its own queueing shows up as endpoint latency.
            if step.client_cpu_ratio >= CLIENT_CPU_LIMIT:
                notes.append(
                    f"C={step.concurrency}: the load generator used {step.client_cpu_ratio:.2f} CPU-s per s "
                    "(Python threads top out near 1.0); latency and throughput at this step measure the "
                    "client, not the endpoint -- spread the load over more workers"
                )
            elif step.requests and step.achieved_concurrency < 0.8 * step.concurrency:
                notes.append(
                    f"C={step.concurrency}: only {step.achieved_concurrency:.1f} requests were in flight on "
                    "average; the load generator (client CPU or request budget), not the endpoint, may "
                    "have limited this step"
                )
        if self.steps and self.step_passed(self.steps[-1]) and self.config.has_slo:
            notes.append(
                f"the highest step (C={self.steps[-1].concurrency}) still met the SLO: the endpoint may "
                "sustain more; extend concurrency_steps to find its limit"
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe report, the shape written to report.json and pushed to XCom."""
        return {
            "endpoint_name": self.endpoint_name,
            "started_at": self.started_at,
            "config": self.config.to_dict(),
            "cold_start_ms": _ms(self.cold_start_ms),
            "warmup": self.warmup.to_dict() if self.warmup else None,
            "steps": [
                {**s.to_dict(), "slo_met": self.step_passed(s) if self.config.has_slo else None}
                for s in self.steps
            ],
            "totals": {
                "requests": self.total_requests,
                "successes": self.total_successes,
                "errors_by_code": self.total_errors_by_code,
                "duration_s": round(self.total_duration_s, 3),
            },
            "max_sustainable_rps": round(self.max_sustainable_rps, 3),
            "max_sustainable_rps_per_instance": round(self.max_sustainable_rps_per_instance, 3),
            "recommended_invocations_per_instance": round(self.recommended_invocations_per_instance, 1),
            "slo_breaches": self.slo_breaches(),
            "notes": self.notes(),
            "error_codes_explained": {
                code: KNOWN_ERROR_CODES[code]
                for code in self.total_errors_by_code
                if code in KNOWN_ERROR_CODES
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


# --------------------------------------------------------------------------------------------
# Engine


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
class _Worker:
    records: list[tuple[float, str | None]] = field(default_factory=list)
    examples: dict[str, str] = field(default_factory=dict)
    in_flight: bool = False


def _run_phase(
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
    workers = [_Worker() for _ in range(concurrency)]
    start = clock()
    deadline = start + seconds
    cpu_start, wall_start = time.process_time(), time.monotonic()

    def work(state: _Worker) -> None:
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


def cold_start_error(endpoint_name: str, cold: StepResult) -> LoadTestError:
    """The error that stops a run whose cold-start request failed, with its code and message."""
    code, message = next(iter(cold.error_examples.items()), ("no reply", "the request did not finish"))
    message = message.removeprefix(f"{code}: ")  # InvocationError's text starts with its code
    return LoadTestError(f"cold-start request to endpoint {endpoint_name!r} failed with {code}: {message}; "
                         "not ramping up load against an endpoint that does not answer correctly")


def run_load_test(
    invoke: Invoke,
    config: LoadTestConfig,
    *,
    clock: Callable[[], float] = time.perf_counter,
    on_step: Callable[[StepResult], None] | None = None,
) -> LoadTestReport:
    """Cold-start probe, warm-up, then each concurrency step in turn.

    ``invoke(body, content_type)`` makes one request and raises on failure (see
    :func:`error_code` for how failures are counted). It must enforce its own timeout of about
    ``config.request_timeout_s``; a call still running past that plus a grace period is counted
    as ``Timeout`` and abandoned, so the whole run never exceeds ``config.worst_case_seconds``.
    The first request is timed on its own as the cold start; if it fails the ramp is not run.
    ``on_step`` is called with each step as it finishes.
    """
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    phase = {"invoke": invoke, "payloads": config.payloads, "request_timeout_s": config.request_timeout_s,
             "clock": clock}
    sent = 0

    cold = _run_phase(concurrency=1, max_requests=1, seconds=config.request_timeout_s,
                      payload_offset=0, **phase)
    sent += cold.requests
    if cold.successes != 1:
        raise cold_start_error(config.endpoint_name, cold)
    cold_start_ms = cold.latencies_ms[0]
    log.info("cold start: %.1f ms", cold_start_ms)

    warmup = None
    if config.warmup_requests:
        warmup = _run_phase(concurrency=min(config.warmup_requests, config.concurrency_steps[0]),
                            max_requests=config.warmup_requests, seconds=config.step_seconds,
                            payload_offset=sent, **phase)
        sent += warmup.requests
        log.info("warm-up (not counted): %s", warmup.summary())

    steps = []
    for concurrency in config.concurrency_steps:
        step = _run_phase(concurrency=concurrency, max_requests=config.max_requests_per_step,
                          seconds=config.step_seconds, payload_offset=sent, **phase)
        sent += step.requests
        steps.append(step)
        if on_step is not None:
            on_step(step)
    return LoadTestReport(config=config, steps=tuple(steps), cold_start_ms=cold_start_ms, warmup=warmup,
                          started_at=started_at)


# --------------------------------------------------------------------------------------------
# Chart


def render_chart(report: LoadTestReport, path_or_fileobj: str | PathLike[str] | IO[bytes]) -> None:
    """PNG: p50/p95/p99 latency per step (left axis) and throughput (right axis).

    Uses matplotlib's object API on the Agg canvas: no pyplot global state, safe in worker
    threads, and nothing imported until a chart is drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not report.steps:
        raise ValueError("report has no steps to chart")
    positions = list(range(len(report.steps)))
    labels = [
        f"C={s.concurrency}" + (f"\nerr {s.error_rate:.1%}" if s.errors else "") for s in report.steps
    ]
    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for p, style in ((50, "o-"), (95, "s-"), (99, "^-")):
        values = [s.percentile_ms(p) for s in report.steps]
        ax.plot(positions, [math.nan if v is None else v for v in values], style, label=f"p{p} latency")
    if report.config.slo_p95_ms is not None:
        slo = report.config.slo_p95_ms
        ax.axhline(slo, color="red", linestyle=":", label=f"p95 SLO {slo:g} ms")
    ax.set_xticks(positions, labels)
    ax.set_xlabel("concurrency step")
    ax.set_ylabel("latency (ms)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)

    rps_ax = ax.twinx()
    rps_ax.plot(positions, [s.throughput_rps for s in report.steps], "d--", color="tab:gray",
                label="throughput")
    rps_ax.set_ylabel("throughput (successful req/s)")
    rps_ax.set_ylim(bottom=0)

    handles, names = ax.get_legend_handles_labels()
    more_handles, more_names = rps_ax.get_legend_handles_labels()
    ax.legend(handles + more_handles, names + more_names, loc="upper left", fontsize="small")
    ax.set_title(
        f"{report.endpoint_name}: max sustainable {report.max_sustainable_rps:.1f} req/s, "
        f"cold start {report.cold_start_ms:.0f} ms",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path_or_fileobj, format="png")


# --------------------------------------------------------------------------------------------
# Payloads and S3


def parse_s3_uri(uri: str, field_name: str) -> tuple[str, str]:
    """``(bucket, key_or_prefix)`` from ``s3://bucket/key``; errors name the field."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"{field_name} must be an s3:// URI, got {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{field_name} has no bucket: {uri!r}")
    return bucket, key


def _limit(max_bytes: int | None) -> int:
    return MAX_PAYLOAD_BYTES if max_bytes is None else max_bytes


def _too_large(name: str, size: int, max_bytes: int | None) -> ValueError:
    limit = _limit(max_bytes)
    kind = "serverless" if limit == _images.SERVERLESS_MAX_BYTES else "real-time"
    return ValueError(f"payload {name!r} is {size} bytes, over the {limit} byte {kind} InvokeEndpoint limit")


def _check_payload(name: str, body: bytes, max_bytes: int | None = None) -> Payload:
    if len(body) > _limit(max_bytes):
        raise _too_large(name, len(body), max_bytes)
    if not body:
        raise ValueError(f"payload {name!r} is empty (0 bytes)")
    try:
        image_size(body)
    except ValueError as exc:
        raise ValueError(f"payload {name!r}: {exc}") from None
    return name, body, content_type_for(name)


def payload_limit(description: Mapping[str, Any]) -> int:
    """The largest body a described endpoint takes: 4 MB if a variant is serverless, else 6 MiB."""
    variants = description.get("ProductionVariants") or []
    serverless = any(v.get("CurrentServerlessConfig") or v.get("DesiredServerlessConfig") for v in variants)
    return _images.max_bytes_for("serverless" if serverless else "provisioned")


def _is_image_name(name: str) -> bool:
    try:
        content_type_for(name)
    except ValueError:
        return False
    return True


def _manifest_payloads(source: str, s3_client: Any, max_payloads: int, max_bytes: int | None) -> list[Payload]:
    """The images an augmented manifest names (its ``source-ref``s, sorted): the pipeline passes its
    validation split, so only images that validated and were labeled are sent, never a bad file
    the sync left in the partition."""
    from sagemaker_vision import labels

    bucket, key = parse_s3_uri(source, "payload_prefix")
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    found: set[str] = set()
    # The one manifest reader and parser: a bad line is named by file, line and field.
    for lineno, raw in enumerate(labels.iter_lines(body, chunk_size=1 << 16, source=source), start=1):
        rec = labels.load_line(raw, source=source, lineno=lineno)
        if rec is None:
            continue
        if not isinstance(rec.get("source-ref"), str):
            raise ValueError(f"{source}:{lineno}: source-ref: missing or not a string")
        found.add(rec["source-ref"])
    refs = sorted(found)[:max_payloads]
    if not refs:
        raise ValueError(f"payload_prefix {source!r} names no images")
    payloads = []
    for uri in refs:
        ref_bucket, ref_key = parse_s3_uri(uri, f"source-ref in {source}")
        body = s3_client.get_object(Bucket=ref_bucket, Key=ref_key)["Body"].read()
        payloads.append(_check_payload(uri, body, max_bytes))
    return payloads


# Project root (the folder holding include/), for relative local payload paths.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def load_payloads(source: str, *, s3_client: Any = None, max_payloads: int = 20,
                  max_list_pages: int = 50, max_bytes: int | None = None) -> list[Payload]:
    """Up to ``max_payloads`` JPEG/PNG images, sorted by name, from an s3:// prefix or a local dir.

    A relative local path is tried against the working directory, then the project root, so
    ``include/sample_data/images`` works wherever the worker runs. Listing S3 stops after
    ``max_list_pages`` pages of 1000 keys. Each image is checked to decode, so a corrupt file
    fails here, naming it, rather than as thousands of ModelErrors; so does an empty file or one
    over ``max_bytes`` (default: the real-time limit; :func:`payload_limit` gives an endpoint's).
    """
    if isinstance(max_payloads, bool) or not isinstance(max_payloads, int) or max_payloads < 1:
        raise ValueError(f"max_payloads must be a positive integer, got {max_payloads!r}")
    if isinstance(source, str) and source.startswith("s3://") and source.endswith(".manifest"):
        if s3_client is None:
            raise ValueError("payload_prefix is an s3:// URI but no S3 client was given")
        return _manifest_payloads(source, s3_client, max_payloads, max_bytes)
    if isinstance(source, str) and source.startswith("s3://"):
        if s3_client is None:
            raise ValueError("payload_prefix is an s3:// URI but no S3 client was given")
        bucket, prefix = parse_s3_uri(source, "payload_prefix")
        found: list[tuple[str, int]] = []
        paginator = s3_client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix,
                                   PaginationConfig={"PageSize": 1000, "MaxItems": 1000 * max_list_pages})
        for page in pages:
            found.extend((o["Key"], o["Size"]) for o in page.get("Contents", []) if _is_image_name(o["Key"]))
            if len(found) >= max_payloads:
                break
        found = sorted(found)[:max_payloads]
        if not found:
            raise ValueError(f"payload_prefix {source!r} holds no .jpg/.jpeg/.png objects")
        payloads = []
        for key, size in found:
            uri = f"s3://{bucket}/{key}"
            if size > _limit(max_bytes):  # checked from the listing, before downloading it
                raise _too_large(uri, size, max_bytes)
            payloads.append(_check_payload(uri, s3_client.get_object(Bucket=bucket, Key=key)["Body"].read(),
                                           max_bytes))
        return payloads

    if not isinstance(source, str | Path) or not str(source):
        raise ValueError(f"payload_prefix must be an s3:// prefix or a local directory, got {source!r}")
    directory = Path(source)
    if not directory.is_absolute() and not directory.is_dir():
        directory = _PROJECT_ROOT / directory
    if not directory.is_dir():
        raise ValueError(
            f"payload_prefix {str(source)!r} is neither an s3:// prefix nor an existing directory"
        )
    files = sorted(p for p in directory.iterdir() if p.is_file() and _is_image_name(p.name))[:max_payloads]
    if not files:
        raise ValueError(f"payload_prefix {str(directory)!r} holds no .jpg/.jpeg/.png files")
    payloads = []
    for path in files:
        if path.stat().st_size > _limit(max_bytes):
            raise _too_large(str(path), path.stat().st_size, max_bytes)
        payloads.append(_check_payload(path.name, path.read_bytes(), max_bytes))
    return payloads


def endpoint_allows_load_test(sagemaker_client: Any, endpoint_arn: str, *, max_pages: int = 10) -> bool:
    """Whether the endpoint carries the tag ``load-test-allowed=true`` (value case-insensitive)."""
    key, wanted = LOAD_TEST_TAG
    token: str | None = None
    for _ in range(max_pages):  # an endpoint has at most 50 tags; the bound is belt and braces
        kwargs: dict[str, Any] = {"ResourceArn": endpoint_arn, "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        response = sagemaker_client.list_tags(**kwargs)
        for tag in response.get("Tags", []):
            if tag.get("Key") == key:
                return str(tag.get("Value", "")).strip().lower() == wanted
        token = response.get("NextToken")
        if not token:
            return False
    return False


# --------------------------------------------------------------------------------------------
# Operator


def _as_number(value: Any, field_name: str, kind: type = float) -> Any:
    """A number from a literal or a rendered template string (``"60"``, ``"2.5"``); None stays None.

    Templates render to strings unless the DAG renders native objects, so ``"500"`` and
    ``"500.0"`` are both accepted where an integer is wanted; ``"12.5"`` is not.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if not isinstance(value, str):
        return value
    expected = "an integer" if kind is int else "a number"
    try:
        number = float(value.strip())
    except ValueError:
        raise ValueError(f"{field_name} must be {expected}, got {value!r}") from None
    if kind is int:
        if not number.is_integer():
            raise ValueError(f"{field_name} must be {expected}, got {value!r}")
        return int(number)
    return number


def _as_bool(value: Any, field_name: str) -> bool:
    """Booleans, or the strings a template renders them to ("True", "false")."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "", "none"):
        return False
    raise ValueError(f"{field_name} must be true or false, got {value!r}")


def _as_steps(value: Any) -> tuple[Any, ...]:
    """Concurrency steps from a list (of ints or rendered strings), ``"[1, 5, 10]"``, ``"1,5,10"`` or ``5``.

    Only the shape is fixed here; :class:`LoadTestConfig` checks the values.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"concurrency_steps must be a list of integers, got {text!r}") from None
        else:
            value = [v for v in text.split(",") if v.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f"concurrency_steps must be a list of integers, got {value!r}")
    return tuple(_as_number(v, f"concurrency_steps[{i}]", int) if isinstance(v, str) else v
                 for i, v in enumerate(value))


class LoadTestOperator(BaseOperator):
    """Load-test a SageMaker endpoint with a stepped concurrency ramp and publish the report.

    Refuses an endpoint not tagged ``load-test-allowed=true`` unless ``force=True``. Writes
    ``report.json`` and ``chart.png`` under ``report_s3_prefix`` (template it with the run id
    to keep every run), returns the report dict, and fails with the numbers when a step
    breaches ``slo_p95_ms`` or ``max_error_rate`` -- after the report is written.

    :param endpoint_name: endpoint to load; must be InService.
    :param payload_prefix: ``s3://`` prefix or local directory of JPEG/PNG images, or an
        ``s3://….manifest`` augmented manifest whose ``source-ref`` images to send; cycled.
    :param concurrency_steps: ascending concurrent-request levels, each held ``step_seconds``.
    :param max_requests_per_step: hard cap on requests in one step, whatever the time left.
    :param slo_p95_ms: p95 latency every step must meet; None for no latency SLO.
    :param max_error_rate: error share every step must stay under; None for no error SLO.
    :param report_s3_prefix: ``s3://bucket/prefix`` for report.json and chart.png.
    :param force: load-test an endpoint that lacks the ``load-test-allowed=true`` tag.
    :param engine: ``asyncio`` on aiobotocore, spread over ``processes`` worker processes (the
        default: the tester is not the bottleneck at high concurrency), or ``threads`` on one
        shared client (lighter to start; fine below ~50 concurrent requests).
    :param processes: worker processes for the ``asyncio`` engine.
    :param fail_on_slo_breach: raise on a breach (True) or only report it (False), e.g. when
        the ramp deliberately goes past the knee to find ``max_sustainable_rps``.
    """

    template_fields = (
        "endpoint_name", "payload_prefix", "concurrency_steps", "step_seconds",
        "max_requests_per_step", "slo_p95_ms", "max_error_rate", "report_s3_prefix", "force",
        "aws_conn_id", "region_name",
    )
    ui_color = "#f4d6a0"

    def __init__(
        self,
        *,
        endpoint_name: str,
        payload_prefix: str,
        report_s3_prefix: str,
        concurrency_steps: Sequence[int] | str = (1, 5, 10, 20),
        step_seconds: float | str = 60.0,
        max_requests_per_step: int | str = 10_000,
        slo_p95_ms: float | str | None = None,
        max_error_rate: float | str | None = 0.01,
        request_timeout_s: float = MAX_REQUEST_TIMEOUT_S,
        warmup_requests: int = 5,
        max_payloads: int = 20,
        safety_factor: float = 0.5,
        force: bool = False,
        fail_on_slo_breach: bool = True,
        engine: str = "asyncio",
        processes: int = 2,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint_name = endpoint_name
        self.payload_prefix = payload_prefix
        self.report_s3_prefix = report_s3_prefix
        self.concurrency_steps = concurrency_steps
        self.step_seconds = step_seconds
        self.max_requests_per_step = max_requests_per_step
        self.slo_p95_ms = slo_p95_ms
        self.max_error_rate = max_error_rate
        self.request_timeout_s = request_timeout_s
        self.warmup_requests = warmup_requests
        self.max_payloads = max_payloads
        self.safety_factor = safety_factor
        self.force = force
        if engine not in ("threads", "asyncio"):
            raise ValueError(f"engine must be 'threads' or 'asyncio', got {engine!r}")
        if not isinstance(processes, int) or processes < 1 or (engine == "threads" and processes != 1):
            raise ValueError(f"processes must be >= 1 (and 1 for the threads engine), got {processes!r}")
        self.engine = engine
        self.processes = processes
        self.fail_on_slo_breach = fail_on_slo_breach
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @cached_property
    def _max_concurrency(self) -> int:
        # The pool must hold one connection per worker of the largest step.
        steps = [s for s in _as_steps(self.concurrency_steps) if isinstance(s, int)]
        return max(steps, default=1)

    @cached_property
    def client(self) -> Any:
        """The shared sagemaker-runtime client: one pooled connection per worker thread.

        Retries are off so throttling and errors show up in the report instead of hiding in
        latency, and the read timeout is the request timeout.
        """
        config = aws.botocore_config(
            max_pool_connections=self._max_concurrency,
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=min(10.0, float(self.request_timeout_s)),
            read_timeout=float(self.request_timeout_s),
        )
        hook = aws.hook("sagemaker-runtime", self.aws_conn_id, self.region_name)
        return hook.get_client_type(region_name=hook.region_name, config=config)

    @cached_property
    def sagemaker_client(self) -> Any:
        return aws.client("sagemaker", self.aws_conn_id, self.region_name)

    @cached_property
    def s3_client(self) -> Any:
        return aws.client("s3", self.aws_conn_id, self.region_name)

    def build_config(self, payloads: Sequence[Payload], instance_count: int) -> LoadTestConfig:
        """Validated engine config from the (rendered) operator arguments."""
        return LoadTestConfig(
            endpoint_name=self.endpoint_name,
            concurrency_steps=_as_steps(self.concurrency_steps),
            step_seconds=_as_number(self.step_seconds, "step_seconds"),
            max_requests_per_step=_as_number(self.max_requests_per_step, "max_requests_per_step", int),
            payloads=tuple(payloads),
            request_timeout_s=self.request_timeout_s,
            warmup_requests=self.warmup_requests,
            slo_p95_ms=_as_number(self.slo_p95_ms, "slo_p95_ms"),
            max_error_rate=_as_number(self.max_error_rate, "max_error_rate"),
            safety_factor=self.safety_factor,
            instance_count=instance_count,
        )

    def _check_endpoint(self) -> int:
        """Refuse an endpoint that is not InService or not opted in; returns its instance count.

        Also sets ``payload_limit``, the largest body this endpoint takes (4 MB serverless, 6 MiB
        otherwise), which every payload is checked against before the first request.
        """
        description = self.sagemaker_client.describe_endpoint(EndpointName=self.endpoint_name)
        status = description.get("EndpointStatus")
        if status != "InService":
            raise AirflowException(
                f"endpoint {self.endpoint_name!r} is {status}, not InService"
                + (f": {description['FailureReason']}" if description.get("FailureReason") else "")
            )
        arn = description["EndpointArn"]
        key, value = LOAD_TEST_TAG
        if not endpoint_allows_load_test(self.sagemaker_client, arn):
            if not _as_bool(self.force, "force"):
                # No retry: the tag will not appear by itself.
                raise AirflowFailException(
                    f"refusing to load-test endpoint {self.endpoint_name!r}: it is not tagged "
                    f"{key}={value}. Tag it (add-tags --resource-arn {arn} --tags Key={key},Value={value}) "
                    "or pass force=True."
                )
            self.log.warning("endpoint %s lacks the %s=%s tag; load-testing it because force=True",
                             self.endpoint_name, key, value)
        variants = description.get("ProductionVariants") or []
        self.payload_limit = payload_limit(description)
        return max(1, sum(int(v.get("CurrentInstanceCount") or 0) for v in variants))

    def execute(self, context: Context) -> dict[str, Any]:
        report_bucket, report_prefix = parse_s3_uri(self.report_s3_prefix, "report_s3_prefix")
        # Validate every number before any AWS call, with a placeholder payload; the real payloads
        # and instance count replace it (and are validated) once fetched.
        config = self.build_config([("placeholder.jpg", b"\xff", "image/jpeg")], 1)
        instance_count = self._check_endpoint()
        payloads = load_payloads(self.payload_prefix, s3_client=self.s3_client,
                                 max_payloads=self.max_payloads, max_bytes=self.payload_limit)
        config = dataclasses.replace(config, payloads=tuple(payloads), instance_count=instance_count)
        self.log.info(
            "load-testing %s (%d instance(s)): steps %s x %.0f s, <= %d requests/step, %d payload(s); "
            "bounded to %.0f s",
            config.endpoint_name, instance_count, list(config.concurrency_steps), config.step_seconds,
            config.max_requests_per_step, len(payloads), config.worst_case_seconds,
        )
        def on_step(step: StepResult) -> None:
            self.log.info("step done: %s", step.summary())

        try:
            if self.engine == "threads":
                report = run_load_test(boto3_invoker(self.client, config.endpoint_name), config, on_step=on_step)
            else:
                # Past ~50 concurrent requests one client's CPU is the limit (benchmarks/README.md):
                # asyncio workers in several processes keep the tester from being the bottleneck.
                from sagemaker_vision.load_engine_mp import ClientSpec, run_load_test_processes

                spec = ClientSpec.from_hook(
                    aws.hook("sagemaker-runtime", self.aws_conn_id, self.region_name),
                    max_pool_connections=max(config.concurrency_steps),
                    connect_timeout_s=min(10.0, float(config.request_timeout_s)),
                    read_timeout_s=float(config.request_timeout_s),
                )
                report = run_load_test_processes(config, spec, processes=self.processes, engine=self.engine,
                                                 on_step=on_step)
        except LoadTestError as exc:
            raise AirflowException(str(exc)) from exc

        base = report_prefix.rstrip("/") + "/" if report_prefix.strip("/") else ""
        report_key, chart_key = f"{base}report.json", f"{base}chart.png"
        chart = io.BytesIO()
        render_chart(report, chart)
        self.s3_client.put_object(Bucket=report_bucket, Key=report_key, Body=report.to_json().encode(),
                                  ContentType="application/json")
        self.s3_client.put_object(Bucket=report_bucket, Key=chart_key, Body=chart.getvalue(),
                                  ContentType="image/png")
        result = report.to_dict()
        result["report_uri"] = f"s3://{report_bucket}/{report_key}"
        result["chart_uri"] = f"s3://{report_bucket}/{chart_key}"
        self.log.info("report: %s", result["report_uri"])
        self.log.info("chart: %s", result["chart_uri"])
        self.log.info(
            "max sustainable %.1f req/s (%.1f per instance), cold start %.0f ms -> "
            "SageMakerVariantInvocationsPerInstance target %.0f (safety factor %g)",
            report.max_sustainable_rps, report.max_sustainable_rps_per_instance, report.cold_start_ms,
            report.recommended_invocations_per_instance, config.safety_factor,
        )
        for note in report.notes():
            self.log.warning("note: %s", note)

        breaches = report.slo_breaches()
        if breaches and self.fail_on_slo_breach:
            # No retry: a rerun that happens to pass would hide the breach the report records.
            raise AirflowFailException(
                f"endpoint {config.endpoint_name!r} breached its SLO at {len(breaches)} point(s): "
                + "; ".join(breaches) + f" (report {result['report_uri']})"
            )
        return result
