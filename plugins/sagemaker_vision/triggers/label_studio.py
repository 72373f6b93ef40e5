"""The trigger of a Label Studio project: wait in the triggerer until every task is annotated or skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from sagemaker_vision.core.label_studio import TaskProgress
from sagemaker_vision.hooks.label_studio import LabelStudioConnectionMissing, LabelStudioError, LabelStudioHook

__all__ = ["LabelStudioTrigger"]


class LabelStudioTrigger(BaseTrigger):
    """Wait in the triggerer until every task of a Label Studio project is annotated or skipped.

    Polls the project's task list (through :class:`~sagemaker_vision.hooks.label_studio.LabelStudioHook`
    over aiohttp) every ``poll_interval`` seconds, at most ``max_attempts`` times, and logs
    "N of M tasks annotated" on each poll. A task counts as annotated with ``min_annotations``
    non-cancelled annotations, as skipped with fewer but at least one cancelled one.

    Emits ``{"status": "success", "project_id", "message", "progress"}`` when all tasks are
    done, ``"timeout"`` when the attempts ran out, ``"error"`` when Label Studio failed (after the
    hook's retries) or the project has fewer tasks than ``expected_tasks`` (deleted), and
    ``"missing_connection"`` when the triggerer has no ``label_studio_conn_id`` connection (the
    operator then fails without retries, as it does when the worker lacks it).

    :param project_id: The Label Studio project.
    :param expected_tasks: Tasks the operator saw in the project when it deferred.
    :param min_annotations: Non-cancelled annotations a task needs.
    :param poll_interval: Seconds between two polls.
    :param max_attempts: Polls before giving up.
    :param label_studio_conn_id: Airflow connection of the Label Studio server.
    """

    def __init__(
        self,
        *,
        project_id: int,
        expected_tasks: int,
        min_annotations: int = 1,
        poll_interval: float = 60.0,
        max_attempts: int = 10080,
        label_studio_conn_id: str = "label_studio_default",
    ):
        super().__init__()
        self.project_id = int(project_id)
        self.expected_tasks = int(expected_tasks)
        self.min_annotations = int(min_annotations)
        self.poll_interval = float(poll_interval)
        self.max_attempts = int(max_attempts)
        self.label_studio_conn_id = label_studio_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "project_id": self.project_id,
                "expected_tasks": self.expected_tasks,
                "min_annotations": self.min_annotations,
                "poll_interval": self.poll_interval,
                "max_attempts": self.max_attempts,
                "label_studio_conn_id": self.label_studio_conn_id,
            },
        )

    def _event(self, status: str, message: str, progress: TaskProgress | None = None) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "project_id": self.project_id, "message": message}
        if progress is not None:
            payload["progress"] = progress.to_dict()
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = LabelStudioHook(self.label_studio_conn_id)
        progress = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                progress = await hook.atask_progress(self.project_id, self.min_annotations)
            except LabelStudioConnectionMissing as exc:
                yield self._event("missing_connection", str(exc))
                return
            except LabelStudioError as exc:
                yield self._event("error", str(exc))
                return
            self.log.info("Label Studio project %s: %s (poll %d of %d)", self.project_id, progress.describe(),
                          attempt, self.max_attempts)
            if progress.total < self.expected_tasks:
                message = (f"the project has {progress.total} tasks but had {self.expected_tasks} when the "
                           "task deferred: were tasks deleted?")
                yield self._event("error", message, progress)
                return
            if progress.complete:
                yield self._event("success", progress.describe(), progress)
                return
            if attempt < self.max_attempts:
                await asyncio.sleep(self.poll_interval)
        described = progress.describe() if progress else "no poll made"
        yield self._event("timeout", f"{described} after {self.max_attempts} polls", progress)
