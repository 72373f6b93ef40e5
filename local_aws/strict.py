"""A strict walk of a request against botocore's service model, the way AWS validates it.

``violations(service, operation, params)`` returns every constraint the request breaks:

* required members (``Value null at 'roleArn' failed to satisfy constraint: Member must not be null``),
* unknown members (not in the input shape),
* wrong JSON types (only possible on the wire: botocore checks types client-side),
* enums (``Member must satisfy enum value set: [a, b]``),
* numeric ``min`` / ``max`` (``Member must have value less than or equal to 100``),
* string, list, map and blob lengths (``Member must have length greater than or equal to 1``),
* ``pattern`` as a FULL match (``Member must satisfy regular expression pattern: ...``),

recursing into structures, lists and maps (keys and values).

Used twice, with the same walk: by the emulator's middleware on every request it serves (JSON
protocol bodies via :func:`check_json_request`; sagemaker-runtime and S3 URI labels, headers and
query strings via :func:`rest_request_params`; S3's XML payloads are not decoded), and by the
contract tests at the client (``tests/contract/``), where the parameters are exactly those sent.

What botocore's own client-side validation (``botocore/validate.py``, ``ParamValidator``) leaves
out, in 1.43.117: it checks types, required and unknown members, tagged unions and ``min`` only
(``VALIDATED_METADATA_ATTRS = {'required', 'min', 'document', 'union'}``): string and list ``min``
length and numeric ``min`` value. It checks NO ``max`` at all, no ``enum``, no ``pattern``, no
map length, no map key constraints beyond type, and no blob length. Those are what AWS answers
with ``ValidationException`` after the request has been sent: this module is the emulator's copy
of that server-side check.

Message and member-path format, as AWS writes them (quoted in real error reports):

* ``1 validation error detected: Value 'health_and_personal_care...' at 'trainingJobName' failed to
  satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9])*``
  (aws/sagemaker-python-sdk#384); several errors are joined by ``; `` after ``2 validation errors
  detected:`` (zenml-io/zenml#1502, aws-samples/sagemaker-ml-workflow-with-apache-airflow#3).
* Paths are member names with the first letter lower-cased (``kMSKeyArn`` for ``KMSKeyArn``,
  Kenza-AI/sagify and highsource/bitcoin-a-day#1), dotted through structures; list elements are
  ``<list>.<n>.member`` with n counted from 1 (``tags.1.member.key``, awslabs/coldsnap#378;
  ``pipeline.stages.1.member.actions.1.member.configuration``, aws-quickstart/quickstart-taskcat-ci#60).
* Map entries are reported at the map: ``Map keys must satisfy constraint: [...]`` (boto/boto3#2601)
  and ``Map value must satisfy constraint: [...]`` (quickstart-taskcat-ci#60); a list of scalars
  likewise: ``Member must satisfy constraint: [...]``.

Patterns are Java regular expressions (AWS validates with ``java.util.regex``, full match as in
``Pattern.matches``). They are compiled with the ``regex`` package after a small translation, see
:func:`java_to_python`: Java's POSIX classes ``\\p{Print}``, ``\\p{Alnum}``, ``\\p{ASCII}`` ... are
ASCII-only in Java but Unicode-aware in ``regex``, so they are spelled out, and so are ``\\d \\w \\s``
and their negations (ASCII in Java); ``\\p{L}`` and the other Unicode categories mean the same in
both; a UTF-16 surrogate pair ``\\uD800\\uDC00`` (how Java patterns name supplementary
characters) becomes one code point; ``\\uXXXX`` takes exactly four hex digits in both. Java's
``.`` (no DOTALL flag; no model pattern sets one) matches no line terminator, which Java counts as
``\\n \\r \\u0085 \\u2028 \\u2029`` (``Pattern``, "Line terminators"), while Python's ``.`` leaves out
only ``\\n``: outside a character class it is spelled out as ``[^\\n\\r\\u0085\\u2028\\u2029]``.

A match that exceeds ``PATTERN_TIMEOUT_SECONDS`` (catastrophic backtracking) is reported as a
pattern violation, never waved through: the emulator errs on the strict side.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import regex
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

log = logging.getLogger(__name__)

PATTERN_TIMEOUT_SECONDS = 0.25  # guard against catastrophic backtracking in a hostile value

_session_lock = threading.Lock()


@functools.cache
def service_model(name: str) -> ServiceModel:
    """botocore's service model for ``name`` (loaded once per process)."""
    with _session_lock:
        return _session().get_service_model(name)


