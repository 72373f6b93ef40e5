"""Converters: Label Studio exports and COCO files to Ground Truth manifest line dicts.

:func:`from_label_studio` and :func:`from_coco` turn the exports of those tools into manifest
line dicts (write them with :func:`~sagemaker_vision.core.manifest_parse.write_manifest`). Boxes
become whole pixels by rounding both edges half up (not the size), so touching boxes stay
touching; float noise of up to half a pixel past the border is clamped, and a box under one pixel
is widened to one pixel rather than dropped. Converters check everything first and raise one
ManifestError (``line`` is None; ``field`` names the task, image or annotation id) before
yielding. Image paths stay inside their prefix (no '..', '.', empty segment, absolute path,
backslash or percent-encoded separator).

Pure Python (no Airflow, no AWS).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sagemaker_vision.core.manifest import OBJECT_DETECTION_TYPE, check_label_attribute
from sagemaker_vision.core.manifest_parse import (
    MAX_EXACT_INT,
    Problems,
    finite_number,
    is_text,
    json_type,
    load_document,
    positive_int,
    short,
)
from sagemaker_vision.core.manifest_refs import checked_prefix, confined_ref, s3_ref_problem

__all__ = ["CocoConversion", "LabelStudioConversion", "from_coco", "from_label_studio"]


def _creation_date(value: str | None) -> str:
    # Ground Truth's format: naive UTC with microseconds, e.g. 2018-10-18T22:18:13.527256.
    return value if value is not None else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")



# --------------------------------------------------------------------------------------------
# Converters


def _pixel_span(start: Any, size: Any, total: int, scale: float) -> tuple[int, int] | str:
    """Edges ``start`` .. ``start + size`` (times ``scale``) as whole pixels inside ``0..total``.

    Both edges are rounded half up (rather than the size) so that adjacent boxes stay adjacent
    and a box that touches the border still does. Boxes poking out by up to half a pixel (float
    noise from the labelling UI) are clamped; a box under a pixel is widened to one pixel so that
    tiny objects are kept. Returns (offset, length) or a message saying what is wrong.
    """
    for value in (start, size):
        if not finite_number(value):
            return f"must be a finite number (integers within +-{MAX_EXACT_INT}), got {short(value)}"
    if size <= 0:
        return f"size must be positive, got {size}"
    lo, hi = start * scale, (start + size) * scale
    if lo < -0.5 or hi > total + 0.5:
        return f"box spans {lo:.2f}..{hi:.2f} px, outside the image (0..{total})"
    lo_px = min(max(math.floor(lo + 0.5), 0), total)
    hi_px = min(max(math.floor(hi + 0.5), 0), total)
    if hi_px <= lo_px:
        lo_px = min(lo_px, total - 1)
        hi_px = lo_px + 1
    return lo_px, hi_px - lo_px


@dataclass
class _Image:
    ref: str
    width: int
    height: int
    boxes: list[tuple[int, int, int, int, int]]  # class id, left, top, width, height


class _Conversion(Iterator[dict[str, Any]]):
    """Common part of the converters: iterates manifest line dicts, exposes what was done."""

    def __init__(self, label_attribute: str, class_map: dict[int, str], images: list[_Image],
                 job_name: str, creation_date: str | None) -> None:
        self.label_attribute = label_attribute
        self.class_map = class_map
        self.num_images = len(images)
        self.num_boxes = sum(len(img.boxes) for img in images)
        self._images = iter(images)
        self._class_map_json = {str(k): v for k, v in class_map.items()}
        self._job_name = job_name
        self._creation_date = _creation_date(creation_date)

    def __iter__(self) -> _Conversion:
        return self

    def __next__(self) -> dict[str, Any]:
        img = next(self._images)
        return {
            "source-ref": img.ref,
            self.label_attribute: {
                "image_size": [{"width": img.width, "height": img.height, "depth": 3}],
                "annotations": [
                    {"class_id": c, "left": x, "top": y, "width": w, "height": h}
                    for c, x, y, w, h in img.boxes
                ],
            },
            self.label_attribute + "-metadata": {
                "objects": [{"confidence": 1.0} for _ in img.boxes],
                "class-map": dict(self._class_map_json),
                "type": OBJECT_DETECTION_TYPE,
                "human-annotated": "yes",
                "creation-date": self._creation_date,
                "job-name": self._job_name,
            },
        }


def _class_names_map(class_names: Sequence[str] | None, seen: Iterable[str], arg: str) -> dict[str, int]:
    if class_names is None:
        return {name: i for i, name in enumerate(sorted(set(seen)))}
    if isinstance(class_names, str) or not all(isinstance(n, str) and n.strip() for n in class_names):
        raise ValueError(f"{arg} must be a list of non-empty strings, got {short(class_names)}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"{arg} has duplicates: {short(list(class_names))}")
    return {name: i for i, name in enumerate(class_names)}


def _ls_time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return datetime.min.replace(tzinfo=UTC)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _ls_recency(annotation: dict[str, Any]) -> tuple[datetime, int, str]:
    """Sort key: the later updated_at (else created_at) wins, then the larger numeric id."""
    stamp = _ls_time(annotation.get("updated_at") or annotation.get("created_at"))
    raw_id: Any = annotation.get("id")
    try:
        numeric = int(raw_id)
    except (TypeError, ValueError):
        numeric = -1
    return stamp, numeric, str(raw_id)


def _ls_image_ref(image: Any, s3_prefix: str | None, images_prefix: str | None = None) -> str:
    """Map ``data.image`` to an s3:// ref, or raise ValueError saying why it cannot be."""
    if not isinstance(image, str) or not image:
        raise ValueError(f"data.image must be a non-empty string, got {short(image)}")
    if image.startswith("s3://"):
        why = s3_ref_problem(image)
        if why:
            raise ValueError(f"data.image {why}")
        if images_prefix is not None and not image.startswith(images_prefix):
            raise ValueError(f"data.image {short(image)} is outside the images prefix {images_prefix}")
        base = images_prefix if images_prefix is not None else image[: image.find("/", 5) + 1]
        try:
            return confined_ref(base, image[len(base):])
        except ValueError as exc:
            why = str(exc).partition(" ")[2]
            raise ValueError(f"data.image {short(image)}: the path under {base} {why}") from None
    parts = urlsplit(image)
    if parts.scheme not in ("http", "https") and not image.startswith("/data/"):
        raise ValueError(f"data.image {short(image)} is neither s3://, http(s):// nor a /data/ path")
    if s3_prefix is None:
        raise ValueError(f"data.image {short(image)} is not on S3; pass s3_prefix to map it")
    # Local-storage URLs carry the file in the query: /data/local-files/?d=dir/img.jpg
    path = parts.path
    if path.rstrip("/").endswith("local-files"):
        path = parse_qs(parts.query).get("d", [""])[0]
    name = posixpath.basename(unquote(path))
    if not name:
        raise ValueError(f"data.image {short(image)} has no file name")
    if images_prefix is not None and not s3_prefix.startswith(images_prefix):
        raise ValueError(f"data.image {short(image)} maps to s3_prefix {s3_prefix}, outside the images prefix "
                         f"{images_prefix}")
    try:
        return confined_ref(s3_prefix, name)
    except ValueError as exc:
        raise ValueError(f"data.image {short(image)}: file name {exc}") from None


