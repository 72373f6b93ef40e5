"""Right-sizing a serverless endpoint: the memory sizes to test, their temporary endpoints, the price of
the tests, and the pick. Pure: no Airflow, no AWS calls.

``<pipeline>.right_size`` does for serverless what SageMaker Inference Recommender does: it serves the
same model at each ``MemorySizeInMB`` asked for, load-tests each one alike, and recommends the size
that is cheapest per 1,000 inferences among those that meet the SLO (p95 latency and error rate).

* **Sizes** (:func:`validate_memory_sizes`): each one a serverless memory size by the
  ``serverless_memory_mb`` param's own rule (1024-6144 MB in steps of 1024), each once, 1 to 6 of them.
* **Names** (:func:`candidate_name`): ``<pipeline>-rs<memory>-<8 hex of the run id>``, the pipeline's
  name cut so the whole stays within the 63 characters AWS allows an endpoint (config) name: unique per
  run and size, the same on every try of the run (a retry finds what an earlier try created), and
  never the pipeline's own endpoint. Each resource carries the sha256 of the run id in its
  ``right-size-run`` tag (:func:`run_tag_value`: a run id may hold characters or a length a tag value
  may not): the teardown deletes nothing without it.
* **Price** (:func:`estimate_tests`): an upper bound per size, for the budget guard: GB-seconds of every
  concurrent slot busy for the whole test (each request at most the request timeout) plus data in and
  out at the serverless payload limit, priced by ``core.costs.serverless_endpoint_cost``.
* **Pick** (:func:`pick_cheapest`): cost per 1,000 inferences from each size's load-test report
  (``core.costs.inference_cost_rates``, computed by the load test's reduce); ties go to the lower p95
  (the same price, faster), then the smaller size.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sagemaker_vision.core.costs import (
    MICRO_USD,
    CostEstimate,
    CostLine,
    PriceTable,
    inference_cost_rates,
    serverless_endpoint_cost,
)
from sagemaker_vision.core.images import SERVERLESS_MAX_BYTES
from sagemaker_vision.core.loadtest.model import MAX_REQUEST_TIMEOUT_S
from sagemaker_vision.core.naming import LOAD_TEST_TAG, PACKAGE_TAG, PACKAGE_TAG_VALUE, VARIANT_NAME, right_size_name
from sagemaker_vision.core.params import param_specs
from sagemaker_vision.core.prices import DEFAULT_REGION
from sagemaker_vision.core.validate import SERVERLESS_MAX_CONCURRENCY, SERVERLESS_MEMORY_MB, ConfigError

FIELD = "memory_sizes_mb"
MAX_CANDIDATES = len(SERVERLESS_MEMORY_MB)
# The tags of a temporary endpoint and config besides managed-by and load-test-allowed.
RUN_TAG = "right-size-run"
MEMORY_TAG = "memory-mb"
RUN_TOKEN_CHARS = 8
# SageMaker's TagValue (botocore sagemaker/2017-07-24 service-2.json): 0-256 characters of
# [\p{L}\p{Z}\p{N}_.:/=+\-@]; the emulator's strict request checks enforce the same model rule.
TAG_VALUE_MAX = 256
_TAG_VALUE_PUNCTUATION = frozenset("_.:/=+-@")
# Where a run's reports go, under the pipeline's prefix (the Airflow role may write there: include/iam/).
REPORTS = "right-size"
# The load test's warm-up requests before its step (LoadTestOperator's default).
WARMUP_REQUESTS = 5
_GIB = Decimal(1024) ** 3


# ---- the sizes ---------------------------------------------------------------------------------
def memory_sizes_schema() -> dict[str, Any]:
    """The form's JSON schema of ``memory_sizes_mb``: an array of ``serverless_memory_mb`` values, each once."""
    item = {k: v for k, v in param_specs()["serverless_memory_mb"].schema().items() if k != "section"}
    return {"type": "array", "items": item, "minItems": 1, "maxItems": MAX_CANDIDATES, "uniqueItems": True}


def validate_memory_sizes(value: Any) -> tuple[int, ...]:
    """The sizes to test, ascending; :class:`ConfigError` naming ``memory_sizes_mb`` (or the bad item)."""
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(FIELD, f"must be a list of 1 to {MAX_CANDIDATES} serverless memory sizes, got {value!r}")
    if len(value) > MAX_CANDIDATES:
        raise ConfigError(FIELD, f"lists {len(value)} sizes; there are only {MAX_CANDIDATES} serverless memory "
                                 f"sizes ({', '.join(map(str, SERVERLESS_MEMORY_MB))})")
    spec = param_specs()["serverless_memory_mb"]
    sizes: list[int] = []
    for i, raw in enumerate(value):
        try:
            size = int(spec.read({spec.name: raw}))
        except ConfigError as exc:
            raise ConfigError(f"{FIELD}[{i}]", str(exc).removeprefix(f"{spec.name}: ")) from None
        if size in sizes:
            raise ConfigError(FIELD, f"lists {size} twice; each size is tested once")
        sizes.append(size)
    return tuple(sorted(sizes))