@functools.cache
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


@functools.cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


@dataclass(frozen=True)
class Violation:
    """One broken constraint: where (AWS member path), what value, which constraint."""

    path: str
    value: Any
    constraint: str
    kind: str  # required | unknown | type | enum | range | length | pattern

    def __str__(self) -> str:
        shown = "null" if self.value is None and self.kind == "required" else f"'{_java_repr(self.value)}'"
        return f"Value {shown} at '{self.path}' failed to satisfy constraint: {self.constraint}"


def message(found: list[Violation]) -> str:
    """AWS's ValidationException message for ``found`` (non-empty)."""
    count = len(found)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(str(v) for v in found)


class StrictValidationError(ValueError):
    """Raised by :func:`check`; ``.violations`` holds what was found."""

    def __init__(self, service: str, operation: str, found: list[Violation]) -> None:
        super().__init__(f"{service}.{operation}: {message(found)}")
        self.service, self.operation, self.violations = service, operation, found


def check(service: str, operation: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`StrictValidationError` if ``params`` break the model."""
    found = violations(service, operation, params)
    if found:
        raise StrictValidationError(service, operation, found)


def violations(service: str | ServiceModel, operation: str, params: Mapping[str, Any] | None,
               *, wire: bool = False, unchecked: frozenset[str] = frozenset()) -> list[Violation]:
    """Every constraint ``params`` break for ``service.operation``'s input shape.

    ``wire=False``: ``params`` as passed to a boto3 client method (member names, bytes for
    blobs, datetimes for timestamps). ``wire=True``: a decoded JSON-protocol body (serialized
    names, base64 strings for blobs, epoch numbers for timestamps). ``unchecked``: top-level members
    carried in a body that was not decoded (left out of the ``required`` check).
    """
    if isinstance(service, ServiceModel):
        op = service.operation_model(operation)
    else:
        op = operation_model(service, operation)
    shape = op.input_shape
    found: list[Violation] = []
    if shape is None:
        if params:
            found.extend(Violation(_lower(k), v, "Member is not part of the operation's input", "unknown")
                         for k, v in params.items())
        return found
    _walk_structure(params if params is not None else {}, shape, "", wire, found, unchecked)
    return found


# -- the walk -------------------------------------------------------------------------------

def _lower(name: str) -> str:
    return name[:1].lower() + name[1:]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{_lower(name)}" if prefix else _lower(name)


@functools.lru_cache(maxsize=4096)
def _wire_names(shape: StructureShape) -> dict[str, str]:
    """serialized name -> member name (JSON protocol uses ``locationName`` when present)."""
    return {m.serialization.get("name", n): n for n, m in shape.members.items()}


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "long": (int,), "float": (int, float), "double": (int, float),
    "boolean": (bool,), "structure": (dict,), "list": (list, tuple), "map": (dict,),
}


def _type_ok(value: Any, shape: Shape, wire: bool) -> bool:
    kind = shape.type_name
    if kind in ("integer", "long", "float", "double") and isinstance(value, bool):
        return False
    if kind == "blob":
        return isinstance(value, str) if wire else (isinstance(value, bytes | bytearray | str)
                                                      or hasattr(value, "read"))
    if kind == "timestamp":
        if wire:
            return isinstance(value, int | float | str) and not isinstance(value, bool)
        return isinstance(value, datetime | date | str | int | float) and not isinstance(value, bool)
    if kind == "structure" and getattr(shape, "is_document_type", False):
        return True
    expected = _TYPES.get(kind)
    return expected is None or isinstance(value, expected)


def _walk(value: Any, shape: Shape, path: str, wire: bool, found: list[Violation]) -> None:
    if value is None and wire:
        return  # JSON null: AWS treats it as absent; `required` is checked by the parent
    if not _type_ok(value, shape, wire):
        found.append(Violation(path, value, f"Member must be of type {shape.type_name}", "type"))
        return
    if isinstance(shape, StructureShape):
        if not getattr(shape, "is_document_type", False):
            _walk_structure(value, shape, path, wire, found)
        return
    if isinstance(shape, ListShape):
        _walk_list(value, shape, path, wire, found)
        return
    if isinstance(shape, MapShape):
        _walk_map(value, shape, path, wire, found)
        return
    for constraint, kind in _scalar_constraints(value, shape, wire):
        found.append(Violation(path, value, constraint, kind))


def _walk_structure(value: Mapping[str, Any], shape: StructureShape, path: str, wire: bool,
                    found: list[Violation], unchecked: frozenset[str] = frozenset()) -> None:
    members = shape.members
    names = _wire_names(shape) if wire else None
    present: dict[str, Any] = {}
    for key, item in value.items():
        name = names.get(key) if names is not None else (key if key in members else None)
        if name is None:
            found.append(Violation(_join(path, key), item, "Member is not part of the input shape", "unknown"))
            continue
        if item is None and wire:
            continue
        present[name] = item
    for name in shape.required_members:
        if name not in present and name not in unchecked:
            found.append(Violation(_join(path, name), None, "Member must not be null", "required"))
    for name, item in present.items():
        _walk(item, members[name], _join(path, name), wire, found)


def _length_constraints(size: int, shape: Shape) -> list[tuple[str, str]]:
    out = []
    meta = shape.metadata
    if "max" in meta and size > meta["max"]:
        out.append((f"Member must have length less than or equal to {_num(meta['max'])}", "length"))
    if "min" in meta and size < meta["min"]:
        out.append((f"Member must have length greater than or equal to {_num(meta['min'])}", "length"))
    return out


def _walk_list(value: list[Any], shape: ListShape, path: str, wire: bool, found: list[Violation]) -> None:
    for constraint, kind in _length_constraints(len(value), shape):
        found.append(Violation(path, value, constraint, kind))
    member = shape.member
    if member.type_name in ("structure", "list", "map"):
        for index, item in enumerate(value, start=1):
            _walk(item, member, f"{path}.{index}.member", wire, found)
        return
    _scalar_members(value, value, member, path, wire, found, "Member must satisfy constraint")


def _scalar_members(values: Any, shown: Any, member: Shape, path: str, wire: bool,
                    found: list[Violation], lead: str) -> None:
    """Constraints of scalar elements, reported once at the container (showing ``shown``) as AWS does."""
    broken: list[tuple[str, str]] = []
    for item in values:
        if item is None:
            continue
        if not _type_ok(item, member, wire):
            found.append(Violation(path, item, f"Member must be of type {member.type_name}", "type"))
            continue
        for pair in _scalar_constraints(item, member, wire):
            if pair not in broken:
                broken.append(pair)
    if broken:
        found.append(Violation(path, shown, f"{lead}: [{', '.join(c for c, _ in broken)}]", broken[0][1]))


def _walk_map(value: dict[Any, Any], shape: MapShape, path: str, wire: bool, found: list[Violation]) -> None:
    for constraint, kind in _length_constraints(len(value), shape):
        found.append(Violation(path, value, constraint, kind))
    _scalar_members(list(value), value, shape.key, path, wire, found, "Map keys must satisfy constraint")
    if shape.value.type_name in ("structure", "list", "map"):
        for key, item in value.items():
            _walk(item, shape.value, f"{path}.{key}", wire, found)
        return
    _scalar_members(list(value.values()), value, shape.value, path, wire, found,
                    "Map value must satisfy constraint")


def _scalar_constraints(value: Any, shape: Shape, wire: bool) -> list[tuple[str, str]]:
    meta = shape.metadata
    kind = shape.type_name
    out: list[tuple[str, str]] = []
    if kind == "string":
        out.extend(_length_constraints(len(value), shape))
        pattern = meta.get("pattern")
        if pattern is not None and not _full_match(pattern, value):
            out.append((f"Member must satisfy regular expression pattern: {pattern}", "pattern"))
        enum = shape.enum
        if enum and value not in enum:
            out.append((f"Member must satisfy enum value set: [{', '.join(enum)}]", "enum"))
    elif kind in ("integer", "long", "float", "double"):
        if "max" in meta and value > meta["max"]:
            out.append((f"Member must have value less than or equal to {_num(meta['max'])}", "range"))
        if "min" in meta and value < meta["min"]:
            out.append((f"Member must have value greater than or equal to {_num(meta['min'])}", "range"))
    elif kind == "blob" and ("min" in meta or "max" in meta):
        size = _blob_size(value, wire)
        if size is not None:
            out.extend(_length_constraints(size, shape))
    return out


def _blob_size(value: Any, wire: bool) -> int | None:
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, str):
        if wire:
            try:
                return len(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                return None
        return len(value.encode())
    return None  # a file-like object: its size is not known without reading it


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _java_repr(value: Any) -> str:
    """A value as AWS's Java service prints it: ``[a, b]``, ``{k=v}``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_java_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_java_repr(k)}={_java_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bytes | bytearray):
        return f"java.nio.HeapByteBuffer[pos=0 lim={len(value)} cap={len(value)}]"
    return str(value)


# -- Java patterns --------------------------------------------------------------------------

# Java's POSIX character classes are US-ASCII only (java.util.regex.Pattern, "POSIX character
# classes (US-ASCII only)"); the regex package's \p{Print} etc. are Unicode-aware.
_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7F", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": "!-/:-@\\[-`{-~", "Graph": "!-~", "Print": " -~",
    "Blank": " \\t", "Cntrl": "\\x00-\\x1F\\x7F", "XDigit": "0-9a-fA-F", "Space": " \\t\\n\\x0B\\f\\r",
}
# Java's \d \w \s are ASCII unless UNICODE_CHARACTER_CLASS is set; regex's are Unicode.
_ASCII_SHORTHAND = {"d": "0-9", "w": "a-zA-Z_0-9", "s": " \\t\\n\\x0B\\f\\r",
                    "D": "0-9", "W": "a-zA-Z_0-9", "S": " \\t\\n\\x0B\\f\\r"}
