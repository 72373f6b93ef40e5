"""
## `<pipeline>.promote_challenger`

End the A/B test of an endpoint: promote its Challenger variant, or drop it.

When `<pipeline>.pipeline` runs with `challenger_weight` above 0 on a provisioned endpoint, the new
model joins as the `Challenger` variant with that share of traffic while the serving model stays
as `Champion`. Once its metrics convince you (or not), trigger this DAG:

- `promote`: `UpdateEndpointWeightsAndCapacities` sends all traffic to the Challenger at once
  (Champion weight 0, no redeploy); then the endpoint is updated to serve the Challenger's model
  alone as `AllTraffic`, so the idle Champion fleet stops costing money.
- `drop`: the endpoint is updated to serve the Champion's model alone as `AllTraffic`.

Both updates change the variant names, so they carry no DeploymentConfig (AWS refuses blue/green
and rolling deployments that rename variants); SageMaker still brings the new fleet up before it
shifts traffic, so there is no downtime. AWS fails an update that removes an autoscaled variant,
so the A/B variants' autoscaling is released first and the kept variant's is put back on
`AllTraffic`. Idempotent: an endpoint already ended is left alone.

`acquire_endpoint_lease` → `end_test` → `release_endpoint_lease`: both updates write to the
endpoint, so they run inside its lease, the same S3 object the pipeline DAGs take
(`s3://<bucket>/sagemaker-vision-locks/endpoints/<region>/<endpoint>.json`, in the pipeline file's
bucket); a pipeline run that is deploying to the endpoint is waited for, and it waits for this one.

Manual trigger only. The logic lives in `sagemaker_vision.hooks.ab_test` (the calls) and
`sagemaker_vision.core.ab_test` (the requests).
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, dag, task

from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.dags.common import endpoint_name_param, manual_dag_kwargs
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.pipeline.deploy import hold_hook
from sagemaker_vision.pipeline.tasks import with_endpoint_lease

KIND = "promote_challenger"


def build(definition: PipelineDefinition) -> DAG:
    params = {
        "endpoint_name": endpoint_name_param(definition, "The A/B endpoint whose test ends."),
        "action": Param("promote", type="string", enum=["promote", "drop"],
                        description="promote: the Challenger takes all traffic and then serves alone; "
                                    "drop: the Champion serves alone again."),
    }

    @dag(schedule=None, **manual_dag_kwargs(definition, KIND, __doc__, ["deploy"], params))
    def promote_challenger() -> None:
        @task(pre_execute=hold_hook("end_test"))
        def end_test(**context) -> dict:
            """promote: all traffic to the Challenger, then it serves alone; drop: the Champion serves alone."""
            from sagemaker_vision.hooks.ab_test import finish_ab_test  # lazy: keeps DAG parsing fast
            from sagemaker_vision.pipeline.params import default_poll_seconds  # lazy: keeps DAG parsing fast

            params = context["params"]
            return finish_ab_test(aws.client("sagemaker"), params["endpoint_name"], params["action"],
                                  autoscaling_client=aws.client("application-autoscaling"),
                                  waiter_delay=default_poll_seconds())

        test = end_test()
        with_endpoint_lease(test, test)

    return promote_challenger()
