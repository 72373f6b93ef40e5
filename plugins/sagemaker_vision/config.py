"""The typed pipeline config: built from DAG params and the run, validated before any AWS call.

``PipelineConfig.from_context(context)`` is the only way tasks learn what to do. It is pure and
cheap (no network), so every task rebuilds it instead of passing loose dicts through XCom, and
templated operator fields reach it through the ``pipeline()`` Jinja macro.

Every name and S3 location of a run derives from the run itself (``run_after`` and the data
interval, never ``ts_nodash`` alone, which is ``None`` for manual runs), so a rerun of any task
lands on the same resources.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagemaker_vision import algorithms

# plugins/sagemaker_vision/config.py -> the project root holds include/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = Path(os.environ.get("SAGEMAKER_VISION_INCLUDE_DIR", PROJECT_ROOT / "include"))

# AWS's rule for SageMaker resource names (jobs, models, endpoint configs, endpoints).
SAGEMAKER_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
SAGEMAKER_NAME_MAX = 63
# AWS's length limits on every name the package derives, as the botocore models state them
# (``max`` of the shape; tests/unit/test_name_limits.py reads the models and checks each number).
# The key is the model shape: (service, shape name).
AWS_NAME_LIMITS: dict[tuple[str, str], int] = {
    ("sagemaker", "TrainingJobName"): 63,
    ("sagemaker", "LabelingJobName"): 63,
    ("sagemaker", "ModelName"): 63,
    ("sagemaker", "EndpointConfigName"): 63,
    ("sagemaker", "EndpointName"): 63,
    ("cloudwatch", "AlarmName"): 255,
    ("application-autoscaling", "PolicyName"): 256,
}
# S3 user guide, "Naming Amazon S3 objects": a key is at most 1,024 bytes of UTF-8 (no model shape).
# The one definition in the package (s3_sync and labels import it; the emulator keeps its own).
S3_KEY_MAX_BYTES = 1024
# Characters no key the pipeline writes or a manifest refers to may hold (s3_sync skips such files,
# the manifest converters refuse such image paths): C0 controls and DEL (ASCII 0-31 and 127, which
# that page lists as needing special handling, and XML 1.0 cannot carry most of them in a listing),
# C1 controls, and the Unicode line and paragraph separators. None can reach training: SageMaker's
# S3Uri pattern is a Java regex whose "." matches no line terminator (\n \r U+0085 U+2028 U+2029),
# so such a key is no valid source-ref in a manifest.
UNSAFE_KEY_CHAR_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Label Studio's settings: PROJECT_TITLE_MIN_LEN = 3, PROJECT_TITLE_MAX_LEN = 50 (Project.title).
LABEL_STUDIO_TITLE_LENGTH = (3, 50)
# The longest key the pipeline or SageMaker writes under each derived prefix (the part after the
# prefix): Ground Truth's per-worker responses and the training artifact are the deepest.
_GROUND_TRUTH_DEEPEST = "annotations/worker-response/iteration-1/0/2026-12-31_23:59:59.json"
# S3 bucket naming rules (general purpose buckets), minus the legacy dotted forms.
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
IP_LIKE_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
LABEL_BACKENDS = ("import", "ground_truth", "label_studio")
# What validate_images does with a corrupt, oversized or misnamed image (the first is the default).
BAD_IMAGE_POLICIES = ("fail", "skip")
ENDPOINT_TYPES = ("serverless", "provisioned", "async")
DEPLOYMENT_POLICIES = ("all_at_once", "canary", "linear")
# Serverless inference: memory 1024-6144 MB in 1 GB steps, concurrency 1-200 per endpoint.
SERVERLESS_MEMORY_MB = tuple(range(1024, 6145, 1024))
SERVERLESS_MAX_CONCURRENCY = (1, 200)
STAMP_FORMAT = "%Y%m%dT%H%M%S"


class ConfigError(ValueError):
    """A bad param. The message starts with the param (field) name, so the UI log shows it."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


def validate_sagemaker_name(value: str, field_name: str) -> str:
    """Check a SageMaker resource name: <= 63 chars, alphanumerics and inner hyphens."""
    if not isinstance(value, str) or not value:
        raise ConfigError(field_name, "is required")
    if len(value) > SAGEMAKER_NAME_MAX:
        raise ConfigError(field_name, f"{value!r} is {len(value)} characters; SageMaker allows at most 63")
    if not SAGEMAKER_NAME_RE.match(value):
        raise ConfigError(
            field_name,
            f"{value!r} must match {SAGEMAKER_NAME_RE.pattern} (letters, digits and inner hyphens only)",
        )
    return value


