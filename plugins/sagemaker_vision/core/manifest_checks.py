"""The precise reports behind the bounding-box manifest checks (:mod:`sagemaker_vision.core.manifest`):
its scan takes a fast path for a well-formed line and calls these only to say what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sagemaker_vision.core.manifest_parse import MAX_EXACT_INT, MISSING, finite_number, json_type, positive_int, short

__all__ = ["annotation_problems", "image_size_problems"]


def image_size_problems(add: Callable[[int | None, str, str], None], lineno: int, path: str,
                         sizes: Any) -> None:
    """Report why ``image_size`` is not ``[{"width": W, "height": H, "depth": D}]``."""
    if sizes is MISSING:
        add(lineno, path, "missing")
        return
    if type(sizes) is not list or len(sizes) != 1:
        add(lineno, path, f"must be a list of one {{width, height, depth}} object, got {short(sizes)}")
        return
    size = sizes[0]
    if type(size) is not dict:
        add(lineno, f"{path}[0]", f"must be an object, got {json_type(size)}")
        return
    for name in ("width", "height"):
        value = size.get(name, MISSING)
        if value is MISSING:
            add(lineno, f"{path}[0].{name}", "missing")
        elif not positive_int(value):
            add(lineno, f"{path}[0].{name}", f"must be a positive integer, got {short(value)}")
    depth = size.get("depth")
    if depth is not None and not positive_int(depth):
        add(lineno, f"{path}[0].depth", f"must be a positive integer, got {short(depth)}")


def annotation_problems(add: Callable[[int | None, str, str], None], lineno: int, path: str,
                         ann: Any, ids: frozenset[int] | None, width: int | None,
                         height: int | None) -> int:
    """Report everything wrong with one annotation; return how many problems were found."""
    found = 0

    def bad(where: str, message: str) -> None:
        nonlocal found
        found += 1
        add(lineno, where, message)

    if type(ann) is not dict:
        bad(path, f"must be an object, got {json_type(ann)}")
        return found
    cid = ann.get("class_id", MISSING)
    if cid is MISSING:
        bad(f"{path}.class_id", "missing")
    elif type(cid) is not int:
        bad(f"{path}.class_id", f"must be an integer, got {short(cid)}")
    elif ids is not None and cid not in ids:
        bad(f"{path}.class_id", f"{cid} is not in the class-map (ids {sorted(ids)})")
    box: dict[str, float] = {}
    for name in ("left", "top", "width", "height"):
        value = ann.get(name, MISSING)
        if value is MISSING:
            bad(f"{path}.{name}", "missing")
        elif not finite_number(value):
            bad(f"{path}.{name}", f"must be a finite number (integers within +-{MAX_EXACT_INT}), "
                                  f"got {short(value)}")
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
