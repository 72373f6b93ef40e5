"""The package's SageMaker hook: the one not-found rule, tag paging and this package's waiters.

SageMaker answers a missing resource in two ways. Operations whose model declares it (training and
labeling jobs) raise ``ResourceNotFound``; the others (endpoints, endpoint configs, models) declare
no errors and raise ``ValidationException`` with "Could not find ...". Old regions have also
answered ``ValidationException`` "Requested resource not found" for training jobs. Any other
``ValidationException`` is a real validation error and is raised, never read as "missing".

Functions take a boto3 SageMaker client so pure planners and tasks that already hold a client can
use them; :class:`SageMakerVisionHook` offers the same calls on its own connection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from airflow.providers.amazon.aws.waiters.base_waiter import BaseBotoWaiter
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException
from botocore.exceptions import ClientError
from botocore.waiter import WaiterModel

from sagemaker_vision.core.deployment import (
    DEPLOYED_OVER_TAG,
    deployed_over_value,
    endpoint_config_differences,
    model_differences,
    parse_deployed_over,
    rollback_alarm_requests,
    serving_variant,
)
from sagemaker_vision.core.endpoint_waits import ENDPOINT_SETTLED
from sagemaker_vision.core.naming import VARIANT_NAME
from sagemaker_vision.core.quality_gate import MAP_TAG, finite, format_map_tag
from sagemaker_vision.core.validate import validate_sagemaker_name
from sagemaker_vision.hooks.s3 import head_object_if_exists
from sagemaker_vision.waiters import WAITERS_FILE, load_waiter_config

log = logging.getLogger(__name__)


# Codes that mean "no such resource" on every SageMaker describe/list/delete call this package makes.
NOT_FOUND_CODES = frozenset({"ResourceNotFound", "ResourceNotFoundException"})
# ValidationException means "missing" only with one of these phrases (lower-cased).
NOT_FOUND_PHRASES = ("could not find", "not found", "does not exist")

Kind = Literal["endpoint", "endpoint_config", "model", "training_job", "labeling_job"]
# kind -> (describe operation, its name parameter)
DESCRIBE: dict[str, tuple[str, str]] = {
    "endpoint": ("describe_endpoint", "EndpointName"),
    "endpoint_config": ("describe_endpoint_config", "EndpointConfigName"),
    "model": ("describe_model", "ModelName"),
    "training_job": ("describe_training_job", "TrainingJobName"),
    "labeling_job": ("describe_labeling_job", "LabelingJobName"),
}
# ListTags: MaxResults is at least 50 (botocore model ListTagsMaxResults); a resource has at most 50 tags.
LIST_TAGS_PAGE = 100
MAX_TAG_PAGES = 100


def is_not_found(exc: BaseException) -> bool:
    """True when ``exc`` is SageMaker saying the named resource does not exist."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).lower()
    if code in NOT_FOUND_CODES:
        return True
    return code in ("ValidationException", "ValidationError") and any(p in message for p in NOT_FOUND_PHRASES)


def describe_or_none(client: Any, kind: Kind | str, name: str) -> dict[str, Any] | None:
    """The ``Describe*`` answer for the ``kind`` resource ``name``, or None when it does not exist."""
    try:
        operation, parameter = DESCRIBE[kind]
    except KeyError:
        raise ValueError(f"unknown SageMaker resource kind {kind!r}; known: {', '.join(DESCRIBE)}") from None
    try:
        return getattr(client, operation)(**{parameter: name})
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def all_tags(client: Any, arn: str) -> dict[str, str]:
    """Every tag of ``arn`` (ListTags, all pages); a repeated key keeps its last value."""
    tags: dict[str, str] = {}
    kwargs: dict[str, Any] = {"ResourceArn": arn, "MaxResults": LIST_TAGS_PAGE}
    for _ in range(MAX_TAG_PAGES):  # 50 tags per resource at most: one page in practice, bounded anyway
        page = client.list_tags(**kwargs)
        tags.update({tag["Key"]: tag["Value"] for tag in page.get("Tags") or []})
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return tags


def waiter_model(name: str) -> dict[str, Any]:
    """The model of one waiter of ``waiters/sagemaker_vision.json``: ``{"version": 2, "waiters": {name: ...}}``."""
    config = load_waiter_config()
    return {"version": config["version"], "waiters": {name: config["waiters"][name]}}


