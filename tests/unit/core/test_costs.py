"""Unit tests for sagemaker_vision.core.costs and core.prices: every expected figure is worked by hand in a comment."""

from __future__ import annotations

import json
import os
from decimal import Decimal as D
from pathlib import Path

import pytest

from sagemaker_vision.core import costs
from sagemaker_vision.core.costs import (
    DEFAULT_PRICES,
    PRICES_ENV_VAR,
    CostEstimate,
    CostLine,
    PriceTable,
    async_endpoint_cost,
    labeling_cost,
    load_price_table,
    realtime_endpoint_cost,
    realtime_endpoint_monthly_cost,
    serverless_endpoint_cost,
    training_cost,
)


@pytest.fixture(autouse=True)
def _no_price_file_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own $SAGEMAKER_VISION_PRICES must not change what these tests expect.
    monkeypatch.delenv(PRICES_ENV_VAR, raising=False)


def write_json(tmp_path: Path, data: object, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- the table


def test_default_table_holds_only_decimals() -> None:
    def leaves(value: object):
        if isinstance(value, dict):
            for v in value.values():
                yield from leaves(v)
        elif isinstance(value, list):
            for v in value:
                yield from leaves(v)
        else:
            yield value

    found = [v for v in leaves(DEFAULT_PRICES) if v is not None and not isinstance(v, int)]
    assert found and all(isinstance(v, D) for v in found)
    assert not any(isinstance(v, float) for v in leaves(DEFAULT_PRICES))


@pytest.mark.parametrize(
    "table, instance_type",
    [("training_usd_per_instance_hour", t) for t in (
        "ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge", "ml.g4dn.xlarge", "ml.g4dn.2xlarge",
        "ml.g4dn.4xlarge", "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g4dn.16xlarge", "ml.g5.xlarge",
        "ml.g5.2xlarge", "ml.g5.4xlarge", "ml.p2.xlarge", "ml.m5.large", "ml.m5.xlarge")]
    + [("hosting_usd_per_instance_hour", t) for t in (
        "ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.m5.2xlarge", "ml.c5.large", "ml.c5.xlarge",
        "ml.c5.2xlarge", "ml.g4dn.xlarge", "ml.g4dn.2xlarge", "ml.g4dn.4xlarge", "ml.p3.2xlarge",
        "ml.g5.xlarge")],
)
def test_required_instance_types_are_priced(table: str, instance_type: str) -> None:
    rate = load_price_table().instance_rate("us-east-1", table, instance_type)
    assert isinstance(rate, D) and rate > 0


def test_builtin_table_is_read_only() -> None:
    table = load_price_table()
    with pytest.raises(TypeError):
        table.regions["us-east-1"]["hosting_usd_per_instance_hour"]["ml.t2.medium"] = D("0")  # type: ignore[index]


# --------------------------------------------------------------------------- labeling


@pytest.mark.parametrize(
    "num_objects, workers, already, expected",
    [
        # 1,000 x 0.08 fee -> 80.00; no per-task worker price (private or vendor team)
        (1_000, 3, 0, "80.00"),
        # straddles 50,000: 1,000 x 0.08 (49,001..50,000) + 1,000 x 0.04 (50,001..51,000) = 120.00
        (2_000, 3, 49_000, "120.00"),
        # ends exactly on the boundary: 2,000 x 0.08 = 160.00
        (2_000, 1, 48_000, "160.00"),
        # first object past it: 0.04
        (1, 1, 50_000, "0.04"),
        # entirely in tier 2: 100 x 0.04 = 4.00
        (100, 1, 60_000, "4.00"),
        # straddles 1,000,000: 10 x 0.04 + 10 x 0.02 = 0.60
        (20, 1, 999_990, "0.60"),
        # all three tiers in one job: 50,000 x 0.08 + 950,000 x 0.04 + 1 x 0.02 = 42,000.02
        (1_000_001, 1, 0, "42000.02"),
        # nothing to label costs nothing
        (0, 3, 0, "0.00"),
    ],
)
def test_labeling_cost(num_objects: int, workers: int, already: int, expected: str) -> None:
    result = labeling_cost(num_objects, workers, objects_already_this_month=already)
    assert result == D(expected)
    assert isinstance(result, D) and result.as_tuple().exponent == -2


def test_labeling_has_no_per_task_worker_price() -> None:
    """Defect 4: the Mechanical Turk per-task price is gone; workers per object do not change the fee."""
    assert labeling_cost(10, 1) == labeling_cost(10, 9) == D("0.80")
    with pytest.raises(TypeError):
        labeling_cost(10, 1, 0.036)  # type: ignore[misc]  # no price argument any more


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_objects": -1}, "num_objects"),
        ({"num_objects": 1.5}, "num_objects"),
        ({"num_objects": True}, "num_objects"),
        ({"num_objects": "10"}, "num_objects"),
        ({"workers_per_object": 0}, "workers_per_object"),
        ({"workers_per_object": 10}, "workers_per_object"),
        ({"workers_per_object": 3.0}, "workers_per_object"),
        ({"objects_already_this_month": -5}, "objects_already_this_month"),
    ],
)
def test_labeling_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    args = {"num_objects": 10, "workers_per_object": 3, **kwargs}
    with pytest.raises(ValueError, match=field):
        labeling_cost(**args)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "instance_type, count, hours, expected",
    [
        ("ml.p3.2xlarge", 2, 1.5, "11.48"),  # 3.825 x 2 x 1.5 = 11.475 -> 11.48 (half up)
        ("ml.g4dn.xlarge", 1, 10, "7.36"),  # 0.7364 x 10 = 7.364
        ("ml.p3.16xlarge", 4, "0.25", "28.15"),  # 28.152 x 4 x 0.25 = 28.152
        ("ml.g5.xlarge", 1, D("0"), "0.00"),
        ("ml.p2.xlarge", 3, 2, "6.75"),  # 1.125 x 3 x 2 = 6.75
    ],
)
def test_training_cost(instance_type: str, count: int, hours: object, expected: str) -> None:
    result = training_cost(instance_type, count, hours)
    assert result == D(expected) and isinstance(result, D)


