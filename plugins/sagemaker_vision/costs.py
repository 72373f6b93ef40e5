"""Moved to :mod:`sagemaker_vision.core.costs` (estimators), :mod:`sagemaker_vision.core.prices` (the
price table) and :mod:`sagemaker_vision.pipeline.costs` (the budget guard task); issue 10. This shim
is removed by the lead."""

from sagemaker_vision.core.costs import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_PRICES,
    DEFAULT_REGION,
    MAX_WORKERS_PER_OBJECT,
    PRICES_ENV_VAR,
    SERVERLESS_MEMORY_SIZES_MB,
    CostEstimate,
    CostLine,
    PriceTable,
    async_endpoint_cost,
    estimate_pipeline,
    labeling_cost,
    load_price_table,
    realtime_endpoint_cost,
    realtime_endpoint_monthly_cost,
    serverless_endpoint_cost,
    training_cost,
)
from sagemaker_vision.pipeline.costs import estimate_and_guard  # noqa: F401  (shim, removed by the lead)
