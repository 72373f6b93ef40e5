"""The cost estimators: labeling, training and every kind of endpoint, and a run's estimate.

Prices come from the price table (``core/prices.py``: built-in us-east-1 prices, overridden by a
JSON file). All money is :class:`~decimal.Decimal` from input to result; each estimator rounds
once, at the end, to the cent with ``ROUND_HALF_UP``. Free tiers, Savings Plans, Spot training,
EBS volume storage and S3 are not modelled: these are upper bounds for the budget guard, not a
bill. No Airflow: the budget guard task is ``pipeline/costs.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sagemaker_vision.core.prices import (  # noqa: F401  (DEFAULT_PRICES, PRICES_ENV_VAR, load_price_table: re-exported)
    DEFAULT_PRICES,
    DEFAULT_REGION,
    PRICES_ENV_VAR,
    D,
    Number,
    PriceTable,
    active_table,
    cents,
    load_price_table,
    priced_region,
    to_decimal,
    to_int,
)
from sagemaker_vision.core.validate import MAX_WORKERS_PER_OBJECT
from sagemaker_vision.core.validate import SERVERLESS_MEMORY_MB as SERVERLESS_MEMORY_SIZES_MB

if TYPE_CHECKING:
    from sagemaker_vision.core.config import PipelineConfig


# --------------------------------------------------------------------------- estimators


def labeling_cost(
    num_objects: int,
    workers_per_object: int = 1,
    *,
    objects_already_this_month: int = 0,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> Decimal:
    """Ground Truth bounding-box labeling on a private or vendor work team, in USD.

    Only Ground Truth's tiered per-object fee is priced: a private team's workers are yours and
    not paid per task through AWS; a vendor team's price is on its AWS Marketplace listing, not in
    this table (add it to your budget yourself); the public workforce (Mechanical Turk, the only
    one with a per-task price here) closed on 2026-09-30. ``workers_per_object``
    (1-9) is checked but does not change the fee. ``objects_already_this_month`` places this
    job on the monthly tiers, so a job that straddles the 50,000-object boundary is priced on both.
    """
    num_objects = to_int(num_objects, "num_objects")
    to_int(workers_per_object, "workers_per_object", 1, MAX_WORKERS_PER_OBJECT)
    already = to_int(objects_already_this_month, "objects_already_this_month")
    table = active_table(prices)
    per_object = D(0)
    start, end, lower = already, already + num_objects, 0
    for upper, usd in table.object_tiers(region):
        overlap = (end if upper is None else min(end, upper)) - max(start, lower)
        if overlap > 0:
            per_object += overlap * usd
        if upper is None:
            break
        lower = upper
    return cents(per_object)


def training_cost(
    instance_type: str,
    instance_count: int,
    hours: Number,
    *,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> Decimal:
    """On-demand SageMaker training: price per instance-hour x instances x hours, in USD."""
    count = to_int(instance_count, "instance_count", 1)
    duration = to_decimal(hours, "hours")
    rate = active_table(prices).instance_rate(region, "training_usd_per_instance_hour", instance_type)
    return cents(rate * count * duration)


def serverless_endpoint_cost(
    memory_mb: int,
    seconds_of_inference: Number,
    gb_in: Number = 0,
    gb_out: Number = 0,
    *,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> Decimal:
    """Serverless inference: memory GB x billed seconds x rate, plus data in and out, in USD.

    ``seconds_of_inference`` is the summed compute duration of all requests (AWS bills it per
    millisecond), not wall-clock time; idle time costs nothing.
    """
    memory = to_int(memory_mb, "memory_mb")
    if memory not in SERVERLESS_MEMORY_SIZES_MB:
        raise ValueError(
            f"memory_mb must be one of {', '.join(map(str, SERVERLESS_MEMORY_SIZES_MB))}, got {memory}"
        )
    seconds = to_decimal(seconds_of_inference, "seconds_of_inference")
    data_in, data_out = to_decimal(gb_in, "gb_in"), to_decimal(gb_out, "gb_out")
    table = active_table(prices)
    compute = D(memory) / 1024 * seconds * table.rate(region, "serverless_usd_per_gb_second")
    return cents(compute + _data_processed(table, region, data_in, data_out))


def realtime_endpoint_cost(
    instance_type: str,
    instance_count: int,
    hours: Number,
    *,
    gb_in: Number = 0,
    gb_out: Number = 0,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> Decimal:
    """A real-time endpoint for ``hours`` (e.g. a load test), plus data processed, in USD."""
    table = active_table(prices)
    return cents(_hosting(table, region, instance_type, instance_count, hours, gb_in, gb_out))


def realtime_endpoint_monthly_cost(
    instance_type: str,
    instance_count: int,
    days: Number,
    gb_in_per_day: Number = 0,
    gb_out_per_day: Number = 0,
    *,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> Decimal:
    """A real-time endpoint kept up around the clock for ``days``, in USD."""
    span = to_decimal(days, "days")
    daily_in = to_decimal(gb_in_per_day, "gb_in_per_day")
    daily_out = to_decimal(gb_out_per_day, "gb_out_per_day")
    table = active_table(prices)
    return cents(
        _hosting(table, region, instance_type, instance_count, 24 * span, daily_in * span, daily_out * span)
    )


def async_endpoint_cost(
    instance_type: str,
    instance_count: int,
    hours: Number,
    *,
    gb_in: Number = 0,
    gb_out: Number = 0,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> Decimal:
    """Asynchronous inference, billed at real-time instance prices, in USD.

    An async endpoint can scale to zero instances; pass the hours it actually had
    ``instance_count`` instances running.
    """
    return realtime_endpoint_cost(instance_type, instance_count, hours, gb_in=gb_in, gb_out=gb_out,
                                  prices=prices, region=region)


def _hosting(
    table: PriceTable, region: str, instance_type: str, instance_count: int,
    hours: Number, gb_in: Number, gb_out: Number,
) -> Decimal:
    count = to_int(instance_count, "instance_count", 1)
    duration = to_decimal(hours, "hours")
    data_in, data_out = to_decimal(gb_in, "gb_in"), to_decimal(gb_out, "gb_out")
    rate = table.instance_rate(region, "hosting_usd_per_instance_hour", instance_type)
    return rate * count * duration + _data_processed(table, region, data_in, data_out)


def _data_processed(table: PriceTable, region: str, gb_in: Decimal, gb_out: Decimal) -> Decimal:
    # No data, no lookup: a region added by override may price instances but not data yet.
    total = D(0)
    for direction, gb in (("in", gb_in), ("out", gb_out)):
        if gb:
            total += gb * table.data_rate(region, direction)
    return total


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class CostLine:
    """One priced step of a run, e.g. ``CostLine("training", Decimal("11.48"), "ml.p3.2xlarge x1, 3 h")``."""

    step: str
    usd: Decimal
    detail: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.step, str) or not self.step.strip():
            raise ValueError(f"CostLine.step must be a non-empty string, got {self.step!r}")
        if not isinstance(self.detail, str):
            raise ValueError(f"CostLine.detail must be a string, got {type(self.detail).__name__}")
        # Floats are refused rather than converted: a float here means drift crept in upstream.
        if isinstance(self.usd, float):
            raise ValueError(f"CostLine.usd for step {self.step!r} must be a Decimal, not float {self.usd!r}")
        object.__setattr__(self, "usd", cents(to_decimal(self.usd, f"CostLine.usd for step {self.step!r}")))


@dataclass(frozen=True)
class CostEstimate:
    """The priced steps of a run, with a total, an XCom-safe dict and a text table."""

    lines: tuple[CostLine, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        lines = tuple(self.lines)
        for i, line in enumerate(lines):
            if not isinstance(line, CostLine):
                raise ValueError(f"CostEstimate.lines[{i}] must be a CostLine, got {type(line).__name__}")
        object.__setattr__(self, "lines", lines)

    @property
    def total(self) -> Decimal:
        """Sum of the lines, in USD to the cent."""
        return cents(sum((line.usd for line in self.lines), D(0)))

    def with_lines(self, *lines: CostLine) -> CostEstimate:
        """A new estimate with ``lines`` appended."""
        return CostEstimate(self.lines + tuple(lines))

    def exceeds(self, budget_usd: Number) -> bool:
        """True when the total is strictly above ``budget_usd``; a total equal to it is within budget."""
        return self.total > to_decimal(budget_usd, "budget_usd")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for XCom: money as strings such as ``"1083.60"``, never floats."""
        return {
            "currency": "USD",
            "lines": [{"step": ln.step, "usd": str(ln.usd), "detail": ln.detail} for ln in self.lines],
            "total_usd": str(self.total),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostEstimate:
        """Inverse of :meth:`to_dict`, e.g. for a downstream task reading the XCom."""
        if not isinstance(data, Mapping) or not isinstance(data.get("lines"), list):
            raise ValueError("cost estimate must be a mapping with a 'lines' list")
        if data.get("currency", "USD") != "USD":
            raise ValueError(f"cost estimate currency must be USD, got {data.get('currency')!r}")
        lines = []
        for i, raw in enumerate(data["lines"]):
            if not isinstance(raw, Mapping) or "step" not in raw or "usd" not in raw:
                raise ValueError(f"cost estimate lines[{i}] must have 'step' and 'usd'")
            usd = to_decimal(raw["usd"], f"lines[{i}].usd")
            lines.append(CostLine(raw["step"], usd, raw.get("detail", "")))
        return cls(tuple(lines))

    def format_table(self) -> str:
        """A fixed-width text table, one row per line and a TOTAL row, for logs and reports."""
        rows = [(ln.step, f"{ln.usd:,.2f}", ln.detail) for ln in self.lines]
        total = ("TOTAL", f"{self.total:,.2f}", "")
        step_w = max(len(r[0]) for r in [("STEP", "", ""), total, *rows])
        usd_w = max(len(r[1]) for r in [("", "USD", ""), total, *rows])
        rule = f"{'-' * step_w}  {'-' * usd_w}"

        def render(cells: Iterable[str]) -> str:
            step, usd, detail = cells
            return f"{step:<{step_w}}  {usd:>{usd_w}}  {detail}".rstrip()

        return "\n".join([render(("STEP", "USD", "DETAIL")), rule, *map(render, rows), rule, render(total)])


__all__ = [
    "DEFAULT_PRICES",
    "DEFAULT_REGION",
    "MAX_WORKERS_PER_OBJECT",
    "PRICES_ENV_VAR",
    "SERVERLESS_MEMORY_SIZES_MB",
    "CostEstimate",
    "CostLine",
    "PriceTable",
    "async_endpoint_cost",
    "labeling_cost",
    "load_price_table",
    "realtime_endpoint_cost",
    "realtime_endpoint_monthly_cost",
    "estimate_pipeline",
    "serverless_endpoint_cost",
    "training_cost",
]


# --------------------------------------------------------------------------- a run's estimate

# Assumed request and response sizes for the test traffic of a run: a JPEG in, boxes out.
_ASSUMED_REQUEST_MB = D("0.2")
_ASSUMED_RESPONSE_MB = D("0.002")
# A provisioned endpoint is billed from creation; a run deploys and tests within about an hour.
_RUN_HOSTING_HOURS = D(1)


def estimate_pipeline(cfg: PipelineConfig, *, num_images: int = 0, prices: PriceTable | None = None) -> CostEstimate:
    """Price the paid steps of one ``<pipeline>.pipeline`` run from its ``PipelineConfig``.

    Training is priced at its stopping condition (``max_training_hours``): the most the run can
    spend, which is what a budget guard must compare. ``num_images`` counts labeling objects.
    """
    table = active_table(prices)
    region, note = priced_region(cfg.region, table)
    lines: list[CostLine] = []
    if cfg.label_backend == "ground_truth":
        gt = cfg.ground_truth
        usd = labeling_cost(num_images, gt.workers_per_object, prices=table, region=region)
        lines.append(CostLine("label (Ground Truth)", usd,
                              f"{num_images} images, Ground Truth per-object fee only (no per-task worker "
                              f"price: private team; a vendor's price is on its listing){note}"))
    else:
        lines.append(CostLine(f"label ({cfg.label_backend})", D(0), "no AWS charge"))
    t = cfg.training
    lines.append(CostLine(
        "train", training_cost(t.instance_type, t.instance_count, t.max_runtime_hours, prices=table, region=region),
        f"{t.instance_count} x {t.instance_type} for up to {t.max_runtime_hours} h{note}",
    ))
    e = cfg.endpoint
    if e.endpoint_type == "async":
        # An async endpoint takes no synchronous traffic, so no load test runs against it: the run
        # sends the async smoke test's one request. It bills instance-hours like real-time hosting.
        gb_in, gb_out = _ASSUMED_REQUEST_MB / 1024, _ASSUMED_RESPONSE_MB / 1024
        usd = async_endpoint_cost(e.instance_type, e.instance_count, _RUN_HOSTING_HOURS,
                                  gb_in=gb_in, gb_out=gb_out, prices=table, region=region)
        monthly = realtime_endpoint_monthly_cost(e.instance_type, e.instance_count, 30, prices=table, region=region)
        idle = (" (less: it scales to zero when idle)"
                if cfg.deploy.autoscaling_min == 0 and cfg.deploy.autoscaling_max else " while it stays up")
        detail = (f"{e.instance_count} x {e.instance_type} (async) for the run's first hour, 1 request; "
                  f"${monthly:,.2f} per 30 days at that count{idle}{note}")
        lines.append(CostLine("deploy + async smoke test", usd, detail))
        return CostEstimate(tuple(lines))
    requests = cfg.load_test.requests + 1  # the smoke test's one request
    gb_in = _ASSUMED_REQUEST_MB * requests / 1024
    gb_out = _ASSUMED_RESPONSE_MB * requests / 1024
    if e.endpoint_type == "serverless":
        # Billed per request duration; assume each takes the SLO's p95, an upper bound that passes.
        seconds = D(str(cfg.load_test.slo_p95_ms)) / 1000 * requests
        usd = serverless_endpoint_cost(e.memory_size_mb, seconds, gb_in, gb_out, prices=table, region=region)
        detail = f"{requests} requests x {cfg.load_test.slo_p95_ms:g} ms at {e.memory_size_mb} MB{note}"
    else:
        usd = realtime_endpoint_cost(e.instance_type, e.instance_count, _RUN_HOSTING_HOURS,
                                     gb_in=gb_in, gb_out=gb_out, prices=table, region=region)
        monthly = realtime_endpoint_monthly_cost(e.instance_type, e.instance_count, 30, prices=table, region=region)
        detail = (f"{e.instance_count} x {e.instance_type} for the run's first hour; "
                  f"${monthly:,.2f} per 30 days while it stays up{note}")
    lines.append(CostLine("deploy + smoke + load test", usd, detail))
    return CostEstimate(tuple(lines))


# --------------------------------------------------------------------------- a load test's cost rates

# Per-inference amounts are far below a cent: rates are given to the millionth of a dollar.
MICRO_USD = D("0.000001")
_GB = D(1024) ** 3


def endpoint_pricing(endpoint: Mapping[str, Any], endpoint_config: Mapping[str, Any]) -> dict[str, Any]:
    """What prices an endpoint, from its DescribeEndpoint and DescribeEndpointConfig answers.

    ``kind`` is ``serverless`` (a variant with a serverless config: ``memory_mb``), ``async`` (the
    config has ``AsyncInferenceConfig``) or ``provisioned``; the instance types come from the
    config's variants, their counts from the endpoint's (``CurrentInstanceCount``).
    """
    live = {v.get("VariantName"): v for v in endpoint.get("ProductionVariants") or []}
    variants = endpoint_config.get("ProductionVariants") or []
    for variant in variants:
        serverless = (live.get(variant.get("VariantName"), {}).get("CurrentServerlessConfig")
                      or variant.get("ServerlessConfig"))
        if serverless:
            return {"kind": "serverless", "memory_mb": int(serverless["MemorySizeInMB"])}
    kind = "async" if endpoint_config.get("AsyncInferenceConfig") else "provisioned"
    instances = [{"instance_type": v.get("InstanceType"),
                  "instance_count": int(live.get(v.get("VariantName"), {}).get("CurrentInstanceCount")
                                        or v.get("InitialInstanceCount") or 1)} for v in variants]
    return {"kind": kind, "instances": instances}


def inference_cost_rates(
    pricing: Mapping[str, Any],
    *,
    rps: float,
    mean_latency_ms: float | None,
    bytes_in_per_request: Number = 0,
    bytes_out_per_request: Number = 0,
    prices: PriceTable | None = None,
    region: str = DEFAULT_REGION,
) -> dict[str, Any]:
    """Cost per hour and per 1,000 inferences at ``rps`` (what SageMaker Inference Recommender reports).

    Serverless: each inference bills memory GB x its duration x the GB-second rate (the mean
    client-side latency stands in for the billed duration: an upper bound, it includes the network)
    plus its data in and out; an hour at ``rps`` is that x ``rps`` x 3600 (idle time is free).
    Provisioned and async: the instances' price per hour x their count, whatever the traffic; per
    1,000 inferences is the hour's price over the inferences an hour at ``rps`` serves (None at 0).
    """
    table = active_table(prices)
    rate_rps = to_decimal(rps, "rps")
    if pricing.get("kind") == "serverless":
        memory = to_int(pricing.get("memory_mb"), "memory_mb")
        if mean_latency_ms is None:
            return {"kind": "serverless", "memory_mb": memory, "usd_per_hour": None, "usd_per_1000_inferences": None,
                    "at_rps": float(rps), "detail": "no successful request: no duration to bill"}
        seconds = to_decimal(mean_latency_ms, "mean_latency_ms") / 1000
        compute = D(memory) / 1024 * seconds * table.rate(region, "serverless_usd_per_gb_second")
        data = _data_processed(table, region, to_decimal(bytes_in_per_request, "bytes_in_per_request") / _GB,
                               to_decimal(bytes_out_per_request, "bytes_out_per_request") / _GB)
        per_inference = compute + data
        per_hour = per_inference * rate_rps * 3600
        gb_second = table.rate(region, "serverless_usd_per_gb_second")
        detail = (f"{memory} MB x {seconds * 1000:.1f} ms mean duration x ${gb_second}/GB-s + data in/out, "
                  f"at {float(rps):.1f} req/s")
        return {"kind": "serverless", "memory_mb": memory, "at_rps": float(rps), "detail": detail,
                "usd_per_hour": str(per_hour.quantize(MICRO_USD)),
                "usd_per_1000_inferences": str((per_inference * 1000).quantize(MICRO_USD))}
    instances = pricing.get("instances") or []
    per_hour = sum((table.instance_rate(region, "hosting_usd_per_instance_hour", i["instance_type"])
                    * to_int(i["instance_count"], "instance_count", 1) for i in instances), D(0))
    per_1000 = per_hour / (rate_rps * 3600) * 1000 if rate_rps > 0 else None
    detail = " + ".join(f"{i['instance_count']} x {i['instance_type']}" for i in instances) + " per hour"
    return {"kind": pricing.get("kind"), "instances": list(instances), "at_rps": float(rps), "detail": detail,
            "usd_per_hour": str(per_hour.quantize(MICRO_USD)),
            "usd_per_1000_inferences": None if per_1000 is None else str(per_1000.quantize(MICRO_USD))}
