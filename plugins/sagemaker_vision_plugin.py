"""Registers the sagemaker_vision AirflowPlugin (operator extra links to the AWS consoles).

The package itself is hidden from Airflow's plugin loader by plugins/.airflowignore, because
that loader imports each file as a top-level module named after it; this file is the one entry.
"""

from sagemaker_vision.plugin import SageMakerVisionPlugin

__all__ = ["SageMakerVisionPlugin"]
