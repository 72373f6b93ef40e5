"""pipeline.right_size's check: every refusal names its field and comes before any AWS call."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from sagemaker_vision.pipeline import right_size

PARAMS = {"endpoint_name": "shapes", "model_name": "", "memory_sizes_mb": [1024, 2048], "concurrency": 4,
          "requests_per_size": 20, "seconds_per_size": 10, "load_workers": 1, "slo_p95_ms": 1000,
          "max_error_rate": 0.01, "budget_usd": 5, "payload_prefix": "s3://bucket/raw/"}
SETTINGS = {"run_id": "r1", "pipeline_name": "shapes", "endpoint_type": "serverless", "max_concurrency": 10,
            "bucket": "bucket", "prefix": "p"}


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("check called AWS before refusing")

    monkeypatch.setattr(right_size.aws, "client", refuse)


@pytest.mark.parametrize(("params", "settings", "message"), [
    ({}, {"endpoint_type": "provisioned"}, r"^endpoint_type: pipeline shapes deploys provisioned endpoints"),
    ({}, {"endpoint_type": "async"}, r"^endpoint_type: pipeline shapes deploys async endpoints"),
    ({"memory_sizes_mb": [1024, 1536]}, {}, r"^memory_sizes_mb\[1\]: must be 1024-6144 in steps of 1024"),
    ({"memory_sizes_mb": [2048, 2048]}, {}, r"^memory_sizes_mb: lists 2048 twice"),
    ({"concurrency": 11}, {}, r"^concurrency: 11 exceeds serverless_max_concurrency 10"),
    ({"budget_usd": "lots"}, {}, r"^budget_usd"),
    ({"payload_prefix": "include/sample_data/images"}, {}, r"^payload_prefix: must be an s3:// prefix"),
])
def test_check_refuses_naming_the_field_before_any_aws_call(params, settings, message):
    with pytest.raises(AirflowFailException, match=message):
        right_size.check_task({**PARAMS, **params}, **{**SETTINGS, **settings})


def test_create_skips_a_size_not_asked_for():
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="3072 MB is not in memory_sizes_mb"):
        right_size.create_task({"sizes": [1024, 2048]}, 3072, "r1")


def test_check_refuses_a_tag_sagemaker_would_refuse_before_any_aws_call():
    with pytest.raises(AirflowFailException, match=r"^tags\.pipeline: 'shapes~1' has '~'"):
        right_size.check_task(PARAMS, **{**SETTINGS, "pipeline_name": "shapes~1"})


CHECKED = {"pipeline_name": "shapes", "endpoint_name": "shapes", "model_name": "m", "current_memory_mb": 2048,
           "sizes": [1024, 2048], "max_concurrency": 10, "reports": "s3://bucket/p/right-size/r1/",
           "load": {"concurrency": 3, "requests": 20, "seconds": 10.0, "slo_p95_ms": 1000.0,
                    "max_error_rate": 0.01, "workers": 1},
           "candidates": [{"memory_mb": m, "endpoint_name": f"shapes-rs{m}-tok", "endpoint_config_name":
                           f"shapes-rs{m}-tok", "report_prefix": f"s3://bucket/p/right-size/r1/{m}mb/"}
                          for m in (1024, 2048)]}


def test_create_gives_the_endpoint_the_tests_concurrency_not_the_files(monkeypatch):
    seen = []
    monkeypatch.setattr(right_size.aws, "client", lambda name: object())
    monkeypatch.setattr(right_size.hook, "ensure_candidate_config",
                        lambda client, request, run_id: seen.append(request) or True)
    right_size.create_task(CHECKED, 2048, "r1")
    (request,) = seen
    assert request["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 3}


def _report(memory: int, p95_ms: float) -> dict:
    from sagemaker_vision.core.costs import inference_cost_rates

    return {"endpoint_name": f"shapes-rs{memory}-tok", "report_uri": f"s3://bucket/{memory}/report.json",
            "steps": [{"requests": 20, "errors": 0, "error_rate": 0.0, "p50_ms": p95_ms, "p95_ms": p95_ms,
                       "p99_ms": p95_ms, "throughput_rps": 5.0}],
            "cost": inference_cost_rates({"kind": "serverless", "memory_mb": memory}, rps=5, mean_latency_ms=p95_ms)}


def test_a_size_whose_test_did_not_run_this_try_has_no_report_even_with_an_earlier_tries_xcom(monkeypatch):
    # After a clear: 1024's deploy failed this time, so its load test is upstream_failed, yet the XCom its
    # earlier, successful try pushed is still there (Airflow clears a task's XComs only when it starts).
    xcoms = {"size_1024.load_test": _report(1024, 300.0), "size_2048.load_test": _report(2048, 200.0)}
    states = {"size_1024.load_test": "upstream_failed", "size_2048.load_test": "success"}
    reduces = {1024: "size_1024.load_test", 2048: "size_2048.load_test"}
    reports = right_size.reports_of_this_try(CHECKED, reduces, states=states, pull=xcoms.__getitem__)
    assert reports == {1024: None, 2048: xcoms["size_2048.load_test"]}

    written = {}
    monkeypatch.setattr(right_size.aws, "client", lambda name: object())
    monkeypatch.setattr(right_size.hook, "put_json", lambda s3, uri, doc: written.setdefault(uri, doc) and uri)
    with pytest.raises(AirflowFailException, match="sizes 1024 MB have no report"):
        right_size.recommend_task(CHECKED, reports)
    (doc,) = written.values()
    assert doc["missing_memory_mb"] == [1024] and [c["memory_mb"] for c in doc["candidates"]] == [2048]


def test_a_report_of_another_endpoint_is_refused(monkeypatch):
    monkeypatch.setattr(right_size.aws, "client", lambda name: object())
    with pytest.raises(AirflowFailException, match="tested 'other', not 'shapes-rs1024-tok'"):
        right_size.recommend_task(CHECKED, {1024: {**_report(1024, 300.0), "endpoint_name": "other"}})


@pytest.mark.parametrize(("data_url", "manifest_exists", "expected"), [
    ("s3://bucket/p/runs/shapes/20261201T0300/training-output/j/output/model.tar.gz", True,
     "s3://bucket/p/runs/shapes/20261201T0300/manifests/validation.manifest"),
    ("s3://bucket/p/runs/shapes/20261201T0300/training-output/j/output/model.tar.gz", False,
     r"^payload_prefix: is empty and s3://bucket/p/runs/shapes/20261201T0300/manifests/validation.manifest.* "
     "does not exist"),
    ("s3://elsewhere/model.tar.gz", True, r"^payload_prefix: is empty and model m's artifacts"),
])
def test_empty_payloads_are_the_validation_manifest_of_the_run_that_trained_the_model(
        monkeypatch, data_url, manifest_exists, expected):
    monkeypatch.setattr(right_size.aws, "client", lambda name: object())
    monkeypatch.setattr(right_size.hook, "serving", lambda sm, name: {"model_name": "m", "memory_mb": 2048})
    monkeypatch.setattr(right_size.hook, "require_model",
                        lambda sm, name: {"PrimaryContainer": {"ModelDataUrl": data_url}})
    monkeypatch.setattr(right_size.hook, "exists", lambda s3, uri: manifest_exists)
    params = {**PARAMS, "payload_prefix": ""}
    if expected.startswith("s3://"):
        assert right_size.check_task(params, **SETTINGS)["payload_prefix"] == expected
    else:
        with pytest.raises(AirflowFailException, match=expected):
            right_size.check_task(params, **SETTINGS)
