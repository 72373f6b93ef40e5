"""
## `<pipeline>.right_size`

Find the cheapest serverless memory size that meets the SLO: the model the pipeline's endpoint
serves (or `model_name`) is load-tested at each `MemorySizeInMB` of `memory_sizes_mb`, alike, and the
size cheapest per 1,000 inferences that met `slo_p95_ms` and `max_error_rate` is recommended (what
SageMaker Inference Recommender does for serverless).

`check` → `estimate` → for each size: `create` → `deploy` → `load_test_plan` → `load_test_worker` →
`load_test` → `recommend`; `teardown` always runs last

* **Serverless only**: `check` refuses a pipeline whose `endpoint_type` is not serverless and an endpoint
  that is not one serverless variant, naming the field, before any paid call.
* **Prices itself first**: `estimate` bounds each size's test (GB-seconds of every concurrent request for
  the whole test, data at the payload limit) and fails the run before anything is created above `budget_usd`.
* **Never touches the endpoint**: each size gets an endpoint config and endpoint of its own,
  `<pipeline>-rs<MB>-<run token>` (within SageMaker's 63 characters), serving the same model, tagged
  `managed-by=sagemaker-vision`, `load-test-allowed=true` and `right-size-run=<sha256 of the run id>` (a
  run id may hold what a tag value may not). `deploy` waits
  for InService in the triggerer, as long as AWS's limits allow. `teardown` (an Airflow teardown task)
  deletes exactly those, however the tests ended; one already gone counts as deleted. Clearing a size's
  test after the run ended (the teardown deleted its endpoint) works: the test's plan creates the size's
  config and endpoint again and waits for InService before it sends anything, and the teardown, cleared
  with it, deletes them again.
* **One test at a time**: every size has a task group (`size_1024` ... `size_6144`; those not asked for
  are skipped). The endpoints come up at once (an idle serverless endpoint bills nothing), but each
  size's load test waits for the earlier sizes' (`previous_sizes_done`), so no two share the load
  generator and their latencies compare; a size that fails (an endpoint that cannot start at that
  memory) does not stop the next one.
* **The pick**: `recommend` takes each size's report from its `load_test` task of this try (its XCom, only
  when the task's state is success: after a clear, a size whose test did not run again has no report, never
  the earlier try's) and writes `recommendation.json`
  (every size: p50/p95/p99, throughput, errors, cost per 1,000 inferences and per hour, meets_slo) to
  `s3://<bucket>/<prefix>/right-size/<run id>/`, logs the table, and fails, after writing it, when no
  size met the SLO or a size has no report.

Manual trigger only. Logic: `sagemaker_vision.core.right_size` (decisions),
`sagemaker_vision.hooks.right_size` (AWS) and `sagemaker_vision.pipeline.right_size` (the tasks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.providers.common.compat.sdk import AirflowSkipException
from airflow.sdk import DAG, Param, TaskGroup, TriggerRule, dag, task

from sagemaker_vision.core.params import default_poll_seconds
from sagemaker_vision.core.pipeline_file import PipelineDefinition
from sagemaker_vision.core.right_size import default_memory_sizes, memory_sizes_schema
from sagemaker_vision.core.validate import SAGEMAKER_NAME_MAX, SAGEMAKER_NAME_PATTERN, SERVERLESS_MEMORY_MB
from sagemaker_vision.dags.common import endpoint_name_param, manual_dag_kwargs
from sagemaker_vision.pipeline.load_test import PLAN_SUFFIX, fanned_out_load_test
from sagemaker_vision.pipeline.tasks import template

KIND = "right_size"
# In each size's group but the first: done when every earlier size's test is (its load test waits for it).
PREVIOUS_DONE = "previous_sizes_done"


def size_group_id(memory_mb: int) -> str:
    return f"size_{memory_mb}"


def _endpoint_ready_before_the_plan(memory_mb: int) -> Callable[[str], Callable[[Any], None] | None]:
    """The load test's pre_execute by stage: its plan first makes sure the size's endpoint is there, created again
    when a clear re-runs the test after the teardown deleted it (``pipeline.right_size.endpoint_ready_task``)."""
    def ready(context: Any) -> None:
        from sagemaker_vision.pipeline.right_size import endpoint_ready_task  # lazy: keeps DAG parsing fast

        endpoint_ready_task(context["ti"].xcom_pull(task_ids="check"), memory_mb, context["run_id"])

    def by_stage(stage: str) -> Callable[[Any], None] | None:
        return ready if stage.endswith(PLAN_SUFFIX) else None

    return by_stage


def _params(definition: PipelineDefinition) -> dict[str, Param]:
    settings = definition.settings
    return {
        "endpoint_name": endpoint_name_param(
            definition, "The pipeline's endpoint, whose model is tested (the endpoint itself is only read)."),
        "model_name": Param("", type="string", maxLength=SAGEMAKER_NAME_MAX, pattern=f"^$|{SAGEMAKER_NAME_PATTERN}",
                            description="The model to test; empty: the model endpoint_name serves now."),
        "memory_sizes_mb": Param(
            default_memory_sizes(settings["serverless_memory_mb"]), **memory_sizes_schema(),
            description="The serverless MemorySizeInMB values to test (1024-6144 in steps of 1024), each once, each on "
            "a temporary endpoint of its own."),
        "payload_prefix": Param(
            "", type="string",
            description="Images to send, cycled: an s3:// prefix or an s3://...manifest, never a local folder (the "
            "load workers may run on any machine). Empty: the validation manifest of the pipeline run that trained "
            "the model (what the pipeline's own load test sends: images training kept, within the payload limit); "
            "the synced raw/ images would also hold those bad_image_policy=skip left out, which the plan refuses."),
        "concurrency": Param(settings["load_test_concurrency"], type="integer", minimum=1, maximum=200,
                             description="Concurrent requests per size, also each test endpoint's MaxConcurrency (the "
                             "endpoints are up at once: their MaxConcurrency adds up against the account's "
                             "quota); at most the file's serverless_max_concurrency."),
        "requests_per_size": Param(settings["load_test_requests"], type="integer", minimum=1, maximum=100_000,
                                   description="Requests sent to each size (its test also stops at seconds_per_size)."),
        "seconds_per_size": Param(settings["load_test_max_seconds"], type="number", minimum=1,
                                  description="Time limit of each size's test, seconds."),
        "load_workers": Param(settings["load_workers"], type="integer", minimum=1, maximum=16,
                              description="Mapped load workers per size, splitting its concurrency and requests."),
        "slo_p95_ms": Param(settings["slo_p95_ms"], type="number", minimum=1,
                            description="SLO: a size qualifies when its p95 latency is at most this, ms."),
        "max_error_rate": Param(settings["max_error_rate"], type="number", minimum=0, maximum=1,
                                description="SLO: a size qualifies when its share of failed requests is at most this."),
        "budget_usd": Param(settings["budget_usd"], type="number", minimum=0,
                            description="The run fails before creating anything when the tests may cost more, USD."),
    }


def build(definition: PipelineDefinition) -> DAG:
    settings = definition.settings
    poll = default_poll_seconds()

    @dag(schedule=None, **manual_dag_kwargs(definition, KIND, __doc__, ["load-test", "right-size"],
                                            _params(definition)))
    def right_size() -> None:
        from airflow.providers.standard.operators.empty import EmptyOperator  # lazy: keeps DAG parsing fast

        from sagemaker_vision.operators.deploy import DeployEndpointOperator  # lazy: keeps DAG parsing fast

        @task
        def check(**context) -> dict:
            """Refuse what is not serverless and bad params (naming the field); resolve the model; name the sizes."""
            from sagemaker_vision.pipeline.right_size import check_task  # lazy: keeps DAG parsing fast

            return check_task(context["params"], run_id=context["run_id"], pipeline_name=definition.name,
                              endpoint_type=settings["endpoint_type"],
                              max_concurrency=settings["serverless_max_concurrency"],
                              bucket=settings["bucket"], prefix=settings["prefix"])

        @task
        def estimate(checked: dict, **context) -> dict:
            """Price every size's test (an upper bound); fail before anything is created above budget_usd."""
            from sagemaker_vision.pipeline.right_size import estimate_task  # lazy: keeps DAG parsing fast

            return estimate_task(checked, context["params"])

        @task(multiple_outputs=True)
        def create(checked: dict, memory_mb: int, **context) -> dict:
            """This size's endpoint config (deploy creates the endpoint); skipped when the size is not asked for."""
            from sagemaker_vision.pipeline.right_size import create_task  # lazy: keeps DAG parsing fast

            return create_task(checked, memory_mb, context["run_id"])

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def recommend(**context) -> dict:
            """The cheapest size per 1,000 inferences that met the SLO, in recommendation.json."""
            from sagemaker_vision.pipeline import right_size as tasks  # lazy: keeps DAG parsing fast

            ti = context["ti"]
            # all_done: after every size however it ended, but never when the estimate refused the run
            if ti.xcom_pull(task_ids="estimate") is None:
                raise AirflowSkipException("the estimate did not pass: nothing was created or tested")
            checked = ti.xcom_pull(task_ids="check")
            reduces = {m: f"{size_group_id(m)}.load_test" for m in SERVERLESS_MEMORY_MB}
            # The reduce tasks' states now (this try's), then their XComs: never a report an earlier try left.
            states = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(reduces.values()), run_ids=[ti.run_id])
            reports = tasks.reports_of_this_try(checked, reduces, states=states.get(ti.run_id, {}),
                                                pull=lambda task_id: ti.xcom_pull(task_ids=task_id))
            return tasks.recommend_task(checked, reports)

        @task
        def teardown(checked: dict, **context) -> dict:
            """Delete this run's temporary endpoints and configs (only those); already gone counts as done."""
            from sagemaker_vision.pipeline.right_size import teardown_task  # lazy: keeps DAG parsing fast

            return teardown_task(checked, context["run_id"])

        checked: Any = check()
        priced: Any = estimate(checked)
        # Every size's endpoint comes up at once (idle serverless endpoints bill nothing); the load tests take
        # turns: a size's test waits for the previous sizes' tests to end, however they ended.
        turn: list[Any] = []
        for memory in SERVERLESS_MEMORY_MB:
            group = size_group_id(memory)
            with TaskGroup(group_id=group, tooltip=f"{memory} MB: endpoint config → endpoint → load test"):
                created: Any = create(checked, memory)
                deploy = DeployEndpointOperator(
                    task_id="deploy", endpoint_name=created["endpoint_name"],
                    endpoint_config_name=created["endpoint_config_name"], tags=created["tags"],
                    rollback_alarms=False, record_previous=False, deferrable=True, check_interval=poll,
                )
                pulled = f"ti.xcom_pull(task_ids='{group}.create', key='{{}}')"
                plan, reduce = fanned_out_load_test(
                    task_id="load_test",
                    pre_execute=_endpoint_ready_before_the_plan(memory),
                    load_workers="{{ params.load_workers }}",
                    endpoint_name="{{ " + pulled.format("endpoint_name") + " }}",
                    payload_prefix="{{ ti.xcom_pull(task_ids='check')['payload_prefix'] }}",
                    concurrency_steps=[template("{{ params.concurrency }}")],
                    max_requests_per_step="{{ params.requests_per_size }}",
                    step_seconds="{{ params.seconds_per_size }}",
                    slo_p95_ms="{{ params.slo_p95_ms }}",
                    max_error_rate="{{ params.max_error_rate }}",
                    report_s3_prefix="{{ " + pulled.format("report_prefix") + " }}",
                    fail_on_slo_breach=False,  # a size that misses the SLO is a result: recommend compares them
                    engine="threads",
                    processes=1,
                )
                deploy >> plan
                if turn:
                    waits = EmptyOperator(task_id=PREVIOUS_DONE, trigger_rule=TriggerRule.ALL_DONE)
                    turn >> waits >> plan
                    turn = [reduce, waits]
                else:
                    turn = [reduce]
            priced >> created
        turn >> recommend()
        cleanup = teardown(checked).as_teardown(setups=priced, on_failure_fail_dagrun=True)
        turn >> cleanup

    return right_size()