# This package's waiters (the names in waiters/sagemaker_vision.json).
PACKAGE_WAITERS = frozenset(load_waiter_config()["waiters"])

# The waiter every endpoint wait of this package uses: InService succeeds; Failed, UpdateRollbackFailed,
# OutOfService, Deleting and a vanished endpoint fail at once (boto's EndpointInService fails only on Failed).
ENDPOINT_SETTLED_MODEL = waiter_model(ENDPOINT_SETTLED)


def settled_outcome(response: Mapping[str, Any]) -> str | None:
    """What :data:`ENDPOINT_SETTLED_MODEL`'s acceptors make of one DescribeEndpoint response (or a
    ClientError's ``response``): ``"success"``, ``"failure"`` or None (keep polling).

    For loops that poll themselves (``hooks.ab_test.wait_in_service``) with the one waiter definition.
    """
    for acceptor in WaiterModel(ENDPOINT_SETTLED_MODEL).get_waiter(ENDPOINT_SETTLED).acceptors:
        if acceptor.matcher_func(response):
            return acceptor.state
    return None


# --------------------------------------------------------------------------------------------
# Deploy: idempotent creates (a same-named resource that differs is refused by field) and the
# production-variant reads (what serves an endpoint, its mAP, the config a deploy replaced)
# --------------------------------------------------------------------------------------------


class ResourceConflictError(AirflowFailException):
    """A resource of that name exists but is not what was asked for; retrying cannot fix it."""


def production_map(sagemaker_client: Any, endpoint_name: str) -> float | None:
    """The ``validation-map`` tag of the model serving ``endpoint_name``; None if there is none.

    DescribeEndpoint -> EndpointConfigName -> DescribeEndpointConfig -> the variant taking most
    traffic -> ModelName -> DescribeModel (for its ARN) -> ListTags. None when the endpoint does
    not exist (first deploy), or the serving model is gone or has no (parsable) tag.
    """
    endpoint = describe_or_none(sagemaker_client, "endpoint", endpoint_name)
    if endpoint is None:
        return None
    config = describe_or_none(sagemaker_client, "endpoint_config", endpoint["EndpointConfigName"])
    if config is None:
        log.warning("Endpoint %s serves config %s, which no longer exists; its mAP is unknown",
                    endpoint_name, endpoint["EndpointConfigName"])
        return None
    model_name = serving_variant(config["ProductionVariants"]).get("ModelName")
    model = describe_or_none(sagemaker_client, "model", model_name) if model_name else None
    if model is None:
        log.warning("Endpoint %s serves model %s, which no longer exists; its mAP is unknown", endpoint_name,
                    model_name)
        return None
    raw = all_tags(sagemaker_client, model["ModelArn"]).get(MAP_TAG)
    value = finite(raw)
    if raw is not None and value is None:
        log.warning("Model %s has an unreadable %s tag %r; treating its mAP as unknown", model_name, MAP_TAG, raw)
    return value


def ensure_model(client: Any, request: Mapping[str, Any], *,
                 validation_map: float | None = None) -> tuple[str, bool]:
    """``CreateModel`` unless a model of that name exists; returns ``(ModelArn, created)``.

    An existing model is reused when its container images and ``ModelDataUrl`` match the request;
    otherwise :class:`ResourceConflictError` names the model and the differing field (models are
    immutable: change the name). ``validation_map`` is recorded as the ``validation-map`` tag, on
    the new model or added to the reused one.
    """
    name = validate_sagemaker_name(cast(str, request.get("ModelName")), "ModelName")
    tag_value = None if validation_map is None else format_map_tag(validation_map)
    existing = describe_or_none(client, "model", name)
    if existing is None:
        create = dict(request)
        if tag_value is not None:
            create["Tags"] = [t for t in request.get("Tags") or [] if t.get("Key") != MAP_TAG]
            create["Tags"].append({"Key": MAP_TAG, "Value": tag_value})
        try:
            arn = client.create_model(**create)["ModelArn"]
            log.info("Created model %s (%s=%s)", name, MAP_TAG, tag_value)
            return arn, True
        except ClientError as exc:
            if not already_exists(exc):
                raise
            log.info("Model %s was created meanwhile; checking it", name)  # another try of this task
            existing = client.describe_model(ModelName=name)
    differences = model_differences(existing, request)
    if differences:
        raise ResourceConflictError(
            f"Model {name} already exists but differs from the request: {'; '.join(differences)}. "
            "Models cannot be changed: use a new ModelName."
        )
    arn = existing["ModelArn"]
    if tag_value is not None and all_tags(client, arn).get(MAP_TAG) != tag_value:
        client.add_tags(ResourceArn=arn, Tags=[{"Key": MAP_TAG, "Value": tag_value}])
        log.info("Tagged model %s with %s=%s", name, MAP_TAG, tag_value)
    log.info("Reusing model %s (same image and model data)", name)
    return arn, False


