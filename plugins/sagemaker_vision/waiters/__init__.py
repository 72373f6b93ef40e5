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


# Shims (removed by the lead): the labeling-job waiter is in sagemaker_vision.json, its hook is
# SageMakerVisionHook and its name is core.labeling_job.LABELING_JOB_COMPLETE.
from sagemaker_vision.core.labeling_job import LABELING_JOB_COMPLETE  # noqa: E402, F401  (shim)
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook as LabelingJobHook  # noqa: E402, F401  (shim)

LABELING_JOB_WAITERS = WAITERS_FILE  # shim, removed by the lead

__all__ = ["WAITERS_DIR", "WAITERS_FILE", "load_waiter_config"]
