"""Label Studio, the pure part: the labelling UI, progress counts, presigned URLs, message excerpts.

What :mod:`sagemaker_vision.hooks.label_studio` (the REST API), the operator
(:mod:`sagemaker_vision.operators.label_studio`) and the trigger share, without Airflow or AWS.
The export's conversion to a manifest is :func:`sagemaker_vision.core.converters.from_label_studio`.

A task is *annotated* when it has at least ``min_annotations`` annotations that were not
cancelled, and *skipped* when it has fewer but an annotator pressed Skip (Label Studio records
that as a cancelled annotation): skipping is the annotator's final word on the image, so skipped
tasks do not hold the pipeline up and are left out of the manifest (``skipped_unannotated``).
"""

from __future__ import annotations

import json
import re
import time
from calendar import timegm
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from html import unescape
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import quoteattr

from sagemaker_vision.core.validate import ConfigError, parse_s3_uri

__all__ = [
    "DEFAULT_PRESIGN_CONN_ID",
    "IMAGE_EXTENSIONS",
    "IMAGE_REFS",
    "MAX_PRESIGN_SECONDS",
    "PRESIGN_LIFETIME_SECONDS",
    "READER_POLICY",
    "RESUME_HINT",
    "ImageRefs",
    "ProjectProgress",
    "TaskProgress",
    "as_list",
    "common_prefix",
    "excerpt",
    "presigned_url_signer",
    "rectangle_label_config",
    "task_progress",
    "task_s3_uri",
]

IMAGE_REFS = ("presigned", "s3_storage")
ImageRefs = Literal["presigned", "s3_storage"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# SigV4 presigned URLs live at most 7 days (also Label Studio's on-view URLs in s3_storage mode).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# Presigned URLs live one hour (the AWS CLI's default for presign) and are renewed once half of
# that has passed, so an annotator's page always has at least half an hour left.
PRESIGN_LIFETIME_SECONDS = 3600
# The read-only principal that presigns for Label Studio: an AWS connection the user sets.
DEFAULT_PRESIGN_CONN_ID = "aws_label_studio_reader"
READER_POLICY = "include/iam/label-studio-reader-policy.json"
EXCERPT = 300
# Distinct, readable box colours for the labelling UI, cycled over the classes.
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075")


# What a wait that ran out of its timeout says: nothing is lost, a retry picks the project up again.
RESUME_HINT = ("Stopped waiting, but the project is still open and annotators can keep working: clear or "
               "retry this task to resume waiting on the same project (found by title; no task is imported "
               "twice)")


def rectangle_label_config(labels: Sequence[str]) -> str:
    """The labelling UI for axis-aligned boxes: one ``<Label>`` per class, in class-id order.

    Rotation is off because a Ground Truth manifest holds axis-aligned boxes only.
    """
    if isinstance(labels, str) or not labels:
        raise ConfigError("labels", f"must be a non-empty list of class names, got {labels!r}")
    names = list(labels)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("labels", f"labels[{i}] must be a non-empty string, got {name!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("labels", f"duplicate class names {duplicates}")
    lines = ['<View>', '  <Image name="image" value="$image" zoom="true" zoomControl="true"/>',
             '  <RectangleLabels name="label" toName="image" canRotate="false">']
    for i, name in enumerate(names):
        colour = quoteattr(PALETTE[i % len(PALETTE)])
        lines.append(f"    <Label value={quoteattr(name)} background={colour}/>")
    lines += ["  </RectangleLabels>", "</View>"]
    return "\n".join(lines)


class ProjectProgress(NamedTuple):
    """Label Studio's own counters of a project (``GET /api/projects/{id}/``)."""

    task_number: int
    num_tasks_with_annotations: int
    finished_task_number: int


@dataclass(frozen=True)
class TaskProgress:
    """How many tasks of a project are annotated, skipped and still to do (see module doc)."""

    total: int
    annotated: int
    skipped: int

    @property
    def pending(self) -> int:
        return self.total - self.annotated - self.skipped

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.pending == 0

    def describe(self) -> str:
        return (f"{self.annotated} of {self.total} tasks annotated, {self.skipped} skipped, "
                f"{self.pending} to do")

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "pending": self.pending}


def task_progress(tasks: Iterable[Mapping[str, Any]], min_annotations: int) -> TaskProgress:
    """Count tasks from Label Studio's task list (``total_annotations`` excludes cancelled ones)."""
    total = annotated = skipped = 0
    for task in tasks:
        total += 1
        live = int(task.get("total_annotations") or 0)
        cancelled = int(task.get("cancelled_annotations") or 0)
        if live >= min_annotations:
            annotated += 1
        elif cancelled > 0:
            skipped += 1
    return TaskProgress(total=total, annotated=annotated, skipped=skipped)


def task_s3_uri(task: Mapping[str, Any]) -> str | None:
    """The s3:// URI of a task's image: ``data.s3_uri`` (our imports) or an s3:// ``data.image``."""
    raw = task.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    for value in (data.get("s3_uri"), data.get("image")):
        if isinstance(value, str) and value.startswith("s3://"):
            return value
    return None


def excerpt(body: str | bytes | None, limit: int = EXCERPT) -> str:
    """A short, single-line view of a response body: JSON compacted, HTML reduced to text."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        if "<html" in text[:500].lower() or "<!doctype" in text[:500].lower():
            title = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
            heading = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S | re.I)
            text = " / ".join(unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()
                              for m in (title, heading) if m) or "(HTML page)"
    else:
        if isinstance(parsed, dict):
            parsed = {k: v for k, v in parsed.items() if k not in ("id", "version", "exc_info")}
        text = json.dumps(parsed, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def presigned_url_signer(url: str) -> tuple[str | None, float]:
    """(access key id, expiry as epoch seconds) of a SigV4 presigned URL; (None, 0) otherwise."""
    query = parse_qs(urlsplit(url).query)
    try:
        key = query["X-Amz-Credential"][0].split("/", 1)[0]
        signed = timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
        return key, float(signed + int(query["X-Amz-Expires"][0]))
    except (KeyError, IndexError, ValueError):
        return None, 0.0


def as_list(value: Any, field_name: str) -> list[str]:
    """A templated list may arrive as a JSON string; anything else must already be a list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(field_name, f"must be a list (or its JSON), got {value[:80]!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ConfigError(field_name, f"must be a list, got {type(value).__name__}")
    return list(value)


def common_prefix(uris: Sequence[str]) -> str:
    """The deepest s3://bucket/dir/ holding every URI (they must share one bucket)."""
    buckets = {parse_s3_uri(u, "image_uris")[0] for u in uris}
    if len(buckets) != 1:
        raise ConfigError("image_uris", f"s3_storage needs all images in one bucket, got {sorted(buckets)}")
    keys = [parse_s3_uri(u, "uri")[1] for u in uris]
    dirs = [k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in keys]
    common = dirs[0]
    for d in dirs[1:]:
        while not d.startswith(common):
            common = common[:-1].rsplit("/", 1)[0] + "/" if "/" in common[:-1] else ""
    return f"s3://{buckets.pop()}/{common}"
