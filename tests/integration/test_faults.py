"""Faults on the embedded emulator: shapes-detector.pipeline fails where it must and survives what it should.

Each test runs the real DAG with ``dag.test()`` and a pipeline_name of its own, so job, model and
endpoint names never collide with other tests of the session. Airflow task retries are switched off
(they would only repeat the failure 30 s later): what is under test is the package's behaviour on
one attempt, including botocore's retries inside it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SMALL_RUN = {"load_test_requests": 20, "load_test_concurrency": 4}
STAGE = "train_and_deploy."  # the task group of training, deploy and tests
# botocore counts total_max_attempts including the first: 1 means no retry at all.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


# -- helpers ----------------------------------------------------------------------------------
@pytest.fixture
def output(caplog, capfd):
    """Everything the run logged: dag.test() sends task logs to logging or to stdout, depending on
    how pytest captures, and writes no log files."""
    caplog.set_level(logging.INFO)

    def read() -> str:
        out, err = capfd.readouterr()
        return "\n".join((caplog.text, out, err))

    return read


@pytest.fixture
def fast_backoff(monkeypatch) -> list[int]:
    """Keep botocore's retry decisions (sync and aiobotocore alike) but not its jittered sleeps."""
    from botocore.retries import standard

    attempts: list[int] = []

    def delay_amount(self: Any, context: Any) -> float:
        attempts.append(context.attempt_number)
        return 0.01

    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", delay_amount)
    return attempts


def pipeline_dag():
    """A fresh parse of the DAG with task retries off."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("shapes-detector.pipeline")
    for task in dag.tasks:
        task.retries = 0
    return dag


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def task_errors(captured: str) -> list[str]:
    """The messages tasks failed with (AirflowException, AirflowFailException, ...). Task logs and
    dag.test()'s own lines can land in different streams, so they are found by content, not position."""
    return re.findall(r"\bAirflow\w*Exception: (.+)", captured)


def config_of(run):
    """The PipelineConfig the run's tasks saw (names and S3 locations derive from the run)."""
    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults

    run_info = RunInfo(run_id=run.run_id, run_after=run.run_after, data_interval_start=run.data_interval_start,
                       data_interval_end=run.data_interval_end)
    return PipelineConfig.from_params({**param_defaults(), **run.conf}, run=run_info, region="us-east-1")


