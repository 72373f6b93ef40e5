"""Wait for a Ground Truth labeling job started elsewhere (the provider has no such sensor)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf
from airflow.sdk import PokeReturnValue

from sagemaker_vision.core.labeling_job import (
    MAX_LABELING_JOB_S,
    TASK_TIME_LIMIT_S,
    TERMINAL_STATES,
    WAIT_MARGIN_S,
    format_progress,
)
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook
from sagemaker_vision.links.sagemaker import SageMakerLabelingJobLink
from sagemaker_vision.operators.ground_truth import LabelingJobWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["GroundTruthLabelingJobSensor"]


class GroundTruthLabelingJobSensor(LabelingJobWaitMixin, AwsBaseSensor[SageMakerVisionHook]):
    """Wait for a Ground Truth labeling job started elsewhere; return its output manifest URI.

    Succeeds when the job is Completed (the output manifest URI goes to XCom), fails with the
    job's ``FailureReason`` when it is Failed or Stopped.

    :param job_name: The labeling job to wait for (templated).
    :param deferrable: Wait in the triggerer between checks instead of holding a worker slot;
        ``poke_interval`` is then the trigger's delay and ``timeout`` bounds its attempts.
    :param timeout: Seconds to wait; by default as long as any labeling job can run (30 days, plus
        a last task's time limit and an hour), not the sensors' 7 days.
    """

    template_fields: Sequence[str] = aws_template_fields("job_name")
    operator_extra_links = (SageMakerLabelingJobLink(),)
    ui_color = "#f0eede"

    def __init__(
        self,
        *,
        job_name: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        kwargs.setdefault("timeout", MAX_LABELING_JOB_S + TASK_TIME_LIMIT_S[1] + WAIT_MARGIN_S)
        super().__init__(**kwargs)
        self.job_name = job_name
        self.deferrable = deferrable

    def execute(self, context: Context) -> Any:
        self._persist_link(context)
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if done:
            return done.xcom_value
        delay = max(1, int(self.poke_interval))
        self.defer(
            trigger=self._trigger(delay, max(1, int(self.timeout // delay))),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        job = self._describe()
        self.log.info("%s", format_progress(job))
        if job["LabelingJobStatus"] in TERMINAL_STATES:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(job))
        return PokeReturnValue(is_done=False)
