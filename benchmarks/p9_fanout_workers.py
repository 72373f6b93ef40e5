"""P9: two mapped load workers under the LocalExecutor reach >= 1.8x one worker's throughput.

Real Airflow: an api-server, a scheduler (LocalExecutor, parallelism 4) and a dag-processor
(``tests/airflow_cluster.py``) run a DAG that is nothing but the fanned-out load test
(``pipeline.load_test.fanned_out_load_test``: plan -> mapped workers -> reduce), against
``benchmarks/stub_server.py`` (InvokeEndpoint, 50 ms service time) at C=200 for one step. The
emulator (``local_aws``) answers S3 and the SageMaker control plane (DescribeEndpoint, tags), so
the workers sync on S3's clock through it. Each worker is one asyncio process (``processes=1``):
one worker is one process's worth of client CPU, which at C=200 x 50 ms (4,000 req/s ideal) is
the limit, as README "Engine choice" measured. The run with ``load_workers=1`` and the run with
``load_workers=2`` are made one after the other on the same cluster and stub (then both again,
and the better of each kept: other load only ever slows a run). The ratio is the merged
report's step throughput (successes over the step's wall time across workers) of two workers
over one worker's.

Usage: benchmarks/p9_fanout_workers.py [--step-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _bench import FAKE_CREDENTIALS, REGION, detail, emit, loadavg, payloads, stub_server

TARGET = 1.8
CONCURRENCY = 200
SERVICE_MS = 50.0
BUCKET = "p9-bench"
ENDPOINT = "p9-stub"
DAG_ID = "p9_fanout"

DAG_SOURCE = '''"""P9's DAG: the fanned-out load test alone, against the stub."""
import pendulum
from airflow.sdk import DAG, Param

from sagemaker_vision.pipeline.load_test import fanned_out_load_test

with DAG("{dag_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
         max_active_runs=1, params={{"load_workers": Param(1, type="integer", minimum=1, maximum=16)}}):
    fanned_out_load_test(
        load_workers="{{{{ params.load_workers }}}}", endpoint_name="{endpoint}",
        payload_prefix="s3://{bucket}/images/",
        report_s3_prefix="s3://{bucket}/reports/{{{{ run_id | replace(':', '-') }}}}/",
        concurrency_steps=[{concurrency}], step_seconds={step_seconds}, max_requests_per_step=1000000,
        slo_p95_ms=None, max_error_rate=None, warmup_requests=5, request_timeout_s=10.0,
        engine="asyncio", processes=1, aws_conn_id="aws_bench", region_name="{region}")
