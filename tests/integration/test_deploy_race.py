"""Two runs deploying to one endpoint at once never let a worse model replace a better one (issue 9, item 3).

Two separate "Airflow installations" (two processes, each with its own metadata DB, as two Celery
hosts of different deployments would be; tests/integration/race_child.py) run
``shapes-detector.retrain`` at the same moment against one emulator, three times, each time on
an endpoint that serves a baseline model of mAP 0.6. One run trains a model of mAP 0.9, the other
one of 0.7: both beat the baseline, so without a lock both pass a gate that reads 0.6, and the
later deploy wins. The timing is made adversarial on purpose: the better model trains faster (its
job takes 300 emulated s, the worse one 2700 s: 2 s later at the emulator's time scale) and the
endpoint update is quick (60 emulated s), so the worse run gates while the better one is on its way
to the deploy, and deploys once the better model serves.

With the endpoint lease the worse run waits (deferred) until the better run's section is over,
then gates against 0.9 and is refused. A poller records every config the endpoint is InService on;
the mAPs of that sequence must never go down, and the better model must be serving at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local_aws import Control, airflow_env
from tests.integration.test_rollback_emulator import seed_endpoint, seed_labels

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PREFIX, OTHER_PREFIX = "race", "race-team-b"
BASELINE, GOOD, WORSE = 0.6, 0.9, 0.7
CONF = {"prefix": PREFIX, "load_test_requests": 4, "load_test_concurrency": 1, "map_tolerance": 0.02}


class Installation:
    """A child process with its own AIRFLOW_HOME (a copy of the migrated session DB)."""

    def __init__(self, name: str, tmp: Path, airflow_home: Path, endpoint_url: str) -> None:
        self.dir = tmp / name
        self.dir.mkdir()
        for suffix in ("", "-wal", "-shm"):  # SQLite in WAL mode keeps recent pages beside the file
            if (airflow_home / f"airflow.db{suffix}").exists():
                shutil.copy(airflow_home / f"airflow.db{suffix}", self.dir / f"airflow.db{suffix}")
        env = {**os.environ, **airflow_env(endpoint_url), "AIRFLOW_HOME": str(self.dir),
               "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.dir / 'airflow.db'}",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)])}
        self.log = open(self.dir / "log.txt", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.integration.race_child", str(self.dir)], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not (self.dir / "ready").exists():
            assert self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.2)

    def start(self, run: int, run_after: datetime, conf: dict[str, Any]) -> Path:
        result = self.dir / f"result-{run}.json"
        job = {"dag_id": "shapes-detector.retrain", "run_after": run_after.isoformat(), "conf": conf,
               "result": str(result)}
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        return result

    def result(self, path: Path, timeout: float = 400) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not path.exists():
            assert self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.2)
        return json.loads(path.read_text())

    def tail(self) -> str:
        self.log.flush()
        return (self.dir / "log.txt").read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class ServingRecorder(threading.Thread):
    """Every config the endpoint is InService on, in order, polled every 50 ms."""

    def __init__(self, sm: Any, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.sm, self.endpoint, self.seen, self.done = sm, endpoint, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            description = self.sm.describe_endpoint(EndpointName=self.endpoint)
            if description["EndpointStatus"] == "InService" and (
                    not self.seen or self.seen[-1] != description["EndpointConfigName"]):
                self.seen.append(description["EndpointConfigName"])
            time.sleep(0.05)


@pytest.fixture
def installations(airflow_db: Path, aws_clients: dict[str, Any], emulator_env: Any,
                  tmp_path: Path) -> Iterator[tuple[Installation, Installation]]:
    ctl = Control(emulator_env.endpoint_url)
    ctl.clear_faults()
    ctl.set_time_scale(1200)
    pair = (Installation("a", tmp_path, airflow_db, emulator_env.endpoint_url),
            Installation("b", tmp_path, airflow_db, emulator_env.endpoint_url))
    try:
        for one in pair:
            one.wait_ready()
        yield pair
    finally:
        for one in pair:
            one.stop()
        ctl.clear_durations()
        ctl.clear_training_map()
        ctl.set_time_scale(None)


def test_two_runs_at_once_three_times_never_let_a_worse_model_replace_a_better_one(aws_clients, emulator_env,
                                                                                   installations):
    import boto3

    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    s3 = aws_clients["s3"]
    sm = boto3.client("sagemaker", endpoint_url=emulator_env.endpoint_url, region_name="us-east-1")
    ctl = Control(emulator_env.endpoint_url)
    seed_labels(s3, bucket, PREFIX, "2026-06-01")
    # The worse run writes under a prefix of its own: the lock is per endpoint, not per prefix.
    seed_labels(s3, bucket, OTHER_PREFIX, "2026-06-01")
    # A quick update: the better model serves soon after its deploy starts, so a worse run that gated
    # before that (against the baseline) finds the endpoint InService and updates it.
    ctl.set_duration("endpoint_update", 60, name_prefix="race-ep")
    at = datetime(2026, 6, 3, 6, 0, tzinfo=UTC)
    for round_ in range(1, 4):
        endpoint = f"race-ep{round_}"
        # The installations swap roles each round: the better model comes from either side.
        good_side, worse_side = installations if round_ % 2 else installations[::-1]
        good, worse = f"race{round_}-good", f"race{round_}-worse"
        ctl.set_training_map(GOOD, name_prefix=f"{good}-")
        ctl.set_training_map(WORSE, name_prefix=f"{worse}-")
        ctl.set_duration("training", 300, name_prefix=f"{good}-")  # 0.25 real s
        ctl.set_duration("training", 2700, name_prefix=f"{worse}-")  # 2 real s later
        maps = {seed_endpoint(sm, s3, bucket, PREFIX, endpoint, BASELINE): BASELINE}
        recorder = ServingRecorder(sm, endpoint)
        recorder.start()
        started = time.monotonic()
        good_at, worse_at = at + timedelta(days=round_, seconds=1), at + timedelta(days=round_, seconds=2)
        good_result = good_side.start(round_, good_at, {**CONF, "pipeline_name": good, "endpoint_name": endpoint})
        worse_result = worse_side.start(round_, worse_at, {**CONF, "pipeline_name": worse, "endpoint_name": endpoint,
                                                           "epochs": 31, "prefix": OTHER_PREFIX})
        good_run, worse_run = good_side.result(good_result), worse_side.result(worse_result)
        time.sleep(0.3)
        recorder.done.set()
        recorder.join()
        maps[f"{good}-{good_at:%Y%m%d-%H%M%S}"] = GOOD
        maps[f"{worse}-{worse_at:%Y%m%d-%H%M%S}"] = WORSE
        served = [maps.get(config, -1.0) for config in recorder.seen]
        print(f"round {round_}: {time.monotonic() - started:.1f} s, served {recorder.seen}")
        assert served == sorted(served), f"round {round_}: a worse model replaced a better one: {recorder.seen}"
        assert served[-1] == GOOD, recorder.seen
        assert good_run["state"] == "success", (good_run, good_side.tail())
        assert worse_run["state"] == "success", (worse_run, worse_side.tail())
        final = sm.describe_endpoint(EndpointName=endpoint)
        assert final["EndpointConfigName"] == f"{good}-{good_at:%Y%m%d-%H%M%S}"
        # The worse run waited (deferred) for the lease, then its gate read the better model's score and refused.
        worse_side.log.flush()
        assert f"Endpoint {endpoint} is locked" in (worse_side.dir / "log.txt").read_text(errors="replace")
        tasks = worse_run["tasks"]  # the train_and_deploy task group's
        assert tasks["train_and_deploy.quality_gate"] == "success" and tasks["train_and_deploy.deploy"] == "skipped", (
            worse_run)
        # One lock object per endpoint, outside any run's prefix (the two installations could use others).
        key = f"sagemaker-vision-locks/endpoints/us-east-1/{endpoint}.json"
        lease = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert lease["released"] is True, lease
