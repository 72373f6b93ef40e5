"""Shared by `make demo` and `make airflow`: a local Airflow home wired to the embedded emulator.

Development tooling only. The emulator runs in this process (moto's ThreadedMotoServer plus
local_aws's extensions); Airflow components run as subprocesses that reach it over 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".state"
AIRFLOW_HOME = STATE / "airflow-home"  # `make airflow`'s instance
DEMO_AIRFLOW_HOME = STATE / "demo" / "airflow"  # `make demo`'s: its runs never show in the UI's
BIN = Path(sys.executable).parent
DEMO_ROLE_ARN = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"
DEMO_BUCKET = "sagemaker-vision-demo"

sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]


def airflow_base_env(home: Path = AIRFLOW_HOME) -> dict[str, str]:
    """Airflow settings for a laptop-sized local install on SQLite in ``home``."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",  # 2 cores: more only thrashes
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "SAGEMAKER_VISION_ROLE_ARN": DEMO_ROLE_ARN,
        "SAGEMAKER_VISION_BUCKET": DEMO_BUCKET,
        "SAGEMAKER_VISION_POLL_SECONDS": "1",
        "SAGEMAKER_VISION_RETRY_DELAY_SECONDS": "5",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    }


def start_emulator(port: int = 0, transition_seconds: float = 2.0, home: Path = AIRFLOW_HOME):
    """Start the emulator, create the demo bucket, and return (emulator, env for subprocesses)."""
    import boto3

    from local_aws import Emulator, airflow_env

    emu = Emulator(port=port, transition_seconds=transition_seconds)
    endpoint_url = emu.start()
    env = {**os.environ, **airflow_base_env(home), **airflow_env(endpoint_url)}
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        env.pop(key, None)
    s3 = boto3.client(
        "s3", endpoint_url=endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket=DEMO_BUCKET)
    return emu, env


def migrate_db(env: dict[str, str], stop: Callable[[], bool] = lambda: False) -> bool:
    """`airflow db migrate` once per Airflow version in ``env``'s AIRFLOW_HOME (idempotent, but
    it takes seconds). Runs in a process group of its own, stopped as a whole when ``stop()``
    turns true; returns False then. A failed migration raises CalledProcessError."""
    from _procs import launch, log_tail, stop_groups

    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    import airflow

    stamp = home / f".migrated-{airflow.__version__}"
    if stamp.exists():
        return True
    log_path = home / "db-migrate.log"
    with open(log_path, "wb") as log:
        proc = launch([str(BIN / "airflow"), "db", "migrate"], env, log)
        while proc.poll() is None:
            if stop():
                stop_groups([proc], grace=5)
                return False
            time.sleep(0.1)
    if proc.returncode:
        print(f"`airflow db migrate` failed ({log_path}):\n{log_tail(log_path)}", file=sys.stderr)
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    stamp.touch()
    return True
