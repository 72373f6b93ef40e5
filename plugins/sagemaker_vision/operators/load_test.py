"""``LoadTestOperator``: load-test a SageMaker real-time endpoint and publish the report and chart.

Thin over the core (:mod:`sagemaker_vision.core.loadtest`: config, engine, report, chart) and the
hooks (:mod:`sagemaker_vision.hooks.load_test` for payloads and the opt-in tag,
:mod:`sagemaker_vision.hooks.sagemaker_runtime` for the invokers and worker processes).
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from sagemaker_vision.core.loadtest.chart import render_chart
from sagemaker_vision.core.loadtest.engine import run_load_test
from sagemaker_vision.core.loadtest.model import (
    LOAD_TEST_TAG,
    MAX_REQUEST_TIMEOUT_S,
    LoadTestConfig,
    LoadTestError,
    LoadTestReport,
    Payload,
    StepResult,
)
from sagemaker_vision.core.loadtest.payloads import payload_limit
from sagemaker_vision.core.validate import parse_s3_uri
from sagemaker_vision.hooks import base as hooks_base
from sagemaker_vision.hooks.load_test import endpoint_allows_load_test, load_payloads
from sagemaker_vision.hooks.sagemaker_runtime import (
    ClientSpec,
    Engine,
    boto3_invoker,
    load_test_config,
    run_load_test_processes,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


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

    template_fields: Sequence[str] = (
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
        self.engine = cast(Engine, engine)
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
        config = load_test_config(max_pool_connections=self._max_concurrency,
                                  connect_timeout_s=min(10.0, float(self.request_timeout_s)),
                                  read_timeout_s=float(self.request_timeout_s))
        hook = hooks_base.hook("sagemaker-runtime", self.aws_conn_id, self.region_name)
        return hook.get_client_type(region_name=hook.region_name, config=config)

    @cached_property
    def sagemaker_client(self) -> Any:
        return hooks_base.client("sagemaker", self.aws_conn_id, self.region_name)

    @cached_property
    def s3_client(self) -> Any:
        return hooks_base.client("s3", self.aws_conn_id, self.region_name)

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
        try:
            report_bucket, report_prefix = parse_s3_uri(self.report_s3_prefix, "report_s3_prefix")
            # Validate every number before any AWS call, with a placeholder payload; the real payloads
            # and instance count replace it (and are validated) once fetched.
            config = self.build_config([("placeholder.jpg", b"\xff", "image/jpeg")], 1)
        except ValueError as exc:  # a bad argument: no retry can fix it
            raise AirflowFailException(str(exc)) from exc
        instance_count = self._check_endpoint()
        try:
            payloads = load_payloads(self.payload_prefix, s3_client=self.s3_client,
                                     max_payloads=self.max_payloads, max_bytes=self.payload_limit)
        except ValueError as exc:  # a payload too large, empty or not an image: the same on every try
            raise AirflowFailException(str(exc)) from exc
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
                spec = ClientSpec.from_hook(
                    hooks_base.hook("sagemaker-runtime", self.aws_conn_id, self.region_name),
                    max_pool_connections=max(config.concurrency_steps),
                    connect_timeout_s=min(10.0, float(config.request_timeout_s)),
                    read_timeout_s=float(config.request_timeout_s),
                )
                report = run_load_test_processes(config, spec, processes=self.processes, engine=self.engine,
                                                 on_step=on_step)
        except LoadTestError as exc:
            raise AirflowException(str(exc)) from exc

        return self.publish(report, report_bucket, report_prefix)

    def publish(self, report: LoadTestReport, report_bucket: str, report_prefix: str) -> dict[str, Any]:
        """Write report.json and chart.png, log the sizing, then apply the SLO gate; returns the report dict."""
        config = report.config
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
