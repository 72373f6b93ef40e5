"""
## endpoint_promote_challenger

Shift all traffic of an A/B endpoint to its Challenger variant.

When `object_detection_pipeline` runs with `challenger_weight` above 0 on a provisioned
endpoint, the new model joins as the `Challenger` variant with that share of traffic while
the serving model stays as `Champion`. Once its metrics convince you, trigger this DAG: it
calls `UpdateEndpointWeightsAndCapacities` (Champion weight 0, Challenger 1) and waits until
the endpoint is InService. Idempotent: an endpoint already promoted is left alone.

Manual trigger only. The logic lives in `sagemaker_vision.scaling`.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from sagemaker_vision import aws
from sagemaker_vision.tasks import endpoint_name_param, manual_dag_kwargs


@dag(schedule=None, **manual_dag_kwargs(__doc__, ["deploy"], params={
    "endpoint_name": endpoint_name_param("The A/B endpoint whose Challenger variant takes all traffic."),
}))
def endpoint_promote_challenger():
    @task
    def promote(**context) -> dict:
        """Challenger weight 1, Champion 0, then wait until the endpoint is InService."""
        from sagemaker_vision.params import default_poll_seconds
        from sagemaker_vision.scaling import promote_challenger

        return promote_challenger(aws.client("sagemaker"), context["params"]["endpoint_name"],
                                  waiter_delay=default_poll_seconds())

    promote()


endpoint_promote_challenger()
