"""Moved (issue 10): the operator to :mod:`sagemaker_vision.operators.training`, the job statuses to
:mod:`sagemaker_vision.core.training_job`; ``ChannelCheckingSageMakerHook`` merged into the package's one
hook, :class:`sagemaker_vision.hooks.sagemaker.SageMakerVisionHook` (its ``check_s3_url``).
This shim is removed by the lead."""

from sagemaker_vision.core.training_job import REUSABLE, RUNNING, UNSUCCESSFUL  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.hooks.sagemaker import (  # noqa: F401  (shim, removed by the lead)
    SageMakerVisionHook as ChannelCheckingSageMakerHook,
)
from sagemaker_vision.operators.training import ObjectDetectionTrainingOperator  # noqa: F401  (shim, removed by the lead)