def test_training_unknown_instance_lists_known_types_and_how_to_override() -> None:
    with pytest.raises(ValueError) as err:
        training_cost("ml.p9.mega", 1, 1)
    message = str(err.value)
    assert "'ml.p9.mega'" in message
    assert "ml.g4dn.xlarge" in message and "ml.p3.2xlarge" in message
    assert "/us-east-1/training_usd_per_instance_hour/ml.p9.mega" in message
    assert PRICES_ENV_VAR in message


def test_hosting_only_type_is_not_a_training_type() -> None:
    with pytest.raises(ValueError, match="no training price for instance type 'ml.t2.medium'"):
        training_cost("ml.t2.medium", 1, 1)


@pytest.mark.parametrize(
    "count, hours, field",
    [(0, 1, "instance_count"), (1.0, 1, "instance_count"), (1, -1, "hours"),
     (1, float("inf"), "hours"), (1, "soon", "hours"), (1, None, "hours")],
)
def test_training_bad_input_names_the_field(count: object, hours: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        training_cost("ml.p3.2xlarge", count, hours)


def test_unknown_region_lists_known_regions() -> None:
    with pytest.raises(ValueError, match=r"region 'eu-west-1' is not in .*known regions: us-east-1"):
        training_cost("ml.p3.2xlarge", 1, 1, region="eu-west-1")


# --------------------------------------------------------------------------- serverless


@pytest.mark.parametrize(
    "memory_mb, seconds, gb_in, gb_out, expected",
    [
        # 2 GB x 3,600 s x 0.00002 = 0.144; data 1.5 GB x 0.016 = 0.024; 0.168 -> 0.17.
        # (Rounding each part first would give 0.14 + 0.02 = 0.16: one rounding, at the end.)
        (2048, 3600, 1, "0.5", "0.17"),
        (2048, 3600, 0, 0, "0.14"),  # 0.144
        (1024, 250, 0, 0, "0.01"),  # 0.005 exactly: HALF_UP gives 0.01, banker's would give 0.00
        (6144, 1_000_000, 0, 0, "120.00"),  # 6 x 1,000,000 x 0.00002
        (4096, 0, 100, 50, "2.40"),  # 150 GB x 0.016
    ],
)
def test_serverless_endpoint_cost(
    memory_mb: int, seconds: object, gb_in: object, gb_out: object, expected: str
) -> None:
    result = serverless_endpoint_cost(memory_mb, seconds, gb_in, gb_out)
    assert result == D(expected) and isinstance(result, D)


@pytest.mark.parametrize(
    "args, field",
    [
        ((1000, 1, 0, 0), "memory_mb"),
        ((7168, 1, 0, 0), "memory_mb"),
        ((0, 1, 0, 0), "memory_mb"),
        ((2048.0, 1, 0, 0), "memory_mb"),
        ((2048, -1, 0, 0), "seconds_of_inference"),
        ((2048, 1, -0.1, 0), "gb_in"),
        ((2048, 1, 0, "lots"), "gb_out"),
    ],
)
def test_serverless_bad_input_names_the_field(args: tuple, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        serverless_endpoint_cost(*args)


# --------------------------------------------------------------------------- real-time / async


def test_realtime_monthly_g4dn_4xlarge_30_days() -> None:
    # 1.505 x 24 x 30 = 1,083.60 instance-hours cost
    assert realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, 30, 0, 0) == D("1083.60")
    # plus (2 + 1) GB/day x 30 days = 90 GB x 0.016 = 1.44 -> 1,085.04
    assert realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, 30, 2, 1) == D("1085.04")
    # two instances: 2,167.20
    assert realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 2, 30) == D("2167.20")


