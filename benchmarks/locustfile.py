"""Locust's side of P4: users that call boto3 ``invoke_endpoint`` and fire request events.

Runs in ``.venv-bench-locust`` (Locust, gevent, and the same boto3/botocore as the project).
All users share ONE client with a pool as large as the user count -- the way our engine runs --
so the two differ only in how they schedule the work (gevent greenlets vs OS threads).

Besides Locust's own statistics, a listener counts the successful requests that finish between
the end of spawning and the end of the test, the same window our engine measures after its
warm-up, and writes ``{"requests", "failures", "seconds"}`` to ``$BENCH_LOCUST_RESULT.<pid>``.
"""

from __future__ import annotations

import json
import os
import time

from locust import User, constant, events, task

ENDPOINT = os.environ.get("BENCH_ENDPOINT_NAME", "bench-endpoint")
BODY = open(os.environ["BENCH_PAYLOAD"], "rb").read() if os.environ.get("BENCH_PAYLOAD") else b"\xff\xd8\xff"
_client = None
# The window opens this long after spawning ends, once every user's connection is open.
WINDOW_DELAY_S = float(os.environ.get("BENCH_WINDOW_DELAY_S", "1.0"))
_window = {"start": None, "end": None, "requests": 0, "failures": 0}


def client(pool: int):
    """The shared client, built on first use (after gevent has patched the socket module)."""
    global _client
    if _client is None:
        # Imported here, never before Locust: gevent must patch ssl/socket before botocore loads.
        import boto3
        from botocore.config import Config

        _client = boto3.session.Session().client(
            "sagemaker-runtime",
            endpoint_url=os.environ["BENCH_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(max_pool_connections=pool, retries={"mode": "standard", "total_max_attempts": 1}),
        )
    return _client


class SageMakerUser(User):
    """A closed-loop user: invoke, read the reply, invoke again (no think time)."""

    wait_time = constant(0)

    @task
    def invoke(self) -> None:
        sm = client(self.environment.runner.target_user_count or 1)
        started = time.perf_counter()
        length, exc = 0, None
        try:
            response = sm.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, ContentType="image/jpeg",
                                          Accept="application/json")
            length = len(response["Body"].read())
        except Exception as error:  # reported to Locust like any failed request
            exc = error
        self.environment.events.request.fire(
            request_type="sagemaker", name="invoke_endpoint", response_time=(time.perf_counter() - started) * 1000,
            response_length=length, exception=exc, context={},
        )


@events.spawning_complete.add_listener
def _start_window(user_count: int, **kwargs) -> None:
    _window.update(start=time.perf_counter() + WINDOW_DELAY_S, requests=0, failures=0)


@events.request.add_listener
def _count(exception=None, **kwargs) -> None:
    start = _window["start"]
    if start is not None and _window["end"] is None and time.perf_counter() >= start:
        _window["failures" if exception else "requests"] += 1


@events.test_stop.add_listener
def _write_window(environment, **kwargs) -> None:
    _window["end"] = time.perf_counter()
    path = os.environ.get("BENCH_LOCUST_RESULT")
    if path and _window["start"] is not None:
        # One file per process: with --processes N every worker counts its own users.
        with open(f"{path}.{os.getpid()}", "w") as fh:
            json.dump({"requests": _window["requests"], "failures": _window["failures"],
                       "seconds": _window["end"] - _window["start"]}, fh)