_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-Fa-f]{2})\\u(D[C-F][0-9A-Fa-f]{2})", regex.IGNORECASE)
# Java's "." without DOTALL: anything but its line terminators (java.util.regex.Pattern, "Line terminators").
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"
_POSIX_CLASS = regex.compile(r"\\([pP])\{(?:Is)?(" + "|".join(_POSIX) + r")\}")


def java_to_python(pattern: str) -> str:
    """Translate the Java-only parts of an AWS model pattern for the ``regex`` package."""

    def pair(match: regex.Match[str]) -> str:
        high, low = int(match.group(1), 16), int(match.group(2), 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"

    pattern = _SURROGATE_PAIR.sub(pair, pattern)
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            match = _POSIX_CLASS.match(pattern, i)
            if match:
                body = _POSIX[match.group(2)]
                negated = match.group(1) == "P"
                if in_class and not negated:
                    out.append(body)
                elif in_class:
                    out.append(match.group(0))  # no nested sets in V0: keep the (Unicode) original
                else:
                    out.append(f"[{'^' if negated else ''}{body}]")
                i = match.end()
                continue
            escape = pattern[i + 1]
            if escape in _ASCII_SHORTHAND and (not in_class or escape.islower()):
                body = _ASCII_SHORTHAND[escape.lower()]
                out.append(body if in_class else f"[{'^' if escape.isupper() else ''}{body}]")
            else:
                out.append(pattern[i:i + 2])  # (\D \W \S inside a class stay Unicode: stricter)
            i += 2
            continue
        if ch == "." and not in_class:
            out.append(_JAVA_DOT)
            i += 1
            continue
        if ch == "[" and not in_class:
            in_class = True
            out.append(ch)
            # a ']' or '^]' right after '[' is literal in Java as well
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
            i += 1
            continue
        if ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=2048)
