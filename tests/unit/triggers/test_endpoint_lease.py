"""EndpointLeaseTrigger's classpath and kwargs survive the triggerer's round trip (serialize, import, rebuild)."""

from __future__ import annotations

import importlib
import json

from sagemaker_vision.triggers.endpoint_lease import EndpointLeaseTrigger


def test_the_lease_trigger_round_trips_through_its_classpath():
    trigger = EndpointLeaseTrigger(bucket="b", key="sagemaker-vision-locks/endpoints/us-east-1/ep.json",
                                   owner="dag/run/2026-12-01T00:00:00.000000Z", poll_seconds=5, deadline=1e9,
                                   aws_conn_id="aws_default", region_name="us-east-1")
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.endpoint_lease.EndpointLeaseTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # the triggerer stores them as JSON
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
