"""The fanned-out load test's three operators: plan, worker (mapped), reduce.

``LoadTestPlanOperator`` checks everything a load test checks (arguments, the endpoint's state and
opt-in tag, the payloads), times the cold start and the warm-up once, and fixes the plan
(:func:`sagemaker_vision.core.loadtest.fanout.plan_fanout`): each worker's share of each step
and the first step's start on S3's clock,
returned as one ``{"worker": i, "plan": ...}`` per worker, which
``LoadTestWorkerOperator.partial(...).expand_kwargs(plan.output)`` maps over.
Each worker sends its share of each step in step with the others and writes one envelope per
step; ``LoadTestReduceOperator`` merges them (exactly: histogram add), prices the result, writes
``report.json`` and ``chart.png`` and applies the SLO gate, as ``LoadTestOperator`` does.

All three take ``LoadTestOperator``'s arguments, so one set of keyword arguments (``partial``)
configures them; the payloads must be in S3, since a worker may run on any machine.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sagemaker_vision.core.costs import endpoint_pricing, inference_cost_rates
from sagemaker_vision.core.loadtest.engine import run_phase
from sagemaker_vision.core.loadtest.fanout import (
    FanoutPlan,
    StepEnvelope,
    build_report,
    check_on_time,
    fanout_prefix,
    merge_step,
    next_step_start,
    parse_envelope,
    plan_fanout,
    report_base,
    results_deadline,
)
from sagemaker_vision.core.loadtest.model import LoadTestError, Payload, StepResult, cold_start_error
from sagemaker_vision.core.prices import active_table, priced_region
from sagemaker_vision.core.validate import parse_s3_uri
from sagemaker_vision.hooks import base as hooks_base
from sagemaker_vision.hooks.load_test import load_payloads
from sagemaker_vision.hooks.load_test_fanout import S3Clock, read_step, wait_for_step, write_abort, write_envelope
from sagemaker_vision.hooks.sagemaker_runtime import ClientSpec, WorkerPool, boto3_invoker
from sagemaker_vision.operators.load_test import LoadTestOperator, _as_number

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.sdk import Context

# Seconds the plan leaves before the first step for the executor to start the workers: a base
# plus a little per worker (each is a task the scheduler queues and a worker process starts).
START_LEAD_BASE_S = 20.0
START_LEAD_PER_WORKER_S = 2.0
# A reply the load test does not measure: the size of a detection reply, for the data-out price.
ASSUMED_REPLY_BYTES = 2_000


class _FanoutBase(LoadTestOperator):
    template_fields: Sequence[str] = (*LoadTestOperator.template_fields, "plan", "load_workers")

    def __init__(self, *, plan: Any = None, load_workers: int | str = 1, start_lead_s: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.load_workers = load_workers
        self.start_lead_s = start_lead_s

    def _s3_payloads(self) -> list[Payload]:
        """The payloads, from S3 only: a worker may run on a machine without the project's files."""
        if not str(self.payload_prefix).startswith("s3://"):
            raise AirflowFailException(
                f"payload_prefix must be an s3:// prefix or manifest for a fanned-out load test (its workers may run "
                f"on any machine), got {self.payload_prefix!r}")
        try:
            return load_payloads(self.payload_prefix, s3_client=self.s3_client, max_payloads=self.max_payloads,
                                 max_bytes=self.payload_limit)
        except ValueError as exc:  # too large, empty or not an image: the same on every try
            raise AirflowFailException(str(exc)) from exc

    def _planned(self) -> tuple[FanoutPlan, Mapping[str, Any]]:
        """The plan task's result: a worker gets its own element's ``plan``, the reduce the whole list."""
        planned = self.plan[0]["plan"] if isinstance(self.plan, list) and self.plan else self.plan
        try:
            return FanoutPlan.from_dict(planned.get("plan")), planned
        except (AttributeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: the plan task's result is not a load test plan: {exc}") \
                from exc


class LoadTestPlanOperator(_FanoutBase):
    """Check, cold-start, warm up, and plan the workers' shares and the first step's start (S3's clock)."""

    ui_color = "#f4d6a0"

    def execute(self, context: Context) -> list[dict[str, Any]]:  # type: ignore[override]  # one per worker
        try:
            report_bucket, report_prefix = parse_s3_uri(self.report_s3_prefix, "report_s3_prefix")
            config = self.build_config([("placeholder.jpg", b"\xff", "image/jpeg")], 1)
            workers = _as_number(self.load_workers, "load_workers", int)
        except ValueError as exc:  # a bad argument: no retry can fix it
            raise AirflowFailException(str(exc)) from exc
        instance_count = self._check_endpoint()
        payloads = self._s3_payloads()
        config = dataclasses.replace(config, payloads=tuple(payloads), instance_count=instance_count)
        invoke = boto3_invoker(self.client, config.endpoint_name)

        def phase(concurrency: int, requests: int, seconds: float, offset: int) -> StepResult:
            return run_phase(invoke, payloads, concurrency=concurrency, max_requests=requests, seconds=seconds,
                             request_timeout_s=config.request_timeout_s, payload_offset=offset,
                             clock=time.perf_counter)

        cold = phase(1, 1, config.request_timeout_s, 0)
        if cold.successes != 1:
            raise AirflowException(str(cold_start_error(config.endpoint_name, cold)))
        warmup = phase(min(config.warmup_requests, config.concurrency_steps[0]), config.warmup_requests,
                       config.step_seconds, 1) if config.warmup_requests else None
        clock = S3Clock(self.s3_client, report_bucket, report_base(report_prefix))
        now = clock.now()
        # A lone worker has nobody to start with: it begins when it is ready (no lead, no lateness check).
        lead = self.start_lead_s if self.start_lead_s is not None else \
            (START_LEAD_BASE_S + START_LEAD_PER_WORKER_S * workers if workers > 1 else 0.0)
        try:
            plan = plan_fanout(load_workers=workers, concurrency_steps=config.concurrency_steps,
                               max_requests_per_step=config.max_requests_per_step, step_seconds=config.step_seconds,
                               request_timeout_s=config.request_timeout_s, s3_now=now, start_lead_s=lead,
                               bucket=report_bucket, prefix=fanout_prefix(report_prefix))
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        sagemaker = self.sagemaker_client
        endpoint = sagemaker.describe_endpoint(EndpointName=config.endpoint_name)
        endpoint_config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        if plan.workers < workers:
            self.log.warning("%d load workers asked, %d planned: the largest step has only %d concurrent requests",
                             workers, plan.workers, max(config.concurrency_steps))
        self.log.info("cold start %.1f ms; %d worker(s) start step 0 at %.0f on S3's clock (in %.0f s): %s",
                      cold.latencies_ms[0], plan.workers, plan.first_start, plan.first_start - now,
                      [list(w) for w in plan.shares])
        warm = StepEnvelope.from_step(0, 0, warmup, 0.0, warmup.duration_s, plan.plan_id).to_json() if warmup else None
        planned = {
            "plan": plan.to_dict(), "cold_start_ms": cold.latencies_ms[0], "instance_count": instance_count,
            "warmup": warm,
            "started_at": datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="seconds"),
            "pricing": endpoint_pricing(endpoint, endpoint_config),
            "payloads": [{"name": n, "bytes": len(b), "content_type": c} for n, b, c in payloads],
        }
        # One element per worker: Airflow maps over a task's return value only (never an XCom of another key).
        return [{"worker": w, "plan": planned} for w in range(plan.workers)]


