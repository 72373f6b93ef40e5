"""
## `<pipeline>.pipeline`

Images to a load-tested SageMaker object-detection endpoint, every week, on demand or backfilled.

`estimate_costs` → `sync_images` → `validate_images` → `label` → `prepare_manifests` → `train_and_deploy`, a
task group: `needs_training` → `training_request` → `train` → `acquire_endpoint_lease` → `quality_gate` →
`deploy_requests` → `create_model` → `create_endpoint_config` → `deploy` → `autoscaling` → `choose_smoke_test` →
`smoke_test` → `load_test`, or `smoke_test_async` for an async endpoint (→ `rollback` when a test failed;
`tests_passed` carries the run's outcome) → `release_endpoint_lease` (a teardown: it runs however the section
ended). The group's task ids carry its prefix: `train_and_deploy.deploy`.

* **One file, one pipeline**: the pipeline file holds the data, labeling, training, endpoint, SLO
  and schedule; the trigger form shows only what a person changes per run (budget, training knobs,
  the quality gate, the load's size). A `--conf` key may override a file setting for one run.
* **Costs first**: the paid steps are priced before anything is spent; the run fails when the
  estimate exceeds `budget_usd`.
* **Partitioned by the data interval**: images land in `raw/dt=<interval start>/`, labels in
  `labels/dt=…/`; a run trains on every partition labeled up to its interval's end, so a
  backfilled week trains on what existed then.
* **Labeling backends** (`label_backend`): `import` an existing Ground Truth manifest, a
  SageMaker Ground Truth job (a private or vendor work team), or a Label Studio project. The
  `label` task group branches to the one backend task that runs; its `label.publish` step
  updates the pipeline's labels Asset (`<pipeline>.labels`), which also drives `<pipeline>.retrain`.
* **Safe to rerun**: names derive from the run, so clearing any task reuses what it made; a
  worse model never replaces a better one (`min_map`, `map_tolerance`); updates are blue/green.
* **One writer per endpoint**: from the gate to the load test a run holds the endpoint's S3 lease
  (`s3://<bucket>/sagemaker-vision-locks/endpoints/<region>/<endpoint>.json`, whatever the `prefix`), so
  two runs (this DAG, `.retrain`, `.promote_challenger`, `.teardown`, on any workers) never gate against a
  score the other is replacing. A failed smoke or load test rolls back to the config that served before;
  the tests refuse to run when the endpoint no longer serves this run's config (clear
  `train_and_deploy.deploy` to deploy again).

Runs unchanged on real AWS (`aws_default`) and on the embedded emulator (`make demo`).
"""

from __future__ import annotations

from airflow.sdk import DAG, dag
from airflow.timetables.interval import CronDataIntervalTimetable

from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.dags.common import dag_kwargs
from sagemaker_vision.operators.s3_sync import S3SyncOperator
from sagemaker_vision.pipeline.label import label_images, labels_asset
from sagemaker_vision.pipeline.params import default_poll_seconds
from sagemaker_vision.pipeline.tasks import estimate_costs, prepare_manifests, train_and_deploy, validate_images

KIND = "pipeline"


def build(definition: PipelineDefinition) -> DAG:
    # Weekly data intervals (Sunday to Sunday), not Airflow 3's default zero-length cron triggers:
    # each run owns one week of images, which is what its partition and backfills are keyed on.
    schedule = CronDataIntervalTimetable(definition.schedule, timezone="UTC") if definition.schedule else None

    @dag(schedule=schedule, catchup=False, **dag_kwargs(definition, KIND, __doc__, ["training", "weekly"]))
    def pipeline() -> None:
        sync_images = S3SyncOperator(
            task_id="sync_images",
            source="{{ pipeline().sync_source }}",
            dest="{{ pipeline().raw_prefix }}",
            include="*.jpg,*.jpeg,*.png",  # images only: never notes.txt or other files of the folder
            doc_md="Copy new or changed images into this run's `raw/dt=…/` partition.",
        )
        asset = labels_asset(definition.name, definition.labels_asset_uri)
        label, labeled = label_images(asset, "label", poll_seconds=default_poll_seconds())
        manifests = prepare_manifests(labeled)
        stage = train_and_deploy(manifests)

        estimate_costs() >> sync_images >> validate_images() >> label
        manifests >> stage

    return pipeline()