def unsafe_key_character(text: str) -> str | None:
    """Why ``text`` (a key or part of one) holds a character S3 or a manifest cannot carry, or None."""
    bad = UNSAFE_KEY_CHAR_RE.search(text)
    if bad is None:
        return None
    return (f"contains the control character U+{ord(bad.group()):04X}, which a manifest's source-ref "
            "(SageMaker's S3Uri) cannot carry")


def s3_key_problem(key: str) -> str | None:
    """Why ``key`` is no key S3 or a manifest can carry (not UTF-8, over 1,024 bytes, a control
    character: :data:`UNSAFE_KEY_CHAR_RE`), or None when it is one."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:  # a local name that is not UTF-8 (os.walk keeps its bytes as surrogates)
        return "is not valid UTF-8, and S3 keys are UTF-8"
    if size > S3_KEY_MAX_BYTES:
        return f"makes a {size}-byte key; S3 keys are at most {S3_KEY_MAX_BYTES} bytes (UTF-8)"
    return unsafe_key_character(key)


def validate_bucket(value: str, field_name: str) -> str:
    if not isinstance(value, str) or not BUCKET_RE.match(value) or ".." in value or IP_LIKE_RE.match(value):
        raise ConfigError(
            field_name,
            f"{value!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit)",
        )
    return value


def parse_s3_uri(value: str, field_name: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into (bucket, key); the key may be empty."""
    if not isinstance(value, str) or not value.startswith("s3://"):
        raise ConfigError(field_name, f"{value!r} is not an s3:// URI")
    bucket, _, key = value[5:].partition("/")
    validate_bucket(bucket, field_name)
    if "//" in key:
        raise ConfigError(field_name, f"{value!r} has an empty path segment ('//')")
    return bucket, key


def validate_prefix(value: str, field_name: str) -> str:
    """An S3 key prefix inside the project bucket, without leading or trailing slashes."""
    value = (value or "").strip("/")
    if not value or "//" in value or any(c in value for c in "\\{}^%`[]\"<>~#|"):
        raise ConfigError(field_name, f"{value!r} is not a usable S3 key prefix")
    return value


def resolve_local_path(value: str) -> Path:
    """Relative local paths are relative to the project root (where include/ lives)."""
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


# Local image_source folders must lie inside one of these: the project's include/ and the folders
# named (absolute paths, os.pathsep-separated) by this environment variable, set on every worker.
IMAGE_ROOTS_ENV = "SAGEMAKER_VISION_IMAGE_ROOTS"


def image_roots() -> tuple[str, ...]:
    """The real paths (symlinks resolved) a local ``image_source`` may lie in: include/ first."""
    roots = [str(INCLUDE_DIR)]
    for entry in os.environ.get(IMAGE_ROOTS_ENV, "").split(os.pathsep):
        entry = entry.strip()
        if entry and not os.path.isabs(entry):
            raise ConfigError("image_source", f"${IMAGE_ROOTS_ENV} entry {entry!r} is not an absolute path")
        if entry:
            roots.append(entry)
    return tuple(dict.fromkeys(os.path.realpath(r) for r in roots))


def check_local_image_source(value: str) -> str:
    """Refuse a local ``image_source`` outside the allowed roots (``..`` never; symlinks resolved).

    Anyone who can trigger the DAG sets this param, so without the check any folder the worker can
    read (``/etc``, a home directory) could be copied into the bucket.
    """
    roots = image_roots()
    allowed = f"allowed roots: {', '.join(roots)} (add folders to ${IMAGE_ROOTS_ENV})"
    if "\0" in value:
        raise ConfigError("image_source", f"{value!r} contains a NUL character")
    if any(part == ".." for part in value.replace("\\", "/").split("/")):
        raise ConfigError("image_source", f"{value!r} may not contain '..' segments; {allowed}")
    real = os.path.realpath(resolve_local_path(value))
    if not any(os.path.commonpath([root, real]) == root for root in roots):
        raise ConfigError("image_source", f"{value!r} resolves to {real}, outside the {allowed}")
    return value


