"""The emulator refuses presigned S3 URLs as S3 does: expired ones, and lifetimes over 7 days.

Amazon S3 API Reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version
4)": X-Amz-Expires is 1 to 604800 seconds, and the URL is refused once X-Amz-Date plus
X-Amz-Expires has passed. The Label Studio backend's renewal of its one-hour URLs relies on it.
"""

from __future__ import annotations

import time

import boto3
import pytest
import requests
from botocore.config import Config

pytestmark = pytest.mark.integration


@pytest.fixture
def s3(emulator_env):
    client = boto3.client("s3", endpoint_url=emulator_env.endpoint_url, region_name="us-east-1",
                          config=Config(signature_version="s3v4"))
    client.create_bucket(Bucket="presign-expiry")
    client.put_object(Bucket="presign-expiry", Key="a.jpg", Body=b"image")
    return client


def _url(s3, seconds: int) -> str:
    return s3.generate_presigned_url("get_object", Params={"Bucket": "presign-expiry", "Key": "a.jpg"},
                                     ExpiresIn=seconds)


def test_an_expired_presigned_url_is_access_denied(s3):
    url = _url(s3, 1)
    assert requests.get(url, timeout=10).content == b"image"
    time.sleep(2.1)  # X-Amz-Date has a resolution of one second
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>1</X-Amz-Expires>" \
        in expired.text


def test_a_lifetime_over_seven_days_is_refused(s3):
    assert requests.get(_url(s3, 604800), timeout=10).status_code == 200
    refused = requests.get(_url(s3, 604801), timeout=10)
    assert refused.status_code == 400
    assert "<Code>AuthorizationQueryParametersError</Code><Message>X-Amz-Expires must be less than a week " \
        "(in seconds) that is 604800</Message>" in refused.text
