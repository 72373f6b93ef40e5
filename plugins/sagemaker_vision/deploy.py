"""Shim (removed by the lead at the end of the move): the deploy stage moved.

Pure decisions: ``core.quality_gate`` (gate, mAP tag), ``core.deployment`` (DeploymentConfig,
rollback alarms, plan, same-named-resource differences); AWS: ``hooks.sagemaker`` (ensure_*,
production-variant reads; its not-found rule and tag pager replace ``_describe_or_none`` and
``_tags``); ``triggers.endpoint`` (EndpointTrigger, on ``SageMakerVisionHook``, which replaces
``EndpointHook``); ``operators.deploy`` / ``operators.rollback``; task bodies: ``pipeline.deploy``.
"""

from sagemaker_vision.core.deployment import (  # noqa: F401  (shim, removed by the lead)
    ALARM_NAMESPACE,
    CANARY_PERCENT,
    DEPLOYED_OVER_TAG,
    DEPLOYMENT_POLICIES,
    IN_FLIGHT,
    LINEAR_STEP_PERCENT,
    MAX_ALARM_LOOKBACK_S,
    MAX_ALARM_NAME,
    MAX_ROLLBACK_ALARMS,
    MAXIMUM_EXECUTION_TIMEOUT_S,
    MICROSECONDS_PER_MS,
    NEEDS_A_HUMAN,
    TERMINATION_WAIT_S,
    WAIT_INTERVAL_S,
    DeployPlan,
    deployment_config,
    endpoint_type_of,
    plan_deploy,
    rollback_alarm_names,
    rollback_alarm_requests,
    serving_variant,
)
from sagemaker_vision.core.deployment import COMPUTE_TYPES as ENDPOINT_TYPES  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.core.endpoint_waits import ENDPOINT_SETTLED as ENDPOINT_WAITER  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.core.quality_gate import (  # noqa: F401  (shim, removed by the lead)
    MAP_METRIC,
    MAP_TAG,
    GateDecision,
    final_metric,
    format_map_tag,
    quality_gate,
)
from sagemaker_vision.hooks.sagemaker import (  # noqa: F401  (shim, removed by the lead)
    ResourceConflictError,
    deployed_over,
    ensure_endpoint_config,
    ensure_model,
    ensure_rollback_alarms,
    production_map,
    record_deployed_over,
    serving_summary,
)
from sagemaker_vision.operators.deploy import DeployEndpointOperator  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.operators.rollback import RollbackEndpointOperator  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.pipeline.deploy import (  # noqa: F401  (shim, removed by the lead)
    configure_autoscaling,
    create_endpoint_config_for_run,
    create_model_for_run,
    gate_run,
    require_run_config_serving,
)
from sagemaker_vision.triggers.endpoint import ENDPOINT_STATUS_QUERIES, EndpointTrigger  # noqa: F401  (shim, removed by the lead)
