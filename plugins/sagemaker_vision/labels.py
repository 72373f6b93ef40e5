"""Ground Truth augmented manifests for bounding boxes: validate, split, convert.

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

Reading and parsing
    Every manifest line, wherever it is read, goes through :func:`iter_lines` (linear in the
    input whatever a line's length, capped at :data:`MAX_LINE_BYTES`) and :func:`parse_line`
    (UTF-8, at most Ground Truth's :data:`MAX_LINE_CHARS` characters, one JSON object with unique
    keys at every depth, exact integers and finite numbers); :func:`load_document` does the same
    for a whole COCO file or Label Studio export. Errors name the file, the line and the field.

Validation
    :func:`validate_manifest` and :func:`split_manifest` stream the lines. Memory stays constant
    except for one 64-bit integer per line (the first 8 bytes of a SHA-256 of the source-ref,
    used to find duplicates: about 80 bytes a line, so 80 MB per million lines). Every problem
    is collected, and one :class:`ManifestError` at the end lists them all as
    ``file:line: field: message``.

Class ids
    The algorithm wants ids ``0..num_classes-1``. Ground Truth writes a class-map on every line;
    the maps of all lines must agree (one name per id, one id per name) and their union is the
    manifest's class map. When the union has gaps (``{0: "a", 3: "b"}``, e.g. after a label
    category was removed), :func:`normalise_class_ids` maps the ids to contiguous ones in
    ascending order of the original id, keeping the names (``{0: "a", 1: "b"}`` with the remap
    ``{0: 0, 3: 1}``). No class is ever dropped, not even one without boxes, so ``num_classes``
    is the size of the class map. :func:`split_manifest` applies the remap while it writes, and
    because it writes as it reads, it must know the full class map up front: pass ``class_map=``
    (e.g. ``validate_manifest(...).class_map``) when ids may be gapped; without it a gapped
    union is an error saying so.

Split
    A line goes to validation when ``int.from_bytes(sha256(seed + source_ref)[:8], "big") / 2**64
    < validation_fraction``: deterministic, independent of line order, and stable when lines
    are added (an old line never changes side). See :func:`split_manifest` for the one
    exception that keeps both sides non-empty on tiny manifests.

Publishing
    :func:`split_manifest` writes while it validates, so on a :class:`ManifestError` its outputs
    are half written. Callers must write to temporary objects (a temp file, or a staging S3 key)
    and publish them only when the call returns.

Converters
    :func:`from_label_studio` and :func:`from_coco` turn the exports of those tools into manifest
    line dicts; :func:`rewrite_source_refs` moves the images of an imported manifest under a new
    S3 prefix. Write their output with :func:`write_manifest`. Boxes become whole pixels by
    rounding both edges half up (not the size), so touching boxes stay touching; float noise of
    up to half a pixel past the border is clamped, and a box under one pixel is widened to one
    pixel rather than dropped. Converters check everything first and raise one ManifestError
    (``line`` is None; ``field`` names the task, image or annotation id) before yielding. Image
    paths stay inside their prefix (no '..', '.', empty segment, absolute path, backslash or
    percent-encoded separator).

This module is pure Python: S3 I/O is the callers' job (they pass iterables of lines and file
objects), so everything here is testable without Airflow or AWS.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from sagemaker_vision.config import s3_key_problem, unsafe_key_character

__all__ = [
    "OBJECT_DETECTION_TYPE",
    "MAX_EXACT_INT",
    "MAX_LINE_BYTES",
    "MAX_LINE_CHARS",
    "ClassIdRemap",
    "CocoConversion",
    "LabelStudioConversion",
    "LineError",
    "ManifestError",
    "ManifestProblem",
    "ManifestStats",
    "SplitResult",
    "check_label_attribute",
    "dumps_line",
    "from_coco",
    "from_label_studio",
    "iter_lines",
    "load_document",
    "load_line",
    "normalise_class_ids",
    "parse_json",
    "parse_line",
    "rewrite_source_refs",
    "split_manifest",
    "validate_manifest",
    "write_manifest",
]

OBJECT_DETECTION_TYPE = "groundtruth/object-detection"
# Ground Truth writes "groundtruth/object-detection"; the built-in algorithm's own augmented-manifest
# example (SageMaker guide, object-detection.md, "Train with the augmented manifest image format")
# writes "groundtruth/object_detection". The algorithm ignores the metadata, so both are accepted.
OBJECT_DETECTION_TYPES = frozenset((OBJECT_DETECTION_TYPE, "groundtruth/object_detection"))

# str(ManifestError) lists this many problems; the error object keeps up to MAX_KEPT_PROBLEMS
# (so a manifest that is wrong on every line cannot exhaust memory) and counts all of them.
MAX_LISTED_PROBLEMS = 50
MAX_KEPT_PROBLEMS = 1000

_NUMBER_TYPES = frozenset((int, float))  # exact types: a JSON true/false is not a coordinate
_MISSING = object()
_CLASS_MAP_CACHE_SIZE = 4096
_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_UNPACK_U64 = struct.Struct(">Q").unpack_from


# --------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One problem: where it is (source, 1-based line or None for the whole input) and what."""

    line: int | None
    field: str
    message: str
    source: str = "<manifest>"

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


def _rebuild_manifest_error(problems: list[ManifestProblem], num_problems: int) -> ManifestError:
    return ManifestError(problems, num_problems=num_problems)


class ManifestError(ValueError):
    """Bad labels. ``problems`` holds the first :data:`MAX_KEPT_PROBLEMS`, ``num_problems`` counts all.

    ``str()`` lists the first :data:`MAX_LISTED_PROBLEMS` as ``file:line: field: message``, then
    ``... and N more``.
    """

    def __init__(self, problems: Sequence[ManifestProblem], *, num_problems: int | None = None) -> None:
        self.problems: list[ManifestProblem] = list(problems)
        self.num_problems: int = max(num_problems or 0, len(self.problems))
        super().__init__(self._render())

    def _render(self) -> str:
        n = self.num_problems
        head = f"{n} problem{'s' if n != 1 else ''} in the labels:"
        listed = [f"  {p}" for p in self.problems[:MAX_LISTED_PROBLEMS]]
        rest = n - len(listed)
        if rest > 0:
            listed.append(f"  ... and {rest} more")
        return "\n".join([head, *listed])

    def __str__(self) -> str:
        return self._render()

    def __reduce__(self) -> tuple[Any, ...]:
        # The default reduce would call __init__(message); keep the structured problems instead.
        return _rebuild_manifest_error, (self.problems, self.num_problems)


