"""Image validation, the pure part: the checks of one image's name and bytes. No Airflow, no AWS.

The pipeline's ``validate_images`` stage (:func:`sagemaker_vision.pipeline.images.validate_partition`,
right after ``sync_images``) reads each object of the run's ``raw/dt=…/`` partition from S3 (so it
works on any worker) and checks it with :func:`check_image`:

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
Images dropped later because they have no label are reported by
:func:`sagemaker_vision.pipeline.images.report_unlabeled`.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import asdict, dataclass
from typing import Any

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


def human_size(n: int) -> str:
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
    from PIL import Image, UnidentifiedImageError  # lazy: keeps DAG parsing fast

    size = len(data)
    if (reason := check_name(name)) is not None:
        return ImageCheck(name, size, reason)
    if size == 0:
        return ImageCheck(name, size, "empty file (0 bytes)")
    if size > max_bytes:
        return ImageCheck(name, size, f"{human_size(size)} is larger than the {human_size(max_bytes)} this endpoint "
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
    from PIL import Image  # lazy: keeps DAG parsing fast

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
