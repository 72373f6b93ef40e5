"""
## `<pipeline>.teardown`

Delete the pipeline's endpoint and what it leaves behind, or prune old models of one that stays.

`plan` → `acquire_endpoint_lease` → `execute` → `release_endpoint_lease`

* **Plan first**: `plan` lists every endpoint, endpoint config, model, alarm and scaling
  target it would delete, each with its reason, and the monthly standing cost deleting the
  endpoint stops. With `dry_run` on, `execute` is skipped: read the plan in `plan`'s log.
* **Only the package's own resources**: anything not tagged `managed-by=sagemaker-vision` is
  refused, naming it; configs and models that another endpoint uses are never deleted.
* **Keeps the newest `keep_models` models**, so a later deploy or rollback has something to use.
* **Idempotent**: `execute` re-reads AWS, deletes only what the plan listed and is still
  deletable, and counts a resource that is already gone as done, so a rerun finishes the job.
* **One writer per endpoint**: `execute` runs inside the endpoint's lease, the same S3 object the
  pipeline DAGs take (`s3://<bucket>/sagemaker-vision-locks/endpoints/<region>/<endpoint>.json`, in the
  pipeline file's bucket), so it never deletes an endpoint a pipeline run is deploying or testing.

Manual trigger only. The logic lives in `sagemaker_vision.pipeline.teardown` (the tasks),
`sagemaker_vision.core.teardown` (the plan) and `sagemaker_vision.hooks.teardown` (AWS).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, dag, task

from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.dags.common import endpoint_name_param, manual_dag_kwargs
from sagemaker_vision.pipeline.deploy import hold_hook
from sagemaker_vision.pipeline.tasks import with_endpoint_lease

KIND = "teardown"


def build(definition: PipelineDefinition) -> DAG:
    params = {
        "endpoint_name": endpoint_name_param(
            definition,
            "The endpoint to tear down (or whose pipeline to prune). It must be tagged managed-by=sagemaker-vision."),
        "keep_models": Param(
            2, type="integer", minimum=0,
            description="Keep the newest N models of the endpoint's pipeline (for a later deploy or rollback); "
            "older ones, and configs that only point at them, are deleted. Models in use are always kept."),
        "delete_endpoint": Param(
            True, type="boolean",
            description="Delete the endpoint itself, its configs, alarms and autoscaling. Off: keep the endpoint "
            "and only prune old models and their configs."),
        "dry_run": Param(
            False, type="boolean",
            description="Only log the plan (what would be deleted, why, and the cost it stops); delete nothing."),
    }

    @dag(schedule=None, **manual_dag_kwargs(definition, KIND, __doc__, ["teardown"], params))
    def teardown() -> None:
        @task
        def plan(**context) -> dict:
            """List what would be deleted and why, and the standing cost it stops; refuse unmanaged resources."""
            from sagemaker_vision.pipeline.teardown import plan_task  # lazy: keeps DAG parsing fast

            return plan_task(context["params"])

        @task(pre_execute=hold_hook("execute"))
        def execute(approved: dict, **context) -> dict:
            """Delete what the plan listed (endpoint last); skipped on a dry run."""
            from sagemaker_vision.pipeline.teardown import execute_task  # lazy: keeps DAG parsing fast

            return execute_task(approved, context["params"])

        planned: Any = plan()  # an XComArg: the plan's result when execute runs
        deleted = execute(planned)
        planned >> with_endpoint_lease(deleted, deleted)

    return teardown()