def test_realtime_partial_period_matches_monthly() -> None:
    assert realtime_endpoint_cost("ml.g4dn.4xlarge", 1, 720) == D("1083.60")
    # 0.115 x 2 x 1.5 = 0.345 exactly -> 0.35 with HALF_UP (banker's would give 0.34)
    assert realtime_endpoint_cost("ml.m5.large", 2, 1.5) == D("0.35")
    # ml.t2.medium 0.056 x 10 h + 1 GB in x 0.016 = 0.576 -> 0.58
    assert realtime_endpoint_cost("ml.t2.medium", 1, 10, gb_in=1) == D("0.58")


def test_async_uses_realtime_instance_prices() -> None:
    # 0.7364 x 10 + 1 GB x 0.016 = 7.380
    assert async_endpoint_cost("ml.g4dn.xlarge", 1, 10, gb_in=1) == D("7.38")
    assert async_endpoint_cost("ml.c5.xlarge", 3, 5) == realtime_endpoint_cost("ml.c5.xlarge", 3, 5)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 0, 30), "instance_count"),
        (lambda: realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, -1), "days"),
        (lambda: realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, 30, -2, 0), "gb_in_per_day"),
        (lambda: realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, 30, 0, "x"), "gb_out_per_day"),
        (lambda: realtime_endpoint_cost("ml.m5.large", 1, -0.5), "hours"),
        (lambda: realtime_endpoint_cost("ml.m5.large", 1, 1, gb_out=-1), "gb_out"),
        (lambda: async_endpoint_cost("ml.m5.large", True, 1), "instance_count"),
        (lambda: realtime_endpoint_cost("ml.p3.16xlarge", 1, 1), "no hosting price for instance type"),
        (lambda: realtime_endpoint_cost("ml.m5.large", 1, 1, prices={}), "prices must be a PriceTable"),
    ],
)
def test_endpoint_bad_input_is_named(call, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: labeling_cost(7, 3),
        lambda: training_cost("ml.g4dn.xlarge", 1, 1),
        lambda: serverless_endpoint_cost(3072, 12.5, 0.001, 0.002),
        lambda: realtime_endpoint_cost("ml.g5.xlarge", 1, 0.1),
        lambda: realtime_endpoint_monthly_cost("ml.c5.large", 1, 1),
        lambda: async_endpoint_cost("ml.m5.xlarge", 1, 1),
    ],
)
def test_every_estimator_returns_decimal_cents(call) -> None:
    result = call()
    assert type(result) is D
    assert result.as_tuple().exponent == -2


# --------------------------------------------------------------------------- JSON override


