"""P6: manifest validate + split of 1,000,000 lines against a bare ``json.loads`` loop.

Ours is what ``prepare_manifests`` does with ``sagemaker_vision.core.manifest``: ``split_manifests``
over the file, which validates and writes the train/validation files in one streaming pass (a
second pass is read only when the class ids are gapped; the benchmark's are 0..2, as Ground Truth
writes them, and the detail line says how many passes were read).
The baseline is the least any validator must do: ``json.loads`` every
line of the same file. Each runs in a child process of its own (``--child``), timed inside the
child (interpreter start-up excluded), with the child's peak RSS (VmHWM, /proc). The file is
read from the page cache by both (it is generated, or re-read, just before).

Usage: benchmarks/p6_manifest.py [--lines 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _bench import OUT, detail, emit, loadavg, run_child

TARGET_RATIO = 3.0
MAX_RSS_MB = 200.0
LABEL_ATTRIBUTE = "bounding-box"
CLASSES = {"0": "circle", "1": "square", "2": "triangle"}
GENERATOR_VERSION = 1


def manifest_line(i: int, rng: random.Random) -> str:
    """One valid Ground Truth bounding-box line (1-3 boxes inside a 640x480 image)."""
    boxes = []
    for _ in range(rng.randint(1, 3)):
        w, h = rng.randint(8, 200), rng.randint(8, 200)
        boxes.append({"class_id": rng.randint(0, 2), "left": rng.randint(0, 640 - w), "top": rng.randint(0, 480 - h),
                      "width": w, "height": h})
    return json.dumps({
        "source-ref": f"s3://bench-bucket/raw/dt=2026-11-01/img_{i:07d}.jpg",
        LABEL_ATTRIBUTE: {"image_size": [{"width": 640, "height": 480, "depth": 3}], "annotations": boxes},
        f"{LABEL_ATTRIBUTE}-metadata": {
            "objects": [{"confidence": 0.95}] * len(boxes), "class-map": CLASSES,
            "type": "groundtruth/object-detection", "human-annotated": "yes",
            "creation-date": "2026-11-01T00:00:00.000000", "job-name": "labeling-job/bench",
        },
    }, separators=(",", ":"))


def make_manifest(lines: int) -> Path:
    """The manifest under benchmarks/.out, generated once per line count."""
    path = OUT / f"p6-{lines}-v{GENERATOR_VERSION}.manifest"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        rng = random.Random(6)
        partial = path.with_suffix(".partial")
        with open(partial, "w", encoding="utf-8") as fh:
            for i in range(lines):
                fh.write(manifest_line(i, rng))
                fh.write("\n")
        partial.rename(path)
    return path


def child(mode: str, path: str) -> None:
    """Inside a child: run one side over ``path`` and print its JSON timing."""
    started = time.perf_counter()
    if mode == "baseline":
        n = 0
        with open(path, "rb") as fh:
            for line in fh:
                json.loads(line)
                n += 1
        result = {"lines": n}
    else:
        from sagemaker_vision.core import manifest

        passes = 0

        def open_lines() -> Iterator[bytes]:
            nonlocal passes
            passes += 1
            with open(path, "rb") as fh:
                yield from fh

        out_dir = Path(path).parent
        with (tempfile.TemporaryFile("w+", encoding="utf-8", dir=out_dir) as train,
              tempfile.TemporaryFile("w+", encoding="utf-8", dir=out_dir) as validation):
            split = manifest.split_manifests([(path, open_lines)], label_attribute=LABEL_ATTRIBUTE,
                                             validation_fraction=0.2, train_out=train, validation_out=validation)
        result = {"lines": split.stats.num_lines, "passes": passes,
                  "train": split.num_training_samples, "validation": split.num_validation_samples}
    result["seconds"] = time.perf_counter() - started
    print(json.dumps(result), flush=True)


def measure(mode: str, path: Path) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = run_child([sys.executable, __file__, "--child", mode, str(path)], timeout_s=600, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({run.returncode}): {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1]), run.max_rss_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    path = make_manifest(args.lines)
    size_mb = path.stat().st_size / 1e6
    base, base_rss = measure("baseline", path)
    ours, ours_rss = measure("ours", path)
    if base["lines"] != args.lines or ours["lines"] != args.lines:
        raise RuntimeError(f"line counts differ: baseline {base['lines']}, ours {ours['lines']}")
    ratio = ours["seconds"] / base["seconds"]
    detail(f"{args.lines} lines, {size_mb:.0f} MB ({loadavg()})")
    detail(f"json.loads loop {base['seconds']:.2f} s (peak RSS {base_rss:.0f} MB); validate + split "
           f"{ours['seconds']:.2f} s in {ours['passes']} pass(es) over the file "
           f"(peak RSS {ours_rss:.0f} MB, {ours['train']} train / {ours['validation']} validation)")
    rss_ok = ours_rss < MAX_RSS_MB
    detail(f"peak RSS {ours_rss:.0f} MB {'<' if rss_ok else '>='} {MAX_RSS_MB:.0f} MB: {'PASS' if rss_ok else 'MISS'}")
    # One line: the time ratio, and a MISS whatever it is when memory is over its bound.
    emit("P6", "manifest-validate-split", ratio, "<=", TARGET_RATIO, also=rss_ok)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
