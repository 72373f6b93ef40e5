"""The teardown DAG's task bodies: what no retry can fix fails the task at once, before any AWS call."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE
from sagemaker_vision.core.teardown import EndpointState, Inventory
from sagemaker_vision.pipeline import teardown


class NoAws:
    """A client that fails the test when it is used at all."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"AWS called: {name}")


class Region:
    meta = type("Meta", (), {"region_name": "us-east-1"})()


@pytest.fixture
def no_aws(monkeypatch):
    monkeypatch.setattr(teardown, "_clients", lambda aws_conn_id: (NoAws(), NoAws(), NoAws()))


@pytest.mark.parametrize(("params", "field"), [
    ({"endpoint_name": "a b"}, "endpoint_name"),
    ({"endpoint_name": "shapes", "keep_models": -1}, "keep_models"),
    ({"endpoint_name": "shapes", "dry_run": "no"}, "dry_run"),
])
def test_bad_params_fail_both_tasks_at_once_naming_the_param(no_aws, params, field):
    with pytest.raises(AirflowFailException, match=f"^{field}: "):
        teardown.plan_task(params)
    with pytest.raises(AirflowFailException, match=f"^{field}: "):
        teardown.execute_task({"endpoint_name": "shapes"}, params)


def test_a_dry_run_skips_the_execute_task_before_any_aws_call(no_aws):
    with pytest.raises(AirflowSkipException, match="dry_run is true"):
        teardown.execute_task({"endpoint_name": "shapes"}, {"endpoint_name": "shapes", "dry_run": True})


def test_a_plan_approved_for_another_endpoint_is_refused(no_aws):
    with pytest.raises(AirflowFailException, match="the approved plan is for 'other', not 'shapes'"):
        teardown.execute_task({"endpoint_name": "other"}, {"endpoint_name": "shapes"})


def test_an_unmanaged_endpoint_fails_the_plan_task_without_retries(monkeypatch):
    endpoint = EndpointState("shapes", "InService", "shapes-1", {"owner": "data-team"})
    monkeypatch.setattr(teardown, "_clients", lambda aws_conn_id: (Region(), NoAws(), NoAws()))
    monkeypatch.setattr(teardown, "gather_inventory", lambda *clients: Inventory("shapes", endpoint))
    with pytest.raises(AirflowFailException, match=f"endpoint shapes is not tagged {PACKAGE_TAG}={PACKAGE_TAG_VALUE}"):
        teardown.plan_task({"endpoint_name": "shapes"})
