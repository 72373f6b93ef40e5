"""Shim: manifests moved to ``core/manifest_parse``, ``core/manifest``, ``core/manifest_refs`` and
``core/converters`` (issue 10). Removed by the lead's codemod; import the new modules."""

from sagemaker_vision.core.class_map import ClassIdRemap, normalise_class_ids  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.core.converters import (  # noqa: F401  (shim, removed by the lead)
    CocoConversion,
    LabelStudioConversion,
    from_coco,
    from_label_studio,
)
from sagemaker_vision.core.manifest import (  # noqa: F401  (shim, removed by the lead)
    OBJECT_DETECTION_TYPE,
    OBJECT_DETECTION_TYPES,
    ManifestStats,
    SplitResult,
    check_label_attribute,
    split_manifest,
    validate_manifest,
)
from sagemaker_vision.core.manifest_parse import (  # noqa: F401  (shim, removed by the lead)
    MAX_EXACT_INT,
    MAX_KEPT_PROBLEMS,
    MAX_LINE_BYTES,
    MAX_LINE_CHARS,
    MAX_LISTED_PROBLEMS,
    LineError,
    ManifestError,
    ManifestProblem,
    dumps_line,
    iter_lines,
    load_document,
    load_line,
    parse_json,
    parse_line,
    write_manifest,
)
from sagemaker_vision.core.manifest_refs import rewrite_source_refs  # noqa: F401  (shim, removed by the lead)
