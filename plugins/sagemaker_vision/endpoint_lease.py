"""Shim (removed by the lead at the end of the move): the endpoint lease moved.

``core.lease`` (what a read lease means, key, owner, TTL), ``hooks.endpoint_lease`` (EndpointLease,
the S3 writes), ``triggers.endpoint_lease`` (EndpointLeaseTrigger), ``operators.endpoint_lease``
(AcquireEndpointLeaseOperator, which now takes ``target_of``), ``pipeline.deploy`` (lease_target,
hold, hold_hook, release_lease: they know the run's PipelineConfig).
"""

from sagemaker_vision.core.lease import (  # noqa: F401  (shim, removed by the lead)
    DEPLOY_TASK_ID,
    LEASE_FORMAT,
    LEASE_TASK_ID,
    LOCK_PREFIX,
    LOST_RACE,
    TTL_MARGIN_S,
    LeaseLost,
    LeaseTarget,
    LeaseTimeout,
    LeaseView,
    acquire_wait_seconds,
    decide,
    endpoint_write_ttl_seconds,
    lease_key,
    owner_of,
    parse_body,
    server_time,
    view_from,
)
from sagemaker_vision.hooks.endpoint_lease import EndpointLease  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.operators.endpoint_lease import (  # noqa: F401  (shim, removed by the lead)
    AcquireEndpointLeaseOperator,
    lease_for,
    lease_ttl_seconds,
)
from sagemaker_vision.pipeline.deploy import hold, hold_hook, lease_target, release_lease  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.triggers.endpoint_lease import EndpointLeaseTrigger  # noqa: F401  (shim, removed by the lead)
