"""Unit tests for sagemaker_vision.core.algorithms: image URIs, hyperparameters, instances, metrics."""

from __future__ import annotations

import dataclasses
import re

import pytest

from sagemaker_vision.core import algorithms as alg
from sagemaker_vision.core.algorithms import ObjectDetectionHyperparameters as HP

# --------------------------------------------------------------------------- image URIs


@pytest.mark.parametrize(
    ("region", "uri"),
    [
        ("us-east-1", "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1"),
        ("us-west-2", "433757028032.dkr.ecr.us-west-2.amazonaws.com/object-detection:1"),
        ("eu-west-1", "685385470294.dkr.ecr.eu-west-1.amazonaws.com/object-detection:1"),
    ],
)
def test_known_accounts(region: str, uri: str) -> None:
    assert alg.object_detection_image_uri(region) == uri


@pytest.mark.parametrize(
    ("region", "uri"),
    [
        ("cn-north-1", "390948362332.dkr.ecr.cn-north-1.amazonaws.com.cn/object-detection:1"),
        ("cn-northwest-1", "387376663083.dkr.ecr.cn-northwest-1.amazonaws.com.cn/object-detection:1"),
        ("us-iso-east-1", "490574956308.dkr.ecr.us-iso-east-1.c2s.ic.gov/object-detection:1"),
        ("us-gov-west-1", "226302683700.dkr.ecr.us-gov-west-1.amazonaws.com/object-detection:1"),
    ],
)
def test_partition_dns_suffix(region: str, uri: str) -> None:
    assert alg.object_detection_image_uri(region) == uri


def test_every_region_has_a_12_digit_account_and_a_well_formed_uri() -> None:
    assert alg.SUPPORTED_REGIONS == frozenset(alg.OBJECT_DETECTION_ECR_ACCOUNTS)
    assert len(alg.SUPPORTED_REGIONS) >= 20
    for region, account in alg.OBJECT_DETECTION_ECR_ACCOUNTS.items():
        assert re.fullmatch(r"\d{12}", account), region
        uri = alg.object_detection_image_uri(region)
        assert re.fullmatch(rf"{account}\.dkr\.ecr\.{region}\.[a-z0-9.]+/object-detection:1", uri)


@pytest.mark.parametrize("region", ["xx-nowhere-1", "US-EAST-1", " us-east-1", "", None, 1])
def test_unknown_region_names_the_field_and_lists_supported(region: object) -> None:
    with pytest.raises(ValueError, match=r"^region: ") as info:
        alg.object_detection_image_uri(region)  # type: ignore[arg-type]
    message = str(info.value)
    assert "us-east-1" in message and "eu-west-1" in message and "cn-north-1" in message


# --------------------------------------------------------------------------- hyperparameters


def test_required_only_serialises_only_required() -> None:
    assert HP(num_classes=3, num_training_samples=12).to_sagemaker() == {
        "num_classes": "3",
        "num_training_samples": "12",
    }


def test_to_sagemaker_converts_every_value_to_a_string() -> None:
    hp = HP(
        num_classes=3,
        num_training_samples=1000,
        base_network="resnet-50",
        use_pretrained_model=1,
        epochs=30,
        mini_batch_size=16,
        learning_rate=0.001,
        lr_scheduler_step="10, 20",
        lr_scheduler_factor=0.1,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=0.0005,
        overlap_threshold=0.5,
        nms_threshold=0.45,
        image_shape=512,
        label_width=350,
        freeze_layer_pattern="^(conv1_|conv2_).*",
        kv_store="dist_sync",
        early_stopping=True,
        early_stopping_min_epochs=10,
        early_stopping_patience=5,
        early_stopping_tolerance=0.0,
    )
    assert hp.to_sagemaker() == {
        "num_classes": "3",
        "num_training_samples": "1000",
        "base_network": "resnet-50",
        "use_pretrained_model": "1",
        "epochs": "30",
        "mini_batch_size": "16",
        "learning_rate": "0.001",
        "lr_scheduler_step": "10,20",
        "lr_scheduler_factor": "0.1",
        "optimizer": "sgd",
        "momentum": "0.9",
        "weight_decay": "0.0005",
        "overlap_threshold": "0.5",
        "nms_threshold": "0.45",
        "image_shape": "512",
        "label_width": "350",
        "freeze_layer_pattern": "^(conv1_|conv2_).*",
        "kv_store": "dist_sync",
        "early_stopping": "True",
        "early_stopping_min_epochs": "10",
        "early_stopping_patience": "5",
        "early_stopping_tolerance": "0.0",
    }
    assert all(isinstance(v, str) for v in hp.to_sagemaker().values())


