"""Where a manifest's images are: ``s3://`` refs, prefixes, paths confined to a prefix, and moving refs.

:func:`rewrite_source_refs` moves the images of an imported manifest under a new S3 prefix. Image
paths stay inside their prefix (no '..', '.', empty segment, absolute path, backslash or
percent-encoded separator): :func:`confined_ref` is the rule, shared with the converters.

Pure Python (no Airflow, no AWS).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from sagemaker_vision.core.manifest_parse import (
    COMPACT,
    MISSING,
    LineError,
    ManifestError,
    ManifestProblem,
    Problems,
    json_type,
    parse_line,
    short,
)
from sagemaker_vision.core.validate import s3_key_problem, unsafe_key_character

__all__ = ["checked_prefix", "confined_ref", "rewrite_source_refs", "s3_ref_problem"]


def s3_ref_problem(ref: Any) -> str | None:
    """Why ``ref`` is not an ``s3://bucket/key`` URI, or None when it is."""
    if not isinstance(ref, str):
        return f"must be a string, got {json_type(ref)}"
    if not ref.startswith("s3://"):
        return f"must be an s3:// URI, got {short(ref)}"
    slash = ref.find("/", 5)
    if slash <= 5:
        return f"must name a bucket and a key, got {short(ref)}"
    if slash == len(ref) - 1 or ref.endswith("/"):
        return f"must name an object, not a prefix, got {short(ref)}"
    return None


def checked_prefix(value: Any, name: str) -> str:
    """Check an ``s3://bucket[/path]`` prefix argument and return it ending in '/'."""
    if not isinstance(value, str) or not value.startswith("s3://") or len(value) <= 5 or value[5] == "/":
        raise ValueError(f"{name} must be an s3://bucket/prefix URI, got {short(value)}")
    return value if value.endswith("/") else value + "/"


_ENCODED_SEPARATOR = re.compile(r"%(?:2[eEfF]|5[cC]|25)")
_DRIVE = re.compile(r"[A-Za-z]:")


def _relative_path_problem(path: str) -> str | None:
    """Why ``path`` (an image path relative to an images prefix) could leave or blur that prefix, or None.

    Refused: absolute paths (``/x``, ``C:x``), backslashes (a separator on Windows tools), '.'
    and '..' segments, empty segments (``a//b``, a trailing '/'), control characters (C0, DEL, C1,
    U+2028/U+2029: ``core.validate.UNSAFE_KEY_CHAR_RE``), a
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


def confined_ref(prefix: str, path: str) -> str:
    """``prefix`` + ``path`` when ``path`` stays inside the prefix; ValueError saying why not."""
    problem = _relative_path_problem(path)
    if problem:
        raise ValueError(f"{short(path)} {problem}")
    ref = prefix + path
    problem = s3_key_problem(ref[ref.find("/", 5) + 1:])
    if problem:
        raise ValueError(f"{short(path)} {problem}")
    return ref




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
                problems: Problems) -> Iterator[tuple[int, dict[str, Any], str]]:
    """Yield (line number, record, source-ref) for each usable line; report the others."""
    for lineno, raw in enumerate(lines, 1):
        try:
            rec = parse_line(raw, first=lineno == 1)
        except LineError as exc:
            problems.add(lineno, exc.field, exc.message)
            continue
        if rec is None:
            continue
        ref = rec.get("source-ref", MISSING)
        why = "missing" if ref is MISSING else s3_ref_problem(ref)
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
    new = checked_prefix(new_prefix, "new_prefix")
    if old_prefix is not None:
        old = checked_prefix(old_prefix, "old_prefix")
    else:
        if iter(lines) is lines:
            raise TypeError("rewrite_source_refs with old_prefix=None reads the lines twice; pass a "
                            "re-iterable (e.g. a list), not a one-shot iterator or file")
        scan = Problems(source)
        found = _common_directory(ref for _, _, ref in _parse_refs(lines, scan))
        scan.raise_if_any()
        if not found:
            raise ManifestError([ManifestProblem(None, "", "the manifest is empty", source)])
        old = found
    return _rewrite(lines, old, new, source)


def _rewrite(lines: Iterable[str | bytes], old: str, new: str, source: str) -> Iterator[str]:
    problems = Problems(source)
    for lineno, rec, ref in _parse_refs(lines, problems):
        if not ref.startswith(old) or len(ref) == len(old):
            problems.add(lineno, "source-ref", f"{ref!r} is not an object under {old!r}")
            continue
        try:
            rec["source-ref"] = confined_ref(new, ref[len(old):])
        except ValueError as exc:
            problems.add(lineno, "source-ref", f"the path under {old} {str(exc).partition(' ')[2]}")
            continue
        yield COMPACT.encode(rec) + "\n"
    problems.raise_if_any()


