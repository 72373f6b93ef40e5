"""hooks.sagemaker_runtime: the load-test clients send one fixed User-Agent (botocore's own costs CPU)."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.stub_server import start_in_thread
from sagemaker_vision import __version__
from sagemaker_vision.hooks.sagemaker_runtime import LOAD_TEST_USER_AGENT, ClientSpec, run_phase_async
from tests.unit.core.loadtest.support import JPEG


def spec(url: str) -> ClientSpec:
    return ClientSpec(region_name="us-east-1", endpoint_url=url, access_key_id="testing",
                      secret_access_key="testing", max_pool_connections=2)


def capture(client: Any, seen: list[str]) -> None:
    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint",
                                lambda request, **_: seen.append(_text(request.headers["User-Agent"])))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_both_engines_clients_send_the_load_test_user_agent() -> None:
    assert LOAD_TEST_USER_AGENT == f"sagemaker-vision-load-test/{__version__}"
    url, stop = start_in_thread(0, 1)
    try:
        seen: list[str] = []
        client = spec(url).boto3_client()
        capture(client, seen)
        client.invoke_endpoint(EndpointName="shapes-ep", Body=b"x", ContentType="image/jpeg")["Body"].read()

        async def asyncio_engine() -> Any:
            async with spec(url).aiobotocore_client() as aio:
                capture(aio, seen)
                return await run_phase_async(aio, "shapes-ep", [("a.jpg", JPEG, "image/jpeg")], concurrency=2,
                                             max_requests=4, seconds=10, request_timeout_s=5, payload_offset=0)

        result = asyncio.run(asyncio_engine())
    finally:
        stop()
    assert result.successes == 4
    assert len(seen) == 5 and all(ua.startswith(LOAD_TEST_USER_AGENT + " ") for ua in seen), seen
    assert len(set(seen[1:])) == 1  # the asyncio engine's requests: one string, nothing built per request
    assert "ua/2.1" not in " ".join(seen)  # not botocore's standard header (os/, lang/, m/ metadata)


def test_the_load_test_operators_client_sends_it_too(monkeypatch) -> None:
    """The threads engine (the pipeline's default) and the fanned-out workers invoke through the operator's
    client, built from the Airflow connection: it takes the same config."""
    from sagemaker_vision.operators.load_test import LoadTestOperator

    url, stop = start_in_thread(0, 1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)  # botocore's own setting: the connection has no endpoint_url
    try:
        op = LoadTestOperator(task_id="load_test", endpoint_name="shapes-ep", payload_prefix="s3://b/p/",
                              report_s3_prefix="s3://b/r/", aws_conn_id=None, region_name="us-east-1",
                              engine="threads", processes=1)
        seen: list[str] = []
        capture(op.client, seen)
        op.client.invoke_endpoint(EndpointName="shapes-ep", Body=b"x", ContentType="image/jpeg")["Body"].read()
    finally:
        stop()
    assert len(seen) == 1 and seen[0].startswith(LOAD_TEST_USER_AGENT + " ") and "ua/2.1" not in seen[0], seen
    assert op.client.meta.config.retries["total_max_attempts"] == 1
