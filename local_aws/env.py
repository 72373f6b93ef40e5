"""Environment variables that point Airflow, boto3 and aiobotocore at a running emulator."""

from __future__ import annotations

import json

FAKE_KEY = "testing"


def airflow_env(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    """``aws_default`` as an env connection to ``endpoint_url`` plus fake credentials.

    AWS_ENDPOINT_URL also sends clients built outside Airflow connections to the emulator, and
    the fake keys mean a client that escapes both still cannot authenticate against real AWS.
    """
    connection = {
        "conn_type": "aws",
        "login": FAKE_KEY,
        "password": FAKE_KEY,
        "extra": {"region_name": region, "endpoint_url": endpoint_url},
    }
    return {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
        "AWS_ENDPOINT_URL": endpoint_url,
    }
