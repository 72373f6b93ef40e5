"""Class ids of a bounding-box manifest: one class map for all lines, and contiguous ids.

The built-in algorithm wants ids ``0..num_classes-1``. Ground Truth writes a class-map on every
line; :class:`ClassMaps` checks, line by line as the validator streams, that the maps agree (one
name per id, one id per name) and builds their union, the manifest's class map.
:func:`normalise_class_ids` maps gapped ids (``{0: "a", 3: "b"}``) to contiguous ones in ascending
order of the original id, keeping the names. See :mod:`sagemaker_vision.core.manifest`.

Pure Python (no Airflow, no AWS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagemaker_vision.core.manifest_parse import MISSING, Problems, json_type, short

__all__ = ["ClassIdRemap", "ClassMaps", "normalise_class_ids"]

_CLASS_MAP_CACHE_SIZE = 4096


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
        raise ValueError(f"class_map must be a non-empty mapping of id to name, got {short(class_map)}")
    by_id: dict[int, str] = {}
    seen_names: dict[str, int] = {}
    for key, name in class_map.items():
        cid = _class_id(key)
        if cid is None:
            raise ValueError(f"class_map[{key!r}]: key must be a non-negative integer id")
        if cid in by_id:
            raise ValueError(f"class_map[{key!r}]: id {cid} appears twice")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"class_map[{key!r}]: name must be a non-empty string, got {short(name)}")
        if name in seen_names:
            raise ValueError(f"class_map[{key!r}]: name {name!r} is also used by id {seen_names[name]}")
        by_id[cid] = name
        seen_names[name] = cid
    ordered = sorted(by_id)
    return ClassIdRemap(
        class_map={new: by_id[old] for new, old in enumerate(ordered)},
        id_remap={old: new for new, old in enumerate(ordered)},
    )


class ClassMaps:
    """The union of the per-line class-maps, checked for agreement as lines arrive.

    ``fixed`` (a caller-given full map) closes the union: a line may then only use its ids.
    """

    def __init__(self, meta_attr: str, problems: Problems, fixed: dict[int, str] | None) -> None:
        self.path = f"{meta_attr}.class-map"
        self.problems = problems
        self.closed = fixed is not None
        self.names: dict[int, str] = dict(fixed or {})
        self.ids_by_name: dict[str, int] = {name: cid for cid, name in self.names.items()}
        self.first_line: dict[int, tuple[str, int]] = {}  # id -> (source, line) first naming it
        # Lines usually repeat a handful of class-maps; remember the verdict for each.
        self._cache: dict[tuple[Any, ...], frozenset[int]] = {}
        self._last: Any = MISSING
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
            add(lineno, path, f"must be an object of id to name, got {json_type(class_map)}")
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
                add(lineno, kpath, f"name must be a non-empty string, got {short(name)}")
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
                self.first_line[cid] = (self.problems.source, lineno)
            elif known != name:
                add(lineno, kpath, f"id {cid} is {name!r} here but {known!r}{self._where(cid)}")
                ok = False
                continue
            ids.append(cid)
        return frozenset(ids) if ok else None

    def _where(self, cid: int) -> str:
        first = self.first_line.get(cid)
        if first is None:
            return " in the given class_map"
        source, line = first
        return f" on line {line}" + ("" if source == self.problems.source else f" of {source}")
