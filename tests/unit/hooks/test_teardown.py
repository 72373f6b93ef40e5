"""The teardown executor on fake clients: the order, what was already gone, what is not swallowed."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.core.teardown import plan_teardown
from sagemaker_vision.hooks.sagemaker import is_not_found
from sagemaker_vision.hooks.teardown import execute_plan
from tests.unit.core.test_teardown import inventory


# -- execution with fake clients ---------------------------------------------------------------------
def missing(operation: str, message: str = "Could not find it") -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation)


class Fake:
    """Records calls; names in ``gone`` answer like a missing resource."""

    def __init__(self, gone: set[str] = frozenset(), alarms: set[str] = frozenset()) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gone = gone
        self.alarms = set(alarms)

    def _call(self, op: str, name: str) -> dict[str, Any]:
        self.calls.append((op, name))
        if name in self.gone:
            raise missing(op, "No scalable target found" if "scalable" in op else "Could not find it")
        return {}

    def delete_endpoint(self, EndpointName: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return self._call("delete_endpoint", EndpointName)

    def delete_endpoint_config(self, EndpointConfigName: str) -> dict[str, Any]:  # noqa: N803
        return self._call("delete_endpoint_config", EndpointConfigName)

    def delete_model(self, ModelName: str) -> dict[str, Any]:  # noqa: N803
        return self._call("delete_model", ModelName)

    def describe_alarms(self, AlarmNames: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"MetricAlarms": [{"AlarmName": n} for n in AlarmNames if n in self.alarms]}

    def delete_alarms(self, AlarmNames: list[str]) -> dict[str, Any]:  # noqa: N803
        self.alarms -= set(AlarmNames)
        return self._call("delete_alarms", AlarmNames[0])

    def delete_scaling_policy(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("delete_scaling_policy", kwargs["PolicyName"])

    def deregister_scalable_target(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("deregister_scalable_target", kwargs["ResourceId"])


def test_execute_deletes_in_order_and_reports_what_was_already_gone(caplog):
    plan = plan_teardown(inventory(), keep_models=2, delete_endpoint=True)
    sagemaker = Fake(gone={"shapes-1"})
    cloudwatch = Fake(alarms={"shapes-5xx"})  # shapes-latency already deleted by a previous run
    aas = Fake(gone={"endpoint/shapes/variant/AllTraffic"})
    with caplog.at_level("INFO"):
        result = execute_plan(plan, sagemaker, cloudwatch, aas)
    assert sagemaker.calls[-1] == ("delete_endpoint", "shapes")
    assert [c for c in sagemaker.calls if c[0] == "delete_model"] == [("delete_model", "shapes-1"),
                                                                        ("delete_model", "shapes-2")]
    gone = {(a["kind"], a["name"]) for a in result["already_gone"]}
    assert gone == {("endpoint-config", "shapes-1"), ("model", "shapes-1"), ("alarm", "shapes-latency"),
                    ("scalable-target", "endpoint/shapes/variant/AllTraffic")}
    assert ("endpoint", "shapes") in {(a["kind"], a["name"]) for a in result["deleted"]}
    assert result["monthly_usd_stopped"] == "165.60"
    assert "Deleted endpoint shapes" in caplog.text and "Standing cost stopped: $165.60" in caplog.text


def test_cost_is_only_claimed_when_this_run_deleted_the_endpoint():
    plan = plan_teardown(inventory(), keep_models=2, delete_endpoint=True)
    result = execute_plan(plan, Fake(gone={"shapes"}), Fake(), Fake())
    assert result["monthly_usd_stopped"] == "0"
    assert result["cost_detail"] == []


def test_other_errors_are_not_swallowed():
    class Broken(Fake):
        def delete_model(self, ModelName: str) -> dict[str, Any]:  # noqa: N803
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DeleteModel")

    plan = plan_teardown(inventory(), keep_models=2, delete_endpoint=True)
    with pytest.raises(ClientError, match="AccessDenied"):
        execute_plan(plan, Broken(), Fake(), Fake())


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("ValidationException", 'Could not find model "x".', True),
        ("ValidationException", "Could not find endpoint configuration 'arn'.", True),
        ("ResourceNotFound", "", True),
        ("ValidationException", "Cannot update in-progress endpoint", False),
        ("ThrottlingException", "not found", False),
    ],
)
def test_is_not_found(code, message, expected):
    assert is_not_found(ClientError({"Error": {"Code": code, "Message": message}}, "Op")) is expected