def serve_previous_model(sm, endpoint_name: str) -> dict[str, Any]:
    """An endpoint already serving an older model, as a weekly run finds it."""
    from sagemaker_vision.core.algorithms import object_detection_image_uri

    previous = f"{endpoint_name}-previous"
    sm.create_model(ModelName=previous, ExecutionRoleArn=os.environ["SAGEMAKER_VISION_ROLE_ARN"],
                    PrimaryContainer={"Image": object_detection_image_uri("us-east-1")})
    sm.create_endpoint_config(EndpointConfigName=previous, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": previous,
        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 10}}])
    sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=previous)
    sm.get_waiter("endpoint_in_service").wait(EndpointName=endpoint_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return sm.describe_endpoint(EndpointName=endpoint_name)


def assert_not_deployed(sm, cfg, serving: dict[str, Any] | None) -> None:
    """The run created no model or endpoint config, and created or updated no endpoint."""
    for listing, key, name_key in [(sm.list_endpoint_configs, "EndpointConfigs", "EndpointConfigName"),
                                   (sm.list_models, "Models", "ModelName")]:
        made = [item[name_key] for item in listing()[key] if item[name_key] == cfg.model_name]
        assert not made, f"{key} created despite the failed training: {made}"
    if serving is None:
        with pytest.raises(ClientError) as missing:
            sm.describe_endpoint(EndpointName=cfg.endpoint_name)
        assert missing.value.response["Error"]["Code"] == "ValidationException"
        assert "Could not find endpoint" in missing.value.response["Error"]["Message"]
        return
    now = sm.describe_endpoint(EndpointName=cfg.endpoint_name)
    keep = ("EndpointStatus", "EndpointConfigName", "LastModifiedTime")
    assert {k: now.get(k) for k in keep} == {k: serving.get(k) for k in keep}, "the serving endpoint was touched"
    assert "PendingDeploymentSummary" not in now


# -- training ends badly: nothing downstream of train runs ------------------------------------------
@pytest.mark.parametrize(
    ("kind", "reason", "status", "already_serving"),
    [
        # A first deploy that must not create the endpoint...
        ("training_failure", "AlgorithmError: emulated out-of-memory in epoch 3 (fault-test)", "Failed", False),
        # ...and a weekly retrain that must leave the serving endpoint alone.
        ("training_stopped", "MaxRuntimeExceeded: stopped by the fault-test rule", "Stopped", True),
    ],
)
def test_failed_or_stopped_training_blocks_the_deploy(airflow_db, aws_clients, control, output, kind, reason,
                                                      status, already_serving):
    name = f"fault-{status.lower()}"
    serving = serve_previous_model(aws_clients["sagemaker"], name) if already_serving else None
    rule = control.add_fault(kind=kind, name_prefix=f"{name}-", reason=reason)

    dag = pipeline_dag()
    run = dag.test(run_conf={"pipeline_name": name, **SMALL_RUN})
    captured = output()

    assert run.state == "failed"
    states = task_states(run)
    assert states[STAGE + "train"] == "failed", states
    train = dag.get_task(STAGE + "train")
    downstream = {t.task_id for t in train.get_flat_relatives(upstream=False)}
    assert {STAGE + "smoke_test", STAGE + "load_test"} <= downstream, downstream
    assert {states[t] for t in downstream} == {"upstream_failed"}, {t: states[t] for t in downstream}
    upstream = {t.task_id for t in train.get_flat_relatives(upstream=True)}
    # The label branch skips the backends this run did not choose; everything else succeeded.
    unchosen = {t for t in upstream if t.startswith("label.") and states[t] == "skipped"}
    assert unchosen <= {"label.import", "label.ground_truth", "label.label_studio"}, unchosen
    assert {states[t] for t in upstream - unchosen} == {"success"}, {t: states[t] for t in upstream}

    # The job really ended that way, and the task's error names the job and says why.
    cfg = config_of(run)
    job = aws_clients["sagemaker"].describe_training_job(TrainingJobName=cfg.job_name)
    assert (job["TrainingJobStatus"], job.get("FailureReason")) == (status, reason)
    errors = [e for e in task_errors(captured) if cfg.job_name in e]
    assert errors, f"no task failed with an AirflowException naming {cfg.job_name}: {task_errors(captured)}"
    assert status.lower() in errors[-1].lower(), errors[-1]
    assert [r["fired"] for r in control.faults() if r["id"] == rule["id"]] == [1]
    assert_not_deployed(aws_clients["sagemaker"], cfg, serving)

    assert reason in errors[-1], f"the FailureReason is missing from the train task's error: {errors[-1]}"


# -- throttling: the package's retry policy rides it out --------------------------------------------
THROTTLES = [
    {"service": "sagemaker", "action": "CreateTrainingJob", "count": 2},
    {"service": "sagemaker", "action": "DescribeTrainingJob", "count": 3},
    {"service": "s3", "action": "PutObject", "count": 3},
]


def test_throttling_is_survived_by_the_package_retry_config(airflow_db, aws_clients, control, fast_backoff):
    from sagemaker_vision.hooks.base import client

    name = "fault-throttled"
    rules = [control.add_fault(kind="throttle", **throttle) for throttle in THROTTLES]

    run = pipeline_dag().test(run_conf={"pipeline_name": name, **SMALL_RUN})

    assert run.state == "success", task_states(run)
    fired = {r["id"]: (r["fired"], r["remaining"]) for r in control.faults()}
    for rule, throttle in zip(rules, THROTTLES, strict=True):
        # Every throttle hit the pipeline's own requests, and all were retried past.
        assert fired[rule["id"]] == (throttle["count"], 0), (throttle, fired[rule["id"]])
    assert len(fast_backoff) >= sum(t["count"] for t in THROTTLES)
    assert aws_clients["sagemaker"].describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"

    # The same faults against the package's client config and against one without retries.
    cfg = config_of(run)
    job_name, bucket = cfg.job_name, cfg.bucket
    control.add_fault(kind="throttle", service="sagemaker", action="DescribeTrainingJob", count=3)
    described = client("sagemaker").describe_training_job(TrainingJobName=job_name)
    assert described["ResponseMetadata"]["RetryAttempts"] == 3

    endpoint_url = aws_clients["s3"].meta.endpoint_url
    impatient_sm = boto3.client("sagemaker", endpoint_url=endpoint_url, region_name="us-east-1", config=NO_RETRIES)
    control.add_fault(kind="throttle", service="sagemaker", action="DescribeTrainingJob", count=1)
    with pytest.raises(ClientError) as throttled:
        impatient_sm.describe_training_job(TrainingJobName=job_name)
    assert throttled.value.response["Error"]["Code"] == "ThrottlingException"

    impatient_s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1", config=NO_RETRIES)
    control.add_fault(kind="throttle", service="s3", action="PutObject", count=1)
    with pytest.raises(ClientError) as slow_down:
        impatient_s3.put_object(Bucket=bucket, Key=f"{cfg.prefix}/fault-test/probe", Body=b"x")
    assert slow_down.value.response["Error"]["Code"] == "SlowDown"


# -- invoke errors: the load test's SLO gate fails the run with the numbers -------------------------
# An invoke_error rule with a rate rolls random.Random(seed) once per invocation (local_aws/faults.py).
# The load test's first request is its cold start, which must answer for the ramp to run at all, so
# take a seed whose first roll passes; the rest fail about half the time, the same way every run.
ERROR_RATE = 0.5
SEED = next(s for s in range(1000) if random.Random(s).random() >= ERROR_RATE)
BREACH_RE = re.compile(r"C=(\d+): error rate ([\d.]+)% \((\d+)/(\d+); ModelError=(\d+)\) > max ([\d.]+)%")


def test_invoke_errors_fail_the_load_test_slo_gate_with_the_numbers(airflow_db, aws_clients, control, output):
    name = "fault-invoke-errors"
    fired_rules: list[dict[str, Any]] = []

    def degrade_when_the_load_test_starts(context: Any) -> None:
        # From here on half the invocations fail as a broken container would (ModelError, 424);
        # the smoke test before it saw a healthy endpoint.
        fired_rules.append(control.add_fault(kind="invoke_error", code="ModelError", rate=ERROR_RATE, seed=SEED,
                                             name_prefix=name))

    dag = pipeline_dag()
    # Set after construction, so in the normalised (list) form the task runner iterates.
    # The load test starts with its plan (cold start, warm-up); its workers send the load, the reduce gates it.
    dag.task_dict[STAGE + "load_test_plan"].on_execute_callback = [degrade_when_the_load_test_starts]
    run = dag.test(run_conf={"pipeline_name": name, "max_error_rate": 0.1, **SMALL_RUN})
    captured = output()

    states = task_states(run)
    assert run.state == "failed" and states[STAGE + "load_test"] == "failed", states
    assert states[STAGE + "smoke_test"] == "success" and states[STAGE + "deploy"] == "success", states
    assert len(fired_rules) == 1, "the fault was not injected when load_test started"

    messages = [e for e in task_errors(captured) if "breached its SLO" in e]
    assert len(messages) == 1, f"load_test did not fail on its SLO gate: {task_errors(captured)}"
    assert f"endpoint '{name}'" in messages[0], messages[0]
    breach = BREACH_RE.search(messages[0])
    assert breach, messages[0]
    concurrency, rate_pct, errors, requests, model_errors, max_pct = breach.groups()
    assert (int(concurrency), int(requests), float(max_pct)) == (4, 20, 10.0)
    assert int(errors) == int(model_errors) and 0.2 <= int(errors) / int(requests) <= 0.8
    assert float(rate_pct) == pytest.approx(100 * int(errors) / int(requests), abs=0.01)

    # The report was written before the gate failed, with the same numbers.
    cfg = config_of(run)
    bucket, key = cfg.report_prefix[len("s3://"):].split("/", 1)
    report = json.loads(aws_clients["s3"].get_object(Bucket=bucket, Key=key + "report.json")["Body"].read())
    assert report["endpoint_name"] == name
    (step,) = report["steps"]
    assert (step["requests"], step["errors"], step["errors_by_code"]) == (
        int(requests), int(errors), {"ModelError": int(errors)})
    assert step["slo_met"] is False and report["slo_breaches"]
    # Every ModelError the emulator injected is accounted for: warm-up plus the measured step.
    (rule,) = [r for r in control.faults() if r["id"] == fired_rules[0]["id"]]
    assert rule["fired"] == report["warmup"]["errors"] + step["errors"]
