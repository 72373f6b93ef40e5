"""The ``label`` stage: every backend ends in one Ground Truth augmented manifest in S3.

``LabelImagesOperator`` is the pipeline's one ``label`` task. The ``label_backend`` param picks:

* ``import``: rewrite an existing manifest's ``source-ref``s to the synced images, checking
  that each image is really there;
* ``ground_truth``: a SageMaker Ground Truth bounding-box job (``ground_truth.py``);
* ``label_studio``: a Label Studio project on your own server (``label_studio.py``).

The two human backends wait deferrably: the backend operator's ``defer`` resumes this
operator's ``execute_complete``, which hands the event back to a fresh backend operator.
Whatever the backend, its manifest is validated (streaming) and then published, with one
server-side copy, at the partition's ``labels/dt=.../output.manifest``, the location the
``object_detection_labels`` Asset stands for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from airflow.sdk import Asset, BaseOperator

from sagemaker_vision import aws, labels, s3io
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


LABELS_ASSET = Asset(name="object_detection_labels", uri="s3://sagemaker-vision/object-detection/labels/")


def import_labels(cfg: PipelineConfig, s3_client: Any, out_uri: str | None = None) -> dict[str, Any]:
    """Write ``cfg.import_manifest`` to ``out_uri`` with its refs pointing at the synced images."""
    out_uri = out_uri or f"{cfg.labeling_work_prefix}import.manifest"
    source = _ReplayableLines(s3_client, cfg.import_manifest, "import_manifest")
    synced = {f"s3://{cfg.bucket}/{key}" for key, _ in s3io.list_keys(s3_client, cfg.raw_prefix)}
    if not synced:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    missing: list[str] = []
    count = 0
    with s3io.staged_upload(s3_client, out_uri) as out:
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
    log.info("Imported %d labeled images from %s", count, cfg.import_manifest)
    return {"manifest_uri": out_uri, "images": count}


def synced_images(cfg: PipelineConfig, s3_client: Any) -> list[str]:
    """The images of this run's partition, as s3:// URIs, in a stable order."""
    uris = sorted(
        f"s3://{cfg.bucket}/{key}"
        for key, _ in s3io.list_keys(s3_client, cfg.raw_prefix)
        if key.lower().endswith((".jpg", ".jpeg", ".png"))
    )
    if not uris:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    return uris


def count_source_images(cfg: PipelineConfig, s3_client: Any | None = None) -> int:
    """Images in ``image_source`` (what a Ground Truth job would be paid for), without copying any."""
    from sagemaker_vision import s3_sync

    include = "*.jpg,*.jpeg,*.png"
    if cfg.image_source.startswith("s3://"):
        bucket, prefix = s3io.split_uri(cfg.image_source, "image_source")
        return len(s3_sync.list_s3(s3_client or aws.client("s3"), bucket, prefix, include))
    return len(s3_sync.list_local(cfg.sync_source, include))


def publish_manifest(cfg: PipelineConfig, s3_client: Any, source_uri: str) -> dict[str, Any]:
    """Validate a backend's manifest, then copy it to the partition's published location."""
    stats = labels.validate_manifest(
        s3io.iter_lines(s3_client, source_uri, "manifest_uri"), label_attribute=cfg.label_attribute,
        source=source_uri,
    )
    if source_uri != cfg.labeled_manifest_uri:
        src_bucket, src_key = s3io.split_uri(source_uri)
        bucket, key = s3io.split_uri(cfg.labeled_manifest_uri)
        # One server-side copy: readers see the old manifest or the new one, never half of it.
        s3_client.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": src_bucket, "Key": src_key},
                              ContentType="application/jsonl", MetadataDirective="REPLACE")
    log.info("Published %d labeled images (%d boxes, classes %s) at %s", stats.num_lines, stats.num_boxes,
             stats.class_map, cfg.labeled_manifest_uri)
    return {
        "manifest_uri": cfg.labeled_manifest_uri,
        "images": stats.num_lines,
        "boxes": stats.num_boxes,
        "backend": cfg.label_backend,
        "source": source_uri,
    }