class LabelStudioConversion(_Conversion):
    """Manifest line dicts from a Label Studio export, plus what was skipped and why.

    ``unannotated_task_ids``: tasks with no annotation left after dropping cancelled ones
    (skipped: nobody labelled them). ``cancelled_annotations``: annotations ignored because
    ``was_cancelled`` is true. ``superseded_annotations``: older annotations ignored on tasks
    annotated more than once.
    """

    def __init__(self, *, unannotated_task_ids: list[Any], cancelled_annotations: int,
                 superseded_annotations: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.unannotated_task_ids = unannotated_task_ids
        self.cancelled_annotations = cancelled_annotations
        self.superseded_annotations = superseded_annotations


def from_label_studio(export: list[dict[str, Any]] | bytes | str, *, label_attribute: str,
                      s3_prefix: str | None = None, class_names: list[str] | None = None,
                      job_name: str = "label-studio", creation_date: str | None = None,
                      image_size_of: Callable[[str], tuple[int, int]] | None = None,
                      images_prefix: str | None = None,
                      source: str = "<label-studio export>") -> LabelStudioConversion:
    """Convert a Label Studio JSON export (``rectanglelabels``) to manifest line dicts.

    Per task, cancelled annotations (``was_cancelled``) are ignored and, of the rest, the most
    recent one (by ``updated_at``, else ``created_at``, then the larger ``id``) is used. A task
    with no such annotation is skipped and listed in ``unannotated_task_ids``; an annotation with
    an empty result is an image with no objects and is kept. Boxes are converted from percent of
    ``original_width``/``original_height`` to whole pixels (see the module docstring); result
    types other than ``rectanglelabels`` (e.g. a Choices tag) are ignored; rotated boxes are
    refused, as an axis-aligned manifest box cannot hold them.

    Class ids follow ``class_names`` (index = id) or else the sorted names seen. ``data.image``
    ``s3://`` refs are kept; http(s) URLs and ``/data/...`` paths become ``s3_prefix`` + file
    name. An image without boxes has no ``original_width`` in the export, so its size comes from
    ``data.width``/``data.height`` or ``image_size_of(source_ref)`` (e.g. reading the header
    from S3). Every problem is raised at once as a ManifestError (line = None, the field names
    the task id) before anything is yielded.

    ``export`` may be the export file itself (bytes or text), parsed by :func:`load_document`
    (UTF-8, unique keys, exact numbers; errors name ``source``, the line and the field). Image
    paths stay inside their prefix: with ``images_prefix`` every image must lie under it, and
    no ref may use '..', '.', empty segments, backslashes or percent-encoded separators.
    """
    attr = check_label_attribute(label_attribute)
    prefix = checked_prefix(s3_prefix, "s3_prefix") if s3_prefix is not None else None
    confine = checked_prefix(images_prefix, "images_prefix") if images_prefix is not None else None
    if isinstance(export, bytes | bytearray | str):
        export = load_document(export, source=source)
    if not isinstance(export, list):
        raise ValueError(f"export must be a list of Label Studio tasks, got {json_type(export)}")
    problems = Problems(source)
    unannotated: list[Any] = []
    cancelled = superseded = 0
    # (ref, width, height, [(name, left, top, w, h)]) per kept task, class ids assigned afterwards.
    pending: list[tuple[str, int, int, list[tuple[str, int, int, int, int]]]] = []
    ref_owner: dict[str, Any] = {}
    names_seen: set[str] = set()

    for index, task in enumerate(export):
        if not isinstance(task, dict):
            problems.add(None, f"tasks[{index}]", f"must be an object, got {json_type(task)}")
            continue
        tid = task.get("id", f"#{index}")
        where = f"task {tid}"
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            problems.add(None, f"{where}.annotations", f"must be a list, got {json_type(annotations)}")
            continue
        live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        cancelled += sum(1 for a in annotations if isinstance(a, dict) and a.get("was_cancelled"))
        if not live:
            unannotated.append(tid)
            continue
        superseded += len(live) - 1
        chosen = max(live, key=_ls_recency)
        apath = f"{where}.annotations[id={chosen.get('id')}]"
        task_data = task.get("data")
        data: dict[str, Any] = task_data if isinstance(task_data, dict) else {}
        try:
            ref = _ls_image_ref(data.get("image"), prefix, confine)
        except ValueError as exc:
            problems.add(None, where, str(exc))
            continue
        if ref in ref_owner:
            problems.add(None, where, f"image {ref!r} is also the image of task {ref_owner[ref]}")
            continue
        ref_owner[ref] = tid
        results = chosen.get("result") or []
        if not isinstance(results, list):
            problems.add(None, f"{apath}.result", f"must be a list, got {json_type(results)}")
            continue
        width: int | None = None
        height: int | None = None
        boxes: list[tuple[str, int, int, int, int]] = []
        for j, item in enumerate(results):
            rpath = f"{apath}.result[{j}]"
            if not isinstance(item, dict) or item.get("type") != "rectanglelabels":
                continue
            value = item.get("value")
            if not isinstance(value, dict):
                problems.add(None, f"{rpath}.value", f"must be an object, got {json_type(value)}")
                continue
            ow, oh = item.get("original_width"), item.get("original_height")
            if not positive_int(ow) or not positive_int(oh):
                problems.add(None, rpath, f"original_width/original_height must be positive integers, "
                                          f"got {short(ow)}/{short(oh)}")
                continue
            if width is not None and (width, height) != (ow, oh):
                problems.add(None, rpath, f"image size {ow}x{oh} disagrees with {width}x{height} "
                                          "in an earlier result of the annotation")
                continue
            width, height = ow, oh
            rotation = value.get("rotation") or 0
            if rotation:
                problems.add(None, f"{rpath}.value.rotation",
                             f"rotated boxes ({rotation} deg) are not axis-aligned; disable canRotate")
                continue
            labels = value.get("rectanglelabels")
            if (not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str)
                    or not labels[0].strip() or not is_text(labels[0])):
                problems.add(None, f"{rpath}.value.rectanglelabels",
                             f"must hold exactly one label, got {short(labels)}")
                continue
            xs = _pixel_span(value.get("x"), value.get("width"), ow, ow / 100)
            ys = _pixel_span(value.get("y"), value.get("height"), oh, oh / 100)
            for axis, span in (("x/width", xs), ("y/height", ys)):
                if isinstance(span, str):
                    problems.add(None, f"{rpath}.value.{axis}", span)
            if isinstance(xs, str) or isinstance(ys, str):
                continue
            names_seen.add(labels[0])
            boxes.append((labels[0], xs[0], ys[0], xs[1], ys[1]))
        if width is None and positive_int(data.get("width")) and positive_int(data.get("height")):
            width, height = data["width"], data["height"]
        elif width is None and image_size_of is not None:
            try:
                width, height = image_size_of(ref)
            except Exception as exc:  # noqa: BLE001 - any lookup failure becomes a named problem
                problems.add(None, where, f"image_size_of({ref!r}) failed: {exc}")
                continue
        if width is None or height is None or not positive_int(width) or not positive_int(height):
            problems.add(None, where, "no boxes, so the export lacks the image size; put width/height "
                                      "in the task data or pass image_size_of")
            continue
        pending.append((ref, width, height, boxes))

    ids = _class_names_map(class_names, names_seen, "class_names")
    for name in sorted(names_seen - ids.keys()):
        problems.add(None, "class_names", f"label {name!r} is used in the export but not in class_names")
    if not export:
        problems.add(None, "", "the export has no tasks")
    problems.raise_if_any()

    images = [_Image(ref, w, h, [(ids[n], x, y, bw, bh) for n, x, y, bw, bh in boxes])
              for ref, w, h, boxes in pending]
    return LabelStudioConversion(
        label_attribute=attr, class_map={i: n for n, i in ids.items()}, images=images, job_name=job_name,
        creation_date=creation_date, unannotated_task_ids=unannotated, cancelled_annotations=cancelled,
        superseded_annotations=superseded,
    )


