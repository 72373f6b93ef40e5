"""The ``sagemaker-runtime`` side of asynchronous inference: send one request, say where its result will be."""

from __future__ import annotations

from typing import Any

from sagemaker_vision.core.async_inference import AsyncInvocation, invoke_async_request


def start_async_inference(runtime_client: Any, endpoint_name: str, input_s3_uri: str,
                          content_type: str = "image/jpeg", *, inference_id: str | None = None,
                          request_ttl_s: int | None = None, invocation_timeout_s: int | None = None
                          ) -> AsyncInvocation:
    """One ``InvokeEndpointAsync`` call on a ``sagemaker-runtime`` client; returns where to look."""
    response = runtime_client.invoke_endpoint_async(
        **invoke_async_request(endpoint_name, input_s3_uri, content_type, inference_id=inference_id,
                               request_ttl_s=request_ttl_s, invocation_timeout_s=invocation_timeout_s)
    )
    return AsyncInvocation(response["OutputLocation"], response.get("FailureLocation"), response.get("InferenceId"))


def invoke_async(runtime_client: Any, endpoint_name: str, input_s3_uri: str, content_type: str = "image/jpeg") -> str:
    """``InvokeEndpointAsync`` for ``input_s3_uri``; returns the OutputLocation the result will be written to."""
    return start_async_inference(runtime_client, endpoint_name, input_s3_uri, content_type).output_location


