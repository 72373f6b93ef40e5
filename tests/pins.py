"""The exact pins of one of the repo's lock files, for the tests that hold the locks to each other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pins(lock: str) -> dict[str, str]:
    """``{normalised name: version}`` of ``lock`` (a path from the repo root); every line must be ``name==version``."""
    found: dict[str, str] = {}
    for line in (ROOT / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+).*", line)
        assert match, f"{lock}: {line!r} is not an exact pin (name==version)"
        found[match.group(1).lower().replace("_", "-")] = match.group(3)
    return found
