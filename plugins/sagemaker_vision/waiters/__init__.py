"""This package's custom boto waiters, in the amazon provider's JSON format, and their loader.

Every waiter is in one file, ``sagemaker_vision.json`` (``labeling_job_complete``,
``endpoint_settled``): :class:`~sagemaker_vision.hooks.sagemaker.SageMakerVisionHook` points the
provider's ``waiter_path`` at it, so ``get_waiter(name)`` builds a sync waiter, or with
``deferrable=True, client=<aiobotocore client>`` an async one, from the same model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WAITERS_DIR = Path(__file__).resolve().parent
WAITERS_FILE = WAITERS_DIR / "sagemaker_vision.json"


def load_waiter_config(path: str | Path = WAITERS_FILE) -> dict[str, Any]:
    """The raw waiter model (``{"version": 2, "waiters": {...}}``) stored at ``path``."""
    with open(path, encoding="utf-8") as fh:
        loaded: dict[str, Any] = json.load(fh)
    return loaded


__all__ = ["WAITERS_DIR", "WAITERS_FILE", "load_waiter_config"]
