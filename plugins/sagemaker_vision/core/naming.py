"""Every name and key template the pipeline derives, and AWS's limits on them. No Airflow, no AWS.

Every name and S3 location of a run derives from the run itself (``run_after`` and the data
interval, never ``ts_nodash`` alone, which is ``None`` for manual runs), so a rerun of any task
lands on the same resources. The templates of other stages (alarms, scaling policies, the
training retry, Ground Truth's output, the smoke report, the model artifact) live here too, so
:func:`check_derived_names` measures exactly what those stages send, and importing them costs
no Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sagemaker_vision.core.validate import S3_KEY_MAX_BYTES, SAGEMAKER_NAME_RE, ConfigError

if TYPE_CHECKING:
    from sagemaker_vision.core.config import PipelineConfig

STAMP_FORMAT = "%Y%m%dT%H%M%S"
# AWS's length limits on every name the package derives, as the botocore models state them
# (``max`` of the shape; tests/unit/core/test_naming.py reads the models and checks each number).
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
# Label Studio's settings: PROJECT_TITLE_MIN_LEN = 3, PROJECT_TITLE_MAX_LEN = 50 (Project.title).
LABEL_STUDIO_TITLE_LENGTH = (3, 50)
# The longest key the pipeline or SageMaker writes under each derived prefix (the part after the
# prefix): Ground Truth's per-worker responses and the training artifact are the deepest.
_GROUND_TRUTH_DEEPEST = "annotations/worker-response/iteration-1/0/2026-12-31_23:59:59.json"

# The tags on everything the package creates (core/requests.tags); teardown refuses resources without them.
PACKAGE_TAG = "managed-by"
PACKAGE_TAG_VALUE = "sagemaker-vision"
# On an endpoint the load test may drive (the load-test DAG refuses others unless forced).
LOAD_TEST_TAG = "load-test-allowed"
# Production variant names: a single-model endpoint's, and the two of an A/B test.
VARIANT_NAME = "AllTraffic"
CHAMPION = "Champion"
CHALLENGER = "Challenger"

# The provider suffixes a taken job name with "-" and 10 digits of time.time() (_get_unique_name),
# truncating the base so the result stays within its own max_name_len = 63 (TrainingJobName's max).
RETRY_SUFFIX_DIGITS = 10
_MAX_NAME = 63
# The longest base a retry's name keeps whole; config's pipeline_name cap keeps every run's job
# within it (check_derived_names), and the training operator refuses a longer one.
RETRY_BASE_MAX = _MAX_NAME - RETRY_SUFFIX_DIGITS - 1


# ---- names of one run -------------------------------------------------------------------------
def run_job_name(pipeline_name: str, stamp: str) -> str:
    """A run's training job, model and endpoint-config name: ``<pipeline_name>-<stamp, T as ->``."""
    return f"{pipeline_name}-{stamp.replace('T', '-')}"


def labeling_job_name_of(job_name: str) -> str:
    """A run's Ground Truth labeling job name, from its job name."""
    return f"{job_name}-labels"


def retry_job_name(base: str, timestamp: str = "0" * RETRY_SUFFIX_DIGITS, *, truncate: bool = True) -> str:
    """The provider's name for a retry of ``base``: ``<base>-<10 digits>``, the base cut so the name
    fits 63 characters (``truncate=False``: the name before that cut, which config checks fits)."""
    if len(timestamp) != RETRY_SUFFIX_DIGITS or not timestamp.isdigit():
        raise ValueError(f"a retry timestamp is {RETRY_SUFFIX_DIGITS} digits, got {timestamp!r}")
    stem = base[:RETRY_BASE_MAX] if truncate else base
    return f"{stem}-{timestamp}"


def model_artifact_uri(cfg: PipelineConfig, job_name: str | None = None) -> str:
    """Where SageMaker writes the trained model: <output>/<job>/output/model.tar.gz (the run's job
    unless ``job_name`` names a retry of it)."""
    return f"{cfg.training_output_uri}{job_name or cfg.job_name}/output/model.tar.gz"