class _Problems:
    """Collects problems for one input; raises them all at once."""

    __slots__ = ("source", "kept", "count")

    def __init__(self, source: str) -> None:
        self.source = source
        self.kept: list[ManifestProblem] = []
        self.count = 0

    def add(self, line: int | None, path: str, message: str) -> None:
        self.count += 1
        if len(self.kept) < MAX_KEPT_PROBLEMS:
            self.kept.append(ManifestProblem(line, path, message, self.source))

    def raise_if_any(self) -> None:
        if self.count:
            raise ManifestError(self.kept, num_problems=self.count)


def _finite_number(value: Any) -> bool:
    """An int or float (not a boolean) that every JSON reader reads as the same finite number.

    Never raises: ``math.isfinite`` of a 400-digit int raises OverflowError, so ints are compared
    with :data:`MAX_EXACT_INT` instead.
    """
    kind = type(value)
    if kind is int:
        return -MAX_EXACT_INT <= value <= MAX_EXACT_INT
    return kind is float and math.isfinite(value)


def _is_text(value: str) -> bool:
    """False for a str holding a lone surrogate (no UTF-8 file can hold it)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _positive_int(value: Any) -> bool:
    return type(value) is int and 0 < value <= MAX_EXACT_INT


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Reading and parsing: the one reader and the one parser every manifest line goes through

# Ground Truth's limit on one manifest line (SageMaker Developer Guide, "Input data" and "Use an
# input manifest file"): "Each JSON object in the manifest file can be no larger than 100,000
# characters." The pipeline's manifests feed Ground Truth (label adjustment, chaining) as well as
# training, so every line is held to it.
MAX_LINE_CHARS = 100_000
# The most bytes MAX_LINE_CHARS characters take in UTF-8 (4 each): the reader's cap, before decoding.
MAX_LINE_BYTES = 4 * MAX_LINE_CHARS
# RFC 8259, section 6: integers in [-(2**53)+1, 2**53-1] are the ones parsers agree on (IEEE 754
# doubles); a larger one may be read as another number by the next tool. Sizes, ids and pixel
# coordinates are all far below it.
MAX_EXACT_INT = 2**53 - 1
_INT_SCREEN_DIGITS = 16  # any integer of 16 or more digits is checked against MAX_EXACT_INT


class LineError(ValueError):
    """One line (or document) that cannot be used: ``field`` ('' for the whole line) and why."""

    def __init__(self, field: str, message: str, line: int | None = None) -> None:
        self.field = field
        self.message = message
        self.line = line  # the line within a multi-line document, when known
        super().__init__(f"{field}: {message}" if field else message)


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


class _BadValue(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


class _Marked:
    """Stands for a refused value on the slow parse that locates it (see _locate)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return record


def _int_message(text: str) -> str | None:
    digits = len(text) - (text[0] == "-")
    if digits > 20:  # int() of thousands of digits is slow (and refused past 4300): not needed
        return f"integer of {digits} digits is outside the exact range +-{MAX_EXACT_INT} (RFC 8259)"
    if abs(int(text)) > MAX_EXACT_INT:
        return f"integer {text} is outside the exact range +-{MAX_EXACT_INT} (RFC 8259)"
    return None


def _checked_int(text: str) -> int:
    if len(text) < _INT_SCREEN_DIGITS:
        return int(text)  # at most 15 digits: always exact
    message = _int_message(text)
    if message:
        raise _BadValue(message)
    return int(text)


def _float_message(text: str) -> str | None:
    if not math.isfinite(float(text)):
        return f"{_short(text, 40)} is not a finite number: it overflows a 64-bit float"
    return None


def _checked_float(text: str) -> float:
    message = _float_message(text)
    if message:
        raise _BadValue(message)
    return float(text)


def _constant_message(text: str) -> str:
    return f"{text} is not a finite number (RFC 8259 permits no NaN or Infinity in JSON)"


def _refuse_constant(text: str) -> Any:
    raise _BadValue(_constant_message(text))


# The checking decoder refuses duplicate keys and bad numbers as it parses; the marking one parses
# again after a refusal (or when the text escapes a surrogate) to say where the refused value is.
_CHECKING = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_int=_checked_int,
                             parse_float=_checked_float, parse_constant=_refuse_constant)
_MARKING = json.JSONDecoder(
    object_pairs_hook=lambda pairs: _MarkedObject(pairs),
    parse_int=lambda t: _Marked(m) if (m := _int_message(t)) else int(t),
    parse_float=lambda t: _Marked(m) if (m := _float_message(t)) else float(t),
    parse_constant=lambda t: _Marked(_constant_message(t)),
)


