"""Pure builders of SageMaker request dicts from a ``PipelineConfig``.

No Airflow, no boto3: each function takes plain values and returns the dict that the
provider's operators (or boto3) send, so every request is unit-tested without AWS and
validated by botocore against the real API model in the emulator tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sagemaker_vision.core.async_inference import async_endpoint_config_request
from sagemaker_vision.core.config import PipelineConfig
from sagemaker_vision.core.naming import (  # noqa: F401  (PACKAGE_TAG*, LOAD_TEST_TAG, VARIANT_NAME: re-exported)
    LOAD_TEST_TAG,
    PACKAGE_TAG,
    PACKAGE_TAG_VALUE,
    VARIANT_NAME,
    model_artifact_uri,
)


def tags(cfg: PipelineConfig, **extra: str) -> list[dict[str, str]]:
    """Tags on everything the package creates; teardown refuses resources without them."""
    base = {
        PACKAGE_TAG: PACKAGE_TAG_VALUE,
        "pipeline": cfg.pipeline_name,
        "run-stamp": cfg.run.stamp,
    }
    base.update(extra)
    return [{"Key": k, "Value": str(v)} for k, v in base.items()]


def _channel(name: str, manifest_uri: str, label_attribute: str) -> dict[str, Any]:
    # The built-in algorithm reads augmented manifests only through Pipe mode, wrapped in
    # RecordIO; AttributeNames order matters: the image first, then its labels.
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "AugmentedManifestFile",
                "S3Uri": manifest_uri,
                "S3DataDistributionType": "FullyReplicated",
                "AttributeNames": ["source-ref", label_attribute],
            }
        },
        "ContentType": "application/x-recordio",
        "RecordWrapperType": "RecordIO",
        "CompressionType": "None",
        "InputMode": "Pipe",
    }


def training_request(
    cfg: PipelineConfig, *, num_classes: int, num_training_samples: int,
    train_uri: str | None = None, validation_uri: str | None = None,
) -> dict[str, Any]:
    """``CreateTrainingJob`` for the built-in Object Detection algorithm on the run's manifests."""
    hp = dataclasses.replace(
        cfg.training.hyperparameters, num_classes=num_classes, num_training_samples=num_training_samples
    )
    hp.validate()
    spec = cfg.training
    return {
        "TrainingJobName": cfg.job_name,
        "AlgorithmSpecification": {"TrainingImage": cfg.image_uri, "TrainingInputMode": "Pipe"},
        "RoleArn": cfg.role_arn,
        "HyperParameters": hp.to_sagemaker(),
        "InputDataConfig": [
            _channel("train", train_uri or cfg.train_manifest_uri, cfg.label_attribute),
            _channel("validation", validation_uri or cfg.validation_manifest_uri, cfg.label_attribute),
        ],
        "OutputDataConfig": {"S3OutputPath": cfg.training_output_uri},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeSizeInGB": spec.volume_size_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": int(spec.max_runtime_hours * 3600)},
        "Tags": tags(cfg),
    }


def model_request(cfg: PipelineConfig, *, model_data_url: str | None = None,
                  extra_tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ModelName": cfg.model_name,
        "PrimaryContainer": {
            "Image": cfg.image_uri,
            "ModelDataUrl": model_data_url or model_artifact_uri(cfg),
        },
        "ExecutionRoleArn": cfg.role_arn,
        "Tags": tags(cfg, **(extra_tags or {})),
    }


def endpoint_config_request(cfg: PipelineConfig) -> dict[str, Any]:
    """Serverless by default; provisioned instances or asynchronous inference when asked."""
    if cfg.endpoint.endpoint_type == "async":
        return async_endpoint_config_request(
            endpoint_config_name=cfg.endpoint_config_name, model_name=cfg.model_name,
            instance_type=cfg.endpoint.instance_type, instance_count=cfg.endpoint.instance_count,
            output_s3_uri=cfg.async_output_prefix, failure_s3_uri=cfg.async_failure_prefix, tags=tags(cfg),
        )
    variant: dict[str, Any] = {"VariantName": VARIANT_NAME, "ModelName": cfg.model_name}
    if cfg.endpoint.endpoint_type == "serverless":
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": cfg.endpoint.memory_size_mb,
            "MaxConcurrency": cfg.endpoint.max_concurrency,
        }
    else:
        variant.update(
            InstanceType=cfg.endpoint.instance_type,
            InitialInstanceCount=cfg.endpoint.instance_count,
            InitialVariantWeight=1.0,
        )
    return {
        "EndpointConfigName": cfg.endpoint_config_name,
        "ProductionVariants": [variant],
        "Tags": tags(cfg),
    }


def endpoint_request(cfg: PipelineConfig) -> dict[str, Any]:
    return {
        "EndpointName": cfg.endpoint_name,
        "EndpointConfigName": cfg.endpoint_config_name,
        "Tags": tags(cfg, **{LOAD_TEST_TAG: "true"}),
    }


def deployment_requests(cfg: PipelineConfig, trained: dict[str, Any]) -> dict[str, Any]:
    """Model, endpoint-config and endpoint requests for the model the ``train`` task produced.

    ``trained`` is the training operator's return value (``{"Training": DescribeTrainingJob}``);
    its artifact path is used rather than a recomputed one, so the model is what was trained.
    """
    description = trained.get("Training", trained)
    artifacts = (description.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not artifacts:
        raise ValueError(f"training job {description.get('TrainingJobName')!r} reported no ModelArtifacts")
    endpoint = endpoint_request(cfg)
    return {
        "model": model_request(cfg, model_data_url=artifacts),
        "endpoint_config": endpoint_config_request(cfg),
        "endpoint": endpoint,
        # Top-level too: a @task's dict return is pushed key by key, and XComArg["a"]["b"] is
        # not a nested lookup.
        "endpoint_tags": endpoint["Tags"],
    }