def test_override_deep_merges_over_defaults(tmp_path: Path) -> None:
    path = write_json(tmp_path, {
        "us-east-1": {
            "hosting_usd_per_instance_hour": {"ml.g4dn.4xlarge": "1.2", "ml.inf2.xlarge": 0.99},
            "data_processed_usd_per_gb": {"in": 0.02},
        }
    })
    table = load_price_table(path)
    assert str(path) in table.source
    # overridden: 1.2 x 720 = 864.00
    assert realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, 30, prices=table) == D("864.00")
    # added: 0.99 x 1
    assert realtime_endpoint_cost("ml.inf2.xlarge", 1, 1, prices=table) == D("0.99")
    # untouched siblings keep the defaults: 0.115 x 1 -> 0.12
    assert realtime_endpoint_cost("ml.m5.large", 1, 1, prices=table) == D("0.12")
    # "in" replaced, "out" kept: 10 x 0.02 + 10 x 0.016 = 0.36
    assert realtime_endpoint_cost("ml.m5.large", 1, 0, gb_in=10, gb_out=10, prices=table) == D("0.36")
    # the training table was not touched
    assert training_cost("ml.g4dn.4xlarge", 1, 1, prices=table) == D("1.51")  # 1.505 -> 1.51
    # the built-in table is unchanged by the override
    assert realtime_endpoint_cost("ml.g4dn.4xlarge", 1, 1) == D("1.51")


def test_override_numbers_are_read_as_decimal_not_float(tmp_path: Path) -> None:
    path = write_json(tmp_path, '{"us-east-1": {"hosting_usd_per_instance_hour": {"ml.m5.large": 0.1}}}')
    table = load_price_table(path)
    assert table.instance_rate("us-east-1", "hosting_usd_per_instance_hour", "ml.m5.large") == D("0.1")
    assert realtime_endpoint_cost("ml.m5.large", 1, 3, prices=table) == D("0.30")


def test_override_replaces_ground_truth_tiers_wholesale(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"us-east-1": {"ground_truth_usd_per_object_tiers": [
        {"up_to_objects": 100, "usd": 0.5}, {"up_to_objects": None, "usd": "0.1"}]}})
    table = load_price_table(path)
    # 100 x 0.5 + 50 x 0.1 = 55.00
    assert labeling_cost(150, 1, prices=table) == D("55.00")


def test_override_can_add_a_region(tmp_path: Path) -> None:
    path = write_json(tmp_path, {"eu-west-1": {"hosting_usd_per_instance_hour": {"ml.g4dn.xlarge": "0.822"}}})
    table = load_price_table(path)
    assert realtime_endpoint_cost("ml.g4dn.xlarge", 1, 10, region="eu-west-1", prices=table) == D("8.22")
    # a price the new region lacks is an error naming where to put it, not a silent zero
    with pytest.raises(ValueError, match="/eu-west-1/data_processed_usd_per_gb/in"):
        realtime_endpoint_cost("ml.g4dn.xlarge", 1, 10, gb_in=1, region="eu-west-1", prices=table)
    with pytest.raises(ValueError, match="/eu-west-1/serverless_usd_per_gb_second"):
        serverless_endpoint_cost(1024, 1, region="eu-west-1", prices=table)
    with pytest.raises(ValueError, match="no training price .* in eu-west-1 .*known: none"):
        training_cost("ml.g4dn.xlarge", 1, 1, region="eu-west-1", prices=table)


def test_a_region_the_table_lacks_is_priced_at_us_east_1_and_says_so(tmp_path: Path) -> None:
    """One rule for the run's estimate, right-size's estimate and the load-test report's cost lines."""
    from sagemaker_vision.core.prices import priced_region

    table = load_price_table(write_json(tmp_path, {"eu-west-1": {"hosting_usd_per_instance_hour": {}}}))
    assert priced_region("eu-west-1", table) == ("eu-west-1", "")
    assert priced_region("ap-south-1", table) == ("us-east-1", " (us-east-1 prices: add ap-south-1 to the price table)")
    assert priced_region(None, table) == priced_region("", table) == ("us-east-1", "")


