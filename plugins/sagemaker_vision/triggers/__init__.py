"""Deferrable triggers of the package, one module per domain; they run in the triggerer.

Each trigger takes only JSON-serialisable arguments (``serialize()`` hands them back), so the
triggerer can rebuild it from the database; the AWS ones wait with a custom waiter from ``waiters/``.
"""

from __future__ import annotations

# Moved to triggers/labeling_job.py, triggers/label_studio.py and triggers/async_inference.py (issue 10).
from sagemaker_vision.core.labeling_job import LABELING_JOB_STATUS_QUERIES  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.triggers.async_inference import AsyncInferenceOutputTrigger  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.triggers.label_studio import LabelStudioTrigger  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.triggers.labeling_job import LabelingJobTrigger  # noqa: F401  (shim, removed by the lead)

__all__ = ["LABELING_JOB_STATUS_QUERIES", "AsyncInferenceOutputTrigger", "LabelStudioTrigger", "LabelingJobTrigger"]
