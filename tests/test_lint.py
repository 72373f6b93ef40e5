"""ruff, including the Airflow 3 migration rules, is part of the suite: CI runs what `make lint` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_is_clean():
    result = subprocess.run([str(RUFF), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_airflow3_rules_are_clean():
    result = subprocess.run([str(RUFF), "check", "--select", "AIR3", "--preview", "dags", "plugins"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    # The type checker CI runs (configuration: pyproject.toml [tool.mypy], over plugins/ and local_aws/).
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