class _MarkedObject(dict):
    """A decoded object that remembers its key order and its first duplicate key, if any."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.duplicate: str | None = None
        if len(self) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    self.duplicate = key
                    break
                seen.add(key)


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _locate(value: Any) -> tuple[str, str] | None:
    """(path, message) of the first refused thing in a value decoded by _MARKING, else None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Marked):
            return path, item.message
        if isinstance(item, str):
            bad = next((i for i, ch in enumerate(item) if "\ud800" <= ch <= "\udfff"), None)
            if bad is not None:
                return path, f"string has a lone surrogate \\u{ord(item[bad]):04x} at character {bad}, not text"
        elif isinstance(item, dict):
            if getattr(item, "duplicate", None) is not None:
                return _path(path, item.duplicate), (
                    "duplicate key: an object may name a key once (parsers disagree on which value wins)")
            stack.extend((_path(path, k), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((_path(path, i), v) for i, v in reversed(list(enumerate(item))))
    return None


def _decode_json(text: str) -> Any:
    """Parse JSON text strictly: unique keys, exact integers, finite numbers, real text.

    Raises LineError naming the field (a JSON path such as ``bb.annotations[0].left``).
    """
    try:
        return _CHECKING.decode(text)
    except json.JSONDecodeError as exc:
        raise LineError("", f"malformed JSON: {exc.msg} at column {exc.colno}", exc.lineno) from None
    except (_Duplicate, _BadValue, RecursionError, ValueError) as exc:
        first = exc
    # Parse again, marking instead of raising, to say where the refused value is.
    try:
        located = _locate(_MARKING.decode(text))
    except RecursionError:
        located = None
    if located is None:
        if isinstance(first, _Duplicate):
            located = (first.key, "duplicate key: an object may name a key once")
        elif isinstance(first, _BadValue):
            located = ("", first.message)
        elif isinstance(first, RecursionError):
            located = ("", "nested too deeply for the JSON parser")
        else:
            located = ("", f"malformed JSON: {first}")
    raise LineError(*located)


def _check_decoded(value: Any, text: str) -> None:
    """Refuse a lone surrogate, which only an escape (``\\udxxx``) can put in decoded text."""
    if "\\ud" not in text and "\\uD" not in text:
        return
    located = _locate(_MARKING.decode(text))
    if located is not None:
        raise LineError(*located)


def parse_json(text: str) -> Any:
    """Strict JSON (see :func:`parse_line`) of one line or document; LineError names the field."""
    value = _decode_json(text)
    _check_decoded(value, text)
    return value


def _parse(raw: bytes | str, first: bool) -> tuple[str, dict[str, Any]] | None:
    """(text, record) of one manifest line, None for a blank line; LineError says what is wrong."""
    if type(raw) is bytes:
        if len(raw) > MAX_LINE_BYTES:
            raise LineError("", f"line is {len(raw)} bytes, over the {MAX_LINE_BYTES}-byte cap (Ground Truth "
                                f"allows {MAX_LINE_CHARS} characters per manifest object)")
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise LineError("", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    elif isinstance(raw, str):
        text = raw
    else:
        raise LineError("", f"must be text or bytes, got {type(raw).__name__}")
    if not text or text.isspace():
        return None
    if first and text[0] == "\ufeff":
        text = text[1:]  # a byte-order mark from a Windows editor
    if len(text) > MAX_LINE_CHARS and len(text.rstrip("\r\n")) > MAX_LINE_CHARS:
        raise LineError("", f"line is {len(text.rstrip(chr(13) + chr(10)))} characters, over Ground Truth's "
                            f"{MAX_LINE_CHARS} per manifest object")
    rec = parse_json(text)
    if type(rec) is not dict:
        raise LineError("", f"must be a JSON object, got {_json_type(rec)}")
    return text, rec


def parse_line(raw: bytes | str, *, first: bool = False) -> dict[str, Any] | None:
    """The record of one manifest line (None when blank), parsed as every reader of manifests must.

    UTF-8 (the manifest format), at most :data:`MAX_LINE_CHARS` characters, one JSON object whose
    keys are unique at every depth (the validator and the next tool must see the same value),
    whose integers are exact (:data:`MAX_EXACT_INT`) and whose numbers are finite. ``first``
    allows a byte-order mark. Raises :class:`LineError` naming the field.
    """
    parsed = _parse(raw, first)
    return None if parsed is None else parsed[1]


def load_line(raw: bytes | str, *, source: str, lineno: int) -> dict[str, Any] | None:
    """:func:`parse_line`, raising a ManifestError that names ``source:lineno`` and the field."""
    try:
        return parse_line(raw, first=lineno == 1)
    except LineError as exc:
        raise ManifestError([ManifestProblem(lineno, exc.field, exc.message, source)]) from None


def load_document(data: bytes | str, *, source: str) -> Any:
    """A whole JSON document (a COCO file, a Label Studio export), parsed as strictly as a line.

    Errors name ``source:line`` (the line of the document where the problem is) and the field.
    """
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
            raise ManifestError([ManifestProblem(line, "", f"not UTF-8: {exc.reason} at byte {exc.start} "
                                                           f"(column {column})", source)]) from None
    else:
        text = data
    text = text.removeprefix("\ufeff")
    try:
        return parse_json(text)
    except LineError as exc:
        # A value's line is not known (the path in ``field`` says where it is), unless the document
        # is one line, as exports usually are.
        line = exc.line if exc.line is not None else (1 if "\n" not in text.rstrip() else None)
        raise ManifestError([ManifestProblem(line, exc.field, exc.message, source)]) from None


def iter_lines(fileobj: IO[bytes] | IO[str] | Any, chunk_size: int = 1 << 20, *,
               max_line_bytes: int = MAX_LINE_BYTES, source: str = "<manifest>",
               keepends: bool = False) -> Iterator[bytes | str]:
    """Yield the lines of a binary or text file object, split at ``\\n``, in linear time.

    Reads with ``fileobj.read(chunk_size)``, so it works on anything with ``read``: local files,
    ``io.BytesIO`` and a boto3 ``StreamingBody``. A line spanning chunks is kept as a list of its
    pieces and joined once, so each byte is copied a bounded number of times whatever the line's
    length (adding each chunk to the pending text would copy it once per chunk: quadratic). A line
    longer than ``max_line_bytes`` (the newline not counted) raises a ManifestError naming
    ``source:line`` and the cap as soon as the cap is passed, after reading at most one chunk more.
    Memory is one chunk plus one line. ``keepends`` keeps each line's ``\\n``.
    """
    parts: list[Any] = []
    size = 0
    lineno = 1
    newline: Any = None
    empty: Any = None

    def too_long(length: int) -> ManifestError:
        return ManifestError([ManifestProblem(lineno, "", f"line is over the cap of {max_line_bytes} bytes "
                                                          f"(read {length} so far; Ground Truth allows "
                                                          f"{MAX_LINE_CHARS} characters per manifest object)",
                                              source)])

    while True:
        chunk = fileobj.read(chunk_size)
        if not chunk:
            break
        if newline is None:
            newline, empty = (b"\n", b"") if isinstance(chunk, bytes | bytearray) else ("\n", "")
        start = 0
        while True:
            end = chunk.find(newline, start)
            if end < 0:
                if start < len(chunk):
                    size += len(chunk) - start
                    if size > max_line_bytes:
                        raise too_long(size)
                    parts.append(chunk[start:] if start else chunk)
                break
            if size + end - start > max_line_bytes:
                raise too_long(size + end - start)
            piece = chunk[start:end + 1 if keepends else end]
            if parts:
                parts.append(piece)
                line = empty.join(parts)
                parts = []
            else:
                line = piece
            size = 0
            yield bytes(line) if isinstance(line, bytearray) else line
            lineno += 1
            start = end + 1
    if parts:
        line = empty.join(parts)
        yield bytes(line) if isinstance(line, bytearray) else line


# --------------------------------------------------------------------------------------------
# Small helpers


def dumps_line(record: Mapping[str, Any]) -> str:
    """One compact manifest line (no trailing newline); NaN/Infinity are refused."""
    return _COMPACT.encode(record)


def write_manifest(records: Iterable[Mapping[str, Any]], out: IO[str]) -> int:
    """Write records as compact JSON Lines to ``out``; return how many were written."""
    n = 0
    for record in records:
        out.write(_COMPACT.encode(record))
        out.write("\n")
        n += 1
    return n


def check_label_attribute(label_attribute: Any) -> str:
    """Return ``label_attribute`` if Ground Truth would accept it, else raise ManifestError.

    Ground Truth forbids ``-metadata`` in the name (it owns ``<attr>-metadata``) and reserves a
    trailing ``-ref`` for semantic-segmentation style labels that point at another S3 object.
    """
    problem = None
    if not isinstance(label_attribute, str) or not label_attribute.strip():
        problem = f"must be a non-empty string, got {_short(label_attribute)}"
    elif label_attribute in ("source-ref", "source"):
        problem = f"{label_attribute!r} is the image reference, not a label attribute"
    elif "-metadata" in label_attribute:
        problem = f"{label_attribute!r} may not contain '-metadata' (Ground Truth reserves it)"
    elif label_attribute.endswith("-ref"):
        problem = (
            f"{label_attribute!r} may not end in '-ref' (that marks semantic segmentation labels, "
            "not bounding boxes)"
        )
    if problem:
        raise ManifestError([ManifestProblem(None, "label_attribute", problem, "<arguments>")])
    return label_attribute


def _s3_ref_problem(ref: Any) -> str | None:
    """Why ``ref`` is not an ``s3://bucket/key`` URI, or None when it is."""
    if not isinstance(ref, str):
        return f"must be a string, got {_json_type(ref)}"
    if not ref.startswith("s3://"):
        return f"must be an s3:// URI, got {_short(ref)}"
    slash = ref.find("/", 5)
    if slash <= 5:
        return f"must name a bucket and a key, got {_short(ref)}"
    if slash == len(ref) - 1 or ref.endswith("/"):
        return f"must name an object, not a prefix, got {_short(ref)}"
    return None


def _s3_prefix(value: Any, name: str) -> str:
    """Check an ``s3://bucket[/path]`` prefix argument and return it ending in '/'."""
    if not isinstance(value, str) or not value.startswith("s3://") or len(value) <= 5 or value[5] == "/":
        raise ValueError(f"{name} must be an s3://bucket/prefix URI, got {_short(value)}")
    return value if value.endswith("/") else value + "/"


_ENCODED_SEPARATOR = re.compile(r"%(?:2[eEfF]|5[cC]|25)")
_DRIVE = re.compile(r"[A-Za-z]:")


def _relative_path_problem(path: str) -> str | None:
    """Why ``path`` (an image path relative to an images prefix) could leave or blur that prefix, or None.

    Refused: absolute paths (``/x``, ``C:x``), backslashes (a separator on Windows tools), '.'
    and '..' segments, empty segments (``a//b``, a trailing '/'), control characters (C0, DEL, C1,
    U+2028/U+2029: ``config.UNSAFE_KEY_CHAR_RE``), a
    percent-encoded '.', '/', '\\' or '%' (``%2e%2e`` is '..' to whatever URL-decodes it), and text
    that is not valid Unicode. S3 itself never normalises a key, but presigners, browsers, sync
    tools and file systems may: the only paths kept are those that mean the same to all of them.
    """
    if not path:
        return "is empty"
    if path[0] == "/" or _DRIVE.match(path):
        return "is an absolute path; it must be relative to the images prefix"
    if "\\" in path:
        return "has a backslash, a path separator to Windows tools ('..\\' climbs out of the prefix there)"
    control = unsafe_key_character(path)  # the rule the sync applies to the keys it writes
    if control:
        return control
    if _ENCODED_SEPARATOR.search(path):
        return "has a percent-encoded '.', '/', '\\' or '%' ('%2e%2e' is '..' once URL-decoded)"
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "has a '.' or '..' segment, which would resolve outside (or elsewhere in) the images prefix"
    if "" in segments:
        return "has an empty segment ('//' or a trailing '/')"
    try:
        path.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None


def _confined_ref(prefix: str, path: str) -> str:
    """``prefix`` + ``path`` when ``path`` stays inside the prefix; ValueError saying why not."""
    problem = _relative_path_problem(path)
    if problem:
        raise ValueError(f"{_short(path)} {problem}")
    ref = prefix + path
    problem = s3_key_problem(ref[ref.find("/", 5) + 1:])
    if problem:
        raise ValueError(f"{_short(path)} {problem}")
    return ref


def _creation_date(value: str | None) -> str:
    # Ground Truth's format: naive UTC with microseconds, e.g. 2018-10-18T22:18:13.527256.
    return value if value is not None else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


# --------------------------------------------------------------------------------------------
# Class ids


@dataclass(frozen=True)
class ClassIdRemap:
    """A contiguous class map and the mapping from the original ids to its ids."""

    class_map: dict[int, str]
    id_remap: dict[int, int]

    @property
    def is_identity(self) -> bool:
        return all(old == new for old, new in self.id_remap.items())


def _class_id(key: Any) -> int | None:
    """A class-map key as a non-negative int ("3" or 3), or None if it is not one."""
    if type(key) is int:
        return key if key >= 0 else None
    if type(key) is str and key.isascii() and key.isdigit() and (key == "0" or key[0] != "0"):
        return int(key)
    return None


def normalise_class_ids(class_map: Mapping[int, str] | Mapping[str, str]) -> ClassIdRemap:
    """Map the ids of ``class_map`` to ``0..n-1`` in ascending order of the original id.

    Keys may be ints or decimal strings (as in a manifest's class-map or a JSON round trip);
    names must be unique non-empty strings. ``{0: "a", 3: "b"}`` gives class map
    ``{0: "a", 1: "b"}`` and remap ``{0: 0, 3: 1}``; an already contiguous map gives the
    identity. Raises ValueError naming the offending key.
    """
    if not isinstance(class_map, Mapping) or not class_map:
        raise ValueError(f"class_map must be a non-empty mapping of id to name, got {_short(class_map)}")
    by_id: dict[int, str] = {}
    seen_names: dict[str, int] = {}
    for key, name in class_map.items():
        cid = _class_id(key)
        if cid is None:
            raise ValueError(f"class_map[{key!r}]: key must be a non-negative integer id")
        if cid in by_id:
            raise ValueError(f"class_map[{key!r}]: id {cid} appears twice")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_map[{key!r}]: name must be a non-empty string, got {_short(name)}")
        if name in seen_names:
            raise ValueError(f"class_map[{key!r}]: name {name!r} is also used by id {seen_names[name]}")
        by_id[cid] = name
        seen_names[name] = cid
    ordered = sorted(by_id)
    return ClassIdRemap(
        class_map={new: by_id[old] for new, old in enumerate(ordered)},
        id_remap={old: new for new, old in enumerate(ordered)},
    )


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


class _ClassMaps:
    """The union of the per-line class-maps, checked for agreement as lines arrive.

    ``fixed`` (a caller-given full map) closes the union: a line may then only use its ids.
    """

    def __init__(self, meta_attr: str, problems: _Problems, fixed: dict[int, str] | None) -> None:
        self.path = f"{meta_attr}.class-map"
        self.problems = problems
        self.closed = fixed is not None
        self.names: dict[int, str] = dict(fixed or {})
        self.ids_by_name: dict[str, int] = {name: cid for cid, name in self.names.items()}
        self.first_line: dict[int, int] = {}
        # Lines usually repeat a handful of class-maps; remember the verdict for each.
        self._cache: dict[tuple[Any, ...], frozenset[int]] = {}
        self._last: Any = _MISSING
        self._last_ids: frozenset[int] = frozenset()

    def ids_of(self, class_map: Any, lineno: int) -> frozenset[int] | None:
        """The ids a line's class-map allows, or None (after reporting) if it is invalid."""
        if class_map is self._last or class_map == self._last:
            return self._last_ids
        try:
            key = tuple(class_map.items())
            ids = self._cache.get(key)
        except (AttributeError, TypeError):  # not a dict, or unhashable names: check() says why
            key, ids = None, None
        if ids is None:
            ids = self._check(class_map, lineno)
            if ids is None:
                return None
            if key is not None:
                if len(self._cache) >= _CLASS_MAP_CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = ids
        self._last, self._last_ids = class_map, ids
        return ids

    def _check(self, class_map: Any, lineno: int) -> frozenset[int] | None:
        add, path = self.problems.add, self.path
        if class_map is None:
            add(lineno, path, "missing")
            return None
        if type(class_map) is not dict:
            add(lineno, path, f"must be an object of id to name, got {_json_type(class_map)}")
            return None
        ok = True
        ids: list[int] = []
        local_names: dict[str, int] = {}
        for key, name in class_map.items():
            cid = _class_id(key)
            kpath = f'{path}["{key}"]'
            if cid is None:
                add(lineno, kpath, "key must be a non-negative integer id")
                ok = False
                continue
            if type(name) is not str or not name.strip():
                add(lineno, kpath, f"name must be a non-empty string, got {_short(name)}")
                ok = False
                continue
            if name in local_names:
                add(lineno, kpath, f"name {name!r} is also used by id {local_names[name]} on this line")
                ok = False
                continue
            local_names[name] = cid
            known = self.names.get(cid)
            if known is None:
                if self.closed:
                    add(lineno, kpath, f"id {cid} ({name!r}) is not in the class_map given to split_manifest")
                    ok = False
                    continue
                other = self.ids_by_name.get(name)
                if other is not None:
                    add(lineno, kpath, f"name {name!r} has id {cid} here but id {other}{self._where(other)}")
                    ok = False
                    continue
                self.names[cid] = name
                self.ids_by_name[name] = cid
                self.first_line[cid] = lineno
            elif known != name:
                add(lineno, kpath, f"id {cid} is {name!r} here but {known!r}{self._where(cid)}")
                ok = False
                continue
            ids.append(cid)
        return frozenset(ids) if ok else None

    def _where(self, cid: int) -> str:
        line = self.first_line.get(cid)
        return f" on line {line}" if line is not None else " in the given class_map"


def _image_size_problems(add: Callable[[int | None, str, str], None], lineno: int, path: str,
                         sizes: Any) -> None:
    """Report why ``image_size`` is not ``[{"width": W, "height": H, "depth": D}]``."""
    if sizes is _MISSING:
        add(lineno, path, "missing")
        return
    if type(sizes) is not list or len(sizes) != 1:
        add(lineno, path, f"must be a list of one {{width, height, depth}} object, got {_short(sizes)}")
        return
    size = sizes[0]
    if type(size) is not dict:
        add(lineno, f"{path}[0]", f"must be an object, got {_json_type(size)}")
        return
    for name in ("width", "height"):
        value = size.get(name, _MISSING)
        if value is _MISSING:
            add(lineno, f"{path}[0].{name}", "missing")
        elif not _positive_int(value):
            add(lineno, f"{path}[0].{name}", f"must be a positive integer, got {_short(value)}")
    depth = size.get("depth")
    if depth is not None and not _positive_int(depth):
        add(lineno, f"{path}[0].depth", f"must be a positive integer, got {_short(depth)}")


def _annotation_problems(add: Callable[[int | None, str, str], None], lineno: int, path: str,
                         ann: Any, ids: frozenset[int] | None, width: int | None,
                         height: int | None) -> int:
    """Report everything wrong with one annotation; return how many problems were found."""
    found = 0

    def bad(where: str, message: str) -> None:
        nonlocal found
        found += 1
        add(lineno, where, message)

    if type(ann) is not dict:
        bad(path, f"must be an object, got {_json_type(ann)}")
        return found
    cid = ann.get("class_id", _MISSING)
    if cid is _MISSING:
        bad(f"{path}.class_id", "missing")
    elif type(cid) is not int:
        bad(f"{path}.class_id", f"must be an integer, got {_short(cid)}")
    elif ids is not None and cid not in ids:
        bad(f"{path}.class_id", f"{cid} is not in the class-map (ids {sorted(ids)})")
    box: dict[str, float] = {}
    for name in ("left", "top", "width", "height"):
        value = ann.get(name, _MISSING)
        if value is _MISSING:
            bad(f"{path}.{name}", "missing")
        elif not _finite_number(value):
            bad(f"{path}.{name}", f"must be a finite number (integers within +-{MAX_EXACT_INT}), "
                                  f"got {_short(value)}")
        else:
            box[name] = value
    # Each axis on its own, so that a bad height does not hide a box poking out sideways.
    for start, size, limit in (("left", "width", width), ("top", "height", height)):
        lo, extent = box.get(start), box.get(size)
        if extent is not None and extent <= 0:
            bad(f"{path}.{size}", f"must be positive, got {extent}")
        if lo is not None and lo < 0:
            bad(f"{path}.{start}", f"box is outside the image: {start} {lo} < 0")
        if lo is not None and extent is not None and limit is not None and lo + extent > limit:
            bad(path, f"box is outside the image: {start} + {size} = {lo + extent} > image {size} {limit}")
    return found


@dataclass
class _Side:
    """One output of the split, holding back a single line (see _scan)."""

    out: IO[str]
    count: int = 0
    held: str | None = None
    held_key: int = 0


def _scan(lines: Iterable[str | bytes], *, label_attribute: str, source: str, seed: str = "",
          class_map: Mapping[int, str] | Mapping[str, str] | None = None,
          validation_fraction: float | None = None, train_out: IO[str] | None = None,
          validation_out: IO[str] | None = None) -> tuple[ManifestStats, SplitResult | None]:
    """The one pass behind validate_manifest and split_manifest (split when outputs are given)."""
    attr = check_label_attribute(label_attribute)
    meta_attr = attr + "-metadata"
    problems = _Problems(source)
    add = problems.add

    remap: dict[int, int] | None = None
    fixed: dict[int, str] | None = None
    if class_map is not None:
        normalised = normalise_class_ids(class_map)
        fixed = {old: normalised.class_map[new] for old, new in normalised.id_remap.items()}
        if not normalised.is_identity:
            remap = normalised.id_remap
    classes = _ClassMaps(meta_attr, problems, fixed)
    ids_of = classes.ids_of

    splitting = train_out is not None
    threshold = math.ceil(validation_fraction * 2**64) if splitting else 0
    train = _Side(train_out) if splitting else None
    valid = _Side(validation_out) if splitting else None
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

    for lineno, raw in enumerate(lines, 1):
        # The one parser (parse_line): what is validated here is exactly what is written out.
        try:
            parsed = _parse(raw, lineno == 1)
        except LineError as exc:
            add(lineno, exc.field, exc.message)
            num_lines += 1
            continue
        if parsed is None:
            continue  # blank lines are tolerated (a trailing newline, an editor's empty line)
        text, rec = parsed
        num_lines += 1

        # source-ref: an s3:// object, once per manifest.
        ref = rec.get("source-ref", _MISSING)
        key = 0
        if (type(ref) is str and ref.startswith("s3://") and 5 < ref.find("/", 5) < len(ref) - 1
                and ref[-1] != "/"):
            key = unpack(sha256(seed_bytes + ref.encode()).digest())[0]
            if key in seen:
                add(lineno, "source-ref", f"duplicate {ref!r}: already on an earlier line")
            else:
                seen.add(key)
        elif ref is _MISSING:
            add(lineno, "source-ref", "missing")
        else:
            add(lineno, "source-ref", _s3_ref_problem(ref) or "invalid")

        # <attr>-metadata: class-map (agreeing with every other line) and the job type.
        meta = rec.get(meta_attr, _MISSING)
        ids: frozenset[int] | None = None
        if type(meta) is dict:
            ids = ids_of(meta.get("class-map"), lineno)
            job_type = meta.get("type")
            if job_type is not None and (type(job_type) is not str or job_type not in OBJECT_DETECTION_TYPES):
                add(lineno, f"{meta_attr}.type",
                    f"must be {' or '.join(map(repr, sorted(OBJECT_DETECTION_TYPES)))} for bounding boxes, "
                    f"got {_short(job_type)}")
        elif meta is _MISSING:
            add(lineno, meta_attr, "missing")
        else:
            add(lineno, meta_attr, f"must be an object, got {_json_type(meta)}")

        # <attr>: image_size and the boxes inside it.
        label = rec.get(attr, _MISSING)
        anns: Any = None
        if type(label) is dict:
            sizes = label.get("image_size", _MISSING)
            width = height = None
            if type(sizes) is list and len(sizes) == 1 and type(size := sizes[0]) is dict:
                w_, h_, d_ = size.get("width"), size.get("height"), size.get("depth")
                if (type(w_) is int and w_ > 0 and type(h_) is int and h_ > 0
                        and (d_ is None or (type(d_) is int and d_ > 0))):
                    width, height = w_, h_
            if width is None:
                _image_size_problems(add, lineno, size_path, sizes)
            anns = label.get("annotations", _MISSING)
            if type(anns) is list:
                for i, ann in enumerate(anns):
                    # Fast path for a well-formed box; anything else gets the precise report.
                    if type(ann) is dict:
                        cid = ann.get("class_id")
                        left, top, w, h = ann.get("left"), ann.get("top"), ann.get("width"), ann.get("height")
                        if (type(cid) is int and ids is not None and cid in ids
                                and type(left) in number_types and type(top) in number_types
                                and type(w) in number_types and type(h) in number_types
                                and width is not None
                                and 0 <= left and 0 <= top and 0 < w and 0 < h
                                and left + w <= width and top + h <= height):
                            counts[cid] = counts_get(cid, 0) + 1
                            continue
                    _annotation_problems(add, lineno, f"{anns_path}[{i}]", ann, ids, width, height)
                num_boxes += len(anns)
                if not anns:
                    no_boxes += 1
                objects = meta.get("objects") if type(meta) is dict else None
                if objects is not None and (type(objects) is not list or len(objects) != len(anns)):
                    add(lineno, f"{meta_attr}.objects",
                        f"must be a list with one entry per annotation ({len(anns)}), got {_short(objects)}")
            elif anns is _MISSING:
                add(lineno, anns_path, "missing")
            else:
                add(lineno, anns_path, f"must be a list, got {_json_type(anns)}")
        elif label is _MISSING:
            add(lineno, label_path, f"missing (is label_attribute {attr!r} right? keys: {sorted(rec)[:8]})")
        else:
            add(lineno, label_path, f"must be an object, got {_json_type(label)}")

        if not splitting or problems.count:
            continue  # once anything is wrong the outputs are garbage anyway: stop writing

        if remap is None:
            out_text = text if text[-1] == "\n" else text + "\n"
        else:
            for ann in anns:
                ann["class_id"] = remap[ann["class_id"]]
            meta["class-map"] = {str(remap[int(k)]): v for k, v in meta["class-map"].items()}
            out_text = _COMPACT.encode(rec) + "\n"

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

    if num_lines == 0:
        add(None, "", "the manifest is empty (no non-blank lines)")
    elif splitting and num_lines == 1:
        add(None, "", "a train/validation split needs at least 2 images, the manifest has 1")
    if not problems.count and not classes.names:
        add(None, f"{meta_attr}.class-map", "no line names any class; nothing to train on")
    union_ids = sorted(classes.names)
    if splitting and not problems.count and fixed is None and union_ids != list(range(len(union_ids))):
        add(None, f"{meta_attr}.class-map",
            f"class ids {union_ids} are not contiguous 0..{len(union_ids) - 1} as the algorithm needs; "
            "pass class_map=validate_manifest(...).class_map to split_manifest to remap them")
    problems.raise_if_any()

    class_counts = {cid: counts.get(cid, 0) for cid in union_ids}
    stats = ManifestStats(num_lines=num_lines, num_boxes=num_boxes,
                          class_map=dict(sorted(classes.names.items())), class_counts=class_counts,
                          images_without_boxes=no_boxes)
    if not splitting:
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
    stats, _ = _scan(lines, label_attribute=label_attribute, source=source)
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
    if (isinstance(validation_fraction, bool) or not isinstance(validation_fraction, int | float)
            or not 0 < validation_fraction <= 0.5):
        raise ValueError(f"validation_fraction must be a number in (0, 0.5], got {validation_fraction!r}")
    if train_out is None or validation_out is None or train_out is validation_out:
        raise ValueError("train_out and validation_out must be two distinct writable text streams")
    if not isinstance(seed, str):
        raise ValueError(f"seed must be a string, got {_short(seed)}")
    _, result = _scan(lines, label_attribute=label_attribute, source=source, seed=seed,
                      class_map=class_map, validation_fraction=float(validation_fraction),
                      train_out=train_out, validation_out=validation_out)
    assert result is not None  # _scan splits whenever outputs are given
    return result


# --------------------------------------------------------------------------------------------
# Imported manifests


def _common_directory(refs: Iterable[str]) -> str | None:
    """The longest common prefix of ``refs`` that ends in '/' (None when there are no refs)."""
    prefix: str | None = None
    for ref in refs:
        if prefix is None:
            prefix = ref[: ref.rfind("/") + 1]
            continue
        if ref.startswith(prefix):
            continue
        n = 0
        for a, b in zip(prefix, ref, strict=False):
            if a != b:
                break
            n += 1
        prefix = prefix[: prefix.rfind("/", 0, n) + 1]
    return prefix


def _parse_refs(lines: Iterable[str | bytes],
                problems: _Problems) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Yield (line number, record, source-ref) for each usable line; report the others."""
    for lineno, raw in enumerate(lines, 1):
        try:
            rec = parse_line(raw, first=lineno == 1)
        except LineError as exc:
            problems.add(lineno, exc.field, exc.message)
            continue
        if rec is None:
            continue
        ref = rec.get("source-ref", _MISSING)
        why = "missing" if ref is _MISSING else _s3_ref_problem(ref)
        if why:
            problems.add(lineno, "source-ref", why)
            continue
        yield lineno, rec, ref


def rewrite_source_refs(lines: Iterable[str | bytes], *, old_prefix: str | None, new_prefix: str,
                        source: str = "<manifest>") -> Iterator[str]:
    """Yield the manifest lines (compact JSON, ending in newline) with source-refs moved.

    Each ``source-ref`` becomes ``new_prefix`` + its path relative to ``old_prefix``. With
    ``old_prefix=None`` the prefix is the longest common directory of all refs, found in a
    first pass, so ``lines`` must then be re-iterable (a list, or an object whose ``__iter__``
    starts over, such as one that re-opens the S3 object). Bad lines and refs not under
    ``old_prefix`` are collected and raised as one ManifestError after the last line, so write
    the output to a temporary object and publish it only on success.
    """
    new = _s3_prefix(new_prefix, "new_prefix")
    if old_prefix is not None:
        old = _s3_prefix(old_prefix, "old_prefix")
    else:
        if iter(lines) is lines:
            raise TypeError("rewrite_source_refs with old_prefix=None reads the lines twice; pass a "
                            "re-iterable (e.g. a list), not a one-shot iterator or file")
        scan = _Problems(source)
        found = _common_directory(ref for _, _, ref in _parse_refs(lines, scan))
        scan.raise_if_any()
        if not found:
            raise ManifestError([ManifestProblem(None, "", "the manifest is empty", source)])
        old = found
    return _rewrite(lines, old, new, source)


def _rewrite(lines: Iterable[str | bytes], old: str, new: str, source: str) -> Iterator[str]:
    problems = _Problems(source)
    for lineno, rec, ref in _parse_refs(lines, problems):
        if not ref.startswith(old) or len(ref) == len(old):
            problems.add(lineno, "source-ref", f"{ref!r} is not an object under {old!r}")
            continue
        try:
            rec["source-ref"] = _confined_ref(new, ref[len(old):])
        except ValueError as exc:
            problems.add(lineno, "source-ref", f"the path under {old} {str(exc).partition(' ')[2]}")
            continue
        yield _COMPACT.encode(rec) + "\n"
    problems.raise_if_any()


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
        if not _finite_number(value):
            return f"must be a finite number (integers within +-{MAX_EXACT_INT}), got {_short(value)}"
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
        raise ValueError(f"{arg} must be a list of non-empty strings, got {_short(class_names)}")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"{arg} has duplicates: {_short(list(class_names))}")
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
    raw_id = annotation.get("id")
    try:
        numeric = int(raw_id)
    except (TypeError, ValueError):
        numeric = -1
    return stamp, numeric, str(raw_id)


def _ls_image_ref(image: Any, s3_prefix: str | None, images_prefix: str | None = None) -> str:
    """Map ``data.image`` to an s3:// ref, or raise ValueError saying why it cannot be."""
    if not isinstance(image, str) or not image:
        raise ValueError(f"data.image must be a non-empty string, got {_short(image)}")
    if image.startswith("s3://"):
        why = _s3_ref_problem(image)
        if why:
            raise ValueError(f"data.image {why}")
        if images_prefix is not None and not image.startswith(images_prefix):
            raise ValueError(f"data.image {_short(image)} is outside the images prefix {images_prefix}")
        base = images_prefix if images_prefix is not None else image[: image.find("/", 5) + 1]
        try:
            return _confined_ref(base, image[len(base):])
        except ValueError as exc:
            why = str(exc).partition(" ")[2]
            raise ValueError(f"data.image {_short(image)}: the path under {base} {why}") from None
    parts = urlsplit(image)
    if parts.scheme not in ("http", "https") and not image.startswith("/data/"):
        raise ValueError(f"data.image {_short(image)} is neither s3://, http(s):// nor a /data/ path")
    if s3_prefix is None:
        raise ValueError(f"data.image {_short(image)} is not on S3; pass s3_prefix to map it")
    # Local-storage URLs carry the file in the query: /data/local-files/?d=dir/img.jpg
    path = parts.path
    if path.rstrip("/").endswith("local-files"):
        path = parse_qs(parts.query).get("d", [""])[0]
    name = posixpath.basename(unquote(path))
    if not name:
        raise ValueError(f"data.image {_short(image)} has no file name")
    if images_prefix is not None and not s3_prefix.startswith(images_prefix):
        raise ValueError(f"data.image {_short(image)} maps to s3_prefix {s3_prefix}, outside the images prefix "
                         f"{images_prefix}")
    try:
        return _confined_ref(s3_prefix, name)
    except ValueError as exc:
        raise ValueError(f"data.image {_short(image)}: file name {exc}") from None


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
    prefix = _s3_prefix(s3_prefix, "s3_prefix") if s3_prefix is not None else None
    confine = _s3_prefix(images_prefix, "images_prefix") if images_prefix is not None else None
    if isinstance(export, bytes | bytearray | str):
        export = load_document(export, source=source)
    if not isinstance(export, list):
        raise ValueError(f"export must be a list of Label Studio tasks, got {_json_type(export)}")
    problems = _Problems(source)
    unannotated: list[Any] = []
    cancelled = superseded = 0
    # (ref, width, height, [(name, left, top, w, h)]) per kept task, class ids assigned afterwards.
    pending: list[tuple[str, int | None, int | None, list[tuple[str, int, int, int, int]]]] = []
    ref_owner: dict[str, Any] = {}
    names_seen: set[str] = set()

    for index, task in enumerate(export):
        if not isinstance(task, dict):
            problems.add(None, f"tasks[{index}]", f"must be an object, got {_json_type(task)}")
            continue
        tid = task.get("id", f"#{index}")
        where = f"task {tid}"
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            problems.add(None, f"{where}.annotations", f"must be a list, got {_json_type(annotations)}")
            continue
        live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
        cancelled += sum(1 for a in annotations if isinstance(a, dict) and a.get("was_cancelled"))
        if not live:
            unannotated.append(tid)
            continue
        superseded += len(live) - 1
        chosen = max(live, key=_ls_recency)
        apath = f"{where}.annotations[id={chosen.get('id')}]"
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
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
            problems.add(None, f"{apath}.result", f"must be a list, got {_json_type(results)}")
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
                problems.add(None, f"{rpath}.value", f"must be an object, got {_json_type(value)}")
                continue
            ow, oh = item.get("original_width"), item.get("original_height")
            if not _positive_int(ow) or not _positive_int(oh):
                problems.add(None, rpath, f"original_width/original_height must be positive integers, "
                                          f"got {_short(ow)}/{_short(oh)}")
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
                    or not labels[0].strip() or not _is_text(labels[0])):
                problems.add(None, f"{rpath}.value.rectanglelabels",
                             f"must hold exactly one label, got {_short(labels)}")
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
        if width is None and _positive_int(data.get("width")) and _positive_int(data.get("height")):
            width, height = data["width"], data["height"]
        elif width is None and image_size_of is not None:
            try:
                width, height = image_size_of(ref)
            except Exception as exc:  # noqa: BLE001 - any lookup failure becomes a named problem
                problems.add(None, where, f"image_size_of({ref!r}) failed: {exc}")
                continue
        if not _positive_int(width) or not _positive_int(height):
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
    prefix = _s3_prefix(image_prefix, "image_prefix")
    if isinstance(coco, bytes | bytearray | str):
        coco = load_document(coco, source=source)
    if not isinstance(coco, dict):
        raise ValueError(f"coco must be a COCO JSON object, got {_json_type(coco)}")
    problems = _Problems(source)
    add = problems.add

    categories: dict[int, str] = {}
    for i, cat in enumerate(coco.get("categories") or []):
        cid, name = (cat.get("id"), cat.get("name")) if isinstance(cat, dict) else (None, None)
        if type(cid) is not int or not isinstance(name, str) or not name.strip() or not _is_text(name):
            add(None, f"categories[{i}]", f"needs an integer id and a non-empty name, got {_short(cat)}")
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
            add(None, f"images[{i}]", f"must be an object, got {_json_type(img)}")
            continue
        iid, name, w, h = img.get("id"), img.get("file_name"), img.get("width"), img.get("height")
        where = f"image {iid}"
        if iid is None or iid in images:
            add(None, f"images[{i}]", "missing id" if iid is None else f"id {iid} appears twice")
            continue
        if not isinstance(name, str):
            add(None, f"{where}.file_name", f"must be a file name, got {_short(name)}")
            continue
        try:  # a leading "./" (as some exporters write) is the prefix itself; nothing else may leave it
            ref = _confined_ref(prefix, name.removeprefix("./"))
        except ValueError as exc:
            add(None, f"{where}.file_name", str(exc))
            continue
        if not _positive_int(w) or not _positive_int(h):
            add(None, where, f"width/height must be positive integers, got {_short(w)}/{_short(h)}")
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
            add(None, f"annotations[{i}]", f"must be an object, got {_json_type(ann)}")
            continue
        where = f"annotation {ann.get('id', f'#{i}')}"
        image = images.get(ann.get("image_id"))
        if image is None:
            add(None, f"{where}.image_id", f"{_short(ann.get('image_id'))} is not a usable image id")
            continue
        cat = ann.get("category_id")
        if cat not in remap:
            add(None, f"{where}.category_id", f"{_short(cat)} is not a category id ({sorted(remap)})")
            continue
        if ann.get("iscrowd") and not include_crowd:
            crowd += 1
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            add(None, f"{where}.bbox", f"must be [x, y, width, height], got {_short(bbox)}")
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
