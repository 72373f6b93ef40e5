"""A/B tests on a live endpoint: promote the challenger, then keep one variant; and the waits they need.

Thin over the pure requests of :mod:`sagemaker_vision.core.ab_test`; every function takes the
boto3 clients it calls.

* :func:`promote_challenger`: shifts all traffic to the challenger with
  ``UpdateEndpointWeightsAndCapacities`` (no redeploy) and waits InService.
* :func:`end_ab_test`: the A/B test's last step, keeping one variant (the Challenger after a
  promotion, the Champion when the Challenger is dropped) as a single ``AllTraffic`` variant, so
  the idle one stops costing money. The variant names change, so the UpdateEndpoint carries no
  DeploymentConfig: AWS refuses one then ("When doing a blue/green or rolling deployment, your new
  endpoint configuration must have the same variant name as the old endpoint configuration",
  Deployment guardrails, Exclusions); without one SageMaker still provisions the new fleet before
  it shifts traffic and deletes the old one ("there is no availability loss", UpdateEndpoint).
* :func:`finish_ab_test`: both, as the ``<pipeline>.promote_challenger`` DAG runs them.

Every wait polls DescribeEndpoint within a budget from :mod:`~sagemaker_vision.core.endpoint_waits`
and fails at once on Failed, UpdateRollbackFailed, OutOfService or Deleting, with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from sagemaker_vision.core import endpoint_waits as waits
from sagemaker_vision.core.ab_test import (
    AB_ACTIONS,
    SINGLE_SUFFIX,
    check_ab_endpoint,
    is_promoted,
    promotion_request,
    single_variant_config_request,
    weights,
)
from sagemaker_vision.core.autoscaling import autoscaling_conflicts, int_field, positive_number
from sagemaker_vision.core.naming import CHALLENGER, CHAMPION, VARIANT_NAME
from sagemaker_vision.core.validate import ConfigError, validate_sagemaker_name
from sagemaker_vision.hooks.sagemaker import all_tags, describe_or_none, settled_outcome
from sagemaker_vision.hooks.scaling import (
    clear_released,
    record_released,
    recorded_released,
    release_autoscaling,
    restore_after_failed_update,
    restore_released,
)

log = logging.getLogger(__name__)

DEFAULT_WAITER_DELAY = 30
# None: as many polls as the operation's budget (core.endpoint_waits.endpoint_wait_budget) needs.
DEFAULT_WAITER_MAX_ATTEMPTS: int | None = None


def wait_in_service(sagemaker_client: Any, endpoint_name: str, *, waiter_delay: float = DEFAULT_WAITER_DELAY,
                    waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS, budget_s: int | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll DescribeEndpoint until InService; RuntimeError at once on a failed state, or when out of polls.

    ``waiter_max_attempts`` None: enough polls for ``budget_s`` (default: the budget of an update,
    core.endpoint_waits). Failed, UpdateRollbackFailed, OutOfService and Deleting end the wait at the
    first poll that sees them, naming the status and the FailureReason.
    """
    positive_number(waiter_delay, "waiter_delay")
    if waiter_max_attempts is None:
        waiter_max_attempts = waits.max_attempts(budget_s or waits.endpoint_wait_budget("update", []), waiter_delay)
    int_field(waiter_max_attempts, "waiter_max_attempts", 1)
    description: dict[str, Any] = {}
    for attempt in range(1, waiter_max_attempts + 1):
        try:  # the acceptors of hooks.sagemaker.ENDPOINT_SETTLED_MODEL decide, as in the deploy operator's waiter
            description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
        except ClientError as exc:
            if settled_outcome(exc.response) == "failure":
                raise RuntimeError(f"endpoint {endpoint_name!r} cannot be waited for: {exc}") from exc
            raise
        outcome = settled_outcome(description)
        if outcome == "success":
            return description
        if outcome == "failure":
            raise RuntimeError(waits.failure_message(description))
        if attempt < waiter_max_attempts:
            sleep(waiter_delay)
    raise RuntimeError(
        f"endpoint {endpoint_name!r} is still {description.get('EndpointStatus')} after {waiter_max_attempts} checks "
        f"{waiter_delay} s apart; the operation goes on on AWS: run this again to resume waiting"
    )


