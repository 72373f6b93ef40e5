"""DAG params shared by the DAGs: each typed, described and defaulted so the trigger form works.

Defaults that differ between the embedded emulator and a real account (the bucket, the
execution role, poll intervals) come from environment variables read when the DAG is parsed:
reading ``os.environ`` is free, unlike Variables, which would hit the metadata DB on every parse.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Param

from sagemaker_vision.config import BAD_IMAGE_POLICIES, LABEL_BACKENDS, max_pipeline_name_length


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def pipeline_params() -> dict[str, Param]:
    """Params of ``object_detection_pipeline``, grouped into sections of the trigger form."""
    s_data, s_label, s_train, s_deploy, s_test = "Data", "Labeling", "Training", "Deployment", "Load test"
    return {
        "pipeline_name": Param(
            _env("SAGEMAKER_VISION_PIPELINE_NAME", "shapes-detector"), type="string",
            minLength=1, maxLength=max_pipeline_name_length(), pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$",
            description="Names the training jobs, models and endpoint configs of this pipeline "
            f"(<name>-<run stamp>). Letters, digits and hyphens, at most {max_pipeline_name_length()}: "
            "every name derived from it (labeling job, training retry, alarms) must fit AWS's limits.",
            section=s_data),
        "region": Param(
            "", type=["null", "string"],
            description="AWS region. Empty means the region of the aws_default connection.", section=s_data),
        "role_arn": Param(
            _env("SAGEMAKER_VISION_ROLE_ARN", ""), type="string",
            description="SageMaker execution role ARN that training and hosting assume "
            "(see include/iam/). Defaults to $SAGEMAKER_VISION_ROLE_ARN.", section=s_data),
        "bucket": Param(
            _env("SAGEMAKER_VISION_BUCKET", "sagemaker-vision-demo"), type="string", minLength=3, maxLength=63,
            description="Project S3 bucket: images, manifests, model artifacts and reports go here, and the "
            "endpoint locks (sagemaker-vision-locks/): every run and DAG that writes to one endpoint must use "
            "the same bucket. Defaults to $SAGEMAKER_VISION_BUCKET.",
            section=s_data),
        "prefix": Param(
            "object-detection", type="string", minLength=1,
            description="Key prefix inside the bucket for everything this pipeline writes.", section=s_data),
        "image_source": Param(
            "include/sample_data/images", type="string", minLength=1,
            description="Images to sync: a local folder (relative to the project root) or an s3:// prefix. "
            "Only new or changed files are copied.", section=s_data),
        "bad_image_policy": Param(
            BAD_IMAGE_POLICIES[0], type="string", enum=list(BAD_IMAGE_POLICIES),
            description="What validate_images does with a corrupt, oversized or misnamed image: fail the run "
            "before anything is paid for, or skip it (left out of labeling and training). Either way a report "
            "names each file and its reason.", section=s_data),
        "label_backend": Param(
            "import", type="string", enum=list(LABEL_BACKENDS),
            description="Where bounding boxes come from: import an existing Ground Truth manifest, "
            "a SageMaker Ground Truth labeling job, or a Label Studio project.", section=s_label),
        "label_attribute": Param(
            "bounding-box", type="string", minLength=1,
            description="Label attribute name in the augmented manifest (may not end in -metadata or -ref).",
            section=s_label),
        "import_manifest": Param(
            "include/sample_data/output.manifest", type="string",
            description="import backend: an existing Ground Truth output manifest (local path or s3:// URI). "
            "Its source-refs are rewritten to the synced images.", section=s_label),
        "import_source_prefix": Param(
            "", type=["null", "string"],
            description="import backend: the prefix the manifest's source-refs start with. "
            "Empty means their longest common prefix.", section=s_label),
        "label_classes": Param(
            ["circle", "square", "triangle"], type="array", items={"type": "string"}, minItems=1, maxItems=10,
            description="ground_truth / label_studio: the classes annotators draw, in class-id order.",
            section=s_label),
        "gt_workteam_arn": Param(
            "", type=["null", "string"],
            description="ground_truth (required for it): a private or vendor work team ARN your account "
            "already has. The public workforce (Mechanical Turk) closed on 2026-09-30 and Ground Truth "
            "takes no new customers: new accounts label with label_studio.", section=s_label),
        "gt_workers_per_object": Param(
            1, type="integer", minimum=1, maximum=9,
            description="ground_truth: workers who box each image; their boxes are consolidated.",
            section=s_label),
        "gt_task_description": Param(
            "", type=["null", "string"],
            description="ground_truth: instructions workers read. Empty means one naming label_classes.",
            section=s_label),
        "gt_task_time_limit_s": Param(
            300, type="integer", minimum=30, maximum=28800,
            description="ground_truth: seconds a worker has for one image.", section=s_label),
        "label_studio_conn_id": Param(
            "label_studio_default", type="string",
            description="label_studio: Airflow connection of the Label Studio server (host and API token).",
            section=s_label),
        "label_studio_presign_aws_conn_id": Param(
            "aws_label_studio_reader", type="string", minLength=1,
            description="label_studio: AWS connection of a read-only principal (include/iam/"
            "label-studio-reader-policy.json) that signs the image URLs Label Studio stores. They live one hour "
            "and are renewed while the project waits; the pipeline's own credentials never reach Label Studio.",
            section=s_label),
        "label_studio_project": Param(
            "", type=["null", "string"],
            description="label_studio: project title, created or reused. Empty means pipeline_name.",
            section=s_label),
        "label_studio_min_annotations": Param(
            1, type="integer", minimum=1, maximum=20,
            description="label_studio: annotations every task needs before the export.", section=s_label),
        "label_studio_timeout_hours": Param(
            72.0, type="number", minimum=0.01,
            description="label_studio: how long to wait for the annotators before failing.", section=s_label),
        "validation_fraction": Param(
            0.25, type="number", minimum=0.01, maximum=0.5,
            description="Share of images held out for the validation channel, chosen by a hash of "
            "source-ref so the split is stable across runs.", section=s_train),
        "training_instance_type": Param(
            "ml.p3.2xlarge", type="string",
            description="GPU instance for the built-in Object Detection algorithm.", section=s_train),
        "training_instance_count": Param(1, type="integer", minimum=1, maximum=16,
                                         description="Training instances.", section=s_train),
        "training_volume_gb": Param(50, type="integer", minimum=5,
                                    description="EBS volume per training instance, GB.", section=s_train),
        "max_training_hours": Param(
            2.0, type="number", minimum=0.1, maximum=120,
            description="Stopping condition: SageMaker stops the job after this many hours. "
            "The cost estimate prices training at this cap.", section=s_train),
        "epochs": Param(30, type="integer", minimum=1, description="Training epochs.", section=s_train),
        "base_network": Param("resnet-50", type="string", enum=["resnet-50", "vgg-16"],
                              description="Backbone of the SSD detector.", section=s_train),
        "mini_batch_size": Param(16, type="integer", minimum=1, description="Mini-batch size.", section=s_train),
        "learning_rate": Param(0.001, type="number", exclusiveMinimum=0, maximum=1,
                               description="Initial learning rate.", section=s_train),
        "image_shape": Param(512, type="integer", minimum=300,
                             description="Input image side, pixels (>= 300).", section=s_train),
        "endpoint_name": Param(
            "", type=["null", "string"],
            description="Endpoint to create or update without downtime. Empty means pipeline_name.",
            section=s_deploy),
        "endpoint_type": Param(
            "serverless", type="string", enum=["serverless", "provisioned", "async"],
            description="serverless (pay per request), provisioned real-time instances, or async "
            "(asynchronous inference from S3, for large inputs; may scale to zero).", section=s_deploy),
        "serverless_memory_mb": Param(
            4096, type="integer", enum=[1024, 2048, 3072, 4096, 5120, 6144],
            description="Serverless MemorySizeInMB (1024-6144, steps of 1024).", section=s_deploy),
        "serverless_max_concurrency": Param(
            10, type="integer", minimum=1, maximum=200,
            description="Serverless MaxConcurrency: concurrent invocations before throttling.",
            section=s_deploy),
        "inference_instance_type": Param(
            "ml.g4dn.xlarge", type="string",
            description="provisioned: hosting instance type.", section=s_deploy),
        "inference_instance_count": Param(1, type="integer", minimum=1,
                                          description="provisioned: initial instance count.",
                                          section=s_deploy),
        "min_map": Param(
            0.5, type="number", minimum=0, maximum=1,
            description="Quality gate: deploy only when the new model's validation:mAP is at least this.",
            section=s_deploy),
        "map_tolerance": Param(
            0.02, type="number", minimum=0, maximum=1,
            description="Quality gate: deploy only when the new mAP is at least the serving model's minus "
            "this. The first deploy has nothing to beat.", section=s_deploy),
        "deployment_policy": Param(
            "all_at_once", type="string", enum=["all_at_once", "canary", "linear"],
            description="Blue/green traffic shifting on update, rolled back by CloudWatch alarms on 5XX "
            "errors and latency. Serverless endpoints allow all_at_once only.", section=s_deploy),
        "autoscaling_min_capacity": Param(
            1, type="integer", minimum=0,
            description="provisioned / async: Application Auto Scaling minimum instances (async may use 0).",
            section=s_deploy),
        "autoscaling_max_capacity": Param(
            0, type="integer", minimum=0,
            description="provisioned: maximum instances; 0 turns autoscaling off.", section=s_deploy),
        "target_invocations_per_instance": Param(
            100.0, type="number", minimum=1,
            description="provisioned: autoscaling target for SageMakerVariantInvocationsPerInstance "
            "(the load test reports a recommended value).", section=s_deploy),
        "challenger_weight": Param(
            0.0, type="number", minimum=0, maximum=0.99,
            description="provisioned: above 0, the new model joins as a Challenger variant taking this share "
            "of traffic (A/B) until promote_challenger; 0 replaces the model.", section=s_deploy),
        "load_test_requests": Param(
            200, type="integer", minimum=1, maximum=100000,
            description="Load test: total requests (the test also stops at load_test_max_seconds).",
            section=s_test),
        "load_test_concurrency": Param(4, type="integer", minimum=1, maximum=1000,
                                       description="Load test: concurrent requests.", section=s_test),
        "load_test_max_seconds": Param(60, type="number", minimum=1,
                                       description="Load test: time limit, seconds.", section=s_test),
        "slo_p95_ms": Param(2000, type="number", minimum=1,
                            description="SLO: the run fails if p95 latency exceeds this, ms.", section=s_test),
        "max_error_rate": Param(0.01, type="number", minimum=0, maximum=1,
                                description="SLO: the run fails above this share of failed requests.",
                                section=s_test),
        "budget_usd": Param(
            50.0, type="number", minimum=0,
            description="The run fails before spending anything when its estimated cost exceeds this, USD.",
            section=s_data),
    }


LOAD_TEST_REPORTS = "load-tests"


def default_load_test_report_prefix() -> str:
    """``endpoint_load_test``'s default report location: ``s3://<bucket>/<prefix>/load-tests/``.

    Under the pipeline's default bucket and prefix, the only place the Airflow role may write
    (include/iam/airflow-role-policy.json); a location beside the prefix would be refused by AWS
    when the report is written, at the end of the test.
    """
    defaults = pipeline_params()
    return f"s3://{defaults['bucket'].value}/{defaults['prefix'].value}/{LOAD_TEST_REPORTS}/"


def param_defaults() -> dict[str, Any]:
    """The default value of each pipeline param, as a task would see it."""
    return {name: param.value for name, param in pipeline_params().items()}


def default_poll_seconds() -> int:
    """Poll interval for deferrable waits; $SAGEMAKER_VISION_POLL_SECONDS (the emulator sets 1)."""
    return int(_env("SAGEMAKER_VISION_POLL_SECONDS", "30"))
