"""Decode replies of the SageMaker built-in object-detection algorithm into named pixel boxes.

Pure functions: no Airflow, no AWS call (the ``InvokeEndpoint`` call that feeds them is
:func:`sagemaker_vision.hooks.sagemaker_runtime.invoke_and_decode`).

The algorithm answers ``Accept: application/json`` with::

    {"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}

where ``class_id`` is a float such as ``1.0`` and the corners are normalised to ``[0, 1]``
of the image width and height (the ``application/json;verbose`` format is not handled).
:func:`parse_prediction` is the one check of that format: the smoke tests decode through it,
and both load-test engines count a reply as a success only when it passes.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePath
from typing import Any, NamedTuple

# Normalised corners may overshoot [0, 1] by float32 rounding; anything beyond this is a bug.
COORD_TOLERANCE = 1e-4

CONTENT_TYPES: dict[str, str] = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}

ClassMap = Mapping[int, str] | Mapping[str, str] | Mapping[int | str, str] | Sequence[str]


@dataclass(frozen=True)
class Box:
    """One detection in pixels, shaped like a Ground Truth bounding-box annotation."""

    label: str
    class_id: int
    score: float
    left: int
    top: int
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the same keys as the fields."""
        return asdict(self)


def normalise_class_map(class_map: ClassMap) -> dict[int, str]:
    """``{int: name}`` from a mapping with int or digit-string keys, or a list of names by index."""
    items: list[tuple[Any, Any]]  # keys as given: int, digit strings or (wrongly) floats and bools
    if isinstance(class_map, Mapping):
        items = list(class_map.items())
    elif isinstance(class_map, Sequence) and not isinstance(class_map, str | bytes):
        items = list(enumerate(class_map))
    else:
        raise ValueError(f"class_map must be a mapping or a list of names, got {type(class_map).__name__}")
    result: dict[int, str] = {}
    for key, name in items:
        try:
            class_id = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"class_map key {key!r} is not an integer class id") from None
        if isinstance(key, bool) or (isinstance(key, float) and not key.is_integer()) or class_id < 0:
            raise ValueError(f"class_map key {key!r} is not a non-negative integer class id")
        if not isinstance(name, str) or not name:
            raise ValueError(f"class_map[{key!r}] must be a non-empty string, got {name!r}")
        result[class_id] = name
    return result


class MalformedReply(ValueError):
    """A reply that is not the object-detection format; the load test counts it as ``InvalidResponse``."""


