"""<pipeline>.right_size: its form, its one-size-at-a-time chain, and the teardown that always runs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIZES = (1024, 2048, 3072, 4096, 5120, 6144)


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_every_pipeline_file_has_a_right_size_dag(dags):
    assert {"shapes-detector.right_size", "shapes-realtime.right_size"} <= set(dags.dag_ids)


def test_the_form_defaults_come_from_the_pipeline_file(dags):
    params = dags.dags["shapes-detector.right_size"].params
    # shapes-detector.yaml: serverless_memory_mb 4096, its load test and SLO, budget_usd 50
    assert params["memory_sizes_mb"] == [3072, 4096, 5120]
    assert (params["concurrency"], params["requests_per_size"], params["seconds_per_size"]) == (4, 200, 60)
    assert (params["slo_p95_ms"], params["max_error_rate"], params["budget_usd"]) == (2000, 0.01, 50)
    assert params["endpoint_name"] == "shapes-detector" and params["model_name"] == ""
    # empty: the validation manifest of the run that trained the model, as the pipeline's own load test sends,
    # never raw/ (it holds images bad_image_policy=skip left out, or over 4 MB, which the plan refuses)
    assert params["payload_prefix"] == ""


@pytest.mark.parametrize("bad", [[1500], [2048, 2048], [], [1024, 2048, 3072, 4096, 5120, 6144, 1024], [8192]])
def test_the_form_refuses_sizes_the_serverless_rule_refuses(dags, bad):
    from airflow.sdk.exceptions import ParamValidationError

    param = dags.dags["shapes-detector.right_size"].params.get_param("memory_sizes_mb")
    with pytest.raises(ParamValidationError):
        param.resolve(bad)
    assert param.resolve([1024, 6144]) == [1024, 6144]


def test_endpoints_come_up_at_once_and_the_tests_take_turns_whatever_the_previous_outcome(dags):
    dag = dags.dags["shapes-detector.right_size"]
    done: set[str] = set()
    for memory in SIZES:
        group = f"size_{memory}"
        create = dag.get_task(f"{group}.create")
        assert create.upstream_task_ids == {"check", "estimate"} and create.trigger_rule == "all_success"
        assert dag.get_task(f"{group}.deploy").upstream_task_ids == {f"{group}.create"}
        assert dag.get_task(f"{group}.deploy").deferrable is True
        plan = dag.get_task(f"{group}.load_test_plan")
        before = plan.get_flat_relative_ids(upstream=True)
        # every earlier size's load test has ended (any state) before this one's starts
        assert done <= before, done - before
        if done:
            waits = dag.get_task(f"{group}.previous_sizes_done")
            assert waits.trigger_rule == "all_done" and waits.task_id in plan.upstream_task_ids
        assert dag.get_task(f"{group}.load_test_worker").retries == 0
        reduce = dag.get_task(f"{group}.load_test")
        assert reduce.fail_on_slo_breach is False  # a missed SLO is a result, compared by recommend
        done.add(reduce.task_id)
    recommend = dag.get_task("recommend")
    assert recommend.trigger_rule == "all_done" and done <= recommend.get_flat_relative_ids(upstream=True)


def test_the_teardown_always_runs_after_the_last_size_and_fails_the_run_when_it_fails(dags):
    dag = dags.dags["shapes-detector.right_size"]
    teardown, estimate = dag.get_task("teardown"), dag.get_task("estimate")
    assert teardown.is_teardown and estimate.is_setup and teardown.on_failure_fail_dagrun
    assert "estimate" in teardown.upstream_task_ids
    assert {f"size_{m}.load_test" for m in SIZES} <= teardown.get_flat_relative_ids(upstream=True)
    # Nothing paid runs before the estimate: every create is downstream of it.
    creates = {f"size_{m}.create" for m in SIZES}
    assert creates <= estimate.get_flat_relative_ids(upstream=False)
    assert "estimate" in dag.get_task("check").get_flat_relative_ids(upstream=False)


def test_a_sizes_test_makes_sure_its_endpoint_is_there_first(dags):
    # After a finished run the teardown deleted every endpoint; clearing a size's test clears neither its create
    # nor its deploy, so the test's plan itself brings the endpoint up again (its pre_execute).
    dag = dags.dags["shapes-detector.right_size"]
    for memory in SIZES:
        plan = dag.get_task(f"size_{memory}.load_test_plan")
        assert callable(plan._pre_execute_hook), plan.task_id
        assert not dag.get_task(f"size_{memory}.create").is_setup  # a skipped setup would skip the later turns
    assert dag.get_task("size_1024.load_test")._pre_execute_hook is None
