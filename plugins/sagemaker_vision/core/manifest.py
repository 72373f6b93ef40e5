"""Ground Truth augmented manifests for bounding boxes: the label attribute, validation and split.

Every labelling backend (Ground Truth, Label Studio, an imported manifest, a COCO file) ends in
one SageMaker Ground Truth *augmented manifest*: JSON Lines, one image per line::

    {"source-ref": "s3://bucket/images/a.jpg",
     "<attr>": {"image_size": [{"width": 640, "height": 480, "depth": 3}],
                "annotations": [{"class_id": 0, "left": 10, "top": 20, "width": 30, "height": 40}]},
     "<attr>-metadata": {"objects": [{"confidence": 1.0}], "class-map": {"0": "circle"},
                         "type": "groundtruth/object-detection", "human-annotated": "yes",
                         "creation-date": "2026-11-01T00:00:00.000000", "job-name": "labeling-job/x"}}

The built-in Object Detection algorithm reads it through an ``AugmentedManifestFile`` channel
with ``AttributeNames=["source-ref", "<attr>"]``. Boxes are in pixels of the original image.
Lines are read by the one parser (:mod:`sagemaker_vision.core.manifest_parse`).

Label attribute
    :func:`label_attribute_problem` is the one rule for ``<attr>``: the params, the config, the
    Ground Truth request and every manifest check use it.

Validation
    :func:`validate_manifest` and :func:`split_manifest` stream the lines. Memory stays constant
    except for one 64-bit integer per line (the first 8 bytes of a SHA-256 of the source-ref,
    used to find duplicates: about 80 bytes a line, so 80 MB per million lines). Every problem
    is collected, and one :class:`ManifestError` at the end lists them all as
    ``file:line: field: message``.

Class ids
    The algorithm wants ids ``0..num_classes-1``; the per-line class-maps must agree and their
    union is the manifest's class map (:mod:`sagemaker_vision.core.class_map`). No class is ever
    dropped, so ``num_classes`` is the size of the class map. :func:`split_manifest` remaps gapped
    ids while it writes, so it must know the full class map up front: pass ``class_map=`` (e.g.
    ``validate_manifest(...).class_map``) when ids may be gapped; without it a gapped union is an
    error saying so.

Split
    A line goes to validation when ``int.from_bytes(sha256(seed + source_ref)[:8], "big") / 2**64
    < validation_fraction``: deterministic, independent of line order, and stable when lines
    are added (an old line never changes side). See :func:`split_manifest` for the one
    exception that keeps both sides non-empty on tiny manifests.

Publishing
    :func:`split_manifest` writes while it validates, so on a :class:`ManifestError` its outputs
    are half written. Callers must write to temporary objects (a temp file, or a staging S3 key)
    and publish them only when the call returns.

Pure Python (no Airflow, no AWS): S3 I/O is the callers' job.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from sagemaker_vision.core.class_map import ClassMaps, normalise_class_ids
from sagemaker_vision.core.manifest_checks import annotation_problems, image_size_problems
from sagemaker_vision.core.manifest_parse import (
    COMPACT,
    MISSING,
    LineError,
    ManifestError,
    ManifestProblem,
    Problems,
    json_type,
    parse_record,
    short,
)
from sagemaker_vision.core.manifest_refs import s3_ref_problem

__all__ = [
    "LABEL_ATTRIBUTE_RE", "MAX_LABEL_ATTRIBUTE", "OBJECT_DETECTION_TYPE", "OBJECT_DETECTION_TYPES",
    "ManifestStats", "SplitResult", "check_label_attribute", "label_attribute_problem", "split_manifest",
    "split_manifests", "validate_manifest",
]

OBJECT_DETECTION_TYPE = "groundtruth/object-detection"
# Ground Truth writes "groundtruth/object-detection"; the built-in algorithm's own augmented-manifest
# example (SageMaker guide, object-detection.md, "Train with the augmented manifest image format")
# writes "groundtruth/object_detection". The algorithm ignores the metadata, so both are accepted.
OBJECT_DETECTION_TYPES = frozenset((OBJECT_DETECTION_TYPE, "groundtruth/object_detection"))

_NUMBER_TYPES = frozenset((int, float))  # exact types: a JSON true/false is not a coordinate
_UNPACK_U64 = struct.Struct(">Q").unpack_from


# Ground Truth's LabelAttributeName (CreateLabelingJob API reference): 1-127 letters, digits and
# inner hyphens. The same name keys the labels in every manifest this package reads or writes.
LABEL_ATTRIBUTE_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_LABEL_ATTRIBUTE = 127


def label_attribute_problem(label_attribute: Any) -> str | None:
    """Why ``label_attribute`` cannot name a manifest's labels, or None when it can: THE one rule.

    The params, :class:`~sagemaker_vision.core.config.PipelineConfig`, the Ground Truth request
    builder and every manifest check use it, so a name passes all of them or none. Ground Truth
    takes 1-127 letters, digits and inner hyphens; it owns ``<attr>-metadata`` (so no
    ``-metadata`` anywhere in the name) and reserves a trailing ``-ref`` for semantic-segmentation
    labels that point at another S3 object; ``source-ref`` and ``source`` are the image reference.
    """
    if not isinstance(label_attribute, str) or not label_attribute.strip():
        return f"is required: a non-empty string, got {short(label_attribute)}"
    if label_attribute in ("source-ref", "source"):
        return f"{label_attribute!r} is the image reference, not a label attribute"
    if len(label_attribute) > MAX_LABEL_ATTRIBUTE or not LABEL_ATTRIBUTE_RE.match(label_attribute):
        return (f"{short(label_attribute)} must be 1-{MAX_LABEL_ATTRIBUTE} letters, digits and inner hyphens "
                "(Ground Truth's LabelAttributeName)")
    if "-metadata" in label_attribute or label_attribute.endswith("-ref"):
        return (f"{label_attribute!r} may not end in -metadata or -ref, nor contain -metadata (Ground Truth "
                "writes <attr>-metadata itself; a trailing -ref marks semantic-segmentation labels, not boxes)")
    return None


def check_label_attribute(label_attribute: Any) -> str:
    """Return ``label_attribute`` if :func:`label_attribute_problem` finds nothing, else raise ManifestError."""
    problem = label_attribute_problem(label_attribute)
    if problem:
        raise ManifestError([ManifestProblem(None, "label_attribute", problem, "<arguments>")])
    return label_attribute



# --------------------------------------------------------------------------------------------
# Validation and split


@dataclass(frozen=True)
class ManifestStats:
    """What a valid manifest holds. Ids are the manifest's own (before any remap)."""

    num_lines: int
    num_boxes: int
    class_map: dict[int, str]
    class_counts: dict[int, int]  # boxes per class id; 0 for a class that has none
    images_without_boxes: int

    @property
    def num_classes(self) -> int:
        return len(self.class_map)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (string keys), small enough for XCom."""
        return {
            "num_lines": self.num_lines,
            "num_boxes": self.num_boxes,
            "num_classes": self.num_classes,
            "class_map": {str(k): v for k, v in self.class_map.items()},
            "class_counts": {str(k): v for k, v in self.class_counts.items()},
            "images_without_boxes": self.images_without_boxes,
        }


@dataclass(frozen=True)
class SplitResult:
    """The outcome of :func:`split_manifest`; ``class_map`` is contiguous (ids 0..n-1)."""

    num_classes: int
    num_training_samples: int
    num_validation_samples: int
    class_map: dict[int, str]
    id_remap: dict[int, int]
    stats: ManifestStats = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (string keys), small enough for XCom."""
        return {
            "num_classes": self.num_classes,
            "num_training_samples": self.num_training_samples,
            "num_validation_samples": self.num_validation_samples,
            "class_map": {str(k): v for k, v in self.class_map.items()},
            "id_remap": {str(k): v for k, v in self.id_remap.items()},
            "stats": self.stats.to_dict(),
        }


