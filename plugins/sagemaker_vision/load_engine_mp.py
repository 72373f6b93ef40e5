"""Moved (issue 10): the worker processes to :mod:`sagemaker_vision.core.loadtest.workers`, the
split/merge arithmetic to :mod:`sagemaker_vision.core.loadtest.engine`, the clients, the asyncio
phase on aiobotocore and the pool over them to :mod:`sagemaker_vision.hooks.sagemaker_runtime`;
this shim is removed by the lead."""

from sagemaker_vision.core.loadtest.engine import (  # noqa: F401  (shim, removed by the lead)
    merge_steps,
    split_evenly,
    split_phase,
)
from sagemaker_vision.core.loadtest.workers import (  # noqa: F401  (shim, removed by the lead)
    MAX_PROCESSES,
    WORKER_START_TIMEOUT_S,
)
from sagemaker_vision.hooks.sagemaker_runtime import (  # noqa: F401  (shim, removed by the lead)
    ENGINES,
    ClientSpec,
    Engine,
    WorkerPool,
    run_load_test_processes,
    run_phase_async,
)
