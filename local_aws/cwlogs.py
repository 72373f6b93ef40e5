"""Append lines to moto's CloudWatch Logs backend, where SageMaker containers would log.

Airflow's SageMaker hook tails ``/aws/sagemaker/TrainingJobs/<job>/...`` when ``print_log`` is
on; writing the emulated timeline there makes task logs show what the emulator did.
"""

from __future__ import annotations

from datetime import UTC, datetime

from moto.logs.models import logs_backends

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch for a naive-UTC datetime (moto's convention)."""
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def append(account_id: str, region: str, group: str, stream: str, at: datetime, *lines: str) -> None:
    """Write ``lines`` to ``group/stream`` at time ``at``, creating both as needed."""
    backend = logs_backends[account_id][region]
    if group not in backend.groups:
        backend.create_log_group(group, tags={})
    backend.ensure_log_stream(group, stream)
    ts = epoch_ms(at)
    backend.put_log_events(group, stream, [{"timestamp": ts, "message": line} for line in lines])
