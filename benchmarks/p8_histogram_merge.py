"""P8: the fanned-out load test's merge is exact: merged percentiles == one histogram over the same samples.

Each of 8 "workers" records its share of 400,000 long-tailed latencies (0.01 ms .. 20 s) in its own
HdrHistogram, ships it through the wire format the envelopes carry (``encode()`` -> JSON text ->
``decode()``), and the reduce adds them (``core.loadtest.histogram.merge``). One histogram records
every sample itself. The ratio is the worst, over p50/p90/p95/p99/p99.9/p99.99/max and the mean,
of max(merged / whole, whole / merged): exactly 1.000 when the merge loses nothing (the result line
is a MISS unless every value is bit-for-bit equal). Detail lines give the merge's cost and the
wire size, and how far a percentile sits above the exact sample (at most 1/1,024: 3 significant digits).

Usage: benchmarks/p8_histogram_merge.py
"""

from __future__ import annotations

import json
import random
import time

from _bench import detail, emit, loadavg

from sagemaker_vision.core.loadtest import histogram as hist

WORKERS, SAMPLES = 8, 400_000
PERCENTILES = (50, 90, 95, 99, 99.9, 99.99)


def samples(n: int, seed: int = 11) -> list[float]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.9:
            out.append(rng.lognormvariate(3.9, 0.35))  # ~50 ms body
        elif roll < 0.99:
            out.append(rng.uniform(200, 2_000))
        elif roll < 0.999:
            out.append(rng.uniform(2_000, 20_000))
        else:
            out.append(rng.uniform(0.01, 1.0))
    return out


def main() -> None:
    data = samples(SAMPLES)
    shares = [data[i::WORKERS] for i in range(WORKERS)]
    wires = [json.dumps({"histogram": hist.encode(hist.from_latencies(s)[0])}) for s in shares]
    started = time.perf_counter()
    merged = hist.merge(hist.decode(json.loads(w)["histogram"]) for w in wires)
    merge_s = time.perf_counter() - started
    whole, _ = hist.from_latencies(data)
    pairs = [(hist.value_ms(merged, p), hist.value_ms(whole, p)) for p in PERCENTILES]
    pairs.append((merged.get_max_value() / 1000, whole.get_max_value() / 1000))
    pairs.append((merged.get_mean_value(), whole.get_mean_value()))
    worst = max(max(m / w, w / m) for m, w in pairs)
    equal = all(m == w for m, w in pairs) and merged.get_total_count() == whole.get_total_count() == SAMPLES
    exact = sorted(data)
    above = max(hist.value_ms(whole, p) / exact[max(int(p * SAMPLES / 100 + 0.5), 1) - 1] for p in PERCENTILES)
    detail(f"{WORKERS} histograms of {SAMPLES // WORKERS:,} samples each: decode + add in {merge_s * 1000:.1f} ms, "
           f"{sum(map(len, wires)) / WORKERS / 1024:.1f} KiB per envelope's histogram")
    detail("merged vs one histogram (ms): " + ", ".join(
        f"p{p:g} {m:.3f}/{w:.3f}" for p, (m, w) in zip(PERCENTILES, pairs, strict=False)))
    detail(f"a percentile reads at most {(above - 1) * 100:.3f} % above the exact sample (bound 0.098 %); {loadavg()}")
    emit("P8", "histogram-merge-exact", worst, "<=", 1.0, also=equal)


if __name__ == "__main__":
    main()
