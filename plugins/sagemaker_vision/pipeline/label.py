"""The ``label`` stage: every backend ends in one Ground Truth augmented manifest in S3.

:func:`label_images` builds the pipeline's ``label`` task group. Its ``choose_backend`` branch
runs exactly one backend, as a task of its own, so the UI shows which one ran:

* ``label.import``: rewrite an existing manifest's ``source-ref``s to the synced images, checking
  that each image is really there;
* ``label.ground_truth``: a SageMaker Ground Truth bounding-box job on a private or vendor work
  team (:class:`PipelineGroundTruthOperator`, over ``operators/ground_truth.py``);
* ``label.label_studio``: a Label Studio project on your own server
  (:class:`PipelineLabelStudioOperator`, over ``operators/label_studio.py``).

The two human backends wait deferrably, each resuming itself: no operator runs another's
``execute()`` (Airflow 3's executor safeguard forbids it). Whatever ran, ``label.publish``
validates its manifest (streaming) and publishes it, with one server-side copy, at the
partition's ``labels/dt=.../output.manifest``, under the location the pipeline's labels Asset
(``<pipeline>.labels``, :func:`labels_asset`) stands for; it is the Asset's only producer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, TaskGroup, task

from sagemaker_vision.core.config import PipelineConfig
from sagemaker_vision.core.manifest import validate_manifest
from sagemaker_vision.core.manifest_parse import load_line
from sagemaker_vision.core.manifest_refs import rewrite_source_refs
from sagemaker_vision.core.requests import tags
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import s3 as s3io
from sagemaker_vision.hooks.s3_sync import list_local, list_s3
from sagemaker_vision.operators.ground_truth import GroundTruthLabelingOperator
from sagemaker_vision.operators.label_studio import LabelStudioLabelingOperator
from sagemaker_vision.pipeline.context import pipeline_config
from sagemaker_vision.pipeline.images import bad_image_uris, report_unlabeled

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class _ReplayableLines:
    """Re-reads the source on each iteration: finding the common prefix needs two passes,
    and holding a large manifest in memory is what streaming is for."""

    def __init__(self, s3_client: Any, location: str, field_name: str):
        self.s3_client, self.location, self.field_name = s3_client, location, field_name

    def __iter__(self) -> Iterator[bytes]:
        # Raw bytes: the manifest parser decodes them, so a line that is not UTF-8 is reported
        # with its file and line instead of raising UnicodeDecodeError here.
        yield from s3io.iter_source_lines(self.s3_client, self.location, self.field_name)


def labels_asset(pipeline_name: str, uri: str) -> Asset:
    """A pipeline's labels Asset, ``<pipeline>.labels``: its ``label.publish`` task updates it and its
    retrain DAG is scheduled on it. ``uri`` is where the labels are (``s3://<bucket>/<prefix>/labels/``)."""
    return Asset(name=f"{pipeline_name}.labels", uri=uri)


def import_labels(cfg: PipelineConfig, s3_client: Any, out_uri: str | None = None) -> dict[str, Any]:
    """Write ``cfg.import_manifest`` to ``out_uri`` with its refs pointing at the synced images."""
    out_uri = out_uri or f"{cfg.labeling_work_prefix}import.manifest"
    source = _ReplayableLines(s3_client, cfg.import_manifest, "import_manifest")
    synced = {f"s3://{cfg.bucket}/{key}" for key, _ in s3io.list_keys(s3_client, cfg.raw_prefix)}
    if not synced:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    bad = bad_image_uris(cfg, s3_client)  # only under bad_image_policy=skip does a run get this far with any
    missing: list[str] = []
    count = 0
    with s3io.staged_upload(s3_client, out_uri) as out:
        rewritten = rewrite_source_refs(
            source, old_prefix=cfg.import_source_prefix, new_prefix=cfg.raw_prefix, source=cfg.import_manifest
        )
        for lineno, line in enumerate(rewritten, start=1):
            ref = json.loads(line)["source-ref"]
            if ref in bad:
                log.warning("Leaving out %s:%d: %s is a bad image (see the image report)", cfg.import_manifest,
                            lineno, ref)
                continue
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
    """The images of this run's partition, as s3:// URIs, in a stable order, without those the
    run's ``validate_images`` report calls bad (``bad_image_policy=skip``)."""
    bad = bad_image_uris(cfg, s3_client)
    uris = sorted(
        uri for key, _ in s3io.list_keys(s3_client, cfg.raw_prefix)
        if key.lower().endswith((".jpg", ".jpeg", ".png")) and (uri := f"s3://{cfg.bucket}/{key}") not in bad
    )
    if not uris:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    return uris


def count_source_images(cfg: PipelineConfig, s3_client: Any | None = None) -> int:
    """Images in ``image_source`` (what a Ground Truth job would be paid for), without copying any."""
    include = "*.jpg,*.jpeg,*.png"
    if cfg.image_source.startswith("s3://"):
        bucket, prefix = s3io.split_uri(cfg.image_source, "image_source")
        return len(list_s3(s3_client or aws.client("s3"), bucket, prefix, include))
    return len(list_local(cfg.sync_source, include))


def publish_manifest(cfg: PipelineConfig, s3_client: Any, source_uri: str) -> dict[str, Any]:
    """Validate a backend's manifest, then copy it to the partition's published location."""
    stats = validate_manifest(
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
    _report_unlabeled(cfg, s3_client, source_uri)
    return {
        "manifest_uri": cfg.labeled_manifest_uri,
        "images": stats.num_lines,
        "boxes": stats.num_boxes,
        "backend": cfg.label_backend,
        "source": source_uri,
    }


_UNLABELED_REASONS = {
    "import": "no line for it in import_manifest",
    "ground_truth": "Ground Truth returned no label for it (a failed object: see the job's LabelCounters)",
    "label_studio": "no annotation for it in the Label Studio export",
}


def _report_unlabeled(cfg: PipelineConfig, s3_client: Any, manifest_uri: str) -> None:
    """Images of the partition that validated but have no line: reported (S3 and log), never silent."""
    lines = enumerate(s3io.iter_lines(s3_client, manifest_uri, "manifest_uri"), start=1)
    refs = (rec["source-ref"] for lineno, raw in lines
            if (rec := load_line(raw, source=manifest_uri, lineno=lineno)) is not None)
    reason = _UNLABELED_REASONS.get(cfg.label_backend, "no label")
    if cfg.label_backend == "import":
        reason = f"{reason} {cfg.import_manifest}"
    try:
        images = synced_images(cfg, s3_client)
    except ConfigError:  # nothing synced under this partition: nothing left out
        return
    report_unlabeled(cfg, s3_client, images, refs, backend=cfg.label_backend, reason=reason)


# The backend task of each label_backend, inside the label task group.
BACKEND_TASKS = {"import": "import", "ground_truth": "ground_truth", "label_studio": "label_studio"}
# Placeholders for the arguments the pipeline operators fill from the run's config at run time.
_AT_RUN_TIME = "resolved-at-run-time"


def _run_config(context: Context, aws_conn_id: str | None) -> PipelineConfig:
    return pipeline_config(context, aws_conn_id)


class PipelineGroundTruthOperator(GroundTruthLabelingOperator):
    """The pipeline's Ground Truth task: a :class:`GroundTruthLabelingOperator` whose arguments
    come from the run's :class:`PipelineConfig` (params), read when the task runs.

    It creates or reuses the job ``cfg.labeling_job_name`` for the partition's synced images,
    waits deferrably for a budget that covers the job's own limits, and returns the job's output
    manifest URI for ``label.publish``.
    """

    def __init__(self, *, poll_seconds: int = 60, aws_conn_id: str | None = "aws_default", **kwargs: Any):
        kwargs.setdefault("deferrable", True)
        super().__init__(
            job_name=_AT_RUN_TIME, role_arn=_AT_RUN_TIME, output_path=_AT_RUN_TIME, label_attribute=_AT_RUN_TIME,
            labels=[], task_description=_AT_RUN_TIME, inputs_prefix=_AT_RUN_TIME, input_manifest_uri=_AT_RUN_TIME,
            waiter_delay=poll_seconds, aws_conn_id=aws_conn_id, **kwargs,
        )

    def _configure(self, context: Context, *, with_images: bool) -> None:
        """Fill the arguments from the run's config; list the synced images only to create a job."""
        cfg = _run_config(context, self.aws_conn_id)
        gt = cfg.ground_truth
        self.job_name = cfg.labeling_job_name
        self.role_arn = cfg.role_arn
        self.output_path = cfg.ground_truth_output_prefix
        self.label_attribute = cfg.label_attribute
        self.labels = list(cfg.label_classes)
        self.task_description = gt.task_description
        self.inputs_prefix = cfg.labeling_work_prefix + "inputs/"
        self.workteam_arn = gt.workteam_arn
        self.workers_per_object = gt.workers_per_object
        self.task_time_limit_s = gt.task_time_limit_s
        self.tags = {t["Key"]: t["Value"] for t in tags(cfg)}
        if with_images and self.hook.find_labeling_job(self.job_name) is None:
            self.image_uris, self.input_manifest_uri = synced_images(cfg, aws.client("s3", self.aws_conn_id)), None
        else:
            # Reusing or resuming only describes the job: no image listing is needed.
            self.image_uris, self.input_manifest_uri = None, f"{cfg.labeling_work_prefix}inputs/input.manifest"

    def execute(self, context: Context) -> str:
        self._configure(context, with_images=True)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        self._configure(context, with_images=False)
        return super().execute_complete(context, event)


class PipelineLabelStudioOperator(LabelStudioLabelingOperator):
    """The pipeline's Label Studio task: a :class:`LabelStudioLabelingOperator` whose arguments
    come from the run's :class:`PipelineConfig`, read when the task runs. It waits up to
    ``label_studio_timeout_hours`` and returns ``{"manifest_uri", ...}`` for ``label.publish``."""

    def __init__(self, *, poll_seconds: float = 60, aws_conn_id: str | None = "aws_default", **kwargs: Any):
        super().__init__(
            project_title=_AT_RUN_TIME, labels=[], output_manifest_uri=_AT_RUN_TIME, images_prefix=_AT_RUN_TIME,
            poke_interval=poll_seconds, deferrable=True, aws_conn_id=aws_conn_id, **kwargs,
        )

    def _configure(self, context: Context) -> None:
        cfg = _run_config(context, self.aws_conn_id)
        ls = cfg.label_studio
        self.project_title = ls.project_title
        self.labels = list(cfg.label_classes)
        self.output_manifest_uri = cfg.labeling_work_prefix + "label-studio.manifest"
        self.label_attribute = cfg.label_attribute
        # The partition's images less those validate_images called bad (bad_image_policy=skip),
        # so annotators never see an image the pipeline refused.
        self.image_uris, self.images_prefix = synced_images(cfg, self.s3), None
        self.min_annotations = ls.min_annotations
        self.timeout = ls.timeout_hours * 3600
        self.label_studio_conn_id = ls.conn_id
        self.presign_aws_conn_id = ls.presign_aws_conn_id
        # The hooks are built from the connection ids: drop those made before they were known.
        for cached in ("hook", "reader_hook", "presign_client"):
            self.__dict__.pop(cached, None)

    def execute(self, context: Context) -> dict[str, Any]:
        self._configure(context)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         deadline: float | None = None, expected: int | None = None) -> dict[str, Any]:
        # deadline/expected: the defer() kwargs of LabelStudioLabelingOperator._defer, handed back on resume.
        self._configure(context)
        return super().execute_complete(context, event, deadline=deadline, expected=expected)


def _backend_task_id(sibling_task_id: str, cfg: PipelineConfig) -> str:
    """The id of the backend task ``label_backend`` names, in the same task group as ``sibling_task_id``."""
    group = sibling_task_id.rpartition(".")[0]
    return f"{group}.{BACKEND_TASKS[cfg.label_backend]}" if group else BACKEND_TASKS[cfg.label_backend]


@task.branch(task_id="choose_backend")
def choose_label_backend(**context: Any) -> str:
    """Run the backend task that ``label_backend`` names; the others are skipped."""
    cfg = pipeline_config(context)
    return _backend_task_id(context["ti"].task_id, cfg)


@task(task_id="import")
def import_labels_task(**context: Any) -> dict[str, Any]:
    """The import backend: an existing manifest, its refs rewritten to the synced images."""
    cfg = pipeline_config(context)
    return import_labels(cfg, aws.client("s3"))


@task(task_id="publish", trigger_rule="none_failed_min_one_success")
def publish_labels(**context: Any) -> dict[str, Any]:
    """Validate the manifest of the backend that ran, publish it, and update the labels Asset."""
    cfg = pipeline_config(context)
    ti = context["ti"]
    backend_task = _backend_task_id(ti.task_id, cfg)
    result = ti.xcom_pull(task_ids=backend_task)
    if result is None:
        raise ConfigError("label_backend", f"{backend_task} ran for label_backend={cfg.label_backend} "
                          "but returned no manifest")
    published = publish_manifest(cfg, aws.client("s3"), _manifest_uri(result))
    events = context.get("outlet_events")
    if events is not None:
        for asset in context["task"].outlets:  # the pipeline's labels Asset (label_images)
            events[asset].extra = {"manifest_uri": published["manifest_uri"], "images": published["images"],
                                   "partition": cfg.run.partition}
    return published


def label_images(asset: Asset, group_id: str = "label", poll_seconds: int = 60) -> tuple[Any, Any]:
    """Wire the ``label`` task group: branch → one backend task → publish (which updates ``asset``).

    Returns ``(group, published)``: chain upstream tasks to the group, and hand ``published``
    (the XCom ``{"manifest_uri", "images", "boxes", "backend", "source"}``) downstream.
    """
    with TaskGroup(group_id=group_id, tooltip="Label the run's images with the label_backend param's backend") as group:
        branch = choose_label_backend()
        backends = [
            import_labels_task(),
            PipelineGroundTruthOperator(task_id="ground_truth", poll_seconds=poll_seconds),
            PipelineLabelStudioOperator(task_id="label_studio", poll_seconds=poll_seconds),
        ]
        published = publish_labels.override(outlets=[asset])()
        branch >> backends
        backends >> published
    return group, published


def _manifest_uri(result: Any) -> str:  # an XCom value: the backend's dict, or a URI
    return result["manifest_uri"] if isinstance(result, dict) else result
