"""A/B tests between a champion and a challenger model, pure: the endpoint configs and the weights.

* :func:`ab_endpoint_config_request`: two production variants, ``Champion`` and ``Challenger``,
  weighted ``1 - w`` and ``w``.
* :func:`promotion_request` / :func:`is_promoted`: the ``UpdateEndpointWeightsAndCapacities``
  that shifts all traffic to the challenger (no redeploy), and whether it is done.
* :func:`single_variant_config_request`: the A/B test's last step keeps one variant (the
  Challenger after a promotion, the Champion when the Challenger is dropped) as a single
  ``AllTraffic`` variant, so the idle one stops costing money.

The calls and waits are in :mod:`sagemaker_vision.hooks.ab_test`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sagemaker_vision.core.autoscaling import int_field, package_tags
from sagemaker_vision.core.naming import CHALLENGER, CHAMPION, VARIANT_NAME
from sagemaker_vision.core.validate import (
    REALTIME_ENDPOINT_TYPES,
    ConfigError,
    validate_instance_type,
    validate_sagemaker_name,
)

# Serverless Inference "Feature exclusions" list "multiple production variants":
# https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html#serverless-endpoints-how-it-works-exclusions
SERVERLESS_EXCLUSIONS_URL = (
    "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html"
    "#serverless-endpoints-how-it-works-exclusions"
)


def ab_endpoint_config_request(
    *,
    endpoint_config_name: str,
    champion_model: str,
    challenger_model: str,
    instance_type: str,
    instance_count: int,
    challenger_weight: float,
    tags: Sequence[Mapping[str, str]] | Mapping[str, str],
    endpoint_type: str = "provisioned",
) -> dict[str, Any]:
    """``CreateEndpointConfig`` with two variants: Champion (weight ``1 - w``) and Challenger (``w``).

    Each variant gets ``instance_count`` instances of ``instance_type``. Serverless endpoints are
    refused: AWS lists "multiple production variants" among Serverless Inference's feature
    exclusions (see :data:`SERVERLESS_EXCLUSIONS_URL`).
    """
    if endpoint_type not in REALTIME_ENDPOINT_TYPES:
        raise ConfigError("endpoint_type",
                          f"must be one of {', '.join(REALTIME_ENDPOINT_TYPES)}; got {endpoint_type!r}")
    if endpoint_type == "serverless":
        raise ConfigError(
            "endpoint_type",
            "serverless endpoints take a single production variant, so they cannot split traffic "
            f"between two models ({SERVERLESS_EXCLUSIONS_URL}); use a provisioned endpoint for A/B tests",
        )
    validate_sagemaker_name(endpoint_config_name, "endpoint_config_name")
    validate_sagemaker_name(champion_model, "champion_model")
    validate_sagemaker_name(challenger_model, "challenger_model")
    if champion_model == challenger_model:
        raise ConfigError("challenger_model", f"{challenger_model!r} is also the champion; an A/B test needs two")
    validate_instance_type(instance_type, "instance_type")
    int_field(instance_count, "instance_count", 1)
    if (isinstance(challenger_weight, bool) or not isinstance(challenger_weight, int | float)
            or not 0 < challenger_weight < 1):
        raise ConfigError("challenger_weight", f"must be a number strictly between 0 and 1, got {challenger_weight!r}")
    weight = float(challenger_weight)

    def variant(name: str, model: str, share: float) -> dict[str, Any]:
        return {
            "VariantName": name,
            "ModelName": model,
            "InstanceType": instance_type,
            "InitialInstanceCount": instance_count,
            "InitialVariantWeight": share,
        }

    return {
        "EndpointConfigName": endpoint_config_name,
        "ProductionVariants": [
            variant(CHAMPION, champion_model, round(1.0 - weight, 6)),
            variant(CHALLENGER, challenger_model, weight),
        ],
        "Tags": package_tags(tags),
    }


def promotion_request(endpoint_name: str) -> dict[str, Any]:
    """``UpdateEndpointWeightsAndCapacities`` kwargs that send all traffic to the challenger."""
    validate_sagemaker_name(endpoint_name, "endpoint_name")
    return {
        "EndpointName": endpoint_name,
        "DesiredWeightsAndCapacities": [
            {"VariantName": CHALLENGER, "DesiredWeight": 1.0},
            {"VariantName": CHAMPION, "DesiredWeight": 0.0},
        ],
    }


def is_promoted(description: Mapping[str, Any]) -> bool:
    """True when the challenger already takes all traffic, now and as desired."""
    weights = {v.get("VariantName"): v for v in description.get("ProductionVariants") or []}
    challenger, champion = weights.get(CHALLENGER, {}), weights.get(CHAMPION, {})
    return all(
        variant.get(key) == expected
        for variant, expected in ((challenger, 1.0), (champion, 0.0))
        for key in ("CurrentWeight", "DesiredWeight")
    )


def check_ab_endpoint(description: Mapping[str, Any]) -> None:
    """Refuse an endpoint (or config) that lacks the Champion or the Challenger variant."""
    names = sorted(v.get("VariantName") for v in description.get("ProductionVariants") or [])
    if CHAMPION not in names or CHALLENGER not in names:
        raise ConfigError(
            "endpoint_name",
            f"endpoint {description.get('EndpointName')!r} is not an A/B endpoint: it has variants "
            f"{names}, not {CHAMPION} and {CHALLENGER}",
        )



def weights(description: Mapping[str, Any]) -> dict[str, float | None]:
    """``{variant: CurrentWeight}`` of a DescribeEndpoint reply."""
    return {v.get("VariantName"): v.get("CurrentWeight") for v in description.get("ProductionVariants") or []}


SINGLE_SUFFIX = "-single"
CONFIG_COPIED = ("ModelName", "InstanceType", "InitialInstanceCount", "AcceleratorType", "VolumeSizeInGB",
                 "ModelDataDownloadTimeoutInSeconds", "ContainerStartupHealthCheckTimeoutInSeconds",
                 "ManagedInstanceScaling", "RoutingConfig", "InferenceAmiVersion")


def single_variant_config_name(model_name: str) -> str:
    """``<model>-single``, cut to SageMaker's 63 characters."""
    validate_sagemaker_name(model_name, "model_name")
    return f"{model_name[:63 - len(SINGLE_SUFFIX)].rstrip('-')}{SINGLE_SUFFIX}"