def test_env_var_names_the_price_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_json(tmp_path, {"us-east-1": {"training_usd_per_instance_hour": {"ml.p3.2xlarge": "3"}}})
    monkeypatch.setenv(PRICES_ENV_VAR, str(path))
    assert training_cost("ml.p3.2xlarge", 1, 2) == D("6.00")
    assert str(path) in load_price_table().source
    # an edited file is picked up without a restart
    path.write_text(json.dumps({"us-east-1": {"training_usd_per_instance_hour": {"ml.p3.2xlarge": "4.5"}}}))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert training_cost("ml.p3.2xlarge", 1, 2) == D("9.00")
    # an explicit table or path wins over the environment
    builtin_only = load_price_table(write_json(tmp_path, {}, "empty.json"))
    assert training_cost("ml.p3.2xlarge", 1, 2, prices=builtin_only) == D("7.65")  # 3.825 x 2


def test_env_var_pointing_nowhere_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.json"
    monkeypatch.setenv(PRICES_ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match=f"{PRICES_ENV_VAR}"):
        training_cost("ml.p3.2xlarge", 1, 1)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_price_table()


def test_exported_table_loads_back_unchanged(tmp_path: Path) -> None:
    builtin = load_price_table()
    path = write_json(tmp_path, builtin.to_json_dict())
    assert load_price_table(path).to_json_dict() == builtin.to_json_dict()
    assert builtin.to_json_dict()["us-east-1"]["hosting_usd_per_instance_hour"]["ml.g4dn.4xlarge"] == "1.505"


@pytest.mark.parametrize(
    "content, json_path, problem",
    [
        ({"us-east-1": {"hosting_usd_per_hour": {}}}, "/us-east-1/hosting_usd_per_hour", "unknown key"),
        ({"us-east-1": {"hosting_usd_per_instance_hour": {"g4dn.xlarge": 1}}},
         "/us-east-1/hosting_usd_per_instance_hour/g4dn.xlarge", "unknown key"),
        ({"Mars": {}}, "/Mars", "unknown key"),
        ({"us-east-1": {"serverless_usd_per_gb_second": "cheap"}},
         "/us-east-1/serverless_usd_per_gb_second", "must be a number"),
        ({"us-east-1": {"serverless_usd_per_gb_second": True}},
         "/us-east-1/serverless_usd_per_gb_second", "must be a number"),
        ({"us-east-1": {"serverless_usd_per_gb_second": None}},
         "/us-east-1/serverless_usd_per_gb_second", "must be a number"),
        ({"us-east-1": {"training_usd_per_instance_hour": {"ml.p3.2xlarge": "-1"}}},
         "/us-east-1/training_usd_per_instance_hour/ml.p3.2xlarge", "must not be negative"),
        ({"us-east-1": {"training_usd_per_instance_hour": {"ml.p3.2xlarge": "Infinity"}}},
         "/us-east-1/training_usd_per_instance_hour/ml.p3.2xlarge", "finite"),
        ({"us-east-1": {"training_usd_per_instance_hour": []}},
         "/us-east-1/training_usd_per_instance_hour", "expected a JSON object"),
        ({"us-east-1": {"data_processed_usd_per_gb": {"both": 0.01}}},
         "/us-east-1/data_processed_usd_per_gb/both", "unknown key"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": [
            {"up_to_objects": 100, "usd": 1}, {"up_to_objects": 50, "usd": 1},
            {"up_to_objects": None, "usd": 1}]}},
         "/us-east-1/ground_truth_usd_per_object_tiers/1/up_to_objects", "integer above 100"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": [{"up_to_objects": 100, "usd": 1}]}},
         "/us-east-1/ground_truth_usd_per_object_tiers/0/up_to_objects", "open-ended"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": [
            {"up_to_objects": None, "usd": 1}, {"up_to_objects": None, "usd": 1}]}},
         "/us-east-1/ground_truth_usd_per_object_tiers/0/up_to_objects", "only the last"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": [{"up_to_objects": None}]}},
         "/us-east-1/ground_truth_usd_per_object_tiers/0/usd", "missing"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": [{"up_to_objects": None, "usd": 1, "x": 2}]}},
         "/us-east-1/ground_truth_usd_per_object_tiers/0/x", "unknown key"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": [
            {"up_to_objects": 10.5, "usd": 1}, {"up_to_objects": None, "usd": 1}]}},
         "/us-east-1/ground_truth_usd_per_object_tiers/0/up_to_objects", "integer"),
        ({"us-east-1": {"ground_truth_usd_per_object_tiers": []}},
         "/us-east-1/ground_truth_usd_per_object_tiers", "non-empty list"),
        ({"us-east-1": 3}, "/us-east-1", "expected a JSON object"),
        ([], "/", "expected a JSON object"),
    ],
)
def test_bad_price_file_names_file_and_json_path(
    tmp_path: Path, content: object, json_path: str, problem: str
) -> None:
    path = write_json(tmp_path, content)
    with pytest.raises(ValueError) as err:
        load_price_table(path)
    message = str(err.value)
    assert str(path) in message
    assert f"{json_path}:" in message
    assert problem in message