def test_lr_scheduler_step_string_and_tuple_are_the_same_value() -> None:
    a = HP(num_classes=1, num_training_samples=1, lr_scheduler_step="5,8")
    b = HP(num_classes=1, num_training_samples=1, lr_scheduler_step=(5, 8))
    assert a == b and a.lr_scheduler_step == (5, 8)


def test_false_early_stopping_is_sent() -> None:
    hp = HP(num_classes=1, num_training_samples=1, early_stopping=False)
    assert hp.to_sagemaker()["early_stopping"] == "False"


def test_documented_defaults_are_valid_values() -> None:
    defaults = dict(alg.DOCUMENTED_DEFAULTS)
    defaults["early_stopping"] = True  # the knobs are only accepted with early stopping on
    hp = HP(num_classes=2, num_training_samples=10, **defaults)
    assert hp.to_sagemaker()["epochs"] == "30"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_classes", 0),
        ("num_classes", True),
        ("num_classes", 2.0),
        ("num_training_samples", -1),
        ("base_network", "resnet-18"),
        ("use_pretrained_model", 2),
        ("use_pretrained_model", 1.0),
        ("epochs", 0),
        ("mini_batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", 1.5),
        ("learning_rate", float("nan")),
        ("learning_rate", "0.01"),
        ("lr_scheduler_factor", 1.0),
        ("lr_scheduler_factor", 0),
        ("optimizer", "SGD"),
        ("optimizer", ["sgd"]),
        ("momentum", 0.0),
        ("momentum", 1.01),
        ("weight_decay", 1.0),
        ("overlap_threshold", 0.0),
        ("nms_threshold", 1.2),
        ("image_shape", 299),
        ("label_width", 6),
        ("kv_store", "local"),
        ("freeze_layer_pattern", "(unclosed"),
        ("freeze_layer_pattern", ""),
        ("early_stopping", "true"),
        ("lr_scheduler_step", "10,x"),
        ("lr_scheduler_step", ""),
        ("lr_scheduler_step", (20, 10)),
        ("lr_scheduler_step", (0, 10)),
        ("lr_scheduler_step", ()),
        ("lr_scheduler_step", "30"),  # not below the default 30 epochs: would never fire
    ],
)
def test_invalid_hyperparameter_names_the_field(field: str, value: object) -> None:
    kwargs: dict[str, object] = {"num_classes": 3, "num_training_samples": 100, field: value}
    with pytest.raises(ValueError, match=rf"^{field}: "):
        HP(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("early_stopping_min_epochs", 0),
        ("early_stopping_patience", 0),
        ("early_stopping_tolerance", 1.1),
        ("early_stopping_tolerance", -0.1),
    ],
)
def test_invalid_early_stopping_knob_names_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        HP(num_classes=3, num_training_samples=100, early_stopping=True, **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("early_stopping", [None, False])
def test_early_stopping_knob_without_early_stopping_is_rejected(early_stopping: bool | None) -> None:
    with pytest.raises(ValueError, match=r"^early_stopping_patience: only takes effect with early_stopping"):
        HP(num_classes=3, num_training_samples=100, early_stopping=early_stopping, early_stopping_patience=3)


def test_lr_step_is_checked_against_explicit_epochs() -> None:
    HP(num_classes=1, num_training_samples=1, epochs=50, lr_scheduler_step="30,40")
    with pytest.raises(ValueError, match=r"^lr_scheduler_step: epoch 40 is not below epochs=40"):
        HP(num_classes=1, num_training_samples=1, epochs=40, lr_scheduler_step="30,40")


def test_replace_revalidates() -> None:
    hp = HP(num_classes=1, num_training_samples=1)
    with pytest.raises(ValueError, match=r"^epochs: "):
        dataclasses.replace(hp, epochs=0)


def test_validate_is_callable_on_a_valid_instance() -> None:
    HP(num_classes=1, num_training_samples=1, learning_rate=1).validate()


def test_from_mapping_names_unknown_and_missing_keys() -> None:
    hp = HP.from_mapping({"num_classes": 3, "num_training_samples": 9, "epochs": 5})
    assert hp.epochs == 5
    with pytest.raises(ValueError, match=r"^learning_rte: .*did you mean 'learning_rate'"):
        HP.from_mapping({"num_classes": 3, "num_training_samples": 9, "learning_rte": 0.1})
    with pytest.raises(ValueError, match=r"^num_training_samples: required"):
        HP.from_mapping({"num_classes": 3})


def test_min_label_width() -> None:
    assert alg.min_label_width(10) == 52  # the doc's example: 10 objects * 5 + header 2
    with pytest.raises(ValueError, match=r"^max_objects_per_image: "):
        alg.min_label_width(-1)


# --------------------------------------------------------------------------- instances


@pytest.mark.parametrize("instance_type", sorted(alg.TRAINING_INSTANCE_TYPES))
def test_documented_training_instances_pass(instance_type: str) -> None:
    assert alg.check_training_instance_type(instance_type) == instance_type


@pytest.mark.parametrize("instance_type", ["ml.m5.xlarge", "ml.c5.2xlarge", "ml.g4dn.xlarge"])
def test_cpu_and_undocumented_instances_are_rejected_by_default(instance_type: str) -> None:
    with pytest.raises(ValueError, match=r"^instance_type: object-detection trains only on GPU"):
        alg.check_training_instance_type(instance_type)


def test_undocumented_gpu_family_needs_opt_in_and_cpu_never_passes() -> None:
    assert alg.check_training_instance_type("ml.g4dn.xlarge", allow_undocumented_gpu=True) == "ml.g4dn.xlarge"
    assert alg.check_training_instance_type("ml.g5.2xlarge", allow_undocumented_gpu=True) == "ml.g5.2xlarge"
    with pytest.raises(ValueError, match=r"^instance_type: "):
        alg.check_training_instance_type("ml.m5.xlarge", allow_undocumented_gpu=True)


@pytest.mark.parametrize("instance_type", ["p3.2xlarge", "ml.p3", "ML.P3.2XLARGE", "", None])
def test_malformed_instance_type(instance_type: object) -> None:
    with pytest.raises(ValueError, match=r"^instance_type: .* is not a SageMaker instance type"):
        alg.check_training_instance_type(instance_type)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- metrics


def test_objective_metric_is_validation_map_maximize() -> None:
    assert alg.OBJECTIVE_METRIC.name == "validation:mAP"
    assert alg.OBJECTIVE_METRIC.direction == "Maximize"
    assert alg.OBJECTIVE_METRIC in alg.OBJECT_DETECTION_METRICS
    assert len({m.name for m in alg.OBJECT_DETECTION_METRICS}) == len(alg.OBJECT_DETECTION_METRICS)


def test_metric_regexes_extract_values_from_algorithm_log_lines() -> None:
    lines = {
        "validation:mAP": "#quality_metric: host=algo-1, epoch=4, validation mAP <score>=(0.4213)",
        "train:smooth_l1": "#quality_metric: host=algo-1, epoch=4, batch=12 train smooth_l1 <loss>=0.91",
        "train:cross_entropy":
            "#quality_metric: host=algo-1, epoch=4, batch=1 train cross_entropy <loss>=1.5",
        "train:throughput": "#throughput_metric: host=algo-1, train throughput=37.5 records/second",
        "train:progress": "#progress_metric: host=algo-1, completed 40 %",
    }
    expected = {"validation:mAP": "0.4213", "train:throughput": "37.5", "train:progress": "40"}
    for metric in alg.OBJECT_DETECTION_METRICS:
        match = re.search(metric.regex, lines[metric.name])
        assert match is not None, metric.name
        if metric.name in expected:
            assert match.group(1) == expected[metric.name]
        # MetricDefinition limits: Name 1..255, Regex 1..500 characters.
        definition = metric.to_sagemaker()
        assert set(definition) == {"Name", "Regex"}
        assert 1 <= len(definition["Name"]) <= 255 and 1 <= len(definition["Regex"]) <= 500
    # A training-loss line must not be read as the objective.
    assert re.search(alg.OBJECTIVE_METRIC.regex, lines["train:smooth_l1"]) is None
