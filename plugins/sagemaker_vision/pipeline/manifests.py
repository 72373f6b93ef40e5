"""The ``prepare_manifests`` stage: validate the labeled manifests while streaming them from S3,
split them by a hash of ``source-ref``, and publish ``train.manifest`` and ``validation.manifest``.

A run trains on every partition labeled up to the end of its data interval.

One streaming pass validates and splits every partition (``core.manifest.split_manifests``); a
second is read only when the class ids turn out gapped, to write them remapped to the 0..n-1 the
algorithm wants. Both outputs go to local temp files and are uploaded only when the whole input
validated, so a bad manifest never leaves a half-written split behind.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
import tempfile
from typing import Any

from sagemaker_vision.core import manifest as labels
from sagemaker_vision.core.config import PipelineConfig
from sagemaker_vision.core.quality_gate import final_metric
from sagemaker_vision.core.training_budget import is_run_job
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import s3 as s3io

log = logging.getLogger(__name__)


PARTITION_RE = re.compile(r"/labels/dt=(\d{4}-\d{2}-\d{2})/output\.manifest$")


def labeled_partitions(cfg: PipelineConfig, s3_client: Any) -> list[str]:
    """Published manifests of every partition up to this run's own, oldest first.

    A run trains on everything labeled by the end of its data interval, so a backfilled run
    for a past week sees exactly the partitions that existed then, never later ones.
    """
    own = cfg.run.partition.removeprefix("dt=")
    found = []
    for key, _ in s3io.list_keys(s3_client, f"{cfg.s3_root}/labels/"):
        match = PARTITION_RE.search("/" + key)
        if match and match.group(1) <= own:
            found.append((match.group(1), f"s3://{cfg.bucket}/{key}"))
    return [uri for _, uri in sorted(found)]


def _partition_date(uri: str) -> str:
    """``2026-11-16`` of a published partition manifest's URI (one :func:`labeled_partitions` found)."""
    match = PARTITION_RE.search("/" + s3io.split_uri(uri)[1])
    if match is None:
        raise ValueError(f"{uri} is not a partition manifest (<prefix>/labels/dt=<date>/output.manifest)")
    return match.group(1)


def prepare_manifests(cfg: PipelineConfig, s3_client: Any, manifest_uri: str | None = None) -> dict[str, Any]:
    """Validate every labeled partition up to this run, then split them all into train/validation.

    ``manifest_uri``, when given, is this run's own labeled partition, which must be among them.
    """
    partitions = labeled_partitions(cfg, s3_client)
    if not partitions:
        raise ConfigError("label", f"no labeled partitions under {cfg.s3_root}/labels/ up to {cfg.run.partition}")
    if manifest_uri is not None and manifest_uri not in partitions:
        raise ConfigError("label", f"{manifest_uri} is not a published partition manifest under {cfg.s3_root}/labels/")
    # One pass over every file: each error names its own file and line, a class id means one name in all.
    with (
        tempfile.NamedTemporaryFile("w+", suffix=".manifest", encoding="utf-8") as train,
        tempfile.NamedTemporaryFile("w+", suffix=".manifest", encoding="utf-8") as validation,
    ):
        result = labels.split_manifests(
            [(uri, functools.partial(s3io.iter_lines, s3_client, uri, "manifest_uri")) for uri in partitions],
            label_attribute=cfg.label_attribute,
            validation_fraction=cfg.validation_fraction,
            train_out=train,
            validation_out=validation,
        )
        digest = hashlib.sha256()
        for fh, uri in ((train, cfg.train_manifest_uri), (validation, cfg.validation_manifest_uri)):
            fh.flush()
            fh.seek(0)
            while chunk := fh.read(1 << 16):
                digest.update(chunk.encode())
            digest.update(b"\0")
            bucket, key = s3io.split_uri(uri)
            s3_client.upload_file(fh.name, bucket, key, ExtraArgs={"ContentType": "application/jsonl"})
    if result.id_remap and any(int(k) != v for k, v in result.id_remap.items()):
        log.warning("Class ids had gaps; remapped to 0..%d: %s", result.num_classes - 1, result.id_remap)
    log.info(
        "Split %d partitions (%s): %d train, %d validation, %d classes %s",
        len(partitions), ", ".join(_partition_date(u) for u in partitions),
        result.num_training_samples, result.num_validation_samples, result.num_classes, result.class_map,
    )
    return {
        "train_uri": cfg.train_manifest_uri,
        "validation_uri": cfg.validation_manifest_uri,
        "partitions": [_partition_date(u) for u in partitions],
        "num_classes": result.num_classes,
        "num_training_samples": result.num_training_samples,
        "num_validation_samples": result.num_validation_samples,
        "class_map": {str(k): v for k, v in result.class_map.items()},
        "fingerprint": _fingerprint(cfg, digest, result.num_classes, result.num_training_samples),
    }


