"""The trigger that waits, in the triggerer, for another run's endpoint lease to be free."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from sagemaker_vision.core.lease import LeaseView, decide, server_time, view_from
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks.s3 import key_missing_async


class EndpointLeaseTrigger(BaseTrigger):
    """Poll a lease object in the triggerer until it is free for ``owner`` (absent, released, expired or
    its own) or ``deadline`` (epoch seconds) passes. Events: ``free``, ``timeout`` (with the holder),
    ``error``."""

    def __init__(self, *, bucket: str, key: str, owner: str, poll_seconds: float, deadline: float,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None) -> None:
        super().__init__()
        self.bucket, self.key, self.owner = bucket, key, owner
        self.poll_seconds, self.deadline = float(poll_seconds), float(deadline)
        self.aws_conn_id, self.region_name = aws_conn_id, region_name

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"bucket": self.bucket, "key": self.key, "owner": self.owner, "poll_seconds": self.poll_seconds,
                 "deadline": self.deadline, "aws_conn_id": self.aws_conn_id, "region_name": self.region_name})

    async def _read(self, client: Any) -> LeaseView:
        try:
            response = await client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if await key_missing_async(client, exc, self.bucket, self.key):
                return view_from(None, None, None, server_time(exc.response))
            raise
        async with response["Body"] as stream:
            raw = await stream.read()
        return view_from(raw, response.get("ETag"), response.get("LastModified"), server_time(response))

    async def run(self):
        hook = aws.hook("s3", self.aws_conn_id, self.region_name)
        uri = f"s3://{self.bucket}/{self.key}"
        try:
            async with await hook.get_async_conn() as client:
                while True:
                    view = await self._read(client)
                    if view.free or decide(view, self.owner) != "wait":
                        yield TriggerEvent({"status": "free", "uri": uri, "was": view.describe(),
                                            "deadline": self.deadline})
                        return
                    if time.time() >= self.deadline:
                        yield TriggerEvent({"status": "timeout", "uri": uri, "holder": view.describe(),
                                            "deadline": self.deadline})
                        return
                    self.log.info("Lease %s is %s; next look in %s s", uri, view.describe(), self.poll_seconds)
                    await asyncio.sleep(max(0.0, min(self.poll_seconds, self.deadline - time.time())))
        except Exception as exc:  # noqa: BLE001 - reported to the task, which fails with it
            yield TriggerEvent({"status": "error", "uri": uri, "message": f"{type(exc).__name__}: {exc}"})
