"""Moved (issue 10): the operator to :mod:`sagemaker_vision.operators.training`, its hook to
:mod:`sagemaker_vision.hooks.training`, the job statuses to :mod:`sagemaker_vision.core.training_job`.
This shim is removed by the lead."""

from sagemaker_vision.core.training_job import REUSABLE, RUNNING, UNSUCCESSFUL  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.hooks.training import ChannelCheckingSageMakerHook  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator  # noqa: F401  (shim, removed by the lead)
