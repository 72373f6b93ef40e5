"""`make bench`: build the peer venvs, run every benchmark, collect their result lines.

Usage: python benchmarks/run_all.py [--only P3,P4] [--strict] [--no-priority]

* Peer venvs (``.venv-bench-locust``, ``.venv-bench-awscli``) are built from their pinned files
  (``requirements-bench.txt``, ``benchmarks/requirements-awscli.txt``) with uv when it is on
  PATH or beside this interpreter, else pip, and rebuilt only when the pinned file changes.
* Each benchmark runs as its own process in a session of its own. When allowed (root), that
  session's autogroup gets nice -10: on a shared 2-core box the kernel otherwise gives every
  session an equal CPU share, and a benchmark would measure its neighbours. ``--no-priority``
  turns that off; the servers under test (stub, moto) add -5 of their own inside the session.
* Python bytecode is cached under ``benchmarks/.out/pycache`` (``PYTHONPYCACHEPREFIX``), since a
  deployed Airflow has its .pyc files and an environment with PYTHONDONTWRITEBYTECODE would
  otherwise compile Airflow from source in every parse and every worker.
* Every result line (``P<n> <name>: ratio=... target=... PASS|MISS``) is echoed in a summary and
  written to ``benchmarks/.out/results.txt``; each benchmark's stderr goes to
  ``benchmarks/.out/<id>.log``. Exit 1 when a benchmark fails to run (or, with ``--strict``,
  when any line is a MISS).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import OUT, RESULT_RE, ROOT, machine  # noqa: E402  -- after the path tweak above

BENCH = ROOT / "benchmarks"
# (id, script, time limit in seconds): the limits bound a hung run, well above a normal one.
BENCHMARKS: tuple[tuple[str, str, float], ...] = (
    ("P1", "p1_dag_parse.py", 900),  # three sizes, up to 50 pipeline files
    ("P3", "p3_load_engine.py", 240),
    ("P3b", "p3b_engine_choice.py", 300),
    ("P4", "p4_vs_locust.py", 240),
    ("P5", "p5_s3_sync.py", 300),
    ("P6", "p6_manifest.py", 400),
    ("P6b", "p6b_long_line.py", 120),
    ("P7", "p7_demo.py", 600),
    ("P8", "p8_histogram_merge.py", 120),
    ("P9", "p9_fanout_workers.py", 900),
)
VENVS = {
    "locust": ROOT / "requirements-bench.txt",
    "awscli": BENCH / "requirements-awscli.txt",
}
NEEDS = {"P4": ("locust",), "P5": ("awscli",)}
AUTOGROUP_NICE = -10


def _uv() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return shutil.which("uv") or (str(beside) if beside.exists() else None)


def _base_python() -> str:
    """The interpreter to build venvs from: this one's base, never a venv's own copy."""
    return getattr(sys, "_base_executable", None) or sys.executable


def ensure_venv(name: str, requirements: Path) -> Path:
    """``.venv-bench-<name>`` with exactly ``requirements`` installed; rebuilt when they change."""
    venv = ROOT / f".venv-bench-{name}"
    stamp = venv / ".installed"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest:
        return venv
    print(f"building {venv.name} from {requirements.relative_to(ROOT)}", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    uv = _uv()
    if uv:
        subprocess.run([uv, "pip", "install", "--python", python, "-q", "-r", str(requirements)], check=True)
    else:
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        str(requirements)], check=True)
    stamp.write_text(digest + "\n")
    return venv


def _session_priority() -> None:
    """In the child, after setsid: raise this new session's autogroup weight when allowed."""
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(f"{AUTOGROUP_NICE}\n")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(OUT / "pycache")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_benchmark(bench_id: str, script: str, limit_s: float, *, priority: bool) -> tuple[list[str], bool, float]:
    """Run one benchmark, echoing its stdout; returns (result lines, ran cleanly, seconds)."""
    log_path = OUT / f"{bench_id}.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, str(BENCH / script)], cwd=ROOT, env=child_env(), text=True,
                                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_session_priority if priority else None)
        results: list[str] = []

        def echo() -> None:  # a thread, so a silent hung benchmark cannot block the time limit
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                print(line, flush=True)
                if RESULT_RE.match(line):
                    results.append(line)

        reader = threading.Thread(target=echo, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            if proc.poll() is None:
                # Its own session: stop the benchmark and every server it started, by group id.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            reader.join(timeout=15)
    seconds = time.monotonic() - started
    ok = not timed_out and proc.returncode == 0 and bool(results)
    if not ok:
        why = f"timed out after {limit_s:.0f} s" if timed_out else f"exit code {proc.returncode}"
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
        print(f"{bench_id} FAILED ({why}); last lines of {log_path.relative_to(ROOT)}:", flush=True)
        for line in tail:
            print(f"    {line}", flush=True)
    return results, ok, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated ids, e.g. P3,P4")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any result is a MISS")
    parser.add_argument("--no-priority", action="store_true", help="leave the benchmarks' CPU share alone")
    args = parser.parse_args(argv)

    wanted = {x.strip() for x in args.only.split(",")} if args.only else None
    chosen = [b for b in BENCHMARKS if wanted is None or b[0] in wanted]
    if wanted and len(chosen) != len(wanted):
        known = ", ".join(b[0] for b in BENCHMARKS)
        raise SystemExit(f"--only: unknown id in {args.only!r}; known: {known}")
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sorted({v for b in chosen for v in NEEDS.get(b[0], ())}):
        ensure_venv(name, VENVS[name])

    facts = machine()
    header = (f"machine: {facts['nproc']} cores, {facts['cpu']}, {facts['memory']}, Python {facts['python']}, "
              f"kernel {facts['kernel']}; load at start {os.getloadavg()[0]:.2f}")
    print(header, flush=True)
    started = time.monotonic()
    lines: list[str] = []
    failed: list[str] = []
    timings: list[str] = []
    for bench_id, script, limit in chosen:
        print(f"\n== {bench_id} ({script})", flush=True)
        results, ok, seconds = run_benchmark(bench_id, script, limit, priority=not args.no_priority)
        lines += results
        timings.append(f"{bench_id} {seconds:.0f} s")
        if not ok:
            failed.append(bench_id)
    total = time.monotonic() - started

    summary = [
        f"# make bench, {datetime.now(UTC).isoformat(timespec='seconds')}",
        header,
        f"took {total:.0f} s ({', '.join(timings)}); load at end {os.getloadavg()[0]:.2f}",
        *lines,
        *(f"{b} FAILED to run (see benchmarks/.out/{b}.log)" for b in failed),
    ]
    (OUT / "results.txt").write_text("\n".join(summary) + "\n")
    print("\n" + "\n".join(summary), flush=True)
    misses = [line for line in lines if line.endswith("MISS")]
    if failed or (args.strict and misses):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
