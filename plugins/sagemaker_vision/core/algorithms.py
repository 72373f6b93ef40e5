"""The built-in SageMaker Object Detection (MXNet SSD) algorithm: image URIs, hyperparameters,
training instance types and metrics.

Pure: no Airflow and no boto3, so the pipeline validates all of this before any AWS call.

Sources (checked for this module):
- ECR accounts: aws/sagemaker-python-sdk ``src/sagemaker/image_uri_config/object-detection.json``
  (version "1", repository "object-detection"); the same table is in the AWS doc "Docker
  Registry Paths and Example Code".
- Hyperparameters: AWS doc "Object Detection Hyperparameters" (object-detection-api-config).
- Instances: AWS doc "Object Detection - MXNet", section "EC2 Instance Recommendation".
- Metrics: AWS doc "Tune an Object Detection Model" (``validation:mAP``, maximize).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

# --------------------------------------------------------------------------- image URIs

OBJECT_DETECTION_REPOSITORY = "object-detection"
OBJECT_DETECTION_IMAGE_TAG = "1"

# Region -> ECR registry account of ``object-detection:1``. Copied from the SageMaker Python SDK,
# src/sagemaker/image_uri_config/object-detection.json (the table behind
# ``sagemaker.image_uris.retrieve("object-detection", region)``). Regions not in that table do not
# host the image; do not guess an account for them.
OBJECT_DETECTION_ECR_ACCOUNTS: dict[str, str] = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "501404015308",
    "ap-northeast-2": "306986355934",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "544295431143",
    "ca-central-1": "469771592824",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "813361260812",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-west-1": "685385470294",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "811284229777",
    "us-east-2": "825641698319",
    "us-gov-west-1": "226302683700",
    "us-iso-east-1": "490574956308",
    "us-west-1": "632365934929",
    "us-west-2": "433757028032",
}

SUPPORTED_REGIONS: frozenset[str] = frozenset(OBJECT_DETECTION_ECR_ACCOUNTS)

# DNS suffix per partition, by region prefix (as the SDK's ``_domain_for_region`` does).
# GovCloud (us-gov-*) shares the commercial suffix.
_PARTITION_DNS_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-iso-", "c2s.ic.gov"),
)


def ecr_dns_suffix(region: str) -> str:
    """The ECR/Amazon DNS suffix of ``region``'s partition, e.g. ``amazonaws.com.cn`` for cn-*."""
    for prefix, suffix in _PARTITION_DNS_SUFFIXES:
        if region.startswith(prefix):
            return suffix
    return "amazonaws.com"


def object_detection_image_uri(region: str) -> str:
    """The training and inference image of the built-in Object Detection algorithm in ``region``.

    >>> object_detection_image_uri("us-east-1")
    '811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1'
    """
    if not isinstance(region, str) or region not in OBJECT_DETECTION_ECR_ACCOUNTS:
        raise ValueError(
            f"region: {region!r} has no SageMaker object-detection image; "
            f"supported regions: {', '.join(sorted(SUPPORTED_REGIONS))}"
        )
    account = OBJECT_DETECTION_ECR_ACCOUNTS[region]
    return (
        f"{account}.dkr.ecr.{region}.{ecr_dns_suffix(region)}/"
        f"{OBJECT_DETECTION_REPOSITORY}:{OBJECT_DETECTION_IMAGE_TAG}"
    )


# --------------------------------------------------------------------------- hyperparameters

BASE_NETWORKS = frozenset({"vgg-16", "resnet-50"})
OPTIMIZERS = frozenset({"sgd", "adam", "rmsprop", "adadelta"})
KV_STORES = frozenset({"dist_sync", "dist_async"})
MIN_IMAGE_SHAPE = 300

# The algorithm's documented defaults, applied by SageMaker to any hyperparameter we omit.
# Kept for estimators (epochs drives training time) and cross-field checks.
DOCUMENTED_DEFAULTS: Mapping[str, Any] = {
    "base_network": "vgg-16",
    "use_pretrained_model": 1,
    "epochs": 30,
    "mini_batch_size": 32,
    "learning_rate": 0.001,
    "lr_scheduler_factor": 0.1,
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "overlap_threshold": 0.5,
    "nms_threshold": 0.45,
    "image_shape": 300,
    "label_width": 350,
    "early_stopping": False,
    "early_stopping_min_epochs": 10,
    "early_stopping_patience": 5,
    "early_stopping_tolerance": 0.0,
}