def promote_challenger(
    sagemaker_client: Any,
    endpoint_name: str,
    *,
    waiter_delay: float = DEFAULT_WAITER_DELAY,
    waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
) -> dict[str, Any]:
    """Shift all traffic to ``Challenger`` (``Champion`` weight 0), then wait InService.

    Idempotent: an endpoint whose challenger already has weight 1 (current and desired) is left
    alone. An endpoint still Creating or Updating is waited for first (bounded), since SageMaker
    refuses weight changes on an endpoint in progress. Returns the weights after the change.
    """
    request = promotion_request(endpoint_name)
    positive_number(waiter_delay, "waiter_delay")
    if waiter_max_attempts is not None:
        int_field(waiter_max_attempts, "waiter_max_attempts", 1)
    description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    check_ab_endpoint(description)
    if description.get("EndpointStatus") != "InService":
        log.info("Endpoint %s is %s; waiting for InService before promoting", endpoint_name,
                 description.get("EndpointStatus"))
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts)
    changed = not is_promoted(description)
    if changed:
        sagemaker_client.update_endpoint_weights_and_capacities(**request)
        log.info("Endpoint %s: sending all traffic to %s", endpoint_name, CHALLENGER)
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts,
                                      budget_s=waits.endpoint_wait_budget("weights", []))
        if not is_promoted(description):
            raise RuntimeError(f"endpoint {endpoint_name!r} is InService but the weights did not change: "
                               f"{weights(description)}")
    else:
        log.info("Endpoint %s already sends all traffic to %s; nothing to do", endpoint_name, CHALLENGER)
    return {"endpoint_name": endpoint_name, "changed": changed, "weights": weights(description)}


