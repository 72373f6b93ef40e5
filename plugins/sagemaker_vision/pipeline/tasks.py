"""The pipeline's tasks and task groups, shared by the DAG builders of ``sagemaker_vision.dags`` (which only wire them).

Each task rebuilds the typed ``PipelineConfig`` from its own context and calls the one module
that owns its stage. ``train_and_deploy`` is the task group of the tail that both the weekly
pipeline and the Asset-triggered retraining DAG run (the UI shows it as one unit), so no DAG copies
another's wiring. Its tasks' ids carry the group's prefix (``train_and_deploy.deploy``); a task
that names a sibling derives the id from its own (:func:`sagemaker_vision.core.task_ids.sibling_task_id`).

The stage modules are imported inside the task bodies: a DAG file imports this module when it is
parsed, and a task body runs only on a worker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.sdk import task, task_group

from sagemaker_vision.core.params import default_poll_seconds
from sagemaker_vision.core.task_ids import sibling_task_id
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.pipeline.context import pipeline_config

# The task group of the train -> deploy -> test stage: its tasks' ids start with "train_and_deploy.".
STAGE_GROUP_ID = "train_and_deploy"


def template(value: Any) -> Any:
    """A value for a templated operator field of any type: a Jinja string or an XComArg, which Airflow
    renders or resolves when the task runs (the operator's annotation names the rendered type)."""
    return value


@task
def estimate_costs(labels: bool = True, **context) -> dict:
    """Price every paid step of this run; fail before spending when over `budget_usd`."""
    from sagemaker_vision.pipeline.costs import estimate_and_guard  # lazy: keeps DAG parsing fast
    from sagemaker_vision.pipeline.label import count_source_images  # lazy: keeps DAG parsing fast

    cfg = pipeline_config(context)
    if not labels:  # a DAG that does not label pays for no labeling, whatever label_backend says
        cfg = dataclasses.replace(cfg, label_backend="import")
    images = count_source_images(cfg) if cfg.label_backend == "ground_truth" else 0
    return estimate_and_guard(cfg, num_images=images)


@task
def validate_images(**context) -> dict:
    """Check every synced image of the partition (readable JPEG/PNG, size, extension); `bad_image_policy`."""
    from sagemaker_vision.pipeline.images import validate_partition  # lazy: keeps DAG parsing fast

    return validate_partition(pipeline_config(context), aws.client("s3"))


@task
def prepare_manifests(labeled: dict | None = None, **context) -> dict:
    """Validate every labeled partition up to this run while streaming; split into train/validation.

    Then, before anything is trained or deployed, check that the images the smoke and load tests
    will send fit the endpoint type this run deploys (``pipeline.images.check_test_images``).
    """
    from sagemaker_vision.pipeline.images import check_test_images  # lazy: keeps DAG parsing fast
    from sagemaker_vision.pipeline.manifests import prepare_manifests as prepare  # lazy: keeps DAG parsing fast

    cfg, s3 = pipeline_config(context), aws.client("s3")
    manifests = prepare(cfg, s3, labeled["manifest_uri"] if labeled else None)
    check_test_images(cfg, s3, manifests)
    return manifests


@task.short_circuit
def needs_training(manifests: dict, **context) -> bool:
    """Skip training when another run already trained on exactly this data and these settings."""
    from sagemaker_vision.pipeline.manifests import already_trained  # lazy: keeps DAG parsing fast

    return already_trained(pipeline_config(context), aws.client("s3"), manifests) is None


@task
def training_request(manifests: dict, **context) -> dict:
    """Build the CreateTrainingJob request for the built-in Object Detection algorithm."""
    from sagemaker_vision.core.requests import training_request as build  # lazy: keeps DAG parsing fast

    return build(pipeline_config(context), num_classes=manifests["num_classes"],
                 num_training_samples=manifests["num_training_samples"])


@task.short_circuit
def quality_gate(trained: dict, manifests: dict, **context) -> bool:
    """Deploy only a model at least as good as the serving one (`min_map`, `map_tolerance`).

    Runs inside the endpoint lease (after ``acquire_endpoint_lease``), so the serving model's mAP it
    reads cannot change before this run's deploy and tests are done.
    """
    from sagemaker_vision.pipeline.deploy import gate_run, hold  # lazy: keeps DAG parsing fast
    from sagemaker_vision.pipeline.manifests import record_trained  # lazy: keeps DAG parsing fast

    hold(context, "quality_gate")  # still ours, renewed, before the production score is read
    cfg = pipeline_config(context)
    record_trained(cfg, aws.client("s3"), manifests, trained)
    return gate_run(cfg, trained, aws.client("sagemaker")).deploy


@task
def deploy_requests(trained: dict, **context) -> dict:
    """Build the model, endpoint-config and endpoint requests for the trained model."""
    from sagemaker_vision.core.requests import deployment_requests  # lazy: keeps DAG parsing fast

    return deployment_requests(pipeline_config(context), trained)


@task
def create_model(requests: dict, trained: dict, **context) -> str:
    """Create (or reuse) the model, tagged with its validation:mAP."""
    from sagemaker_vision.pipeline.deploy import create_model_for_run  # lazy: keeps DAG parsing fast

    return create_model_for_run(requests, trained, aws.client("sagemaker"))


@task
def create_endpoint_config(requests: dict, **context) -> str:
    """Create (or reuse) the endpoint config: serverless, provisioned (optionally A/B) or async."""
    from sagemaker_vision.pipeline.deploy import create_endpoint_config_for_run  # lazy: keeps DAG parsing fast

    return create_endpoint_config_for_run(pipeline_config(context), requests, aws.client("sagemaker"))


@task
def autoscaling(**context) -> dict:
    """Target-tracking autoscaling for provisioned endpoints; backlog scaling to zero for async."""
    from sagemaker_vision.pipeline.deploy import configure_autoscaling  # lazy: keeps DAG parsing fast

    return configure_autoscaling(pipeline_config(context))


@task.branch
def choose_smoke_test(**context) -> str:
    """Real-time endpoints answer InvokeEndpoint; async ones answer through S3."""
    endpoint_type = pipeline_config(context).endpoint.endpoint_type
    # The smoke tests are this task's siblings in the stage's task group.
    return sibling_task_id(context["ti"].task_id, "smoke_test_async" if endpoint_type == "async" else "smoke_test")


@task
def smoke_test(manifests: dict, **context) -> dict:
    """Invoke the endpoint with a validated, labeled image of the validation split; name it in every message."""
    from sagemaker_vision.pipeline.smoke_test import smoke_test as run  # lazy: keeps DAG parsing fast

    return run(pipeline_config(context), manifests["class_map"], manifests=manifests)


@task
def release_endpoint_lease(**context) -> dict:
    """Teardown of the critical section: release this run's endpoint lease (never another run's)."""
    from sagemaker_vision.pipeline.deploy import release_lease  # lazy: keeps DAG parsing fast

    return release_lease(context)


def with_endpoint_lease(first: Any, last: Any, poll: int | None = None) -> Any:
    """Put ``first`` … ``last`` (tasks that write to one endpoint) inside its lease: ``acquire_endpoint_lease``
    before ``first``, ``release_endpoint_lease`` after ``last`` as a teardown (so it runs however the
    section ended). Every DAG that writes to an endpoint uses this, so all of them lock one object
    (:func:`sagemaker_vision.core.lease.lease_key`). Returns the acquire task.

    The acquire task never retries: while another run holds the lease it already waits (deferred)
    up to twice the TTL; a retry would wait that long again.
    """
    from sagemaker_vision.core.lease import LEASE_TASK_ID  # lazy: keeps DAG parsing fast
    from sagemaker_vision.pipeline.deploy import acquire_lease_operator  # lazy: keeps DAG parsing fast

    acquire = acquire_lease_operator(task_id=LEASE_TASK_ID, poll_seconds=poll or default_poll_seconds(), retries=0)
    acquire >> first
    last >> release_endpoint_lease().as_teardown(setups=acquire)
    return acquire


@task
def smoke_image(manifests: dict, **context) -> str:
    """The s3 URI of the image the async smoke test sends: validated, labeled, validation split first."""
    import logging

    from sagemaker_vision.pipeline.images import pick_smoke_image  # lazy: keeps DAG parsing fast

    image = pick_smoke_image(pipeline_config(context), aws.client("s3"), manifests)
    logging.getLogger(__name__).info("Smoke image: %s (%s, %dx%d, %d boxes, from %s)", image.uri,
                                     image.content_type, image.width, image.height, image.boxes, image.manifest_uri)
    return image.uri


@task_group(group_id=STAGE_GROUP_ID,
            tooltip="train → lease → quality gate → model → endpoint config → deploy → smoke and load tests")
def train_and_deploy(manifests: Any, poll: int | None = None) -> None:
    """The task group train → lease → quality gate → model → endpoint config → deploy → smoke test → load test.

    From the quality gate to the tests (and the rollback a failed test starts), one run at a time
    holds the endpoint: ``acquire_endpoint_lease`` takes its S3 lease (waiting deferred while another
    run holds it), every task of the section renews it before acting, and
    ``release_endpoint_lease`` (a teardown) gives it back however the section ended. A failed
    smoke or load test rolls the endpoint back to the config that served before (``rollback``),
    which fails the run with a message naming what serves.

    Calling it inside a DAG adds the group and returns it (a ``TaskGroup``), so callers chain
    around the whole stage: ``manifests >> train_and_deploy(manifests)``.
    """
    from airflow.providers.standard.operators.empty import EmptyOperator

    from sagemaker_vision.operators.async_inference import AsyncInferenceSmokeOperator  # lazy: keeps DAG parsing fast
    from sagemaker_vision.operators.deploy import DeployEndpointOperator  # lazy: keeps DAG parsing fast
    from sagemaker_vision.operators.rollback import RollbackEndpointOperator  # lazy: keeps DAG parsing fast
    from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator  # lazy: keeps DAG parsing fast
    from sagemaker_vision.pipeline.deploy import hold, hold_hook  # lazy: keeps DAG parsing fast
    from sagemaker_vision.pipeline.load_test import fanned_out_load_test  # lazy: keeps DAG parsing fast

    poll = poll or default_poll_seconds()
    gate_training = needs_training(manifests)
    request = training_request(manifests)
    train = ObjectDetectionTrainingOperator(
        task_id="train", config=request, deferrable=True, check_interval=poll, print_log=False,
    )
    # XComArgs stand for the tasks' results, resolved when a task that takes them runs.
    trained: Any = train.output
    requests: Any = deploy_requests(trained)
    deploy = DeployEndpointOperator(
        task_id="deploy",
        endpoint_name="{{ pipeline().endpoint_name }}",
        endpoint_config_name="{{ pipeline().endpoint_config_name }}",
        tags=requests["endpoint_tags"],
        deployment_policy="{{ pipeline().deploy.deployment_policy }}",
        alarm_latency_threshold_ms=template("{{ pipeline().load_test.slo_p95_ms }}"),
        deferrable=True,
        check_interval=poll,
        pre_execute=hold_hook("deploy"),
    )
    smoke_async = AsyncInferenceSmokeOperator(
        task_id="smoke_test_async", endpoint_name="{{ pipeline().endpoint_name }}",
        sample_image=template(smoke_image(manifests)), input_prefix="{{ pipeline().run_prefix }}async/input/",
        class_map=manifests["class_map"], min_score=0.2, deferrable=True, waiter_delay=poll,
        pre_execute=hold_hook("smoke_test_async", serving_this_run=True),
    )
    # Plan -> mapped workers (train_and_deploy.load_test_worker, load_workers of them) -> the reduce, which keeps
    # the id train_and_deploy.load_test. Each of the three renews the lease and checks this run's config serves.
    load_test_plan, load_test = fanned_out_load_test(
        task_id="load_test",
        load_workers="{{ pipeline().load_test.workers }}",
        endpoint_name="{{ pipeline().endpoint_name }}",
        # The validation split: images that validated and have labels, never a bad file of raw/.
        payload_prefix="{{ pipeline().validation_manifest_uri }}",
        concurrency_steps=[template("{{ pipeline().load_test.concurrency }}")],
        max_requests_per_step="{{ pipeline().load_test.requests }}",
        step_seconds="{{ pipeline().load_test.max_seconds }}",
        slo_p95_ms="{{ pipeline().load_test.slo_p95_ms }}",
        max_error_rate="{{ pipeline().load_test.max_error_rate }}",
        report_s3_prefix="{{ pipeline().report_prefix }}",
        # A few concurrent requests per worker: one process of threads starts faster than worker processes.
        engine="threads",
        processes=1,
        pre_execute=lambda stage: hold_hook(stage, serving_this_run=True),
    )
    # Skips unless this run deployed; renews the lease itself, right before its UpdateEndpoint.
    rollback = RollbackEndpointOperator(
        task_id="rollback",
        endpoint_name="{{ pipeline().endpoint_name }}",
        trigger_rule="one_failed",
        deferrable=True,
        check_interval=poll,
        renew_lease=hold,
        deploy_task_id=deploy.task_id,  # train_and_deploy.deploy: its result names what to roll back
    )
    # The run's outcome: a leaf that is upstream_failed when anything before the tests failed, so a
    # skipped rollback (nothing of this run deployed) never leaves the run green.
    tests_passed = EmptyOperator(task_id="tests_passed", trigger_rule="none_failed_min_one_success")
    gate = quality_gate(trained, manifests)
    gate_training >> request
    train >> with_endpoint_lease(gate, rollback, poll)
    gate >> requests
    create_model.override(pre_execute=hold_hook("create_model"))(requests, trained) >> \
        create_endpoint_config.override(pre_execute=hold_hook("create_endpoint_config"))(requests) >> deploy
    branch = choose_smoke_test()
    deploy >> autoscaling.override(pre_execute=hold_hook("autoscaling"))() >> branch
    # Async endpoints take no synchronous traffic, so the load test follows the real-time path only.
    smoke = smoke_test.override(pre_execute=hold_hook("smoke_test", serving_this_run=True))(manifests)
    branch >> [smoke, smoke_async]
    smoke >> load_test_plan
    [smoke, smoke_async, load_test] >> rollback
    [smoke, smoke_async, load_test] >> tests_passed
