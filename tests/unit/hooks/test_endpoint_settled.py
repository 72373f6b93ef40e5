"""The endpoint_settled waiter (waiters/sagemaker_vision.json, loaded by hooks.sagemaker): it fails at once on
every failed state of core.endpoint_waits, sync, async and in the loops that poll themselves."""

from __future__ import annotations

import boto3
from botocore.waiter import WaiterModel

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.hooks.sagemaker import ENDPOINT_SETTLED_MODEL, SageMakerVisionHook, settled_outcome


def test_the_waiter_fails_on_every_failed_state_and_succeeds_on_in_service_only():
    acceptors = ENDPOINT_SETTLED_MODEL["waiters"][waits.ENDPOINT_SETTLED]["acceptors"]
    by_state = {}
    for acceptor in acceptors:
        if acceptor["matcher"] == "path":
            by_state.setdefault(acceptor["state"], set()).add(acceptor["expected"])
    assert by_state == {"success": {"InService"}, "failure": set(waits.FAILED_STATES)}


def test_the_hooks_waiter_is_the_endpoint_settled_model_on_the_given_client():
    hook = SageMakerVisionHook(aws_conn_id=None, region_name="us-east-1")
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    waiter = hook.get_waiter(waits.ENDPOINT_SETTLED, client=client)
    model = WaiterModel(ENDPOINT_SETTLED_MODEL).get_waiter(waits.ENDPOINT_SETTLED)
    assert [(a.state, a.matcher, a.expected) for a in waiter.config.acceptors] == \
        [(a.state, a.matcher, a.expected) for a in model.acceptors]
    assert waiter._operation_method._client_method.__self__ is client


def test_settled_outcome_reads_the_waiter_models_acceptors():
    assert settled_outcome({"EndpointStatus": "InService"}) == "success"
    assert all(settled_outcome({"EndpointStatus": s}) == "failure" for s in waits.FAILED_STATES)
    assert all(settled_outcome({"EndpointStatus": s}) is None for s in waits.IN_FLIGHT_STATES)
    assert settled_outcome({"Error": {"Code": "ValidationException"}}) == "failure"
