"""core.right_size without Airflow: the sizes, the names, the price of the tests and the pick."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sagemaker_vision.core import right_size as rs
from sagemaker_vision.core.costs import inference_cost_rates
from sagemaker_vision.core.params import param_specs
from sagemaker_vision.core.validate import SAGEMAKER_NAME_RE, ConfigError

LOAD = {"concurrency": 4, "requests_per_size": 200, "seconds_per_size": 60, "slo_p95_ms": 1000,
        "max_error_rate": 0.01, "load_workers": 1}


# ---- sizes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sizes", "message"), [
    ([], r"^memory_sizes_mb: must be a list of 1 to 6"),
    ("2048", r"^memory_sizes_mb: must be a list"),
    ([1024, 1500], r"^memory_sizes_mb\[1\]: must be 1024-6144 in steps of 1024 \(MemorySizeInMB\); got 1500"),
    ([8192], r"^memory_sizes_mb\[0\]: must be 1024-6144 in steps of 1024"),
    ([True], r"^memory_sizes_mb\[0\]: must be a number, got True"),
    ([2048, 2048], r"^memory_sizes_mb: lists 2048 twice"),
    ([1024, 2048, 3072, 4096, 5120, 6144, 1024], r"^memory_sizes_mb: lists 7 sizes; there are only 6"),
])
def test_each_size_passes_the_serverless_memory_mb_rule(sizes, message):
    with pytest.raises(ConfigError, match=message):
        rs.validate_memory_sizes(sizes)


def test_sizes_come_back_ascending_and_the_schema_is_the_params_own_rule():
    assert rs.validate_memory_sizes([6144, 1024, 3072]) == (1024, 3072, 6144)
    schema = rs.memory_sizes_schema()
    spec = param_specs()["serverless_memory_mb"].schema()
    assert schema["items"]["enum"] == spec["enum"] == [1024, 2048, 3072, 4096, 5120, 6144]
    assert (schema["minItems"], schema["maxItems"], schema["uniqueItems"]) == (1, 6, True)
    assert rs.default_memory_sizes(4096) == [3072, 4096, 5120]
    assert rs.default_memory_sizes(1024) == [1024, 2048] and rs.default_memory_sizes(6144) == [5120, 6144]


def test_load_settings_name_the_field_they_refuse():
    assert rs.LoadSettings.from_params(LOAD, max_concurrency=10).concurrency == 4
    with pytest.raises(ConfigError, match=r"^concurrency: 12 exceeds serverless_max_concurrency 10"):
        rs.LoadSettings.from_params({**LOAD, "concurrency": 12}, max_concurrency=10)
    with pytest.raises(ConfigError, match=r"^max_error_rate: must be from 0 to 1, got 2"):
        rs.LoadSettings.from_params({**LOAD, "max_error_rate": 2}, max_concurrency=10)
    with pytest.raises(ConfigError, match=r"^requests_per_size: must be a whole number, got 2.5"):
        rs.LoadSettings.from_params({**LOAD, "requests_per_size": 2.5}, max_concurrency=10)
    with pytest.raises(ConfigError, match=r"^load_workers: 5 workers cannot split concurrency 4"):
        rs.LoadSettings.from_params({**LOAD, "load_workers": 5}, max_concurrency=10)


# ---- names -------------------------------------------------------------------------------------------
def test_names_fit_63_characters_and_differ_per_run_and_size():
    long = "a" * 62 + "-b"
    names = {rs.candidate_name(p, run, m) for p in ("shapes-detector", long)
             for run in ("manual__2026-12-01T23:00:00+00:00", "manual__2026-12-01T23:00:01+00:00")
             for m in (1024, 6144)}
    assert len(names) == 8
    assert all(len(n) <= 63 and SAGEMAKER_NAME_RE.match(n) for n in names), names
    token = rs.run_token("r1")
    assert rs.candidate_name("shapes-detector", "r1", 2048) == f"shapes-detector-rs2048-{token}"
    # the same on every try of a run; a cut never leaves "--" or a trailing hyphen
    assert rs.candidate_name("x" * 46 + "-y", "r1", 2048) == "x" * 46 + f"-rs2048-{token}"
    assert rs.candidate_name("x_y", "r1", 1024).startswith("x-y-rs1024-")


def test_the_production_endpoint_is_never_a_candidate():
    reports = rs.reports_prefix("bkt", "/object-detection/", "manual__1:2")
    assert reports == "s3://bkt/object-detection/right-size/manual__1-2/"
    (one,) = rs.plan_candidates("shapes", "r1", [1024], production_endpoint="shapes", reports=reports)
    assert one.endpoint_name != "shapes" and one.report_uri == f"{reports}1024mb/report.json"
    with pytest.raises(ConfigError, match="^endpoint_name: "):
        rs.plan_candidates("shapes", "r1", [1024], production_endpoint=one.endpoint_name, reports=reports)


def test_the_config_serves_the_same_model_at_the_size_with_the_tags():
    (candidate,) = rs.plan_candidates("shapes", "r1", [3072], production_endpoint="shapes", reports="s3://b/p/")
    tags = rs.candidate_tags("shapes", "r1", 3072)
    request = rs.endpoint_config_request(candidate, model_name="m-7", max_concurrency=10, tags=tags)
    assert request["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": "m-7",
                                              "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 10}}]
    by_key = {t["Key"]: t["Value"] for t in tags}
    assert by_key["managed-by"] == "sagemaker-vision" and by_key["load-test-allowed"] == "true"
    assert rs.is_this_runs(by_key, "r1") and not rs.is_this_runs(by_key, "r2")
    assert not rs.is_this_runs({**by_key, "managed-by": "someone"}, "r1")


# ---- the price -----------------------------------------------------------------------------------------
def test_the_estimate_bounds_each_sizes_test():
    load = rs.LoadSettings.from_params(LOAD, max_concurrency=10)
    # step: min(200 x 60 s, 4 x (60 + 60) s) = 480 s, plus cold start and 5 warm-ups at 60 s: 840 s.
    assert rs.test_seconds_bound(load) == 840
    estimate = rs.estimate_tests([1024, 6144], load)
    # 1 GB x 840 s x $0.00002 = $0.0168; data 206 x 4,000,000 B = 0.7674 GiB each way x $0.016 x 2 = $0.02456
    assert [line.usd for line in estimate.lines] == [Decimal("0.04"), Decimal("0.13")]
    assert estimate.total == Decimal("0.17") and estimate.exceeds("0.16") and not estimate.exceeds("0.17")
    # at the SLO's p95 (1 s) an inference at 6 GB bills 6 GB-s: $0.00012, $0.12 per 1,000
    assert "$0.120000 per 1,000" in estimate.lines[1].detail


# ---- the pick -----------------------------------------------------------------------------------------
def _report(memory: int, mean_ms: float, p95_ms: float | None, errors: int = 0, requests: int = 100) -> dict:
    cost = inference_cost_rates({"kind": "serverless", "memory_mb": memory}, rps=10, mean_latency_ms=mean_ms)
    return {"endpoint_name": f"e-rs{memory}", "steps": [{
        "requests": requests, "errors": errors, "error_rate": errors / requests, "p50_ms": mean_ms,
        "p95_ms": p95_ms, "p99_ms": p95_ms, "throughput_rps": 10.0}], "cost": cost}


def _results(*rows: tuple[int, float, float | None, int]) -> list[rs.CandidateResult]:
    return [rs.CandidateResult.from_report(m, _report(m, mean, p95, errors), f"s3://b/{m}mb/report.json")
            for m, mean, p95, errors in rows]


def test_the_cheapest_size_that_meets_the_slo_is_recommended():
    results = _results(
        (1024, 900.0, 1400.0, 0),  # cheapest per inference (0.9 GB-s) but misses the p95
        (2048, 500.0, 800.0, 0),   # 1.0 GB-s
        (4096, 200.0, 300.0, 0),   # 0.8 GB-s: cheaper than 2048 and faster
        (6144, 100.0, 150.0, 5),   # 0.6 GB-s, the cheapest passing on latency, but 5% errors
    )
    picked = rs.pick_cheapest(results, slo_p95_ms=1000, max_error_rate=0.01)
    assert picked.recommended is not None and picked.recommended.memory_mb == 4096
    doc = picked.to_dict()
    assert doc["recommended_memory_mb"] == 4096
    assert [c["meets_slo"] for c in doc["candidates"]] == [False, True, True, False]
    assert doc["candidates"][0]["breaches"] == ["p95 1400.0 ms > SLO 1000 ms"]
    assert doc["candidates"][3]["breaches"] == ["error rate 5.00% (5/100) > max 1.00%"]
    assert doc["candidates"][2]["usd_per_1000_inferences"] == "0.016000"
    # per hour at the measured 10 req/s, also for a size that missed the SLO
    assert doc["candidates"][2]["usd_per_hour"] == "0.576000" and doc["candidates"][0]["usd_per_hour"] == "0.648000"
    assert {"p50_ms", "p95_ms", "p99_ms", "throughput_rps", "errors", "usd_per_hour"} <= set(doc["candidates"][0])
    assert picked.failure() is None
    table = picked.format_table()
    assert "4096" in table and "<- recommended" in table.splitlines()[3]


def test_a_tie_in_price_goes_to_the_lower_p95_then_to_less_memory():
    # 2048 MB x 400 ms = 4096 MB x 200 ms: the same price per inference; 4096 is faster.
    picked = rs.pick_cheapest(_results((2048, 400.0, 600.0, 0), (4096, 200.0, 300.0, 0)),
                              slo_p95_ms=1000, max_error_rate=0.01)
    assert picked.recommended is not None and picked.recommended.memory_mb == 4096
    same = rs.pick_cheapest(_results((4096, 200.0, 300.0, 0), (2048, 400.0, 300.0, 0)),
                            slo_p95_ms=1000, max_error_rate=0.01)
    assert same.recommended is not None and same.recommended.memory_mb == 2048


def test_when_no_size_meets_the_slo_the_failure_has_the_numbers():
    picked = rs.pick_cheapest(_results((1024, 900.0, 1400.0, 0), (2048, 700.0, None, 100)),
                              slo_p95_ms=1000, max_error_rate=0.01)
    assert picked.recommended is None and picked.to_dict()["recommended_memory_mb"] is None
    message = picked.failure()
    assert message is not None and "1024 MB: p95 1400.0 ms > SLO 1000 ms" in message
    assert "2048 MB: no successful request" in message and "error rate 100.00%" in message


def test_a_size_without_a_report_is_named_and_fails_the_run():
    picked = rs.pick_cheapest(_results((2048, 500.0, 800.0, 0)), slo_p95_ms=1000, max_error_rate=0.01,
                              missing=[1024], current_memory_mb=4096)
    assert picked.recommended is not None and picked.to_dict()["missing_memory_mb"] == [1024]
    assert "1024 MB have no report" in (picked.failure() or "")
    assert picked.to_dict()["current_memory_mb"] == 4096


def test_a_report_of_another_size_or_shape_is_refused():
    with pytest.raises(ValueError, match="prices serverless 2048 MB, not serverless 1024 MB"):
        rs.CandidateResult.from_report(1024, _report(2048, 100.0, 100.0))
    with pytest.raises(ValueError, match="has 2 steps"):
        report = _report(1024, 100.0, 100.0)
        rs.CandidateResult.from_report(1024, {**report, "steps": report["steps"] * 2})


# ---- the tags SageMaker accepts ---------------------------------------------------------------------------
@pytest.mark.parametrize("run_id", ["manual__2026-12-01T23:00:00+00:00", "manual~retry", "r" * 250, "a b,c;d"])
def test_the_run_tag_fits_sagemakers_tag_value_rule_whatever_the_run_id(run_id):
    tags = {t["Key"]: t["Value"] for t in rs.candidate_tags("shapes", run_id, 2048)}
    assert all(rs.tag_value_error(v) is None for v in tags.values()), tags
    assert tags[rs.RUN_TAG] == rs.run_tag_value(run_id) and len(tags[rs.RUN_TAG]) == 64
    assert rs.is_this_runs(tags, run_id) and not rs.is_this_runs(tags, run_id + "x")


def test_the_tag_value_rule_is_the_botocore_models():
    assert rs.tag_value_error("manual__2026-12-01T23:00:00+00:00 é 1/2=@") is None
    assert "'~'" in (rs.tag_value_error("manual~1") or "")
    assert "at most 256" in (rs.tag_value_error("v" * 257) or "") and rs.tag_value_error("v" * 256) is None
    with pytest.raises(ConfigError, match=r"^tags\.pipeline: 'a\*b' has '\*'"):
        rs.candidate_tags("a*b", "r1", 1024)


def test_each_test_endpoint_reserves_the_tests_concurrency_within_the_serverless_limits():
    (candidate,) = rs.plan_candidates("shapes", "r1", [1024], production_endpoint="shapes", reports="s3://b/p/")
    tags = rs.candidate_tags("shapes", "r1", 1024)
    request = rs.endpoint_config_request(candidate, model_name="m", max_concurrency=3, tags=tags)
    assert request["ProductionVariants"][0]["ServerlessConfig"]["MaxConcurrency"] == 3
    for bad in (0, 201):
        with pytest.raises(ConfigError, match=r"^concurrency: .* serverless MaxConcurrency's 1-200"):
            rs.endpoint_config_request(candidate, model_name="m", max_concurrency=bad, tags=tags)
    with pytest.raises(ConfigError, match=r"^concurrency: must be from 1 to 200, got 201"):
        rs.LoadSettings.from_params({**LOAD, "concurrency": 201}, max_concurrency=500)


def test_the_default_images_are_the_validation_manifest_of_the_run_that_trained_the_model():
    runs = "s3://bkt/object-detection/runs/shapes/"
    url = f"{runs}20261201T0300/training-output/job-1/output/model.tar.gz"
    assert rs.validation_manifest_of(url, bucket="bkt", prefix="/object-detection/", pipeline_name="shapes") \
        == f"{runs}20261201T0300/manifests/validation.manifest"
    for elsewhere in ("s3://bkt/object-detection/runs/other/20261201T0300/model.tar.gz", "s3://bkt/m/model.tar.gz",
                      runs, ""):
        assert rs.validation_manifest_of(elsewhere, bucket="bkt", prefix="object-detection",
                                         pipeline_name="shapes") is None, elsewhere
