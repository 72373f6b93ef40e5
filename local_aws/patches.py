"""Monkeypatches on moto's SageMaker backend and response classes; installed once, undone on stop.

Backend methods are wrapped (moto's own validation still runs first); operations moto lacks
are added to ``SageMakerResponse``, whose dispatcher looks methods up by name on every call.

The patches act only on requests the emulator's server is handling (a thread-local flag set by
the middleware). Anything else in the process that drives moto -- e.g. a unit test using
``mock_aws`` while a session emulator runs -- gets moto's stock behaviour.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

from . import endpoints, labeling, patching, s3_conditional, s3_rules, training
from .extension import EXTENSION as EXT
from .patching import _on, _only_when_serving, _orig


def _new_operation(fn: Callable[[SageMakerResponse], ActionResult]) -> Callable[..., ActionResult]:
    """An added operation; outside emulator requests it is as absent as it is in moto."""

    @functools.wraps(fn)
    def wrapper(self: SageMakerResponse) -> ActionResult:
        if not _on():
            raise NotImplementedError(f"The {fn.__name__.lstrip('_')} action has not been implemented")
        return fn(self)

    return wrapper


# -- backend wrappers ------------------------------------------------------------------------
@_only_when_serving("create_training_job")
def _create_training_job(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    return training.create(EXT, self, _orig(SageMakerModelBackend, "create_training_job"), kwargs)


@_only_when_serving("describe_training_job")
def _describe_training_job(self: SageMakerModelBackend, training_job_name: str) -> Any:
    with EXT.lock:
        training.refresh_one(EXT, self, training_job_name)
        return _orig(SageMakerModelBackend, "describe_training_job")(self, training_job_name)


@_only_when_serving("list_training_jobs")
def _list_training_jobs(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    with EXT.lock:
        training.refresh_all(EXT, self)
        return _orig(SageMakerModelBackend, "list_training_jobs")(self, **kwargs)


@_only_when_serving("create_endpoint")
def _create_endpoint(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    return endpoints.create(EXT, self, _orig(SageMakerModelBackend, "create_endpoint"), kwargs)


@_only_when_serving("describe_endpoint")
def _describe_endpoint(self: SageMakerModelBackend, endpoint_name: str) -> Any:
    with EXT.lock:
        endpoints.refresh_one(EXT, self, endpoint_name)
        return _orig(SageMakerModelBackend, "describe_endpoint")(self, endpoint_name)


@_only_when_serving("list_endpoints")
def _list_endpoints(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    with EXT.lock:
        endpoints.refresh_all(EXT, self)
        return _orig(SageMakerModelBackend, "list_endpoints")(self, **kwargs)


@_only_when_serving("delete_endpoint")
def _delete_endpoint(self: SageMakerModelBackend, endpoint_name: str) -> None:
    endpoints.check_deletable(EXT, self, endpoint_name)
    _orig(SageMakerModelBackend, "delete_endpoint")(self, endpoint_name)
    endpoints.forget(EXT, self, endpoint_name)


@_only_when_serving("update_endpoint_weights_and_capacities")
def _update_weights(self: SageMakerModelBackend, **kwargs: Any) -> Any:
    original = _orig(SageMakerModelBackend, "update_endpoint_weights_and_capacities")
    return endpoints.update_weights(EXT, self, original, kwargs)


@_only_when_serving("_get_resource_from_arn")
def _get_resource_from_arn(self: SageMakerModelBackend, arn: str) -> Any:
    if ":labeling-job/" in arn:
        job = labeling.resource_for_arn(self, arn)
        if job is not None:
            return job
    return _orig(SageMakerModelBackend, "_get_resource_from_arn")(self, arn)


# -- operations moto does not have -----------------------------------------------------------
@_new_operation
def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    arn = endpoints.update(
        EXT, self.sagemaker_backend,
        name=self._get_param("EndpointName"),
        config_name=self._get_param("EndpointConfigName"),
        deployment_config=self._get_param("DeploymentConfig"),
        retain_deployment_config=bool(self._get_param("RetainDeploymentConfig", False)),
    )
    return ActionResult({"EndpointArn": arn})


@_new_operation
def _stop_training_job(self: SageMakerResponse) -> ActionResult:
    training.stop(EXT, self.sagemaker_backend, self._get_param("TrainingJobName"))
    return EmptyResult()


_LABELING_FIELDS = ("LabelingJobName", "LabelAttributeName", "InputConfig", "OutputConfig", "RoleArn",
                    "LabelCategoryConfigS3Uri", "StoppingConditions", "LabelingJobAlgorithmsConfig",
                    "HumanTaskConfig", "Tags")


@_new_operation
def _create_labeling_job(self: SageMakerResponse) -> ActionResult:
    request = {f: self._get_param(f) for f in _LABELING_FIELDS if self._get_param(f) is not None}
    return ActionResult({"LabelingJobArn": labeling.create(EXT, self.sagemaker_backend, request)})


@_new_operation
def _describe_labeling_job(self: SageMakerResponse) -> ActionResult:
    return ActionResult(labeling.describe(EXT, self.sagemaker_backend, self._get_param("LabelingJobName")))


@_new_operation
def _list_labeling_jobs(self: SageMakerResponse) -> ActionResult:
    names = ("CreationTimeAfter", "CreationTimeBefore", "LastModifiedTimeAfter", "LastModifiedTimeBefore",
             "MaxResults", "NextToken", "NameContains", "SortBy", "SortOrder", "StatusEquals")
    params = {n: self._get_param(n) for n in names}
    return ActionResult(labeling.list_jobs(EXT, self.sagemaker_backend, params))


@_new_operation
def _stop_labeling_job(self: SageMakerResponse) -> ActionResult:
    labeling.stop(EXT, self.sagemaker_backend, self._get_param("LabelingJobName"))
    return EmptyResult()


PATCHES: list[tuple[type, str, Any]] = [
    (SageMakerModelBackend, "create_training_job", _create_training_job),
    (SageMakerModelBackend, "describe_training_job", _describe_training_job),
    (SageMakerModelBackend, "list_training_jobs", _list_training_jobs),
    (SageMakerModelBackend, "create_endpoint", _create_endpoint),
    (SageMakerModelBackend, "describe_endpoint", _describe_endpoint),
    (SageMakerModelBackend, "list_endpoints", _list_endpoints),
    (SageMakerModelBackend, "delete_endpoint", _delete_endpoint),
    (SageMakerModelBackend, "update_endpoint_weights_and_capacities", _update_weights),
    (SageMakerModelBackend, "_get_resource_from_arn", _get_resource_from_arn),
    (SageMakerResponse, "update_endpoint", _update_endpoint),
    (SageMakerResponse, "stop_training_job", _stop_training_job),
    (SageMakerResponse, "create_labeling_job", _create_labeling_job),
    (SageMakerResponse, "describe_labeling_job", _describe_labeling_job),
    (SageMakerResponse, "list_labeling_jobs", _list_labeling_jobs),
    (SageMakerResponse, "stop_labeling_job", _stop_labeling_job),
]
PATCHES += s3_rules.PATCHES  # S3 rules moto lacks: non-MD5 ETags, SSE-C (local_aws/s3_rules.py)
PATCHES += s3_conditional.PATCHES  # conditional writes are atomic per key (local_aws/s3_conditional.py)


def installed() -> bool:
    """Whether the patches are in place."""
    return patching.installed()


def install() -> None:
    """Apply every patch and register what the clock advances; a second call is a no-op."""
    patching.install(PATCHES)
    EXT.refreshers[:] = [training.refresh_all, endpoints.refresh_all, labeling.refresh_all]


def uninstall() -> None:
    """Restore moto exactly as it was (methods we added are removed again)."""
    patching.uninstall()
