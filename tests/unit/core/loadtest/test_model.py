"""The load test's model: percentiles, the config's bounds, the report's SLO, sizing, JSON and chart."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from sagemaker_vision.core.loadtest import model
from sagemaker_vision.core.loadtest.chart import render_chart
from sagemaker_vision.core.loadtest.model import (
    LoadTestReport,
    StepResult,
    percentile,
)
from tests.unit.core.loadtest.support import (
    JPEG,
    config,
    set_aws_env,
    step,
)


@pytest.fixture
def aws_env(monkeypatch):
    set_aws_env(monkeypatch)


# ------------------------------------------------------------------------------------------------
# Percentiles and step maths


class TestPercentile:
    def test_nearest_rank_hand_computed(self):
        values = [15, 20, 35, 40, 50]  # the textbook nearest-rank example
        assert [percentile(values, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]

    def test_one_to_ten(self):
        values = list(range(1, 11))
        assert [percentile(values, p) for p in (50, 90, 95, 99)] == [5, 9, 10, 10]

    def test_one_to_hundred_ranks_are_exact(self):
        values = list(range(1, 101))
        assert [percentile(values, p) for p in (50, 90, 95, 99, 100)] == [50, 90, 95, 99, 100]
        assert percentile(list(range(1, 21)), 95) == 19  # 0.95 * 20 = 19.0 exactly: no float creep

    def test_empty_and_bad_p(self):
        assert percentile([], 95) is None
        with pytest.raises(ValueError, match=r"p must be in \(0, 100\]"):
            percentile([1.0], 0)

    def test_step_result_numbers(self):
        s = step(4, [float(v) for v in range(1, 21)], errors={"ModelError": 3, "ThrottlingException": 2},
                 duration_s=2.0)
        assert (s.requests, s.successes, s.errors) == (25, 20, 5)
        assert s.error_rate == pytest.approx(0.2)
        assert s.throughput_rps == pytest.approx(10.0)
        assert (s.p50_ms, s.p90_ms, s.p95_ms, s.p99_ms, s.max_ms) == (10, 18, 19, 20, 20)
        assert s.mean_ms == pytest.approx(10.5)
        data = s.to_dict()
        assert data["errors_by_code"] == {"ModelError": 3, "ThrottlingException": 2}
        assert "latencies_ms" not in data

    def test_step_without_successes(self):
        s = step(2, [], errors={"ValidationError": 4})
        assert (s.p95_ms, s.max_ms, s.throughput_rps, s.error_rate) == (None, None, 0.0, 1.0)
        assert s.breaches(100.0, None) == ["C=2: no successful request, p95 unknown (SLO 100 ms)"]


# ------------------------------------------------------------------------------------------------
# Config validation


class TestConfig:
    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"endpoint_name": " "}, "endpoint_name must be a non-empty string"),
            ({"concurrency_steps": ()}, "concurrency_steps must be a non-empty list"),
            ({"concurrency_steps": (5, 5)}, r"concurrency_steps must be strictly ascending, got \[5, 5\]"),
            ({"concurrency_steps": (10, 5)}, "concurrency_steps must be strictly ascending"),
            ({"concurrency_steps": (0, 5)}, r"concurrency_steps: 0 is not an integer in \[1, 1000\]"),
            ({"concurrency_steps": (1, 1001)}, r"concurrency_steps: 1001 is not an integer"),
            ({"concurrency_steps": (1.0, 2)}, r"concurrency_steps: 1.0 is not an integer"),
            ({"step_seconds": 0}, r"step_seconds must be in \(0, 3600\], got 0"),
            ({"step_seconds": float("inf")}, "step_seconds must be in"),
            ({"max_requests_per_step": 0}, "max_requests_per_step must be a positive integer, got 0"),
            ({"request_timeout_s": 61}, r"request_timeout_s must be in \(0, 60\], got 61"),
            ({"warmup_requests": -1}, "warmup_requests must be an integer >= 0"),
            ({"payloads": ()}, "payloads must be a non-empty list"),
            ({"payloads": (("a", b"", "image/jpeg"),)}, r"payloads\[0\] \('a'\): body must be non-empty"),
            ({"payloads": (("a", b"x", "jpeg"),)}, r"payloads\[0\] \('a'\): content_type 'jpeg' is not a"),
            ({"payloads": (("a", b"x"),)}, r"payloads\[0\] must be \(name, bytes, content_type\)"),
            ({"slo_p95_ms": 0}, "slo_p95_ms must be a positive number or None, got 0"),
            ({"max_error_rate": 1.5}, r"max_error_rate must be in \[0, 1\] or None, got 1.5"),
            ({"safety_factor": 0}, r"safety_factor must be in \(0, 1\], got 0"),
            ({"instance_count": 0}, "instance_count must be a positive integer, got 0"),
        ],
    )
    def test_bad_values_name_the_field(self, overrides, message):
        with pytest.raises(ValueError, match=message):
            config(**overrides)

    def test_lists_are_stored_as_tuples(self):
        cfg = config(concurrency_steps=[1, 5, 10], payloads=[["a.jpg", JPEG, "image/jpeg"]])
        assert cfg.concurrency_steps == (1, 5, 10)
        assert cfg.payloads == (("a.jpg", JPEG, "image/jpeg"),)
        assert cfg.max_concurrency == 10

    def test_worst_case_seconds_bounds_every_phase(self):
        cfg = config(concurrency_steps=(1, 2, 4), step_seconds=10, request_timeout_s=2, warmup_requests=3)
        grace = model.JOIN_GRACE_S
        assert cfg.worst_case_seconds == pytest.approx((2 + grace) + (10 + 2 + grace) + 3 * (10 + 2 + grace))

    def test_to_dict_lists_payloads_without_bytes(self):
        assert config().to_dict()["payloads"] == [
            {"name": "a.jpg", "bytes": len(JPEG), "content_type": "image/jpeg"}]


# ------------------------------------------------------------------------------------------------
# The engine



# ------------------------------------------------------------------------------------------------
# Report: SLO, sizing, JSON, chart


def report_of(steps: list[StepResult], **overrides) -> LoadTestReport:
    return LoadTestReport(config=config(concurrency_steps=tuple(s.concurrency for s in steps), **overrides),
                          steps=tuple(steps), cold_start_ms=812.5, started_at="2026-01-01T00:00:00+00:00")


RAMP = [
    step(1, [40.0] * 19 + [60.0], duration_s=2.0),  # 10 rps, p95 40
    step(5, [70.0] * 19 + [90.0], duration_s=0.5),  # 40 rps, p95 70
    step(10, [150.0] * 20 + [400.0] * 10, duration_s=0.5, errors={"ModelError": 2}),  # 60 rps, p95 400
]


class TestReport:
    def test_slo_breach_messages_carry_the_numbers(self):
        report = report_of(RAMP, slo_p95_ms=100.0, max_error_rate=0.05)
        assert report.slo_breaches() == [
            "C=10: p95 400.0 ms > SLO 100 ms",
            "C=10: error rate 6.25% (2/32; ModelError=2) > max 5.00%",
        ]
        assert [report.step_passed(s) for s in report.steps] == [True, True, False]

    def test_sizing_uses_the_best_step_within_slo(self):
        report = report_of(RAMP, slo_p95_ms=100.0)
        assert report.max_sustainable_rps == pytest.approx(40.0)
        assert report.recommended_invocations_per_instance == pytest.approx(40.0 * 60 * 0.5)

    def test_sizing_without_slo_uses_the_overall_maximum(self):
        report = report_of(RAMP, safety_factor=0.4)
        assert report.slo_breaches() == []
        assert report.max_sustainable_rps == pytest.approx(60.0)
        assert report.recommended_invocations_per_instance == pytest.approx(60.0 * 60 * 0.4)

    def test_sizing_is_per_instance(self):
        report = report_of(RAMP, slo_p95_ms=100.0, instance_count=2)
        assert report.max_sustainable_rps_per_instance == pytest.approx(20.0)
        assert report.recommended_invocations_per_instance == pytest.approx(20.0 * 60 * 0.5)

    def test_nothing_sustainable_when_every_step_breaches(self):
        report = report_of(RAMP, slo_p95_ms=10.0)
        assert report.max_sustainable_rps == 0.0 and report.recommended_invocations_per_instance == 0.0

    def test_notes_flag_a_client_bound_step_and_an_open_ended_ramp(self):
        notes = report_of([step(1, [5.0]), step(50, [5.0], cpu=0.97), step(80, [5.0], in_flight=30.0)],
                          slo_p95_ms=100.0).notes()
        assert notes[0].startswith("C=50: the load generator used 0.97 CPU-s per s")
        assert notes[1].startswith("C=80: only 30.0 requests were in flight")
        assert "highest step (C=80) still met the SLO" in notes[2]

    def test_to_dict_is_json_safe_and_complete(self):
        report = report_of(RAMP, slo_p95_ms=100.0)
        data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
        assert data["endpoint_name"] == "shapes-ep" and data["cold_start_ms"] == 812.5
        assert [s["slo_met"] for s in data["steps"]] == [True, True, False]
        assert data["steps"][2]["p95_ms"] == 400.0 and data["steps"][2]["throughput_rps"] == 60.0
        assert data["totals"] == {"requests": 72, "successes": 70, "errors_by_code": {"ModelError": 2},
                                  "duration_s": 3.0}
        assert data["max_sustainable_rps"] == 40.0 and data["recommended_invocations_per_instance"] == 1200.0
        assert json.loads(report.to_json()) == data

    def test_chart_is_a_valid_png(self, tmp_path):
        report = report_of(RAMP + [step(20, [], errors={"ThrottlingException": 9})], slo_p95_ms=100.0)
        buffer = io.BytesIO()
        render_chart(report, buffer)
        data = buffer.getvalue()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.size == (800, 450)
        render_chart(report, tmp_path / "chart.png")
        assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
