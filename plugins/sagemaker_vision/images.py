"""Image validation: every synced image is checked before anything is paid for.

``validate_partition`` is the pipeline's ``validate_images`` stage, right after ``sync_images``.
It reads each object of the run's ``raw/dt=…/`` partition from S3 (so it works on any worker)
and checks, with :func:`check_image`:

* the name is a ``.jpg``/``.jpeg``/``.png`` and the bytes are that format: JPEG for ``.jpg`` and
  ``.jpeg``, PNG for ``.png`` (the formats the built-in Object Detection algorithm takes,
  ``image/jpeg`` and ``image/png``: SageMaker guide ``object-detection.md``, and the
  request formats in ``object-detection-in-formats.md``);
* the image decodes completely (Pillow ``verify()``, then a full ``load()``, which also catches
  truncated files that ``verify()`` lets through);
* its size in bytes fits the endpoint the run deploys, because the smoke and load tests send
  these images: InvokeEndpoint bodies are at most 6 MiB (botocore ``sagemaker-runtime`` model,
  ``BodyBlob`` max 6291456), serverless invocations at most 4 MB ("Invoke a serverless
  endpoint", ``serverless-endpoints-invoke``); Ground Truth refuses bounding-box inputs over
  40 MB ("Input Data Quotas", ``input-data-limits``), which also bounds async endpoints here;
* its pixel count is at most 100 million, Ground Truth's resolution quota for bounding boxes
  without active learning (same page), checked from the header before decoding.

The ``bad_image_policy`` param decides: ``fail`` (the default) fails the task, naming every bad
file and its reason; ``skip`` leaves them out of labeling and training. Either way the report
(``<run>/reports/image_validation.json``) is written to S3 and each bad file is logged.
Images dropped later because they have no label are reported by :func:`report_unlabeled`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from sagemaker_vision import s3io

log = logging.getLogger(__name__)

# File name extension -> the format its bytes must have (Pillow's format names).
IMAGE_FORMATS: dict[str, str] = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
CONTENT_TYPES: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png"}
MiB = 1024**2
# InvokeEndpoint: botocore sagemaker-runtime BodyBlob max (6 MiB).
REALTIME_MAX_BYTES = 6 * MiB
# "The maximum request and response payload size for serverless invocations is 4 MB": read as
# 4,000,000 bytes, the stricter of the two readings.
SERVERLESS_MAX_BYTES = 4_000_000
# Ground Truth input file size quota for bounding boxes (40 MB), the cap for async endpoints too.
GROUND_TRUTH_MAX_BYTES = 40_000_000
MAX_PIXELS = 100_000_000  # Ground Truth resolution quota, bounding boxes, no active learning
MAX_BYTES_BY_ENDPOINT = {"serverless": SERVERLESS_MAX_BYTES, "provisioned": REALTIME_MAX_BYTES,
                         "async": GROUND_TRUTH_MAX_BYTES}
REPORT_NAME = "image_validation.json"
UNLABELED_REPORT_NAME = "unlabeled_images.json"
MAX_LISTED = 50  # bad files named in an exception message (the report names all)


class ImageValidationError(RuntimeError):
    """Bad images under the ``fail`` policy; the message names each file and its reason."""


@dataclass(frozen=True)
class ImageCheck:
    """The verdict on one image: ``reason`` is None when it is good."""

    uri: str
    size: int
    reason: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def content_type(self) -> str | None:
        return CONTENT_TYPES.get(self.format or "")


def max_bytes_for(endpoint_type: str) -> int:
    """The largest image the run's endpoint type can be sent (see the module doc for sources)."""
    return MAX_BYTES_BY_ENDPOINT.get(endpoint_type, REALTIME_MAX_BYTES)


def _human(n: int) -> str:
    return f"{n:,} bytes ({n / MiB:.1f} MiB)" if n >= MiB else f"{n:,} bytes"


