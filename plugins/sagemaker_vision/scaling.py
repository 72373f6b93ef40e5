"""Moved (issue 10): pure autoscaling to :mod:`sagemaker_vision.core.autoscaling`, A/B builders to
:mod:`sagemaker_vision.core.ab_test`, the calls to :mod:`sagemaker_vision.hooks.scaling` and
:mod:`sagemaker_vision.hooks.ab_test`. This shim is removed by the lead."""

from sagemaker_vision.core.ab_test import (  # noqa: F401  (shim, removed by the lead)
    AB_ACTIONS,
    CONFIG_COPIED,
    SERVERLESS_EXCLUSIONS_URL,
    SINGLE_SUFFIX,
    ab_endpoint_config_request,
    is_promoted,
    promotion_request,
    single_variant_config_name,
    single_variant_config_request,
)
from sagemaker_vision.core.autoscaling import (  # noqa: F401  (shim, removed by the lead)
    AUTOSCALING_UPDATE_URL,
    INVOCATIONS_METRIC,
    MAX_RECORD_TAGS,
    MAX_TAGS,
    POLICY_CONFIGS,
    RELEASED_TAG_PREFIX,
    SCALABLE_DIMENSION,
    SERVICE_NAMESPACE,
    TAG_VALUE_MAX,
    autoscaling_conflicts,
    check_autoscalable,
    int_field,
    is_serverless_variant,
    package_tags,
    positive_number,
    resource_id,
    scalable_target_request,
    target_tracking_policy,
    validate_variant_name,
)
from sagemaker_vision.core.naming import (  # noqa: F401  (shim, removed by the lead)
    CHALLENGER,
    CHAMPION,
    backlog_alarm_name,
    invocations_policy_name,
)
from sagemaker_vision.hooks.ab_test import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_WAITER_DELAY,
    DEFAULT_WAITER_MAX_ATTEMPTS,
    end_ab_test,
    finish_ab_test,
    promote_challenger,
    wait_in_service,
)
from sagemaker_vision.hooks.scaling import (  # noqa: F401  (shim, removed by the lead)
    apply_autoscaling,
    clear_released,
    record_released,
    recorded_released,
    release_autoscaling,
    restore_after_failed_update,
    restore_autoscaling,
    restore_released,
)
