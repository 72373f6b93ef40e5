"""P5: S3SyncOperator's ``sync()`` against ``aws s3 sync``, 2,000 files of 20 KB, on moto.

moto's ThreadedMotoServer runs in its own process (``_moto_server.py``, higher priority: it
stands in for S3). Each side syncs the same local folder into its own bucket, each with its
defaults, as a user runs it: ours is ``sagemaker_vision.hooks.s3_sync.sync`` with the operator's
``max_concurrency=16`` on one shared client (timed as a call: in Airflow the interpreter is
already up); the CLI is the ``aws`` command from ``.venv-bench-awscli`` (default 10 concurrent
requests; timed as a command, so its interpreter start is in it, and shown apart). The first
syncs run CLI, ours; then the no-op re-syncs alternate ours, CLI three times and each side keeps
its fastest (other load only ever slows a run: on the shared box one no-op read 0.63-1.03 s).

Two result lines: P5 (first sync, target <= 0.9) and P5b (no-op re-sync, target <= 0.5).

Usage: benchmarks/p5_s3_sync.py [--files 2000] [--size 20480]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

from _bench import FAKE_CREDENTIALS, OUT, REGION, ROOT, detail, emit, loadavg, run_child, server_process, venv_python

TARGET_FIRST, TARGET_NOOP = 0.9, 0.5
MAX_CONCURRENCY = 16  # S3SyncOperator's default
NOOP_REPEATS = 3


def make_files(root: Path, count: int, size: int) -> Path:
    """``count`` files of ``size`` random bytes in 10 folders; reused when already there."""
    folder = root / f"p5-{count}x{size}"
    marker = folder / ".complete"
    if marker.exists():
        return folder
    rng = random.Random(2000)
    # An hour in the past: older than any upload, so the CLI's mtime rule sees them as synced.
    stamp = time.time() - 3600
    for i in range(count):
        path = folder / f"part-{i % 10}" / f"img_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        os.utime(path, (stamp, stamp))
    marker.touch()
    return folder


def s3_client(url: str):
    import boto3

    from sagemaker_vision.core.aws_config import botocore_config

    return boto3.session.Session().client("s3", endpoint_url=url, region_name=REGION,
                                          config=botocore_config(max_pool_connections=MAX_CONCURRENCY),
                                          **FAKE_CREDENTIALS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=20 * 1024)
    args = parser.parse_args(argv)

    from sagemaker_vision.hooks.s3_sync import sync

    folder = make_files(OUT, args.files, args.size)
    aws_cli = venv_python("awscli").parent / "aws"
    with server_process([sys.executable, str(ROOT / "benchmarks" / "_moto_server.py")],
                        r"moto on (http://127\.0\.0\.1:\d+)") as moto:
        client = s3_client(moto.url)
        for bucket in ("bench-ours", "bench-cli"):
            client.create_bucket(Bucket=bucket)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
               "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
               "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)

        def cli_sync() -> float:
            run = run_child([str(aws_cli), "s3", "sync", str(folder), "s3://bench-cli/raw/", "--endpoint-url",
                             moto.url, "--only-show-errors", "--exclude", ".complete"], timeout_s=300, env=env)
            if run.returncode != 0:
                raise RuntimeError(f"aws s3 sync failed ({run.returncode}): {run.stderr[-2000:]}")
            return run.wall_s

        def our_sync() -> tuple[float, dict]:
            started = time.perf_counter()
            result = sync(str(folder), "s3://bench-ours/raw/", client=client, max_concurrency=MAX_CONCURRENCY)
            return time.perf_counter() - started, result

        cli_first = cli_sync()
        ours_first, first = our_sync()
        noops, cli_noops = [], []
        for _ in range(NOOP_REPEATS):
            noops.append(our_sync())
            cli_noops.append(cli_sync())
        ours_noop, noop = min(noops, key=lambda run: run[0])
        cli_noop = min(cli_noops)
        startup = run_child([str(aws_cli), "configure", "list"], timeout_s=60, env=env).wall_s
        counts = {b: client.list_objects_v2(Bucket=b, MaxKeys=1000)["KeyCount"] for b in ("bench-ours", "bench-cli")}
        moto_cpu = moto.cpu_s

    if first["copied"] != args.files or any(run["copied"] for _, run in noops):
        raise RuntimeError(f"ours copied {first['copied']} then {[run['copied'] for _, run in noops]}, "
                           f"expected {args.files} then 0")
    detail(f"{args.files} files x {args.size // 1024} KiB ({loadavg()}); first page of each bucket holds {counts}")
    detail(f"first sync: ours {ours_first:.2f} s, aws s3 sync {cli_first:.2f} s "
           f"({args.files / ours_first:.0f} vs {args.files / cli_first:.0f} PUT/s); "
           f"moto used {moto_cpu:.1f} CPU-s in all")
    detail(f"no-op re-sync, fastest of {NOOP_REPEATS}: ours {ours_noop:.2f} s (lists, then MD5s {noop['skipped']} "
           f"same-size files; runs {', '.join(f'{t:.2f}' for t, _ in noops)}), aws s3 sync {cli_noop:.2f} s (lists, "
           f"compares size + mtime; runs {', '.join(f'{t:.2f}' for t in cli_noops)})")
    detail(f"the CLI's interpreter start (`aws configure list`) is {startup:.2f} s of each CLI time; without it "
           f"the ratios would be {ours_first / max(cli_first - startup, 1e-9):.3f} and "
           f"{ours_noop / max(cli_noop - startup, 1e-9):.3f}")
    emit("P5", "s3-sync-first", ours_first / cli_first, "<=", TARGET_FIRST)
    emit("P5b", "s3-sync-noop", ours_noop / cli_noop, "<=", TARGET_NOOP)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
