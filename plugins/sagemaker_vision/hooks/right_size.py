"""AWS access of ``<pipeline>.right_size``: what the pipeline's endpoint serves, a candidate's endpoint config,
the deletion of the temporary endpoints, and the reports in S3.

The decisions (names, tags, requests, the pick) are :mod:`sagemaker_vision.core.right_size`'s. Every
describe goes through :func:`~sagemaker_vision.hooks.sagemaker.describe_or_none` (the one not-found rule).

Deleting: SageMaker refuses DeleteEndpoint while an endpoint is Creating (or in maintenance,
SystemUpdating), so :func:`delete_candidate` first waits for an endpoint in flight to settle, for as long
as its creation may take (:func:`~sagemaker_vision.core.endpoint_waits.endpoint_wait_budget`); a resource
already gone counts as done, and one without this run's ``right-size-run`` tag is never deleted.

That wait is a bounded poll in the teardown task (it holds a worker slot while it lasts), kept on purpose
rather than failing fast for the task's retries: the teardown runs after every deploy has ended, so an
endpoint still Creating then is one whose deploy gave up (rare), and how much longer its creation takes
is unknown; retries with a delay would stay correct only if their count times their delay outlasted
it, and when they ran out the endpoint would be left behind. The poll ends at the creation budget, the
most AWS takes, and each candidate is settled in turn (the others are deleted before or after it).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException
from botocore.exceptions import ClientError

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.deployment import endpoint_type_of, serving_variant
from sagemaker_vision.core.right_size import RUN_TAG, is_this_runs
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import s3 as s3io
from sagemaker_vision.hooks.sagemaker import (
    ResourceConflictError,
    all_tags,
    describe_or_none,
    ensure_endpoint_config,
    is_not_found,
)

log = logging.getLogger(__name__)

# What DeleteEndpoint refuses to act on: an operation still running (the emulator enforces it too).
UNDELETABLE_STATES = frozenset({"Creating", "SystemUpdating"})


def serving(sagemaker: Any, endpoint_name: str) -> dict[str, Any] | None:
    """The model and memory size ``endpoint_name`` serves now; None when there is no such endpoint.

    Raises :class:`ConfigError` naming ``endpoint_name`` when it is not one serverless variant: an
    instance-backed or asynchronous endpoint has no memory size to right-size.
    """
    endpoint = describe_or_none(sagemaker, "endpoint", endpoint_name)
    if endpoint is None:
        return None
    config = describe_or_none(sagemaker, "endpoint_config", endpoint["EndpointConfigName"])
    if config is None:
        raise ConfigError("model_name", f"is empty, and endpoint {endpoint_name}'s config "
                                        f"{endpoint['EndpointConfigName']} is gone: name the model to test")
    variants = config.get("ProductionVariants") or []
    kind = "async" if config.get("AsyncInferenceConfig") else endpoint_type_of(variants)
    if kind != "serverless" or len(variants) != 1:
        what = ", ".join(str(v.get("InstanceType") or "serverless") for v in variants)
        raise ConfigError("endpoint_name", f"{endpoint_name} is a {kind} endpoint ({len(variants)} variant(s): "
                                           f"{what}); right-sizing compares the memory sizes of one serverless "
                                           "variant (for instance types, use SageMaker Inference Recommender)")
    variant = serving_variant(variants)
    return {"model_name": variant["ModelName"], "memory_mb": int(variant["ServerlessConfig"]["MemorySizeInMB"]),
            "endpoint_config_name": endpoint["EndpointConfigName"]}


def require_model(sagemaker: Any, model_name: str) -> dict[str, Any]:
    """The model's description; refuses a model that does not exist, naming ``model_name``."""
    model = describe_or_none(sagemaker, "model", model_name)
    if model is None:
        raise ConfigError("model_name", f"model {model_name!r} does not exist in {sagemaker.meta.region_name}")
    return model


def model_data_url(model: Mapping[str, Any]) -> str:
    """Where the model's artifacts are (its primary container's, else its first container's); "" if none."""
    container: Mapping[str, Any] = model.get("PrimaryContainer") or next(iter(model.get("Containers") or []), {})
    return str(container.get("ModelDataUrl") or "")


def exists(s3_client: Any, uri: str) -> bool:
    return s3io.exists(s3_client, uri)


def _refuse_if_not_ours(sagemaker: Any, kind: str, description: Mapping[str, Any] | None, arn_key: str,
                        run_id: str) -> None:
    if description is not None and not is_this_runs(all_tags(sagemaker, description[arn_key]), run_id):
        raise ResourceConflictError(
            f"{kind} {description.get('EndpointName') or description.get('EndpointConfigName')} exists and is not "
            f"this run's (no {RUN_TAG}={run_id} tag): a right-size run never uses or deletes another's resources")


def ensure_candidate_config(sagemaker: Any, request: Mapping[str, Any], run_id: str) -> bool:
    """The candidate's endpoint config (created, or this run's from an earlier try); True when created now.

    Also refuses when an endpoint of the candidate's name exists and is not this run's, before the deploy
    would update it.
    """
    name = request["EndpointConfigName"]
    _refuse_if_not_ours(sagemaker, "endpoint", describe_or_none(sagemaker, "endpoint", name), "EndpointArn", run_id)
    _refuse_if_not_ours(sagemaker, "endpoint config", describe_or_none(sagemaker, "endpoint_config", name),
                        "EndpointConfigArn", run_id)
    _arn, created = ensure_endpoint_config(sagemaker, request)
    return created


