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