class LoadTestWorkerOperator(_FanoutBase):
    """One mapped worker: its share of every step, in step with the others, one envelope per step."""

    template_fields: Sequence[str] = (*_FanoutBase.template_fields, "worker")
    ui_color = "#f4d6a0"

    def __init__(self, *, worker: int | str = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.worker = worker

    def _phase(self, plan: FanoutPlan, payloads: list[Payload]) -> tuple[Callable[..., StepResult], Any]:
        """The engine for this worker's shares, and what to close after the last step."""
        largest = max(plan.share(int(self.worker), k)[0] for k in range(len(plan.steps)))
        if self.engine == "threads":
            invoke = boto3_invoker(self.client, self.endpoint_name)

            def phase(*, concurrency: int, max_requests: int, seconds: float, payload_offset: int) -> StepResult:
                return run_phase(invoke, payloads, concurrency=concurrency, max_requests=max_requests,
                                 seconds=seconds, request_timeout_s=float(self.request_timeout_s),
                                 payload_offset=payload_offset, clock=time.perf_counter)

            return phase, None
        spec = ClientSpec.from_hook(hooks_base.hook("sagemaker-runtime", self.aws_conn_id, self.region_name),
                                    max_pool_connections=max(1, largest),
                                    connect_timeout_s=min(10.0, float(self.request_timeout_s)),
                                    read_timeout_s=float(self.request_timeout_s))
        pool = WorkerPool(spec, self.endpoint_name, payloads, processes=min(self.processes, max(1, largest)),
                          engine=self.engine, request_timeout_s=float(self.request_timeout_s))
        return pool.phase, pool

    def execute(self, context: Context) -> dict[str, Any]:
        plan, _ = self._planned()
        me = _as_number(self.worker, "worker", int)
        if not isinstance(me, int) or not 0 <= me < plan.workers:
            raise AirflowFailException(f"worker must be in [0, {plan.workers}), got {self.worker!r}")
        self.worker = me
        closer = None
        written: list[str] = []
        try:
            self._check_endpoint()  # still InService and opted in: it is this worker's own call
            payloads = self._s3_payloads()
            clock = S3Clock(self.s3_client, plan.bucket, plan.prefix)
            self.log.info("S3's clock is %.3f s ahead of this machine's (+-%.3f s)", clock.offset_to_wall(),
                          clock.uncertainty_s)
            phase, closer = self._phase(plan, payloads)
            previous: list[StepEnvelope] = []
            for k in range(len(plan.steps)):
                start = plan.first_start if k == 0 else next_step_start(previous)
                if plan.workers == 1:
                    start = max(start, clock.now())
                check_on_time(me, k, start, clock.now())
                clock.sleep_until(start)
                concurrency, requests = plan.share(me, k)
                started = clock.now()
                if concurrency:
                    result = phase(concurrency=concurrency, max_requests=requests, seconds=plan.step_seconds,
                                   payload_offset=plan.payload_offset(me, k))
                    envelope = StepEnvelope.from_step(me, k, result, started, clock.now(), plan.plan_id)
                    self.log.info("step %d (share of C=%d), started %.2f s after its start: %s", k, plan.steps[k],
                                  started - start, result.summary())
                else:
                    envelope = StepEnvelope.idle(me, k, started, plan.plan_id)
                written.append(write_envelope(self.s3_client, plan, envelope))
                if k + 1 < len(plan.steps):
                    previous = wait_for_step(self.s3_client, plan, k, deadline=results_deadline(plan, start),
                                             clock=clock, me=me)
        except LoadTestError as exc:
            write_abort(self.s3_client, plan, me, str(exc))
            # No retry: a retried worker starts after its peers and can never rejoin their steps.
            raise AirflowFailException(str(exc)) from exc
        except Exception as exc:
            # Whatever stopped this worker (a refused endpoint, an unreadable payload or envelope, an engine
            # error), its peers must stop waiting for it now rather than at their deadline.
            try:
                write_abort(self.s3_client, plan, me, f"{type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001 - the original error is the one to raise
                self.log.warning("Could not write worker %d's abort marker", me, exc_info=True)
            raise
        finally:
            if closer is not None:
                closer.close()
        return {"worker": me, "envelopes": written}


class LoadTestReduceOperator(_FanoutBase):
    """Merge every worker's envelopes, price the result, publish report.json and chart.png, gate on the SLO."""

    def execute(self, context: Context) -> dict[str, Any]:
        plan, planned = self._planned()
        try:
            report_bucket, report_prefix = parse_s3_uri(self.report_s3_prefix, "report_s3_prefix")
            config = self.build_config([("placeholder.jpg", b"\xff", "image/jpeg")],
                                       int(planned.get("instance_count") or 1))
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        try:
            by_step = [read_step(self.s3_client, plan, k) for k in range(len(plan.steps))]
            warmup = merge_step([parse_envelope(planned["warmup"], "the plan's warm-up")]) \
                if planned.get("warmup") else None
            report = build_report(plan, by_step, config=config, cold_start_ms=float(planned["cold_start_ms"]),
                                  warmup=warmup, started_at=str(planned.get("started_at", "")),
                                  payloads=tuple(planned.get("payloads") or ()))
        except (LoadTestError, ValueError) as exc:
            raise AirflowFailException(f"cannot merge the load workers' results: {exc}") from exc
        report = dataclasses.replace(report, cost=self._cost(report, planned))
        self.log.info("merged %d worker(s): %s", report.merged_workers,
                      "; ".join(s.summary() for s in report.steps))
        return self.publish(report, report_bucket, report_prefix)

    def _cost(self, report: Any, planned: Mapping[str, Any]) -> dict[str, Any]:
        """Inference Recommender's numbers at the max sustainable rate; a price missing from the table is named."""
        passing = [s for s in report.steps if report.step_passed(s)] or list(report.steps)
        best = max(passing, key=lambda s: s.throughput_rps)
        payloads = planned.get("payloads") or []
        mean_in = sum(p["bytes"] for p in payloads) / len(payloads) if payloads else 0
        try:
            table = active_table(None)
            region, note = priced_region(hooks_base.hook("sagemaker", self.aws_conn_id, self.region_name).region_name,
                                         table)
            cost = inference_cost_rates(planned.get("pricing") or {}, rps=report.max_sustainable_rps,
                                        mean_latency_ms=best.mean_ms, bytes_in_per_request=round(mean_in),
                                        bytes_out_per_request=ASSUMED_REPLY_BYTES, prices=table, region=region)
            cost["detail"] += note
        except (ValueError, FileNotFoundError) as exc:  # the report is still worth writing; the gap is named in it
            return {"error": str(exc)}
        return {**cost, "basis": f"C={best.concurrency}, the step with the highest throughput"
                f"{' that met the SLO' if report.config.has_slo else ''}"}
