"""What a Ground Truth labeling job reads, the pure part: the input manifest, the label categories,
the worker UI, and the bucket CORS its worker UI needs.

* :func:`input_manifest_lines`, :func:`label_categories_document` and :func:`render_template`
  make the three inputs a job reads, at :func:`labeling_input_uris`
  (``hooks/ground_truth.prepare_labeling_inputs`` publishes them); :func:`input_manifest_refs`
  checks an existing input manifest line by line, by Ground Truth's rules.
* :func:`merged_cors_rules` is the bucket CORS Ground Truth's worker UI needs, merged with the
  bucket's own rules (``hooks/ground_truth.ensure_cors`` reads and writes it).

The request that names these inputs is :func:`sagemaker_vision.core.labeling_job.labeling_job_request`.
No Airflow, no AWS calls.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sagemaker_vision.core.labeling_job import (
    MAX_TASK_DESCRIPTION,
    required_text,
    validate_labels,
    validate_s3_uri,
)
from sagemaker_vision.core.manifest_parse import LineError, parse_line
from sagemaker_vision.core.validate import INCLUDE_DIR, ConfigError, parse_s3_uri

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "GROUND_TRUTH_CORS_RULE",
    "MAX_MANIFEST_ATTRIBUTE_CHARS",
    "cors_rule_allows_ground_truth",
    "image_buckets",
    "input_manifest_lines",
    "input_manifest_refs",
    "label_categories_document",
    "labeling_input_uris",
    "merged_cors_rules",
    "render_template",
]

# The CORS rule Ground Truth's worker UI needs on every bucket holding input images, exactly as
# the Ground Truth guide gives it ("CORS Requirement for Input Image Data", sms-cors-update):
# without a CORS configuration "labeling tasks for those input data objects will fail". Jobs
# created through the API get none; the console adds it.
GROUND_TRUTH_CORS_RULE: dict[str, list[str]] = {
    "AllowedHeaders": [],
    "AllowedMethods": ["GET"],
    "AllowedOrigins": ["*"],
    "ExposeHeaders": [],
}

LABEL_CATEGORIES_VERSION = "2018-11-28"
DEFAULT_TEMPLATE_PATH = INCLUDE_DIR / "templates" / "bounding_box.liquid.html"
# What a worker UI for the built-in bounding-box task cannot do without.
REQUIRED_TEMPLATE_SNIPPETS = (
    "<crowd-form",
    "<crowd-bounding-box",
    "{{ task.input.taskObject | grant_read_access }}",
    "{{ task.input.labels | to_json | escape }}",
)
# Object names under ``inputs_prefix``.
INPUT_MANIFEST_NAME = "input.manifest"
LABEL_CATEGORIES_NAME = "label-categories.json"
TEMPLATE_NAME = "bounding-box.liquid.html"


def input_manifest_lines(image_uris: Iterable[str]) -> Iterator[str]:
    """One ``{"source-ref": <uri>}`` JSON line (no newline) per image; checks each URI as it goes.

    Raises :class:`ConfigError` naming ``image_uris[<index>]`` for a URI that is not an
    ``s3://bucket/key`` object or repeats an earlier one (a worker would label it twice), and
    ``image_uris`` when there is none.
    """
    if isinstance(image_uris, str | bytes):
        raise ConfigError("image_uris", "must be a list of s3:// image URIs, not a single string")
    seen: set[str] = set()
    for index, uri in enumerate(image_uris):
        field_name = f"image_uris[{index}]"
        validate_s3_uri(uri, field_name)
        if uri in seen:
            raise ConfigError(field_name, f"{uri} is listed twice")
        seen.add(uri)
        yield json.dumps({"source-ref": uri}, separators=(",", ":"))
    if not seen:
        raise ConfigError("image_uris", "lists no images")


def label_categories_document(labels: Sequence[str]) -> dict[str, Any]:
    """The label category configuration file Ground Truth reads (``LabelCategoryConfigS3Uri``)."""
    validate_labels(labels)
    return {"document-version": LABEL_CATEGORIES_VERSION, "labels": [{"label": label} for label in labels]}


def render_template(
    labels: Sequence[str], description: str, template_path: str | Path = DEFAULT_TEMPLATE_PATH
) -> str:
    """The worker UI with ``description`` as its header and ``labels`` in its instructions.

    The template's ``${header}`` and ``${label_items}`` are Python placeholders; the Liquid
    expressions (``{{ task.input.* }}``) are left for Ground Truth. Both inserted texts are
    HTML-escaped, and their braces turned into entities, so neither can break the markup or
    inject Liquid.
    """
    validate_labels(labels)
    required_text(description, "description", MAX_TASK_DESCRIPTION)
    path = Path(template_path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("template_path", f"cannot read {path}: {exc.strerror or exc}") from None
    missing = [snippet for snippet in REQUIRED_TEMPLATE_SNIPPETS if snippet not in source]
    if missing:
        raise ConfigError("template_path", f"{path} is not a bounding-box worker UI: it lacks {missing}")
    items = "\n".join(f"        <li>{_escape(label)}</li>" for label in labels)
    try:
        return string.Template(source).substitute(header=_escape(description), label_items=items)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            "template_path",
            f"{path} has a placeholder other than ${{header}} and ${{label_items}} ({exc}); "
            "write a literal dollar sign as $$",
        ) from None


def labeling_input_uris(inputs_prefix: str) -> dict[str, str]:
    """Where :func:`prepare_labeling_inputs` puts the manifest, categories and template."""
    bucket, key = parse_s3_uri(inputs_prefix, "inputs_prefix")
    base = f"s3://{bucket}/{key.strip('/')}/" if key.strip("/") else f"s3://{bucket}/"
    return {
        "input_manifest_uri": base + INPUT_MANIFEST_NAME,
        "categories_uri": base + LABEL_CATEGORIES_NAME,
        "template_uri": base + TEMPLATE_NAME,
    }


def cors_rule_allows_ground_truth(rule: Mapping[str, Any]) -> bool:
    """Whether a bucket CORS rule already grants what :data:`GROUND_TRUTH_CORS_RULE` does.

    That is a GET from any origin (``*``). A rule for named origins only is not enough: the
    worker UI's origin is not documented, so only the documented rule counts.
    """
    methods = {str(m).upper() for m in rule.get("AllowedMethods") or []}
    return "GET" in methods and "*" in (rule.get("AllowedOrigins") or [])


def merged_cors_rules(existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The bucket's rules with Ground Truth's appended, or None when an equivalent rule exists.

    The existing rules come first and unchanged: S3 applies the first rule that matches a
    request, so the owner's rules keep deciding for their own origins.
    """
    rules = [dict(rule) for rule in existing]
    if any(cors_rule_allows_ground_truth(rule) for rule in rules):
        return None
    return [*rules, {key: list(value) for key, value in GROUND_TRUTH_CORS_RULE.items()}]


