"""P3: our load tester's throughput against the ideal, at C=20 with 50 ms and C=200 with 500 ms.

The ideal of a closed loop is concurrency / service time (400 req/s at both points). The stub
(``stub_server.py``) runs in its own process at a higher priority, so what falls short of the
ideal is the client's own overhead. Each step is bounded by a request count of whole rounds
(concurrency x rounds) with a time cap, after a warm-up that opens every pooled connection.
The result is the worse of the two points, best of ``--repeat`` runs per point (other load on
the machine can only slow a run down).

"Our tester" is the engine ``LoadTestOperator`` runs (``_engines.operator_engine``: in-process
threads today); the engine proposed in benchmarks/README.md is measured too when it differs,
on detail lines.

Usage: benchmarks/p3_load_engine.py [--engine NAME] [--repeat 2]
"""

from __future__ import annotations

import argparse

from _bench import detail, emit, loadavg, stub_server
from _engines import PROPOSED_ENGINE, Engine, Run, ideal_rps, operator_engine

# (concurrency, service ms, rounds): 5 s and 6 s of ideal step time.
POINTS = ((20, 50.0, 100), (200, 500.0, 12))
TARGET = 0.9


def measure(engine_name: str, repeat: int) -> Run:
    """The worse point's best run of ``engine_name``, printing every run."""
    worst = None
    for concurrency, service_ms, rounds in POINTS:
        ideal_s = rounds * service_ms / 1000
        best = None
        with stub_server(service_ms) as stub, Engine(engine_name, stub.url, concurrency) as engine:
            for attempt in range(repeat):
                run = engine.step(concurrency, service_ms, seconds=3 * ideal_s, max_requests=concurrency * rounds)
                detail(f"{engine_name} C={concurrency} {service_ms:g} ms, run {attempt + 1}: ratio {run.ratio:.3f} "
                       f"({run.throughput_rps:.0f} of {ideal_rps(concurrency, service_ms):.0f} req/s); {run.summary}")
                best = run if best is None or run.ratio > best.ratio else best
        assert best is not None
        detail(f"{engine_name} C={concurrency} {service_ms:g} ms: best ratio {best.ratio:.3f} ({loadavg()})")
        worst = best if worst is None or best.ratio < worst.ratio else worst
    assert worst is not None
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", help="default: the operator's engine (see _engines.operator_engine)")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)

    ours = args.engine or operator_engine()
    worst = measure(ours, args.repeat)
    if args.engine is None and ours != PROPOSED_ENGINE:
        proposed = measure(PROPOSED_ENGINE, args.repeat)
        detail(f"proposed engine {PROPOSED_ENGINE}: worse point C={proposed.concurrency} at {proposed.ratio:.3f} of "
               f"ideal (the operator does not run it yet)")
    detail(f"our tester = {ours}; the line reports its worse point, C={worst.concurrency}")
    emit("P3", f"{ours}-vs-ideal", worst.ratio, ">=", TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
