"""P4: our load tester against Locust with as many load-generating processes, same stub, C=100, 50 ms.

Fair footing: ours is the engine ``LoadTestOperator`` runs (``_engines.operator_engine``, e.g.
``asyncio-x2``: a coordinating parent and 2 worker processes); Locust gets the same number of
load-generating processes (``locust --processes 2``: a master that only aggregates and 2 workers;
plain ``locust`` for a one-process engine). Both run on the same 2 cores as the stub, in the same
session. Locust 2.x runs headless from ``.venv-bench-locust`` with ``locustfile.py``: 100 users per
run, each worker process with one shared boto3 client (the project's boto3/botocore version),
invoking in a closed loop and firing request events. The sides alternate (Locust, ours, ours,
Locust, Locust, ours) and each keeps its best run: other load only ever slows a run, and on the
shared box one side's runs spread by up to 20%. A detail line repeats the comparison one process
against one (``asyncio-x1`` against plain ``locust``, two runs each). Both count
successful requests in a window of the same length that opens once every connection is up
(after our warm-up; one second after Locust finished spawning).

Usage: benchmarks/p4_vs_locust.py [--engine NAME] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _bench import ROOT, SAMPLE_IMAGES, detail, emit, loadavg, run_child, stub_server, venv_python
from _engines import ENDPOINT, ENGINE_RE, Engine, Run, ideal_rps, operator_engine

CONCURRENCY, SERVICE_MS = 100, 50.0
TARGET = 1.05
LOCUST_WARMUP_S = 1.0


def run_locust(url: str, seconds: float, processes: int = 1) -> tuple[float, str]:
    """Locust's successful req/s in its measurement window, and a summary line."""
    locust = venv_python("locust").parent / "locust"
    with tempfile.TemporaryDirectory(prefix="bench-locust-") as tmp:
        result = Path(tmp) / "window.json"
        env = {**os.environ, "BENCH_ENDPOINT_URL": url, "BENCH_ENDPOINT_NAME": ENDPOINT,
               "BENCH_LOCUST_RESULT": str(result), "BENCH_WINDOW_DELAY_S": str(LOCUST_WARMUP_S),
               "BENCH_PAYLOAD": str(sorted(SAMPLE_IMAGES.glob("*.jpg"))[0])}
        # Spawning 100 users at 1000/s takes ~0.1 s; the run time covers spawn, warm-up and window.
        run_time = int(round(seconds + LOCUST_WARMUP_S + 1))
        cmd = [str(locust), "-f", str(ROOT / "benchmarks" / "locustfile.py"), "--headless",
               "-u", str(CONCURRENCY), "-r", "1000", "-t", f"{run_time}s", "--stop-timeout", "5",
               "--only-summary", "--loglevel", "WARNING", "--host", url, "SageMakerUser"]
        if processes > 1:
            # Locust forks a master and N workers; each worker counts its own users in its own file.
            cmd[1:1] = ["--processes", str(processes)]
        child = run_child(cmd, timeout_s=run_time + 60, env=env, cwd=Path(tmp))
        windows = [json.loads(p.read_text()) for p in Path(tmp).glob("window.json.*")]
        windows = [w for w in windows if w["requests"] or w["failures"]]  # a master counts nothing
        if not windows:
            raise RuntimeError(f"locust wrote no result (exit {child.returncode}):\n{child.stderr[-2000:]}")
    failures = sum(w["failures"] for w in windows)
    if failures:
        raise RuntimeError(f"locust saw {failures} failed requests")
    rps = sum(w["requests"] / w["seconds"] for w in windows)
    requests = sum(w["requests"] for w in windows)
    return rps, (f"{requests} ok in a {max(w['seconds'] for w in windows):.1f} s window = {rps:.0f} req/s "
                 f"(CPU {child.cpu_s / child.wall_s:.2f} of wall over {len(windows)} process(es), incl. start-up)")


def processes_of(engine: str) -> int:
    """How many processes generate the load: N for ``<kind>-xN``, 1 for in-process ``threads``."""
    match = ENGINE_RE.match(engine)
    if not match:
        raise ValueError(f"unknown engine {engine!r}")
    return int(match.group(2) or 1)


def side_by_side(url: str, engine_name: str, seconds: float, rounds: int = 3) -> tuple[Run, float, str]:
    """Locust, ours, ours, Locust, Locust, ours (``rounds`` runs each) with as many processes each; the
    best run of each side."""
    processes = processes_of(engine_name)
    order = ("locust", "ours", "ours", "locust") * rounds
    locust_runs: list[tuple[float, str]] = []
    ours: list[Run] = []
    with Engine(engine_name, url, CONCURRENCY) as engine:  # its workers stay warm between its runs
        for side in order[:2 * rounds]:
            if side == "locust":
                locust_runs.append(run_locust(url, seconds, processes))
            else:
                ours.append(engine.step(CONCURRENCY, SERVICE_MS, seconds=seconds, max_requests=10**7))
    best = max(ours, key=lambda r: r.throughput_rps)
    locust_rps, locust_summary = max(locust_runs)
    detail(f"{engine_name} runs {', '.join(f'{r.throughput_rps:.0f}' for r in ours)} req/s; Locust x{processes} runs "
           f"{', '.join(f'{r:.0f}' for r, _ in locust_runs)} req/s ({loadavg()})")
    return best, locust_rps, locust_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", help="default: the operator's engine (see _engines.operator_engine)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    ours_name = args.engine or operator_engine()
    processes = processes_of(ours_name)
    ideal = ideal_rps(CONCURRENCY, SERVICE_MS)
    with stub_server(SERVICE_MS) as stub:
        ours, locust_rps, locust_summary = side_by_side(stub.url, ours_name, args.seconds)
        detail(f"ours ({ours_name}, the operator's engine): {ours.ratio:.3f} of ideal; {ours.summary}")
        detail(f"locust x{processes} + boto3: {locust_rps / ideal:.3f} of ideal; {locust_summary}")
        single = "asyncio-x1"
        if processes != 1:
            one, locust1_rps, locust1_summary = side_by_side(stub.url, single, args.seconds, rounds=2)
            detail(f"one process each: {single} {one.ratio:.3f} of ideal ({one.summary}), plain locust "
                   f"{locust1_rps / ideal:.3f} ({locust1_summary}): {one.throughput_rps / locust1_rps:.3f} x Locust")
    emit("P4", f"{ours_name}-vs-locust-x{processes}", ours.throughput_rps / locust_rps, ">=", TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
