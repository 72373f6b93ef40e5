"""
## `<pipeline>.load_test`

Load-test a SageMaker endpoint with a stepped concurrency ramp, to size it and its autoscaling.

`load_test`: for each step of `concurrency_steps` (for example 1, 5, 10, 20), requests run for
`step_seconds` at that concurrency, bounded by `max_requests_per_step`. The report gives, per
step, throughput, p50/p90/p95/p99/max latency and errors by code, plus the cold-start latency
of the first request, and recommends `SageMakerVariantInvocationsPerInstance` =
max sustainable RPS × 60 × `safety_factor` (AWS's sizing method). `report.json` and
`chart.png` go to S3 and their URIs to the log.

* **SLO gate**: the run fails, with the numbers, when a step breaches `slo_p95_ms` or
  `max_error_rate` (after the report is written). The defaults are the pipeline file's SLO.
* **Safety**: an endpoint not tagged `load-test-allowed=true` is refused unless `force`.

* **Fan-out**: `load_workers` mapped tasks (`load_test_worker`, dynamic task mapping) split every step
  and start it together on S3's clock after `load_test_plan` (cold start, warm-up, shares); `load_test`
  merges their HdrHistograms exactly, names each worker's share and prices the endpoint (per hour and
  per 1,000 inferences, as Inference Recommender reports). Under `airflow dags test`, which runs mapped
  tasks one after another, use `load_workers=1`.

Manual trigger only; the pipeline's own `load_test` tasks are the same three.
"""

from __future__ import annotations

from airflow.sdk import DAG, Param, dag

from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.dags.common import endpoint_name_param, manual_dag_kwargs
from sagemaker_vision.pipeline.load_test import fanned_out_load_test
from sagemaker_vision.pipeline.params import default_load_test_report_prefix
from sagemaker_vision.pipeline.tasks import template

KIND = "load_test"


def build(definition: PipelineDefinition) -> DAG:
    settings = definition.settings
    params = {
        "endpoint_name": endpoint_name_param(definition, "The endpoint to load (InService)."),
        "payload_prefix": Param(
            f"s3://{settings['bucket']}/{settings['prefix']}/raw/", type="string", minLength=1,
            description="Images to send, cycled: an s3:// prefix (the pipeline's synced images by default) or an "
            "s3://...manifest; never a local folder, since the load workers may run on any machine. ContentType "
            "comes from each file."),
        "concurrency_steps": Param([1, 5, 10, 20], type="array", items={"type": "integer", "minimum": 1},
                                   minItems=1, description="The ramp: concurrent requests per step, ascending."),
        "step_seconds": Param(30, type="number", minimum=1, description="How long each step lasts, seconds."),
        "max_requests_per_step": Param(5000, type="integer", minimum=1,
                                       description="Hard cap on requests in one step."),
        "slo_p95_ms": Param(settings["slo_p95_ms"], type="number", minimum=1,
                            description="SLO: every step's p95 latency must stay under this, ms."),
        "max_error_rate": Param(settings["max_error_rate"], type="number", minimum=0, maximum=1,
                                description="SLO: every step's share of failed requests must stay under this."),
        "report_s3_prefix": Param(
            default_load_test_report_prefix(definition), type="string",
            description="Where report.json and chart.png go; the run id is appended. The default is under the "
            "pipeline's prefix, where the Airflow role may write (include/iam/)."),
        "load_workers": Param(
            settings["load_workers"], type="integer", minimum=1, maximum=16,
            description="Mapped tasks that split every step's concurrency and requests and start each step together "
            "(on S3's clock); their latency histograms merge exactly into one report. More workers when one "
            "generator's CPU limits the step (the report's notes say so)."),
        "force": Param(False, type="boolean",
                       description="Load an endpoint that is not tagged load-test-allowed=true. Think twice."),
    }

    @dag(schedule=None, **manual_dag_kwargs(definition, KIND, __doc__, ["load-test"], params))
    def load_test() -> None:
        fanned_out_load_test(
            task_id="load_test",
            load_workers="{{ params.load_workers }}",
            endpoint_name="{{ params.endpoint_name }}",
            payload_prefix="{{ params.payload_prefix }}",
            concurrency_steps="{{ params.concurrency_steps | join(',') }}",
            step_seconds="{{ params.step_seconds }}",
            max_requests_per_step="{{ params.max_requests_per_step }}",
            slo_p95_ms="{{ params.slo_p95_ms }}",
            max_error_rate="{{ params.max_error_rate }}",
            report_s3_prefix="{{ params.report_s3_prefix.rstrip('/') }}/{{ dag_run.run_id | replace(':', '-') }}/",
            force=template("{{ params.force }}"),
        )

    return load_test()
