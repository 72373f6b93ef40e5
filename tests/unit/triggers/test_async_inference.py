"""The async inference trigger survives the triggerer's database round trip."""

from __future__ import annotations

from sagemaker_vision.triggers.async_inference import AsyncInferenceOutputTrigger


def test_trigger_round_trips_through_serialize():
    trigger = AsyncInferenceOutputTrigger(output_location="s3://b/out/1.out", failure_location="s3://b/f/1-error.out",
                                          poll_interval=2, max_attempts=7, region_name="eu-west-1")
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.async_inference.AsyncInferenceOutputTrigger"
    assert AsyncInferenceOutputTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["max_attempts"] == 7 and kwargs["failure_location"] == "s3://b/f/1-error.out"