def _load_reply(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(body, Mapping):
        return body
    if isinstance(body, bytes | bytearray | memoryview):
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedReply(f"reply is not UTF-8 text: {exc}") from None
    if not isinstance(body, str):
        raise MalformedReply(f"reply must be bytes, str or dict, got {type(body).__name__}")
    try:
        parsed = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedReply(f"reply is not JSON ({exc}); starts with {body[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise MalformedReply(f"reply must be a JSON object, got {type(parsed).__name__}")
    return parsed


def _number(value: Any, row: int, column: str) -> float:
    # bool is an int subclass; a True in a box row is a malformed reply, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedReply(f"prediction[{row}]: {column} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for a float
        raise MalformedReply(f"prediction[{row}]: {column} must be finite, got a {len(str(value))}-digit "
                             "integer") from None
    if not math.isfinite(number):
        raise MalformedReply(f"prediction[{row}]: {column} must be finite, got {value!r}")
    return number


def _coord(value: Any, row: int, column: str) -> float:
    number = _number(value, row, column)
    if not -COORD_TOLERANCE <= number <= 1 + COORD_TOLERANCE:
        raise MalformedReply(f"prediction[{row}]: {column}={number} is outside the normalised range [0, 1]")
    return min(max(number, 0.0), 1.0)


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")
    return value


class Detection(NamedTuple):
    """One row of a reply, validated: an integer class id, a score in [0, 1], normalised corners.

    A named tuple rather than a dataclass: the load test decodes every reply, and this is cheaper to build.
    """

    class_id: int
    score: float
    xmin: float
    ymin: float
    xmax: float
    ymax: float


def parse_prediction(body: bytes | str | Mapping[str, Any]) -> list[Detection]:
    """Every row of an object-detection reply, validated; :class:`MalformedReply` otherwise.

    The one decoder of the format (``object-detection-in-formats``: a JSON object whose
    ``prediction`` is a list of ``[class_id, score, xmin, ymin, xmax, ymax]`` rows): the smoke
    tests decode through it and both load-test engines count a reply as a success only when it
    passes. The class id must be a non-negative whole number, the score in [0, 1], the corners
    in [0, 1] (with :data:`COORD_TOLERANCE` for float rounding) and ``xmin <= xmax``,
    ``ymin <= ymax``. An empty list is a valid reply: nothing detected. The error names the row.
    """
    reply = _load_reply(body)
    if "prediction" not in reply:
        raise MalformedReply(f"reply has no 'prediction' field; keys: {sorted(map(str, reply))[:10]}")
    rows = reply["prediction"]
    if not isinstance(rows, list):
        raise MalformedReply(f"reply 'prediction' must be a list, got {type(rows).__name__}")
    detections: list[Detection] = []
    low, high = -COORD_TOLERANCE, 1 + COORD_TOLERANCE
    for index, row in enumerate(rows):
        # Fast path (the load test decodes every reply): six floats, all in range. NaN and infinities
        # fail the comparisons, so they take the slow path below, which names what is wrong.
        if type(row) is list and len(row) == 6:
            c, sc, x0, y0, x1, y1 = row
            if (type(c) is float and type(sc) is float and type(x0) is float and type(y0) is float
                    and type(x1) is float and type(y1) is float and 0 <= c < 2**53 and c.is_integer()
                    and 0 <= sc <= 1 and low <= x0 <= x1 <= high and low <= y0 <= y1 <= high):
                detections.append(Detection(int(c), sc, min(max(x0, 0.0), 1.0), min(max(y0, 0.0), 1.0),
                                            min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
                continue
        if not isinstance(row, list | tuple) or len(row) != 6:
            shape = f"length {len(row)}" if isinstance(row, list | tuple) else type(row).__name__
            raise MalformedReply(
                f"prediction[{index}] must be [class_id, score, xmin, ymin, xmax, ymax], got {shape}"
            )
        raw_class = _number(row[0], index, "class_id")
        if not raw_class.is_integer() or raw_class < 0:
            raise MalformedReply(f"prediction[{index}]: class_id={row[0]!r} is not a non-negative integer")
        score = _number(row[1], index, "score")
        if not 0 <= score <= 1:
            raise MalformedReply(f"prediction[{index}]: score={score} is outside [0, 1]")
        xmin, ymin = _coord(row[2], index, "xmin"), _coord(row[3], index, "ymin")
        xmax, ymax = _coord(row[4], index, "xmax"), _coord(row[5], index, "ymax")
        if xmax < xmin:
            raise MalformedReply(f"prediction[{index}]: xmax={xmax} < xmin={xmin}")
        if ymax < ymin:
            raise MalformedReply(f"prediction[{index}]: ymax={ymax} < ymin={ymin}")
        detections.append(Detection(int(raw_class), score, xmin, ymin, xmax, ymax))
    return detections


def decode_detections(
    body: bytes | str | Mapping[str, Any],
    *,
    class_map: ClassMap,
    image_width: int,
    image_height: int,
    min_score: float = 0.0,
) -> list[Box]:
    """Named pixel boxes from an object-detection reply, in reply order (the algorithm sorts by score).

    Every row is validated (:func:`parse_prediction`) before any is dropped by ``min_score``, so
    a malformed reply always fails with a :class:`MalformedReply` (a ``ValueError``) naming the
    row index. A class id missing from ``class_map`` is labelled ``"class_<id>"`` rather than
    rejected: a model trained with more classes than the map knows is still worth seeing. Pixel
    edges are rounded and the size derived from them, so ``left + width`` is the rounded right edge.
    """
    names = normalise_class_map(class_map)
    width = _positive_int(image_width, "image_width")
    height = _positive_int(image_height, "image_height")
    if isinstance(min_score, bool) or not isinstance(min_score, int | float) or not 0 <= min_score <= 1:
        raise ValueError(f"min_score must be a number in [0, 1], got {min_score!r}")

    boxes: list[Box] = []
    for d in parse_prediction(body):
        if d.score < min_score:
            continue
        left, right = round(d.xmin * width), round(d.xmax * width)
        top, bottom = round(d.ymin * height), round(d.ymax * height)
        boxes.append(
            Box(
                label=names.get(d.class_id, f"class_{d.class_id}"),
                class_id=d.class_id,
                score=d.score,
                left=left,
                top=top,
                width=right - left,
                height=bottom - top,
            )
        )
    return boxes


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of an encoded image; Pillow reads only the header."""
    from PIL import Image, UnidentifiedImageError  # lazy: keeps DAG parsing fast

    if not data:
        raise ValueError("image data is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except UnidentifiedImageError:
        raise ValueError(f"image data ({len(data)} bytes) is not a readable image") from None


def content_type_for(filename: str | PurePath) -> str:
    """The InvokeEndpoint ``ContentType`` for an image file name, from its extension."""
    suffix = PurePath(filename).suffix.lower()
    try:
        return CONTENT_TYPES[suffix]
    except KeyError:
        raise ValueError(
            f"{str(filename)!r}: unsupported image type {suffix or '(no extension)'!r}; "
            f"expected one of {sorted(CONTENT_TYPES)}"
        ) from None