class LabelImagesOperator(BaseOperator):
    """Label this run's images with the backend the ``label_backend`` param names.

    Returns ``{"manifest_uri", "images", "boxes", "backend", "source"}``; the manifest is the
    Ground Truth augmented manifest at ``labels/dt=<partition>/output.manifest``.

    :param aws_conn_id: AWS connection for S3 and SageMaker.
    :param poll_seconds: how often the human backends check progress while deferred.
    """

    ui_color = "#e8f0d8"

    def __init__(self, *, aws_conn_id: str | None = "aws_default", poll_seconds: int = 60, **kwargs: Any):
        kwargs.setdefault("outlets", [LABELS_ASSET])
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.poll_seconds = poll_seconds

    def _config(self, context: Any) -> PipelineConfig:
        return PipelineConfig.from_context(context, self.aws_conn_id)

    def _backend(self, cfg: PipelineConfig, image_uris: list[str] | None) -> BaseOperator:
        """The backend operator for this run; it shares this task's id, so links and XComs land here."""
        if cfg.label_backend == "ground_truth":
            from sagemaker_vision.ground_truth import GroundTruthLabelingOperator
            from sagemaker_vision.requests import tags

            gt = cfg.ground_truth
            return GroundTruthLabelingOperator(
                task_id=self.task_id, job_name=cfg.labeling_job_name, role_arn=cfg.role_arn,
                output_path=cfg.labeling_work_prefix + "ground-truth/", label_attribute=cfg.label_attribute,
                labels=list(cfg.label_classes), task_description=gt.task_description,
                inputs_prefix=cfg.labeling_work_prefix + "inputs/", image_uris=image_uris,
                # Resuming after a deferral only describes the job, so no image listing is needed.
                input_manifest_uri=None if image_uris is not None else f"{cfg.labeling_work_prefix}inputs/resume",
                workteam_arn=gt.workteam_arn, workers_per_object=gt.workers_per_object,
                task_price_usd=gt.task_price_usd, task_time_limit_s=gt.task_time_limit_s,
                tags={t["Key"]: t["Value"] for t in tags(cfg)}, waiter_delay=self.poll_seconds,
                waiter_max_attempts=max(1, int(10 * 24 * 3600 / self.poll_seconds)),
                deferrable=True, aws_conn_id=self.aws_conn_id,
            )
        if cfg.label_backend == "label_studio":
            from sagemaker_vision.label_studio import LabelStudioLabelingOperator

            ls = cfg.label_studio
            return LabelStudioLabelingOperator(
                task_id=self.task_id, project_title=ls.project_title, labels=list(cfg.label_classes),
                output_manifest_uri=cfg.labeling_work_prefix + "label-studio.manifest",
                label_attribute=cfg.label_attribute, images_prefix=cfg.raw_prefix,
                min_annotations=ls.min_annotations, poke_interval=self.poll_seconds,
                timeout=ls.timeout_hours * 3600, deferrable=True, label_studio_conn_id=ls.conn_id,
                aws_conn_id=self.aws_conn_id,
            )
        raise ConfigError("label_backend", f"{cfg.label_backend!r} has no deferrable backend")

    def execute(self, context: Any) -> dict[str, Any]:
        cfg = self._config(context)
        s3 = aws.client("s3", self.aws_conn_id)
        if cfg.label_backend == "import":
            source = import_labels(cfg, s3)["manifest_uri"]
        else:
            images = synced_images(cfg, s3) if cfg.label_backend == "ground_truth" else None
            # Defers (raises TaskDeferred) while humans label; execute_complete resumes here.
            source = _manifest_uri(self._backend(cfg, images).execute(context))
        return self._publish(cfg, s3, source, context)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        cfg = self._config(context)
        backend = self._backend(cfg, None)
        source = _manifest_uri(backend.execute_complete(context, event))
        return self._publish(cfg, aws.client("s3", self.aws_conn_id), source, context)

    def _publish(self, cfg: PipelineConfig, s3: Any, source: str, context: Any) -> dict[str, Any]:
        result = publish_manifest(cfg, s3, source)
        events = context.get("outlet_events")
        if events is not None:
            events[LABELS_ASSET].extra = {"manifest_uri": result["manifest_uri"], "images": result["images"],
                                          "partition": cfg.run.partition}
        return result


def _manifest_uri(result: Any) -> str:
    return result["manifest_uri"] if isinstance(result, dict) else result