@dataclass
class _Side:
    """One output of the split, holding back a single line (see _scan)."""

    out: IO[str]
    count: int = 0
    held: str | None = None
    held_key: int = 0


def _scan(parts: Sequence[tuple[str, Iterable[str | bytes]]], *, label_attribute: str, seed: str = "",
          class_map: Mapping[int, str] | Mapping[str, str] | None = None,
          validation_fraction: float | None = None, train_out: IO[str] | None = None,
          validation_out: IO[str] | None = None, remap_gaps: bool = False) -> tuple[ManifestStats, SplitResult | None]:
    """The one pass behind validate_manifest, split_manifest and split_manifests (split when outputs are given).

    ``parts`` are ``(source, lines)``, read one after the other as one manifest, each problem naming
    its own source and line. ``remap_gaps``: a split whose class ids turn out gapped (and nothing
    else wrong) returns ``(stats, None)`` instead of failing, for a second pass with ``class_map``.
    """
    attr = check_label_attribute(label_attribute)
    meta_attr = attr + "-metadata"
    problems = Problems(parts[0][0] if parts else "<manifest>")
    add = problems.add
    empty_parts: list[str] = []

    def numbered() -> Iterator[tuple[int, str | bytes]]:
        for name, part in parts:
            problems.source = name
            before = num_lines
            yield from enumerate(part, 1)
            if num_lines == before:
                empty_parts.append(name)

    remap: dict[int, int] | None = None
    fixed: dict[int, str] | None = None
    if class_map is not None:
        normalised = normalise_class_ids(class_map)
        fixed = {old: normalised.class_map[new] for old, new in normalised.id_remap.items()}
        if not normalised.is_identity:
            remap = normalised.id_remap
    classes = ClassMaps(meta_attr, problems, fixed)
    ids_of = classes.ids_of

    splitting = train_out is not None
    threshold = math.ceil((validation_fraction or 0.0) * 2**64) if splitting else 0
    # Written to only when splitting; always sides, so that the loop needs no None checks.
    train = _Side(train_out if train_out is not None else io.StringIO())
    valid = _Side(validation_out if validation_out is not None else io.StringIO())
    seed_bytes = seed.encode()
    sha256 = hashlib.sha256
    unpack = _UNPACK_U64
    number_types = _NUMBER_TYPES
    seen: set[int] = set()
    counts: dict[int, int] = {}
    counts_get = counts.get
    num_lines = num_boxes = no_boxes = 0
    label_path = attr
    size_path = f"{attr}.image_size"
    anns_path = f"{attr}.annotations"

    for lineno, raw in numbered():
        # The one parser (parse_line): what is validated here is exactly what is written out.
        try:
            parsed = parse_record(raw, lineno == 1)
        except LineError as exc:
            add(lineno, exc.field, exc.message)
            num_lines += 1
            continue
        if parsed is None:
            continue  # blank lines are tolerated (a trailing newline, an editor's empty line)
        text, rec = parsed
        num_lines += 1

        # source-ref: an s3:// object, once per manifest.
        ref = rec.get("source-ref", MISSING)
        key = 0
        if (type(ref) is str and ref.startswith("s3://") and 5 < ref.find("/", 5) < len(ref) - 1
                and ref[-1] != "/"):
            key = unpack(sha256(seed_bytes + ref.encode()).digest())[0]
            if key in seen:
                add(lineno, "source-ref", f"duplicate {ref!r}: already on an earlier line")
            else:
                seen.add(key)
        elif ref is MISSING:
            add(lineno, "source-ref", "missing")
        else:
            add(lineno, "source-ref", s3_ref_problem(ref) or "invalid")

        # <attr>-metadata: class-map (agreeing with every other line) and the job type.
        meta = rec.get(meta_attr, MISSING)
        ids: frozenset[int] | None = None
        if type(meta) is dict:
            ids = ids_of(meta.get("class-map"), lineno)
            job_type = meta.get("type")
            if job_type is not None and (type(job_type) is not str or job_type not in OBJECT_DETECTION_TYPES):
                add(lineno, f"{meta_attr}.type",
                    f"must be {' or '.join(map(repr, sorted(OBJECT_DETECTION_TYPES)))} for bounding boxes, "
                    f"got {short(job_type)}")
        elif meta is MISSING:
            add(lineno, meta_attr, "missing")
        else:
            add(lineno, meta_attr, f"must be an object, got {json_type(meta)}")

        # <attr>: image_size and the boxes inside it.
        label = rec.get(attr, MISSING)
        anns: Any = None
        if type(label) is dict:
            sizes = label.get("image_size", MISSING)
            width = height = None
            if type(sizes) is list and len(sizes) == 1 and type(size := sizes[0]) is dict:
                w_, h_, d_ = size.get("width"), size.get("height"), size.get("depth")
                if (type(w_) is int and w_ > 0 and type(h_) is int and h_ > 0
                        and (d_ is None or (type(d_) is int and d_ > 0))):
                    width, height = w_, h_
            if width is None:
                image_size_problems(add, lineno, size_path, sizes)
            anns = label.get("annotations", MISSING)
            if type(anns) is list:
                left: Any
                top: Any
                w: Any
                h: Any
                for i, ann in enumerate(anns):
                    # Fast path for a well-formed box; anything else gets the precise report.
                    if type(ann) is dict:
                        cid = ann.get("class_id")
                        left, top, w, h = ann.get("left"), ann.get("top"), ann.get("width"), ann.get("height")
                        if (type(cid) is int and ids is not None and cid in ids
                                and type(left) in number_types and type(top) in number_types
                                and type(w) in number_types and type(h) in number_types
                                and width is not None and height is not None
                                and 0 <= left and 0 <= top and 0 < w and 0 < h
                                and left + w <= width and top + h <= height):
                            counts[cid] = counts_get(cid, 0) + 1
                            continue
                    annotation_problems(add, lineno, f"{anns_path}[{i}]", ann, ids, width, height)
                num_boxes += len(anns)
                if not anns:
                    no_boxes += 1
                objects = meta.get("objects") if type(meta) is dict else None
                if objects is not None and (type(objects) is not list or len(objects) != len(anns)):
                    add(lineno, f"{meta_attr}.objects",
                        f"must be a list with one entry per annotation ({len(anns)}), got {short(objects)}")
            elif anns is MISSING:
                add(lineno, anns_path, "missing")
            else:
                add(lineno, anns_path, f"must be a list, got {json_type(anns)}")
        elif label is MISSING:
            add(lineno, label_path, f"missing (is label_attribute {attr!r} right? keys: {sorted(rec)[:8]})")
        else:
            add(lineno, label_path, f"must be an object, got {json_type(label)}")

        if not splitting or problems.count:
            continue  # once anything is wrong the outputs are garbage anyway: stop writing

        if remap is None:
            out_text = text if text[-1] == "\n" else text + "\n"
        else:
            for ann in anns:
                ann["class_id"] = remap[ann["class_id"]]
            meta["class-map"] = {str(remap[int(k)]): v for k, v in meta["class-map"].items()}
            out_text = COMPACT.encode(rec) + "\n"

        # Each side holds back the one line nearest the threshold (smallest train key, largest
        # validation key) until the end: if hashing left the other side empty, that line moves
        # over, which keeps both splits non-empty for tiny manifests without a second pass.
        side = valid if key < threshold else train
        side.count += 1
        if side.held is None:
            side.held, side.held_key = out_text, key
        elif (key < side.held_key) if side is train else (key > side.held_key):
            side.out.write(side.held)
            side.held, side.held_key = out_text, key
        else:
            side.out.write(out_text)

    for name in empty_parts:  # every file must hold lines: an empty one is a broken export, not "no news"
        problems.source = name
        add(None, "", "the manifest is empty (no non-blank lines)")
    problems.source = " + ".join(name for name, _ in parts)
    if splitting and num_lines == 1:
        add(None, "", "a train/validation split needs at least 2 images, the manifest has 1")
    if not problems.count and not classes.names:
        add(None, f"{meta_attr}.class-map", "no line names any class; nothing to train on")
    union_ids = sorted(classes.names)
    gapped = splitting and not problems.count and fixed is None and union_ids != list(range(len(union_ids)))
    if gapped and not remap_gaps:
        add(None, f"{meta_attr}.class-map",
            f"class ids {union_ids} are not contiguous 0..{len(union_ids) - 1} as the algorithm needs; "
            "pass class_map=validate_manifest(...).class_map to split_manifest to remap them")
    problems.raise_if_any()

    class_counts = {cid: counts.get(cid, 0) for cid in union_ids}
    stats = ManifestStats(num_lines=num_lines, num_boxes=num_boxes,
                          class_map=dict(sorted(classes.names.items())), class_counts=class_counts,
                          images_without_boxes=no_boxes)
    if not splitting or gapped:
        return stats, None

    if valid.count == 0 and train.count >= 2:
        train.count -= 1
        valid.count += 1
        valid.held, train.held = train.held, None
    elif train.count == 0 and valid.count >= 2:
        valid.count -= 1
        train.count += 1
        train.held, valid.held = valid.held, None
    for side in (train, valid):
        if side.held is not None:
            side.out.write(side.held)
    normalised = normalise_class_ids(stats.class_map)
    return stats, SplitResult(
        num_classes=len(normalised.class_map),
        num_training_samples=train.count,
        num_validation_samples=valid.count,
        class_map=normalised.class_map,
        id_remap=normalised.id_remap,
        stats=stats,
    )


