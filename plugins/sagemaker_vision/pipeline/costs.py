"""The ``estimate_costs`` task's body: price the run, log the table, stop over budget."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from sagemaker_vision.core.config import PipelineConfig
from sagemaker_vision.core.costs import estimate_pipeline
from sagemaker_vision.core.prices import to_decimal


def estimate_and_guard(cfg: PipelineConfig, *, num_images: int = 0,
                       log: logging.Logger | logging.LoggerAdapter[Any] | None = None) -> dict[str, Any]:
    """The ``estimate_costs`` task: log the table, return it for XCom, stop over budget.

    Over budget raises ``AirflowFailException``: retrying cannot make a run cheaper.
    """
    log = log or logging.getLogger(__name__)
    estimate = estimate_pipeline(cfg, num_images=num_images)
    budget = to_decimal(cfg.budget_usd, "budget_usd")
    log.info("Estimated cost of this run's paid steps (USD):\n%s\nBudget: %s", estimate.format_table(), budget)
    result = {**estimate.to_dict(), "budget_usd": str(budget)}
    if estimate.exceeds(budget):
        raise AirflowFailException(
            f"budget_usd: the estimated cost ${estimate.total} exceeds the budget ${budget}; nothing was "
            "spent. Raise budget_usd or lower max_training_hours / instance counts."
        )
    return result
