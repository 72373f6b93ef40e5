"""P1: each DAG file's parse time against a minimal DAG that imports the same things.

Parsing is measured the way Airflow 3's dag-processor pays for it: one interpreter loads
Airflow and pre-imports the ``airflow.*`` modules the files name (the processor's
``parsing_pre_import_modules``), then forks one child per parse, and the child runs ``DagBag``
on the one file -- importing the project's own modules and running its top-level code. The
twin is generated per file: the file's own module-level imports, then one empty DAG, so the
ratio is what a DAG's top-level code costs beyond its imports. Samples alternate real/twin;
each is the child's CPU time (robust on a busy machine, where wall time mostly measures the
neighbours), wall time is shown too. The line reports the worst file's median ratio.

Usage: benchmarks/p1_dag_parse.py [--samples 7]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench import PLUGINS, ROOT, detail, emit, loadavg, run_child

TARGET = 1.2


def twin_source(dag_file: Path) -> str:
    """A minimal DAG module with the same module-level imports as ``dag_file``."""
    source = dag_file.read_text()
    tree = ast.parse(source, filename=str(dag_file))
    imports = [ast.get_source_segment(source, node) for node in tree.body
               if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join([
        f'"""Minimal twin of {dag_file.name} for benchmarks/p1_dag_parse.py: same imports, one empty DAG."""',
        *imports,
        "from airflow.sdk import DAG as _TwinDAG",
        f'twin = _TwinDAG(dag_id="twin_{dag_file.stem}", schedule=None)',
        "",
    ])


def _parse_in_fork(path: str) -> dict:
    """Fork, parse ``path`` with DagBag in the child, return its CPU and wall seconds."""
    from airflow.dag_processing.dagbag import DagBag

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, report, and leave without running any cleanup
        code = 0
        try:
            os.close(read_fd)
            wall, cpu = time.perf_counter(), time.process_time()
            bag = DagBag(dag_folder=path)
            result = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                      "dags": sorted(bag.dag_ids), "errors": {k: str(v)[-500:] for k, v in bag.import_errors.items()}}
            os.write(write_fd, json.dumps(result).encode())
        except BaseException as exc:  # reported through the pipe, never raised in a fork
            os.write(write_fd, json.dumps({"errors": {path: repr(exc)}}).encode())
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    result = json.loads(data or b'{"errors": {"fork": "no output"}}')
    if result.get("errors") or not result.get("dags"):
        raise RuntimeError(f"parsing {path} failed: {result.get('errors') or 'no DAG found'}")
    return result


def child(paths: list[str], samples: int) -> None:
    """The processor stand-in: pre-import, then alternate forked parses; prints JSON per pair."""
    import importlib

    import airflow  # noqa: F401  -- loaded before any parse, as in the dag-processor
    from airflow.utils.file import iter_airflow_imports

    for path in paths:
        for module in iter_airflow_imports(path):
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # the processor logs and goes on; the parse reports real errors
    results: dict[str, list[dict]] = {p: [] for p in paths}
    pairs = list(zip(paths[::2], paths[1::2], strict=True))
    for i in range(samples):
        for real, twin in pairs:
            for path in (real, twin) if i % 2 == 0 else (twin, real):
                results[path].append(_parse_in_fork(path))
    print(json.dumps(results), flush=True)


def child_env(home: Path) -> dict[str, str]:
    env = {**os.environ,
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
           "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)]),
           # Parsing must not need AWS; fake credentials make sure nothing real is reachable.
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.samples)
        return 0

    dag_files = sorted((ROOT / "dags").glob("*.py"))
    if not dag_files:
        raise SystemExit("no DAG files under dags/")
    with tempfile.TemporaryDirectory(prefix="bench-p1-") as tmp:
        paths = []
        for dag_file in dag_files:
            twin = Path(tmp) / f"twin_{dag_file.name}"
            twin.write_text(twin_source(dag_file))
            paths += [str(dag_file), str(twin)]
        run = run_child([sys.executable, __file__, "--samples", str(args.samples), "--child", *paths],
                        timeout_s=300, env=child_env(Path(tmp) / "airflow-home"))
        if run.returncode != 0:
            raise RuntimeError(f"the parsing process failed ({run.returncode}): {(run.stdout + run.stderr)[-3000:]}")
        results = json.loads(run.stdout.strip().splitlines()[-1])

    worst: tuple[float, str] | None = None
    for real, twin in zip(paths[::2], paths[1::2], strict=True):
        def median(path: str, key: str) -> float:
            return statistics.median(r[key] for r in results[path])

        ratio = median(real, "cpu") / median(twin, "cpu")
        name = Path(real).name
        detail(f"{name} ({', '.join(results[real][0]['dags'])}): median CPU {median(real, 'cpu') * 1000:.0f} ms "
               f"vs twin {median(twin, 'cpu') * 1000:.0f} ms -> {ratio:.3f}; wall {median(real, 'wall') * 1000:.0f} "
               f"vs {median(twin, 'wall') * 1000:.0f} ms")
        if worst is None or ratio > worst[0]:
            worst = (ratio, name)
    assert worst is not None
    detail(f"{args.samples} forked parses per file ({loadavg()}); worst file: {worst[1]}")
    emit("P1", "dag-parse-vs-minimal", worst[0], "<=", TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
