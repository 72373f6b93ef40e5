"""P1: the DAG factory's parse time for 1, 10 and 50 pipeline files against hand-written DAGs.

For each size N, a temp folder gets N pipeline files in the style of ``include/pipelines/*.yaml``
(copies of those files, each with its own name and S3 prefix), and the factory side is what the
dag-processor parses for them: ``dags/pipelines.py`` (finds, reads and validates every file, then
builds its DAGs) plus ``dags/pipeline_errors.py`` (reads and validates them again, to raise the bad
ones), with ``$SAGEMAKER_VISION_PIPELINES_DIR`` on the folder. The hand-written side is one plain
generated ``.py`` with the same DAGs, tasks and operators, built by the same builder modules
(``sagemaker_vision.dags.<kind>``, what a DAG file would hold) from the same settings written as
Python literals: no pipeline file read, no validation, no factory. So each ratio is what the
factory's files cost beyond writing the DAGs by hand.

Parsing is measured the way Airflow 3's dag-processor pays for it: one interpreter loads
Airflow and pre-imports the ``airflow.*`` modules the files name (the processor's
``parsing_pre_import_modules``) and freezes the garbage collector, then forks one child per
parse, and the child runs ``DagBag`` on the one file -- importing the project's own modules and
running its top-level code. Samples alternate factory/hand-written; each is the child's CPU time
(wall time mostly measures the neighbours on a busy machine; it is shown too), and each side keeps
its fastest sample, as ``timeit`` does: other load only ever adds to a parse (the medians, shown
too, moved by +-15% between runs on the shared box). One result line per size, each that ratio:
``P1 dag-parse-1-pipeline``, ``P1b dag-parse-10-pipelines``, ``P1c dag-parse-50-pipelines``.

Usage: benchmarks/p1_dag_parse.py [--samples 7] [--sizes 1,10,50]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench import PLUGINS, ROOT, detail, emit, loadavg, run_child

TARGET = 1.2
SIZES = (1, 10, 50)
RESULT_IDS = {1: "P1", 10: "P1b", 50: "P1c"}  # stable ids, documented in benchmarks/README.md
PIPELINES_DIR_ENV = "SAGEMAKER_VISION_PIPELINES_DIR"
FACTORY_FILES = (ROOT / "dags" / "pipelines.py", ROOT / "dags" / "pipeline_errors.py")


def write_pipeline_files(folder: Path, count: int) -> None:
    """``count`` pipeline files: the project's own, in turn, each renamed with a prefix of its own."""
    templates = sorted((ROOT / "include" / "pipelines").glob("*.yaml"))
    if not templates:
        raise SystemExit("no pipeline files under include/pipelines/")
    folder.mkdir(parents=True)
    for i in range(count):
        lines = templates[i % len(templates)].read_text().splitlines()
        # Its own prefix and (from the file name) its own endpoint, as the factory demands.
        lines = [f"  prefix: bench-p1-{i:03d}" if line.startswith("  prefix:") else line
                 for line in lines if not line.startswith("  endpoint_name:")]
        (folder / f"bench-{i:03d}.yaml").write_text("\n".join(lines) + "\n")


def hand_written_source(folder: Path) -> str:
    """The plain DAG file with the same DAGs as the pipeline files of ``folder`` (run where they load)."""
    from sagemaker_vision.core.pipeline_file import load_pipelines
    from sagemaker_vision.dags.factory import BUILDERS

    definitions, errors = load_pipelines(folder)
    if errors or not definitions:
        raise SystemExit(f"the generated pipeline files do not load: {errors or 'none found'}")
    modules = ", ".join(f"{b.__name__.rsplit('.', 1)[1]} as _{b.KIND}" for b in BUILDERS)
    literals = ",\n".join(
        f"    PipelineDefinition(name={d.name!r}, path={d.path!r}, settings={dict(d.settings)!r}, "
        f"schedule={d.schedule!r}, retrain_schedule={d.retrain_schedule!r})" for d in definitions)
    return "\n".join([
        # "airflow" and "dag" in the text: DagBag's safe mode skips a file without both.
        f'"""Hand-written Airflow DAGs of {len(definitions)} pipeline files for benchmarks/p1_dag_parse.py."""',
        "from sagemaker_vision.core.pipeline_file import PipelineDefinition",
        f"from sagemaker_vision.dags import {modules}",
        "",
        f"_DEFINITIONS = [\n{literals},\n]",
        "for _definition in _DEFINITIONS:",
        f"    for _builder in ({', '.join(f'_{b.KIND}' for b in BUILDERS)},):",
        "        _dag = _builder.build(_definition)",
        "        globals()[_dag.dag_id] = _dag",
        "",
    ])


def _parse_in_fork(path: str, pipelines_dir: str, *, dags_expected: bool = True) -> dict:
    """Fork, parse ``path`` with DagBag in the child (pipeline files from ``pipelines_dir``), return its
    CPU and wall seconds."""
    from airflow.dag_processing.dagbag import DagBag

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse, report, and leave without running any cleanup
        code = 0
        try:
            os.close(read_fd)
            os.environ[PIPELINES_DIR_ENV] = pipelines_dir
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
    if result.get("errors") or (dags_expected and not result.get("dags")):
        raise RuntimeError(f"parsing {path} failed: {result.get('errors') or 'no DAG found'}")
    return result


