"""core.right_size: the size rule, the serverless-only refusal, the temporary names, the estimate and the pick."""

from __future__ import annotations

import pytest

from sagemaker_vision.core import right_size as rs
from sagemaker_vision.core.validate import SAGEMAKER_NAME_RE, ConfigError

SERVERLESS = {"ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "m-1",
                                      "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 8}}]}
IN_SERVICE = {"EndpointStatus": "InService"}


@pytest.mark.parametrize(("sizes", "message"), [
    ([], r"memory_sizes_mb: must be a non-empty list"),
    ([1024, 1500], r"memory_sizes_mb\[1\]: 1500 must be 1024-6144 in steps of 1024"),
    ([8192], r"memory_sizes_mb\[0\]: 8192 must be"),
    ([True], r"memory_sizes_mb\[0\]: True must be"),
    ([2048, 2048], r"memory_sizes_mb: lists a size twice"),
])
def test_each_size_passes_the_serverless_memory_rule(sizes, message):
    with pytest.raises(ConfigError, match=message):
        rs.check_memory_sizes(sizes)


def test_sizes_are_sorted():
    assert rs.check_memory_sizes([6144, 1024]) == (1024, 6144)


@pytest.mark.parametrize(("config", "message"), [
    ({"ProductionVariants": [{"VariantName": "A", "ModelName": "m", "InstanceType": "ml.m5.large"}]},
     r"serves provisioned \(ml\.m5\.large\); right-sizing compares .* serverless endpoint only"),
    ({**SERVERLESS, "AsyncInferenceConfig": {"OutputConfig": {}}}, "is an asynchronous endpoint"),
    ({"ProductionVariants": SERVERLESS["ProductionVariants"] * 2}, "serves serverless, serverless"),
])
def test_anything_but_one_serverless_variant_is_refused(config, message):
    with pytest.raises(ConfigError, match=r"^endpoint_name: ep " + message):
        rs.serverless_variant("ep", IN_SERVICE, config)


def test_the_candidates_serve_the_same_model_under_names_within_the_limit():
    variant = rs.serverless_variant("ep", IN_SERVICE, SERVERLESS)
    assert variant == {"model_name": "m-1", "variant_name": "AllTraffic", "memory_mb": 4096, "max_concurrency": 8}
    long_name = "e" * 62 + "x"
    found = rs.candidates(long_name, variant, (1024, 6144), "0123abcd", concurrency=8)
    names = [c["name"] for c in found]
    assert len(set(names)) == 2 and all(len(n) <= 63 and SAGEMAKER_NAME_RE.match(n) for n in names)
    assert names[1].endswith("-rs6144-0123abcd")
    request = found[0]["config_request"]
    assert request["EndpointConfigName"] == names[0]
    assert request["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": "m-1",
                                              "ServerlessConfig": {"MemorySizeInMB": 1024, "MaxConcurrency": 8}}]
    assert {"Key": "load-test-allowed", "Value": "true"} in found[0]["tags"]
    with pytest.raises(ConfigError, match="concurrency: 9 exceeds the endpoint's serverless MaxConcurrency 8"):
        rs.candidates("ep", variant, (1024,), "0123abcd", concurrency=9)


def test_the_estimate_bills_every_request_at_the_slo():
    # 206 requests x 2 s x 6 GB x $0.00002/GB-s = $0.04944, + 206 x (20 kB + 2 kB) of data: 0.05 to the cent.
    priced = rs.estimate([6144], requests=200, slo_p95_ms=2000, payload_bytes=20_000)
    assert str(priced.total) == "0.05" and priced.exceeds(0.04) and not priced.exceeds(0.05)


def _report(mean_ms, rps, breaches=()):
    return {"steps": [{"throughput_rps": rps, "mean_ms": mean_ms, "p95_ms": mean_ms * 1.5, "error_rate": 0.0}],
            "slo_breaches": list(breaches), "report_uri": "s3://b/r.json"}


def test_the_pick_is_the_cheapest_size_that_met_the_slo():
    results = [
        {"memory_mb": 1024, "report": _report(900.0, 5.0, ["C=4: p95 1350.0 ms > SLO 1000 ms"])},  # cheapest, missed
        {"memory_mb": 2048, "report": _report(300.0, 12.0)},  # 2 GB x 0.3 s = 0.6 GB-s
        {"memory_mb": 4096, "report": _report(140.0, 25.0)},  # 4 GB x 0.14 s = 0.56 GB-s: cheaper per inference
    ]
    picked = rs.recommend(results, payload_bytes=10_000)
    assert picked["recommended_memory_mb"] == 4096
    rows = {r["memory_mb"]: r for r in picked["candidates"]}
    assert rows[1024]["slo_met"] is False and rows[2048]["slo_met"] and rows[4096]["slo_met"]
    assert float(rows[4096]["usd_per_1000_inferences"]) < float(rows[2048]["usd_per_1000_inferences"])
    none = rs.recommend(results[:1], payload_bytes=10_000)
    assert none["recommended_memory_mb"] is None
