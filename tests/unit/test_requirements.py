"""The pinned files agree: every target installs requirements-dev.txt, a lock of its own, so a pin
added to requirements.txt alone reaches the Airflow images but not the venv the tests and the demo use."""

from __future__ import annotations

from tests.pins import pins


def test_the_dev_lock_holds_every_runtime_pin_at_the_same_version():
    runtime, dev = pins("requirements.txt"), pins("requirements-dev.txt")
    missing = sorted(set(runtime) - set(dev))
    moved = {name: (runtime[name], dev[name]) for name in runtime if name in dev and runtime[name] != dev[name]}
    assert not missing and not moved, f"requirements-dev.txt lacks {missing} and disagrees on {moved}; run make lock"
