"""Promoting a challenger and waiting for the endpoint, on a fake SageMaker client."""

from __future__ import annotations

import pytest

from sagemaker_vision.core.ab_test import promotion_request
from sagemaker_vision.core.endpoint_waits import ENDPOINT_SETTLED
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import ab_test
from sagemaker_vision.hooks import sagemaker as sagemaker_hooks
from tests.unit.core.test_ab_test import ab_described
from tests.unit.hooks.test_scaling import FakeSageMaker, described


def test_promote_updates_weights_then_waits_in_service():
    client = FakeSageMaker(ab_described(0.9, 0.1), ab_described(0.0, 1.0))
    result = ab_test.promote_challenger(client, "shapes", waiter_delay=1, waiter_max_attempts=5)
    assert client.updates == [promotion_request("shapes")]
    assert client.describes == 2  # before, then the wait's first poll sees InService
    assert result == {"endpoint_name": "shapes", "changed": True, "weights": {"Champion": 0.0, "Challenger": 1.0}}


def test_promote_is_a_no_op_when_already_promoted():
    client = FakeSageMaker(ab_described(0.0, 1.0))
    result = ab_test.promote_challenger(client, "shapes")
    assert client.updates == [] and client.waits == []
    assert result["changed"] is False


def test_promote_waits_for_an_endpoint_in_progress_first():
    client = FakeSageMaker(ab_described(0.9, 0.1, "Updating"), ab_described(0.9, 0.1), ab_described(0.0, 1.0))
    ab_test.promote_challenger(client, "shapes", waiter_delay=1, waiter_max_attempts=5)
    assert client.describes == 3 and len(client.updates) == 1


@pytest.mark.parametrize("status", ["Failed", "UpdateRollbackFailed", "OutOfService", "Deleting"])
def test_wait_in_service_fails_at_the_first_poll_that_sees_a_failed_state(status):
    # The old wait (boto's endpoint_in_service waiter) failed on Failed only: UpdateRollbackFailed and
    # OutOfService were polled until the attempts ran out.
    failed = {**ab_described(0.9, 0.1, status), "FailureReason": "the old fleet could not be restored"}
    client, slept = FakeSageMaker(ab_described(0.9, 0.1, "Updating"), failed), []
    with pytest.raises(RuntimeError, match=f"shapes is {status}: the old fleet could not be restored"):
        ab_test.wait_in_service(client, "shapes", waiter_delay=30, waiter_max_attempts=100, sleep=slept.append)
    assert client.describes == 2 and slept == [30]


def test_wait_in_service_polls_for_the_whole_budget_then_says_the_operation_goes_on():
    client, slept = FakeSageMaker(ab_described(0.9, 0.1, "Updating")), []
    with pytest.raises(RuntimeError, match="still Updating after 5 checks 30 s apart; the operation goes on"):
        ab_test.wait_in_service(client, "shapes", waiter_delay=30, budget_s=100, sleep=slept.append)
    assert client.describes == 5 and slept == [30, 30, 30, 30]  # 4 delays span 120 s >= 100 s


def test_wait_in_service_uses_the_one_waiter_definition(monkeypatch):
    # The acceptors of hooks.sagemaker.ENDPOINT_SETTLED_MODEL (waiters/sagemaker_vision.json) decide; the loop
    # no longer has its own list.
    model = {"version": 2, "waiters": {ENDPOINT_SETTLED: {
        **sagemaker_hooks.ENDPOINT_SETTLED_MODEL["waiters"][ENDPOINT_SETTLED],
        "acceptors": [{"matcher": "path", "argument": "EndpointStatus", "expected": "Updating",
                       "state": "success"}]}}}
    monkeypatch.setattr(sagemaker_hooks, "ENDPOINT_SETTLED_MODEL", model)
    client = FakeSageMaker(ab_described(0.9, 0.1, "Updating"))
    assert ab_test.wait_in_service(client, "shapes", waiter_delay=1, waiter_max_attempts=3,
                                   sleep=lambda _: None)["EndpointStatus"] == "Updating"


def test_wait_in_service_fails_at_once_on_an_endpoint_that_is_gone():
    from botocore.exceptions import ClientError

    class Gone:
        def describe_endpoint(self, EndpointName):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find endpoint"}},
                              "DescribeEndpoint")

    with pytest.raises(RuntimeError, match="cannot be waited for.*Could not find endpoint"):
        ab_test.wait_in_service(Gone(), "shapes", waiter_delay=1, waiter_max_attempts=50, sleep=lambda _: None)


def test_promote_fails_when_the_weights_did_not_move():
    client = FakeSageMaker(ab_described(0.9, 0.1), ab_described(0.9, 0.1))
    with pytest.raises(RuntimeError, match="weights did not change"):
        ab_test.promote_challenger(client, "shapes")


def test_promote_refuses_an_endpoint_without_both_variants():
    client = FakeSageMaker(described())
    with pytest.raises(ConfigError, match=r"not an A/B endpoint: it has variants \['AllTraffic'\]"):
        ab_test.promote_challenger(client, "shapes")
    assert client.updates == []