def compiled(pattern: str) -> regex.Pattern[str]:
    """The compiled (and cached) Python form of an AWS model pattern."""
    return regex.compile(java_to_python(pattern), regex.V0)


pattern_timeouts = 0  # how many matches ran out of time (each one refused the value)
_timeouts_lock = threading.Lock()


def _full_match(pattern: str, value: str) -> bool:
    """Java's ``Pattern.matches``; a match that runs out of time counts as a mismatch."""
    global pattern_timeouts
    try:
        return compiled(pattern).fullmatch(value, timeout=PATTERN_TIMEOUT_SECONDS) is not None
    except TimeoutError:
        with _timeouts_lock:
            pattern_timeouts += 1
        log.warning("pattern %r timed out after %s s on a %d-character value; refused as a pattern "
                    "violation", pattern, PATTERN_TIMEOUT_SECONDS, len(value))
        return False


# -- server side: requests as the emulator receives them ------------------------------------

# JSON-protocol services the package calls (``metadata.protocol`` json in botocore 1.43.117;
# CloudWatch lists ``smithy-rpc-v2-cbor`` first, but botocore's priority order resolves it to json).
JSON_SERVICES = ("sagemaker", "application-autoscaling", "logs", "cloudwatch")

# The error code each service answers a constraint violation with, as real error reports quote it:
# SageMaker "ValidationException" (aws/sagemaker-python-sdk#384), Application Auto Scaling
# "ValidationException" (its model's ValidationException shape), CloudWatch Logs
# "InvalidParameterException: 1 validation error detected: ..." (cisagov/crossfeed#374,
# fluent-plugins-nursery/fluent-plugin-cloudwatch-logs#223), CloudWatch "Error Code: ValidationError"
# (aws-cloudformation/cfn-lint#771, hashicorp/terraform#19015).
ERROR_CODES = {"sagemaker": "ValidationException", "application-autoscaling": "ValidationException",
               "logs": "InvalidParameterException", "cloudwatch": "ValidationError"}