def check_name(name: str) -> str | None:
    """Why a file name is not a JPEG/PNG name, or None."""
    ext = os.path.splitext(name)[1].lower()
    if ext not in IMAGE_FORMATS:
        return (f"not a JPEG or PNG file name (extension {ext or '(none)'!r}; expected one of "
                f"{', '.join(sorted(IMAGE_FORMATS))})")
    return None


def check_image(name: str, data: bytes, *, max_bytes: int = REALTIME_MAX_BYTES,
                max_pixels: int = MAX_PIXELS) -> ImageCheck:
    """Check one image's bytes: name, format, extension vs content, bytes, pixels, full decode."""
    from PIL import Image, UnidentifiedImageError

    size = len(data)
    if (reason := check_name(name)) is not None:
        return ImageCheck(name, size, reason)
    if size == 0:
        return ImageCheck(name, size, "empty file (0 bytes)")
    if size > max_bytes:
        return ImageCheck(name, size, f"{_human(size)} is larger than the {_human(max_bytes)} this endpoint "
                          "type accepts per request")
    expected = IMAGE_FORMATS[os.path.splitext(name)[1].lower()]
    try:
        with warnings.catch_warnings():
            # Pixel counts are checked against max_pixels below, from the header: no need to warn.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _decode(name, data, size, expected, max_pixels)
    except UnidentifiedImageError:
        return ImageCheck(name, size, f"not a readable image ({size} bytes that are neither JPEG nor PNG)")
    except Image.DecompressionBombError as exc:
        return ImageCheck(name, size, f"too many pixels to decode safely ({exc})")
    except (OSError, SyntaxError, ValueError) as exc:
        return ImageCheck(name, size, f"corrupt {expected} data: {exc}", expected)


def _decode(name: str, data: bytes, size: int, expected: str, max_pixels: int) -> ImageCheck:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        fmt, (width, height) = image.format, image.size
        if fmt not in CONTENT_TYPES:
            return ImageCheck(name, size, f"is a {fmt} image, not JPEG or PNG", fmt, width, height)
        if fmt != expected:
            return ImageCheck(name, size, f"extension says {expected} but the content is {fmt}", fmt, width, height)
        if width <= 0 or height <= 0:
            return ImageCheck(name, size, f"has no pixels ({width}x{height})", fmt, width, height)
        if width * height > max_pixels:
            return ImageCheck(name, size, f"{width}x{height} is {width * height:,} pixels, more than "
                              f"{max_pixels:,}", fmt, width, height)
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # verify() does not decode: a truncated JPEG passes it
    return ImageCheck(name, size, None, fmt, width, height)


def report_uri(cfg: Any) -> str:
    """Where this run's image report lives (under the run's prefix)."""
    return f"{cfg.report_prefix}{REPORT_NAME}"


def _check_object(s3_client: Any, uri: str, size: int, max_bytes: int) -> ImageCheck:
    if (reason := check_name(uri)) is not None:
        return ImageCheck(uri, size, reason)
    if size > max_bytes:  # no need to download it to know
        return ImageCheck(uri, size, f"{_human(size)} is larger than the {_human(max_bytes)} this endpoint type "
                          "accepts per request")
    data = s3io.read_bytes(s3_client, uri) if size else b""
    check = check_image(uri, data, max_bytes=max_bytes)
    return check


def validate_images(s3_client: Any, objects: Iterable[tuple[str, int]], *, max_bytes: int,
                    max_workers: int = 8) -> list[ImageCheck]:
    """Check every ``(s3 uri, size)``, a few at a time; results in the input's order."""
    items = list(objects)
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items) or 1)),
                            thread_name_prefix="imgcheck") as pool:
        return list(pool.map(lambda item: _check_object(s3_client, item[0], item[1], max_bytes), items))