def default_memory_sizes(current_mb: int) -> list[int]:
    """The form's default: the pipeline's size and its neighbours (one step down, one up, where they exist)."""
    i = SERVERLESS_MEMORY_MB.index(current_mb)
    return list(SERVERLESS_MEMORY_MB[max(0, i - 1): i + 2])


# ---- the load each size gets ---------------------------------------------------------------------
@dataclass(frozen=True)
class LoadSettings:
    """One step at ``concurrency`` for ``seconds`` or ``requests``, whichever ends first; the SLO it must meet."""

    concurrency: int
    requests: int
    seconds: float
    slo_p95_ms: float
    max_error_rate: float
    workers: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, max_concurrency: int) -> LoadSettings:
        """Read and check the form's values; ``max_concurrency`` is the pipeline file's serverless_max_concurrency.

        ``concurrency`` is also each test endpoint's MaxConcurrency (:func:`endpoint_config_request`), so it
        stays within the serverless limits (1-200) too.
        """
        def number(name: str, kind: type, low: float, high: float | None = None) -> Any:
            raw = params.get(name)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or (kind is int and float(raw) != int(raw)):
                raise ConfigError(name, f"must be {'a whole number' if kind is int else 'a number'}, got {raw!r}")
            value = kind(raw)
            if value < low or (high is not None and value > high):
                raise ConfigError(name, f"must be from {low:g} to {high:g}, got {value:g}" if high is not None
                                  else f"must be at least {low:g}, got {value:g}")
            return value

        concurrency = number("concurrency", int, *SERVERLESS_MAX_CONCURRENCY)
        if concurrency > max_concurrency:
            raise ConfigError("concurrency", f"{concurrency} exceeds serverless_max_concurrency {max_concurrency}, the "
                                             "most the pipeline's endpoint serves at once (the pipeline file's): a "
                                             "load it would throttle measures nothing it will see")
        workers = number("load_workers", int, 1, 16)
        if workers > concurrency:
            raise ConfigError("load_workers", f"{workers} workers cannot split concurrency {concurrency}")
        return cls(concurrency=concurrency, requests=number("requests_per_size", int, 1),
                   seconds=float(number("seconds_per_size", float, 1)),
                   slo_p95_ms=float(number("slo_p95_ms", float, 1)),
                   max_error_rate=float(number("max_error_rate", float, 0, 1)), workers=workers)

    def to_dict(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "requests": self.requests, "seconds": self.seconds,
                "slo_p95_ms": self.slo_p95_ms, "max_error_rate": self.max_error_rate, "workers": self.workers}


# ---- names, tags and requests of the temporary endpoints ------------------------------------------
def run_token(run_id: str) -> str:
    """Eight hex digits of the run id: the part of a candidate's name that tells runs apart."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:RUN_TOKEN_CHARS]


def candidate_name(pipeline_name: str, run_id: str, memory_mb: int) -> str:
    """``<pipeline>-rs<memory>-<token>``: the temporary endpoint's (and its config's) name, at most 63 characters
    (:func:`sagemaker_vision.core.naming.right_size_name`)."""
    stem = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "-", pipeline_name)).strip("-") or "pipeline"
    return right_size_name(stem, memory_mb, run_token(run_id))


def run_tag_value(run_id: str) -> str:
    """The ``right-size-run`` tag value: the run id's sha256 in hex (64 characters, always a valid TagValue,
    whatever the run id holds: an Airflow run id may have ``~`` or up to 250 characters of anything its
    ``allowed_run_id_pattern`` lets through)."""
    return hashlib.sha256(run_id.encode()).hexdigest()


def tag_value_error(value: str) -> str | None:
    """Why SageMaker's TagValue rule refuses ``value`` (None: it fits): at most 256 characters, each a letter,
    separator (space), number or one of ``_.:/=+-@``."""
    if len(value) > TAG_VALUE_MAX:
        return f"has {len(value)} characters; a SageMaker tag value has at most {TAG_VALUE_MAX}"
    bad = sorted({ch for ch in value if unicodedata.category(ch)[0] not in "LZN" and ch not in _TAG_VALUE_PUNCTUATION})
    if bad:
        return (f"has {', '.join(map(repr, bad))}; a SageMaker tag value holds only letters, spaces, numbers and "
                "_.:/=+-@")
    return None


def candidate_tags(pipeline_name: str, run_id: str, memory_mb: int) -> list[dict[str, str]]:
    """The tags of a temporary endpoint and its config: ours, loadable, this run's, this size.

    Raises :class:`ConfigError` (naming the tag) when a value does not fit SageMaker's TagValue rule, so
    ``check`` refuses it before any paid call instead of CreateEndpointConfig after the estimate.
    """
    tags = {PACKAGE_TAG: PACKAGE_TAG_VALUE, LOAD_TEST_TAG: "true", "pipeline": pipeline_name,
            RUN_TAG: run_tag_value(run_id), MEMORY_TAG: str(memory_mb)}
    for key, value in tags.items():
        error = tag_value_error(value)
        if error:
            raise ConfigError(f"tags.{key}", f"{value!r} {error}")
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def is_this_runs(tags: Mapping[str, str], run_id: str) -> bool:
    """Whether a resource's tags say this run created it (the teardown deletes nothing else)."""
    return tags.get(PACKAGE_TAG) == PACKAGE_TAG_VALUE and tags.get(RUN_TAG) == run_tag_value(run_id)


