"""The quality gate without AWS: the final metric of a training job and the deploy decision (core.quality_gate)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sagemaker_vision.core import quality_gate as qg
from sagemaker_vision.core.validate import ConfigError


# -- final_metric -------------------------------------------------------------------------------
def training(*metrics: tuple[str, Any]) -> dict[str, Any]:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    return {"TrainingJobName": "job", "FinalMetricDataList": [
        {"MetricName": name, "Value": value, "Timestamp": when} for name, value in metrics]}


def test_final_metric_reads_the_named_metric_from_either_shape():
    description = training(("train:progress", 100.0), ("validation:mAP", 0.731))
    assert qg.final_metric(description) == 0.731
    assert qg.final_metric({"Training": description}) == 0.731  # the training operator's XCom
    assert qg.final_metric(description, "train:progress") == 100.0


@pytest.mark.parametrize("description", [
    training(("train:progress", 1.0)),
    training(("validation:mAP", float("nan"))),
    training(("validation:mAP", None)),
    {"TrainingJobName": "job"},
    {"Training": {"FinalMetricDataList": []}},
])
def test_final_metric_is_none_when_missing_or_not_a_number(description):
    assert qg.final_metric(description) is None


# -- quality gate -------------------------------------------------------------------------------
@pytest.mark.parametrize(("new", "production", "min_map", "tolerance", "deploy", "reason"), [
    # first deploy: only min_map counts
    (0.62, None, 0.5, 0.02, True, "no production mAP to beat"),
    (0.50, None, 0.5, 0.02, True, "no production mAP to beat"),  # inclusive
    (0.49, None, 0.5, 0.02, False, "below min_map"),
    # missing metric never deploys, whatever production is
    (None, None, 0.0, 1.0, False, "reported no validation:mAP"),
    (None, 0.2, 0.0, 1.0, False, "reported no validation:mAP"),
    # against production, tolerance boundaries inclusive
    (0.80, 0.75, 0.5, 0.0, True, ">= production mAP"),
    (0.75, 0.75, 0.5, 0.0, True, ">= production mAP"),
    (0.74, 0.75, 0.5, 0.0, False, "the production model keeps serving"),
    (0.73, 0.75, 0.5, 0.02, True, ">= production mAP"),
    (0.7299, 0.75, 0.5, 0.02, False, "below production mAP"),
    (0.70, 0.80, 0.5, 0.10, True, ">= production mAP"),  # 0.8 - 0.1 == 0.7000000000000001 in floats
    # better than production is not enough below min_map
    (0.45, 0.30, 0.5, 0.0, False, "below min_map"),
])
def test_quality_gate_truth_table(new, production, min_map, tolerance, deploy, reason):
    decision = qg.quality_gate(new, production, min_map=min_map, map_tolerance=tolerance)
    assert decision.deploy is deploy
    assert reason in decision.reason
    assert decision.new_map == new and decision.production_map == production
    assert json.loads(json.dumps(decision.to_dict())) == decision.to_dict()


@pytest.mark.parametrize(("min_map", "tolerance", "field"), [
    (-0.1, 0.0, "min_map"), (1.5, 0.0, "min_map"), ("high", 0.0, "min_map"), (None, 0.0, "min_map"),
    (0.5, -0.01, "map_tolerance"), (0.5, float("nan"), "map_tolerance"), (0.5, True, "map_tolerance"),
])
def test_quality_gate_rejects_bad_thresholds_naming_the_field(min_map, tolerance, field):
    with pytest.raises(ConfigError) as err:
        qg.quality_gate(0.7, 0.6, min_map=min_map, map_tolerance=tolerance)
    assert err.value.field == field

