"""Sending one asynchronous inference on a fake runtime client."""

from __future__ import annotations

from typing import Any

from sagemaker_vision.core.async_inference import AsyncInvocation
from sagemaker_vision.hooks import async_inference as ai


def test_invoke_async_returns_the_output_location():
    class Runtime:
        def invoke_endpoint_async(self, **kwargs: Any) -> dict[str, Any]:
            self.kwargs = kwargs
            return {"OutputLocation": "s3://bucket/out/1.out", "FailureLocation": "s3://bucket/fail/1-error.out",
                    "InferenceId": "1"}

    runtime = Runtime()
    assert ai.invoke_async(runtime, "shapes", "s3://bucket/in/a.png", "image/png") == "s3://bucket/out/1.out"
    assert runtime.kwargs["ContentType"] == "image/png"
    invocation = ai.start_async_inference(runtime, "shapes", "s3://bucket/in/a.png")
    assert invocation == AsyncInvocation("s3://bucket/out/1.out", "s3://bucket/fail/1-error.out", "1")
