"""`make demo`: run a pipeline file's pipeline DAG end to end on the embedded AWS emulator.

It starts the emulator in this process, runs `airflow dags test <pipeline>.pipeline` (the shapes
demo, include/pipelines/shapes-detector.yaml, unless `--pipeline` names another file) exactly as a
user would, then reads the run's reports back from (emulated) S3, copies them to
demo-output/<run stamp>/ (the emulator, and its S3, stop with the demo) and prints a summary.
Its Airflow home is .state/demo/airflow, not `make airflow`'s: demo runs never appear in that UI.
Usage: scripts/demo.py [--pipeline NAME] [--backend import|ground_truth|label_studio] [--conf JSON]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _local import BIN, DEMO_AIRFLOW_HOME, DEMO_BUCKET, ROOT, migrate_db, start_emulator

from sagemaker_vision.hooks import s3 as s3io

OUTPUT = ROOT / "demo-output"  # git-ignored
# The run's files worth opening: the load test's report and chart, the smoke test's result.
REPORT_FILES = ("report.json", "chart.png", "smoke_test.json")


def save_reports(s3, bucket: str, reports_prefix: str, dest: Path) -> dict[str, Path]:
    """Copy REPORT_FILES under ``s3://bucket/reports_prefix`` to ``dest``; name -> local path.

    A file the run did not write (no load test on an async endpoint) is left out, not faked.
    """
    dest.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Path] = {}
    for name in REPORT_FILES:
        body = s3io.read_if_exists(s3, f"s3://{bucket}/{reports_prefix}{name}")
        if body is None:
            continue
        path = dest / name
        path.write_bytes(body)
        saved[name] = path
    return saved


def _run_prefix(s3, prefix: str) -> str:
    """The newest run folder under ``prefix`` (the demo's emulator holds only its own run)."""
    stamps = [
        p["Prefix"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=DEMO_BUCKET, Prefix=prefix, Delimiter="/")
        for p in page.get("CommonPrefixes", [])
    ]
    if not stamps:
        raise SystemExit("the run wrote no reports")
    return sorted(stamps)[-1]


def _latest_reports(s3, run_prefix: str) -> tuple[str, dict, dict]:
    def load(key: str) -> dict | None:
        body = s3io.read_if_exists(s3, f"s3://{DEMO_BUCKET}/{run_prefix}{key}")
        return None if body is None else json.loads(body)

    smoke = load("reports/smoke_test.json")
    if smoke is None:  # an async endpoint answers through S3 instead
        outputs = s3.list_objects_v2(Bucket=DEMO_BUCKET, Prefix=run_prefix + "async/output/").get("Contents", [])
        if outputs:
            reply = json.loads(s3.get_object(Bucket=DEMO_BUCKET, Key=outputs[0]["Key"])["Body"].read())
            smoke = {"endpoint_name": "(async)", "image": f"s3://{DEMO_BUCKET}/{outputs[0]['Key']}",
                     "boxes": [{"label": f"class {int(p[0])}", "score": p[1], "left": "-", "top": "-",
                                "width": "-", "height": "-"} for p in reply["prediction"] if p[1] >= 0.2]}
    return f"s3://{DEMO_BUCKET}/{run_prefix}reports/", smoke or {}, load("reports/report.json") or {}


def _pipeline(name: str, env: dict[str, str]):
    """The validated pipeline file ``name``, read with the emulator's defaults (bucket, role); None when bad."""
    import os
    from unittest import mock

    from sagemaker_vision.core.pipeline_file import PipelineFileError, load_pipeline_file, pipelines_dir

    path = pipelines_dir() / f"{name}.yaml"
    if not path.is_file():
        names = ", ".join(p.stem for p in sorted(pipelines_dir().glob("*.yaml")))
        print(f"no pipeline file {path}; the pipelines are: {names}", file=sys.stderr)
        return None
    # Only while reading the file: the caller's environment is left as it was (a test calling main()
    # in-process would otherwise run every later test against the demo's bucket and role).
    with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith("SAGEMAKER_VISION_")}):
        try:
            return load_pipeline_file(path)
        except PipelineFileError as exc:
            print(f"the pipeline file is refused: {exc}", file=sys.stderr)
            return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="shapes-detector",
                        help="the pipeline file include/pipelines/<NAME>.yaml to run (default: the shapes demo)")
    parser.add_argument("--backend", default="import", choices=["import", "ground_truth", "label_studio"])
    parser.add_argument("--conf", default="{}", help="extra DAG params as JSON")
    args = parser.parse_args()
    started = time.monotonic()

    conf = {"label_backend": args.backend, **json.loads(args.conf)}
    if args.backend == "ground_truth":
        # Ground Truth takes only private or vendor work teams now (Mechanical Turk closed on
        # 2026-09-30); the emulator's workers answer for any private team.
        conf.setdefault("gt_workteam_arn", "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/demo-team")
    annotator = None
    if args.backend == "label_studio":
        import label_studio
        from _annotator import SimulatedAnnotator

        server = label_studio._read_pid_file()
        if server is None or not label_studio._alive(server.pid):
            print("Label Studio is not running: start it with `make label-studio` first.", file=sys.stderr)
            return 2
        # Plays the human annotators while the label task waits, using the sample answer key.
        annotator = SimulatedAnnotator(server.url, server.token, conf.get("label_studio_project") or args.pipeline)
    emu, env = start_emulator(home=DEMO_AIRFLOW_HOME)
    definition = _pipeline(args.pipeline, env)
    if definition is None:
        return 2
    workers = conf.get("load_workers", definition.settings["load_workers"])
    if workers > 1:
        # `airflow dags test` runs mapped tasks one after another, so load workers could never start a
        # step together (the second would fail as started too late): one worker sends the whole load.
        # On a scheduler (`make airflow`, docker compose) the file's workers run side by side.
        print(f"{definition.path} sets load_workers: {workers}; `airflow dags test` runs mapped tasks one at a "
              "time, so this demo's load test uses 1 worker (`make airflow` runs them side by side)", flush=True)
        conf["load_workers"] = 1
    if annotator is not None:
        env["AIRFLOW_CONN_LABEL_STUDIO_DEFAULT"] = label_studio.connection_json(server.url, server.token)
        annotator.start()
    try:
        migrate_db(env)
        dag_id = definition.dag_id("pipeline")
        print(f"emulator on {emu.endpoint_url}; running {dag_id} ({definition.path}) with {conf}", flush=True)
        run = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", dag_id, "--conf", json.dumps(conf)],
            env=env,
        )
        if run.returncode != 0:
            print("\nThe pipeline failed: the task logs above name the failing step.", file=sys.stderr)
            return run.returncode
        import boto3

        s3 = boto3.client("s3", endpoint_url=emu.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        prefix = conf.get("prefix", definition.settings["prefix"])
        run_prefix = _run_prefix(s3, f"{prefix}/runs/{definition.name}/")
        reports, smoke, load = _latest_reports(s3, run_prefix)
        saved = save_reports(s3, DEMO_BUCKET, run_prefix + "reports/",
                             OUTPUT / run_prefix.rstrip("/").rsplit("/", 1)[-1])
        overall = load.get("totals", {})
        step = (load.get("steps") or [{}])[-1]
        print("\n" + "=" * 72)
        print(f"{dag_id}: SUCCESS on the embedded emulator")
        print(f"  endpoint      {smoke.get('endpoint_name')} ({smoke.get('endpoint_status', 'InService')})")
        boxes = ", ".join(f"{b['label']} {b['score']:.2f} @({b['left']},{b['top']},{b['width']}x{b['height']})"
                          for b in smoke.get("boxes", []))
        print(f"  smoke test    {len(smoke.get('boxes', []))} boxes in {smoke.get('image')}: {boxes or 'none'}")
        if not load:
            print("  load test     skipped: an async endpoint takes no synchronous traffic")
        else:
            print(f"  load test     {step.get('requests', overall.get('requests'))} requests at "
                  f"C={step.get('concurrency')}: p50 {step.get('p50_ms', 0):.1f} ms, "
                  f"p95 {step.get('p95_ms', 0):.1f} ms, p99 {step.get('p99_ms', 0):.1f} ms, "
                  f"{step.get('throughput_rps', 0):.1f} req/s, errors {step.get('errors_by_code') or 0}")
        cost = load.get("cost") or {}
        if cost:
            print(f"  cost          ${cost.get('usd_per_1000_inferences') or '-'} per 1,000 inferences, "
                  f"${cost.get('usd_per_hour') or '-'} per hour ({cost.get('kind')}, from the price table)")
        print(f"  reports       {reports} (gone when the emulator stops), copied to:")
        for path in saved.values():
            print(f"                {path}")
        print(f"  wall time     {time.monotonic() - started:.1f} s")
        print("=" * 72)
        return 0
    finally:
        if annotator is not None:
            annotator.stop()
        emu.stop()


if __name__ == "__main__":
    sys.exit(main())
