"""Tests of the benchmark helpers and of the multi-process load engine.

A throwaway AIRFLOW_HOME is set before anything imports Airflow (``operators.load_test`` does), and the
benchmarks folder goes on sys.path the way running a script there puts it.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="sv-bench-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
for path in (str(ROOT / "plugins"), str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)
# Engine workers are fresh interpreters (they import botocore, not Airflow). Where the
# environment forbids bytecode files they would compile it from source every time; a cache
# outside the venv keeps that to the first worker.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(BENCH / ".out" / "pycache"))
