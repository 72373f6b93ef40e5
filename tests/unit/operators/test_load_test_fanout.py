"""The fanned-out load test's operators on moto (S3, SageMaker) and the stub (InvokeEndpoint): plan, two workers
running at once in threads, reduce; a late worker, a missing one and a local payload folder are refused."""

from __future__ import annotations

import json
import threading

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException
from moto import mock_aws

from benchmarks.stub_server import start_in_thread
from sagemaker_vision.operators.load_test_fanout import (
    LoadTestPlanOperator,
    LoadTestReduceOperator,
    LoadTestWorkerOperator,
)
from tests.unit.core.loadtest.support import JPEG, REGION, runtime_client, set_aws_env


@pytest.fixture
def aws(monkeypatch):
    set_aws_env(monkeypatch)
    with mock_aws():
        sm = boto3.client("sagemaker", region_name=REGION)
        sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/od:1"})
        sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 2, "InstanceType": "ml.m5.large"}])
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="c",
                           Tags=[{"Key": "load-test-allowed", "Value": "true"}])
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="reports")
        for i in range(3):
            s3.put_object(Bucket="reports", Key=f"images/{i}.jpg", Body=JPEG)
        yield sm, s3


@pytest.fixture
def stub():
    url, stop = start_in_thread(0, 5)
    yield url, stop
    stop()


def kwargs(**overrides):
    values = {"endpoint_name": "ep", "payload_prefix": "s3://reports/images/",
              "report_s3_prefix": "s3://reports/lt/run-1/", "concurrency_steps": [2, 4], "step_seconds": 0.5,
              "max_requests_per_step": 40, "slo_p95_ms": 1000, "max_error_rate": 0.0, "warmup_requests": 2,
              "aws_conn_id": None, "region_name": REGION, "engine": "threads", "processes": 1, "load_workers": 2,
              "start_lead_s": 8.0}  # room for each worker to check the endpoint, read payloads and sync its clock
    values.update(overrides)
    return values


def _op(cls, url, **extra):
    op = cls(task_id=cls.__name__, **kwargs(**extra))
    op.client = runtime_client(url, 8)
    return op


def _plan(url):
    """The plan task's XCom (one element per worker, as expand_kwargs maps it) and the worker indices."""
    elements = json.loads(json.dumps(_op(LoadTestPlanOperator, url).execute({})))
    return elements, [e["worker"] for e in elements]


def _run_workers(url, planned, workers, delay=None):
    results, errors = {}, {}

    def run(w):
        import time

        if delay and w in delay:
            time.sleep(delay[w])
        try:
            element = planned[w]  # the keyword arguments expand_kwargs gives mapped task instance w
            results[w] = _op(LoadTestWorkerOperator, url, plan=element["plan"], worker=element["worker"]).execute({})
        except Exception as exc:  # collected: the test asserts on it
            errors[w] = exc

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, errors


def test_two_workers_in_step_merge_into_one_report(aws, stub):
    _, s3 = aws
    url, stop = stub
    planned, workers = _plan(url)
    assert workers == [0, 1] and planned[1]["plan"]["pricing"] == {
        "kind": "provisioned", "instances": [{"instance_type": "ml.m5.large", "instance_count": 2}]}
    results, errors = _run_workers(url, planned, workers)
    assert errors == {} and sorted(results) == [0, 1]
    report = _op(LoadTestReduceOperator, url, plan=planned).execute({})
    assert report["report_uri"] == "s3://reports/lt/run-1/report.json"
    stored = json.loads(s3.get_object(Bucket="reports", Key="lt/run-1/report.json")["Body"].read())
    assert stored["fanout"]["merged_workers"] == 2
    per_worker = {w["worker"]: w["steps"] for w in stored["fanout"]["workers"]}
    assert sorted(per_worker) == [0, 1] and all(len(s) == 2 for s in per_worker.values())
    for k, step in enumerate(stored["steps"]):
        assert step["concurrency"] == [2, 4][k] and step["merged_workers"] == 2
        assert step["requests"] == sum(per_worker[w][k]["requests"] for w in (0, 1)) > 0
        assert step["p95_ms"] is not None and step["slo_met"] is True
    # The steps started together: on S3's clock, within the tolerance of each other.
    for k in range(2):
        starts = [per_worker[w][k]["started_at"] for w in (0, 1)]
        assert max(starts) - min(starts) < 1.0, starts
    assert per_worker[0][1]["started_at"] >= max(per_worker[w][0]["ended_at"] for w in (0, 1))
    # Provisioned: 2 x ml.m5.large ($0.115/h) = $0.23 per hour, per 1,000 from the max sustainable rate.
    cost = stored["cost"]
    assert cost["usd_per_hour"] == "0.230000" and cost["kind"] == "provisioned"
    expected = 0.23 / (stored["max_sustainable_rps"] * 3600) * 1000
    assert float(cost["usd_per_1000_inferences"]) == pytest.approx(expected, abs=1e-6)  # to the millionth
    assert stop.stub.invocations == 1 + 2 + stored["totals"]["requests"]
    assert [p["name"] for p in stored["config"]["payloads"]] == [f"s3://reports/images/{i}.jpg" for i in range(3)]


def test_a_worker_started_too_late_fails_and_tells_the_others(aws, stub):
    url, _ = stub
    planned, workers = _plan(url)
    results, errors = _run_workers(url, planned, workers, delay={1: 12.0})
    assert "load worker 1 reached step 0" in str(errors[1]) and isinstance(errors[1], AirflowFailException)
    assert "load worker 1 gave up, so the others stop" in str(errors[0])
    with pytest.raises(AirflowFailException, match=r"no result from load worker\(s\) \[1\]"):
        _op(LoadTestReduceOperator, url, plan=planned).execute({})


def test_a_worker_failing_before_its_first_step_tells_the_others_at_once(aws, stub, monkeypatch):
    """Any error, not only a LoadTestError, writes the abort marker: the peers stop at their next wait
    instead of waiting for the missing envelope until their deadline."""
    url, _ = stub
    planned, workers = _plan(url)
    real = LoadTestWorkerOperator._s3_payloads

    def broken(self):
        if self.worker == 1:
            raise ValueError("payload unreadable")
        return real(self)

    monkeypatch.setattr(LoadTestWorkerOperator, "_s3_payloads", broken)
    results, errors = _run_workers(url, planned, workers)
    assert isinstance(errors[1], ValueError) and "payload unreadable" in str(errors[1])
    assert "load worker 1 gave up, so the others stop" in str(errors[0]) and "payload unreadable" in str(errors[0])


def test_a_local_payload_folder_is_refused_before_any_request(aws, stub):
    url, stop = stub
    with pytest.raises(AirflowFailException, match="payload_prefix must be an s3:// prefix or manifest"):
        _op(LoadTestPlanOperator, url, payload_prefix="include/sample_data/images").execute({})
    assert stop.stub.invocations == 0


def test_a_bad_load_workers_fails_at_once(aws, stub):
    url, stop = stub
    with pytest.raises(AirflowFailException, match=r"load_workers must be an integer in \[1, 16\], got 17"):
        _op(LoadTestPlanOperator, url, load_workers="17").execute({})
    with pytest.raises(AirflowFailException, match="load_workers must be an integer"):
        _op(LoadTestPlanOperator, url, load_workers="two").execute({})


def test_the_reduce_refuses_something_that_is_not_a_plan(aws, stub):
    url, _ = stub
    with pytest.raises(AirflowFailException, match="the plan task's result is not a load test plan"):
        _op(LoadTestReduceOperator, url, plan=[{"worker": 0, "plan": {"plan": {"format": "x"}}}]).execute({})
