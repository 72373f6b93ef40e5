"""Environment variables that point Airflow, boto3 and aiobotocore at a running emulator."""

from __future__ import annotations

import json

FAKE_KEY = "testing"
# The read-only principal that presigns image URLs for Label Studio (operators/label_studio.py): a
# connection of its own with keys of its own, so its URLs never carry the Airflow principal's.
LABEL_STUDIO_READER_KEY = "label-studio-reader"


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
    reader = {**connection, "login": LABEL_STUDIO_READER_KEY, "password": f"{LABEL_STUDIO_READER_KEY}-secret"}
    return {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "AIRFLOW_CONN_AWS_LABEL_STUDIO_READER": json.dumps(reader),
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": FAKE_KEY,
        "AWS_SECRET_ACCESS_KEY": FAKE_KEY,
        "AWS_ENDPOINT_URL": endpoint_url,
    }
