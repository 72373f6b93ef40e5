"""The ``label`` stage: every backend ends in one Ground Truth augmented manifest in S3.

``import`` rewrites an existing manifest's ``source-ref``s to the synced images and checks that
each image is really there; ``ground_truth`` and ``label_studio`` live in their own modules.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from sagemaker_vision import labels, s3io
from sagemaker_vision.config import ConfigError, PipelineConfig

log = logging.getLogger(__name__)


class _ReplayableLines:
    """Re-reads the source on each iteration: finding the common prefix needs two passes,
    and holding a large manifest in memory is what streaming is for."""

    def __init__(self, s3_client: Any, location: str, field_name: str):
        self.s3_client, self.location, self.field_name = s3_client, location, field_name

    def __iter__(self) -> Iterator[str]:
        for raw in s3io.iter_source_lines(self.s3_client, self.location, self.field_name):
            yield raw.decode("utf-8") if isinstance(raw, bytes) else raw


def import_labels(cfg: PipelineConfig, s3_client: Any) -> dict[str, Any]:
    """Publish ``cfg.import_manifest`` at ``cfg.labeled_manifest_uri`` with refs to the synced images."""
    source = _ReplayableLines(s3_client, cfg.import_manifest, "import_manifest")
    synced = {f"s3://{cfg.bucket}/{key}" for key, _ in s3io.list_keys(s3_client, cfg.raw_prefix)}
    if not synced:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    missing: list[str] = []
    count = 0
    with s3io.staged_upload(s3_client, cfg.labeled_manifest_uri) as out:
        rewritten = labels.rewrite_source_refs(
            source, old_prefix=cfg.import_source_prefix, new_prefix=cfg.raw_prefix
        )
        for lineno, line in enumerate(rewritten, start=1):
            ref = json.loads(line)["source-ref"]
            if ref not in synced:
                missing.append(f"{cfg.import_manifest}:{lineno}: source-ref {ref} was not synced")
            out.write(line if line.endswith("\n") else line + "\n")
            count += 1
        if missing:
            shown = "\n  ".join(missing[:20])
            more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
            # Raising inside the block means nothing is published.
            raise ConfigError("import_manifest", f"{len(missing)} labeled images are missing:\n  {shown}{more}")
    log.info("Imported %d labeled images to %s", count, cfg.labeled_manifest_uri)
    return {"manifest_uri": cfg.labeled_manifest_uri, "images": count, "backend": "import"}


def label_images(cfg: PipelineConfig, context: Any = None) -> dict[str, Any]:
    """Run the configured backend; each returns ``{"manifest_uri": ..., ...}``."""
    from sagemaker_vision import aws

    s3 = aws.client("s3")
    if cfg.label_backend == "import":
        return import_labels(cfg, s3)
    raise ConfigError("label_backend", f"{cfg.label_backend!r} is not available yet")
