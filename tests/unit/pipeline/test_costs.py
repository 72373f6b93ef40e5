"""The estimate_costs task: over budget fails at once (no retry makes a run cheaper)."""

from __future__ import annotations

import logging

import pytest
from airflow.sdk.exceptions import AirflowFailException

from sagemaker_vision.pipeline.costs import estimate_and_guard
from tests.unit.core.test_costs import _run_config


def test_within_budget_the_estimate_is_returned_for_xcom(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        result = estimate_and_guard(_run_config(budget_usd=50))
    assert result["total_usd"] == "7.68" and result["budget_usd"] == "50.0"
    assert "TOTAL" in caplog.text


def test_over_budget_fails_without_retries_naming_budget_usd() -> None:
    with pytest.raises(AirflowFailException, match=r"^budget_usd: the estimated cost \$7.68 exceeds the budget \$5"):
        estimate_and_guard(_run_config(budget_usd=5))