class CocoConversion(_Conversion):
    """Manifest line dicts from a COCO file. ``category_remap`` maps COCO category ids to class ids;
    ``skipped_crowd_annotations`` counts ``iscrowd`` regions left out (unless include_crowd)."""

    def __init__(self, *, category_remap: dict[int, int], skipped_crowd_annotations: int,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.category_remap = category_remap
        self.skipped_crowd_annotations = skipped_crowd_annotations


def from_coco(coco: dict[str, Any] | bytes | str, *, label_attribute: str, image_prefix: str,
              job_name: str = "coco-import", creation_date: str | None = None, include_crowd: bool = False,
              source: str = "<coco>") -> CocoConversion:
    """Convert a COCO detection file (images, annotations, categories) to manifest line dicts.

    ``source-ref`` is ``image_prefix`` + ``file_name``. Category ids become class ids
    ``0..n-1`` in ascending category-id order, names kept (``category_remap`` says how). Boxes
    ``[x, y, w, h]`` in pixels are snapped to whole pixels (see the module docstring). Images
    without annotations are kept with an empty list. Crowd regions (``iscrowd: 1``) mark areas
    to ignore rather than objects, so they are left out and counted unless ``include_crowd``.
    Every problem (naming the image or annotation id) is raised at once as a ManifestError.

    ``coco`` may be the file itself (bytes or text), parsed by :func:`load_document` (errors name
    ``source``, the line and the field). A ``file_name`` must stay inside ``image_prefix``: no
    absolute path, '..' or '.' segment (a leading "./" excepted), empty segment, backslash or
    percent-encoded separator.
    """
    attr = check_label_attribute(label_attribute)
    prefix = checked_prefix(image_prefix, "image_prefix")
    if isinstance(coco, bytes | bytearray | str):
        coco = load_document(coco, source=source)
    if not isinstance(coco, dict):
        raise ValueError(f"coco must be a COCO JSON object, got {json_type(coco)}")
    problems = Problems(source)
    add = problems.add

    categories: dict[int, str] = {}
    for i, cat in enumerate(coco.get("categories") or []):
        cid, name = (cat.get("id"), cat.get("name")) if isinstance(cat, dict) else (None, None)
        if type(cid) is not int or not isinstance(name, str) or not name.strip() or not is_text(name):
            add(None, f"categories[{i}]", f"needs an integer id and a non-empty name, got {short(cat)}")
        elif cid in categories:
            add(None, f"category {cid}", f"id appears twice ({categories[cid]!r} and {name!r})")
        elif name in categories.values():
            add(None, f"category {cid}", f"name {name!r} is used by another category")
        else:
            categories[cid] = name
    if not categories:
        add(None, "categories", "no usable categories")
    remap = {old: new for new, old in enumerate(sorted(categories))}

    images: dict[Any, _Image] = {}
    refs: dict[str, Any] = {}
    for i, img in enumerate(coco.get("images") or []):
        if not isinstance(img, dict):
            add(None, f"images[{i}]", f"must be an object, got {json_type(img)}")
            continue
        iid, name, w, h = img.get("id"), img.get("file_name"), img.get("width"), img.get("height")
        where = f"image {iid}"
        if iid is None or iid in images:
            add(None, f"images[{i}]", "missing id" if iid is None else f"id {iid} appears twice")
            continue
        if not isinstance(name, str):
            add(None, f"{where}.file_name", f"must be a file name, got {short(name)}")
            continue
        try:  # a leading "./" (as some exporters write) is the prefix itself; nothing else may leave it
            ref = confined_ref(prefix, name.removeprefix("./"))
        except ValueError as exc:
            add(None, f"{where}.file_name", str(exc))
            continue
        if not positive_int(w) or not positive_int(h):
            add(None, where, f"width/height must be positive integers, got {short(w)}/{short(h)}")
            continue
        if ref in refs:
            add(None, f"{where}.file_name", f"{name!r} is also the file of image {refs[ref]}")
            continue
        refs[ref] = iid
        images[iid] = _Image(ref, w, h, [])
    if not images:
        add(None, "images", "no usable images")

    crowd = 0
    for i, ann in enumerate(coco.get("annotations") or []):
        if not isinstance(ann, dict):
            add(None, f"annotations[{i}]", f"must be an object, got {json_type(ann)}")
            continue
        where = f"annotation {ann.get('id', f'#{i}')}"
        image = images.get(ann.get("image_id"))
        if image is None:
            add(None, f"{where}.image_id", f"{short(ann.get('image_id'))} is not a usable image id")
            continue
        cat = ann.get("category_id")
        if cat not in remap:
            add(None, f"{where}.category_id", f"{short(cat)} is not a category id ({sorted(remap)})")
            continue
        if ann.get("iscrowd") and not include_crowd:
            crowd += 1
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            add(None, f"{where}.bbox", f"must be [x, y, width, height], got {short(bbox)}")
            continue
        xs = _pixel_span(bbox[0], bbox[2], image.width, 1.0)
        ys = _pixel_span(bbox[1], bbox[3], image.height, 1.0)
        if isinstance(xs, str) or isinstance(ys, str):
            add(None, f"{where}.bbox", f"{xs if isinstance(xs, str) else ys} (image {ann.get('image_id')} "
                                       f"is {image.width}x{image.height})")
            continue
        image.boxes.append((remap[cat], xs[0], ys[0], xs[1], ys[1]))
    problems.raise_if_any()

    return CocoConversion(
        label_attribute=attr, class_map={remap[c]: categories[c] for c in sorted(categories)},
        images=list(images.values()), job_name=job_name, creation_date=creation_date,
        category_remap=remap, skipped_crowd_annotations=crowd,
    )
