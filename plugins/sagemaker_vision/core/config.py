"""The typed pipeline config: built from DAG params and the run, validated before any AWS call.

``PipelineConfig.from_params(params, run=..., region=...)`` is the only way tasks learn what to do
(``hooks.config.pipeline_config`` builds it from a task's context). It is pure and cheap (no
network), so every task rebuilds it instead of passing loose dicts through XCom, and templated
operator fields reach it through the ``pipeline()`` Jinja macro.

Every number and choice is read through its param's one spec (``core/params.py``), the spec the
trigger form is built from, so the form refuses what the config refuses. A key that names no
param is refused, naming the closest param. Every name and S3 location of a run derives from the
run itself (``core/naming.py``), so a rerun of any task lands on the same resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sagemaker_vision.core import algorithms, naming
from sagemaker_vision.core.manifest import label_attribute_problem
from sagemaker_vision.core.params import ParamSpec, check_known_keys, param_specs
from sagemaker_vision.core.validate import (
    BAD_IMAGE_POLICIES,
    MAX_LABEL_CLASSES,
    MTURK_CLOSED,
    WORKTEAM_ARN_RE,
    ConfigError,
    check_local_image_source,
    parse_s3_uri,
    resolve_local_path,
    validate_bucket,
    validate_instance_type,
    validate_prefix,
    validate_role_arn,
    validate_sagemaker_name,
)


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
        return _utc(self.data_interval_end if self.owns_interval and self.data_interval_end else self.run_after)

    @property
    def stamp(self) -> str:
        """Deterministic per run, unique across runs, to the second."""
        return self.interval_end.strftime(naming.STAMP_FORMAT)

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
    workers: int = 1  # load_workers: mapped tasks that split the concurrency and the requests


class _Reader:
    """Reads each param of one ``from_params`` call through its spec."""

    def __init__(self, params: Mapping[str, Any], specs: Mapping[str, ParamSpec]):
        self.params = params
        self.specs = specs

    def __call__(self, name: str) -> Any:
        return self.specs[name].read(self.params)


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
    bad_image_policy: str = BAD_IMAGE_POLICIES[0]

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, run: RunInfo, region: str) -> PipelineConfig:
        specs = param_specs()
        check_known_keys(params, specs)
        p = dict(params)
        read = _Reader(p, specs)
        pipeline_name = validate_sagemaker_name(p.get("pipeline_name"), "pipeline_name")
        # Every name derived from it must fit AWS's limits (checked in full once the config is built).
        longest = naming.max_pipeline_name_length()
        if len(pipeline_name) > longest:
            raise ConfigError("pipeline_name", f"{pipeline_name!r} is {len(pipeline_name)} characters; at most "
                              f"{longest} fit every name derived from it ({naming.binding_limit()})")
        if region not in algorithms.SUPPORTED_REGIONS:
            raise ConfigError(
                "region",
                f"{region!r} has no built-in object-detection image; use one of "
                f"{', '.join(sorted(algorithms.SUPPORTED_REGIONS))}",
            )
        role_arn = validate_role_arn(p.get("role_arn") or "", "role_arn")
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

        label_backend = read("label_backend")
        label_attribute = p.get("label_attribute") or ""
        problem = label_attribute_problem(label_attribute)
        if problem:
            raise ConfigError("label_attribute", problem)
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
        if workteam and not WORKTEAM_ARN_RE.match(workteam):
            raise ConfigError("gt_workteam_arn", f"{workteam!r} is not a SageMaker work team ARN")
        ground_truth = GroundTruthSpec(
            workteam_arn=workteam,
            workers_per_object=read("gt_workers_per_object"),
            task_description=(p.get("gt_task_description") or "").strip()
            or f"Draw a tight box around every {', '.join(label_classes) or 'object'} in the image.",
            task_time_limit_s=read("gt_task_time_limit_s"),
        )
        if label_backend == "ground_truth":
            if ground_truth.workteam_arn is None:
                raise ConfigError("gt_workteam_arn", f"is required for label_backend=ground_truth: {MTURK_CLOSED}")
            if "/public-crowd/" in ground_truth.workteam_arn:
                raise ConfigError("gt_workteam_arn", f"{ground_truth.workteam_arn} is the public workforce: "
                                  f"{MTURK_CLOSED}")
        label_studio = LabelStudioSpec(
            conn_id=(p.get("label_studio_conn_id") or "label_studio_default"),
            project_title=(p.get("label_studio_project") or "").strip() or pipeline_name,
            min_annotations=read("label_studio_min_annotations"),
            timeout_hours=read("label_studio_timeout_hours"),
            presign_aws_conn_id=(p.get("label_studio_presign_aws_conn_id") or "aws_label_studio_reader").strip(),
        )
        if label_backend == "label_studio" and label_studio.presign_aws_conn_id == "aws_default":
            raise ConfigError("label_studio_presign_aws_conn_id", "must not be aws_default: Label Studio gets "
                              "URLs signed by a read-only principal of its own (include/iam/"
                              "label-studio-reader-policy.json), never the pipeline's")
        validation_fraction = read("validation_fraction")

        hp = algorithms.ObjectDetectionHyperparameters(
            num_classes=1,  # the real values come from the manifest in prepare_manifests
            num_training_samples=1,
            base_network=read("base_network") if "base_network" in p else specs["base_network"].default,
            use_pretrained_model=1,
            epochs=read("epochs"),
            mini_batch_size=read("mini_batch_size"),
            learning_rate=read("learning_rate"),
            image_shape=read("image_shape"),
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
            instance_count=read("training_instance_count"),
            volume_size_gb=read("training_volume_gb"),
            max_runtime_hours=read("max_training_hours"),
            hyperparameters=hp,
        )

        endpoint_type = read("endpoint_type")
        endpoint = EndpointSpec(
            endpoint_type=endpoint_type,
            memory_size_mb=read("serverless_memory_mb"),
            max_concurrency=read("serverless_max_concurrency"),
            instance_type=validate_instance_type(p.get("inference_instance_type"), "inference_instance_type"),
            instance_count=read("inference_instance_count"),
        )
        endpoint_name = validate_sagemaker_name(p.get("endpoint_name") or pipeline_name, "endpoint_name")
        deploy = DeploySpec(
            min_map=read("min_map"),
            map_tolerance=read("map_tolerance"),
            deployment_policy=read("deployment_policy"),
            autoscaling_min=read("autoscaling_min_capacity"),
            autoscaling_max=read("autoscaling_max_capacity"),
            target_invocations_per_instance=read("target_invocations_per_instance"),
            challenger_weight=read("challenger_weight"),
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
            requests=read("load_test_requests"),
            concurrency=read("load_test_concurrency"),
            max_seconds=read("load_test_max_seconds"),
            slo_p95_ms=read("slo_p95_ms"),
            max_error_rate=read("max_error_rate"),
            workers=read("load_workers"),
        )
        if load_test.workers > load_test.concurrency:
            raise ConfigError("load_workers", f"{load_test.workers} workers cannot share load_test_concurrency "
                              f"{load_test.concurrency}: each worker needs at least one concurrent request")
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
            budget_usd=read("budget_usd"),
            run=run,
            bad_image_policy=specs["bad_image_policy"].read(
                {"bad_image_policy": p.get("bad_image_policy") or BAD_IMAGE_POLICIES[0]}),
        )
        naming.check_derived_names(cfg)
        return cfg

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
        return validate_sagemaker_name(naming.labeling_job_name_of(self.job_name), "labeling_job_name")

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
        return validate_sagemaker_name(naming.run_job_name(self.pipeline_name, self.run.stamp), "job_name")

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
    if len(names) > MAX_LABEL_CLASSES:
        raise ConfigError("label_classes", f"has {len(names)} names; bounding-box labeling allows at most 10")
    return names
