"""The load test's payloads: which images, checked before the first request, and how large.

Pure: no Airflow, no AWS call (S3 sources are read by
:func:`sagemaker_vision.hooks.load_test.load_payloads`, which checks every body here). A payload
is ``(name, body, content_type)``; each is checked to decode, so a corrupt file fails before the
run, naming it, rather than as thousands of ModelErrors; so does an empty file or one over the
endpoint's body limit (:func:`payload_limit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagemaker_vision.core.images import REALTIME_MAX_BYTES, SERVERLESS_MAX_BYTES, max_bytes_for
from sagemaker_vision.core.inference import content_type_for, image_size
from sagemaker_vision.core.loadtest.model import Payload

# Real-time InvokeEndpoint rejects request bodies over 6 MiB (botocore BodyBlob max); serverless
# endpoints take 4 MB. The numbers and their sources live in sagemaker_vision.core.images.
MAX_PAYLOAD_BYTES = REALTIME_MAX_BYTES
# Project root (the folder holding include/), for relative local payload paths.
_PROJECT_ROOT = Path(__file__).resolve().parents[4]


def limit(max_bytes: int | None) -> int:
    """The body limit in force: ``max_bytes``, or :data:`MAX_PAYLOAD_BYTES` when None."""
    return MAX_PAYLOAD_BYTES if max_bytes is None else max_bytes


def too_large(name: str, size: int, max_bytes: int | None) -> ValueError:
    """The error for a payload over the limit, naming it, its size and the kind of limit."""
    in_force = limit(max_bytes)
    kind = "serverless" if in_force == SERVERLESS_MAX_BYTES else "real-time"
    return ValueError(f"payload {name!r} is {size} bytes, over the {in_force} byte {kind} InvokeEndpoint limit")


def check_payload(name: str, body: bytes, max_bytes: int | None = None) -> Payload:
    """``(name, body, content_type)`` once ``body`` is a non-empty, decodable image within the limit."""
    if len(body) > limit(max_bytes):
        raise too_large(name, len(body), max_bytes)
    if not body:
        raise ValueError(f"payload {name!r} is empty (0 bytes)")
    try:
        image_size(body)
    except ValueError as exc:
        raise ValueError(f"payload {name!r}: {exc}") from None
    return name, body, content_type_for(name)


def payload_limit(description: Mapping[str, Any]) -> int:
    """The largest body a described endpoint takes: 4 MB if a variant is serverless, else 6 MiB."""
    variants = description.get("ProductionVariants") or []
    serverless = any(v.get("CurrentServerlessConfig") or v.get("DesiredServerlessConfig") for v in variants)
    return max_bytes_for("serverless" if serverless else "provisioned")


def is_image_name(name: str) -> bool:
    """Whether ``name`` has a JPEG or PNG extension (the content types the algorithm takes)."""
    try:
        content_type_for(name)
    except ValueError:
        return False
    return True


def check_max_payloads(max_payloads: object) -> int:
    """``max_payloads`` when it is a positive integer; ``ValueError`` otherwise."""
    if isinstance(max_payloads, bool) or not isinstance(max_payloads, int) or max_payloads < 1:
        raise ValueError(f"max_payloads must be a positive integer, got {max_payloads!r}")
    return max_payloads


def local_payloads(source: str | Path, *, max_payloads: int = 20, max_bytes: int | None = None) -> list[Payload]:
    """Up to ``max_payloads`` JPEG/PNG images, sorted by name, from a local directory.

    A relative path is relative to the project root, as every local path param is, never to the
    working directory: a worker's is whatever its executor gave it (and may hold another task's
    files), so ``include/sample_data/images`` means the same folder on every worker.
    """
    if not isinstance(source, str | Path) or not str(source):
        raise ValueError(f"payload_prefix must be an s3:// prefix or a local directory, got {source!r}")
    directory = Path(source)
    if not directory.is_absolute():
        directory = _PROJECT_ROOT / directory
    if not directory.is_dir():
        raise ValueError(
            f"payload_prefix {str(source)!r} is neither an s3:// prefix nor an existing directory"
        )
    files = sorted(p for p in directory.iterdir() if p.is_file() and is_image_name(p.name))[:max_payloads]
    if not files:
        raise ValueError(f"payload_prefix {str(directory)!r} holds no .jpg/.jpeg/.png files")
    payloads = []
    for path in files:
        if path.stat().st_size > limit(max_bytes):
            raise too_large(str(path), path.stat().st_size, max_bytes)
        payloads.append(check_payload(path.name, path.read_bytes(), max_bytes))
    return payloads