def validate_manifest(lines: Iterable[str | bytes], *, label_attribute: str,
                      source: str = "<manifest>") -> ManifestStats:
    """Check every line of a bounding-box manifest; return its stats or raise one ManifestError.

    Streams ``lines`` (str or bytes, with or without newlines; blank lines are skipped) keeping
    one 64-bit digest per line for the duplicate check. ``source`` names the input in messages,
    e.g. the S3 URI.
    """
    stats, _ = _scan([(source, lines)], label_attribute=label_attribute)
    return stats


def split_manifest(lines: Iterable[str | bytes], *, label_attribute: str, validation_fraction: float,
                   train_out: IO[str], validation_out: IO[str], seed: str = "",
                   class_map: Mapping[int, str] | Mapping[str, str] | None = None,
                   source: str = "<manifest>") -> SplitResult:
    """Validate and split a manifest into train/validation in one streaming pass.

    A line goes to validation when the first 8 bytes of ``sha256(seed + source_ref)``, read as a
    big-endian integer over 2**64, are below ``validation_fraction`` (in (0, 0.5]). Lines are
    written as they were read (compact, one per line) unless class ids need remapping, in which
    case they are re-serialised with the new ids. ``class_map`` is the full class map when it is
    known up front (required if the ids are gapped, see the module docstring).

    Raises the same single ManifestError as :func:`validate_manifest`. The outputs are then
    half written: callers must write to temporary objects and publish them only on success.
    """
    _check_split(validation_fraction, train_out, validation_out, seed)
    _, result = _scan([(source, lines)], label_attribute=label_attribute, seed=seed,
                      class_map=class_map, validation_fraction=float(validation_fraction),
                      train_out=train_out, validation_out=validation_out)
    assert result is not None  # _scan splits whenever outputs are given
    return result