def ensure_endpoint_config(client: Any, request: Mapping[str, Any]) -> tuple[str, bool]:
    """``CreateEndpointConfig`` unless one of that name exists; returns ``(EndpointConfigArn, created)``.

    An existing config is reused when its ProductionVariants (matched by VariantName, including
    ServerlessConfig) and AsyncInferenceConfig hold every value the request sets; otherwise
    :class:`ResourceConflictError` names the config and the differing field.
    """
    name = validate_sagemaker_name(cast(str, request.get("EndpointConfigName")), "EndpointConfigName")
    existing = describe_or_none(client, "endpoint_config", name)
    if existing is None:
        try:
            arn = client.create_endpoint_config(**request)["EndpointConfigArn"]
            log.info("Created endpoint config %s", name)
            return arn, True
        except ClientError as exc:
            if not already_exists(exc):
                raise
            log.info("Endpoint config %s was created meanwhile; checking it", name)
            existing = client.describe_endpoint_config(EndpointConfigName=name)
    differences = endpoint_config_differences(existing, request)
    if differences:
        raise ResourceConflictError(
            f"Endpoint config {name} already exists but differs from the request: {'; '.join(differences)}. "
            "Endpoint configs cannot be changed: use a new EndpointConfigName."
        )
    log.info("Reusing endpoint config %s (same variants)", name)
    return existing["EndpointConfigArn"], False


def record_deployed_over(sagemaker_client: Any, endpoint_arn: str, new_config: str, previous_config: str) -> None:
    """Tag the endpoint: ``new_config`` is replacing ``previous_config`` (AddTags overwrites the key)."""
    value = deployed_over_value(new_config, previous_config)
    sagemaker_client.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": DEPLOYED_OVER_TAG, "Value": value}])


def deployed_over(sagemaker_client: Any, endpoint_arn: str) -> tuple[str, str] | None:
    """``(new config, the config it replaced)`` from the endpoint's deployed-over tag, or None."""
    return parse_deployed_over(all_tags(sagemaker_client, endpoint_arn).get(DEPLOYED_OVER_TAG))


def serving_summary(sagemaker_client: Any, endpoint_name: str) -> str:
    """``Endpoint E is InService on config C (model M, validation-map v)``, for messages; never raises."""
    try:
        endpoint = describe_or_none(sagemaker_client, "endpoint", endpoint_name)
        if endpoint is None:
            return f"Endpoint {endpoint_name} does not exist"
        config_name = endpoint.get("EndpointConfigName")
        config = describe_or_none(sagemaker_client, "endpoint_config", cast(str, config_name))
        models = [v.get("ModelName") for v in (config or {}).get("ProductionVariants") or []]
        model = serving_variant(config["ProductionVariants"]).get("ModelName") if config and models else None
        described = describe_or_none(sagemaker_client, "model", model) if model else None
        score = all_tags(sagemaker_client, described["ModelArn"]).get(MAP_TAG) if described else None
        return (f"Endpoint {endpoint_name} is {endpoint.get('EndpointStatus')} on config {config_name} (model "
                f"{model or 'unknown'}, {MAP_TAG} {score or 'unknown'}"
                + (f"; variants' models {models}" if len(models) > 1 else "") + ")")
    except Exception as exc:  # noqa: BLE001 - a message must not hide the failure it reports
        return f"What endpoint {endpoint_name} serves could not be read ({type(exc).__name__}: {exc})"


