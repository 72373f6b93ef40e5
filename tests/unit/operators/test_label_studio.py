"""LabelStudioLabelingOperator without a server: what fails before any Label Studio call."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from sagemaker_vision.hooks.label_studio import DEFAULT_CONN_ID
from sagemaker_vision.operators.label_studio import LabelStudioLabelingOperator


def test_a_missing_label_studio_connection_fails_the_task_at_once(monkeypatch):
    monkeypatch.delenv(f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}", raising=False)
    op = LabelStudioLabelingOperator(task_id="ls", project_title="shapes", labels=["dot"],
                                     output_manifest_uri="s3://bkt/labels/ls.manifest",
                                     image_uris=["s3://bkt/raw/a.jpg"], retries=3)
    monkeypatch.setattr(op, "_guard_secrets", lambda: None)  # the AWS side is not under test here
    with pytest.raises(AirflowFailException, match="make label-studio") as err:
        op.execute({})
    assert "AIRFLOW_CONN_LABEL_STUDIO_DEFAULT" in str(err.value)  # and how to set the connection


def test_resuming_on_a_missing_connection_event_fails_the_task_at_once():
    op = LabelStudioLabelingOperator(task_id="ls", project_title="shapes", labels=["dot"],
                                     output_manifest_uri="s3://bkt/labels/ls.manifest",
                                     image_uris=["s3://bkt/raw/a.jpg"], retries=3)
    event = {"status": "missing_connection", "project_id": 7, "message": "start it with `make label-studio`"}
    with pytest.raises(AirflowFailException, match="make label-studio"):
        op.execute_complete({}, event, deadline=None, expected=2)
