"""LabelStudioHook: a missing connection fails the task at once, saying how to start the server and set it."""

from __future__ import annotations

import asyncio

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from sagemaker_vision.hooks.label_studio import (
    DEFAULT_CONN_ID,
    LabelStudioConnectionMissing,
    LabelStudioError,
    LabelStudioHook,
)


@pytest.fixture
def no_label_studio_connection(monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}", raising=False)


def _check(err: LabelStudioConnectionMissing) -> None:
    message = str(err)
    assert isinstance(err, AirflowFailException)  # Airflow fails the task without its retries
    assert isinstance(err, LabelStudioError)  # what the trigger turns into an error event
    assert f"{DEFAULT_CONN_ID!r}" in message and "does not exist" in message
    assert "make label-studio" in message  # how to start the server
    assert "scripts/label_studio.py env" in message and "AIRFLOW_CONN_LABEL_STUDIO_DEFAULT" in message  # and set it


def test_a_missing_connection_fails_at_once_saying_how_to_start_the_server_and_set_it(no_label_studio_connection):
    hook = LabelStudioHook()
    with pytest.raises(LabelStudioConnectionMissing) as err:
        hook.get_project(1)
    _check(err.value)


def test_the_async_side_fails_the_same_way(no_label_studio_connection):
    hook = LabelStudioHook()
    with pytest.raises(LabelStudioConnectionMissing) as err:
        asyncio.run(hook.atask_progress(1))
    _check(err.value)


def test_a_set_connection_is_read(monkeypatch):
    monkeypatch.setenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}",
                       '{"conn_type": "http", "host": "http://127.0.0.1:8081", "password": "t0ken"}')
    assert LabelStudioHook().base_url == "http://127.0.0.1:8081"
