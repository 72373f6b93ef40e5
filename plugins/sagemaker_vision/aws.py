"""The one place for boto3 client settings: retries, pool size and hooks.

Every client the package builds itself comes from :func:`client`; provider operators get
the same retry policy through ``BOTOCORE_CONFIG`` (their ``botocore_config`` argument).
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

# "standard" retries back off with jitter on throttling and transient 5xx errors; 8 attempts in
# all ride out a burst of ThrottlingException without hiding a real outage for long.
RETRIES: dict[str, Any] = {"mode": "standard", "total_max_attempts": 8}
BOTOCORE_CONFIG: dict[str, Any] = {"retries": RETRIES}


def botocore_config(max_pool_connections: int | None = None, **extra: Any) -> Config:
    """A botocore ``Config`` with the package retry policy and, optionally, a larger pool."""
    kwargs: dict[str, Any] = {"retries": dict(RETRIES), **extra}
    if max_pool_connections:
        kwargs["max_pool_connections"] = max_pool_connections
    return Config(**kwargs)


def hook(service: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
         max_pool_connections: int | None = None):
    """An ``AwsBaseHook`` for ``service`` that honours the connection (endpoint_url, region)."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    return AwsBaseHook(
        aws_conn_id=aws_conn_id,
        client_type=service,
        region_name=region_name,
        config=botocore_config(max_pool_connections),
    )


def client(service: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
           max_pool_connections: int | None = None):
    """A boto3 client for ``service`` built from the Airflow connection ``aws_conn_id``."""
    return hook(service, aws_conn_id, region_name, max_pool_connections).conn
