"""The fanned-out load test's pure parts: histogram merge exactness, the envelope's checks, the plan and schedule."""

from __future__ import annotations

import json
import random

import pytest

from sagemaker_vision.core.loadtest import histogram as hist
from sagemaker_vision.core.loadtest.fanout import (
    SYNC_GAP_S,
    FanoutPlan,
    StepEnvelope,
    build_report,
    check_on_time,
    merge_step,
    next_step_start,
    parse_envelope,
    plan_fanout,
    results_deadline,
)
from sagemaker_vision.core.loadtest.model import LoadTestError
from tests.unit.core.loadtest.support import config, step


def _samples(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    # A long-tailed mix: most near 50 ms, some seconds, a few sub-millisecond.
    return [rng.choice((rng.lognormvariate(3.9, 0.3), rng.uniform(0.01, 1), rng.uniform(500, 20_000)))
            for _ in range(n)]


class TestHistogram:
    def test_merged_percentiles_equal_one_histogram_over_the_same_samples(self):
        parts = [_samples(n, seed) for seed, n in enumerate((5000, 1, 3333, 20_000))]
        merged = hist.merge(hist.decode(hist.encode(hist.from_latencies(p)[0])) for p in parts)  # via the wire
        whole, _ = hist.from_latencies([x for p in parts for x in p])
        assert merged.get_total_count() == whole.get_total_count() == sum(map(len, parts))
        for p in (0.1, 1, 25, 50, 90, 95, 99, 99.9, 99.99, 100):
            assert hist.value_ms(merged, p) == hist.value_ms(whole, p), p
        assert hist.summary_ms(merged) == hist.summary_ms(whole)
        assert merged.get_mean_value() == whole.get_mean_value()

    def test_a_percentile_reads_at_most_a_thousandth_above_the_exact_sample_and_never_below(self):
        samples = sorted(_samples(10_000, 7))
        h, clamped = hist.from_latencies(samples)
        assert clamped == 0
        # HdrHistogram's rank: round half up of p% of the count.
        for p in (50, 90, 95, 99):
            exact = samples[max(int(p * len(samples) / 100 + 0.5), 1) - 1]
            got = hist.value_ms(h, p)
            assert exact - 0.0005 <= got <= exact * (1 + 1 / 1024) + 0.001, (p, exact, got)

    def test_latencies_past_the_range_are_clamped_and_counted(self):
        h, clamped = hist.from_latencies([10.0, 61_000.0])
        assert clamped == 1 and h.get_max_value() >= hist.HIGHEST_US and h.get_total_count() == 2

    def test_decode_names_the_field_and_refuses_a_foreign_range(self):
        with pytest.raises(hist.HistogramError, match=r"x\.json: field 'histogram': not an encoded HdrHistogram"):
            hist.decode("bm90IGEgaGlzdG9ncmFt", "x.json: field 'histogram'")
        with pytest.raises(hist.HistogramError, match="must be a non-empty string"):
            hist.decode(None)
        from hdrh.histogram import HdrHistogram

        other = HdrHistogram(1, 3_600_000_000, 2)
        other.record_value(5)
        with pytest.raises(hist.HistogramError, match=r"range 1\.\.3600000000 µs at 2 digits .* cannot be merged"):
            hist.decode(other.encode().decode())

    def test_the_largest_histogram_of_our_range_decodes_and_a_longer_encoding_is_refused(self):
        """Every counter at a 9-byte varint, random so zlib cannot shrink it: the most a worker can write."""
        import random

        largest = hist.new_histogram()
        rnd = random.Random(7)
        for i in range(largest.counts_len):
            largest.counts[i] = rnd.randrange(2**56, 2**62)  # zigzag: 9 bytes each, no overflow
        largest.total_count, largest.min_value, largest.max_value = 1, hist.LOWEST_US, hist.HIGHEST_US
        text = hist.encode(largest)
        max_payload, max_chars = hist.wire_limits()
        assert len(text) > max_chars * 0.85  # the limit is near the real worst case, not far above it
        assert [hist.decode(text).counts[i] for i in (0, 9_999)] == [largest.counts[0], largest.counts[9_999]]
        with pytest.raises(hist.HistogramError, match=rf"k\.json: {max_chars + 4} characters, more than any"):
            hist.decode("A" * (max_chars + 4), "k.json")

    def test_a_zlib_bomb_is_refused_before_hdrh_inflates_it(self):
        """5 MB of zeros deflates to ~5 KB; hdrh's own decode would inflate all of it."""
        import base64
        import struct
        import zlib

        inner = struct.pack(">IIIIqqd", 0x1C849304, 5_000_000, 0, 3, 1, hist.HIGHEST_US, 1.0) + bytes(5_000_000)
        deflated = zlib.compress(inner, 9)
        text = base64.b64encode(struct.pack(">II", 0x1C849303, len(deflated)) + deflated).decode()
        assert len(text) < hist.wire_limits()[1]
        with pytest.raises(hist.HistogramError, match=r"inflates to more than 156712 bytes"):
            hist.decode(text, "k.json")


def _envelope(worker: int = 0, step_index: int = 0, latencies=(10.0, 20.0), errors=None, start=100.0, end=101.0,
              plan_id="1006"):  # _plan()'s id: its first step starts at 1006 on S3's clock
    result = step(2, list(latencies), errors=errors or {})
    return StepEnvelope.from_step(worker, step_index, result, start, end, plan_id)


class TestEnvelope:
    def test_round_trip(self):
        e = _envelope(errors={"ModelError": 2})
        back = parse_envelope(e.to_json().encode(), "s3://b/k.json")
        assert (back.worker, back.requests, back.successes, back.errors_by_code) == (0, 4, 2, {"ModelError": 2})
        assert hist.summary_ms(back.histogram) == hist.summary_ms(e.histogram)

    @pytest.mark.parametrize(("change", "message"), [
        ({"format": "v0"}, r"field 'format' must be 'sagemaker-vision/load-test-step/v1'"),
        ({"requests": -1}, r"field 'requests' must be an integer >= 0, got -1"),
        ({"successes": 3.5}, r"field 'successes' must be an integer >= 0, got 3\.5"),
        ({"started_at": "now"}, r"field 'started_at' must be a finite number"),
        ({"ended_at": 99.0}, r"field 'ended_at' \(99\.0\) is before 'started_at' \(100\.0\)"),
        ({"errors_by_code": {"ModelError": 1}}, r"field 'errors_by_code' adds up to 1, but requests - successes is 2"),
        ({"errors_by_code": {"ModelError": 0}}, r"field 'errors_by_code': 'ModelError' must map to a positive integer"),
        ({"stopped_by": "moon"}, r"field 'stopped_by' must be 'time' or 'requests'"),
        ({"histogram": "garbage!"}, r"field 'histogram': not an encoded HdrHistogram"),
        ({"successes": 1, "errors_by_code": {"ModelError": 3}}, r"field 'histogram' holds 2 latencies, but "
                                                                r"'successes' is 1"),
        ({"histogram_unit": "ms"}, r"field 'histogram_unit' must be 'us'"),
        ({"plan_id": ""}, r"field 'plan_id' must be a non-empty string"),
    ])
    def test_a_bad_field_is_named(self, change, message):
        data = json.loads(_envelope(errors={"ModelError": 2}).to_json())
        data.update(change)
        with pytest.raises(ValueError, match=r"^s3://b/w\.json: " + message):
            parse_envelope(json.dumps(data), "s3://b/w.json")

    def test_missing_field_and_not_json(self):
        data = json.loads(_envelope().to_json())
        del data["worker"]
        with pytest.raises(ValueError, match=r"w\.json: field 'worker' is missing"):
            parse_envelope(json.dumps(data), "w.json")
        with pytest.raises(ValueError, match=r"w\.json: not JSON"):
            parse_envelope(b"{", "w.json")


def _plan(workers=2, steps=(1, 4), budget=100, now=1000.3, lead=5.0) -> FanoutPlan:
    return plan_fanout(load_workers=workers, concurrency_steps=steps, max_requests_per_step=budget, step_seconds=10,
                       request_timeout_s=2, s3_now=now, start_lead_s=lead, bucket="b", prefix="lt/fanout/1")


class TestPlanAndSchedule:
    def test_shares_add_up_and_a_worker_without_a_share_still_takes_part(self):
        plan = _plan(workers=3, steps=(1, 5), budget=101)
        assert plan.workers == 3 and plan.prefix == "lt/fanout/1/"
        assert [plan.share(w, 0) for w in range(3)] == [(1, 101), (0, 0), (0, 0)]
        assert sum(plan.share(w, 1)[0] for w in range(3)) == 5 and sum(plan.share(w, 1)[1] for w in range(3)) == 101
        assert plan.first_start == 1006.0  # whole seconds on S3's clock, at least the lead away
        assert FanoutPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
        offsets = [plan.payload_offset(w, 1) for w in range(3)]
        assert offsets[0] == 101 and offsets == sorted(set(offsets))

    def test_no_more_workers_than_the_largest_step_has_requests_in_flight(self):
        plan = _plan(workers=8, steps=(1, 3))
        assert plan.workers == 3 and plan.workers_requested == 8

    @pytest.mark.parametrize("workers", [0, 17, True, "2"])
    def test_load_workers_bounds(self, workers):
        with pytest.raises(ValueError, match=r"load_workers must be an integer in \[1, 16\]"):
            _plan(workers=workers)

    def test_from_dict_refuses_a_plan_whose_shares_do_not_add_up(self):
        data = _plan().to_dict()
        data["shares"][0][1] = [99, 1]
        with pytest.raises(ValueError, match=r"step 1: the workers' concurrency does not add up to 4"):
            FanoutPlan.from_dict(data)
        with pytest.raises(ValueError, match="expected a mapping with format"):
            FanoutPlan.from_dict({"format": "nope"})

    def test_the_next_step_starts_after_the_last_worker_ended(self):
        plan = _plan()
        ends = [_envelope(0, end=130.0), _envelope(1, end=131.5)]
        assert next_step_start(ends) == 131.5 + SYNC_GAP_S
        assert results_deadline(plan, 100.0) == 100.0 + 10 + 2 + 5 + 15

    def test_a_late_worker_fails_with_the_cause(self):
        check_on_time(0, 0, start=100.0, s3_now=100.9)  # within the tolerance
        with pytest.raises(LoadTestError, match=r"load worker 1 reached step 2 3\.5 s after its common start.*"
                                                r"airflow dags test"):
            check_on_time(1, 2, start=100.0, s3_now=103.5)


class TestMergeAndReport:
    def test_merge_adds_counts_and_times_span_the_workers(self):
        a = _envelope(0, latencies=[10.0] * 30, errors={"ModelError": 1}, start=100.0, end=110.0)
        b = _envelope(1, latencies=[30.0] * 10, errors={"ThrottlingException": 2}, start=100.4, end=110.6)
        merged = merge_step([a, b])
        assert (merged.requests, merged.successes, merged.workers) == (43, 40, 2)
        assert merged.errors_by_code == {"ModelError": 1, "ThrottlingException": 2}
        assert merged.duration_s == pytest.approx(10.6) and merged.throughput_rps == pytest.approx(40 / 10.6)
        assert merged.p50_ms == hist.value_ms(hist.from_latencies([10.0] * 30 + [30.0] * 10)[0], 50)

    def test_the_report_names_each_worker_and_the_merge(self):
        plan = _plan(workers=2, steps=(2,))
        envs = [_envelope(0, latencies=[10.0] * 5), _envelope(1, latencies=[12.0] * 7)]
        envs = [StepEnvelope(**{**e.__dict__, "concurrency": 1}) for e in envs]
        payload = {"name": "a.jpg", "bytes": 3, "content_type": "x"}
        report = build_report(plan, [envs], config=config(concurrency_steps=(2,), slo_p95_ms=100), cold_start_ms=5.0,
                              warmup=None, started_at="t", payloads=(payload,))
        out = report.to_dict()
        assert out["fanout"]["merged_workers"] == 2 and "merged 2 workers" in out["fanout"]["summary"]
        assert [w["worker"] for w in out["fanout"]["workers"]] == [0, 1]
        assert out["fanout"]["workers"][1]["steps"][0]["successes"] == 7
        assert out["steps"][0]["successes"] == 12 and out["steps"][0]["merged_workers"] == 2
        assert out["config"]["payloads"] == [{"name": "a.jpg", "bytes": 3, "content_type": "x"}]

    def test_an_earlier_plans_envelope_is_never_merged(self):
        plan = _plan(workers=1, steps=(2,))
        with pytest.raises(ValueError, match=r"worker\(s\) \[0\] belong to another plan than 1006"):
            build_report(plan, [[_envelope(0, plan_id="999")]], config=config(concurrency_steps=(2,)),
                         cold_start_ms=1.0, warmup=None, started_at="")

    def test_a_missing_worker_is_named(self):
        plan = _plan(workers=2, steps=(2,))
        env = StepEnvelope(**{**_envelope(0).__dict__, "concurrency": 1})
        with pytest.raises(LoadTestError, match=r"step 0 \(C=2\): no result from load worker\(s\) \[1\]"):
            build_report(plan, [[env]], config=config(concurrency_steps=(2,)), cold_start_ms=1.0, warmup=None,
                         started_at="")