@pytest.mark.parametrize(
    "text, problem",
    [
        ('{"us-east-1": {\n  "serverless_usd_per_gb_second": }}', "invalid JSON at line 2"),
        ('{"us-east-1": {"serverless_usd_per_gb_second": NaN}}', "NaN is not a price"),
        ('{"us-east-1": {}, "us-east-1": {}}', "'us-east-1' appears twice"),
    ],
)
def test_malformed_price_file_names_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = write_json(tmp_path, text)
    with pytest.raises(ValueError, match=problem) as err:
        load_price_table(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- CostLine / CostEstimate


@pytest.fixture
def estimate() -> CostEstimate:
    return CostEstimate((
        CostLine("labeling", labeling_cost(2_000, 3, objects_already_this_month=49_000),
                 "2,000 objects x 3 workers"),
        CostLine("training", training_cost("ml.p3.2xlarge", 2, 1.5), "ml.p3.2xlarge x2, 1.5 h"),
        CostLine("endpoint", realtime_endpoint_monthly_cost("ml.g4dn.4xlarge", 1, 30, 2, 1),
                 "ml.g4dn.4xlarge x1, 30 days"),
    ))


def test_estimate_total_and_dict(estimate: CostEstimate) -> None:
    # 120.00 + 11.48 + 1,085.04 = 1,216.52
    assert estimate.total == D("1216.52") and isinstance(estimate.total, D)
    assert estimate.to_dict() == {
        "currency": "USD",
        "lines": [
            {"step": "labeling", "usd": "120.00", "detail": "2,000 objects x 3 workers"},
            {"step": "training", "usd": "11.48", "detail": "ml.p3.2xlarge x2, 1.5 h"},
            {"step": "endpoint", "usd": "1085.04", "detail": "ml.g4dn.4xlarge x1, 30 days"},
        ],
        "total_usd": "1216.52",
    }
    # XCom stores JSON: it must survive a round trip exactly
    assert CostEstimate.from_dict(json.loads(json.dumps(estimate.to_dict()))) == estimate


def test_estimate_format_table(estimate: CostEstimate) -> None:
    assert estimate.format_table() == "\n".join([
        "STEP           USD  DETAIL",
        "--------  --------",
        "labeling    120.00  2,000 objects x 3 workers",
        "training     11.48  ml.p3.2xlarge x2, 1.5 h",
        "endpoint  1,085.04  ml.g4dn.4xlarge x1, 30 days",
        "--------  --------",
        "TOTAL     1,216.52",
    ])


def test_empty_estimate() -> None:
    empty = CostEstimate()
    assert empty.total == D("0.00")
    assert empty.format_table() == "STEP    USD  DETAIL\n-----  ----\n-----  ----\nTOTAL  0.00"
    assert not empty.exceeds(0)
    assert empty.with_lines(CostLine("x", D("0.01"))).exceeds(0)


@pytest.mark.parametrize(
    "budget, exceeded",
    [(D("1216.52"), False), ("1216.51", True), (2000, False), (1216.5, True), (0, True)],
)
def test_estimate_exceeds(estimate: CostEstimate, budget: object, exceeded: bool) -> None:
    assert estimate.exceeds(budget) is exceeded


@pytest.mark.parametrize("budget", [-1, "abc", None, float("nan")])
def test_estimate_exceeds_rejects_bad_budget(estimate: CostEstimate, budget: object) -> None:
    with pytest.raises(ValueError, match="budget_usd"):
        estimate.exceeds(budget)


def test_cost_line_validation_and_rounding() -> None:
    assert CostLine("x", D("1.005")).usd == D("1.01")  # half up, to the cent
    assert CostLine("x", 3).usd == D("3.00")
    with pytest.raises(ValueError, match="must be a Decimal, not float"):
        CostLine("x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="step must be a non-empty string"):
        CostLine(" ", D("1"))
    with pytest.raises(ValueError, match="must not be negative"):
        CostLine("x", D("-1"))
    with pytest.raises(ValueError, match=r"lines\[0\] must be a CostLine"):
        CostEstimate(({"step": "x", "usd": "1"},))  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        CostLine("x", D("1")).usd = D("2")  # type: ignore[misc]


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"lines": "nope"}, "'lines' list"),
        ({"currency": "EUR", "lines": []}, "currency must be USD"),
        ({"lines": [{"step": "x"}]}, r"lines\[0\] must have"),
        ({"lines": [{"step": "x", "usd": "ten"}]}, r"lines\[0\]\.usd must be a number"),
    ],
)
def test_estimate_from_dict_rejects_bad_data(data: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        CostEstimate.from_dict(data)


def test_price_table_type_is_exported() -> None:
    assert isinstance(load_price_table(), PriceTable)
    assert set(costs.__all__) >= {"labeling_cost", "training_cost", "CostEstimate", "load_price_table"}


# --------------------------------------------------------------------------- a run's estimate


def _run_config(**overrides: object):
    from datetime import UTC, datetime

    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults

    params = {**param_defaults(), "role_arn": "arn:aws:iam::123456789012:role/sagemaker-vision-execution",
              **overrides}
    run = RunInfo(run_id="manual__cost", run_after=datetime(2026, 11, 25, tzinfo=UTC))
    return PipelineConfig.from_params(params, run=run, region="us-east-1")


def test_a_serverless_run_prices_training_at_its_cap_and_the_test_traffic() -> None:
    estimate = costs.estimate_pipeline(_run_config())
    # train: 3.825 x 1 x 2 h = 7.65. Serverless: 201 requests x 2 s x 4 GB x 0.00002 = 0.03216, plus
    # (0.2 + 0.002) MB x 201 / 1024 x 0.016 = 0.00063 of data: 0.03.
    assert [(ln.step, ln.usd) for ln in estimate.lines] == [
        ("label (import)", D("0.00")), ("train", D("7.65")), ("deploy + smoke + load test", D("0.03"))]


def test_a_provisioned_run_prices_its_first_hour_and_names_the_monthly_cost() -> None:
    [*_, line] = costs.estimate_pipeline(_run_config(endpoint_type="provisioned")).lines
    # 0.7364 x 1 h + 0.00063 of data = 0.74; 30 days: 0.7364 x 720 = 530.21.
    assert (line.step, line.usd) == ("deploy + smoke + load test", D("0.74"))
    assert "$530.21 per 30 days while it stays up" in line.detail


def test_an_async_run_is_priced_as_async_without_the_load_test_it_never_runs() -> None:
    """Issue 10: async endpoints were priced as real-time, under a load-test line they never run."""
    estimate = costs.estimate_pipeline(_run_config(endpoint_type="async"))
    [*_, line] = estimate.lines
    assert not any("load test" in ln.step for ln in estimate.lines)
    # One smoke request: 0.7364 x 1 h + (0.2 + 0.002) MB / 1024 x 0.016 = 0.74.
    assert (line.step, line.usd) == ("deploy + async smoke test", D("0.74"))
    assert line.usd == async_endpoint_cost("ml.g4dn.xlarge", 1, 1, gb_in=D("0.2") / 1024, gb_out=D("0.002") / 1024)
    assert "(async)" in line.detail and "1 request" in line.detail and "$530.21 per 30 days" in line.detail
    [*_, zero] = costs.estimate_pipeline(_run_config(endpoint_type="async", autoscaling_min_capacity=0,
                                                     autoscaling_max_capacity=2)).lines
    assert "scales to zero when idle" in zero.detail
