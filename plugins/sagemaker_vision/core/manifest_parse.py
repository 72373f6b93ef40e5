"""Manifest text, read and written strictly: the one line reader, the one parser, the one error.

Every manifest line, wherever it is read, goes through :func:`iter_lines` (linear in the input
whatever a line's length, capped at :data:`MAX_LINE_BYTES`) and :func:`parse_line` (UTF-8, at most
Ground Truth's :data:`MAX_LINE_CHARS` characters, one JSON object with unique keys at every depth,
exact integers and finite numbers); :func:`load_document` does the same for a whole COCO file or
Label Studio export. Errors name the file, the line and the field: a :class:`ManifestError`
lists every :class:`ManifestProblem` as ``file:line: field: message``.

Pure Python (no Airflow, no AWS): callers pass iterables of lines and file objects.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeGuard

__all__ = [
    "MAX_EXACT_INT", "MAX_KEPT_PROBLEMS", "MAX_LINE_BYTES", "MAX_LINE_CHARS", "MAX_LISTED_PROBLEMS",
    "LineError", "ManifestError", "ManifestProblem", "Problems", "dumps_line", "iter_lines", "load_document",
    "load_line", "parse_json", "parse_line", "write_manifest",
]

# str(ManifestError) lists this many problems; the error object keeps up to MAX_KEPT_PROBLEMS
# (so a manifest that is wrong on every line cannot exhaust memory) and counts all of them.
MAX_LISTED_PROBLEMS = 50
MAX_KEPT_PROBLEMS = 1000

MISSING: Any = object()  # a key that is absent (None is a JSON null)
COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


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


class Problems:
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


def finite_number(value: Any) -> bool:
    """An int or float (not a boolean) that every JSON reader reads as the same finite number.

    Never raises: ``math.isfinite`` of a 400-digit int raises OverflowError, so ints are compared
    with :data:`MAX_EXACT_INT` instead.
    """
    kind = type(value)
    if kind is int:
        return -MAX_EXACT_INT <= value <= MAX_EXACT_INT
    return kind is float and math.isfinite(value)


def is_text(value: str) -> bool:
    """False for a str holding a lone surrogate (no UTF-8 file can hold it)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def positive_int(value: Any) -> TypeGuard[int]:
    return type(value) is int and 0 < value <= MAX_EXACT_INT


def json_type(value: Any) -> str:
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


def short(value: Any, limit: int = 80) -> str:
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
        return f"{short(text, 40)} is not a finite number: it overflows a 64-bit float"
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
            duplicate = getattr(item, "duplicate", None)
            if duplicate is not None:
                return _path(path, duplicate), (
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


def parse_record(raw: bytes | str, first: bool) -> tuple[str, dict[str, Any]] | None:
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
        raise LineError("", f"must be a JSON object, got {json_type(rec)}")
    return text, rec


def parse_line(raw: bytes | str, *, first: bool = False) -> dict[str, Any] | None:
    """The record of one manifest line (None when blank), parsed as every reader of manifests must.

    UTF-8 (the manifest format), at most :data:`MAX_LINE_CHARS` characters, one JSON object whose
    keys are unique at every depth (the validator and the next tool must see the same value),
    whose integers are exact (:data:`MAX_EXACT_INT`) and whose numbers are finite. ``first``
    allows a byte-order mark. Raises :class:`LineError` naming the field.
    """
    parsed = parse_record(raw, first)
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
        where = exc.line if exc.line is not None else (1 if "\n" not in text.rstrip() else None)
        raise ManifestError([ManifestProblem(where, exc.field, exc.message, source)]) from None


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
    return COMPACT.encode(record)


def write_manifest(records: Iterable[Mapping[str, Any]], out: IO[str]) -> int:
    """Write records as compact JSON Lines to ``out``; return how many were written."""
    n = 0
    for record in records:
        out.write(COMPACT.encode(record))
        out.write("\n")
        n += 1
    return n