def end_ab_test(sagemaker_client: Any, endpoint_name: str, keep: str, *, autoscaling_client: Any = None,
                waiter_delay: float = DEFAULT_WAITER_DELAY,
                waiter_max_attempts: int | None = DEFAULT_WAITER_MAX_ATTEMPTS,
                sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Serve only ``keep``'s model (``Challenger`` or ``Champion``) as ``AllTraffic``, without downtime.

    Idempotent: an endpoint already serving the single-variant config is left alone, and an existing
    config of that name is reused when it serves the same model. Refuses an endpoint that is not
    an A/B endpoint. With ``autoscaling_client``, the A/B variants' autoscaling is released first
    (AWS fails an update that removes an autoscaled variant), after being recorded in the endpoint's
    tags (:func:`record_released`); the kept variant's is put back on ``AllTraffic`` afterwards. If
    the update is refused or rolled back, everything released goes back on the A/B variants; if the
    wait gives up, the record stays and a rerun restores it. Returns ``{"endpoint_name",
    "endpoint_config_name", "model_name", "changed", "autoscaling"}``.
    """
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    description = sagemaker_client.describe_endpoint(EndpointName=endpoint_name)
    if description.get("EndpointStatus") != "InService":
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts, sleep=sleep)
    arn = description.get("EndpointArn")
    # What an earlier try released (it timed out, or crashed) and has not put back yet.
    record = recorded_released(sagemaker_client, arn) if autoscaling_client is not None and arn else {}
    serving = sagemaker_client.describe_endpoint_config(EndpointConfigName=description["EndpointConfigName"])
    names = sorted(v.get("VariantName") for v in serving.get("ProductionVariants") or [])
    if names == [VARIANT_NAME] and serving["EndpointConfigName"].endswith(SINGLE_SUFFIX):
        model = serving["ProductionVariants"][0].get("ModelName")
        log.info("Endpoint %s already serves %s alone (%s); nothing to do", endpoint_name, model,
                 serving["EndpointConfigName"])
        restored = None
        if record and record.get("to_config") == serving["EndpointConfigName"]:
            restored = _restore_kept(autoscaling_client, sagemaker_client, endpoint_name, arn, record)
        return {"endpoint_name": endpoint_name, "endpoint_config_name": serving["EndpointConfigName"],
                "model_name": model, "changed": False, "autoscaling": restored}
    check_ab_endpoint({"EndpointName": endpoint_name, "ProductionVariants": serving.get("ProductionVariants")})
    tags = all_tags(sagemaker_client, serving["EndpointConfigArn"])
    request = single_variant_config_request(serving, keep, tags)
    _ensure_config(sagemaker_client, request)
    if autoscaling_client is not None:
        record = {"from_config": serving["EndpointConfigName"], "to_config": request["EndpointConfigName"],
                  "keep": keep, "variants": dict((record or {}).get("variants") or {})}

        def keep_record(released: dict[str, Any]) -> None:
            record["variants"] = {**released, **record["variants"]}  # an earlier try's record wins
            record_released(sagemaker_client, arn, record)

        release_autoscaling(autoscaling_client, endpoint_name, autoscaling_conflicts(
            serving.get("ProductionVariants") or [], request["ProductionVariants"]), record=keep_record)
    model = request["ProductionVariants"][0]["ModelName"]
    try:
        sagemaker_client.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=request["EndpointConfigName"],
                                         RetainDeploymentConfig=False)
        log.info("Endpoint %s: %s (%s) takes all traffic alone; updating to %s without a DeploymentConfig (the "
                 "variant names change, which blue/green guardrails do not allow); the A/B fleet serves until the "
                 "new one is InService", endpoint_name, keep, model, request["EndpointConfigName"])
        description = wait_in_service(sagemaker_client, endpoint_name, waiter_delay=waiter_delay,
                                      waiter_max_attempts=waiter_max_attempts, sleep=sleep,
                                      budget_s=waits.endpoint_wait_budget("update", request["ProductionVariants"]))
        if description.get("EndpointConfigName") != request["EndpointConfigName"]:
            raise RuntimeError(f"endpoint {endpoint_name!r} is InService on {description.get('EndpointConfigName')}, "
                               f"not {request['EndpointConfigName']}: the update was rolled back: "
                               f"{description.get('FailureReason') or 'no FailureReason given'}")
    except Exception:
        if autoscaling_client is not None and record.get("variants"):
            restore_after_failed_update(autoscaling_client, sagemaker_client, endpoint_name, arn, record)
        raise
    restored = None
    if autoscaling_client is not None and record.get("variants"):
        restored = _restore_kept(autoscaling_client, sagemaker_client, endpoint_name, arn, record)
    return {"endpoint_name": endpoint_name, "endpoint_config_name": request["EndpointConfigName"],
            "model_name": model, "changed": True, "autoscaling": restored}


def _restore_kept(aas_client: Any, sagemaker_client: Any, endpoint_name: str, arn: str,
                  record: Mapping[str, Any]) -> dict[str, Any] | None:
    """After the A/B test ended: the kept variant's released autoscaling goes onto ``AllTraffic``."""
    variants = record.get("variants") or {}
    keep: str | None = record.get("keep")
    for variant in sorted(set(variants) - {keep}):
        log.info("Autoscaling released from %s is not restored: that variant no longer serves", variant)
    restored = None
    if keep is not None and keep in variants:
        restored = restore_released(aas_client, sagemaker_client, endpoint_name, {keep: variants[keep]},
                                    onto={keep: VARIANT_NAME}).get(VARIANT_NAME)
    clear_released(sagemaker_client, arn)
    return restored


def finish_ab_test(sagemaker_client: Any, endpoint_name: str, action: str, *, autoscaling_client: Any = None,
                   waiter_delay: float = DEFAULT_WAITER_DELAY,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """``promote``: all traffic to the Challenger (weights), then it serves alone; ``drop``: the Champion does.

    Safe to rerun: a promotion already done is not repeated, an endpoint already serving one
    variant alone is left alone.
    """
    if action not in AB_ACTIONS:
        raise ConfigError("action", f"must be one of {', '.join(AB_ACTIONS)}; got {action!r}")
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    promoted = None
    names = {v.get("VariantName") for v in
             sagemaker_client.describe_endpoint(EndpointName=endpoint_name).get("ProductionVariants") or []}
    if action == "promote" and CHALLENGER in names:
        promoted = promote_challenger(sagemaker_client, endpoint_name, waiter_delay=waiter_delay)
    ended = end_ab_test(sagemaker_client, endpoint_name, CHALLENGER if action == "promote" else CHAMPION,
                        autoscaling_client=autoscaling_client, waiter_delay=waiter_delay, sleep=sleep)
    return {**ended, "action": action, "promotion": promoted}


def _ensure_config(client: Any, request: Mapping[str, Any]) -> None:
    name = request["EndpointConfigName"]
    existing = describe_or_none(client, "endpoint_config", name)
    if existing is None:
        client.create_endpoint_config(**request)
        log.info("Created endpoint config %s", name)
        return
    have = [(v.get("VariantName"), v.get("ModelName")) for v in existing.get("ProductionVariants") or []]
    want = [(v["VariantName"], v["ModelName"]) for v in request["ProductionVariants"]]
    if have != want:
        raise ConfigError("endpoint_name", f"endpoint config {name} exists with variants {have}, not {want}; "
                                           "delete it or deploy by hand")
    log.info("Reusing endpoint config %s", name)