def image_buckets(image_uris: Iterable[str]) -> list[str]:
    """The distinct buckets of ``image_uris``, in first-seen order."""
    buckets: dict[str, None] = {}
    for index, uri in enumerate(image_uris):
        bucket, _ = parse_s3_uri(uri, f"image_uris[{index}]")
        buckets.setdefault(bucket, None)
    return list(buckets)


# SageMaker Developer Guide, "Input data": "No single attribute within an object can be larger than
# 20,000 characters. Attribute names can't begin with $ (dollar sign)." (The 100,000 characters of
# a whole object are manifest_parse.MAX_LINE_CHARS.)
MAX_MANIFEST_ATTRIBUTE_CHARS = 20_000


def input_manifest_refs(lines: Iterable[bytes | str], manifest_uri: str) -> Iterator[str]:
    """The ``source-ref`` of each line of an existing input manifest, checked as Ground Truth would.

    ``lines`` are the manifest's raw lines (the S3 read is the caller's); errors are ConfigErrors
    naming ``input_manifest_uri``, the manifest, the line and the attribute.
    """
    for lineno, raw in enumerate(lines, start=1):
        try:  # the one manifest parser: UTF-8, one object per line, unique keys, a line cap
            rec = parse_line(raw, first=lineno == 1)
        except LineError as exc:
            field = f" {exc.field}:" if exc.field else ""
            raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}:{field} {exc.message}") from None
        if rec is None:
            continue
        for name, value in rec.items():  # Ground Truth's rules for a manifest object ("Input data")
            if name.startswith("$"):
                raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}: {name}: Ground Truth refuses "
                                                        "attribute names beginning with '$'")
            size = len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False))
            if size > MAX_MANIFEST_ATTRIBUTE_CHARS:
                raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}: {name}: {size} characters, over "
                                                        f"Ground Truth's {MAX_MANIFEST_ATTRIBUTE_CHARS} per attribute")
        ref = rec.get("source-ref")
        if not isinstance(ref, str):
            raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}: no source-ref")
        yield ref


def _escape(text: str) -> str:
    """HTML-escape, and make braces entities so Liquid sees no tags in user text."""
    return html.escape(text, quote=True).replace("{", "&#123;").replace("}", "&#125;")
