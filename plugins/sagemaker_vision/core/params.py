"""One spec per pipeline param: its type, default, bounds (and the step between two values),
allowed values and description. No Airflow.

Both sides of a param are built from its :class:`ParamSpec`, so they cannot disagree:

- the trigger form: ``pipeline/params.py`` turns :meth:`ParamSpec.schema` into an Airflow ``Param``
  (JSON schema, validated by ``Param.resolve`` with jsonschema when a run is triggered);
- the config: ``PipelineConfig.from_params`` (``core/config.py``) reads every number and choice
  through :meth:`ParamSpec.read`, with the same bounds and allowed values, and refuses keys that
  name no spec (:func:`check_known_keys`).

Defaults that differ between the embedded emulator and a real account (the bucket, the execution
role, poll intervals) come from environment variables read when the DAG is parsed: reading
``os.environ`` is free, unlike Variables, which would hit the metadata DB on every parse.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sagemaker_vision.core import algorithms, naming
from sagemaker_vision.core.manifest import MAX_LABEL_ATTRIBUTE
from sagemaker_vision.core.validate import (
    BAD_IMAGE_POLICIES,
    BUCKET_PATTERN,
    DEPLOYMENT_POLICIES,
    ENDPOINT_TYPES,
    LABEL_BACKENDS,
    MAX_LABEL_CLASSES,
    MAX_WORKERS_PER_OBJECT,
    ROLE_ARN_PATTERN,
    SAGEMAKER_NAME_MAX,
    SAGEMAKER_NAME_PATTERN,
    SERVERLESS_MAX_CONCURRENCY,
    SERVERLESS_MEMORY_MB,
    ConfigError,
)

JsonType = Literal["string", "integer", "number", "array", "boolean"]
NUMERIC_TYPES = ("integer", "number")

# The instance-type rule of validate.INSTANCE_TYPE_RE, and the label attribute rule of
# manifest.label_attribute_problem, as JSON-schema patterns for the form (ECMA and Python alike).
_INSTANCE_TYPE_PATTERN = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
_LABEL_ATTRIBUTE_PATTERN = r"^(?!source$)(?!.*-metadata)(?!.*-ref$)[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
_OPTIONAL_SAGEMAKER_NAME_PATTERN = r"^$|" + SAGEMAKER_NAME_PATTERN


@dataclass(frozen=True)
class ParamSpec:
    """Everything known about one param. ``minimum``/``maximum`` are inclusive; ``step`` is the
    smallest change the param means (1 for integers), used to test the bounds from both sides."""

    name: str
    default: Any
    type: JsonType
    description: str
    section: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    enum: tuple[Any, ...] | None = None
    # What the config says when a number is not one of ``enum`` (default: "must be one of ...").
    enum_rule: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    items: Mapping[str, Any] | None = None
    min_items: int | None = None
    max_items: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type in NUMERIC_TYPES and self.step is None:
            object.__setattr__(self, "step", 1 if self.type == "integer" else None)
        if self.type in NUMERIC_TYPES and (self.minimum is not None or self.maximum is not None) and not self.step:
            raise ValueError(f"param {self.name}: a numeric param with bounds needs its step")

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the form field (Airflow ``Param`` kwargs besides default and description)."""
        out: dict[str, Any] = {"type": ["null", self.type] if self.nullable else self.type}
        for key, value in (
            ("minimum", self.minimum), ("maximum", self.maximum),
            ("minLength", self.min_length), ("maxLength", self.max_length), ("pattern", self.pattern),
            ("items", dict(self.items) if self.items is not None else None),
            ("minItems", self.min_items), ("maxItems", self.max_items),
        ):
            if value is not None:
                out[key] = value
        if self.enum is not None:
            out["enum"] = list(self.enum)
        out.update(self.extra)
        out["section"] = self.section
        return out

    # ---- the config side ----------------------------------------------------------------
    def read(self, params: Mapping[str, Any]) -> Any:
        """This param's value in ``params``, checked: numbers against type, bounds and ``enum``,
        choices against ``enum``. Raises :class:`ConfigError` naming the param."""
        if self.numeric:
            return self._number(params.get(self.name))
        value = params.get(self.name)
        if self.enum is not None and value not in self.enum:
            raise ConfigError(self.name, f"must be one of {', '.join(map(str, self.enum))}; got {value!r}")
        return value

    def _number(self, raw: Any) -> int | float:
        name = self.name
        if isinstance(raw, bool) or raw is None:
            raise ConfigError(name, f"must be a number, got {raw!r}")
        kind = int if self.type == "integer" else float
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            raise ConfigError(name, f"must be a number, got {raw!r}") from None
        if kind is int and float(raw) != value:
            raise ConfigError(name, f"must be a whole number, got {raw!r}")
        if self.enum is not None and value not in self.enum:  # the allowed values say more than the bounds
            raise ConfigError(name, f"{self.enum_rule or 'must be one of ' + ', '.join(map(str, self.enum))}; "
                                    f"got {value}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(name, f"must be >= {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(name, f"must be <= {self.maximum}, got {value}")
        return value


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


_DATA, _LABEL, _TRAIN, _DEPLOY, _TEST = "Data", "Labeling", "Training", "Deployment", "Load test"


def _specs() -> list[ParamSpec]:
    longest = naming.max_pipeline_name_length()
    return [
        ParamSpec(
            "pipeline_name", _env("SAGEMAKER_VISION_PIPELINE_NAME", "shapes-detector"), "string",
            "Names the training jobs, models and endpoint configs of this pipeline "
            f"(<name>-<run stamp>). Letters, digits and hyphens, at most {longest}: "
            "every name derived from it (labeling job, training retry, alarms) must fit AWS's limits.",
            _DATA, min_length=1, max_length=longest, pattern=SAGEMAKER_NAME_PATTERN),
        ParamSpec("region", "", "string",
                  "AWS region (one that hosts the built-in object-detection image). Empty means the region of "
                  "the aws_default connection.", _DATA, nullable=True,
                  enum=(None, "", *sorted(algorithms.SUPPORTED_REGIONS))),
        ParamSpec(
            "role_arn", _env("SAGEMAKER_VISION_ROLE_ARN", ""), "string",
            "SageMaker execution role ARN that training and hosting assume "
            "(see include/iam/). Defaults to $SAGEMAKER_VISION_ROLE_ARN.", _DATA,
            # Empty only while $SAGEMAKER_VISION_ROLE_ARN is unset: the run then fails at its first task.
            pattern=r"^$|" + ROLE_ARN_PATTERN),
        ParamSpec(
            "bucket", _env("SAGEMAKER_VISION_BUCKET", "sagemaker-vision-demo"), "string",
            "Project S3 bucket: images, manifests, model artifacts and reports go here, and the "
            "endpoint locks (sagemaker-vision-locks/): every run and DAG that writes to one endpoint must use "
            "the same bucket. Lowercase letters, digits, dots and hyphens. Defaults to $SAGEMAKER_VISION_BUCKET.",
            _DATA, min_length=3, max_length=63, pattern=BUCKET_PATTERN),
        ParamSpec("prefix", "object-detection", "string",
                  "Key prefix inside the bucket for everything this pipeline writes.", _DATA, min_length=1),
        ParamSpec(
            "image_source", "include/sample_data/images", "string",
            "Images to sync: a local folder (relative to the project root) or an s3:// prefix. "
            "Only new or changed files are copied.", _DATA, min_length=1),
        ParamSpec(
            "bad_image_policy", BAD_IMAGE_POLICIES[0], "string",
            "What validate_images does with a corrupt, oversized or misnamed image: fail the run "
            "before anything is paid for, or skip it (left out of labeling and training). Either way a report "
            "names each file and its reason.", _DATA, enum=BAD_IMAGE_POLICIES),
        ParamSpec(
            "label_backend", "import", "string",
            "Where bounding boxes come from: import an existing Ground Truth manifest, "
            "a SageMaker Ground Truth labeling job, or a Label Studio project.", _LABEL, enum=LABEL_BACKENDS),
        ParamSpec(
            "label_attribute", "bounding-box", "string",
            "Label attribute name in the augmented manifest (may not end in -metadata or -ref).", _LABEL,
            min_length=1, max_length=MAX_LABEL_ATTRIBUTE, pattern=_LABEL_ATTRIBUTE_PATTERN),
        ParamSpec(
            "import_manifest", "include/sample_data/output.manifest", "string",
            "import backend: an existing Ground Truth output manifest (local path or s3:// URI). "
            "Its source-refs are rewritten to the synced images.", _LABEL),
        ParamSpec(
            "import_source_prefix", "", "string",
            "import backend: the prefix the manifest's source-refs start with. "
            "Empty means their longest common prefix.", _LABEL, nullable=True),
        ParamSpec(
            "label_classes", ["circle", "square", "triangle"], "array",
            "ground_truth / label_studio: the classes annotators draw, in class-id order.", _LABEL,
            items={"type": "string", "pattern": r"\S"}, min_items=1, max_items=MAX_LABEL_CLASSES,
            extra={"uniqueItems": True}),
        ParamSpec(
            "gt_workteam_arn", "", "string",
            "ground_truth (required for it): a private or vendor work team ARN your account "
            "already has. The public workforce (Mechanical Turk) closed on 2026-09-30 and Ground Truth "
            "takes no new customers: new accounts label with label_studio.", _LABEL, nullable=True),
        ParamSpec("gt_workers_per_object", 1, "integer",
                  "ground_truth: workers who box each image; their boxes are consolidated.", _LABEL,
                  minimum=1, maximum=MAX_WORKERS_PER_OBJECT),
        ParamSpec("gt_task_description", "", "string",
                  "ground_truth: instructions workers read. Empty means one naming label_classes.", _LABEL,
                  nullable=True),
        ParamSpec("gt_task_time_limit_s", 300, "integer", "ground_truth: seconds a worker has for one image.",
                  _LABEL, minimum=30, maximum=28800),
        ParamSpec("label_studio_conn_id", "label_studio_default", "string",
                  "label_studio: Airflow connection of the Label Studio server (host and API token).", _LABEL),
        ParamSpec(
            "label_studio_presign_aws_conn_id", "aws_label_studio_reader", "string",
            "label_studio: AWS connection of a read-only principal (include/iam/"
            "label-studio-reader-policy.json) that signs the image URLs Label Studio stores. They live one hour "
            "and are renewed while the project waits; the pipeline's own credentials never reach Label Studio.",
            _LABEL, min_length=1),
        ParamSpec("label_studio_project", "", "string",
                  "label_studio: project title, created or reused. Empty means pipeline_name.", _LABEL,
                  nullable=True, pattern="^$|^.{{{},{}}}$".format(*naming.LABEL_STUDIO_TITLE_LENGTH)),
        ParamSpec("label_studio_min_annotations", 1, "integer",
                  "label_studio: annotations every task needs before the export.", _LABEL, minimum=1, maximum=20),
        ParamSpec("label_studio_timeout_hours", 72.0, "number",
                  "label_studio: how long to wait for the annotators before failing (at most 30 days).", _LABEL,
                  minimum=0.01, maximum=24 * 30, step=0.01),
        ParamSpec(
            "validation_fraction", 0.25, "number",
            "Share of images held out for the validation channel, chosen by a hash of "
            "source-ref so the split is stable across runs.", _TRAIN, minimum=0.01, maximum=0.5, step=0.01),
        ParamSpec("training_instance_type", "ml.p3.2xlarge", "string",
                  "GPU instance for the built-in Object Detection algorithm (the instances its documentation "
                  "lists).", _TRAIN, enum=tuple(sorted(algorithms.TRAINING_INSTANCE_TYPES))),
        ParamSpec("training_instance_count", 1, "integer", "Training instances.", _TRAIN, minimum=1, maximum=16),
        ParamSpec("training_volume_gb", 50, "integer", "EBS volume per training instance, GB.", _TRAIN,
                  minimum=5, maximum=16384),
        ParamSpec(
            "max_training_hours", 2.0, "number",
            "Stopping condition: SageMaker stops the job after this many hours. "
            "The cost estimate prices training at this cap.", _TRAIN, minimum=0.1, maximum=120, step=0.1),
        ParamSpec("epochs", 30, "integer", "Training epochs.", _TRAIN, minimum=1, maximum=1000),
        ParamSpec("base_network", "resnet-50", "string", "Backbone of the SSD detector.", _TRAIN,
                  enum=("resnet-50", "vgg-16")),
        ParamSpec("mini_batch_size", 16, "integer", "Mini-batch size.", _TRAIN, minimum=1, maximum=1024),
        ParamSpec("learning_rate", 0.001, "number", "Initial learning rate.", _TRAIN,
                  minimum=1e-6, maximum=1.0, step=1e-6),
        ParamSpec("image_shape", 512, "integer", "Input image side, pixels (300-1024).", _TRAIN,
                  minimum=300, maximum=1024),
        ParamSpec("endpoint_name", "", "string",
                  "Endpoint to create or update without downtime. Empty means pipeline_name.", _DEPLOY,
                  nullable=True, max_length=SAGEMAKER_NAME_MAX, pattern=_OPTIONAL_SAGEMAKER_NAME_PATTERN),
        ParamSpec(
            "endpoint_type", "serverless", "string",
            "serverless (pay per request), provisioned real-time instances, or async "
            "(asynchronous inference from S3, for large inputs; may scale to zero).", _DEPLOY, enum=ENDPOINT_TYPES),
        ParamSpec(
            "serverless_memory_mb", 4096, "integer", "Serverless MemorySizeInMB (1024-6144, steps of 1024).",
            _DEPLOY, minimum=SERVERLESS_MEMORY_MB[0], maximum=SERVERLESS_MEMORY_MB[-1], step=1024,
            enum=SERVERLESS_MEMORY_MB, enum_rule="must be 1024-6144 in steps of 1024 (MemorySizeInMB)"),
        ParamSpec(
            "serverless_max_concurrency", 10, "integer",
            "Serverless MaxConcurrency: concurrent invocations before throttling.", _DEPLOY,
            minimum=SERVERLESS_MAX_CONCURRENCY[0], maximum=SERVERLESS_MAX_CONCURRENCY[1]),
        ParamSpec("inference_instance_type", "ml.g4dn.xlarge", "string", "provisioned: hosting instance type.",
                  _DEPLOY, pattern=_INSTANCE_TYPE_PATTERN),
        ParamSpec("inference_instance_count", 1, "integer", "provisioned: initial instance count.", _DEPLOY,
                  minimum=1, maximum=100),
        ParamSpec("min_map", 0.5, "number",
                  "Quality gate: deploy only when the new model's validation:mAP is at least this.", _DEPLOY,
                  minimum=0, maximum=1, step=0.01),
        ParamSpec(
            "map_tolerance", 0.02, "number",
            "Quality gate: deploy only when the new mAP is at least the serving model's minus "
            "this. The first deploy has nothing to beat.", _DEPLOY, minimum=0, maximum=1, step=0.01),
        ParamSpec(
            "deployment_policy", "all_at_once", "string",
            "Blue/green traffic shifting on update, rolled back by CloudWatch alarms on 5XX "
            "errors and latency. Serverless endpoints allow all_at_once only.", _DEPLOY, enum=DEPLOYMENT_POLICIES),
        ParamSpec("autoscaling_min_capacity", 1, "integer",
                  "provisioned / async: Application Auto Scaling minimum instances (async may use 0).", _DEPLOY,
                  minimum=0, maximum=1000),
        ParamSpec("autoscaling_max_capacity", 0, "integer",
                  "provisioned: maximum instances; 0 turns autoscaling off.", _DEPLOY, minimum=0, maximum=1000),
        ParamSpec(
            "target_invocations_per_instance", 100.0, "number",
            "provisioned: autoscaling target for SageMakerVariantInvocationsPerInstance "
            "(the load test reports a recommended value).", _DEPLOY, minimum=1, maximum=1e6, step=1),
        ParamSpec(
            "challenger_weight", 0.0, "number",
            "provisioned: above 0, the new model joins as a Challenger variant taking this share "
            "of traffic (A/B) until promote_challenger; 0 replaces the model.", _DEPLOY,
            minimum=0, maximum=0.99, step=0.01),
        ParamSpec("load_test_requests", 200, "integer",
                  "Load test: total requests (the test also stops at load_test_max_seconds).", _TEST,
                  minimum=1, maximum=100_000),
        ParamSpec("load_test_concurrency", 4, "integer", "Load test: concurrent requests.", _TEST,
                  minimum=1, maximum=1000),
        ParamSpec("load_test_max_seconds", 60, "number", "Load test: time limit, seconds.", _TEST,
                  minimum=1, maximum=3600, step=1),
        ParamSpec("load_workers", 1, "integer",
                  "Load test: mapped tasks (dynamic task mapping, on any workers) that send the load together, "
                  "splitting load_test_concurrency and load_test_requests; their latency histograms merge exactly.",
                  _TEST, minimum=1, maximum=16),
        ParamSpec("slo_p95_ms", 2000, "number", "SLO: the run fails if p95 latency exceeds this, ms.", _TEST,
                  minimum=1, maximum=600_000, step=1),
        ParamSpec("max_error_rate", 0.01, "number", "SLO: the run fails above this share of failed requests.",
                  _TEST, minimum=0, maximum=1, step=0.01),
        ParamSpec("budget_usd", 50.0, "number",
                  "The run fails before spending anything when its estimated cost exceeds this, USD.", _DATA,
                  minimum=0, step=0.01),
    ]


# Params whose default comes from the environment: a bad value would make Airflow refuse the
# scheduled DAGs at parse time with a message that names neither, so it is refused here, naming both.
ENV_DEFAULTS = {
    "pipeline_name": "SAGEMAKER_VISION_PIPELINE_NAME",
    "role_arn": "SAGEMAKER_VISION_ROLE_ARN",
    "bucket": "SAGEMAKER_VISION_BUCKET",
}


def _check_env_default(spec: ParamSpec) -> None:
    value, env = spec.default, ENV_DEFAULTS[spec.name]
    if env not in os.environ:
        return
    too_short = spec.min_length is not None and len(value) < spec.min_length
    too_long = spec.max_length is not None and len(value) > spec.max_length
    if too_short or too_long or (spec.pattern is not None and re.search(spec.pattern, value) is None):
        raise ValueError(f"${env}={value!r} is not a valid default for the param {spec.name!r}: it must match "
                         f"{spec.pattern} with {spec.min_length or 0} to {spec.max_length or 'any'} characters")


def param_specs() -> dict[str, ParamSpec]:
    """Every param of ``<pipeline>.pipeline`` by name, in form order (defaults read from the
    environment now; a bad environment default raises ValueError naming the variable)."""
    specs = {spec.name: spec for spec in _specs()}
    for name in ENV_DEFAULTS:
        _check_env_default(specs[name])
    return specs


# What a person changes per run: the trigger form shows these, with the pipeline file's values as
# defaults; the file holds every other param (core/pipeline_file.py). Budget, training knobs, the
# quality gate and the load's size; never the data, the labeling, the endpoint or the SLO.
PER_RUN_PARAMS = (
    "budget_usd", "epochs", "learning_rate", "mini_batch_size", "max_training_hours",
    "min_map", "map_tolerance", "deployment_policy", "challenger_weight",
    "load_test_requests", "load_test_concurrency", "load_test_max_seconds", "load_workers",
)


def param_defaults() -> dict[str, Any]:
    """The default value of each pipeline param, as a task would see it."""
    return {name: spec.default for name, spec in param_specs().items()}


def check_known_keys(keys: Iterable[str], known: Iterable[str] | None = None) -> None:
    """Refuse a key no param has (``bukcet``), naming it and the closest known one: a misspelt conf key
    would otherwise be ignored and the run would use the default."""
    known_names = sorted(known if known is not None else param_specs())
    unknown = sorted(set(keys) - set(known_names), key=str)
    if not unknown:
        return
    key = str(unknown[0])
    close = difflib.get_close_matches(key, known_names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; the params are: {', '.join(known_names)}"
    others = f" (and {len(unknown) - 1} more unknown: {', '.join(map(str, unknown[1:]))})" if len(unknown) > 1 else ""
    raise ConfigError(key, f"is not a param of this pipeline{hint}{others}")


def default_poll_seconds() -> int:
    """Poll interval for deferrable waits; $SAGEMAKER_VISION_POLL_SECONDS (the emulator sets 1)."""
    return int(_env("SAGEMAKER_VISION_POLL_SECONDS", "30"))
