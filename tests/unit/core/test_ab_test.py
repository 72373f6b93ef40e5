"""A/B builders: the two-variant config, the promotion request, when a promotion is done."""

from __future__ import annotations

import math
from typing import Any

import pytest

from sagemaker_vision.core import ab_test
from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE
from sagemaker_vision.core.validate import ConfigError
from tests.unit.core.test_autoscaling import assert_valid

TAGS = [{"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}, {"Key": "pipeline", "Value": "shapes"}]


def ab(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "endpoint_config_name": "shapes-ab-1", "champion_model": "shapes-1", "challenger_model": "shapes-2",
        "instance_type": "ml.m5.large", "instance_count": 2, "challenger_weight": 0.1, "tags": TAGS,
    }
    args.update(overrides)
    return ab_test.ab_endpoint_config_request(**args)


# -- A/B config ----------------------------------------------------------------------------------
def test_ab_config_splits_traffic_and_is_a_valid_create_endpoint_config():
    request = ab()
    assert request["EndpointConfigName"] == "shapes-ab-1"
    assert request["ProductionVariants"] == [
        {"VariantName": "Champion", "ModelName": "shapes-1", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 2, "InitialVariantWeight": 0.9},
        {"VariantName": "Challenger", "ModelName": "shapes-2", "InstanceType": "ml.m5.large",
         "InitialInstanceCount": 2, "InitialVariantWeight": 0.1},
    ]
    assert request["Tags"] == TAGS
    assert_valid("sagemaker", "CreateEndpointConfig", request)


def test_ab_config_adds_the_package_tag_when_missing():
    request = ab(tags={"pipeline": "shapes"})
    assert request["Tags"] == [{"Key": "pipeline", "Value": "shapes"}, {"Key": PACKAGE_TAG, "Value": PACKAGE_TAG_VALUE}]


def test_ab_config_refuses_serverless_citing_aws():
    with pytest.raises(ConfigError) as err:
        ab(endpoint_type="serverless")
    assert err.value.field == "endpoint_type"
    assert "single production variant" in str(err.value)
    assert ab_test.SERVERLESS_EXCLUSIONS_URL in str(err.value)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"challenger_weight": 0}, "challenger_weight"),
        ({"challenger_weight": 1}, "challenger_weight"),
        ({"challenger_weight": 1.5}, "challenger_weight"),
        ({"challenger_weight": -0.1}, "challenger_weight"),
        ({"challenger_weight": True}, "challenger_weight"),
        ({"challenger_weight": "0.1"}, "challenger_weight"),
        ({"challenger_weight": math.nan}, "challenger_weight"),
        ({"challenger_model": "shapes-1"}, "challenger_model"),
        ({"champion_model": "shapes_1"}, "champion_model"),
        ({"endpoint_config_name": "x" * 64}, "endpoint_config_name"),
        ({"instance_type": "m5.large"}, "instance_type"),
        ({"instance_count": 0}, "instance_count"),
        ({"endpoint_type": "async"}, "endpoint_type"),
        ({"tags": "managed-by"}, "tags"),
        ({"tags": [{"Key": PACKAGE_TAG, "Value": "someone-else"}]}, "tags[0]"),
        ({"tags": [{"Key": "aws:x", "Value": "y"}]}, "tags[0]"),
        ({"tags": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}, "tags[1]"),
        ({"tags": [{"Key": "a"}]}, "tags[0]"),
        ({"tags": {f"k{i}": "v" for i in range(50)}}, "tags"),  # 50 + the package tag
    ],
)
def test_bad_ab_input_names_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        ab(**overrides)
    assert err.value.field == field


# -- promotion -----------------------------------------------------------------------------------
def ab_described(champion: float, challenger: float, status: str = "InService") -> dict[str, Any]:
    return {"EndpointName": "shapes", "EndpointStatus": status, "ProductionVariants": [
        {"VariantName": "Champion", "CurrentWeight": champion, "DesiredWeight": champion},
        {"VariantName": "Challenger", "CurrentWeight": challenger, "DesiredWeight": challenger},
    ]}


def test_promotion_request_is_valid_and_shifts_everything_to_the_challenger():
    request = ab_test.promotion_request("shapes")
    assert request == {"EndpointName": "shapes", "DesiredWeightsAndCapacities": [
        {"VariantName": "Challenger", "DesiredWeight": 1.0}, {"VariantName": "Champion", "DesiredWeight": 0.0}]}
    assert_valid("sagemaker", "UpdateEndpointWeightsAndCapacities", request)


@pytest.mark.parametrize(
    ("variants", "promoted"),
    [
        (ab_described(0.0, 1.0)["ProductionVariants"], True),
        (ab_described(0.5, 0.5)["ProductionVariants"], False),
        # Desired already shifted but current not yet: an update is still in flight.
        ([{"VariantName": "Champion", "CurrentWeight": 0.5, "DesiredWeight": 0.0},
          {"VariantName": "Challenger", "CurrentWeight": 0.5, "DesiredWeight": 1.0}], False),
        ([], False),
    ],
)
def test_is_promoted(variants, promoted):
    assert ab_test.is_promoted({"ProductionVariants": variants}) is promoted
