"""LabelStudioTrigger without a server: a triggerer that lacks the connection says so in its event."""

from __future__ import annotations

import asyncio

from sagemaker_vision.hooks.label_studio import DEFAULT_CONN_ID
from sagemaker_vision.triggers.label_studio import LabelStudioTrigger


def test_a_missing_connection_in_the_triggerer_is_its_own_event(monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}", raising=False)
    trigger = LabelStudioTrigger(project_id=7, expected_tasks=2, poll_interval=0.01, max_attempts=3)

    async def first_event():
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(first_event())
    assert payload["status"] == "missing_connection" and payload["project_id"] == 7
    assert "make label-studio" in payload["message"]