'''


def _prepare_aws(endpoint_url: str) -> None:
    import boto3

    kw = {"endpoint_url": endpoint_url, "region_name": REGION, **FAKE_CREDENTIALS}
    s3, sm = boto3.client("s3", **kw), boto3.client("sagemaker", **kw)
    s3.create_bucket(Bucket=BUCKET)
    for name, body, content_type in payloads(4):
        s3.put_object(Bucket=BUCKET, Key=f"images/{name}", Body=body, ContentType=content_type)
    sm.create_model(ModelName=ENDPOINT, ExecutionRoleArn="arn:aws:iam::123456789012:role/p9",
                    PrimaryContainer={"Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
                                      "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=ENDPOINT, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": ENDPOINT, "InitialInstanceCount": 1,
         "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=ENDPOINT,
                       Tags=[{"Key": "load-test-allowed", "Value": "true"}])
    sm.get_waiter("endpoint_in_service").wait(EndpointName=ENDPOINT, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def _retry(cluster, *args: str):
    for _ in range(10):  # SQLite allows one writer: the CLI can lose to the scheduler
        done = cluster.airflow(*args)
        if done.returncode == 0 or "database is locked" not in done.stderr:
            return done
        time.sleep(2)
    return done


def _run(cluster, workers: int, endpoint_url: str, timeout_s: float) -> dict:
    import boto3

    run_id = f"p9-{workers}w-{int(time.time())}"
    triggered = _retry(cluster, "dags", "trigger", DAG_ID, "--run-id", run_id,
                       "--conf", json.dumps({"load_workers": workers}))
    if triggered.returncode != 0:
        raise RuntimeError(triggered.stdout + triggered.stderr)
    token, deadline = cluster.token(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = cluster.api(f"/dags/{DAG_ID}/dagRuns/{run_id}", token)
        if run["state"] in ("success", "failed"):
            break
        time.sleep(2)
    else:
        raise TimeoutError(f"{run_id} still {run['state']} after {timeout_s:.0f} s")
    if run["state"] != "success":
        tis = cluster.api(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=50", token)["task_instances"]
        raise RuntimeError(f"{run_id} failed: {[(t['task_id'], t['map_index'], t['state']) for t in tis]}\n"
                           f"{cluster.log_tail('scheduler', 2000)}")
    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=REGION, **FAKE_CREDENTIALS)
    key = f"reports/{run_id.replace(':', '-')}/report.json"
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from local_aws import Emulator, airflow_env
    from tests.airflow_cluster import AirflowCluster

    with tempfile.TemporaryDirectory(prefix="p9-") as tmp, stub_server(SERVICE_MS) as stub:
        emu = Emulator(port=0, transition_seconds=0.05)
        endpoint_url = emu.start()
        try:
            _prepare_aws(endpoint_url)
            dags = Path(tmp) / "dags"
            dags.mkdir()
            (dags / "p9_fanout.py").write_text(DAG_SOURCE.format(
                dag_id=DAG_ID, endpoint=ENDPOINT, bucket=BUCKET, concurrency=CONCURRENCY,
                step_seconds=args.step_seconds, region=REGION))
            env = {**os.environ, **airflow_env(endpoint_url)}
            env.pop("AWS_ENDPOINT_URL", None)
            env.update({
                # S3 and SageMaker to the emulator, InvokeEndpoint to the stub: per-service endpoints.
                "AIRFLOW_CONN_AWS_BENCH": json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                                                      "extra": {"region_name": REGION}}),
                "AWS_ENDPOINT_URL_S3": endpoint_url, "AWS_ENDPOINT_URL_SAGEMAKER": endpoint_url,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": stub.url,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            })
            cluster = AirflowCluster(Path(tmp) / "home", env, components=("api-server", "scheduler", "dag-processor"))
            cluster.env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
            try:
                cluster.start()
                deadline = time.monotonic() + 180
                while _retry(cluster, "dags", "unpause", DAG_ID).returncode != 0:
                    if time.monotonic() > deadline:
                        raise TimeoutError(cluster.log_tail("dag-processor"))
                    time.sleep(2)
                best: dict[int, dict] = {}
                for _ in range(args.rounds):
                    for workers in (1, 2):
                        report = _run(cluster, workers, endpoint_url, timeout_s=300)
                        step = report["steps"][0]
                        starts = [w["steps"][0]["started_at"] for w in report["fanout"]["workers"]]
                        detail(f"load_workers={workers}: {step['throughput_rps']:.0f} req/s ok "
                               f"({step['successes']} in {step['duration_s']:.1f} s), in flight "
                               f"{step['achieved_concurrency']:.0f}, p95 {step['p95_ms']} ms, client CPU "
                               f"{step['client_cpu_ratio']:.2f}, merged {report['fanout']['merged_workers']}, "
                               f"{sum(step['errors_by_code'].values())} errors, "
                               f"starts {max(starts) - min(starts):.3f} s apart; {loadavg()}")
                        if workers not in best or step["throughput_rps"] > best[workers]["steps"][0]["throughput_rps"]:
                            best[workers] = report
            finally:
                cluster.stop()
        finally:
            emu.stop()
    one, two = (best[w]["steps"][0]["throughput_rps"] for w in (1, 2))
    detail(f"ideal {CONCURRENCY / SERVICE_MS * 1000:.0f} req/s; one worker {one:.0f}, two workers {two:.0f}; "
           f"worker shares {[c['requests'] for c in best[2]['fanout']['workers'][0]['steps']]} + "
           f"{[c['requests'] for c in best[2]['fanout']['workers'][1]['steps']]}")
    emit("P9", "two-mapped-workers-vs-one", two / one, ">=", TARGET,
         also=best[2]["fanout"]["merged_workers"] == 2)


if __name__ == "__main__":
    main()
