"""The task bodies of ``<pipeline>.right_size``: inspect -> estimate -> create -> load tests -> recommend, teardown.

The decisions are :mod:`sagemaker_vision.core.right_size`'s; this module reads and writes AWS. The
temporary endpoints are named by :func:`sagemaker_vision.core.naming.right_size_name` from the run
(so a retry finds its own), tagged ``managed-by``, ``load-test-allowed`` and ``right-size-of``, and
the teardown deletes exactly those names, whether the run got that far or not.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from sagemaker_vision.core import right_size as plan
from sagemaker_vision.core.loadtest.payloads import is_image_name
from sagemaker_vision.core.params import default_poll_seconds
from sagemaker_vision.core.validate import ConfigError, parse_s3_uri
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import s3 as s3io
from sagemaker_vision.hooks.sagemaker import describe_or_none, ensure_endpoint_config, is_not_found

log = logging.getLogger(__name__)
# Creating a serverless endpoint takes minutes; give up (and tear down) after this.
CREATE_TIMEOUT_S = 1800


def _fail(exc: Exception) -> AirflowFailException:
    return AirflowFailException(str(exc))


def run_token(run_id: str) -> str:
    """8 hex characters of the run id: the temporary names of one run, and only its."""
    return hashlib.sha256(run_id.encode()).hexdigest()[:8]


def inspect(params: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """Refuse a non-serverless endpoint and bad sizes (naming the field); name the candidates."""
    sagemaker = aws.client("sagemaker")
    name = params["endpoint_name"]
    try:
        sizes = plan.check_memory_sizes(params["memory_sizes_mb"])
        endpoint = describe_or_none(sagemaker, "endpoint", name)
        if endpoint is None:
            raise ConfigError("endpoint_name", f"no endpoint {name!r}")
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variant = plan.serverless_variant(name, endpoint, config)
        found = plan.candidates(name, variant, sizes, run_token(run_id), int(params["concurrency"]))
        parse_s3_uri(params["report_s3_prefix"], "report_s3_prefix")
    except ConfigError as exc:
        raise _fail(exc) from exc
    log.info("right-sizing %s (model %s, now %d MB): %s", name, variant["model_name"], variant["memory_mb"],
             ", ".join(f"{c['memory_mb']} MB as {c['name']}" for c in found))
    return {"endpoint_name": name, "variant": variant, "candidates": found}


def _mean_payload_bytes(payload_prefix: str) -> int:
    if not payload_prefix.startswith("s3://"):
        raise AirflowFailException(f"payload_prefix must be an s3:// prefix, got {payload_prefix!r}")
    sizes = [size for key, size in s3io.list_keys(aws.client("s3"), payload_prefix) if is_image_name(key)][:20]
    if not sizes:
        raise AirflowFailException(f"payload_prefix {payload_prefix!r} holds no .jpg/.jpeg/.png objects")
    return round(sum(sizes) / len(sizes))


def estimate(inspected: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Price every size's load test before anything is created; fail over ``budget_usd``."""
    sizes = [c["memory_mb"] for c in inspected["candidates"]]
    payload = _mean_payload_bytes(params["payload_prefix"])
    region = aws.hook("sagemaker").region_name
    priced = plan.estimate(sizes, requests=int(params["requests"]), slo_p95_ms=float(params["slo_p95_ms"]),
                           payload_bytes=payload, region=region if region else plan.DEFAULT_REGION)
    log.info("right-size estimate:\n%s", priced.format_table())
    if priced.exceeds(params["budget_usd"]):
        raise AirflowFailException(f"the right-size load tests may cost ${priced.total} > budget_usd "
                                   f"${params['budget_usd']}: fewer sizes or fewer requests")
    return {**priced.to_dict(), "mean_payload_bytes": payload}


def create(inspected: Mapping[str, Any], report_prefix: str) -> list[dict[str, Any]]:
    """Each candidate's endpoint config and endpoint, InService; returns the load tests' keyword arguments."""
    sagemaker = aws.client("sagemaker")
    for candidate in inspected["candidates"]:
        ensure_endpoint_config(sagemaker, candidate["config_request"])
        if describe_or_none(sagemaker, "endpoint", candidate["name"]) is None:
            sagemaker.create_endpoint(EndpointName=candidate["name"], EndpointConfigName=candidate["name"],
                                      Tags=candidate["tags"])
            log.info("creating %s (%d MB)", candidate["name"], candidate["memory_mb"])
    delay = default_poll_seconds()
    for candidate in inspected["candidates"]:
        sagemaker.get_waiter("endpoint_in_service").wait(
            EndpointName=candidate["name"], WaiterConfig={"Delay": delay, "MaxAttempts": CREATE_TIMEOUT_S // delay})
    base = report_prefix.rstrip("/") + "/"
    return [{"endpoint_name": c["name"], "report_s3_prefix": f"{base}{c['memory_mb']}mb/"}
            for c in inspected["candidates"]]


def recommend(inspected: Mapping[str, Any], reports: Sequence[Mapping[str, Any]], priced: Mapping[str, Any],
              report_prefix: str) -> dict[str, Any]:
    """Write recommendation.json; fail (after writing it) when no size met the SLO."""
    results = [{"memory_mb": c["memory_mb"], "report": r} for c, r in zip(inspected["candidates"], reports,
                                                                          strict=True)]
    region = aws.hook("sagemaker").region_name
    picked = plan.recommend(results, payload_bytes=int(priced["mean_payload_bytes"]),
                            region=region if region else plan.DEFAULT_REGION)
    picked = {"endpoint_name": inspected["endpoint_name"], "current_memory_mb": inspected["variant"]["memory_mb"],
              **picked}
    uri = s3io.put_json(aws.client("s3"), report_prefix.rstrip("/") + "/recommendation.json", picked)
    for row in picked["candidates"]:
        log.info("%5d MB: SLO %s, p95 %s ms, %s req/s, $%s per 1,000 inferences", row["memory_mb"],
                 "met" if row["slo_met"] else "missed", row["p95_ms"], row["throughput_rps"],
                 row["usd_per_1000_inferences"])
    if picked["recommended_memory_mb"] is None:
        raise AirflowFailException(f"no memory size of {[c['memory_mb'] for c in inspected['candidates']]} met the "
                                   f"SLO on {inspected['endpoint_name']} (recommendation {uri})")
    log.info("recommended: %d MB (serving %d MB now); %s", picked["recommended_memory_mb"],
             picked["current_memory_mb"], uri)
    return {**picked, "recommendation_uri": uri}


def teardown(inspected: Mapping[str, Any]) -> list[str]:
    """Delete every candidate's endpoint and config that exists; never anything else."""
    sagemaker = aws.client("sagemaker")
    deleted = []
    for candidate in inspected["candidates"]:
        name = candidate["name"]
        for kind, call, arg in (("endpoint", sagemaker.delete_endpoint, "EndpointName"),
                                ("endpoint config", sagemaker.delete_endpoint_config, "EndpointConfigName")):
            try:
                call(**{arg: name})
                deleted.append(f"{kind} {name}")
            except Exception as exc:  # a candidate never created (or already gone) is done
                if not is_not_found(exc):
                    raise
    log.info("deleted: %s", ", ".join(deleted) or "nothing (no candidate was created)")
    return deleted
