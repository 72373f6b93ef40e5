"""The result line, child measurements and the generated inputs of the benchmarks."""

from __future__ import annotations

import io
import random
import sys

import pytest
from _bench import RESULT_RE, passes, result_line, run_child
from _engines import Engine, ideal_rps
from p1_dag_parse import hand_written_source, write_pipeline_files
from p6_manifest import CLASSES, LABEL_ATTRIBUTE, manifest_line
from p7_demo import floor_dag_source

from sagemaker_vision.core import manifest


class TestResultLine:
    def test_pass_and_miss_follow_the_operator(self):
        assert result_line("P3", "engine", 0.93, ">=", 0.9) == "P3 engine: ratio=0.930 target=>=0.9 PASS"
        assert result_line("P5b", "noop", 0.51, "<=", 0.5) == "P5b noop: ratio=0.510 target=<=0.5 MISS"
        assert passes(1.0, ">=", 1.0) and passes(1.0, "<=", 1.0)

    def test_a_failed_second_condition_misses_whatever_the_ratio(self):
        assert result_line("P6", "manifest", 2.0, "<=", 3, also=False).endswith("MISS")

    def test_the_collector_regex_matches_what_is_printed(self):
        line = result_line("P3b", "asyncio-vs-threads", 0.671, ">=", 1.0)
        match = RESULT_RE.match(line)
        assert match and match.groups() == ("P3b", "asyncio-vs-threads", "0.671", ">=", "1", "MISS")
        assert not RESULT_RE.match("  P3 detail: ratio=1 target=>=1 PASS")

    @pytest.mark.parametrize("pid, name, op", [("3", "x", ">="), ("P3", "two words", ">="),
                                               ("P3", "a:b", ">="), ("P3", "x", "==")])
    def test_malformed_lines_are_refused(self, pid, name, op):
        with pytest.raises(ValueError):
            result_line(pid, name, 1.0, op, 1.0)


class TestRunChild:
    def test_reports_exit_code_output_and_its_own_peak_rss(self):
        grow = "b = bytearray(80 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); print('done')"
        big = run_child([sys.executable, "-c", grow], timeout_s=60)
        small = run_child([sys.executable, "-c", "import sys; sys.exit(3)"], timeout_s=60)
        assert big.returncode == 0 and big.stdout.strip() == "done"
        assert big.max_rss_mb > 80 > small.max_rss_mb
        assert small.returncode == 3

    def test_a_child_past_its_time_limit_is_killed(self):
        with pytest.raises(TimeoutError):
            run_child([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)


class TestInputs:
    def test_generated_manifest_lines_are_valid_labels(self):
        rng = random.Random(1)
        lines = [manifest_line(i, rng) for i in range(200)]
        stats = manifest.validate_manifest(lines, label_attribute=LABEL_ATTRIBUTE)
        assert stats.num_lines == 200
        assert stats.class_map == {int(k): v for k, v in CLASSES.items()}
        train, validation = io.StringIO(), io.StringIO()
        split = manifest.split_manifest(lines, label_attribute=LABEL_ATTRIBUTE, validation_fraction=0.2,
                                        train_out=train, validation_out=validation)
        assert split.num_training_samples + split.num_validation_samples == 200

    def test_pipeline_files_load_and_the_hand_written_twin_builds_the_same_dags(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SAGEMAKER_VISION_BUCKET", "bench-bucket")
        monkeypatch.setenv("SAGEMAKER_VISION_ROLE_ARN", "arn:aws:iam::123456789012:role/bench-execution")
        from sagemaker_vision.core.pipeline_file import load_pipelines
        from sagemaker_vision.dags.factory import BUILDERS

        write_pipeline_files(tmp_path / "pipelines", 3)
        definitions, errors = load_pipelines(tmp_path / "pipelines")
        assert not errors and [d.name for d in definitions] == ["bench-000", "bench-001", "bench-002"]
        assert len({d.settings["prefix"] for d in definitions}) == 3
        source = hand_written_source(tmp_path / "pipelines")
        assert "airflow" in source.lower() and "dag" in source.lower()  # else DagBag's safe mode skips it
        assert "load_pipeline" not in source and "factory" not in source and "import yaml" not in source
        namespace: dict = {}
        exec(compile(source, "hand_written.py", "exec"), namespace)
        built = sorted(k for k, v in namespace.items() if type(v).__name__ == "DAG" and not k.startswith("_"))
        assert built == sorted(d.dag_id(b.KIND) for d in definitions for b in BUILDERS)

    def test_floor_dag_has_the_asked_number_of_tasks(self):
        source = floor_dag_source(17)
        compile(source, "bench_floor.py", "exec")
        assert "range(17)" in source


class TestEngines:
    def test_ideal_is_concurrency_over_service_time(self):
        assert ideal_rps(20, 50) == 400 == ideal_rps(200, 500)
        with pytest.raises(ValueError):
            ideal_rps(0, 50)

    @pytest.mark.parametrize("name", ["threads-x", "asyncio", "processes-x2", ""])
    def test_unknown_engine_names_are_refused_before_anything_starts(self, name):
        with pytest.raises(ValueError, match="engine|asyncio"):
            Engine(name, "http://127.0.0.1:1", 4)


class TestOperatorEngine:
    def test_todays_operator_runs_threads_in_process(self):
        from _engines import operator_engine

        assert operator_engine() in ("threads", "asyncio-x2", "threads-x2", "asyncio-x1")

    def test_a_wired_operator_is_read_from_its_keyword_defaults(self, monkeypatch):
        import _engines

        from sagemaker_vision.operators import load_test

        class Wired:
            def __init__(self, *, endpoint_name: str, engine: str = "asyncio", processes: int = 2) -> None:
                pass

        class Unwired:
            def __init__(self, *, endpoint_name: str) -> None:
                pass

        monkeypatch.setattr(load_test, "LoadTestOperator", Wired)
        assert _engines.operator_engine() == "asyncio-x2"
        monkeypatch.setattr(load_test, "LoadTestOperator", Unwired)
        assert _engines.operator_engine() == "threads"


def test_run_all_refuses_an_unknown_benchmark_id_before_building_anything():
    import run_all

    with pytest.raises(SystemExit, match="unknown id"):
        run_all.main(["--only", "P3,P99"])
