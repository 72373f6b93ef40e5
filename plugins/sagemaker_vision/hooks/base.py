"""Clients and hooks for services that need no hook class of their own.

Every boto3 client the package builds itself comes from :func:`client`, so it honours the Airflow
connection (``endpoint_url``, region) and the package retry policy.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from sagemaker_vision.core.aws_config import BOTOCORE_CONFIG, RETRIES, botocore_config

__all__ = ["BOTOCORE_CONFIG", "RETRIES", "botocore_config", "client", "connection_region", "hook"]


def hook(service: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
         max_pool_connections: int | None = None) -> AwsBaseHook:
    """An ``AwsBaseHook`` for ``service`` that honours the connection (endpoint_url, region)."""
    return AwsBaseHook(
        aws_conn_id=aws_conn_id,
        client_type=service,
        region_name=region_name,
        config=botocore_config(max_pool_connections),
    )


def client(service: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None,
           max_pool_connections: int | None = None) -> Any:
    """A boto3 client for ``service`` built from the Airflow connection ``aws_conn_id``."""
    return hook(service, aws_conn_id, region_name, max_pool_connections).conn


def connection_region(aws_conn_id: str | None) -> str:
    """The region of the AWS connection (no network call), falling back to the SDK default."""
    region = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts").conn_region_name
    return region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
