"""The one place for boto3 client settings: retries and pool size.

Pure botocore configuration, no Airflow, so load-test worker processes can build clients with
the same policy. Clients the package builds come from :func:`sagemaker_vision.hooks.base.client`;
provider operators get the same policy through ``BOTOCORE_CONFIG`` (their ``botocore_config``).
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