def _fingerprint(cfg: PipelineConfig, digest: Any, num_classes: int, num_training_samples: int) -> str:
    """The data and the settings that decide what a training job would learn, and for which endpoint."""
    hp = dataclasses.replace(cfg.training.hyperparameters, num_classes=num_classes,
                             num_training_samples=num_training_samples)
    digest.update(json.dumps([cfg.pipeline_name, cfg.endpoint_name, cfg.image_uri.split("/")[-1],
                              cfg.label_attribute, hp.to_sagemaker()],
                             sort_keys=True).encode())
    return digest.hexdigest()


def _marker_uri(cfg: PipelineConfig, fingerprint: str) -> str:
    return f"{cfg.s3_root}/trained/{fingerprint}.json"


def is_own_record(cfg: PipelineConfig, record: dict[str, Any]) -> bool:
    """True when a training record was written by this run (any try of it, before or after a clear).

    A run's identity is its base job name (``cfg.job_name``: the pipeline and the run's stamp),
    which every try and every clear of the run shares. The job that actually trained may be a
    retry's timestamped ``<base>-<10 digits>`` (the provider's name for a job whose name is
    taken), so the job name alone would make a run's own training look like another run's.
    Records carry ``run_job_name`` (the base) for an exact comparison; older records have only
    ``job_name``, recognised as the run's base or one of its retry names.
    """
    run_job = record.get("run_job_name")
    if run_job is not None:
        return run_job == cfg.job_name
    job_name = record.get("job_name")
    return isinstance(job_name, str) and is_run_job(job_name, cfg.job_name)


def already_trained(cfg: PipelineConfig, s3_client: Any, manifests: dict[str, Any]) -> dict[str, Any] | None:
    """The record of another run's training on exactly this data and settings, if there is one.

    A run's own record does not count, whichever try's job trained: a rerun of the same run must
    reuse its job and go on to deploy, not skip (``train`` finds the run's completed job, the
    deploy steps reuse what exists).
    """
    uri = _marker_uri(cfg, manifests["fingerprint"])
    if not s3io.exists(s3_client, uri):
        return None
    record = json.loads(s3io.read_bytes(s3_client, uri))
    if is_own_record(cfg, record):
        log.info("Training record %s is this run's own (job %s): training is reused, not skipped", uri,
                 record.get("job_name"))
        return None
    log.info("Skipping training: %s already trained on exactly this data and these settings "
             "(fingerprint %s, validation:mAP %s)", record.get("job_name"), manifests["fingerprint"][:12],
             record.get("validation_map"))
    return record


def record_trained(cfg: PipelineConfig, s3_client: Any, manifests: dict[str, Any], trained: dict[str, Any]) -> str:
    """Remember that this run's job trained on this data, so identical retrains are skipped."""
    job = trained.get("Training", trained)
    uri = _marker_uri(cfg, manifests["fingerprint"])
    if not s3io.exists(s3_client, uri):
        s3io.put_json(s3_client, uri, {"job_name": job.get("TrainingJobName"), "run_job_name": cfg.job_name,
                                       "run_id": cfg.run.run_id,
                                       "partitions": manifests.get("partitions"),
                                       "validation_map": final_metric(job)})
    return uri