def _settled(sagemaker: Any, name: str, *, budget_s: float, poll_s: float, sleep: Callable[[float], None],
             clock: Callable[[], float]) -> dict[str, Any] | None:
    """The endpoint once no operation that blocks DeleteEndpoint runs on it (None: it is gone)."""
    deadline = clock() + budget_s
    while True:
        endpoint = describe_or_none(sagemaker, "endpoint", name)
        if endpoint is None or endpoint.get("EndpointStatus") not in UNDELETABLE_STATES:
            return endpoint
        if clock() >= deadline:
            raise AirflowException(f"endpoint {name} is still {endpoint['EndpointStatus']} after {budget_s:.0f} s; "
                                   "DeleteEndpoint is refused until it settles: clear this task to try again")
        log.info("endpoint %s is %s: waiting for it to settle before deleting it", name, endpoint["EndpointStatus"])
        sleep(poll_s)


def ensure_candidate_endpoint(sagemaker: Any, name: str, tags: list[dict[str, str]], run_id: str, *,
                              budget_s: float, poll_s: float, sleep: Callable[[float], None] = time.sleep,
                              clock: Callable[[], float] = time.monotonic) -> str:
    """The candidate's endpoint, InService, before its load test: created again when it is gone (the run's
    teardown deleted it and a clear re-runs the test). Returns ``in service`` or ``recreated``.

    Waits in this task (a bounded poll, ``budget_s``: the creation's own budget) only when the endpoint is
    not InService already, which after a finished run's clear is the only case: the deploy task, which
    waits in the triggerer, is not cleared with the test. Refuses another run's endpoint; a Failed one
    fails the task naming its FailureReason.
    """
    deadline, created, checked = clock() + budget_s, False, False
    while True:
        endpoint = describe_or_none(sagemaker, "endpoint", name)
        if endpoint is None:
            if created:
                raise AirflowException(f"endpoint {name} was created and is gone again: something deletes it")
            log.info("endpoint %s is gone (this run's teardown deleted it): creating it again for its test", name)
            sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=tags)
            created = True
            continue
        if not checked:
            _refuse_if_not_ours(sagemaker, "endpoint", endpoint, "EndpointArn", run_id)
            checked = True
        status = endpoint.get("EndpointStatus")
        if status == "InService":
            return "recreated" if created else "in service"
        if status == "Failed":
            raise AirflowException(f"endpoint {name} is Failed: {endpoint.get('FailureReason', 'no reason given')}")
        if clock() >= deadline:
            raise AirflowException(f"endpoint {name} is still {status} after {budget_s:.0f} s")
        log.info("endpoint %s is %s: waiting before its load test", name, status)
        sleep(poll_s)


def _delete(call: Callable[..., Any], **kwargs: Any) -> str:
    try:
        call(**kwargs)
    except ClientError as exc:
        if is_not_found(exc):
            return "already gone"
        raise
    return "deleted"


def delete_candidate(sagemaker: Any, name: str, run_id: str, *, poll_s: float = 30,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> dict[str, str]:
    """Delete one candidate's endpoint, then its config (same name); idempotent. Returns what happened to each."""
    outcome: dict[str, str] = {}
    config = describe_or_none(sagemaker, "endpoint_config", name)
    endpoint = describe_or_none(sagemaker, "endpoint", name)
    if endpoint is None:
        outcome["endpoint"] = "already gone"
    elif not is_this_runs(all_tags(sagemaker, endpoint["EndpointArn"]), run_id):
        outcome["endpoint"] = "not this run's: kept"
    else:
        budget = waits.endpoint_wait_budget("create", (config or {}).get("ProductionVariants") or [])
        endpoint = _settled(sagemaker, name, budget_s=budget, poll_s=poll_s, sleep=sleep, clock=clock)
        if endpoint is None:
            outcome["endpoint"] = "already gone"
        elif endpoint.get("EndpointStatus") == "Deleting":
            outcome["endpoint"] = "being deleted"
        else:
            outcome["endpoint"] = _delete(sagemaker.delete_endpoint, EndpointName=name)
    if config is None:
        outcome["endpoint_config"] = "already gone"
    elif not is_this_runs(all_tags(sagemaker, config["EndpointConfigArn"]), run_id):
        outcome["endpoint_config"] = "not this run's: kept"
    else:
        outcome["endpoint_config"] = _delete(sagemaker.delete_endpoint_config, EndpointConfigName=name)
    return outcome


def read_json_if_exists(s3_client: Any, uri: str) -> dict[str, Any] | None:
    """An s3:// JSON object, or None when it does not exist."""
    raw = s3io.read_if_exists(s3_client, uri)
    return None if raw is None else json.loads(raw)


def put_json(s3_client: Any, uri: str, data: Any) -> str:
    return s3io.put_json(s3_client, uri, data)