def validate_partition(cfg: Any, s3_client: Any) -> dict[str, Any]:
    """The ``validate_images`` stage: check the partition, write the report, apply the policy."""
    from sagemaker_vision.config import ConfigError

    policy = getattr(cfg, "bad_image_policy", "fail")
    max_bytes = max_bytes_for(cfg.endpoint.endpoint_type)
    bucket = cfg.bucket
    objects = sorted((f"s3://{bucket}/{key}", size) for key, size in s3io.list_keys(s3_client, cfg.raw_prefix))
    if not objects:
        raise ConfigError("image_source", f"no images were synced to {cfg.raw_prefix}")
    checks = validate_images(s3_client, objects, max_bytes=max_bytes)
    bad = [c for c in checks if not c.ok]
    good = [c for c in checks if c.ok]
    report = {
        "partition": cfg.run.partition,
        "prefix": cfg.raw_prefix,
        "policy": policy,
        "limits": {"max_bytes": max_bytes, "max_pixels": MAX_PIXELS, "formats": sorted(set(IMAGE_FORMATS.values())),
                   "endpoint_type": cfg.endpoint.endpoint_type},
        "checked": len(checks),
        "valid": len(good),
        "bad": [{"uri": c.uri, "reason": c.reason, "bytes": c.size} for c in bad],
    }
    uri = s3io.put_json(s3_client, report_uri(cfg), report)
    for c in bad:
        log.warning("Bad image %s: %s", c.uri, c.reason)
    log.info("Validated %d images under %s: %d good, %d bad (policy %s); report %s",
             len(checks), cfg.raw_prefix, len(good), len(bad), policy, uri)
    if bad and (policy == "fail" or not good):
        listed = "\n  ".join(f"{c.uri}: {c.reason}" for c in bad[:MAX_LISTED])
        more = f"\n  ... and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        why = ("bad_image_policy is fail" if policy == "fail"
               else "bad_image_policy is skip, but no good image is left")
        hint = ("fix or remove each file in image_source AND delete it under the partition (sync never "
                "deletes), or rerun with bad_image_policy=skip to leave them out")
        raise ImageValidationError(f"{len(bad)} of {len(checks)} images under {cfg.raw_prefix} are bad ({why}; "
                                   f"report {uri}):\n  {listed}{more}\n{hint}")
    return {"report_uri": uri, "checked": len(checks), "valid": len(good), "bad": len(bad), "policy": policy}


def bad_image_uris(cfg: Any, s3_client: Any) -> set[str]:
    """The images this run's report calls bad (empty without a report: nothing was judged bad)."""
    uri = report_uri(cfg)
    if not s3io.exists(s3_client, uri):
        return set()
    report = json.loads(s3io.read_bytes(s3_client, uri))
    return {entry["uri"] for entry in report.get("bad", ())}


def report_unlabeled(cfg: Any, s3_client: Any, images: Sequence[str], labeled: Iterable[str], *,
                     backend: str, reason: str) -> dict[str, Any] | None:
    """Report (S3 and log) each of ``images`` that has no line in ``labeled``; None when there is none."""
    have = set(labeled)
    missing = sorted(set(images) - have)
    if not missing:
        return None
    uri = f"{cfg.report_prefix}{UNLABELED_REPORT_NAME}"
    report = {"partition": cfg.run.partition, "backend": backend, "reason": reason,
              "dropped": [{"uri": m, "reason": reason} for m in missing]}
    s3io.put_json(s3_client, uri, report)
    for m in missing:
        log.warning("Image left out of training: %s: %s", m, reason)
    log.warning("%d of %d images have no label and are left out of training (%s); report %s",
                len(missing), len(images), backend, uri)
    return {"report_uri": uri, "dropped": len(missing)}


# --------------------------------------------------------------------------------------------
# The smoke-test image
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeImage:
    """An image that validated and has labels, for the smoke tests; ``body`` is its bytes."""

    uri: str
    content_type: str
    width: int
    height: int
    boxes: int
    manifest_uri: str
    body: bytes

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("body")
        return data


