"""
## object_detection_pipeline

Images to a load-tested SageMaker object-detection endpoint, every week or on demand.

`estimate_costs` → `sync_images` → `label` → `prepare_manifests` → `train` →
`create_model` → `create_endpoint_config` → `deploy` → `smoke_test` → `load_test`

* **Costs first**: the paid steps are priced before anything is spent; the run fails when the
  estimate exceeds `budget_usd`.
* **Idempotent**: every job, model and S3 location is named after the run's data interval,
  so clearing a task reuses what it made.
* Runs unchanged on real AWS (`aws_default`) and on the embedded emulator (`make demo`).

This file only wires; each stage lives in one module of `plugins/sagemaker_vision/`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from sagemaker_vision import aws
from sagemaker_vision.config import PipelineConfig, pipeline_macro
from sagemaker_vision.deploy import DeployEndpointOperator
from sagemaker_vision.labeling import LabelImagesOperator
from sagemaker_vision.load_test import LoadTestOperator
from sagemaker_vision.params import default_poll_seconds, pipeline_params
from sagemaker_vision.s3_sync import S3SyncOperator
from sagemaker_vision.training import ObjectDetectionTrainingOperator

POLL = default_poll_seconds()


@dag(
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["sagemaker", "object-detection", "training"],
    params=pipeline_params(),
    user_defined_macros={"pipeline": pipeline_macro()},
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=30),
                  "botocore_config": aws.BOTOCORE_CONFIG},
)
def object_detection_pipeline():
    @task
    def estimate_costs(**context) -> dict:
        """Price every paid step of this run; fail before spending when over `budget_usd`."""
        from sagemaker_vision.costs import estimate_and_guard
        from sagemaker_vision.labeling import count_source_images

        cfg = PipelineConfig.from_context(context)
        images = count_source_images(cfg) if cfg.label_backend == "ground_truth" else 0
        return estimate_and_guard(cfg, num_images=images)

    sync_images = S3SyncOperator(
        task_id="sync_images",
        source="{{ pipeline().sync_source }}",
        dest="{{ pipeline().raw_prefix }}",
        doc_md="Copy new or changed images into this run's `raw/dt=…/` partition.",
    )

    @task
    def prepare_manifests(labeled: dict, **context) -> dict:
        """Validate the manifest while streaming it; split it into train and validation."""
        from sagemaker_vision.manifests import prepare_manifests as prepare

        return prepare(PipelineConfig.from_context(context), aws.client("s3"), labeled["manifest_uri"])

    @task
    def training_request(manifests: dict, **context) -> dict:
        """Build the CreateTrainingJob request for the built-in Object Detection algorithm."""
        from sagemaker_vision.requests import training_request as build

        return build(
            PipelineConfig.from_context(context),
            num_classes=manifests["num_classes"],
            num_training_samples=manifests["num_training_samples"],
        )

    @task.short_circuit
    def quality_gate(trained: dict, **context) -> bool:
        """Deploy only a model at least as good as the serving one (`min_map`, `map_tolerance`)."""
        from sagemaker_vision.deploy import gate_run

        return gate_run(PipelineConfig.from_context(context), trained, aws.client("sagemaker")).deploy

    @task
    def deploy_requests(trained: dict, **context) -> dict:
        """Build the model, endpoint-config and endpoint requests for the trained model."""
        from sagemaker_vision.requests import deployment_requests

        return deployment_requests(PipelineConfig.from_context(context), trained)

    @task
    def create_model(requests: dict, trained: dict, **context) -> str:
        """Create (or reuse) the model, tagged with its validation:mAP."""
        from sagemaker_vision.deploy import create_model_for_run

        return create_model_for_run(PipelineConfig.from_context(context), requests, trained,
                                    aws.client("sagemaker"))

    @task
    def create_endpoint_config(requests: dict) -> str:
        """Create (or reuse) the endpoint config: serverless, or provisioned instances."""
        from sagemaker_vision.deploy import create_endpoint_config_for_run

        return create_endpoint_config_for_run(requests, aws.client("sagemaker"))

    @task
    def smoke_test(manifests: dict, **context) -> dict:
        """Invoke the endpoint with a sample JPEG and decode the boxes; fail on a malformed reply."""
        from sagemaker_vision.inference import smoke_test as run

        return run(PipelineConfig.from_context(context), manifests["class_map"])

    labeled = LabelImagesOperator(task_id="label", poll_seconds=POLL).output
    manifests = prepare_manifests(labeled)
    train = ObjectDetectionTrainingOperator(
        task_id="train", config=training_request(manifests), deferrable=True, check_interval=POLL,
        print_log=False,
    )
    requests = deploy_requests(train.output)
    model = create_model(requests, train.output)
    endpoint_config = create_endpoint_config(requests)
    deploy = DeployEndpointOperator(
        task_id="deploy",
        endpoint_name="{{ pipeline().endpoint_name }}",
        endpoint_config_name="{{ pipeline().endpoint_config_name }}",
        tags=requests["endpoint_tags"],
        deployment_policy="{{ params.deployment_policy }}",
        alarm_latency_threshold_ms="{{ params.slo_p95_ms }}",
        deferrable=True,
        check_interval=POLL,
    )
    load_test = LoadTestOperator(
        task_id="load_test",
        endpoint_name="{{ pipeline().endpoint_name }}",
        payload_prefix="{{ pipeline().raw_prefix }}",
        concurrency_steps=["{{ params.load_test_concurrency }}"],
        max_requests_per_step="{{ params.load_test_requests }}",
        step_seconds="{{ params.load_test_max_seconds }}",
        slo_p95_ms="{{ params.slo_p95_ms }}",
        max_error_rate="{{ params.max_error_rate }}",
        report_s3_prefix="{{ pipeline().report_prefix }}",
    )

    estimate_costs() >> sync_images >> labeled.operator
    quality_gate(train.output) >> requests
    model >> endpoint_config >> deploy >> smoke_test(manifests) >> load_test


object_detection_pipeline()
