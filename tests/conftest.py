"""Test-wide setup: a throwaway AIRFLOW_HOME on SQLite, set before Airflow is imported.

The embedded emulator and the Airflow metadata DB are started once per session, lazily, by
the fixtures that need them, so unit tests stay fast.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_HOME = Path(tempfile.mkdtemp(prefix="sv-airflow-home-"))

# Airflow reads its config at import time, so this must precede any airflow import.
os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",  # keep the executor safeguard on: no nested execute()
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "SAGEMAKER_VISION_POLL_SECONDS": "1",
        "SAGEMAKER_VISION_RETRY_DELAY_SECONDS": "1",
        "SAGEMAKER_VISION_ROLE_ARN": "arn:aws:iam::123456789012:role/sagemaker-vision-execution",
        "SAGEMAKER_VISION_BUCKET": "sagemaker-vision-test",
        # Never reach real AWS from a test, whatever the developer's shell has.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
os.environ.pop("AWS_PROFILE", None)
for path in (ROOT / "plugins", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB in the session's AIRFLOW_HOME."""
    from airflow.utils import db

    db.resetdb(skip_init=False)
    return _HOME


# Each emulator test hands the next one this transition (and so this emulated clock), whatever it set.
SESSION_TRANSITION_SECONDS = 0.5


@pytest.fixture(scope="session")
def emulator():
    """The embedded AWS emulator, shared by every integration test of the session."""
    from local_aws import Emulator

    emu = Emulator(transition_seconds=SESSION_TRANSITION_SECONDS)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def emulator_env(emulator, monkeypatch):
    """Point Airflow's aws_default connection (and boto3) at the emulator for one test.

    Afterwards the emulator's clock and rules are the session's again, whatever the test set: a
    slower transition (and so a slower emulated clock) or a fault rule left behind would otherwise
    reach every later test, and fail one far from its cause. Its AWS resources are left alone."""
    from local_aws import Control, airflow_env
    from local_aws.extension import MISSING_KEY_STATUS

    for key, value in airflow_env(emulator.endpoint_url).items():
        monkeypatch.setenv(key, value)
    yield emulator
    emulator.set_transition_seconds(SESSION_TRANSITION_SECONDS)
    control = Control(emulator.endpoint_url)
    control.clear_faults()
    control.clear_training_map()
    control.clear_durations()
    control.set_time_scale(None)
    control.set_missing_key_status(MISSING_KEY_STATUS)


@pytest.fixture
def aws_clients(emulator_env):
    """boto3 clients on the emulator, and the project bucket the params default to."""
    import boto3

    kwargs = {"endpoint_url": emulator_env.endpoint_url, "region_name": "us-east-1"}
    clients = {name: boto3.client(name, **kwargs) for name in ("s3", "sagemaker", "sagemaker-runtime")}
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    try:
        clients["s3"].create_bucket(Bucket=bucket)
    except clients["s3"].exceptions.BucketAlreadyOwnedByYou:
        pass
    return clients


@pytest.fixture
def control(aws_clients, emulator_env):
    """The emulator's control API with no fault rules before or after the test (a module that
    needs more set up, such as a fixed mAP, defines its own ``control``)."""
    from local_aws import Control

    ctl = Control(emulator_env.endpoint_url)
    ctl.clear_faults()
    yield ctl
    ctl.clear_faults()


# Contract tests: every AWS request of the session is captured at the client and checked against
# the service model; the report and its verdict come at the end (tests/contract/plugin.py).
from tests.contract.plugin import (  # noqa: E402,F401
    pytest_collection_finish,
    pytest_configure,
    pytest_deselected,
    pytest_runtest_logreport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
