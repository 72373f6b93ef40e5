"""Helpers shared by the load-test tests: a config, steps, a fake clock, fake runtime clients."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import boto3
from botocore.exceptions import (
    ClientError,
)
from PIL import Image

from sagemaker_vision.core.aws_config import botocore_config
from sagemaker_vision.core.loadtest.model import (
    LoadTestConfig,
    StepResult,
)

SAMPLE_IMAGES = Path(__file__).resolve().parents[4] / "include" / "sample_data" / "images"
JPEG = (SAMPLE_IMAGES / "shape_000.jpg").read_bytes()
REGION = "us-east-1"


def config(**overrides) -> LoadTestConfig:
    values = {
        "endpoint_name": "shapes-ep",
        "concurrency_steps": (1,),
        "step_seconds": 1.0,
        "max_requests_per_step": 1000,
        "payloads": (("a.jpg", JPEG, "image/jpeg"),),
        "warmup_requests": 0,
        "request_timeout_s": 1.0,
    }
    values.update(overrides)
    return LoadTestConfig(**values)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"boom {code}"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "InvokeEndpoint")


def step(concurrency: int, latencies_ms: list[float], *, errors: dict[str, int] | None = None,
         duration_s: float = 1.0, cpu: float = 0.1, in_flight: float | None = None) -> StepResult:
    errors = errors or {}
    requests = len(latencies_ms) + sum(errors.values())
    return StepResult(
        concurrency=concurrency, requests=requests, successes=len(latencies_ms), errors_by_code=errors,
        duration_s=duration_s, stopped_by="time",
        achieved_concurrency=concurrency if in_flight is None else in_flight,
        client_cpu_ratio=cpu, latencies_ms=tuple(sorted(latencies_ms)),
    )


class FakeClock:
    """A clock that only moves when a fake invoke says so: exact latencies, no sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds



def set_aws_env(monkeypatch) -> None:
    """Fake credentials and the region, for boto3 against moto or the stub (the tests' ``aws_env`` fixture)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)


def runtime_client(url: str, pool: int):
    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name=REGION,
                        config=botocore_config(pool, retries={"mode": "standard", "total_max_attempts": 1}))


class FakeRuntime:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def invoke_endpoint(self, **kwargs):
        raise self.exc


class Replying:
    """A runtime client whose every invocation answers 200 with ``body``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def invoke_endpoint(self, **kwargs):
        return {"Body": io.BytesIO(self.body)}


# Bodies a hostile or broken endpoint answers with a 200, and what the error says.
GARBAGE_BODIES = [
    (b"<html>502 Bad Gateway</html>", "reply is not JSON"),
    (b"", "reply is not JSON"),
    (b"\xff\xd8\xff\xe0", "reply is not UTF-8"),
    (b'"ok"', "must be a JSON object, got str"),
    (b'{"predictions": [[1.0, 0.9, 0.1, 0.1, 0.2, 0.2]]}', "no 'prediction' field"),
    (b'{"prediction": "none"}', "'prediction' must be a list"),
    (b'{"prediction": [[1.0, 0.9, 0.1, 0.1]]}', r"prediction\[0\] must be \[class_id"),
    (b'{"prediction": [[1.0, 7.5, 0.1, 0.1, 0.2, 0.2]]}', r"score=7.5 is outside \[0, 1\]"),
    (b'{"prediction": [[1.0, 0.9, 10, 20, 200, 120]]}', "outside the normalised range"),
    (b'{"prediction": [[1.0, 0.9, 0.1, 0.1, 0.2, 0.2], ["cat", 0.9, 0.1, 0.1, 0.2, 0.2]]}',
     r"prediction\[1\]: class_id must be a number"),
    (b'{"prediction": [[1e999, 0.9, 0.1, 0.1, 0.2, 0.2]]}', "class_id must be finite"),
    (b'{"prediction": [[' + b"9" * 400 + b', 0.9, 0.1, 0.1, 0.2, 0.2]]}', "400-digit integer"),
    (b"[" * 100_000, "reply is not JSON"),
]



def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buffer, format="PNG")
    return buffer.getvalue()

