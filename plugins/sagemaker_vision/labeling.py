"""Shim: the ``label`` stage moved to ``pipeline/label`` (issue 10). Removed by the lead."""

from sagemaker_vision.pipeline.label import (  # noqa: F401  (shim, removed by the lead)
    BACKEND_TASKS,
    LABELS_ASSET,
    PipelineGroundTruthOperator,
    PipelineLabelStudioOperator,
    choose_label_backend,
    count_source_images,
    import_labels,
    import_labels_task,
    label_images,
    publish_labels,
    publish_manifest,
    synced_images,
)