def reports_prefix(bucket: str, prefix: str, run_id: str) -> str:
    """``s3://<bucket>/<prefix>/right-size/<run id>/``: every size's report and recommendation.json."""
    return f"s3://{bucket}/{prefix.strip('/')}/{REPORTS}/{run_id.replace(':', '-')}/"


def validation_manifest_of(model_data_url: str, *, bucket: str, prefix: str, pipeline_name: str) -> str | None:
    """The validation manifest of the pipeline run that trained a model (what the pipeline's own load test
    sends): ``<runs>/<run>/manifests/validation.manifest`` when its ``ModelDataUrl`` lies under the pipeline's
    ``s3://<bucket>/<prefix>/runs/<pipeline>/<run>/``; None for a model trained elsewhere."""
    runs = f"s3://{bucket}/{prefix.strip('/')}/runs/{pipeline_name}/"
    stamp = model_data_url.removeprefix(runs).split("/", 1)[0] if model_data_url.startswith(runs) else ""
    return f"{runs}{stamp}/manifests/validation.manifest" if stamp else None


@dataclass(frozen=True)
class Candidate:
    """One size's temporary endpoint (its config has the same name) and where its load-test report goes."""

    memory_mb: int
    endpoint_name: str
    report_prefix: str

    @property
    def report_uri(self) -> str:
        return f"{self.report_prefix}report.json"

    def to_dict(self) -> dict[str, Any]:
        return {"memory_mb": self.memory_mb, "endpoint_name": self.endpoint_name,
                "endpoint_config_name": self.endpoint_name, "report_prefix": self.report_prefix}


def plan_candidates(pipeline_name: str, run_id: str, sizes: Sequence[int], *, production_endpoint: str,
                    reports: str) -> list[Candidate]:
    """The candidates of one run; refuses a name that would be the production endpoint's."""
    out = []
    for memory in sizes:
        name = candidate_name(pipeline_name, run_id, memory)
        if name == production_endpoint:
            raise ConfigError("endpoint_name", f"{production_endpoint!r} is the name of a temporary right-size "
                                               "endpoint; the pipeline's endpoint is never tested in place")
        out.append(Candidate(memory, name, f"{reports}{memory}mb/"))
    return out


def endpoint_config_request(candidate: Candidate, *, model_name: str, max_concurrency: int,
                            tags: list[dict[str, str]]) -> dict[str, Any]:
    """CreateEndpointConfig: the model on one serverless variant of the candidate's memory size.

    ``max_concurrency`` is the test's concurrency, not the pipeline file's serverless_max_concurrency: every
    candidate endpoint is up at once, and their MaxConcurrency adds up against the account's serverless
    concurrency quota, so each reserves only what its test sends.
    """
    low, high = SERVERLESS_MAX_CONCURRENCY
    if not low <= max_concurrency <= high:
        raise ConfigError("concurrency", f"{max_concurrency} is outside serverless MaxConcurrency's {low}-{high}")
    return {
        "EndpointConfigName": candidate.endpoint_name,
        "ProductionVariants": [{"VariantName": VARIANT_NAME, "ModelName": model_name,
                                "ServerlessConfig": {"MemorySizeInMB": candidate.memory_mb,
                                                     "MaxConcurrency": max_concurrency}}],
        "Tags": tags,
    }


