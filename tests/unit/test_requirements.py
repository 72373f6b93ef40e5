"""The pinned files agree: every target installs requirements-dev.txt, a lock of its own, so a pin
added to requirements.txt alone reaches the Airflow images but not the venv the tests and the demo use."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(name: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+).*", line)
        assert match, f"{name}: {line!r} is not an exact pin"
        pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


def test_the_dev_lock_holds_every_runtime_pin_at_the_same_version():
    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")
    missing = sorted(set(runtime) - set(dev))
    moved = {name: (runtime[name], dev[name]) for name in runtime if name in dev and runtime[name] != dev[name]}
    assert not missing and not moved, f"requirements-dev.txt lacks {missing} and disagrees on {moved}; run make lock"
