"""The teardown planner (pure): what goes, what stays, why, and the money; the DAG's params."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sagemaker_vision.core import teardown as td
from sagemaker_vision.core.naming import PACKAGE_TAG, PACKAGE_TAG_VALUE
from sagemaker_vision.core.validate import ConfigError

T0 = datetime(2026, 11, 1, tzinfo=UTC)
OURS = {PACKAGE_TAG: PACKAGE_TAG_VALUE, "pipeline": "shapes"}
# ml.m5.large is $0.115 per instance-hour in the built-in table: 24 h x 30 days = $82.80 per instance.
M5_LARGE_MONTH = Decimal("82.80")


def model(n: int, tags: dict[str, str] | None = None) -> td.ModelState:
    return td.ModelState(f"shapes-{n}", T0 + timedelta(days=n), OURS if tags is None else tags)


def config(n: int, *models: int, tags: dict[str, str] | None = None) -> td.ConfigState:
    names = tuple(f"shapes-{m}" for m in (models or (n,)))
    return td.ConfigState(f"shapes-{n}", T0 + timedelta(days=n), OURS if tags is None else tags, names)


def endpoint(config_name: str = "shapes-4", tags: dict[str, str] | None = None, status: str = "InService",
             variants: tuple[td.VariantState, ...] | None = None) -> td.EndpointState:
    if variants is None:
        variants = (td.VariantState("AllTraffic", "shapes-4", "ml.m5.large", 2),)
    return td.EndpointState("shapes", status, config_name, OURS if tags is None else tags, variants)


def inventory(**overrides: Any) -> td.Inventory:
    args: dict[str, Any] = {
        "endpoint_name": "shapes",
        "endpoint": endpoint(),
        "configs": tuple(config(n) for n in range(1, 5)),
        "models": tuple(model(n) for n in range(1, 5)),
        "alarms": ("shapes-5xx", "shapes-latency"),
        "scalable_targets": ("endpoint/shapes/variant/AllTraffic",),
        "scaling_policies": (("endpoint/shapes/variant/AllTraffic", "shapes-AllTraffic-invocations-per-instance"),),
    }
    args.update(overrides)
    return td.Inventory(**args)


def decisions(plan: td.TeardownPlan) -> dict[tuple[str, str], bool]:
    return {(a.kind, a.name): a.delete for a in plan.actions}


def deleted(plan: td.TeardownPlan, kind: str) -> list[str]:
    return sorted(a.name for a in plan.deletions if a.kind == kind)


def kept(plan: td.TeardownPlan, kind: str) -> list[str]:
    return sorted(a.name for a in plan.kept if a.kind == kind)


# -- full teardown ---------------------------------------------------------------------------------
def test_full_teardown_deletes_endpoint_configs_alarms_scaling_and_old_models():
    plan = td.plan_teardown(inventory(), keep_models=2, delete_endpoint=True)
    assert deleted(plan, "endpoint") == ["shapes"]
    assert deleted(plan, "endpoint-config") == ["shapes-1", "shapes-2", "shapes-3", "shapes-4"]
    assert deleted(plan, "model") == ["shapes-1", "shapes-2"]
    assert kept(plan, "model") == ["shapes-3", "shapes-4"]
    assert deleted(plan, "alarm") == ["shapes-5xx", "shapes-latency"]
    assert deleted(plan, "scalable-target") == ["endpoint/shapes/variant/AllTraffic"]
    assert deleted(plan, "scaling-policy") == [
        "endpoint/shapes/variant/AllTraffic:shapes-AllTraffic-invocations-per-instance"]
    # Alarms and scaling first, configs before their models, the endpoint last.
    kinds = [a.kind for a in plan.deletions]
    assert kinds == sorted(kinds, key=td.KIND_ORDER.index) and kinds[-1] == "endpoint"
    assert plan.monthly_usd_stopped == 2 * M5_LARGE_MONTH
    assert plan.cost_detail == ("variant AllTraffic: 2 x ml.m5.large = $165.60 per 30 days",)
    reasons = {(a.kind, a.name): a.reason for a in plan.actions}
    assert "older than the newest 2" in reasons[("model", "shapes-1")]
    assert reasons[("model", "shapes-4")] == "among the newest 2 (keep_models)"


def test_keep_models_zero_deletes_every_model_of_the_pipeline():
    plan = td.plan_teardown(inventory(), keep_models=0, delete_endpoint=True)
    assert deleted(plan, "model") == ["shapes-1", "shapes-2", "shapes-3", "shapes-4"]


def test_keep_models_counts_by_creation_time_not_by_name():
    models = (td.ModelState("shapes-b", T0, OURS), td.ModelState("shapes-a", T0 + timedelta(hours=1), OURS),
              td.ModelState("shapes-c", None, OURS))
    plan = td.plan_teardown(inventory(models=models, configs=(), endpoint=None), keep_models=1,
                            delete_endpoint=True)
    assert kept(plan, "model") == ["shapes-a"]
    assert deleted(plan, "model") == ["shapes-b", "shapes-c"]  # unknown creation time counts as oldest


def test_resources_of_other_pipelines_and_untagged_ones_are_not_considered():
    models = (model(1), model(2), td.ModelState("shapes-9", T0, {"pipeline": "shapes"}),
              td.ModelState("shapes-old", T0, {PACKAGE_TAG: PACKAGE_TAG_VALUE, "pipeline": "shapes-old"}))
    configs = (config(1), td.ConfigState("shapes-9", T0, {}, ("shapes-9",)))
    plan = td.plan_teardown(inventory(models=models, configs=configs, endpoint=endpoint("shapes-1")),
                            keep_models=0, delete_endpoint=True)
    names = {name for _, name in decisions(plan)}
    assert "shapes-9" not in names and "shapes-old" not in names


def test_what_other_endpoints_use_is_never_deleted():
    other = td.EndpointUse("shapes-staging", "shapes-2", ("shapes-2",))
    plan = td.plan_teardown(inventory(other_endpoints=(other,)), keep_models=0, delete_endpoint=True)
    assert kept(plan, "endpoint-config") == ["shapes-2"]
    assert kept(plan, "model") == ["shapes-2"]
    reasons = {(a.kind, a.name): a.reason for a in plan.kept}
    assert reasons[("model", "shapes-2")] == "in use by endpoint shapes-staging"


# -- refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"endpoint": endpoint(tags={"pipeline": "shapes"})}, "endpoint shapes is not tagged"),
        ({"endpoint": endpoint(tags={PACKAGE_TAG: "other-tool"})}, "endpoint shapes is not tagged"),
        ({"configs": (config(4, tags={}),)}, "endpoint config shapes-4 is not tagged"),
        ({"models": (model(4, tags={"owner": "data-team"}),)}, "model shapes-4 is not tagged"),
    ],
)
def test_unmanaged_resources_are_refused_naming_them(overrides, named):
    with pytest.raises(td.UnmanagedResourceError) as err:
        td.plan_teardown(inventory(**overrides), keep_models=2, delete_endpoint=True)
    assert named in str(err.value)
    assert "Nothing was deleted" in str(err.value)


def test_an_unmanaged_endpoint_is_refused_even_when_only_pruning():
    with pytest.raises(td.UnmanagedResourceError, match="endpoint shapes"):
        td.plan_teardown(inventory(endpoint=endpoint(tags={})), keep_models=2, delete_endpoint=False)


# -- pruning (the endpoint stays) ------------------------------------------------------------------
def test_pruning_keeps_the_endpoint_its_config_models_and_alarms():
    plan = td.plan_teardown(inventory(), keep_models=1, delete_endpoint=False)
    assert kept(plan, "endpoint") == ["shapes"]
    assert deleted(plan, "model") == ["shapes-1", "shapes-2", "shapes-3"]
    assert kept(plan, "model") == ["shapes-4"]
    assert deleted(plan, "endpoint-config") == ["shapes-1", "shapes-2", "shapes-3"]
    assert kept(plan, "endpoint-config") == ["shapes-4"]
    assert deleted(plan, "alarm") == deleted(plan, "scalable-target") == []
    assert plan.monthly_usd_stopped == 0
    assert any("keeping alarms" in n for n in plan.notes)


def test_pruning_keeps_configs_of_kept_models_for_rollback():
    # The endpoint runs shapes-4; shapes-3 is among the newest two, so its config stays deployable.
    plan = td.plan_teardown(inventory(), keep_models=2, delete_endpoint=False)
    assert kept(plan, "endpoint-config") == ["shapes-3", "shapes-4"]
    assert deleted(plan, "endpoint-config") == ["shapes-1", "shapes-2"]
    reasons = {a.name: a.reason for a in plan.kept if a.kind == "endpoint-config"}
    assert reasons["shapes-3"] == "its model shapes-3 is kept"


def test_the_endpoint_in_use_model_survives_even_when_old():
    # An endpoint still on shapes-1 (rolled back): shapes-1 is old but in use.
    ep = endpoint("shapes-1", variants=(td.VariantState("AllTraffic", "shapes-1", "ml.m5.large", 1),))
    plan = td.plan_teardown(inventory(endpoint=ep), keep_models=0, delete_endpoint=False)
    assert kept(plan, "model") == ["shapes-1"]
    assert deleted(plan, "model") == ["shapes-2", "shapes-3", "shapes-4"]


# -- idempotency: the endpoint is already gone ----------------------------------------------------
def test_missing_endpoint_falls_back_to_the_pipeline_named_like_it():
    plan = td.plan_teardown(inventory(endpoint=None, scalable_targets=(), scaling_policies=()), keep_models=2,
                            delete_endpoint=True)
    assert plan.pipeline == "shapes"
    assert deleted(plan, "endpoint") == []
    assert deleted(plan, "endpoint-config") == ["shapes-1", "shapes-2", "shapes-3", "shapes-4"]
    assert deleted(plan, "model") == ["shapes-1", "shapes-2"]
    assert deleted(plan, "alarm") == ["shapes-5xx", "shapes-latency"]
    assert plan.monthly_usd_stopped == 0
    assert any("does not exist" in n for n in plan.notes)


def test_nothing_left_plans_nothing():
    plan = td.plan_teardown(td.Inventory("shapes", None), keep_models=2, delete_endpoint=True)
    assert plan.deletions == ()
    assert "nothing to delete" in plan.format()


def test_an_endpoint_already_deleting_is_not_deleted_again():
    plan = td.plan_teardown(inventory(endpoint=endpoint(status="Deleting")), keep_models=2, delete_endpoint=True)
    assert deleted(plan, "endpoint") == []
    assert any("already Deleting" in n for n in plan.notes)


def test_endpoint_without_pipeline_tag_only_considers_what_it_uses():
    ep = endpoint(tags={PACKAGE_TAG: PACKAGE_TAG_VALUE})
    plan = td.plan_teardown(inventory(endpoint=ep), keep_models=0, delete_endpoint=True)
    assert deleted(plan, "endpoint-config") == ["shapes-4"]
    assert deleted(plan, "model") == ["shapes-4"]
    assert plan.pipeline is None


# -- cost ------------------------------------------------------------------------------------------
def test_serverless_and_scaled_to_zero_variants_cost_nothing_standing():
    variants = (td.VariantState("AllTraffic", "shapes-4", serverless=True),
                td.VariantState("Async", "shapes-4", "ml.g4dn.xlarge", 0))
    plan = td.plan_teardown(inventory(endpoint=endpoint(variants=variants)), keep_models=2, delete_endpoint=True)
    assert plan.monthly_usd_stopped == 0
    assert plan.cost_detail == (
        "variant AllTraffic: serverless, $0.00 standing cost (billed per request only)",
        "variant Async: 0 instances running, $0.00 standing cost",
    )


def test_ab_endpoint_cost_sums_both_variants():
    variants = (td.VariantState("Champion", "shapes-3", "ml.m5.large", 1),
                td.VariantState("Challenger", "shapes-4", "ml.m5.large", 3))
    plan = td.plan_teardown(inventory(endpoint=endpoint(variants=variants)), keep_models=2, delete_endpoint=True)
    assert plan.monthly_usd_stopped == 4 * M5_LARGE_MONTH


def test_unpriced_and_unknown_instance_types_are_named_not_guessed():
    variants = (td.VariantState("A", "shapes-4", "ml.x9.huge", 1), td.VariantState("B", "shapes-4", None, 2),
                td.VariantState("C", "shapes-4", "ml.m5.large", 1))
    plan = td.plan_teardown(inventory(endpoint=endpoint(variants=variants)), keep_models=2, delete_endpoint=True)
    assert plan.monthly_usd_stopped == M5_LARGE_MONTH
    assert "not priced" in plan.cost_detail[0] and "ml.x9.huge" in plan.cost_detail[0]
    assert "unknown type" in plan.cost_detail[1]


def test_a_region_missing_from_the_price_table_uses_us_east_1_and_says_so():
    plan = td.plan_teardown(inventory(), keep_models=2, delete_endpoint=True, region="eu-west-1")
    assert plan.monthly_usd_stopped == 2 * M5_LARGE_MONTH
    assert "us-east-1 prices; eu-west-1 is not in the price table" in plan.cost_detail[0]


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"keep_models": -1}, "keep_models"),
        ({"keep_models": True}, "keep_models"),
        ({"keep_models": "2"}, "keep_models"),
        ({"keep_models": 2.0}, "keep_models"),
        ({"delete_endpoint": "yes"}, "delete_endpoint"),
    ],
)
def test_bad_plan_arguments_name_the_field(kwargs, field):
    args = {"keep_models": 2, "delete_endpoint": True, **kwargs}
    with pytest.raises(ConfigError) as err:
        td.plan_teardown(inventory(), **args)
    assert err.value.field == field


def test_bad_endpoint_name_is_refused():
    with pytest.raises(ConfigError, match="endpoint_name"):
        td.plan_teardown(td.Inventory("shapes_1", None), keep_models=2, delete_endpoint=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"endpoint_name": ""}, "endpoint_name"),
        ({"endpoint_name": "a b"}, "endpoint_name"),
        ({"endpoint_name": "shapes", "keep_models": -2}, "keep_models"),
        ({"endpoint_name": "shapes", "keep_models": "x"}, "keep_models"),
        ({"endpoint_name": "shapes", "delete_endpoint": "true"}, "delete_endpoint"),
        ({"endpoint_name": "shapes", "dry_run": 1}, "dry_run"),
    ],
)
def test_params_are_checked_naming_the_param(params, field):
    with pytest.raises(ConfigError) as err:
        td.TeardownParams.from_params(params)
    assert err.value.field == field


def test_params_defaults():
    assert td.TeardownParams.from_params({"endpoint_name": " shapes "}) == td.TeardownParams("shapes", 2, True, False)


# -- serialisation and approval ---------------------------------------------------------------------
def test_plan_dict_is_json_and_lists_deletions_in_order():
    data = td.plan_teardown(inventory(), keep_models=2, delete_endpoint=True).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["monthly_usd_stopped"] == "165.60"
    assert data["delete"][-1] == {"kind": "endpoint", "name": "shapes", "reason": "InService; delete_endpoint is true",
                                  "delete": True}


def test_only_approved_and_still_planned_deletions_run():
    approved = td.plan_teardown(inventory(), keep_models=2, delete_endpoint=True).to_dict()
    # Meanwhile a staging endpoint started using shapes-1, a new model shapes-5 appeared, and an
    # earlier try already deleted the 5xx alarm.
    fresh = td.plan_teardown(
        inventory(other_endpoints=(td.EndpointUse("shapes-staging", "shapes-1", ("shapes-1",)),),
                  models=tuple(model(n) for n in range(1, 6)), alarms=("shapes-latency",)),
        keep_models=2, delete_endpoint=True)
    now, protected, gone = td.approved_subset(fresh, approved)
    names = {(a.kind, a.name) for a in now}
    assert ("model", "shapes-1") not in names and ("endpoint-config", "shapes-1") not in names
    assert ("model", "shapes-3") not in names  # fresh plan deletes it (no longer newest 2) but it was not approved
    assert ("model", "shapes-2") in names and ("endpoint", "shapes") in names
    assert {(a.kind, a.name): a.reason for a in protected} == {
        ("endpoint-config", "shapes-1"): "no longer deleted: in use by endpoint shapes-staging",
        ("model", "shapes-1"): "no longer deleted: in use by endpoint shapes-staging",
    }
    assert [(a.kind, a.name) for a in gone] == [("alarm", "shapes-5xx")]