def pick_smoke_image(cfg: Any, s3_client: Any, manifests: Mapping[str, Any] | None = None, *,
                     max_bytes: int | None = None, max_candidates: int = 50) -> SmokeImage:
    """The first image, validation split first, that has at least one box and passes :func:`check_image`.

    Images this run's report calls bad are passed over without a download; each candidate is
    re-checked from S3, so a retrain run (which validates nothing itself) is as safe. Raises
    ``RuntimeError`` naming the manifests and the reasons when no image qualifies.
    """
    manifests = manifests or {}
    sources = [manifests.get("validation_uri") or cfg.validation_manifest_uri,
               manifests.get("train_uri") or cfg.train_manifest_uri]
    max_bytes = max_bytes or max_bytes_for(cfg.endpoint.endpoint_type)
    bad = bad_image_uris(cfg, s3_client)
    attr = cfg.label_attribute
    rejected: list[str] = []
    tried = 0
    from sagemaker_vision.labels import load_line

    for manifest_uri in sources:
        for lineno, raw in enumerate(s3io.iter_lines(s3_client, manifest_uri, "manifest_uri"), start=1):
            rec = load_line(raw, source=manifest_uri, lineno=lineno)  # the one manifest parser
            if rec is None:
                continue
            uri = rec.get("source-ref")
            anns = (rec.get(attr) or {}).get("annotations") or []
            if not isinstance(uri, str) or not anns:
                continue
            if uri in bad:
                rejected.append(f"{uri}: bad in {report_uri(cfg)}")
                continue
            tried += 1
            data = s3io.read_bytes(s3_client, uri)
            check = check_image(uri, data, max_bytes=max_bytes)
            if check.ok:
                assert check.content_type and check.width and check.height
                return SmokeImage(uri, check.content_type, check.width, check.height, len(anns), manifest_uri, data)
            rejected.append(f"{uri}: {check.reason}")
            if tried >= max_candidates:
                break
    detail = ("; ".join(rejected[:10])) or "no line has a box"
    raise RuntimeError(f"no labeled, valid image to smoke-test {cfg.endpoint_name!r} with in "
                       f"{' or '.join(sources)} ({detail})")


def check_test_images(cfg: Any, s3_client: Any, manifests: Mapping[str, Any] | None = None, *,
                      max_payloads: int = 20) -> dict[str, Any]:
    """Before anything is trained or deployed: the images the smoke and load tests will send fit the endpoint.

    Makes the very choices those tests make after the deploy -- :func:`pick_smoke_image`, and for
    real-time endpoints the load test's payload set (``load_payloads`` on the validation split,
    ``max_payloads`` of them) -- against the limit of the endpoint type this run deploys
    (:func:`max_bytes_for`). A run whose images were validated for another endpoint type (the
    retrain DAG validates none itself) fails here, naming the file and its size, instead of after
    a paid deploy. Raises :class:`ImageValidationError`.
    """
    from sagemaker_vision.load_test import load_payloads

    endpoint_type = cfg.endpoint.endpoint_type
    max_bytes = max_bytes_for(endpoint_type)
    try:
        smoke = pick_smoke_image(cfg, s3_client, manifests, max_bytes=max_bytes)
    except RuntimeError as exc:
        raise ImageValidationError(f"the smoke test would have no image to send to the {endpoint_type} endpoint "
                                   f"(limit {_human(max_bytes)}): {exc}") from None
    result: dict[str, Any] = {"endpoint_type": endpoint_type, "max_bytes": max_bytes, "smoke_image": smoke.uri}
    if endpoint_type != "async":  # async endpoints get no load test (no synchronous traffic)
        validation = (manifests or {}).get("validation_uri") or cfg.validation_manifest_uri
        try:
            payloads = load_payloads(validation, s3_client=s3_client, max_payloads=max_payloads, max_bytes=max_bytes)
        except ValueError as exc:
            raise ImageValidationError(f"the load test could not send the images of {validation} to the "
                                       f"{endpoint_type} endpoint: {exc}") from None
        result["load_test_payloads"] = len(payloads)
    log.info("The smoke%s test images fit the %s endpoint (at most %s each): smoke image %s",
             "" if endpoint_type == "async" else " and load", endpoint_type, _human(max_bytes), smoke.uri)
    return result