@functools.cache
def _json_targets() -> dict[str, str]:
    """``X-Amz-Target`` prefix -> service name, for :data:`JSON_SERVICES`."""
    return {service_model(name).metadata["targetPrefix"]: name for name in JSON_SERVICES}


@functools.cache
def _has_operation(service: str, operation: str) -> bool:
    return operation in service_model(service).operation_names


def check_json_request(target: str, body: bytes) -> tuple[str, str, list[Violation]] | None:
    """(service, operation, violations) for a JSON-protocol request, or None if it is not ours.

    ``target`` is the ``X-Amz-Target`` header (``SageMaker.CreateTrainingJob``). A body that is not
    a JSON object is left to moto (which answers a SerializationException of its own).
    """
    import json

    prefix, _, operation = target.rpartition(".")
    service = _json_targets().get(prefix)
    if service is None or not _has_operation(service, operation):
        return None
    try:
        params = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(params, dict):
        return None
    return service, operation, violations(service, operation, params, wire=True)


@functools.cache
def _header_members(service: str, operation: str) -> tuple[tuple[str, str], ...]:
    shape = operation_model(service, operation).input_shape
    return tuple((m.serialization["name"].lower(), n) for n, m in shape.members.items()
                 if m.serialization.get("location") == "header")


def rest_json_params(service: str, operation: str, uri: Mapping[str, str], headers: Mapping[str, str],
                     body: bytes | None) -> dict[str, Any]:
    """The members a rest-json request carries in its URI labels, headers and blob payload.

    ``headers`` maps lower-case header names to values. Used for sagemaker-runtime's
    InvokeEndpoint / InvokeEndpointAsync, which the emulator answers itself.
    """
    params: dict[str, Any] = dict(uri)
    shape = operation_model(service, operation).input_shape
    for header, member in _header_members(service, operation):
        if header in headers:
            value: Any = headers[header]
            # Headers are text on the wire; integer members (e.g. RequestTTLSeconds) are numbers in the model.
            if shape.members[member].type_name in ("integer", "long"):
                try:
                    value = int(value)
                except ValueError:
                    pass
            params[member] = value
    payload = shape.serialization.get("payload")
    if payload in shape.members and body is not None:
        params[payload] = bytes(body)
    return params


_S3_SCALARS = ("string", "integer", "long", "boolean", "timestamp", "float", "double")


def _text_to_member(value: str, shape: Shape) -> Any:
    """A header or query-string value as the model's type (left as text when it does not parse,
    so the walk reports a type violation)."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(value)
        except ValueError:
            return value
    if kind in ("float", "double"):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value.lower(), value)
    if kind == "list":
        return [item.strip() for item in value.split(",") if item.strip()]
    return value  # strings, and timestamps (text in wire mode)


def rest_request_params(service: str, operation: str, uri: Mapping[str, str], headers: Mapping[str, str],
                        query: Mapping[str, str]) -> tuple[dict[str, Any], frozenset[str]]:
    """(members, payload member names) of a rest-xml / rest-json request's URI labels, headers and
    query string. The payload (an XML or JSON body) is not decoded: its member is returned in the
    second element so the caller can leave it out of the ``required`` check when a body was sent.
    ``headers`` maps lower-case names to values.
    """
    shape = operation_model(service, operation).input_shape
    params: dict[str, Any] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri" and wire_name in uri:
            params[name] = uri[wire_name]
        elif location == "header" and wire_name.lower() in headers:
            params[name] = _text_to_member(headers[wire_name.lower()], member)
        elif location == "headers":  # a map of prefixed headers (x-amz-meta-*)
            prefix = wire_name.lower()
            found = {k[len(prefix):]: v for k, v in headers.items() if k.startswith(prefix)}
            if found:
                params[name] = found
        elif location == "querystring" and wire_name in query and member.type_name in (*_S3_SCALARS, "list"):
            params[name] = _text_to_member(query[wire_name], member)
    payload = shape.serialization.get("payload")
    return params, frozenset({payload} if payload in shape.members else ())