# ---- the price of the tests ------------------------------------------------------------------------
def test_seconds_bound(load: LoadSettings, *, request_timeout_s: float = MAX_REQUEST_TIMEOUT_S,
                       warmup_requests: int = WARMUP_REQUESTS) -> float:
    """The most compute seconds one size's test can bill: the step's slots busy throughout (a request in
    flight at the end lasts at most the timeout), or every request at the timeout if fewer; plus the
    cold start and the warm-up at the timeout each."""
    step = min(load.requests * request_timeout_s, load.concurrency * (load.seconds + request_timeout_s))
    return step + (1 + warmup_requests) * request_timeout_s


def estimate_tests(sizes: Sequence[int], load: LoadSettings, *, prices: PriceTable | None = None,
                   region: str = DEFAULT_REGION, request_timeout_s: float = MAX_REQUEST_TIMEOUT_S,
                   warmup_requests: int = WARMUP_REQUESTS) -> CostEstimate:
    """One line per size: the upper bound of its test (compute at that memory, data at the payload limit)."""
    seconds = test_seconds_bound(load, request_timeout_s=request_timeout_s, warmup_requests=warmup_requests)
    requests = load.requests + 1 + warmup_requests
    gb = Decimal(requests * SERVERLESS_MAX_BYTES) / _GIB
    lines = []
    for memory in sizes:
        usd = serverless_endpoint_cost(memory, Decimal(str(seconds)), gb, gb, prices=prices, region=region)
        at_slo = inference_cost_rates({"kind": "serverless", "memory_mb": memory}, rps=0,
                                      mean_latency_ms=load.slo_p95_ms, prices=prices, region=region)
        lines.append(CostLine(
            f"test {memory} MB", usd,
            f"<= {seconds:,.0f} s billed at {memory} MB ({requests} requests, C={load.concurrency}, "
            f"{load.seconds:g} s), data at the 4 MB limit; at the SLO's p95 an inference costs "
            f"${at_slo['usd_per_1000_inferences']} per 1,000 (compute)"))
    return CostEstimate(tuple(lines))


# ---- the results and the pick ------------------------------------------------------------------------
def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True)
class CandidateResult:
    """What one size's load test measured, from its report.json."""

    memory_mb: int
    endpoint_name: str
    requests: int
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    throughput_rps: float
    usd_per_1000: Decimal | None
    usd_per_hour: Decimal | None
    report_uri: str = ""

    @classmethod
    def from_report(cls, memory_mb: int, report: Mapping[str, Any], report_uri: str = "") -> CandidateResult:
        """Read a one-step load-test report; ValueError when it is not one, or prices another memory size."""
        steps = report.get("steps") or []
        if len(steps) != 1:
            raise ValueError(f"{report_uri or 'the report'} has {len(steps)} steps; a right-size test has one")
        step, cost = steps[0], report.get("cost") or {}
        if cost.get("kind") != "serverless" or cost.get("memory_mb") != memory_mb:
            raise ValueError(f"{report_uri or 'the report'} prices {cost.get('kind')} "
                             f"{cost.get('memory_mb')} MB, not serverless {memory_mb} MB: {cost.get('error', '')}")
        per_1000 = _money(cost.get("usd_per_1000_inferences"))
        throughput = float(step["throughput_rps"])
        # Per hour at the throughput measured (the report's own figure is at the highest rate that met its SLO:
        # zero for a size that missed it), from the same per-inference price.
        per_hour = None if per_1000 is None else (per_1000 / 1000 * Decimal(str(throughput)) * 3600).quantize(MICRO_USD)
        return cls(memory_mb=memory_mb, endpoint_name=str(report.get("endpoint_name", "")),
                   requests=int(step["requests"]), errors=int(step["errors"]), error_rate=float(step["error_rate"]),
                   p50_ms=step.get("p50_ms"), p95_ms=step.get("p95_ms"), p99_ms=step.get("p99_ms"),
                   throughput_rps=throughput, usd_per_1000=per_1000, usd_per_hour=per_hour, report_uri=report_uri)

    def breaches(self, slo_p95_ms: float, max_error_rate: float) -> list[str]:
        """The SLO misses, with the numbers (the load test's own rule: p95 above the SLO, errors above the max)."""
        found = []
        if self.p95_ms is None:
            found.append(f"no successful request, p95 unknown (SLO {slo_p95_ms:g} ms)")
        elif self.p95_ms > slo_p95_ms:
            found.append(f"p95 {self.p95_ms:.1f} ms > SLO {slo_p95_ms:g} ms")
        if self.error_rate > max_error_rate:
            found.append(f"error rate {self.error_rate:.2%} ({self.errors}/{self.requests}) > max {max_error_rate:.2%}")
        return found

    def meets(self, slo_p95_ms: float, max_error_rate: float) -> bool:
        return not self.breaches(slo_p95_ms, max_error_rate) and self.usd_per_1000 is not None


