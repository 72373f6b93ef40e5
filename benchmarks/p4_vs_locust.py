"""P4: our load tester against Locust, same stub, C=100, 50 ms service time, same duration.

Locust 2.x runs headless from ``.venv-bench-locust`` with ``locustfile.py``: 100 users on one
shared boto3 client (the project's boto3/botocore version), each invoking in a closed loop and
firing request events -- one process, Locust's default. Ours runs the same step with the
engine ``LoadTestOperator`` runs (``_engines.operator_engine``); the proposed engine (or today's,
once the proposal is wired) and ``locust --processes 2`` are measured too, on detail lines.
Both count successful requests in a window of the same length that opens once every
connection is up (after our warm-up; one second after Locust finished spawning).

Usage: benchmarks/p4_vs_locust.py [--engine NAME] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from _bench import ROOT, SAMPLE_IMAGES, detail, emit, loadavg, run_child, stub_server, venv_python
from _engines import ENDPOINT, PROPOSED_ENGINE, Engine, ideal_rps, operator_engine

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", help="default: the operator's engine (see _engines.operator_engine)")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    ours_name = args.engine or operator_engine()
    other_name = PROPOSED_ENGINE if ours_name != PROPOSED_ENGINE else "threads"
    ideal = ideal_rps(CONCURRENCY, SERVICE_MS)
    with stub_server(SERVICE_MS) as stub:
        locust_rps, locust_summary = run_locust(stub.url, args.seconds)
        detail(f"locust + boto3: {locust_rps / ideal:.3f} of ideal; {locust_summary} ({loadavg()})")
        with Engine(ours_name, stub.url, CONCURRENCY) as engine:
            ours = engine.step(CONCURRENCY, SERVICE_MS, seconds=args.seconds, max_requests=10**7)
        detail(f"ours ({ours_name}, the operator's engine): {ours.ratio:.3f} of ideal; {ours.summary} ({loadavg()})")
        with Engine(other_name, stub.url, CONCURRENCY) as engine:
            other = engine.step(CONCURRENCY, SERVICE_MS, seconds=args.seconds, max_requests=10**7)
        role = "proposed engine" if other_name == PROPOSED_ENGINE else "the old in-process engine"
        detail(f"{role} ({other_name}): {other.ratio:.3f} of ideal = {other.throughput_rps / locust_rps:.3f} x Locust; "
               f"{other.summary}")
        locust2_rps, locust2_summary = run_locust(stub.url, args.seconds, processes=2)
        detail(f"locust --processes 2: {locust2_rps / ideal:.3f} of ideal; {locust2_summary}; ours / it = "
               f"{ours.throughput_rps / locust2_rps:.3f}, {other_name} / it = {other.throughput_rps / locust2_rps:.3f}")
    emit("P4", f"{ours_name}-vs-locust", ours.throughput_rps / locust_rps, ">=", TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