def smoke_report_uri(cfg: PipelineConfig) -> str:
    """Where the smoke test writes its result: ``smoke_test.json`` beside the load-test report."""
    return f"{cfg.report_prefix}smoke_test.json"


def job_output_prefix(output_path: str, job_name: str) -> str:
    """Where Ground Truth writes a job's outputs: ``<OutputConfig.S3OutputPath>/<job>/``."""
    return f"{output_path.rstrip('/')}/{job_name}/"


# ---- names of an endpoint ---------------------------------------------------------------------
def rollback_alarm_names(endpoint_name: str) -> list[str]:
    """The two alarms ``ensure_rollback_alarms`` keeps for ``endpoint_name``."""
    return [f"{endpoint_name}-5xx", f"{endpoint_name}-latency"]


def backlog_alarm_name(endpoint_name: str) -> str:
    """The CloudWatch alarm that scales an async endpoint out from zero (``core.async_inference``).

    Defined here, not there, so that teardown can name it without importing Airflow operators.
    """
    return f"{endpoint_name}-has-backlog-without-capacity"


def invocations_policy_name(endpoint_name: str, variant_name: str) -> str:
    return f"{endpoint_name}-{variant_name}-invocations-per-instance"


def backlog_policy_name(endpoint_name: str, variant_name: str = VARIANT_NAME) -> str:
    return f"{endpoint_name}-{variant_name}-backlog-per-instance"


def scale_from_zero_policy_name(endpoint_name: str, variant_name: str = VARIANT_NAME) -> str:
    return f"{endpoint_name}-{variant_name}-has-backlog-without-capacity"


# ---- the limits -------------------------------------------------------------------------------
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
    """The SageMaker, CloudWatch and Auto Scaling names one run derives."""
    endpoint_field = "endpoint_name" if endpoint_name != pipeline_name else "pipeline_name"
    job = run_job_name(pipeline_name, stamp)
    names = [
        DerivedName("training job name (sagemaker TrainingJobName)", job,
                    _limit("sagemaker", "TrainingJobName"), "pipeline_name"),
        # Checked before the provider's cut: a cut base loses the end of the run's stamp, and two
        # runs' retries could then look alike (retry_job_name).
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
    names += [DerivedName("rollback alarm name (cloudwatch AlarmName)", alarm, _limit("cloudwatch", "AlarmName"),
                          endpoint_field) for alarm in rollback_alarm_names(endpoint_name)]
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


def binding_limit() -> str:
    """Which derived name caps ``pipeline_name``, for the error message."""
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


# ---- the right-size DAG's temporary endpoints -------------------------------------------------
def right_size_name(endpoint_name: str, memory_mb: int, token: str) -> str:
    """A temporary endpoint (and its config) of ``<pipeline>.right_size``: ``<endpoint>-rs<MB>-<token>``.

    The endpoint's part is cut so the name fits SageMaker's 63 characters (EndpointName and
    EndpointConfigName alike) with the size and the run's token whole, so two sizes or two runs never
    collide; the cut never leaves a trailing hyphen, which the name pattern refuses.
    """
    suffix = f"-rs{int(memory_mb)}-{token}"
    limit = min(_limit("sagemaker", "EndpointName"), _limit("sagemaker", "EndpointConfigName"))
    if not token or len(suffix) >= limit or not SAGEMAKER_NAME_RE.match(token):
        raise ValueError(f"right-size token {token!r} must be a short SageMaker-name fragment")
    stem = endpoint_name[:limit - len(suffix)].rstrip("-")
    name = f"{stem}{suffix}"
    if not SAGEMAKER_NAME_RE.match(name):
        raise ValueError(f"right-size name {name!r} does not match {SAGEMAKER_NAME_RE.pattern}")
    return name