@dataclass(frozen=True)
class Recommendation:
    """Every size tested, whether it met the SLO, and the cheapest that did (None: none did)."""

    results: tuple[CandidateResult, ...]
    slo_p95_ms: float
    max_error_rate: float
    recommended: CandidateResult | None
    missing: tuple[int, ...] = ()
    current_memory_mb: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """recommendation.json: money as strings, every candidate with its numbers and verdict."""
        def money(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "recommended_memory_mb": self.recommended.memory_mb if self.recommended else None,
            "current_memory_mb": self.current_memory_mb,
            "slo": {"p95_ms": self.slo_p95_ms, "max_error_rate": self.max_error_rate},
            "basis": "the cheapest per 1,000 inferences among the sizes that met the SLO; ties to the lower p95, "
                     "then the smaller size",
            "candidates": [{
                "memory_mb": r.memory_mb, "endpoint_name": r.endpoint_name, "p50_ms": r.p50_ms, "p95_ms": r.p95_ms,
                "p99_ms": r.p99_ms, "throughput_rps": r.throughput_rps, "requests": r.requests, "errors": r.errors,
                "error_rate": r.error_rate, "usd_per_1000_inferences": money(r.usd_per_1000),
                "usd_per_hour": money(r.usd_per_hour), "meets_slo": r.meets(self.slo_p95_ms, self.max_error_rate),
                "breaches": r.breaches(self.slo_p95_ms, self.max_error_rate), "report_uri": r.report_uri,
            } for r in self.results],
            "missing_memory_mb": list(self.missing),
        }

    def format_table(self) -> str:
        """A fixed-width table, one row per size, the recommended one marked."""
        def ms(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.1f}"

        def money(value: Decimal | None) -> str:
            return "n/a" if value is None else str(value)

        rows = [("MEMORY_MB", "P50_MS", "P95_MS", "P99_MS", "REQ/S", "ERRORS", "USD/1000", "USD/HOUR", "SLO")]
        for r in self.results:
            mark = " <- recommended" if self.recommended is r else ""
            rows.append((str(r.memory_mb), ms(r.p50_ms), ms(r.p95_ms), ms(r.p99_ms), f"{r.throughput_rps:.1f}",
                         f"{r.errors}/{r.requests}", money(r.usd_per_1000), money(r.usd_per_hour),
                         ("met" if r.meets(self.slo_p95_ms, self.max_error_rate) else "missed") + mark))
        rows += [(str(m), "-", "-", "-", "-", "-", "-", "-", "no report") for m in self.missing]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                         for row in rows)

    def failure(self) -> str | None:
        """Why the run fails (None: it does not): no size met the SLO, or a size has no report."""
        if self.recommended is None:
            misses = "; ".join(
                f"{r.memory_mb} MB: {', '.join(r.breaches(self.slo_p95_ms, self.max_error_rate)) or 'no price'}"
                for r in self.results)
            return (f"no memory size met the SLO (p95 <= {self.slo_p95_ms:g} ms, error rate <= "
                    f"{self.max_error_rate:.2%}): {misses or 'nothing was measured'}")
        if self.missing:
            return (f"sizes {', '.join(map(str, self.missing))} MB have no report, so {self.recommended.memory_mb} MB "
                    "is the cheapest of those measured only")
        return None


def pick_cheapest(results: Sequence[CandidateResult], *, slo_p95_ms: float, max_error_rate: float,
                  missing: Sequence[int] = (), current_memory_mb: int | None = None) -> Recommendation:
    """The size cheapest per 1,000 inferences among those that met the SLO; ties to the lower p95, then less memory."""
    ordered = tuple(sorted(results, key=lambda r: r.memory_mb))
    passing = [r for r in ordered if r.meets(slo_p95_ms, max_error_rate)]
    best = min(passing, key=lambda r: (r.usd_per_1000, r.p95_ms, r.memory_mb), default=None)
    return Recommendation(ordered, slo_p95_ms, max_error_rate, best, tuple(sorted(missing)), current_memory_mb)
