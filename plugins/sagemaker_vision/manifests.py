"""The ``prepare_manifests`` stage: validate the labeled manifest while streaming it from S3,
split it by a hash of ``source-ref``, and publish ``train.manifest`` and ``validation.manifest``.

Two streaming passes: the first validates and collects the class-map (so gapped class ids can
be remapped to the 0..n-1 the algorithm wants before the first line is written), the second
splits. Both outputs go to local temp files and are uploaded only when the whole input
validated, so a bad manifest never leaves a half-written split behind.
"""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from sagemaker_vision import labels, s3io
from sagemaker_vision.config import PipelineConfig

log = logging.getLogger(__name__)


def prepare_manifests(cfg: PipelineConfig, s3_client: Any, manifest_uri: str) -> dict[str, Any]:
    stats = labels.validate_manifest(
        s3io.iter_lines(s3_client, manifest_uri, "manifest_uri"),
        label_attribute=cfg.label_attribute, source=manifest_uri,
    )
    with (
        tempfile.NamedTemporaryFile("w+", suffix=".manifest", encoding="utf-8") as train,
        tempfile.NamedTemporaryFile("w+", suffix=".manifest", encoding="utf-8") as validation,
    ):
        result = labels.split_manifest(
            s3io.iter_lines(s3_client, manifest_uri, "manifest_uri"),
            label_attribute=cfg.label_attribute,
            validation_fraction=cfg.validation_fraction,
            train_out=train,
            validation_out=validation,
            class_map=stats.class_map,
            source=manifest_uri,
        )
        for fh, uri in ((train, cfg.train_manifest_uri), (validation, cfg.validation_manifest_uri)):
            fh.flush()
            bucket, key = s3io.split_uri(uri)
            s3_client.upload_file(fh.name, bucket, key, ExtraArgs={"ContentType": "application/jsonl"})
    if result.id_remap and any(int(k) != v for k, v in result.id_remap.items()):
        log.warning("Class ids had gaps; remapped to 0..%d: %s", result.num_classes - 1, result.id_remap)
    log.info(
        "Split %s: %d train, %d validation, %d classes %s",
        manifest_uri, result.num_training_samples, result.num_validation_samples,
        result.num_classes, result.class_map,
    )
    return {
        "train_uri": cfg.train_manifest_uri,
        "validation_uri": cfg.validation_manifest_uri,
        "num_classes": result.num_classes,
        "num_training_samples": result.num_training_samples,
        "num_validation_samples": result.num_validation_samples,
        "class_map": {str(k): v for k, v in result.class_map.items()},
    }
