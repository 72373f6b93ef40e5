"""The deploy helpers of hooks.sagemaker: production_map, ensure_model, ensure_endpoint_config (real botocore
clients with a ``Stubber``, so an unexpected call fails the test) and ensure_rollback_alarms (moto in-process)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from botocore.stub import Stubber

from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import sagemaker as sm
from tests.unit.deploy_support import (  # noqa: F401  (stubbed_sagemaker: the sagemaker fixture)
    IMAGE,
    REGION,
    ROLE,
    arn,
    endpoint,
    not_found,
    stubbed_sagemaker,
)


def test_ensure_rollback_alarms_is_idempotent():
    from moto import mock_aws

    with mock_aws():
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        first = sm.ensure_rollback_alarms(cloudwatch, "shapes", "AllTraffic", latency_threshold_ms=800)
        before = cloudwatch.describe_alarms(AlarmNamePrefix="shapes-")["MetricAlarms"]
        second = sm.ensure_rollback_alarms(cloudwatch, "shapes", "AllTraffic", latency_threshold_ms=800)
        after = cloudwatch.describe_alarms(AlarmNamePrefix="shapes-")["MetricAlarms"]
    assert first == second == ["shapes-5xx", "shapes-latency"]
    assert len(after) == 2

    def settings(alarms: list[dict[str, Any]]) -> dict[str, Any]:
        keys = ("MetricName", "Namespace", "Statistic", "Dimensions", "Period", "EvaluationPeriods", "Threshold",
                "ComparisonOperator", "TreatMissingData")
        return {a["AlarmName"]: {k: a.get(k) for k in keys} for a in alarms}

    assert settings(after) == settings(before)
    assert settings(after)["shapes-latency"]["Threshold"] == 800_000


# -- production_map -------------------------------------------------------------------------------
def stub_chain(stubber: Stubber, *, variants: list[dict[str, Any]], model: str, tags: list[dict[str, str]] | None,
               model_exists: bool = True) -> None:
    stubber.add_response("describe_endpoint", endpoint("InService", "cfg-1"), {"EndpointName": "shapes"})
    stubber.add_response("describe_endpoint_config", {
        "EndpointConfigName": "cfg-1", "EndpointConfigArn": arn("endpoint-config", "cfg-1"),
        "ProductionVariants": variants, "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)},
        {"EndpointConfigName": "cfg-1"})
    if not model_exists:
        stubber.add_client_error("describe_model", expected_params={"ModelName": model}, **not_found("model", model))
        return
    stubber.add_response("describe_model", {
        "ModelName": model, "ModelArn": arn("model", model), "PrimaryContainer": {"Image": IMAGE},
        "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}, {"ModelName": model})
    stubber.add_response("list_tags", {"Tags": tags or []}, {"ResourceArn": arn("model", model), "MaxResults": 100})


def test_production_map_reads_the_tag_of_the_heaviest_variants_model(sagemaker):
    client, stubber = sagemaker
    stub_chain(stubber, model="model-b", tags=[{"Key": "managed-by", "Value": "sagemaker-vision"},
                                                {"Key": "validation-map", "Value": "0.7312"}],
               variants=[{"VariantName": "Old", "ModelName": "model-a", "InitialVariantWeight": 0.1,
                          "InstanceType": "ml.m5.large", "InitialInstanceCount": 1},
                         {"VariantName": "New", "ModelName": "model-b", "InitialVariantWeight": 0.9,
                          "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}])
    assert sm.production_map(client, "shapes") == 0.7312


def test_production_map_is_none_without_an_endpoint(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint", expected_params={"EndpointName": "shapes"},
                             **not_found("endpoint", "shapes"))
    assert sm.production_map(client, "shapes") is None


@pytest.mark.parametrize(("tags", "exists"), [
    (None, True),  # deployed before tags were written, or by someone else
    ([{"Key": "validation-map", "Value": "n/a"}], True),
    (None, False),  # the serving model was deleted
])
def test_production_map_is_none_when_the_serving_models_map_is_unknown(sagemaker, tags, exists):
    client, stubber = sagemaker
    stub_chain(stubber, model="m", tags=tags, model_exists=exists,
               variants=[{"VariantName": "AllTraffic", "ModelName": "m",
                          "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}])
    assert sm.production_map(client, "shapes") is None


def test_production_map_propagates_other_errors(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint", service_error_code="AccessDeniedException",
                             service_message="no", http_status_code=400)
    with pytest.raises(Exception, match="AccessDenied"):
        sm.production_map(client, "shapes")


# -- ensure_model -----------------------------------------------------------------------------------
def model_request(data: str = "s3://b/run-1/model.tar.gz") -> dict[str, Any]:
    return {"ModelName": "shapes-1", "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": data},
            "ExecutionRoleArn": ROLE, "Tags": [{"Key": "managed-by", "Value": "sagemaker-vision"}]}


def described_model(data: str = "s3://b/run-1/model.tar.gz") -> dict[str, Any]:
    return {"ModelName": "shapes-1", "ModelArn": arn("model", "shapes-1"), "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": data},
            "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}


def test_ensure_model_creates_with_the_map_tag(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", expected_params={"ModelName": "shapes-1"},
                             **not_found("model", "shapes-1"))
    expected = model_request()
    expected["Tags"] = expected["Tags"] + [{"Key": "validation-map", "Value": "0.7312"}]
    stubber.add_response("create_model", {"ModelArn": arn("model", "shapes-1")}, expected)
    assert sm.ensure_model(client, model_request(), validation_map=0.7312) == (arn("model", "shapes-1"), True)


def test_ensure_model_reuses_a_matching_model_and_leaves_a_correct_tag(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    stubber.add_response("list_tags", {"Tags": [{"Key": "validation-map", "Value": "0.7312"}]},
                         {"ResourceArn": arn("model", "shapes-1"), "MaxResults": 100})
    assert sm.ensure_model(client, model_request(), validation_map=0.7312) == (arn("model", "shapes-1"), False)


def test_ensure_model_adds_a_missing_tag_to_a_reused_model(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    stubber.add_response("list_tags", {"Tags": []}, {"ResourceArn": arn("model", "shapes-1"), "MaxResults": 100})
    stubber.add_response("add_tags", {"Tags": []}, {"ResourceArn": arn("model", "shapes-1"),
                                                    "Tags": [{"Key": "validation-map", "Value": "0.7"}]})
    assert sm.ensure_model(client, model_request(), validation_map=0.7) == (arn("model", "shapes-1"), False)


def test_ensure_model_without_a_map_never_reads_tags(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    assert sm.ensure_model(client, model_request()) == (arn("model", "shapes-1"), False)


def test_ensure_model_refuses_a_same_named_model_with_other_data(sagemaker):
    client, stubber = sagemaker
    stubber.add_response("describe_model", described_model("s3://b/run-0/model.tar.gz"), {"ModelName": "shapes-1"})
    with pytest.raises(sm.ResourceConflictError) as err:
        sm.ensure_model(client, model_request(), validation_map=0.7)
    message = str(err.value)
    assert "shapes-1" in message and "PrimaryContainer.ModelDataUrl" in message
    assert "s3://b/run-0/model.tar.gz" in message and "s3://b/run-1/model.tar.gz" in message
    assert "PrimaryContainer.Image" not in message  # the image is the same
    assert isinstance(err.value, AirflowFailException)  # no retries: a retry cannot fix it


def test_ensure_model_race_with_another_try_reuses_its_model(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_model", **not_found("model", "shapes-1"))
    stubber.add_client_error("create_model", service_error_code="ValidationException", http_status_code=400,
                             service_message=f'Cannot create already existing model "{arn("model", "shapes-1")}".')
    stubber.add_response("describe_model", described_model(), {"ModelName": "shapes-1"})
    assert sm.ensure_model(client, model_request()) == (arn("model", "shapes-1"), False)


@pytest.mark.parametrize(("value", "field"), [(1.2, "validation_map"), (float("nan"), "validation_map")])
def test_ensure_model_rejects_a_bad_map_before_calling_aws(sagemaker, value, field):
    client, _ = sagemaker  # no responses queued: any call would fail the test
    with pytest.raises(ConfigError) as err:
        sm.ensure_model(client, model_request(), validation_map=value)
    assert err.value.field == field


# -- ensure_endpoint_config ---------------------------------------------------------------------
def serverless_config_request(memory: int = 2048) -> dict[str, Any]:
    return {"EndpointConfigName": "shapes-1", "Tags": [{"Key": "managed-by", "Value": "sagemaker-vision"}],
            "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "shapes-1",
                                    "ServerlessConfig": {"MemorySizeInMB": memory, "MaxConcurrency": 5}}]}


def described_config(variants: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"EndpointConfigName": "shapes-1", "EndpointConfigArn": arn("endpoint-config", "shapes-1"),
            "ProductionVariants": variants, "CreationTime": datetime(2026, 1, 1, tzinfo=UTC), **extra}


def test_ensure_endpoint_config_creates(sagemaker):
    client, stubber = sagemaker
    stubber.add_client_error("describe_endpoint_config", **not_found("endpoint-config", "shapes-1"))
    stubber.add_response("create_endpoint_config", {"EndpointConfigArn": arn("endpoint-config", "shapes-1")},
                         serverless_config_request())
    assert sm.ensure_endpoint_config(client, serverless_config_request()) == (arn("endpoint-config", "shapes-1"), True)


def test_ensure_endpoint_config_reuses_a_matching_one_despite_aws_defaults(sagemaker):
    client, stubber = sagemaker
    request = {"EndpointConfigName": "shapes-1", "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.g4dn.xlarge",
         "InitialInstanceCount": 2, "InitialVariantWeight": 1}]}
    stubber.add_response("describe_endpoint_config", described_config(
        [{"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.g4dn.xlarge",
          "InitialInstanceCount": 2, "InitialVariantWeight": 1.0, "VolumeSizeInGB": 30}],
        DataCaptureConfig={"EnableCapture": False, "InitialSamplingPercentage": 0, "DestinationS3Uri": "s3://x/",
                           "CaptureOptions": [{"CaptureMode": "Input"}]}))
    assert sm.ensure_endpoint_config(client, request) == (arn("endpoint-config", "shapes-1"), False)


@pytest.mark.parametrize(("existing", "needle"), [
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-1",
                        "ServerlessConfig": {"MemorySizeInMB": 4096, "MaxConcurrency": 5}}]),
     "ProductionVariants[AllTraffic].ServerlessConfig.MemorySizeInMB: existing 4096, requested 2048"),
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-0",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]),
     "ProductionVariants[AllTraffic].ModelName: existing 'shapes-0', requested 'shapes-1'"),
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-1", "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1}]),
     "ProductionVariants[AllTraffic].ServerlessConfig: existing None"),
    (described_config([{"VariantName": "Blue", "ModelName": "shapes-1",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}]),
     "existing variants ['Blue'], requested ['AllTraffic']"),
    (described_config([{"VariantName": "AllTraffic", "ModelName": "shapes-1",
                        "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}],
                      AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://b/async/"}}),
     "AsyncInferenceConfig: existing"),
])
def test_ensure_endpoint_config_refuses_a_different_one_naming_the_field(sagemaker, existing, needle):
    client, stubber = sagemaker
    stubber.add_response("describe_endpoint_config", existing, {"EndpointConfigName": "shapes-1"})
    with pytest.raises(sm.ResourceConflictError) as err:
        sm.ensure_endpoint_config(client, serverless_config_request())
    assert "Endpoint config shapes-1" in str(err.value)
    assert needle in str(err.value)


def test_ensure_endpoint_config_compares_async_settings(sagemaker):
    client, stubber = sagemaker
    request = serverless_config_request()
    request["AsyncInferenceConfig"] = {"OutputConfig": {"S3OutputPath": "s3://b/async/"}}
    stubber.add_response("describe_endpoint_config", described_config(
        request["ProductionVariants"], AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://b/other/"}}))
    with pytest.raises(sm.ResourceConflictError, match=r"AsyncInferenceConfig.OutputConfig.S3OutputPath"):
        sm.ensure_endpoint_config(client, request)


