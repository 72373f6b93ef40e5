"""The quality gate: deploy a retrained model only when its mAP clears the bar (pure).

:func:`final_metric` reads ``validation:mAP`` from a DescribeTrainingJob answer;
:func:`quality_gate` -> :class:`GateDecision`: deploy when the metric clears ``min_map`` and is
no worse than the serving model's (within ``map_tolerance``); a model without the metric never
deploys. :func:`format_map_tag` writes the ``validation-map`` tag the serving model's score is
read back from (``hooks.sagemaker.SageMakerVisionHook.production_map``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sagemaker_vision.core.validate import ConfigError

MAP_METRIC = "validation:mAP"

# The mAP a model was validated at lives in a tag on the SageMaker model itself: the tag is
# durable (it outlives the run, its XCom and the metadata DB), travels with the model (whatever
# serves the endpoint carries its own score, even after a manual rollback or a deploy from
# elsewhere), and is visible in the console next to the model. Nothing else has to be kept in sync.
MAP_TAG = "validation-map"


def final_metric(training_description: Mapping[str, Any], name: str = MAP_METRIC) -> float | None:
    """The final value of metric ``name`` in a DescribeTrainingJob response, or None.

    Accepts the training operator's return value (``{"Training": DescribeTrainingJob}``) too.
    A missing, non-numeric or NaN value is None: the gate never deploys an unmeasured model.
    """
    description = training_description.get("Training", training_description)
    value = None
    for metric in description.get("FinalMetricDataList") or []:
        if metric.get("MetricName") == name:
            value = metric.get("Value")  # if reported twice, the later entry counts
    return finite(value)


@dataclass(frozen=True)
class GateDecision:
    """Whether to deploy the new model, and why, in one line a person can read in the log."""

    deploy: bool
    reason: str
    new_map: float | None
    production_map: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for XCom."""
        return asdict(self)


def quality_gate(new_map: float | None, production_map: float | None, *, min_map: float,
                 map_tolerance: float) -> GateDecision:
    """Deploy when ``new_map >= min_map`` and (no production model, or ``new_map >= production - tolerance``).

    ``production_map=None`` is the first deploy (or a serving model with no recorded mAP): there is
    nothing to beat, only ``min_map``. ``new_map=None`` never deploys. The tolerance lets a
    retrained model that is statistically no worse replace an older one (fresh data beats a
    stale model); both bounds are inclusive.
    """
    min_map = _fraction(min_map, "min_map")
    map_tolerance = _fraction(map_tolerance, "map_tolerance")
    new, production = finite(new_map), finite(production_map)
    if new is None:
        return GateDecision(False, f"the new model reported no {MAP_METRIC}; an unmeasured model is never deployed",
                            None, production)
    if not _at_least(new, min_map):
        return GateDecision(False, f"new mAP {new:.4f} is below min_map {min_map:.4f}", new, production)
    if production is None:
        return GateDecision(True, f"new mAP {new:.4f} >= min_map {min_map:.4f} and no production mAP to beat "
                            "(first deploy, or the serving model has no validation-map tag)", new, None)
    floor = production - map_tolerance
    if _at_least(new, floor):
        return GateDecision(True, f"new mAP {new:.4f} >= production mAP {production:.4f} - tolerance "
                            f"{map_tolerance:.4f}", new, production)
    return GateDecision(False, f"new mAP {new:.4f} is below production mAP {production:.4f} - tolerance "
                        f"{map_tolerance:.4f} = {floor:.4f}; the production model keeps serving", new, production)


def _at_least(value: float, bound: float) -> bool:
    # 0.8 - 0.1 is 0.7000000000000001 in binary floating point: a boundary must not flip on that.
    return value >= bound or math.isclose(value, bound, rel_tol=0.0, abs_tol=1e-9)


def finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fraction(value: Any, field_name: str) -> float:
    number = finite(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError(field_name, f"must be a number from 0 to 1, got {value!r}")
    return number

def format_map_tag(value: float) -> str:
    """The ``validation-map`` tag value: the float's shortest exact repr, e.g. ``0.7312``."""
    number = finite(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise ConfigError("validation_map", f"must be an mAP from 0 to 1, got {value!r}")
    return repr(number)
