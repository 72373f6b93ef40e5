"""core.costs: an endpoint's pricing from its descriptions, the load test's cost per hour and per 1,000 inferences."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sagemaker_vision.core.costs import endpoint_pricing, inference_cost_rates

GB = Decimal(1024) ** 3


def test_serverless_bills_memory_times_duration_plus_data():
    pricing = endpoint_pricing(
        {"ProductionVariants": [{"VariantName": "AllTraffic",
                                 "CurrentServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]},
        {"ProductionVariants": [{"VariantName": "AllTraffic", "ServerlessConfig": {"MemorySizeInMB": 1024}}]})
    assert pricing == {"kind": "serverless", "memory_mb": 2048}  # what serves now, not the config's first value
    cost = inference_cost_rates(pricing, rps=10, mean_latency_ms=100, bytes_in_per_request=20_000,
                                bytes_out_per_request=2_000)
    per_inference = Decimal(2) * Decimal("0.1") * Decimal("0.00002") + Decimal(22_000) / GB * Decimal("0.016")
    assert Decimal(cost["usd_per_1000_inferences"]) == (per_inference * 1000).quantize(Decimal("0.000001"))
    assert Decimal(cost["usd_per_hour"]) == (per_inference * 36_000).quantize(Decimal("0.000001"))
    none = inference_cost_rates(pricing, rps=0, mean_latency_ms=None)
    assert none["usd_per_hour"] is None and "no successful request" in none["detail"]


def test_provisioned_and_async_bill_instance_hours_whatever_the_traffic():
    endpoint = {"ProductionVariants": [{"VariantName": "A", "CurrentInstanceCount": 3}]}
    config = {"ProductionVariants": [{"VariantName": "A", "InstanceType": "ml.c5.xlarge", "InitialInstanceCount": 1}]}
    pricing = endpoint_pricing(endpoint, config)
    assert pricing == {"kind": "provisioned", "instances": [{"instance_type": "ml.c5.xlarge", "instance_count": 3}]}
    cost = inference_cost_rates(pricing, rps=50, mean_latency_ms=20)
    assert cost["usd_per_hour"] == "0.612000"  # 3 x $0.204
    assert Decimal(cost["usd_per_1000_inferences"]) == (Decimal("0.612") / (50 * 3600) * 1000).quantize(
        Decimal("0.000001"))
    assert inference_cost_rates(pricing, rps=0, mean_latency_ms=None)["usd_per_1000_inferences"] is None
    asynchronous = endpoint_pricing(endpoint, {**config, "AsyncInferenceConfig": {"OutputConfig": {}}})
    assert asynchronous["kind"] == "async"
    assert inference_cost_rates(asynchronous, rps=50, mean_latency_ms=20)["usd_per_hour"] == "0.612000"


def test_an_instance_type_missing_from_the_table_is_named():
    pricing = {"kind": "provisioned", "instances": [{"instance_type": "ml.zz.huge", "instance_count": 1}]}
    with pytest.raises(ValueError, match=r"ml\.zz\.huge"):
        inference_cost_rates(pricing, rps=1, mean_latency_ms=1)