def child(sizes: list[tuple[int, str, str]], samples: int) -> None:
    """The processor stand-in: pre-import, then alternate forked parses per size; prints JSON.

    ``sizes`` are (N, pipeline folder, hand-written file). A factory sample is the parse of
    ``dags/pipelines.py`` plus that of ``dags/pipeline_errors.py``."""
    import importlib

    import airflow  # noqa: F401  -- loaded before any parse, as in the dag-processor
    from airflow.utils.file import iter_airflow_imports

    for path in [*map(str, FACTORY_FILES), *(twin for _, _, twin in sizes)]:
        for module in iter_airflow_imports(path):
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # the processor logs and goes on; the parse reports real errors
    # What the dag-processor does before its parsing loop (DagFileProcessorManager.before_run): without
    # it, a parse that happens to trigger a full collection walks Airflow's whole inherited heap (~130 ms).
    gc.freeze()

    def factory(folder: str) -> dict:
        dags, errors = (_parse_in_fork(str(FACTORY_FILES[0]), folder),
                        _parse_in_fork(str(FACTORY_FILES[1]), folder, dags_expected=False))
        return {"cpu": dags["cpu"] + errors["cpu"], "wall": dags["wall"] + errors["wall"], "dags": dags["dags"],
                "errors_file_cpu": errors["cpu"]}

    results: dict[str, dict[str, list[dict]]] = {}
    for count, folder, twin in sizes:
        runs: dict[str, list[dict]] = {"factory": [], "hand": []}
        # 14, 7, 3 by default: a small parse is cheap and noisy (the factory side is two forks), a big one
        # takes seconds.
        n = 2 * samples if count < 10 else samples if count < 50 else max(3, samples - 4)
        for i in range(n):
            order = ("factory", "hand") if i % 2 == 0 else ("hand", "factory")
            for side in order:
                runs[side].append(factory(folder) if side == "factory" else _parse_in_fork(twin, folder))
        results[str(count)] = runs
    print(json.dumps(results), flush=True)


def child_env(home: Path) -> dict[str, str]:
    env = {**os.environ,
           "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
           "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(ROOT)]),
           # Parsing must not need AWS; fake credentials make sure nothing real is reachable.
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           # What a deployment sets for the pipeline files' bucket and role defaults.
           "SAGEMAKER_VISION_BUCKET": "bench-bucket",
           "SAGEMAKER_VISION_ROLE_ARN": "arn:aws:iam::123456789012:role/bench-execution"}
    env.pop("AWS_PROFILE", None)
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=7)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--hand-written", nargs=2, metavar=("FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child([(int(n), folder, twin) for n, folder, twin in zip(*[iter(args.child)] * 3, strict=True)],
              args.samples)
        return 0
    if args.hand_written:
        Path(args.hand_written[1]).write_text(hand_written_source(Path(args.hand_written[0])))
        return 0

    counts = [int(x) for x in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-p1-") as tmp:
        env = child_env(Path(tmp) / "airflow-home")
        triples: list[str] = []
        for count in counts:
            folder, twin = Path(tmp) / f"pipelines-{count}", Path(tmp) / f"hand_written_{count}.py"
            write_pipeline_files(folder, count)
            # Generated in a process of its own: the processor stand-in must not pre-load our modules.
            made = run_child([sys.executable, __file__, "--hand-written", str(folder), str(twin)],
                             timeout_s=120, env=env)
            if made.returncode != 0:
                raise RuntimeError(f"generating the hand-written DAGs failed: {(made.stdout + made.stderr)[-3000:]}")
            triples += [str(count), str(folder), str(twin)]
        run = run_child([sys.executable, __file__, "--samples", str(args.samples), "--child", *triples],
                        timeout_s=900, env=env)
        if run.returncode != 0:
            raise RuntimeError(f"the parsing process failed ({run.returncode}): {(run.stdout + run.stderr)[-3000:]}")
        results = json.loads(run.stdout.strip().splitlines()[-1])

    lines = []
    for count in counts:
        runs = results[str(count)]
        if sorted(runs["factory"][0]["dags"]) != sorted(runs["hand"][0]["dags"]):
            raise RuntimeError(f"{count} pipelines: the factory and the hand-written file hold different DAGs")

        def median(side: str, key: str) -> float:
            return statistics.median(r[key] for r in runs[side])  # noqa: B023 -- used at once

        def best(side: str) -> dict:
            return min(runs[side], key=lambda r: r["cpu"])  # noqa: B023 -- used at once

        factory_ms, hand_ms = best("factory")["cpu"] * 1000, best("hand")["cpu"] * 1000
        ratio = factory_ms / hand_ms
        detail(f"{count} pipeline file(s), {len(runs['hand'][0]['dags'])} DAGs, {len(runs['hand'])} samples: "
               f"fastest CPU factory {factory_ms:.0f} ms (of which pipeline_errors.py "
               f"{best('factory')['errors_file_cpu'] * 1000:.0f}) vs hand-written {hand_ms:.0f} ms -> {ratio:.3f}; "
               f"medians {median('factory', 'cpu') * 1000:.0f} vs {median('hand', 'cpu') * 1000:.0f} ms "
               f"({median('factory', 'cpu') / median('hand', 'cpu'):.3f}); median wall "
               f"{median('factory', 'wall') * 1000:.0f} vs {median('hand', 'wall') * 1000:.0f} ms")
        name = f"dag-parse-{count}-pipeline" + ("s" if count != 1 else "")
        lines.append((RESULT_IDS.get(count, f"P1x{count}"), name, ratio))
    detail(f"{loadavg()}")
    for pid, name, ratio in lines:
        emit(pid, name, ratio, "<=", TARGET)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
