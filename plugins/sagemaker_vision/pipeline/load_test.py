"""The fanned-out load test as three wired tasks: plan -> mapped workers -> reduce.

One function, :func:`fanned_out_load_test`, for every DAG that load-tests (the pipeline's
``train_and_deploy`` group, the manual ``<pipeline>.load_test`` DAG, ``<pipeline>.right_size``):

* ``<task_id>_plan`` (:class:`~sagemaker_vision.operators.load_test_fanout.LoadTestPlanOperator`):
  arguments, endpoint, payloads, cold start and warm-up, then each worker's share and the first
  step's start on S3's clock; it returns one ``{"worker": i, "plan": ...}`` per worker;
* ``<task_id>_worker`` (:class:`~sagemaker_vision.operators.load_test_fanout.LoadTestWorkerOperator`),
  mapped with ``.partial(...).expand_kwargs(plan.output)``: Airflow's dynamic task
  mapping, one task instance per worker, on any workers of the executor; never retried (a retry
  starts after its peers and cannot rejoin their steps);
* ``<task_id>`` (:class:`~sagemaker_vision.operators.load_test_fanout.LoadTestReduceOperator`): the
  exact merge, the report and chart, the cost, the SLO gate. It keeps the id the single-task load
  test had (``train_and_deploy.load_test``), so what waits on the load test (rollback, tests_passed)
  and what reads its XCom is unchanged.

``pre_execute(stage)`` gives each task its ``pre_execute`` hook by stage name, e.g. the
pipeline's lease renewal and serving-this-run check for all three (every mapped worker renews
the lease and checks the endpoint serves this run's config before it sends anything).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WORKER_SUFFIX = "_worker"
PLAN_SUFFIX = "_plan"


def fanned_out_load_test(*, task_id: str = "load_test", load_workers: Any = 1,
                         pre_execute: Callable[[str], Any] | None = None, **operator_kwargs: Any) -> tuple[Any, Any]:
    """Add plan -> workers -> reduce to the current DAG or task group; returns ``(plan, reduce)`` to chain on.

    ``operator_kwargs`` are :class:`~sagemaker_vision.operators.load_test.LoadTestOperator`'s
    (endpoint, payloads, steps, SLO, report prefix, engine...), given to all three tasks alike.
    """
    from sagemaker_vision.operators.load_test_fanout import (  # lazy: keeps DAG parsing fast
        LoadTestPlanOperator,
        LoadTestReduceOperator,
        LoadTestWorkerOperator,
    )

    def hook(stage: str) -> dict[str, Any]:
        return {"pre_execute": pre_execute(stage)} if pre_execute is not None else {}

    plan_id, worker_id = f"{task_id}{PLAN_SUFFIX}", f"{task_id}{WORKER_SUFFIX}"
    plan = LoadTestPlanOperator(task_id=plan_id, load_workers=load_workers, **operator_kwargs, **hook(plan_id))
    workers = LoadTestWorkerOperator.partial(
        task_id=worker_id, load_workers=load_workers, retries=0, **operator_kwargs, **hook(worker_id),
    ).expand_kwargs(plan.output)
    reduce = LoadTestReduceOperator(task_id=task_id, plan=plan.output, load_workers=load_workers,
                                    **operator_kwargs, **hook(task_id))
    plan >> workers >> reduce
    return plan, reduce
