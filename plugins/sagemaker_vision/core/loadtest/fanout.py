"""The fanned-out load test: the plan, the step schedule on S3's clock, the per-step envelopes, the merge.

Pure: no Airflow, no AWS call. A plan task splits every concurrency step over ``load_workers``
mapped worker tasks (:func:`plan_fanout`); each worker runs its share of each step and writes
one JSON envelope per step to S3 (:class:`StepEnvelope`: its counts, errors by code, start and
end on S3's clock, and its latency histogram in HdrHistogram's wire format); a reduce task reads
them all, checks them (:func:`parse_envelope` names the file and field of anything wrong) and
merges each step exactly (:func:`merge_step`).

Steps start together. The plan fixes step 0's start on S3's clock, ``start_lead_s`` after it
planned (long enough for the executor to start every worker). Step ``k + 1`` starts
:data:`SYNC_GAP_S` after the LAST worker's step ``k`` ended, a time every worker computes alike
from the step ``k`` envelopes it waits for (:func:`next_step_start`). Every wait is bounded:
a worker that reaches a step more than :data:`START_TOLERANCE_S` after its start fails
(:func:`check_on_time`; it was started too late, e.g. by an executor with no free slot, or
by ``airflow dags test``, which runs mapped tasks one after another), and a worker whose peers'
envelopes are missing at :func:`results_deadline` fails naming them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from sagemaker_vision.core.loadtest import histogram as hist
from sagemaker_vision.core.loadtest.engine import split_phase
from sagemaker_vision.core.loadtest.histogram import HistogramStep
from sagemaker_vision.core.loadtest.model import JOIN_GRACE_S, LoadTestError, LoadTestReport, StepResult

ENVELOPE_FORMAT = "sagemaker-vision/load-test-step/v1"
PLAN_FORMAT = "sagemaker-vision/load-test-plan/v1"
MAX_LOAD_WORKERS = 16
# An envelope's histogram encodes to at most ~205 KiB (histogram.wire_limits); the rest is counts and
# at most one 300-character example per error code. Anything bigger is not a worker's: refused unread.
MAX_ENVELOPE_BYTES = 1024 * 1024
# A worker may begin a step at most this long after its start: beyond it the steps are not together.
START_TOLERANCE_S = 1.0
# Between the last worker's end of a step and the next step's start: time for every worker to list it.
SYNC_GAP_S = 2.0
# After a step's longest possible run: time for the slowest worker to build and write its envelope.
WRITE_MARGIN_S = 15.0
# How long a plan may leave for the executor to start the workers, at most.
MAX_START_LEAD_S = 600.0


# --------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class FanoutPlan:
    """Who sends what, when the first step starts (S3 epoch seconds), and where the envelopes go."""

    bucket: str
    prefix: str  # ends with "/": envelopes under <prefix>step-NNN/, abort markers under <prefix>abort/ (fixed per run)
    steps: tuple[int, ...]  # each step's total concurrency
    shares: tuple[tuple[tuple[int, int], ...], ...]  # shares[worker][step] = (concurrency, requests)
    step_seconds: float
    request_timeout_s: float
    first_start: float
    workers_requested: int

    @property
    def workers(self) -> int:
        return len(self.shares)

    @property
    def plan_id(self) -> str:
        """Names this plan in every envelope: a rerun overwrites the same keys, and an envelope of an
        earlier plan left there is never read as this one's."""
        return f"{self.first_start:.0f}"

    def share(self, worker: int, step: int) -> tuple[int, int]:
        return self.shares[worker][step]

    def payload_offset(self, worker: int, step: int) -> int:
        """Where a worker's share of a step starts in the payload cycle: no two workers send in lockstep."""
        earlier = sum(s[1] for shares in self.shares for s in shares[:step])
        return earlier + sum(self.shares[w][step][1] for w in range(worker))

    def to_dict(self) -> dict[str, Any]:
        return {"format": PLAN_FORMAT, "bucket": self.bucket, "prefix": self.prefix, "steps": list(self.steps),
                "shares": [[list(s) for s in worker] for worker in self.shares],
                "step_seconds": self.step_seconds, "request_timeout_s": self.request_timeout_s,
                "first_start": self.first_start, "workers_requested": self.workers_requested}

    @classmethod
    def from_dict(cls, data: Any) -> FanoutPlan:
        """The plan a worker or the reduce was handed (an XCom), checked; ``ValueError`` naming the field."""
        if not isinstance(data, Mapping) or data.get("format") != PLAN_FORMAT:
            got = repr(data.get("format")) if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"load test plan: expected a mapping with format {PLAN_FORMAT!r}, got {got}")
        try:
            shares = tuple(tuple((int(c), int(r)) for c, r in worker) for worker in data["shares"])
            plan = cls(bucket=str(data["bucket"]), prefix=str(data["prefix"]),
                       steps=tuple(int(s) for s in data["steps"]), shares=shares,
                       step_seconds=float(data["step_seconds"]), request_timeout_s=float(data["request_timeout_s"]),
                       first_start=float(data["first_start"]), workers_requested=int(data["workers_requested"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"load test plan: missing or malformed field ({type(exc).__name__}: {exc})") from None
        if not plan.shares or any(len(w) != len(plan.steps) for w in plan.shares):
            raise ValueError("load test plan: shares must give every worker one (concurrency, requests) per step")
        for k, total in enumerate(plan.steps):
            if sum(w[k][0] for w in plan.shares) != total:
                raise ValueError(f"load test plan: step {k}: the workers' concurrency does not add up to {total}")
        return plan


def plan_fanout(*, load_workers: int, concurrency_steps: Sequence[int], max_requests_per_step: int,
                step_seconds: float, request_timeout_s: float, s3_now: float, start_lead_s: float,
                bucket: str, prefix: str) -> FanoutPlan:
    """Split every step over the workers and fix step 0's start ``start_lead_s`` after ``s3_now``.

    Each step's concurrency is spread evenly and its request budget in proportion
    (:func:`~sagemaker_vision.core.loadtest.engine.split_phase`); a worker with no share of a
    step still takes part in its synchronisation (it writes an empty envelope). No more workers
    are planned than the largest step has concurrent requests: one more would never send one.
    """
    if isinstance(load_workers, bool) or not isinstance(load_workers, int) or not 1 <= load_workers <= MAX_LOAD_WORKERS:
        raise ValueError(f"load_workers must be an integer in [1, {MAX_LOAD_WORKERS}], got {load_workers!r}")
    if not isinstance(start_lead_s, int | float) or not 0 <= start_lead_s <= MAX_START_LEAD_S:
        raise ValueError(f"start_lead_s must be in [0, {MAX_START_LEAD_S:g}] s, got {start_lead_s!r}")
    if not concurrency_steps:
        raise ValueError("concurrency_steps must not be empty")
    workers = min(load_workers, max(min(c, max_requests_per_step) for c in concurrency_steps))
    shares: list[list[tuple[int, int]]] = [[] for _ in range(workers)]
    for concurrency in concurrency_steps:
        split = split_phase(max_requests_per_step, concurrency, workers)
        for worker in range(workers):
            shares[worker].append(split[worker] if worker < len(split) else (0, 0))
    return FanoutPlan(bucket=bucket, prefix=prefix.rstrip("/") + "/" if prefix.strip("/") else "",
                      steps=tuple(concurrency_steps), shares=tuple(tuple(w) for w in shares),
                      step_seconds=float(step_seconds), request_timeout_s=float(request_timeout_s),
                      first_start=float(math.ceil(s3_now + start_lead_s)), workers_requested=load_workers)


def report_base(report_prefix: str) -> str:
    """A report key prefix as a folder: ``a/b/``, or ``""`` for the bucket's top."""
    return report_prefix.rstrip("/") + "/" if report_prefix.strip("/") else ""


def fanout_prefix(report_prefix: str) -> str:
    """Where a run's envelopes and abort markers go: ``fanout/`` under its report key prefix."""
    return f"{report_base(report_prefix)}fanout/"


def envelope_key(plan: FanoutPlan, step: int, worker: int) -> str:
    return f"{plan.prefix}step-{step:03d}/worker-{worker:03d}.json"


def abort_key(plan: FanoutPlan, worker: int) -> str:
    return f"{plan.prefix}abort/worker-{worker:03d}.json"


# --------------------------------------------------------------------------------------------
# The schedule


def step_run_bound_s(plan: FanoutPlan) -> float:
    """The longest one worker's share of a step can take: the step, then a stuck request's timeout."""
    return plan.step_seconds + plan.request_timeout_s + JOIN_GRACE_S


def results_deadline(plan: FanoutPlan, step_start: float) -> float:
    """S3 time by which every worker's envelope of the step starting at ``step_start`` must be in S3."""
    return step_start + step_run_bound_s(plan) + WRITE_MARGIN_S


def next_step_start(previous: Sequence[StepEnvelope]) -> float:
    """When the next step starts: :data:`SYNC_GAP_S` after the last worker ended the previous one."""
    if not previous:
        raise ValueError("next_step_start needs the previous step's envelopes")
    return max(e.ended_at for e in previous) + SYNC_GAP_S


def check_on_time(worker: int, step: int, start: float, s3_now: float) -> None:
    """Fail a worker that reaches a step more than :data:`START_TOLERANCE_S` after the step started."""
    late = s3_now - start
    if late > START_TOLERANCE_S:
        raise LoadTestError(
            f"load worker {worker} reached step {step} {late:.1f} s after its common start (tolerance "
            f"{START_TOLERANCE_S:g} s, on S3's clock): the workers would not load the endpoint together. It was "
            "started too late: raise start_lead_s, give the executor a free slot per worker, or run the DAG with a "
            "scheduler (`airflow dags test` runs mapped tasks one after another; use load_workers=1 there)")


def missing_workers(plan: FanoutPlan, step: int, present: Sequence[int]) -> list[int]:
    return sorted(set(range(plan.workers)) - set(present))


# --------------------------------------------------------------------------------------------
# The envelope: one worker's share of one step


@dataclass(frozen=True)
class StepEnvelope:
    """What one worker measured in one step. Times are S3 epoch seconds; latencies in the histogram."""

    worker: int
    step: int
    concurrency: int
    requests: int
    successes: int
    errors_by_code: dict[str, int]
    error_examples: dict[str, str]
    started_at: float
    ended_at: float
    stopped_by: str
    achieved_concurrency: float
    client_cpu_ratio: float
    clamped: int
    histogram: HdrHistogram
    plan_id: str

    @classmethod
    def from_step(cls, worker: int, step: int, result: StepResult, started_at: float, ended_at: float,
                  plan_id: str) -> StepEnvelope:
        """A worker's envelope from the engine's step result (its samples go into the histogram)."""
        histogram, clamped = hist.from_latencies(result.latencies_ms)
        return cls(plan_id=plan_id, worker=worker, step=step, concurrency=result.concurrency, requests=result.requests,
                   successes=result.successes, errors_by_code=dict(result.errors_by_code),
                   error_examples=dict(result.error_examples), started_at=started_at, ended_at=ended_at,
                   stopped_by=result.stopped_by, achieved_concurrency=result.achieved_concurrency,
                   client_cpu_ratio=result.client_cpu_ratio, clamped=clamped, histogram=histogram)

    @classmethod
    def idle(cls, worker: int, step: int, at: float, plan_id: str) -> StepEnvelope:
        """The envelope of a worker with no share of a step: it still marks the step done."""
        return cls(plan_id=plan_id, worker=worker, step=step, concurrency=0, requests=0, successes=0, errors_by_code={},
                   error_examples={}, started_at=at, ended_at=at, stopped_by="requests", achieved_concurrency=0.0,
                   client_cpu_ratio=0.0, clamped=0, histogram=hist.new_histogram())

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    def to_json(self) -> str:
        return json.dumps({
            "format": ENVELOPE_FORMAT, "plan_id": self.plan_id, "worker": self.worker, "step": self.step,
            "concurrency": self.concurrency,
            "requests": self.requests, "successes": self.successes,
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "error_examples": dict(sorted(self.error_examples.items())),
            "started_at": self.started_at, "ended_at": self.ended_at, "clock": "s3",
            "stopped_by": self.stopped_by, "achieved_concurrency": self.achieved_concurrency,
            "client_cpu_ratio": self.client_cpu_ratio, "latency_over_range": self.clamped,
            "histogram_unit": "us", "histogram": hist.encode(self.histogram),
        })


def _field(data: Mapping[str, Any], name: str, where: str, kind: str, minimum: float = 0) -> Any:
    if name not in data:
        raise ValueError(f"{where}: field {name!r} is missing")
    value = data[name]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int" and not (number and isinstance(value, int) and value >= minimum):
        raise ValueError(f"{where}: field {name!r} must be an integer >= {minimum:g}, got {value!r}")
    if kind == "float" and not (number and math.isfinite(value) and value >= minimum):
        raise ValueError(f"{where}: field {name!r} must be a finite number >= {minimum:g}, got {value!r}")
    return value


def _counts(data: Mapping[str, Any], name: str, where: str, values: type) -> dict[str, Any]:
    raw = data.get(name)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: field {name!r} must be an object, got {type(raw).__name__}")
    for key, value in raw.items():
        ok = isinstance(value, str) if values is str else (isinstance(value, int) and not isinstance(value, bool)
                                                          and value > 0)
        if not isinstance(key, str) or not key or not ok:
            want = "a string" if values is str else "a positive integer"
            raise ValueError(f"{where}: field {name!r}: {key!r} must map to {want}, got {value!r}")
    return dict(raw)


def parse_envelope(raw: bytes | str, where: str) -> StepEnvelope:
    """A worker's envelope from its S3 body, checked; ``ValueError`` naming ``where`` and the field."""
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise ValueError(f"{where}: over the {MAX_ENVELOPE_BYTES} bytes a load worker's envelope can be")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: must be a JSON object, got {type(data).__name__}")
    if data.get("format") != ENVELOPE_FORMAT:
        raise ValueError(f"{where}: field 'format' must be {ENVELOPE_FORMAT!r}, got {data.get('format')!r}")
    if not isinstance(data.get("plan_id"), str) or not data["plan_id"]:
        raise ValueError(f"{where}: field 'plan_id' must be a non-empty string, got {data.get('plan_id')!r}")
    if data.get("histogram_unit") != "us":
        raise ValueError(f"{where}: field 'histogram_unit' must be 'us', got {data.get('histogram_unit')!r}")
    ints = {n: _field(data, n, where, "int") for n in ("worker", "step", "concurrency", "requests", "successes",
                                                         "latency_over_range")}
    floats = {n: float(_field(data, n, where, "float")) for n in ("started_at", "ended_at", "achieved_concurrency",
                                                                  "client_cpu_ratio")}
    errors = _counts(data, "errors_by_code", where, int)
    examples = _counts(data, "error_examples", where, str)
    if data.get("stopped_by") not in ("time", "requests"):
        raise ValueError(f"{where}: field 'stopped_by' must be 'time' or 'requests', got {data.get('stopped_by')!r}")
    if floats["ended_at"] < floats["started_at"]:
        raise ValueError(f"{where}: field 'ended_at' ({floats['ended_at']}) is before 'started_at' "
                         f"({floats['started_at']})")
    if ints["successes"] > ints["requests"]:
        raise ValueError(f"{where}: field 'successes' ({ints['successes']}) exceeds 'requests' ({ints['requests']})")
    if sum(errors.values()) != ints["requests"] - ints["successes"]:
        raise ValueError(f"{where}: field 'errors_by_code' adds up to {sum(errors.values())}, but requests - "
                         f"successes is {ints['requests'] - ints['successes']}")
    histogram = hist.decode(data.get("histogram"), f"{where}: field 'histogram'")
    if histogram.get_total_count() != ints["successes"]:
        raise ValueError(f"{where}: field 'histogram' holds {histogram.get_total_count()} latencies, but "
                         f"'successes' is {ints['successes']}")
    return StepEnvelope(plan_id=data["plan_id"], worker=ints["worker"], step=ints["step"],
                        concurrency=ints["concurrency"],
                        requests=ints["requests"], successes=ints["successes"], errors_by_code=errors,
                        error_examples=examples, started_at=floats["started_at"], ended_at=floats["ended_at"],
                        stopped_by=data["stopped_by"], achieved_concurrency=floats["achieved_concurrency"],
                        client_cpu_ratio=floats["client_cpu_ratio"], clamped=ints["latency_over_range"],
                        histogram=histogram)


# --------------------------------------------------------------------------------------------
# The merge


def check_step_envelopes(plan: FanoutPlan, step: int, envelopes: Sequence[StepEnvelope]) -> None:
    """Exactly one envelope per planned worker for ``step``, each with the share it was planned."""
    stale = sorted(e.worker for e in envelopes if e.plan_id != plan.plan_id)
    if stale:
        raise ValueError(f"step {step}: the envelope(s) of worker(s) {stale} belong to another plan than "
                         f"{plan.plan_id} (an earlier try's)")
    seen = [e.worker for e in envelopes]
    if len(set(seen)) != len(seen):
        twice = sorted({w for w in seen if seen.count(w) > 1})
        raise ValueError(f"step {step}: more than one envelope from worker(s) {twice}")
    if missing := missing_workers(plan, step, seen):
        raise LoadTestError(f"step {step} (C={plan.steps[step]}): no result from load worker(s) {missing} "
                            f"under s3://{plan.bucket}/{plan.prefix}step-{step:03d}/")
    for e in envelopes:
        if e.step != step or e.worker >= plan.workers or e.concurrency != plan.share(e.worker, step)[0]:
            raise ValueError(f"step {step}: worker {e.worker}'s envelope says step {e.step} at C={e.concurrency}; "
                             f"the plan gave it C={plan.share(e.worker, step)[0] if e.worker < plan.workers else '?'}")


def merge_step(envelopes: Sequence[StepEnvelope]) -> HistogramStep:
    """One step from every worker's share of it: counts and histograms add, exactly.

    The step's wall time runs from the first worker's start to the last one's end (S3's clock),
    so its throughput is every worker's successes over that time. ``achieved_concurrency`` sums the
    workers' busy time over it; ``client_cpu_ratio`` is the busiest worker's (the GIL limit is per process).
    """
    active = [e for e in envelopes if e.concurrency > 0]
    if not active:
        raise ValueError("merge_step needs at least one worker that sent requests")
    start, end = min(e.started_at for e in active), max(e.ended_at for e in active)
    duration = end - start
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}
    for e in sorted(active, key=lambda e: e.worker):
        for code, count in e.errors_by_code.items():
            errors[code] = errors.get(code, 0) + count
        for code, text in e.error_examples.items():
            examples.setdefault(code, text)
    busy = sum(e.achieved_concurrency * e.duration_s for e in active)
    return HistogramStep(
        concurrency=sum(e.concurrency for e in active), requests=sum(e.requests for e in active),
        successes=sum(e.successes for e in active), errors_by_code=errors, duration_s=duration,
        stopped_by="requests" if all(e.stopped_by == "requests" for e in active) else "time",
        achieved_concurrency=busy / duration if duration > 0 else 0.0,
        client_cpu_ratio=max(e.client_cpu_ratio for e in active), latencies_ms=(), error_examples=examples,
        histogram=hist.merge(e.histogram for e in active), workers=len(active), clamped=sum(e.clamped for e in active))


def contribution(e: StepEnvelope, merged: StepResult) -> dict[str, Any]:
    """One worker's share of a merged step, for the report."""
    summary = hist.summary_ms(e.histogram)
    return {"worker": e.worker, "step": e.step, "concurrency": e.concurrency, "requests": e.requests,
            "successes": e.successes, "errors_by_code": dict(sorted(e.errors_by_code.items())),
            "started_at": e.started_at, "ended_at": e.ended_at, "duration_s": round(e.duration_s, 3),
            "throughput_rps": round(e.successes / e.duration_s, 3) if e.duration_s > 0 else 0.0,
            "share_of_requests": round(e.requests / merged.requests, 4) if merged.requests else 0.0,
            "p95_ms": summary["p95_ms"], "max_ms": summary["max_ms"], "client_cpu_ratio": round(e.client_cpu_ratio, 3)}


@dataclass(frozen=True)
class FanoutReport(LoadTestReport):
    """The load test's report from merged workers: the usual report plus who contributed what, and the cost."""

    plan: FanoutPlan | None = None
    contributions: tuple[dict[str, Any], ...] = ()
    cost: Mapping[str, Any] | None = None
    payloads: tuple[Mapping[str, Any], ...] = ()  # name, bytes, content_type: the config holds no bytes here

    @property
    def merged_workers(self) -> int:
        return len({c["worker"] for c in self.contributions if c["concurrency"] > 0})

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        fanout = {
            "merged_workers": self.merged_workers,
            "summary": f"merged {self.merged_workers} workers' histograms exactly (HdrHistogram add)",
            "workers_planned": plan.workers if plan else None,
            "workers_requested": plan.workers_requested if plan else None,
            "first_step_start": plan.first_start if plan else None,
            "clock": "S3's (the Date header of its responses)",
            "workers": [
                {"worker": w, "steps": [c for c in self.contributions if c["worker"] == w]}
                for w in sorted({c["worker"] for c in self.contributions})
            ],
        }
        out = {**super().to_dict(), "fanout": fanout, "cost": dict(self.cost) if self.cost is not None else None}
        if self.payloads:
            out["config"]["payloads"] = [dict(p) for p in self.payloads]
        return out


def build_report(plan: FanoutPlan, by_step: Sequence[Sequence[StepEnvelope]], *, config: Any, cold_start_ms: float,
                 warmup: StepResult | None, started_at: str, cost: Mapping[str, Any] | None = None,
                 payloads: tuple[Mapping[str, Any], ...] = ()) -> FanoutReport:
    """Check and merge every step's envelopes into the report."""
    if len(by_step) != len(plan.steps):
        raise ValueError(f"expected envelopes for {len(plan.steps)} step(s), got {len(by_step)}")
    steps: list[HistogramStep] = []
    contributions: list[dict[str, Any]] = []
    for k, envelopes in enumerate(by_step):
        check_step_envelopes(plan, k, envelopes)
        merged = merge_step(envelopes)
        steps.append(merged)
        contributions.extend(contribution(e, merged) for e in sorted(envelopes, key=lambda e: e.worker))
    return FanoutReport(config=config, steps=tuple(steps), cold_start_ms=cold_start_ms, warmup=warmup,
                        started_at=started_at, plan=plan, contributions=tuple(contributions), cost=cost,
                        payloads=payloads)
