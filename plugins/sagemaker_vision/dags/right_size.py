"""
## `<pipeline>.right_size`

Find the cheapest serverless memory size that meets the SLO, by load-testing the model the
endpoint serves at each `MemorySizeInMB` of `memory_sizes_mb` (what SageMaker Inference
Recommender does for instances).

`inspect` → `estimate` → `create_candidates` → `load_test` (one mapped test per size, one at a
time) → `recommend`; `teardown` always runs last.

* **Serverless only**: a provisioned, multi-variant or async endpoint is refused, naming what it is.
* **Prices itself first**: `estimate` bills every request at the SLO's p95 for each size (serverless
  costs nothing idle) and fails the run before anything is created when that exceeds `budget_usd`.
* **Never touches the endpoint**: each size gets a temporary endpoint config and endpoint of its
  own (`<endpoint>-rs<MB>-<run token>`, within SageMaker's 63 characters), serving the same model;
  `teardown` deletes exactly those, however the run ended.
* **The pick**: `recommendation.json` lists each size's p95, throughput, error rate and cost per
  1,000 inferences, and recommends the cheapest that met `slo_p95_ms` and `max_error_rate`; the run
  fails (after writing it) when none did.

Manual trigger only. Logic: `sagemaker_vision.core.right_size` (decisions) and
`sagemaker_vision.pipeline.right_size` (AWS).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, Param, dag, task

from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.core.validate import SERVERLESS_MAX_CONCURRENCY, SERVERLESS_MEMORY_MB
from sagemaker_vision.dags.common import endpoint_name_param, manual_dag_kwargs
from sagemaker_vision.operators.load_test import LoadTestOperator
from sagemaker_vision.pipeline.params import default_load_test_report_prefix

KIND = "right_size"
REPORT = "{{ params.report_s3_prefix.rstrip('/') }}/{{ dag_run.run_id | replace(':', '-') }}/"


def build(definition: PipelineDefinition) -> DAG:
    settings = definition.settings
    params = {
        "endpoint_name": endpoint_name_param(definition, "The serverless endpoint whose model to right-size."),
        "memory_sizes_mb": Param(
            [2048, 4096, 6144], type="array", minItems=1, uniqueItems=True,
            items={"type": "integer", "enum": list(SERVERLESS_MEMORY_MB)},
            description="The MemorySizeInMB values to try (1024-6144 in steps of 1024), each on an endpoint of "
            "its own."),
        "payload_prefix": Param(
            f"s3://{settings['bucket']}/{settings['prefix']}/raw/", type="string", pattern=r"^s3://",
            description="Images to send, cycled: an s3:// prefix or manifest (the pipeline's synced images by "
            "default)."),
        "concurrency": Param(
            settings["load_test_concurrency"], type="integer", minimum=1, maximum=SERVERLESS_MAX_CONCURRENCY[1],
            description="Concurrent requests per size; at most the endpoint's serverless MaxConcurrency."),
        "requests": Param(settings["load_test_requests"], type="integer", minimum=1,
                          description="Requests per size (each test also stops at step_seconds)."),
        "step_seconds": Param(settings["load_test_max_seconds"], type="number", minimum=1,
                              description="Time limit of each size's test, seconds."),
        "slo_p95_ms": Param(settings["slo_p95_ms"], type="number", minimum=1,
                            description="SLO: a size passes when its p95 latency stays under this, ms."),
        "max_error_rate": Param(settings["max_error_rate"], type="number", minimum=0, maximum=1,
                                description="SLO: a size passes when its share of failed requests stays under this."),
        "budget_usd": Param(settings["budget_usd"], type="number", minimum=0,
                            description="The run fails before creating anything when the tests may cost more, USD."),
        "report_s3_prefix": Param(
            default_load_test_report_prefix(definition).rstrip("/") + "/right-size/", type="string",
            description="Where each size's report and recommendation.json go; the run id is appended."),
    }

    @dag(schedule=None, **manual_dag_kwargs(definition, KIND, __doc__, ["load-test", "right-size"], params))
    def right_size() -> None:
        @task
        def inspect(**context) -> dict:
            """Refuse non-serverless endpoints and bad sizes; name each size's temporary endpoint."""
            from sagemaker_vision.pipeline import right_size as rs  # lazy: keeps DAG parsing fast

            return rs.inspect(context["params"], context["run_id"])

        @task
        def estimate(inspected: dict, **context) -> dict:
            """Price the load tests; fail before anything is created when over budget_usd."""
            from sagemaker_vision.pipeline import right_size as rs  # lazy: keeps DAG parsing fast

            return rs.estimate(inspected, context["params"])

        @task
        def create_candidates(inspected: dict, report_prefix: str) -> list:
            """One temporary endpoint config and endpoint per size, serving the same model, InService."""
            from sagemaker_vision.pipeline import right_size as rs  # lazy: keeps DAG parsing fast

            return rs.create(inspected, report_prefix)

        @task
        def recommend(inspected: dict, reports: list, priced: dict, report_prefix: str) -> dict:
            """The cheapest size per 1,000 inferences that met the SLO, in recommendation.json."""
            from sagemaker_vision.pipeline import right_size as rs  # lazy: keeps DAG parsing fast

            return rs.recommend(inspected, list(reports), priced, report_prefix)

        @task
        def teardown(inspected: dict) -> list:
            """Delete every temporary endpoint and config of this run, whatever happened before."""
            from sagemaker_vision.pipeline import right_size as rs  # lazy: keeps DAG parsing fast

            return rs.teardown(inspected)

        inspected: Any = inspect()
        priced: Any = estimate(inspected)
        created: Any = create_candidates(inspected, REPORT)
        priced >> created
        tests = LoadTestOperator.partial(
            task_id="load_test",
            payload_prefix="{{ params.payload_prefix }}",
            concurrency_steps="{{ params.concurrency }}",
            max_requests_per_step="{{ params.requests }}",
            step_seconds="{{ params.step_seconds }}",
            slo_p95_ms="{{ params.slo_p95_ms }}",
            max_error_rate="{{ params.max_error_rate }}",
            fail_on_slo_breach=False,  # a size that misses is a result; recommend compares them all
            engine="threads",
            processes=1,
            max_active_tis_per_dagrun=1,  # one size at a time: the sizes must not share the client's CPU
        ).expand_kwargs(created)
        picked = recommend(inspected, tests.output, priced, REPORT)
        cleanup = teardown(inspected).as_teardown(setups=created)
        picked >> cleanup

    return right_size()
