"""The load test's model: its config and bounds, phase results, the SLO and the sizing report.

Pure: no Airflow, no AWS call. The engines (:mod:`sagemaker_vision.core.loadtest.engine` in this
process, :mod:`sagemaker_vision.core.loadtest.workers` over worker processes) fill
:class:`StepResult`s; :class:`LoadTestReport` turns them into ``report.json``.

Sizing follows AWS's documented method for the ``SageMakerVariantInvocationsPerInstance``
target: ``MAX_RPS * SAFETY_FACTOR * 60``, with ``MAX_RPS`` per instance.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sagemaker_vision.core.inference import MalformedReply, parse_prediction
from sagemaker_vision.core.naming import LOAD_TEST_TAG as LOAD_TEST_TAG_KEY

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
# The opt-in tag: the deploy sets it (core/requests), the load test refuses an endpoint without it.
LOAD_TEST_TAG = (LOAD_TEST_TAG_KEY, "true")
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
    :func:`sagemaker_vision.core.inference.parse_prediction` (the smoke test's decoder) accepts it.
    """
    try:
        parse_prediction(body)
    except MalformedReply as exc:
        raise InvocationError(INVALID_RESPONSE_CODE, str(exc)) from None


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


def cold_start_error(endpoint_name: str, cold: StepResult) -> LoadTestError:
    """The error that stops a run whose cold-start request failed, with its code and message."""
    code, message = next(iter(cold.error_examples.items()), ("no reply", "the request did not finish"))
    message = message.removeprefix(f"{code}: ")  # InvocationError's text starts with its code
    return LoadTestError(f"cold-start request to endpoint {endpoint_name!r} failed with {code}: {message}; "
                         "not ramping up load against an endpoint that does not answer correctly")
