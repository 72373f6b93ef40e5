"""P6b: reading one huge manifest line grows linearly with its length.

The manifest reader (``manifest_parse.iter_lines``, behind ``hooks.s3.iter_lines``) reads 64 KiB chunks from
botocore's ``StreamingBody``. The ratio is the time for a 128 MB line over twice the time for a
64 MB line: 1.0 is linear, 2.0 quadratic (smaller lines fit memory the allocator already holds,
which hides the cost of fresh pages and skews the ratio). botocore's own
``StreamingBody.iter_lines``, which adds every chunk to the pending text, took 2.9 s and 15.7 s
for 16 and 32 MB (a ratio of 2.7) when the issue was filed; its 16 MB time is a detail line.
The pipeline itself refuses lines past ``manifest_parse.MAX_LINE_BYTES`` (Ground Truth's 100,000
characters per object); the cap is lifted here to time the reader alone.
Best of 5 per size (other load only ever slows a run); CPU time, in this process.

Usage: benchmarks/p6b_long_line.py
"""

from __future__ import annotations

import io
import time

from _bench import detail, emit, loadavg
from botocore.response import StreamingBody

from sagemaker_vision.core import manifest_parse

TARGET_RATIO = 1.5
CHUNK = 1 << 16  # what hooks.s3.iter_lines reads per call
MB = 1 << 20


def body(size: int) -> tuple[StreamingBody, int]:
    data = b'{"source-ref":"' + b"x" * size + b'"}\n'
    return StreamingBody(io.BytesIO(data), len(data)), len(data)


def ours(size: int) -> float:
    """CPU seconds for manifest_parse.iter_lines to read one line of ``size`` bytes."""
    stream, length = body(size)
    started = time.process_time()
    lines = list(manifest_parse.iter_lines(stream, chunk_size=CHUNK, max_line_bytes=2 * length, keepends=True))
    elapsed = time.process_time() - started
    assert len(lines) == 1 and len(lines[0]) == length
    return elapsed


def botocore_iter_lines(size: int) -> float:
    """CPU seconds for botocore's StreamingBody.iter_lines (the reader before the fix) to do the same."""
    stream, length = body(size)
    started = time.process_time()
    lines = list(stream.iter_lines(chunk_size=CHUNK, keepends=True))
    elapsed = time.process_time() - started
    assert len(lines) == 1 and len(lines[0]) == length
    return elapsed


def main() -> int:
    small, large = (min(ours(64 * MB) for _ in range(5)), min(ours(128 * MB) for _ in range(5)))
    peer = botocore_iter_lines(16 * MB)
    ratio = large / (2 * small)
    detail(f"one line through manifest_parse.iter_lines: 64 MB {small:.3f} s, 128 MB {large:.3f} s CPU ({loadavg()})")
    detail(f"botocore StreamingBody.iter_lines, one 16 MB line: {peer:.2f} s CPU "
           f"({peer / (small / 4):.0f}x ours per byte)")
    emit("P6b", "manifest-long-line-linear", ratio, "<=", TARGET_RATIO)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