def _check_split(validation_fraction: Any, train_out: Any, validation_out: Any, seed: Any) -> None:
    if (isinstance(validation_fraction, bool) or not isinstance(validation_fraction, int | float)
            or not 0 < validation_fraction <= 0.5):
        raise ValueError(f"validation_fraction must be a number in (0, 0.5], got {validation_fraction!r}")
    if train_out is None or validation_out is None or train_out is validation_out:
        raise ValueError("train_out and validation_out must be two distinct writable text streams")
    if not isinstance(seed, str):
        raise ValueError(f"seed must be a string, got {short(seed)}")


def split_manifests(parts: Sequence[tuple[str, Callable[[], Iterable[str | bytes]]]], *, label_attribute: str,
                    validation_fraction: float, train_out: IO[str], validation_out: IO[str],
                    seed: str = "") -> SplitResult:
    """Validate and split one or more manifests, in one streaming pass unless class ids are gapped.

    ``parts`` are ``(source, open_lines)``: read in order as one manifest (a source-ref once in all
    of them, one class map for all), every problem naming its own source and line, and each
    source must hold lines. The split is :func:`split_manifest`'s. The lines are written while they
    are validated; only when the union of the class ids turns out gapped are the outputs emptied
    (they must be seekable: temp files) and every ``open_lines()`` read again, writing remapped ids
    as ``split_manifest(class_map=validate_manifest(...).class_map)`` does. Same output and errors as
    that validate-then-split, in half the reading when the ids are ``0..n-1``.
    """
    _check_split(validation_fraction, train_out, validation_out, seed)
    if not parts:
        raise ValueError("parts: at least one (source, open_lines) manifest to split")
    for out in (train_out, validation_out):
        if not out.seekable():
            raise ValueError("train_out and validation_out must be seekable (a temp file): a gapped class map "
                             "rewrites them")

    def scan(class_map: Mapping[int, str] | None) -> tuple[ManifestStats, SplitResult | None]:
        return _scan([(name, open_lines()) for name, open_lines in parts], label_attribute=label_attribute,
                     seed=seed, class_map=class_map, validation_fraction=float(validation_fraction),
                     train_out=train_out, validation_out=validation_out, remap_gaps=class_map is None)

    stats, result = scan(None)
    if result is None:  # gapped ids: the lines written carry the old ones
        for out in (train_out, validation_out):
            out.seek(0)
            out.truncate()
        _, result = scan(stats.class_map)
    assert result is not None  # _scan splits whenever outputs are given
    return result