def ensure_rollback_alarms(
    cloudwatch_client: Any,
    endpoint_name: str,
    variant_name: str = VARIANT_NAME,
    *,
    error_threshold: float = 1,
    latency_threshold_ms: float = 1000.0,
    period_s: int = 60,
    evaluation_periods: int = 2,
) -> list[str]:
    """Put the endpoint's rollback alarms (see ``core.deployment.rollback_alarm_requests``); returns their names.

    PutMetricAlarm creates or overwrites by name, and the requests are deterministic, so calling
    this again changes nothing.
    """
    requests = rollback_alarm_requests(
        endpoint_name, variant_name, error_threshold=error_threshold, latency_threshold_ms=latency_threshold_ms,
        period_s=period_s, evaluation_periods=evaluation_periods,
    )
    for request in requests:
        cloudwatch_client.put_metric_alarm(**request)
    names = [request["AlarmName"] for request in requests]
    log.info("Rollback alarms in place for %s/%s: %s", endpoint_name, variant_name, ", ".join(names))
    return names


def already_exists(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return "already existing" in str(error.get("Message", "")).lower() or error.get("Code") == "ResourceInUse"


def champion_model(sagemaker_client: Any, endpoint_name: str) -> str | None:
    """The ModelName of the variant taking most traffic on ``endpoint_name``; None without an endpoint or model."""
    endpoint = describe_or_none(sagemaker_client, "endpoint", endpoint_name)
    if endpoint is None:
        return None
    serving = describe_or_none(sagemaker_client, "endpoint_config", endpoint["EndpointConfigName"])
    return serving_variant((serving or {}).get("ProductionVariants") or [{}]).get("ModelName")


def variant_names(sagemaker_client: Any, endpoint_name: str) -> list[str]:
    """The names of the endpoint's production variants (DescribeEndpoint; a missing endpoint raises)."""
    description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    return [variant["VariantName"] for variant in description.get("ProductionVariants") or []]


class SageMakerVisionHook(SageMakerHook):
    """``SageMakerHook`` with the package's not-found rule, tag paging and custom waiters.

    ``get_waiter(name)`` finds this package's waiters (``waiters/sagemaker_vision.json``); the
    provider's own SageMaker waiters stay on the provider's ``SageMakerHook``.
    """

    @cached_property
    def waiter_path(self) -> Path:
        return WAITERS_FILE

    def get_waiter(self, waiter_name: str, parameters: dict[str, str] | None = None,
                   config_overrides: dict[str, Any] | None = None, deferrable: bool = False,
                   client: Any = None) -> Any:
        """The provider's lookup, except that a waiter of this package asked for without parameters or
        overrides is built straight from its model (sync, or async on ``client``): the provider templates
        every acceptor's ``argument``, and an ``error`` acceptor (``endpoint_settled``'s vanished endpoint)
        has none."""
        if parameters is None and config_overrides is None and waiter_name in PACKAGE_WAITERS:
            if deferrable and client is None:
                raise ValueError("client must be provided for a deferrable waiter.")
            return BaseBotoWaiter(client=client or self.conn, model_config=waiter_model(waiter_name),
                                  deferrable=deferrable).waiter(waiter_name)
        return super().get_waiter(waiter_name, parameters, config_overrides, deferrable, client)

    def find(self, kind: Kind | str, name: str) -> dict[str, Any] | None:
        """``Describe*`` for ``name``, or None when there is no such resource."""
        return describe_or_none(self.conn, kind, name)

    def require(self, kind: Kind | str, name: str) -> dict[str, Any]:
        """``Describe*`` for ``name``; raises ``LookupError`` naming it when it does not exist."""
        found = self.find(kind, name)
        if found is None:
            raise LookupError(f"SageMaker {kind.replace('_', ' ')} {name!r} does not exist in {self.conn_region_name}")
        return found

    def all_tags(self, arn: str) -> dict[str, str]:
        return all_tags(self.conn, arn)

    # -- training: the pre-flight check of the input channels (the provider's, without HeadBucket)
    def check_s3_url(self, s3url: str) -> bool:
        """Whether a training (or tuning, transform) input channel exists, sending no ``HeadBucket``.

        The provider checks each channel with ``HeadBucket`` first, which IAM authorises as
        ``s3:ListBucket`` with no ``s3:prefix``: only a grant to list the whole bucket allows it. The
        Airflow role lists only under the project prefix (include/iam/), so the check reads the
        channel's object (``HeadObject``: the manifest; a 403 for a missing key is settled by
        ``hooks.s3.key_missing``) or, for a prefix channel, lists under it.
        """
        bucket, key = S3Hook.parse_s3_url(s3url)
        if key and (head_object_if_exists(self.s3_hook.get_conn(), bucket, key) is not None
                    or self.s3_hook.check_for_prefix(prefix=key, bucket_name=bucket, delimiter="/")):
            return True
        raise AirflowException(f"The input S3 Key or Prefix {s3url} does not exist in the Bucket {bucket}")

    # -- Ground Truth labeling jobs (their waiter: labeling_job_complete in waiters/sagemaker_vision.json)
    def find_labeling_job(self, name: str) -> dict[str, Any] | None:
        """``DescribeLabelingJob`` for ``name``, or None if no job of that name exists."""
        return self.find("labeling_job", name)

    def describe_labeling_job(self, name: str) -> dict[str, Any]:
        """``DescribeLabelingJob`` for ``name``; raises ``LookupError`` if there is no such job."""
        job = self.find_labeling_job(name)
        if job is None:
            raise LookupError(f"labeling job {name!r} does not exist in {self.conn_region_name}")
        return job

    def stop_labeling_job(self, name: str) -> None:
        """``StopLabelingJob``: InProgress -> Stopping -> Stopped, keeping the labels made so far."""
        self.conn.stop_labeling_job(LabelingJobName=name)

    # -- deploy: production-variant reads and idempotent creates (the module functions, on this hook's client)
    def production_map(self, endpoint_name: str) -> float | None:
        """The ``validation-map`` tag of the model serving ``endpoint_name`` (:func:`production_map`)."""
        return production_map(self.conn, endpoint_name)

    def ensure_model(self, request: Mapping[str, Any], *, validation_map: float | None = None) -> tuple[str, bool]:
        """``CreateModel`` unless a matching model exists (:func:`ensure_model`)."""
        return ensure_model(self.conn, request, validation_map=validation_map)

    def ensure_endpoint_config(self, request: Mapping[str, Any]) -> tuple[str, bool]:
        """``CreateEndpointConfig`` unless a matching config exists (:func:`ensure_endpoint_config`)."""
        return ensure_endpoint_config(self.conn, request)

    def deployed_over(self, endpoint_arn: str) -> tuple[str, str] | None:
        """``(new config, the config it replaced)`` from the endpoint's deployed-over tag (:func:`deployed_over`)."""
        return deployed_over(self.conn, endpoint_arn)

    def record_deployed_over(self, endpoint_arn: str, new_config: str, previous_config: str) -> None:
        """Tag the endpoint: ``new_config`` replaces ``previous_config`` (:func:`record_deployed_over`)."""
        record_deployed_over(self.conn, endpoint_arn, new_config, previous_config)

    def serving_summary(self, endpoint_name: str) -> str:
        """What serves ``endpoint_name``, for messages; never raises (:func:`serving_summary`)."""
        return serving_summary(self.conn, endpoint_name)

    def champion_model(self, endpoint_name: str) -> str | None:
        """The model of the variant taking most traffic (:func:`champion_model`)."""
        return champion_model(self.conn, endpoint_name)

    def variant_names(self, endpoint_name: str) -> list[str]:
        """The endpoint's production variant names (:func:`variant_names`)."""
        return variant_names(self.conn, endpoint_name)


__all__ = [
    "DESCRIBE",
    "ENDPOINT_SETTLED_MODEL",
    "NOT_FOUND_CODES",
    "PACKAGE_WAITERS",
    "ResourceConflictError",
    "SageMakerVisionHook",
    "WAITERS_FILE",
    "all_tags",
    "already_exists",
    "champion_model",
    "deployed_over",
    "describe_or_none",
    "ensure_endpoint_config",
    "ensure_model",
    "ensure_rollback_alarms",
    "is_not_found",
    "production_map",
    "record_deployed_over",
    "serving_summary",
    "settled_outcome",
    "variant_names",
    "waiter_model",
]
