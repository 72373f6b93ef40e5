"""Shared pieces of the benchmarks: the result line, child processes with their peak RSS, the stub.

Every benchmark prints ratios measured side by side in one run and exactly one result line::

    P<n> <name>: ratio=<x> target=<op><y> PASS|MISS

built by :func:`result_line`; anything else it prints is detail. ``benchmarks/run_all.py``
collects the result lines.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
OUT = ROOT / "benchmarks" / ".out"
SAMPLE_IMAGES = ROOT / "include" / "sample_data" / "images"
for _path in (str(PLUGINS), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

RESULT_RE = re.compile(r"^(P\d+[a-z]?) (\S+): ratio=(\S+) target=(<=|>=)(\S+) (PASS|MISS)$")
OPERATORS = {"<=": lambda x, y: x <= y, ">=": lambda x, y: x >= y}
# The stub and moto stand in for services that run on other machines; a higher priority keeps
# them from being starved by the client under test (or by anything else on a 2-core box).
SERVER_NICE = -5


def passes(ratio: float, op: str, target: float) -> bool:
    """Whether ``ratio <op> target`` holds; ``op`` is ``<=`` or ``>=``."""
    if op not in OPERATORS:
        raise ValueError(f"op must be one of {sorted(OPERATORS)}, got {op!r}")
    return OPERATORS[op](ratio, target)


def result_line(pid: str, name: str, ratio: float, op: str, target: float, *, also: bool = True) -> str:
    """The one line a benchmark is judged by, e.g. ``P3 load-engine-vs-ideal: ratio=0.93 target=>=0.9 PASS``.

    ``also=False`` makes it a MISS whatever the ratio: a second condition (such as a memory
    bound) failed, and a detail line says which.
    """
    if not re.fullmatch(r"P\d+[a-z]?", pid):
        raise ValueError(f"pid must look like P3 or P3b, got {pid!r}")
    if not name or re.search(r"\s|:", name):
        raise ValueError(f"name must be one word without ':', got {name!r}")
    verdict = "PASS" if passes(ratio, op, target) and also else "MISS"
    return f"{pid} {name}: ratio={ratio:.3f} target={op}{target:g} {verdict}"


def emit(pid: str, name: str, ratio: float, op: str, target: float, *, also: bool = True) -> bool:
    """Print the result line (flushed) and return whether it passed."""
    line = result_line(pid, name, ratio, op, target, also=also)
    print(line, flush=True)
    return line.endswith("PASS")


def detail(text: str) -> None:
    """A detail line: indented so it never looks like a result line."""
    print(f"  {text}", flush=True)


def loadavg() -> str:
    """The 1-minute load average and the core count, to judge how noisy a run was."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def machine() -> dict[str, str]:
    """Cores, CPU model, memory and Python, for README's machine line."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024**2:.1f} GiB"
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


# --------------------------------------------------------------------------------------------
# Child processes


@dataclass(frozen=True)
class ChildRun:
    """A finished child: exit code, output, wall time, peak RSS (MB, from /proc) and CPU seconds."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    max_rss_mb: float
    cpu_s: float


def _vm_hwm_mb(pid: int) -> float | None:
    """A live process's peak RSS (``VmHWM``), or None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_child(cmd: Sequence[str], *, timeout_s: float, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> ChildRun:
    """Run ``cmd`` to completion, with its wall time, CPU time and peak RSS.

    Peak RSS is the child's ``VmHWM`` from /proc, read every 10 ms until it exits (it only
    grows, so the last reading is the peak). ``wait4``'s ``ru_maxrss`` would be wrong here:
    Linux folds the spawning parent's RSS into it at exec. CPU time comes from ``wait4`` (the
    child and the children it waited for). Output goes to temp files so a chatty child never
    blocks.
    """
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
        deadline = started + timeout_s
        peak = 0.0
        while True:
            hwm = _vm_hwm_mb(proc.pid)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, hwm or 0.0)
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise TimeoutError(f"{' '.join(cmd[:3])}... did not finish within {timeout_s:.0f} s")
            time.sleep(0.01)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        return ChildRun(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                        wall, peak, usage.ru_utime + usage.ru_stime)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15)


def _raise_priority() -> None:
    with contextlib.suppress(OSError):  # needs root (or CAP_SYS_NICE); otherwise run as is
        os.nice(SERVER_NICE)


@dataclass
class Server:
    """A server child process on 127.0.0.1 and its URL."""

    url: str
    process: subprocess.Popen

    @property
    def cpu_s(self) -> float:
        return proc_cpu_seconds(self.process.pid)


@contextlib.contextmanager
def server_process(cmd: Sequence[str], url_pattern: str, *, ready_timeout_s: float = 60.0,
                   env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``cmd``, read its stdout until ``url_pattern`` matches, stop it on exit."""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                            preexec_fn=_raise_priority, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout_s
        url = None
        assert proc.stdout is not None
        while url is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd[1:3]} did not announce its URL within {ready_timeout_s:.0f} s")
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{cmd[1:3]} exited (code {proc.wait()}) before announcing its URL")
            match = re.search(url_pattern, line)
            if match:
                url = match.group(1)
        yield Server(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def stub_server(service_ms: float) -> contextlib.AbstractContextManager[Server]:
    """``benchmarks/stub_server.py`` in its own process on a free port."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "stub_server.py"), "--port", "0", "--service-ms", str(service_ms)]
    return server_process(cmd, r"(http://127\.0\.0\.1:\d+)")


# --------------------------------------------------------------------------------------------
# Clients and payloads


FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
REGION = "us-east-1"


def runtime_client(url: str, pool: int, request_timeout_s: float = 60.0):
    """A sagemaker-runtime client configured as ``LoadTestOperator.client`` configures it."""
    import boto3

    from sagemaker_vision.core.aws_config import botocore_config

    config = botocore_config(
        max_pool_connections=pool,
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=min(10.0, request_timeout_s),
        read_timeout=request_timeout_s,
    )
    return boto3.session.Session().client("sagemaker-runtime", endpoint_url=url, region_name=REGION,
                                          config=config, **FAKE_CREDENTIALS)


def payloads(limit: int = 4) -> tuple[tuple[str, bytes, str], ...]:
    """A few of the sample JPEGs, as the operator would load them."""
    files = sorted(SAMPLE_IMAGES.glob("*.jpg"))[:limit]
    if not files:
        raise FileNotFoundError(f"no sample images under {SAMPLE_IMAGES}; run scripts/make_sample_data.py")
    return tuple((p.name, p.read_bytes(), "image/jpeg") for p in files)


def venv_python(name: str) -> Path:
    """The interpreter of a peer venv built by run_all.py (``.venv-bench-<name>``)."""
    python = ROOT / f".venv-bench-{name}" / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run `python benchmarks/run_all.py` (or `make bench`), "
                                "which builds the peer venvs from their pinned requirements")
    return python
