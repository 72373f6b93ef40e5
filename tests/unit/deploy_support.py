"""Shared by the deploy tests (core, hooks, operators): API models, ARNs, a stubbed SageMaker client,
DescribeEndpoint answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

REGION = "us-east-1"
ACCOUNT = "123456789012"
SESSION = botocore.session.get_session()
SAGEMAKER = SESSION.get_service_model("sagemaker")
CLOUDWATCH = SESSION.get_service_model("cloudwatch")
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
IMAGE = "382416733822.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"


def assert_valid(model: Any, operation: str, request: dict[str, Any]) -> None:
    """botocore's client-side validation against the real API model."""
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


def arn(kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{name.lower()}"


def not_found(kind: str, name: str) -> dict[str, Any]:
    return {"service_error_code": "ValidationException",
            "service_message": f"Could not find {kind} '{arn(kind, name)}'.", "http_status_code": 400}


@pytest.fixture(name="sagemaker")
def stubbed_sagemaker():
    """A real sagemaker client whose every call must be expected by the Stubber."""
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def endpoint(status: str, config: str = "cfg-1", pending: str | None = None, reason: str | None = None,
             variants: tuple[str, ...] = ("AllTraffic",)) -> dict[str, Any]:
    described: dict[str, Any] = {"EndpointName": "shapes", "EndpointArn": arn("endpoint", "shapes"),
                                 "EndpointConfigName": config, "EndpointStatus": status,
                                 "ProductionVariants": [{"VariantName": v} for v in variants],
                                 "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
                                 "LastModifiedTime": datetime(2026, 1, 1, tzinfo=UTC)}
    if pending:
        described["PendingDeploymentSummary"] = {"EndpointConfigName": pending}
    if reason:
        described["FailureReason"] = reason
    return described

