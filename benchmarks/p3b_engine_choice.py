"""P3b: which engine -- asyncio on one aiobotocore client, or threads on one shared boto3 client?

Side by side against the same stub (own process, higher priority), 50 ms service time, at C=20
and C=100, each engine for the same bounded step after a full warm-up, in alternating order so
drift in the machine's load hits both. Also shown: both engines spread over two processes
(``sagemaker_vision.hooks.sagemaker_runtime.run_load_test_processes``), the fix for the one-GIL limit at C=100.

The result line is asyncio / threads, the geometric mean over the two points: >= 1 means
asyncio is the faster engine here. ``choice:`` says which one the numbers pick for each point.

Usage: benchmarks/p3b_engine_choice.py [--seconds 5] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import math

from _bench import detail, emit, loadavg, stub_server
from _engines import Engine, Run

POINTS = ((20, 50.0), (100, 50.0))
# In-process threads is today's operator path; asyncio-x1 is one worker process with one
# aiobotocore client (the asyncio engine); the -x2 rows spread either engine over 2 processes.
ENGINES = ("threads", "asyncio-x1", "threads-x2", "asyncio-x2")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    ratios = []
    service_ms = POINTS[0][1]
    assert all(ms == service_ms for _, ms in POINTS), "one stub serves every point"
    best: dict[tuple[int, str], Run] = {}
    with stub_server(service_ms) as stub, contextlib.ExitStack() as stack:
        # Every engine keeps its clients (and worker processes) for all points and repeats.
        engines = {name: stack.enter_context(Engine(name, stub.url, max(c for c, _ in POINTS)))
                   for name in ENGINES}
        for concurrency, _ in POINTS:
            for attempt in range(args.repeat):
                order = ENGINES if attempt % 2 == 0 else tuple(reversed(ENGINES))
                for name in order:
                    run = engines[name].step(concurrency, service_ms, seconds=args.seconds, max_requests=10**7)
                    detail(f"C={concurrency} {name:<11} ratio to ideal {run.ratio:.3f} "
                           f"({run.throughput_rps:.0f}/{run.ideal_rps:.0f} req/s, client CPU "
                           f"{run.client_cpu_ratio:.2f}/process; {loadavg()})")
                    key = (concurrency, name)
                    if key not in best or run.ratio > best[key].ratio:
                        best[key] = run
    for concurrency, _ in POINTS:
        runs = {name: best[(concurrency, name)] for name in ENGINES}
        one = runs["asyncio-x1"].ratio / runs["threads"].ratio
        ratios.append(one)
        fastest = max(runs.values(), key=lambda r: r.ratio)
        detail(f"C={concurrency} {service_ms:g} ms: asyncio/threads {one:.3f} in one process; "
               f"fastest {fastest.engine} at {fastest.ratio:.3f} of ideal; choice: "
               f"{'asyncio' if one >= 1 else 'threads'} for one process")
    geomean = math.prod(ratios) ** (1 / len(ratios))
    emit("P3b", "asyncio-vs-threads", geomean, ">=", 1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