def single_variant_config_request(ab_config: Mapping[str, Any], keep: str,
                                  tags: Sequence[Mapping[str, str]] | Mapping[str, str] = ()) -> dict[str, Any]:
    """``CreateEndpointConfig`` kwargs serving ``keep``'s model alone, as ``AllTraffic``, from an A/B config.

    ``ab_config`` is the DescribeEndpointConfig of the A/B endpoint; the kept variant's model,
    instance type and count (and its timeouts) are copied, its weight becomes 1.
    """
    if keep not in (CHAMPION, CHALLENGER):
        raise ConfigError("keep", f"must be {CHAMPION} or {CHALLENGER}, got {keep!r}")
    variants = {v.get("VariantName"): v for v in ab_config.get("ProductionVariants") or []}
    if keep not in variants:
        raise ConfigError("endpoint_name", f"endpoint config {ab_config.get('EndpointConfigName')!r} has no {keep} "
                                           f"variant; it has {sorted(n for n in variants if n)}")
    kept = variants[keep]
    variant = {key: kept[key] for key in CONFIG_COPIED if kept.get(key) is not None}
    variant.update(VariantName=VARIANT_NAME, InitialVariantWeight=1.0)
    request: dict[str, Any] = {"EndpointConfigName": single_variant_config_name(kept["ModelName"]),
                               "ProductionVariants": [variant], "Tags": package_tags(tags)}
    for key in ("DataCaptureConfig", "KmsKeyId"):
        if ab_config.get(key):
            request[key] = ab_config[key]
    return request


AB_ACTIONS = ("promote", "drop")