def _number(params: Mapping[str, Any], name: str, kind: type, lo: float | None = None,
            hi: float | None = None) -> Any:
    raw = params.get(name)
    if isinstance(raw, bool) or raw is None:
        raise ConfigError(name, f"must be a number, got {raw!r}")
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be a number, got {raw!r}") from None
    if kind is int and float(raw) != value:
        raise ConfigError(name, f"must be a whole number, got {raw!r}")
    if lo is not None and value < lo:
        raise ConfigError(name, f"must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(name, f"must be <= {hi}, got {value}")
    return value


def _choice(params: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = params.get(name)
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


@dataclass(frozen=True)
class RunInfo:
    """The identity of one DAG run: what names and partitions derive from.

    Scheduled and backfilled runs own their data interval, so every try of such a run, and
    a backfill of the same week, lands on the same names. A manual or Asset-triggered run owns
    the moment it was triggered (``run_after``): Airflow infers a data interval for manual
    runs too, but two manual runs in one week are two different runs.
    """

    run_id: str
    run_after: datetime
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    run_type: str = "manual"

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> RunInfo:
        dag_run = context["dag_run"]
        run_type = getattr(dag_run, "run_type", "manual")
        return cls(
            run_id=dag_run.run_id,
            run_after=dag_run.run_after,
            data_interval_start=getattr(dag_run, "data_interval_start", None),
            data_interval_end=getattr(dag_run, "data_interval_end", None),
            run_type=str(getattr(run_type, "value", run_type)),
        )

    @property
    def owns_interval(self) -> bool:
        return self.run_type in ("scheduled", "backfill") and self.data_interval_end is not None

    @property
    def interval_start(self) -> datetime:
        """Start of the data this run owns."""
        return _utc(self.data_interval_start if self.owns_interval and self.data_interval_start else self.run_after)

    @property
    def interval_end(self) -> datetime:
        return _utc(self.data_interval_end if self.owns_interval else self.run_after)

    @property
    def stamp(self) -> str:
        """Deterministic per run, unique across runs, to the second."""
        return self.interval_end.strftime(STAMP_FORMAT)

    @property
    def partition(self) -> str:
        return f"dt={self.interval_start:%Y-%m-%d}"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class GroundTruthSpec:
    """ground_truth backend: the private or vendor work team that labels, and its task settings."""

    workteam_arn: str | None  # required for ground_truth: the public workforce (MTurk) closed 2026-09-30
    workers_per_object: int
    task_description: str
    task_time_limit_s: int


@dataclass(frozen=True)
class LabelStudioSpec:
    """label_studio backend: the server connection and when labeling is done."""

    conn_id: str
    project_title: str
    min_annotations: int
    timeout_hours: float
    # The read-only AWS principal that presigns image URLs for Label Studio (never aws_default).
    presign_aws_conn_id: str = "aws_label_studio_reader"


@dataclass(frozen=True)
class TrainingSpec:
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_hours: float
    hyperparameters: algorithms.ObjectDetectionHyperparameters


@dataclass(frozen=True)
class EndpointSpec:
    endpoint_type: str
    memory_size_mb: int
    max_concurrency: int
    instance_type: str
    instance_count: int


@dataclass(frozen=True)
class DeploySpec:
    """When a retrained model may replace the serving one, and how traffic moves to it."""

    min_map: float
    map_tolerance: float
    deployment_policy: str
    autoscaling_min: int
    autoscaling_max: int
    target_invocations_per_instance: float
    challenger_weight: float


@dataclass(frozen=True)
class LoadTestSpec:
    requests: int
    concurrency: int
    max_seconds: float
    slo_p95_ms: float
    max_error_rate: float


@dataclass(frozen=True)
class PipelineConfig:
    """Everything one run of the pipeline needs to know, validated."""

    pipeline_name: str
    region: str
    role_arn: str
    bucket: str
    prefix: str
    image_source: str
    label_backend: str
    label_attribute: str
    import_manifest: str
    import_source_prefix: str | None
    label_classes: tuple[str, ...]
    ground_truth: GroundTruthSpec
    label_studio: LabelStudioSpec
    validation_fraction: float
    training: TrainingSpec
    endpoint: EndpointSpec
    endpoint_name: str
    deploy: DeploySpec
    load_test: LoadTestSpec
    budget_usd: float
    run: RunInfo
    extra: dict[str, Any] = field(default_factory=dict)
    bad_image_policy: str = BAD_IMAGE_POLICIES[0]

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, run: RunInfo, region: str) -> PipelineConfig:
        p = dict(params)
        pipeline_name = validate_sagemaker_name(p.get("pipeline_name"), "pipeline_name")
        # Every name derived from it must fit AWS's limits (checked in full once the config is built).
        longest = max_pipeline_name_length()
        if len(pipeline_name) > longest:
            raise ConfigError("pipeline_name", f"{pipeline_name!r} is {len(pipeline_name)} characters; at most "
                              f"{longest} fit every name derived from it ({_binding_limit()})")
        if region not in algorithms.SUPPORTED_REGIONS:
            raise ConfigError(
                "region",
                f"{region!r} has no built-in object-detection image; use one of "
                f"{', '.join(sorted(algorithms.SUPPORTED_REGIONS))}",
            )
        role_arn = p.get("role_arn") or ""
        if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$", role_arn):
            raise ConfigError(
                "role_arn",
                f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>); "
                "set the SageMaker execution role",
            )
        bucket = validate_bucket(p.get("bucket"), "bucket")
        prefix = validate_prefix(p.get("prefix", ""), "prefix")

        image_source = p.get("image_source") or ""
        if image_source.startswith("s3://"):
            parse_s3_uri(image_source, "image_source")
        elif not image_source:
            raise ConfigError("image_source", "is required: a local folder or an s3:// prefix")
        elif image_source.startswith(("http://", "https://", "s3a://", "s3n://")):
            raise ConfigError("image_source", f"{image_source!r}: use a local folder or an s3:// prefix")
        else:
            check_local_image_source(image_source)

        label_backend = _choice(p, "label_backend", LABEL_BACKENDS)
        label_attribute = p.get("label_attribute") or ""
        if not re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$", label_attribute) or len(label_attribute) > 127:
            raise ConfigError("label_attribute", f"{label_attribute!r} must be 1-127 letters, digits, hyphens")
        if label_attribute.endswith(("-metadata", "-ref")):
            raise ConfigError("label_attribute", f"{label_attribute!r} may not end in -metadata or -ref")
        import_manifest = p.get("import_manifest") or ""
        if label_backend == "import":
            if not import_manifest:
                raise ConfigError("import_manifest", "is required when label_backend is import")
            if import_manifest.startswith("s3://"):
                parse_s3_uri(import_manifest, "import_manifest")
        import_source_prefix = p.get("import_source_prefix") or None
        if import_source_prefix and not import_source_prefix.startswith("s3://"):
            raise ConfigError("import_source_prefix", f"{import_source_prefix!r} is not an s3:// prefix")

        label_classes = _label_classes(p.get("label_classes"), required=label_backend != "import")
        workteam = (p.get("gt_workteam_arn") or "").strip() or None
        if workteam and not re.match(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:workteam/[\w+=,.@/-]+$", workteam):
            raise ConfigError("gt_workteam_arn", f"{workteam!r} is not a SageMaker work team ARN")
        ground_truth = GroundTruthSpec(
            workteam_arn=workteam,
            workers_per_object=_number(p, "gt_workers_per_object", int, 1, 9),
            task_description=(p.get("gt_task_description") or "").strip()
            or f"Draw a tight box around every {', '.join(label_classes) or 'object'} in the image.",
            task_time_limit_s=_number(p, "gt_task_time_limit_s", int, 30, 28800),
        )
        if label_backend == "ground_truth":
            from sagemaker_vision.ground_truth import MTURK_CLOSED

            if ground_truth.workteam_arn is None:
                raise ConfigError("gt_workteam_arn", f"is required for label_backend=ground_truth: {MTURK_CLOSED}")
            if "/public-crowd/" in ground_truth.workteam_arn:
                raise ConfigError("gt_workteam_arn", f"{ground_truth.workteam_arn} is the public workforce: "
                                  f"{MTURK_CLOSED}")
        label_studio = LabelStudioSpec(
            conn_id=(p.get("label_studio_conn_id") or "label_studio_default"),
            project_title=(p.get("label_studio_project") or "").strip() or pipeline_name,
            min_annotations=_number(p, "label_studio_min_annotations", int, 1, 20),
            timeout_hours=_number(p, "label_studio_timeout_hours", float, 0.01, 24 * 30),
            presign_aws_conn_id=(p.get("label_studio_presign_aws_conn_id") or "aws_label_studio_reader").strip(),
        )
        if label_backend == "label_studio" and label_studio.presign_aws_conn_id == "aws_default":
            raise ConfigError("label_studio_presign_aws_conn_id", "must not be aws_default: Label Studio gets "
                              "URLs signed by a read-only principal of its own (include/iam/"
                              "label-studio-reader-policy.json), never the pipeline's")
        validation_fraction = _number(p, "validation_fraction", float, 0.01, 0.5)

        hp = algorithms.ObjectDetectionHyperparameters(
            num_classes=1,  # the real values come from the manifest in prepare_manifests
            num_training_samples=1,
            base_network=p.get("base_network", "resnet-50"),
            use_pretrained_model=1,
            epochs=_number(p, "epochs", int, 1, 1000),
            mini_batch_size=_number(p, "mini_batch_size", int, 1, 1024),
            learning_rate=_number(p, "learning_rate", float, 1e-6, 1.0),
            image_shape=_number(p, "image_shape", int, 300, 1024),
        )
        try:
            hp.validate()
        except ValueError as exc:
            raise ConfigError("hyperparameters", str(exc)) from None
        training_instance = p.get("training_instance_type") or ""
        try:
            algorithms.check_training_instance_type(training_instance)
        except ValueError as exc:
            raise ConfigError("training_instance_type", str(exc)) from None
        training = TrainingSpec(
            instance_type=training_instance,
            instance_count=_number(p, "training_instance_count", int, 1, 16),
            volume_size_gb=_number(p, "training_volume_gb", int, 5, 16384),
            max_runtime_hours=_number(p, "max_training_hours", float, 0.1, 120),
            hyperparameters=hp,
        )

        endpoint_type = _choice(p, "endpoint_type", ENDPOINT_TYPES)
        memory = _number(p, "serverless_memory_mb", int)
        if memory not in SERVERLESS_MEMORY_MB:
            raise ConfigError(
                "serverless_memory_mb", f"must be 1024-6144 in steps of 1024 (MemorySizeInMB); got {memory}"
            )
        endpoint = EndpointSpec(
            endpoint_type=endpoint_type,
            memory_size_mb=memory,
            max_concurrency=_number(p, "serverless_max_concurrency", int, *SERVERLESS_MAX_CONCURRENCY),
            instance_type=_instance_type(p.get("inference_instance_type"), "inference_instance_type"),
            instance_count=_number(p, "inference_instance_count", int, 1, 100),
        )
        endpoint_name = validate_sagemaker_name(p.get("endpoint_name") or pipeline_name, "endpoint_name")
        deploy = DeploySpec(
            min_map=_number(p, "min_map", float, 0, 1),
            map_tolerance=_number(p, "map_tolerance", float, 0, 1),
            deployment_policy=_choice(p, "deployment_policy", DEPLOYMENT_POLICIES),
            autoscaling_min=_number(p, "autoscaling_min_capacity", int, 0, 1000),
            autoscaling_max=_number(p, "autoscaling_max_capacity", int, 0, 1000),
            target_invocations_per_instance=_number(p, "target_invocations_per_instance", float, 1, 1e6),
            challenger_weight=_number(p, "challenger_weight", float, 0, 0.99),
        )
        if endpoint_type == "serverless" and deploy.deployment_policy != "all_at_once":
            # AWS: deployment guardrails (canary, linear, alarm rollback) are for real-time and
            # asynchronous endpoints only; serverless updates are blue/green all at once.
            raise ConfigError("deployment_policy", f"{deploy.deployment_policy} is not available for serverless "
                              "endpoints (AWS allows only all_at_once there); use endpoint_type provisioned")
        if endpoint_type == "serverless" and deploy.challenger_weight > 0:
            raise ConfigError("challenger_weight", "serverless endpoints allow one production variant only, "
                              "so no A/B split; use endpoint_type provisioned")
        if endpoint_type != "serverless" and deploy.autoscaling_max and deploy.autoscaling_max < max(
                deploy.autoscaling_min, 1):
            raise ConfigError("autoscaling_max_capacity", "must be >= autoscaling_min_capacity and >= 1")
        if endpoint_type == "provisioned" and deploy.autoscaling_max and deploy.autoscaling_min < 1:
            raise ConfigError("autoscaling_min_capacity", "real-time endpoints keep at least 1 instance; "
                              "only endpoint_type async can scale to zero")
        if endpoint_type == "async" and deploy.challenger_weight > 0:
            raise ConfigError("challenger_weight", "the A/B split is for provisioned real-time endpoints")

        load_test = LoadTestSpec(
            requests=_number(p, "load_test_requests", int, 1, 100_000),
            concurrency=_number(p, "load_test_concurrency", int, 1, 1000),
            max_seconds=_number(p, "load_test_max_seconds", float, 1, 3600),
            slo_p95_ms=_number(p, "slo_p95_ms", float, 1, 600_000),
            max_error_rate=_number(p, "max_error_rate", float, 0, 1),
        )
        if endpoint_type == "serverless" and load_test.concurrency > endpoint.max_concurrency:
            # More client threads than the endpoint admits only measures throttling.
            raise ConfigError(
                "load_test_concurrency",
                f"{load_test.concurrency} exceeds serverless_max_concurrency {endpoint.max_concurrency}",
            )
        cfg = cls(
            pipeline_name=pipeline_name,
            region=region,
            role_arn=role_arn,
            bucket=bucket,
            prefix=prefix,
            image_source=image_source,
            label_backend=label_backend,
            label_attribute=label_attribute,
            import_manifest=import_manifest,
            import_source_prefix=import_source_prefix,
            label_classes=label_classes,
            ground_truth=ground_truth,
            label_studio=label_studio,
            validation_fraction=validation_fraction,
            training=training,
            endpoint=endpoint,
            endpoint_name=endpoint_name,
            deploy=deploy,
            load_test=load_test,
            budget_usd=_number(p, "budget_usd", float, 0),
            run=run,
            bad_image_policy=_choice({"bad_image_policy": p.get("bad_image_policy") or BAD_IMAGE_POLICIES[0]},
                                     "bad_image_policy", BAD_IMAGE_POLICIES),
        )
        check_derived_names(cfg)
        return cfg

    @classmethod
    def from_context(cls, context: Mapping[str, Any], aws_conn_id: str | None = "aws_default") -> PipelineConfig:
        """Build from a task's context: its params, its run and the connection's region."""
        params = context["params"]
        region = params.get("region") or connection_region(aws_conn_id)
        return cls.from_params(params, run=RunInfo.from_context(context), region=region)

    # ---- derived names and locations ------------------------------------------------------
    @property
    def s3_root(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def raw_prefix(self) -> str:
        """Where this run's images land: one partition per data interval."""
        return f"{self.s3_root}/raw/{self.run.partition}/"

    @property
    def labels_prefix(self) -> str:
        return f"{self.s3_root}/labels/{self.run.partition}/"

    @property
    def labeling_job_name(self) -> str:
        """Ground Truth job of this run: labeling job names are unique forever in an account."""
        return validate_sagemaker_name(labeling_job_name_of(self.job_name), "labeling_job_name")

    @property
    def labeling_work_prefix(self) -> str:
        """Where labeling backends keep their inputs and raw outputs for this partition."""
        return f"{self.labels_prefix}work/"

    @property
    def ground_truth_output_prefix(self) -> str:
        """The labeling job's OutputConfig.S3OutputPath (Ground Truth writes under <it>/<job name>/)."""
        return f"{self.labeling_work_prefix}ground-truth/"

    @property
    def labeled_manifest_uri(self) -> str:
        return f"{self.labels_prefix}output.manifest"

    @property
    def run_prefix(self) -> str:
        # Per pipeline: pipelines sharing a bucket and prefix must not overwrite each other's runs.
        return f"{self.s3_root}/runs/{self.pipeline_name}/{self.run.stamp}/"

    @property
    def train_manifest_uri(self) -> str:
        return f"{self.run_prefix}manifests/train.manifest"

    @property
    def validation_manifest_uri(self) -> str:
        return f"{self.run_prefix}manifests/validation.manifest"

    @property
    def training_output_uri(self) -> str:
        return f"{self.run_prefix}training-output/"

    @property
    def report_prefix(self) -> str:
        return f"{self.run_prefix}reports/"

    @property
    def async_output_prefix(self) -> str:
        return f"{self.run_prefix}async/output/"

    @property
    def async_failure_prefix(self) -> str:
        return f"{self.run_prefix}async/failures/"

    @property
    def job_name(self) -> str:
        """Training job, model and endpoint-config name: the same for every try of this run."""
        return validate_sagemaker_name(run_job_name(self.pipeline_name, self.run.stamp), "job_name")

    @property
    def model_name(self) -> str:
        return self.job_name

    @property
    def endpoint_config_name(self) -> str:
        return self.job_name

    @property
    def image_uri(self) -> str:
        return algorithms.object_detection_image_uri(self.region)

    @property
    def sync_source(self) -> str:
        """The image source as the sync operator wants it: s3:// as is, local paths absolute."""
        if self.image_source.startswith("s3://"):
            return self.image_source
        return str(resolve_local_path(self.image_source))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view, for logs and the UI (no secrets live in the config)."""
        data = asdict(self)
        data["run"] = {
            "run_id": self.run.run_id,
            "stamp": self.run.stamp,
            "partition": self.run.partition,
        }
        return data


def run_job_name(pipeline_name: str, stamp: str) -> str:
    """A run's training job, model and endpoint-config name: ``<pipeline_name>-<stamp, T as ->``."""
    return f"{pipeline_name}-{stamp.replace('T', '-')}"


def labeling_job_name_of(job_name: str) -> str:
    """A run's Ground Truth labeling job name, from its job name."""
    return f"{job_name}-labels"


@dataclass(frozen=True)
class DerivedName:
    """One name the pipeline derives from its params, the limit AWS (or Label Studio) puts on it."""

    what: str  # e.g. "labeling job name (sagemaker LabelingJobName)"
    name: str
    limit: int
    field: str  # the param it derives from, named in the error
    unit: str = "characters"

    @property
    def size(self) -> int:
        return len(self.name.encode("utf-8")) if self.unit == "bytes" else len(self.name)


def _limit(service: str, shape: str) -> int:
    return AWS_NAME_LIMITS[(service, shape)]


def _name_templates(pipeline_name: str, stamp: str, endpoint_name: str) -> list[DerivedName]:
    """The SageMaker, CloudWatch and Auto Scaling names one run derives (the templates live in
    the modules that send them: deploy, scaling, async_inference)."""
    from sagemaker_vision.requests import VARIANT_NAME
    from sagemaker_vision.scaling import CHALLENGER, backlog_alarm_name, invocations_policy_name
    from sagemaker_vision.training_budget import retry_job_name

    endpoint_field = "endpoint_name" if endpoint_name != pipeline_name else "pipeline_name"
    job = run_job_name(pipeline_name, stamp)
    names = [
        DerivedName("training job name (sagemaker TrainingJobName)", job,
                    _limit("sagemaker", "TrainingJobName"), "pipeline_name"),
        # Checked before the provider's cut: a cut base loses the end of the run's stamp, and two
        # runs' retries could then look alike (training_budget.retry_job_name).
        DerivedName("training retry job name, job name + '-' + 10 digits (sagemaker TrainingJobName)",
                    retry_job_name(job, truncate=False), _limit("sagemaker", "TrainingJobName"), "pipeline_name"),
        DerivedName("labeling job name (sagemaker LabelingJobName)", labeling_job_name_of(job),
                    _limit("sagemaker", "LabelingJobName"), "pipeline_name"),
        DerivedName("model name (sagemaker ModelName)", job, _limit("sagemaker", "ModelName"), "pipeline_name"),
        DerivedName("endpoint config name (sagemaker EndpointConfigName)", job,
                    _limit("sagemaker", "EndpointConfigName"), "pipeline_name"),
        DerivedName("endpoint name (sagemaker EndpointName)", endpoint_name,
                    _limit("sagemaker", "EndpointName"), endpoint_field),
        DerivedName("async backlog alarm name (cloudwatch AlarmName)", backlog_alarm_name(endpoint_name),
                    _limit("cloudwatch", "AlarmName"), endpoint_field),
    ]
    from sagemaker_vision.deploy import rollback_alarm_names

    names += [DerivedName("rollback alarm name (cloudwatch AlarmName)", alarm, _limit("cloudwatch", "AlarmName"),
                          endpoint_field) for alarm in rollback_alarm_names(endpoint_name)]
    from sagemaker_vision.async_inference import backlog_policy_name, scale_from_zero_policy_name

    for variant in (VARIANT_NAME, CHALLENGER):
        for policy in (invocations_policy_name(endpoint_name, variant), backlog_policy_name(endpoint_name, variant),
                       scale_from_zero_policy_name(endpoint_name, variant)):
            names.append(DerivedName("scaling policy name (application-autoscaling PolicyName)", policy,
                                     _limit("application-autoscaling", "PolicyName"), endpoint_field))
    return names


# A stamp has a fixed width (STAMP_FORMAT, years 1000-9999), so any stamp measures the templates.
_SAMPLE_STAMP = datetime(2026, 1, 1, tzinfo=UTC).strftime(STAMP_FORMAT)


def _pipeline_name_budget() -> list[tuple[int, DerivedName]]:
    """(longest pipeline_name that fits, template) for each name that grows with pipeline_name,
    the endpoint name defaulting to it (measured with a one-letter name: each grows one for one)."""
    out = []
    for derived in _name_templates("a", _SAMPLE_STAMP, "a"):
        if derived.field == "pipeline_name":
            out.append((derived.limit - (derived.size - 1), derived))
    return out


def max_pipeline_name_length() -> int:
    """The longest ``pipeline_name`` whose derived names all fit: the Param's maxLength."""
    return min(n for n, _ in _pipeline_name_budget())


def _binding_limit() -> str:
    n, derived = min(_pipeline_name_budget(), key=lambda item: item[0])
    overhead = derived.size - 1
    return f"the {derived.what} adds {overhead} characters and may have {derived.limit}"


def derived_names(cfg: PipelineConfig) -> list[DerivedName]:
    """Every name and S3 key template of one run, with its limit."""
    names = _name_templates(cfg.pipeline_name, cfg.run.stamp, cfg.endpoint_name)
    if cfg.label_backend == "label_studio":
        lo, hi = LABEL_STUDIO_TITLE_LENGTH
        field_name = "label_studio_project" if cfg.label_studio.project_title != cfg.pipeline_name else "pipeline_name"
        names.append(DerivedName(f"Label Studio project title ({lo}-{hi} characters)", cfg.label_studio.project_title,
                                 hi, field_name))
    from sagemaker_vision.ground_truth import job_output_prefix
    from sagemaker_vision.inference import smoke_report_uri
    from sagemaker_vision.requests import model_artifact_uri
    from sagemaker_vision.training_budget import retry_job_name

    # The builders the properties use, without their checks: a bad name is named by the loop below.
    job = run_job_name(cfg.pipeline_name, cfg.run.stamp)
    keys = {
        "training artifact key": model_artifact_uri(cfg, retry_job_name(job)),
        "Ground Truth output key": job_output_prefix(cfg.ground_truth_output_prefix, labeling_job_name_of(job))
        + _GROUND_TRUTH_DEEPEST,
        "labeled manifest key": cfg.labeled_manifest_uri,
        "validation manifest key": cfg.validation_manifest_uri,
        "report key": smoke_report_uri(cfg),
        "async failure key": f"{cfg.async_failure_prefix}00000000-0000-0000-0000-000000000000-error.out",
    }
    for what, uri in keys.items():
        key = uri.removeprefix(f"s3://{cfg.bucket}/")
        # pipeline_name is bounded by the names above; the prefix is what can make a key too long.
        names.append(DerivedName(f"{what} (S3 object key)", key, S3_KEY_MAX_BYTES, "prefix", "bytes"))
    return names


def check_derived_names(cfg: PipelineConfig) -> None:
    """Refuse a config that derives a name AWS would refuse, naming the param, the name and its limit."""
    for derived in derived_names(cfg):
        if derived.size > derived.limit:
            raise ConfigError(derived.field, f"derives the {derived.what} {derived.name!r}, {derived.size} "
                              f"{derived.unit}; the limit is {derived.limit}")
        if derived.what.startswith("Label Studio") and derived.size < LABEL_STUDIO_TITLE_LENGTH[0]:
            raise ConfigError(derived.field, f"derives the {derived.what} {derived.name!r}, {derived.size} "
                              f"characters; Label Studio needs at least {LABEL_STUDIO_TITLE_LENGTH[0]}")
        if "(sagemaker " in derived.what and not SAGEMAKER_NAME_RE.match(derived.name):
            raise ConfigError(derived.field, f"derives the {derived.what} {derived.name!r}, which does not match "
                              f"{SAGEMAKER_NAME_RE.pattern}")


def _label_classes(value: Any, *, required: bool) -> tuple[str, ...]:
    """The classes annotators draw, in class-id order (Ground Truth allows at most 10)."""
    if value in (None, "", []):
        if required:
            raise ConfigError("label_classes", "is required for the ground_truth and label_studio backends")
        return ()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError("label_classes", f"must be a list of non-empty names, got {value!r}")
    names = tuple(v.strip() for v in value)
    if len(set(names)) != len(names):
        raise ConfigError("label_classes", f"has duplicates: {list(names)}")
    if len(names) > 10:
        raise ConfigError("label_classes", f"has {len(names)} names; bounding-box labeling allows at most 10")
    return names


def _instance_type(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not re.match(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", value):
        raise ConfigError(field_name, f"{value!r} is not a SageMaker instance type such as ml.g4dn.xlarge")
    return value


def connection_region(aws_conn_id: str | None) -> str:
    """The region of the AWS connection (no network call), falling back to the SDK default."""
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    region = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts").conn_region_name
    return region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def pipeline_macro():
    """The ``pipeline()`` Jinja macro: ``{{ pipeline().raw_prefix }}`` in templated fields."""
    import jinja2

    @jinja2.pass_context
    def pipeline(jinja_context) -> PipelineConfig:
        return PipelineConfig.from_context(jinja_context)

    return pipeline
