"""Request builders: what the provider operators send, checked against botocore's API model."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.validate import ParamValidator

from sagemaker_vision.core import requests as rq
from tests.unit.core.test_config import build

MODEL = botocore.session.get_session().get_service_model("sagemaker")


def assert_valid(operation: str, request: dict) -> None:
    """botocore's client-side validation of the request shape against the real API model."""
    shape = MODEL.operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_training_request_uses_augmented_manifest_recordio_pipe():
    cfg = build()
    req = rq.training_request(cfg, num_classes=3, num_training_samples=9)
    assert_valid("CreateTrainingJob", req)
    assert req["AlgorithmSpecification"] == {"TrainingImage": cfg.image_uri, "TrainingInputMode": "Pipe"}
    assert [c["ChannelName"] for c in req["InputDataConfig"]] == ["train", "validation"]
    for channel in req["InputDataConfig"]:
        src = channel["DataSource"]["S3DataSource"]
        assert src["S3DataType"] == "AugmentedManifestFile"
        assert src["AttributeNames"] == ["source-ref", "bounding-box"]
        assert channel["RecordWrapperType"] == "RecordIO"
        assert channel["ContentType"] == "application/x-recordio"
        assert channel["InputMode"] == "Pipe"
    hp = req["HyperParameters"]
    assert hp["num_classes"] == "3" and hp["num_training_samples"] == "9"
    assert hp["epochs"] == "30" and hp["base_network"] == "resnet-50" and hp["image_shape"] == "512"
    assert all(isinstance(v, str) for v in hp.values())
    assert req["OutputDataConfig"]["S3OutputPath"] == cfg.training_output_uri
    assert req["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200


def test_training_request_rejects_zero_classes():
    with pytest.raises(ValueError, match="num_classes"):
        rq.training_request(build(), num_classes=0, num_training_samples=9)


def test_serverless_endpoint_config():
    cfg = build(serverless_memory_mb=2048, serverless_max_concurrency=5, load_test_concurrency=5)
    req = rq.endpoint_config_request(cfg)
    assert_valid("CreateEndpointConfig", req)
    (variant,) = req["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    assert "InstanceType" not in variant


def test_provisioned_endpoint_config():
    cfg = build(endpoint_type="provisioned", inference_instance_type="ml.g4dn.xlarge", inference_instance_count=2)
    (variant,) = rq.endpoint_config_request(cfg)["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g4dn.xlarge" and variant["InitialInstanceCount"] == 2
    assert "ServerlessConfig" not in variant


def test_deployment_requests_use_the_trained_artifacts():
    cfg = build()
    trained = {"Training": {"TrainingJobName": cfg.job_name,
                            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/k/model.tar.gz"}}}
    reqs = rq.deployment_requests(cfg, trained)
    assert reqs["model"]["PrimaryContainer"]["ModelDataUrl"] == "s3://b/k/model.tar.gz"
    assert_valid("CreateModel", reqs["model"])
    assert_valid("CreateEndpointConfig", reqs["endpoint_config"])
    assert_valid("CreateEndpoint", reqs["endpoint"])
    assert {"Key": "load-test-allowed", "Value": "true"} in reqs["endpoint"]["Tags"]
    assert {"Key": "managed-by", "Value": "sagemaker-vision"} in reqs["model"]["Tags"]


def test_deployment_requests_refuse_a_job_without_artifacts():
    with pytest.raises(ValueError, match="no ModelArtifacts"):
        rq.deployment_requests(build(), {"Training": {"TrainingJobName": "x"}})
