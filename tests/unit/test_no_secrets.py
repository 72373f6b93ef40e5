"""No AWS credential ever reaches task logs, XCom or rendered templates.

The pipeline runs once on the embedded emulator with an ``aws_default`` connection whose key id,
secret and session token are distinctive canaries. Then every XCom of the run, every rendered
template field, the task log files, everything the run printed or logged, and, as a catch-all,
the raw bytes of the metadata database are searched for them. (Airflow encrypts connection
passwords and trigger kwargs with Fernet when a key is set; a canary hidden that way is not a leak.)

It needs the emulator, so it is marked ``integration`` although it lives with the unit tests.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "secrets-canary"
# Shaped like the real thing, so a redaction rule keyed on the AKIA prefix would be exercised too.
CANARY_KEY_ID = "AKIACANARY7Q3X9Z2LK4"
CANARY_SECRET = "canary-secret-9f2c41d8e7b3a6055d1c4e8a"
CANARY_TOKEN = "canary-token-5be0c3a1f4d2b7e6"
CANARIES = (CANARY_KEY_ID, CANARY_SECRET, CANARY_TOKEN)


def leaks(text: str) -> list[str]:
    """The canaries present in ``text``."""
    return [canary for canary in CANARIES if canary in text]


def _dump(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


@pytest.fixture
def canary_connection(emulator_env, aws_clients, monkeypatch) -> None:
    """``aws_default`` on the emulator, authenticating with the canaries (moto accepts any keys)."""
    connection = {
        "conn_type": "aws",
        "login": CANARY_KEY_ID,
        "password": CANARY_SECRET,
        "extra": {"region_name": "us-east-1", "endpoint_url": emulator_env.endpoint_url,
                  "aws_session_token": CANARY_TOKEN},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))


def test_canary_credentials_are_the_ones_the_package_signs_with(canary_connection):
    """Without this, the scan below could pass because the canaries were never used at all."""
    from sagemaker_vision.hooks.base import client

    for service in ("s3", "sagemaker", "sagemaker-runtime"):
        creds = client(service)._request_signer._credentials.get_frozen_credentials()
        assert (creds.access_key, creds.secret_key, creds.token) == CANARIES, service


def test_no_credentials_in_logs_xcom_or_rendered_templates(airflow_db, canary_connection, caplog, capfd):
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    caplog.set_level(logging.INFO)
    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("shapes-detector.pipeline")
    for task in dag.tasks:
        task.retries = 0  # a failure should show at once, not after a 30 s retry delay

    run = dag.test(run_conf={"pipeline_name": PIPELINE, "load_test_requests": 20, "load_test_concurrency": 2})
    out, err = capfd.readouterr()
    printed = "\n".join((caplog.text, out, err))
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    # Every task ran, so every task could have leaked. The message names only the others (pytest cuts long ones).
    others = {task: state for task, state in states.items() if state not in ("success", "skipped")}
    assert run.state == "success", others

    # XCom: every value the run's tasks pushed.
    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel).where(XComModel.dag_id == dag.dag_id, XComModel.run_id == run.run_id)).all()
        xcom_text = {(x.task_id, x.key): _dump(x.value) for x in xcoms}
        rendered = session.scalars(select(RenderedTaskInstanceFields).where(
            RenderedTaskInstanceFields.dag_id == dag.dag_id, RenderedTaskInstanceFields.run_id == run.run_id)).all()
        rendered_text = {r.task_id: _dump(r.rendered_fields) + _dump(r.k8s_pod_yaml) for r in rendered}
    # The scans read real content (the run's endpoint is named in both), or they would prove nothing.
    assert len(xcom_text) >= 8 and any(PIPELINE in text for text in xcom_text.values()), sorted(xcom_text)
    # Every task that ran with templated fields (branches not taken have none to render).
    templated = {task.task_id for task in dag.tasks if task.template_fields and states[task.task_id] == "success"}
    assert templated <= set(rendered_text), templated - set(rendered_text)
    assert any(PIPELINE in text for text in rendered_text.values())
    for where, text in xcom_text.items():
        assert not leaks(text), f"XCom {where} holds {leaks(text)}"
    for task_id, text in rendered_text.items():
        assert not leaks(text), f"rendered template fields of {task_id} hold {leaks(text)}"

    # Logs: task log files, if this runner wrote any (dag.test() logs to the console instead), and
    # everything logged or printed during the run.
    log_files = [p for p in (Path(os.environ["AIRFLOW_HOME"]) / "logs").rglob("*") if p.is_file()]
    for path in log_files:
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not leaks(text), f"{path} holds {leaks(text)}"
    assert "credentials retrieved from login and password" in printed, "the canary connection was not used"
    assert PIPELINE in printed, "nothing the run logged was captured"
    assert not leaks(printed), f"the run's output holds {leaks(printed)}: " + ", ".join(
        printed[max(0, printed.find(c) - 200):printed.find(c) + 50] for c in leaks(printed))

    # Catch-all: the metadata database's raw bytes (task instances, dag run conf, trigger rows, ...).
    url = settings.engine.url
    if url.get_backend_name() == "sqlite" and url.database:
        for path in (Path(url.database), Path(url.database + "-wal")):
            if path.exists():
                data = path.read_bytes()
                found = [c for c in CANARIES if c.encode() in data]
                assert not found, f"the metadata DB ({path.name}) holds {found}"
