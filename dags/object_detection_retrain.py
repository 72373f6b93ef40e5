"""
## object_detection_retrain

Retrain and redeploy when new labels land, and every Monday morning regardless.

Scheduled on the `object_detection_labels` Asset **or** a weekly cron. Labels arrive on their
own clock (annotators finish a Label Studio project days later; a team imports a manifest),
so waiting for next week's `object_detection_pipeline` run would leave them unused.

`estimate_costs` → `prepare_manifests` (every labeled partition up to now) → `train_and_deploy`, a task
group: `needs_training` → `training_request` → `train` → `acquire_endpoint_lease` → `quality_gate` →
`deploy_requests` → `create_model` → `create_endpoint_config` → `deploy` → `autoscaling` →
`choose_smoke_test` → `smoke_test` → `load_test`, or `smoke_test_async` (→ `rollback` when a test failed;
`tests_passed` carries the run's outcome) → `release_endpoint_lease`: the same task group as the weekly
pipeline's tail (task ids `train_and_deploy.train`, `train_and_deploy.deploy`, ...).

`needs_training` skips everything when another run already trained on exactly the same
manifests and settings, so the Asset event of the weekly pipeline's own `label` task (which
trains on that data itself) never pays for a second training job.

This DAG and `object_detection_pipeline` may run at the same time on one endpoint: from the
quality gate to the load test, one run at a time holds the endpoint's lease (an S3 object taken
with a conditional write, `s3://<bucket>/sagemaker-vision-locks/endpoints/<region>/<endpoint>.json`,
the same object whatever the run's `prefix`), so the gate reads
the production score no other run can change before this run is done. A run that finds the lease
held waits deferred, without a worker slot. A failed smoke or load test rolls the endpoint back
to the config that served before, and the run fails saying which model serves.
"""

from __future__ import annotations

from airflow.sdk import dag
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from sagemaker_vision.pipeline.label import LABELS_ASSET
from sagemaker_vision.pipeline.tasks import dag_kwargs, estimate_costs, prepare_manifests, train_and_deploy


@dag(
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * 1", timezone="UTC"), assets=[LABELS_ASSET]),
    catchup=False,
    **dag_kwargs(__doc__, ["training", "retrain", "asset"]),
)
def object_detection_retrain():
    manifests = prepare_manifests()
    estimate_costs(labels=False) >> manifests >> train_and_deploy(manifests)


object_detection_retrain()