# Each object is annotated with 5 numbers [class_id, left, top, width, height] after a header of
# usually 2 numbers (doc of ``label_width``).
_LABEL_HEADER_WIDTH = 2
_LABEL_OBJECT_WIDTH = 5

_EARLY_STOPPING_KNOBS = ("early_stopping_min_epochs", "early_stopping_patience", "early_stopping_tolerance")


def min_label_width(max_objects_per_image: int) -> int:
    """The smallest ``label_width`` that holds an image with ``max_objects_per_image`` boxes."""
    if isinstance(max_objects_per_image, bool) or not isinstance(max_objects_per_image, int) \
            or max_objects_per_image < 0:
        raise ValueError(f"max_objects_per_image: must be an integer >= 0, got {max_objects_per_image!r}")
    return _LABEL_HEADER_WIDTH + _LABEL_OBJECT_WIDTH * max_objects_per_image


def _int(name: str, value: object, minimum: int = 1) -> None:
    # bool is an int subclass; True as "num_classes" is a caller bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")


def _float(name: str, value: object, low: float, high: float, *, low_open: bool, high_open: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: must be in {interval}, got {value}")


def _choice(name: str, value: object, allowed: frozenset[str] | frozenset[int]) -> None:
    # The type guard keeps 1.0 (would serialise as "1.0") and unhashable values out of the lookup.
    if isinstance(value, bool) or not isinstance(value, str | int) or value not in allowed:
        options = ", ".join(repr(v) for v in sorted(allowed))
        raise ValueError(f"{name}: must be one of {options}, got {value!r}")


def _parse_lr_steps(value: str | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if not all(p.isdigit() for p in parts):
            raise ValueError(
                f"lr_scheduler_step: must be comma-separated epoch numbers like '10,20', got {value!r}"
            )
        return tuple(int(p) for p in parts)
    if isinstance(value, tuple | list) and value and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    raise ValueError(
        f"lr_scheduler_step: must be a non-empty tuple of epochs or a string '10,20', got {value!r}"
    )


def _format(value: object) -> str:
    # SageMaker HyperParameters is Map<String,String>. Booleans use the documented True/False;
    # floats use repr so 0.0005 stays exact rather than being rounded by a format spec.
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class ObjectDetectionHyperparameters:
    """Hyperparameters of the built-in Object Detection algorithm, validated on construction.

    ``None`` means "omit and let the algorithm use its documented default" (see
    ``DOCUMENTED_DEFAULTS``). Ranges follow the AWS doc "Object Detection Hyperparameters".
    """

    num_classes: int
    num_training_samples: int
    base_network: Literal["vgg-16", "resnet-50"] | None = None
    use_pretrained_model: Literal[0, 1] | None = None
    epochs: int | None = None
    mini_batch_size: int | None = None
    learning_rate: float | None = None
    # Epochs after which the rate is multiplied by lr_scheduler_factor; "10,20" or (10, 20).
    lr_scheduler_step: tuple[int, ...] | str | None = None
    lr_scheduler_factor: float | None = None
    optimizer: Literal["sgd", "adam", "rmsprop", "adadelta"] | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    overlap_threshold: float | None = None
    nms_threshold: float | None = None
    image_shape: int | None = None
    label_width: int | None = None
    freeze_layer_pattern: str | None = None
    kv_store: Literal["dist_sync", "dist_async"] | None = None
    early_stopping: bool | None = None
    early_stopping_min_epochs: int | None = None
    early_stopping_patience: int | None = None
    early_stopping_tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.lr_scheduler_step is not None:
            # Normalise once so equality, hashing and to_sagemaker() see one form.
            object.__setattr__(self, "lr_scheduler_step", _parse_lr_steps(self.lr_scheduler_step))
        self.validate()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ObjectDetectionHyperparameters:
        """Build from a plain mapping (DAG params, YAML), naming unknown or missing keys."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ValueError(f"{key}: not a hyperparameter of the object-detection algorithm{suggestion}")
        for required in ("num_classes", "num_training_samples"):
            if values.get(required) is None:
                raise ValueError(f"{required}: required")
        return cls(**values)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first hyperparameter that is out of its documented range."""
        _int("num_classes", self.num_classes)
        _int("num_training_samples", self.num_training_samples)
        if self.base_network is not None:
            _choice("base_network", self.base_network, BASE_NETWORKS)
        if self.use_pretrained_model is not None:
            _choice("use_pretrained_model", self.use_pretrained_model, frozenset({0, 1}))
        if self.epochs is not None:
            _int("epochs", self.epochs)
        if self.mini_batch_size is not None:
            _int("mini_batch_size", self.mini_batch_size)
        if self.learning_rate is not None:
            _float("learning_rate", self.learning_rate, 0, 1, low_open=True, high_open=False)
        if self.lr_scheduler_factor is not None:
            _float("lr_scheduler_factor", self.lr_scheduler_factor, 0, 1, low_open=True, high_open=True)
        if self.optimizer is not None:
            _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.momentum is not None:
            _float("momentum", self.momentum, 0, 1, low_open=True, high_open=False)
        if self.weight_decay is not None:
            _float("weight_decay", self.weight_decay, 0, 1, low_open=True, high_open=True)
        if self.overlap_threshold is not None:
            _float("overlap_threshold", self.overlap_threshold, 0, 1, low_open=True, high_open=False)
        if self.nms_threshold is not None:
            _float("nms_threshold", self.nms_threshold, 0, 1, low_open=True, high_open=False)
        if self.image_shape is not None:
            _int("image_shape", self.image_shape, MIN_IMAGE_SHAPE)
        if self.label_width is not None:
            # Smallest useful width is one object after the header.
            _int("label_width", self.label_width, min_label_width(1))
        if self.kv_store is not None:
            _choice("kv_store", self.kv_store, KV_STORES)
        if self.freeze_layer_pattern is not None:
            self._validate_freeze_layer_pattern()
        self._validate_lr_scheduler_step()
        self._validate_early_stopping()

    def _validate_freeze_layer_pattern(self) -> None:
        pattern = self.freeze_layer_pattern
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"freeze_layer_pattern: must be a non-empty regex, got {pattern!r}")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"freeze_layer_pattern: invalid regex {pattern!r}: {exc}") from exc

    def _validate_lr_scheduler_step(self) -> None:
        steps = self.lr_scheduler_step
        if steps is None:
            return
        assert isinstance(steps, tuple)  # normalised in __post_init__
        epochs = self.epochs if self.epochs is not None else DOCUMENTED_DEFAULTS["epochs"]
        previous = 0
        for step in steps:
            if step <= previous:
                raise ValueError(
                    f"lr_scheduler_step: epochs must be >= 1 and strictly increasing, got {steps}"
                )
            # A step at or after the last epoch never fires: almost always a typo.
            if step >= epochs:
                raise ValueError(f"lr_scheduler_step: epoch {step} is not below epochs={epochs}")
            previous = step

    def _validate_early_stopping(self) -> None:
        if self.early_stopping is not None and not isinstance(self.early_stopping, bool):
            raise ValueError(f"early_stopping: must be True or False, got {self.early_stopping!r}")
        if self.early_stopping_min_epochs is not None:
            _int("early_stopping_min_epochs", self.early_stopping_min_epochs)
        if self.early_stopping_patience is not None:
            _int("early_stopping_patience", self.early_stopping_patience)
        if self.early_stopping_tolerance is not None:
            _float("early_stopping_tolerance", self.early_stopping_tolerance, 0, 1,
                   low_open=False, high_open=False)
        # The algorithm ignores these knobs unless early_stopping is True; setting them alone is a
        # silent no-op, so say so.
        if self.early_stopping is not True:
            for knob in _EARLY_STOPPING_KNOBS:
                if getattr(self, knob) is not None:
                    raise ValueError(f"{knob}: only takes effect with early_stopping=True")

    def to_sagemaker(self) -> dict[str, str]:
        """``HyperParameters`` for CreateTrainingJob: every value a string, ``None`` omitted."""
        return {
            f.name: _format(getattr(self, f.name))
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


# --------------------------------------------------------------------------- instances

# Documented training instances ("EC2 Instance Recommendation for the Object Detection
# Algorithm"): GPU only. CPU instances (e.g. C5, M5) are supported for inference only.
TRAINING_INSTANCE_TYPES: frozenset[str] = frozenset({
    "ml.p2.xlarge", "ml.p2.8xlarge", "ml.p2.16xlarge",
    "ml.p3.2xlarge", "ml.p3.8xlarge", "ml.p3.16xlarge",
})

# Other GPU families SageMaker offers for training. The algorithm doc does not list them, but
# SageMaker's own check for these MXNet built-ins is "only GPU instances are supported", so they
# are accepted only when the caller opts in (cheaper ml.g4dn/ml.g5 where P2/P3 are unavailable).
# Newer generations (g6, p5) are left out: this older MXNet image may predate their CUDA needs.
UNDOCUMENTED_GPU_TRAINING_FAMILIES: frozenset[str] = frozenset({"g4dn", "g5", "p3dn", "p4d"})

_INSTANCE_TYPE_RE = re.compile(r"^ml\.([a-z0-9]+)\.([0-9]*x?large|medium|small)$")


def check_training_instance_type(instance_type: str, *, allow_undocumented_gpu: bool = False) -> str:
    """Return ``instance_type`` if the algorithm can train on it, else raise naming the field."""
    match = _INSTANCE_TYPE_RE.match(instance_type) if isinstance(instance_type, str) else None
    if match is None:
        raise ValueError(
            f"instance_type: {instance_type!r} is not a SageMaker instance type like 'ml.p3.2xlarge'"
        )
    if instance_type in TRAINING_INSTANCE_TYPES:
        return instance_type
    if allow_undocumented_gpu and match.group(1) in UNDOCUMENTED_GPU_TRAINING_FAMILIES:
        return instance_type
    hint = (
        f" (or a GPU family {sorted(UNDOCUMENTED_GPU_TRAINING_FAMILIES)} with allow_undocumented_gpu)"
        if not allow_undocumented_gpu else f" or families {sorted(UNDOCUMENTED_GPU_TRAINING_FAMILIES)}"
    )
    raise ValueError(
        f"instance_type: object-detection trains only on GPU instances; {instance_type!r} is not one of "
        f"{sorted(TRAINING_INSTANCE_TYPES)}{hint}. CPU instances serve inference only."
    )


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class AlgorithmMetric:
    """A metric the algorithm writes to its log, as SageMaker parses it into CloudWatch."""

    name: str
    regex: str
    direction: Literal["Maximize", "Minimize"] | None = None

    def to_sagemaker(self) -> dict[str, str]:
        """A ``MetricDefinition`` (Name, Regex) entry."""
        return {"Name": self.name, "Regex": self.regex}


OBJECTIVE_METRIC_NAME = "validation:mAP"

# Built-in algorithms publish their metrics on their own: SageMaker attaches these definitions to
# the training job (they show up in DescribeTrainingJob.AlgorithmSpecification.MetricDefinitions)
# and AWS docs say that with built-in algorithms "you don't need to define metrics". So requests
# for the built-in image do NOT send MetricDefinitions; these regexes are for reading logs
# (tests, the local emulator) and for documenting what the gate compares. The AWS docs say
# defining them is unnecessary; they do not clearly say it is forbidden, so we don't rely on
# either behaviour. validation:mAP is documented (Tune an Object Detection Model); the train:*
# regexes are those SageMaker itself attaches for this algorithm.
OBJECT_DETECTION_METRICS: tuple[AlgorithmMetric, ...] = (
    AlgorithmMetric(
        OBJECTIVE_METRIC_NAME,
        r"#quality_metric: host=\S+, epoch=\S+, validation mAP <score>=\((\S+)\)",
        "Maximize",
    ),
    AlgorithmMetric(
        "train:smooth_l1",
        r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train smooth_l1 <loss>=(\S+)",
        "Minimize",
    ),
    AlgorithmMetric(
        "train:cross_entropy",
        r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train cross_entropy <loss>=(\S+)",
        "Minimize",
    ),
    AlgorithmMetric(
        "train:throughput", r"#throughput_metric: host=\S+, train throughput=(\S+) records/second"
    ),
    AlgorithmMetric("train:progress", r"#progress_metric: host=\S+, completed (\S+) %"),
)

OBJECTIVE_METRIC: AlgorithmMetric = OBJECT_DETECTION_METRICS[0]
