"""Moved (issue 10): the pure plan to :mod:`sagemaker_vision.core.teardown`, the AWS reads and deletes
to :mod:`sagemaker_vision.hooks.teardown`, the DAG's tasks to :mod:`sagemaker_vision.pipeline.teardown`;
``is_not_found`` is :func:`sagemaker_vision.hooks.sagemaker.is_not_found`. This shim is removed by the lead."""

from sagemaker_vision.core.teardown import (  # noqa: F401  (shim, removed by the lead)
    ENDPOINT_GONE_STATES,
    KIND_ORDER,
    MONTH_DAYS,
    PIPELINE_TAG,
    Action,
    ConfigState,
    EndpointState,
    EndpointUse,
    Inventory,
    ModelState,
    TeardownParams,
    TeardownPlan,
    UnmanagedResourceError,
    VariantState,
    approved_subset,
    endpoint_alarm_names,
    plan_teardown,
    standing_cost,
)
from sagemaker_vision.hooks.sagemaker import is_not_found  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.hooks.teardown import (  # noqa: F401  (shim, removed by the lead)
    MAX_LISTED,
    execute_plan,
    gather_inventory,
)
from sagemaker_vision.pipeline.teardown import execute_task, plan_task  # noqa: F401  (shim, removed by the lead)
