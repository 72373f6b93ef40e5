"""
## `<pipeline>.retrain`

Retrain and redeploy when new labels land, and on the file's `retrain_schedule` regardless.

Scheduled on the pipeline's labels Asset (`<pipeline>.labels`) **or** a cron. Labels arrive on
their own clock (annotators finish a Label Studio project days later; a team imports a manifest),
so waiting for next week's `<pipeline>.pipeline` run would leave them unused.

`estimate_costs` → `prepare_manifests` (every labeled partition up to now) → `train_and_deploy`, a task
group: `needs_training` → `training_request` → `train` → `acquire_endpoint_lease` → `quality_gate` →
`deploy_requests` → `create_model` → `create_endpoint_config` → `deploy` → `autoscaling` →
`choose_smoke_test` → `smoke_test` → `load_test`, or `smoke_test_async` (→ `rollback` when a test failed;
`tests_passed` carries the run's outcome) → `release_endpoint_lease`: the same task group as the weekly
pipeline's tail (task ids `train_and_deploy.train`, `train_and_deploy.deploy`, ...).

`needs_training` skips everything when another run already trained on exactly the same
manifests and settings, so the Asset event of the weekly pipeline's own `label` task (which
trains on that data itself) never pays for a second training job.

This DAG and `<pipeline>.pipeline` may run at the same time on one endpoint: from the quality gate
to the load test, one run at a time holds the endpoint's lease (an S3 object taken with a
conditional write, `s3://<bucket>/sagemaker-vision-locks/endpoints/<region>/<endpoint>.json`, the same
object whatever the run's `prefix`), so the gate reads the production score no other run can change
before this run is done. A run that finds the lease held waits deferred, without a worker slot. A
failed smoke or load test rolls the endpoint back to the config that served before, and the run fails
saying which model serves.
"""

from __future__ import annotations

from typing import Any, cast

from airflow.sdk import DAG, dag
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.dags.common import dag_kwargs
from sagemaker_vision.pipeline.label import labels_asset
from sagemaker_vision.pipeline.tasks import estimate_costs, prepare_manifests, train_and_deploy

KIND = "retrain"


def build(definition: PipelineDefinition) -> DAG:
    asset = labels_asset(definition.name, definition.labels_asset_uri)
    schedule: Any = asset
    if definition.retrain_schedule:
        schedule = AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(definition.retrain_schedule, timezone="UTC"),
            assets=cast(Any, [asset]))  # typed as the serialized Asset; takes the SDK's

    @dag(schedule=schedule, catchup=False,
         **dag_kwargs(definition, KIND, __doc__, ["training", "retrain", "asset"]))
    def retrain() -> None:
        manifests = prepare_manifests()
        estimate_costs(labels=False) >> manifests >> train_and_deploy(manifests)

    return retrain()
