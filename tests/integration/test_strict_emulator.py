"""The emulator refuses requests that break botocore's model, as AWS does, before moto sees them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"


@pytest.fixture
def unchecked(emulator_env):
    """Clients that skip botocore's own validation, so the request reaches the emulator as sent."""
    config = Config(parameter_validation=False, retries={"max_attempts": 1})
    kwargs = {"endpoint_url": emulator_env.endpoint_url, "region_name": "us-east-1", "config": config}
    return {name: boto3.client(name, **kwargs)
            for name in ("sagemaker", "sagemaker-runtime", "application-autoscaling", "logs", "cloudwatch")}


def _training(name):
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
                                   "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://sagemaker-vision-test/strict"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }


def test_sagemaker_pattern_violation_is_a_validation_exception(unchecked):
    with pytest.raises(ClientError) as info:
        unchecked["sagemaker"].create_training_job(**_training("bad_name"))
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Code"] == "ValidationException"
    assert error["Message"] == (
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    names = [j["TrainingJobName"] for j in unchecked["sagemaker"].list_training_jobs()["TrainingJobSummaries"]]
    assert "bad_name" not in names  # refused before moto created anything


def test_enum_max_and_map_violations_reach_no_backend(unchecked):
    params = _training("strict-enum")
    params["ResourceConfig"]["InstanceType"] = "ml.banana"
    params["HyperParameters"] = {"k": "v" * 2501}
    with pytest.raises(ClientError) as info:
        unchecked["sagemaker"].create_training_job(**params)
    message = info.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected: ")
    assert ("at 'resourceConfig.instanceType' failed to satisfy constraint: "
            "Member must satisfy enum value set") in message
    assert "at 'hyperParameters' failed to satisfy constraint: Map value must satisfy constraint" in message


def test_other_json_services_are_checked(unchecked):
    with pytest.raises(ClientError) as info:
        unchecked["application-autoscaling"].register_scalable_target(
            ServiceNamespace="sagemaker", ResourceId="endpoint/x/variant/AllTraffic",
            ScalableDimension="sagemaker:variant:Nope", MinCapacity=1, MaxCapacity=2)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "at 'scalableDimension'" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        unchecked["logs"].get_log_events(logGroupName="g", logStreamName="s", limit=10001)
    assert info.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "Member must have value less than or equal to 10000" in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        unchecked["cloudwatch"].delete_alarms(AlarmNames=["x" * 256])
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "at 'alarmNames'" in info.value.response["Error"]["Message"]


def test_invoke_endpoint_headers_are_checked(unchecked):
    with pytest.raises(ClientError) as info:
        unchecked["sagemaker-runtime"].invoke_endpoint(EndpointName="no-such", Body=b"x",
                                                       ContentType="image/jpeg", TargetVariant="bad_variant")
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationError"
    assert error["Message"].startswith("1 validation error detected: Value 'bad_variant' at 'targetVariant'")
    with pytest.raises(ClientError) as info:  # a valid request goes on to the emulated endpoint lookup
        unchecked["sagemaker-runtime"].invoke_endpoint(EndpointName="no-such", Body=b"x", ContentType="image/jpeg")
    assert "not found" in info.value.response["Error"]["Message"]


def _raw(url, target, body):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/sagemaker/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_unknown_members_and_wrong_types_on_the_wire(emulator_env):
    url = emulator_env.endpoint_url
    status, body = _raw(url, "SageMaker.DescribeEndpoint", {"EndpointName": "x", "Bogus": 1})
    assert status == 400 and body["__type"] == "ValidationException"
    assert "at 'bogus'" in body["message"]
    status, body = _raw(url, "SageMaker.DescribeEndpoint", {"EndpointName": 5})
    assert status == 400 and body["__type"] == "SerializationException"
    status, body = _raw(url, "SageMaker.DescribeEndpoint", {})
    assert status == 400 and body["message"] == (
        "1 validation error detected: Value null at 'endpointName' failed to satisfy constraint: "
        "Member must not be null")


def test_s3_headers_and_query_are_checked(unchecked, aws_clients):
    s3 = boto3.client("s3", endpoint_url=unchecked["sagemaker"].meta.endpoint_url, region_name="us-east-1",
                      config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    bucket = "sagemaker-vision-test"
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="strict/x", Body=b"x", StorageClass="CHEAPEST")
    error = info.value.response["Error"]
    assert error["Code"] == "InvalidStorageClass"
    assert error["Message"].startswith("1 validation error detected: Value 'CHEAPEST' at 'storageClass' "
                                       "failed to satisfy constraint: Member must satisfy enum value set: [")
    with pytest.raises(ClientError) as info:
        s3.list_objects_v2(Bucket=bucket, EncodingType="base64")
    assert info.value.response["Error"]["Code"] == "InvalidArgument"
    assert "at 'encodingType'" in info.value.response["Error"]["Message"]
    assert "Contents" not in aws_clients["s3"].list_objects_v2(Bucket=bucket, Prefix="strict/x")


def test_presigned_s3_urls_are_checked_too(unchecked, aws_clients):
    # SigV4 in the query string (a presigned URL) carries the same members as a signed request.
    s3 = boto3.client("s3", endpoint_url=unchecked["sagemaker"].meta.endpoint_url, region_name="us-east-1",
                      config=Config(parameter_validation=False, signature_version="s3v4"))
    bucket = "sagemaker-vision-test"
    aws_clients["s3"].put_object(Bucket=bucket, Key="presigned-strict/p.txt", Body=b"p")
    bad = s3.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket, "EncodingType": "base64"})
    assert "X-Amz-Credential=" in bad and "Authorization" not in bad
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad, timeout=10)
    assert info.value.code == 400
    body = info.value.read().decode()
    assert "<Code>InvalidArgument</Code>" in body and "<ArgumentName>encodingType</ArgumentName>" in body, body
    good = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned-strict/p.txt"})
    with urllib.request.urlopen(good, timeout=10) as response:
        assert response.status == 200 and response.read() == b"p"
    aws_clients["s3"].delete_object(Bucket=bucket, Key="presigned-strict/p.txt")


def test_valid_s3_traffic_passes_the_check(aws_clients, tmp_path):
    s3 = aws_clients["s3"]
    bucket = "sagemaker-vision-test"
    s3.put_object(Bucket=bucket, Key="strict/a.txt", Body=b"a", Metadata={"sha256": "x"}, StorageClass="STANDARD",
                  ChecksumAlgorithm="SHA256")
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x01" * (9 * 1024 * 1024))
    s3.upload_file(str(big), bucket, "strict/big.bin")  # multipart: CreateMultipartUpload, UploadPart, Complete
    s3.copy_object(Bucket=bucket, Key="strict/b.txt", CopySource={"Bucket": bucket, "Key": "strict/a.txt"})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="strict/", MaxKeys=10)["Contents"]]
    assert keys == ["strict/a.txt", "strict/b.txt", "strict/big.bin"]
    assert s3.head_object(Bucket=bucket, Key="strict/big.bin")["ContentLength"] == big.stat().st_size
    assert s3.get_object(Bucket=bucket, Key="strict/a.txt", Range="bytes=0-0")["Body"].read() == b"a"
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="strict/")
