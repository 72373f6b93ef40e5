"""Ground Truth bounding-box labeling jobs, the pure part: the request, its field rules and the job's states.

The amazon provider has no labeling-job support; this module does the thinking for the operator
(:mod:`sagemaker_vision.operators.ground_truth`), the sensor and the trigger:

* :func:`labeling_job_request` builds and validates a ``CreateLabelingJob`` request for the
  built-in bounding-box task on a private or vendor work team before any AWS call (the public
  workforce, Amazon Mechanical Turk, closed on 2026-09-30); every error is a
  :class:`~sagemaker_vision.core.validate.ConfigError` naming the argument at fault. The inputs
  it names are made by :mod:`sagemaker_vision.core.labeling_inputs`.
* :func:`labeling_wait_budget_s` and :func:`waiter_attempts` say how long a wait must last.
* :func:`format_progress`, :func:`job_failure_message` and the state sets say where a job is.

No Airflow, no AWS calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sagemaker_vision.core.endpoint_waits import max_attempts
from sagemaker_vision.core.manifest import LABEL_ATTRIBUTE_RE, MAX_LABEL_ATTRIBUTE, label_attribute_problem
from sagemaker_vision.core.naming import job_output_prefix
from sagemaker_vision.core.validate import (
    MAX_WORKERS_PER_OBJECT,
    MTURK_CLOSED,
    ROLE_ARN_RE,
    WORKTEAM_ARN_RE,
    ConfigError,
    parse_s3_uri,
    validate_sagemaker_name,
)

# Accounts that own the built-in bounding-box Lambdas (PRE-BoundingBox, ACS-BoundingBox), per
# region: the list in the CreateLabelingJob API reference (HumanTaskConfig.PreHumanTaskLambdaArn
# and AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn). Ground Truth's built-in
# tasks exist only in these regions.
BOUNDING_BOX_LAMBDA_ACCOUNTS: dict[str, str] = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}
# The public workforce (Amazon Mechanical Turk) work team was owned by this account in every
# region. Mechanical Turk closed on 2026-09-30 (the notice on the MTurk API reference pages) and
# Ground Truth is closed to new customers (the note on every Ground Truth page, e.g.
# `sms-bounding-box`); existing customers keep private and vendor work teams. The ARN is kept
# only to recognise and refuse it.
PUBLIC_WORKFORCE_ACCOUNT = "394669845002"

# HumanTaskConfig limits (CreateLabelingJob API reference and botocore's model); the workers per
# object (1-9) are core/validate.MAX_WORKERS_PER_OBJECT.
TASK_TIME_LIMIT_S = (30, 28_800)  # image tasks: at most 8 hours
TASK_AVAILABILITY_MIN_S = 60
PRIVATE_TASK_AVAILABILITY_MAX_S = 2_592_000  # private and vendor work teams: 30 days
DEFAULT_TASK_AVAILABILITY_S = 86_400  # one day
# botocore's LabelingJobStoppingConditions: "Labeling jobs fail after 30 days with an appropriate
# client error message." Whatever the tasks' lifetimes, a job is over by then.
MAX_LABELING_JOB_S = 2_592_000
# Slack on top of the job's own limits for the last consolidation and the output manifest.
WAIT_MARGIN_S = 3_600
MAX_CONCURRENT_TASKS = 5_000  # 1000 by default; above it needs an AWS Support request
MAX_TASK_TITLE = 128
MAX_TASK_DESCRIPTION = 255
MAX_TASK_KEYWORDS = 5
TASK_KEYWORD_RE = re.compile(r"^[A-Za-z0-9]+( [A-Za-z0-9]+)*$")
MAX_TASK_KEYWORD = 30
# Label categories (LabelCategoryConfigS3Uri): at least one, each unique and at most 256
# characters; AWS takes up to 50 for a bounding-box job created through the API ("Input Data
# Quotas", Label Category Quotas). This package caps them at 10, the label_classes param's own
# limit (its maxItems), which is stricter than AWS.
MAX_BOUNDING_BOX_LABELS = 10
MAX_LABEL_LENGTH = 256
STOPPING_CONDITION_RANGES = {
    "MaxHumanLabeledObjectCount": (1, None),
    "MaxPercentageOfInputDatasetLabeled": (1, 100),
}
MAX_TAGS = 50

DEFAULT_TASK_TITLE = "Draw a box around each object"
DEFAULT_TASK_KEYWORDS = ("Images", "bounding boxes", "object detection")

TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})
FAILED_STATES = frozenset({"Failed", "Stopped"})
# Initializing and InProgress jobs are reused by a re-run; a Stopping job is on its way to Stopped.
REUSABLE_STATES = frozenset({"Initializing", "InProgress", "Completed"})
STOPPABLE_STATES = frozenset({"Initializing", "InProgress"})
COUNTER_NAMES = ("TotalLabeled", "HumanLabeled", "MachineLabeled", "Unlabeled", "FailedNonRetryableError")

DEFAULT_WAITER_DELAY = 60  # seconds between two DescribeLabelingJob calls


def bounding_box_lambda_arns(region: str) -> tuple[str, str]:
    """(PreHumanTaskLambdaArn, AnnotationConsolidationLambdaArn) of the built-in bounding-box task."""
    account = BOUNDING_BOX_LAMBDA_ACCOUNTS.get(region) if isinstance(region, str) else None
    if account is None:
        raise ConfigError(
            "region",
            f"{region!r} has no built-in Ground Truth bounding-box task; use one of "
            f"{', '.join(BOUNDING_BOX_LAMBDA_ACCOUNTS)}",
        )
    prefix = f"arn:aws:lambda:{region}:{account}:function:"
    return prefix + "PRE-BoundingBox", prefix + "ACS-BoundingBox"


def public_workteam_arn(region: str) -> str:
    """The retired public workforce (Amazon Mechanical Turk) work team of ``region``, to refuse it."""
    bounding_box_lambda_arns(region)  # same regions; raises naming `region`
    return f"arn:aws:sagemaker:{region}:{PUBLIC_WORKFORCE_ACCOUNT}:workteam/public-crowd/default"


def labeling_wait_budget_s(request: Mapping[str, Any]) -> int:
    """Seconds a wait for this job must be able to last before it gives up on a live job.

    A task stays on offer ``TaskAvailabilityLifetimeInSeconds``, and a worker who takes it at the
    last moment has ``TaskTimeLimitInSeconds`` more; tasks released in batches
    (``MaxConcurrentTaskCount``) each get their own lifetime, and AWS ends every job after 30
    days (botocore, ``LabelingJobStoppingConditions``). So the budget is the longer of the two,
    plus an hour for the last consolidation and the output manifest.
    """
    task = request.get("HumanTaskConfig") or {}
    lifetime = int(task.get("TaskAvailabilityLifetimeInSeconds") or PRIVATE_TASK_AVAILABILITY_MAX_S)
    time_limit = int(task.get("TaskTimeLimitInSeconds") or TASK_TIME_LIMIT_S[1])
    return max(lifetime + time_limit, MAX_LABELING_JOB_S) + WAIT_MARGIN_S


def waiter_attempts(budget_s: int, delay_s: int) -> int:
    """Status checks ``delay_s`` apart that cover ``budget_s`` (the one rule: ``endpoint_waits.max_attempts``)."""
    return max_attempts(int(budget_s), max(1, int(delay_s)))


def labeling_job_request(
    *,
    job_name: str,
    input_manifest_uri: str,
    output_path: str,
    role_arn: str,
    label_attribute: str,
    labels: Sequence[str],
    categories_uri: str,
    template_uri: str,
    region: str,
    task_description: str,
    workteam_arn: str | None = None,
    workers_per_object: int = 1,
    task_time_limit_s: int = 300,
    task_availability_lifetime_s: int | None = None,
    task_title: str = DEFAULT_TASK_TITLE,
    task_keywords: Sequence[str] = DEFAULT_TASK_KEYWORDS,
    max_concurrent_tasks: int | None = None,
    stopping_conditions: Mapping[str, int] | None = None,
    tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """``CreateLabelingJob`` for the built-in bounding-box task, validated field by field.

    ``workteam_arn`` is a private or vendor work team (its workers are paid by you, outside AWS,
    so the request carries no price). ``None``, an empty string and the public-crowd ARN are
    refused: Amazon Mechanical Turk closed on 2026-09-30 and Ground Truth takes no new customers.

    ``task_availability_lifetime_s=None`` means one day (at most 30 days for private and vendor
    teams). ``labels`` are the categories the file at ``categories_uri`` lists (see
    :func:`label_categories_document`); they are checked here so a bad list stops before any
    upload. Raises :class:`ConfigError` naming the argument.
    """
    validate_sagemaker_name(job_name, "job_name")
    _validate_label_attribute(label_attribute)
    validate_labels(labels)
    for field_name, uri in (
        ("input_manifest_uri", input_manifest_uri),
        ("output_path", output_path),
        ("categories_uri", categories_uri),
        ("template_uri", template_uri),
    ):
        validate_s3_uri(uri, field_name, allow_prefix=field_name == "output_path")
    if not isinstance(role_arn, str) or not ROLE_ARN_RE.match(role_arn) or len(role_arn) > 2048:
        raise ConfigError(
            "role_arn", f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )
    pre_lambda, acs_lambda = bounding_box_lambda_arns(region)

    validate_workteam_arn(workteam_arn, region)
    workers = _int_in_range(workers_per_object, "workers_per_object", 1, MAX_WORKERS_PER_OBJECT)
    time_limit = _int_in_range(task_time_limit_s, "task_time_limit_s", *TASK_TIME_LIMIT_S)
    if task_availability_lifetime_s is None:
        lifetime = DEFAULT_TASK_AVAILABILITY_S
    else:
        lifetime = _int_in_range(
            task_availability_lifetime_s, "task_availability_lifetime_s", TASK_AVAILABILITY_MIN_S,
            PRIVATE_TASK_AVAILABILITY_MAX_S, note="the maximum for a private or vendor work team (30 days)",
        )
    human_task: dict[str, Any] = {
        "WorkteamArn": workteam_arn,
        "UiConfig": {"UiTemplateS3Uri": template_uri},
        "PreHumanTaskLambdaArn": pre_lambda,
        "TaskKeywords": _validate_keywords(task_keywords),
        "TaskTitle": required_text(task_title, "task_title", MAX_TASK_TITLE),
        "TaskDescription": required_text(task_description, "task_description", MAX_TASK_DESCRIPTION),
        "NumberOfHumanWorkersPerDataObject": workers,
        "TaskTimeLimitInSeconds": time_limit,
        "TaskAvailabilityLifetimeInSeconds": lifetime,
        "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs_lambda},
    }
    if max_concurrent_tasks is not None:
        human_task["MaxConcurrentTaskCount"] = _int_in_range(
            max_concurrent_tasks, "max_concurrent_tasks", 1, MAX_CONCURRENT_TASKS,
            note="above 1000 needs an AWS Support request",
        )
    input_config: dict[str, Any] = {"DataSource": {"S3DataSource": {"ManifestS3Uri": input_manifest_uri}}}

    request: dict[str, Any] = {
        "LabelingJobName": job_name,
        "LabelAttributeName": label_attribute,
        "InputConfig": input_config,
        "OutputConfig": {"S3OutputPath": output_path},
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": categories_uri,
        "HumanTaskConfig": human_task,
    }
    if stopping_conditions:
        request["StoppingConditions"] = _validate_stopping_conditions(stopping_conditions)
    normalised_tags = _validate_tags(tags)
    if normalised_tags:
        request["Tags"] = normalised_tags
    return request


def output_manifest_uri(output_path: str, job_name: str) -> str:
    """Where Ground Truth writes the job's output manifest: ``<output>/<job>/manifests/output/``."""
    return f"{job_output_prefix(output_path, job_name)}manifests/output/output.manifest"


def format_progress(job: Mapping[str, Any]) -> str:
    """One line a person can follow: status and LabelCounters of a DescribeLabelingJob response."""
    counters = {name: int((job.get("LabelCounters") or {}).get(name, 0)) for name in COUNTER_NAMES}
    total = counters["TotalLabeled"] + counters["Unlabeled"] + counters["FailedNonRetryableError"]
    return (
        f"labeling job {job.get('LabelingJobName')} {job.get('LabelingJobStatus')}: "
        f"{counters['TotalLabeled']}/{total} labeled ({counters['HumanLabeled']} by workers, "
        f"{counters['MachineLabeled']} by machine), {counters['Unlabeled']} unlabeled, "
        f"{counters['FailedNonRetryableError']} failed"
    )


def job_failure_message(job: Mapping[str, Any]) -> str:
    """Why a Failed or Stopped job ended, and what to do about it."""
    name, status = job.get("LabelingJobName"), job.get("LabelingJobStatus")
    reason = job.get("FailureReason") or "no FailureReason given"
    return (
        f"Labeling job {name} is {status}: {reason}. A labeling job cannot be restarted and its name "
        "cannot be reused; fix the cause and change job_name to start a new job."
    )


# --------------------------------------------------------------------------------------------
# Validation helpers (each error names the argument)
# --------------------------------------------------------------------------------------------


def _validate_label_attribute(value: Any) -> None:
    """The one label-attribute rule (:func:`~sagemaker_vision.core.manifest.label_attribute_problem`)."""
    problem = label_attribute_problem(value)
    if problem:
        raise ConfigError("label_attribute", problem)


def validate_labels(labels: Any) -> None:
    if isinstance(labels, str | bytes) or not isinstance(labels, Sequence):
        raise ConfigError("labels", f"must be a list of label names, got {type(labels).__name__}")
    if not labels:
        raise ConfigError("labels", "lists no labels; a bounding-box job needs at least one")
    if len(labels) > MAX_BOUNDING_BOX_LABELS:
        raise ConfigError(
            "labels", f"has {len(labels)} labels; bounding-box jobs take at most {MAX_BOUNDING_BOX_LABELS}"
        )
    seen: set[str] = set()
    for index, label in enumerate(labels):
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"labels[{index}]", f"{label!r} is not a label name")
        if label != label.strip():
            raise ConfigError(f"labels[{index}]", f"{label!r} has leading or trailing spaces")
        if len(label) > MAX_LABEL_LENGTH:
            raise ConfigError(f"labels[{index}]", f"is {len(label)} characters; label categories take at most "
                              f"{MAX_LABEL_LENGTH}")
        if label in seen:
            raise ConfigError(f"labels[{index}]", f"{label!r} is listed twice; labels must be unique")
        seen.add(label)


def validate_s3_uri(uri: Any, field_name: str, allow_prefix: bool = False) -> None:
    _, key = parse_s3_uri(uri, field_name)
    if not allow_prefix and (not key or key.endswith("/")):
        raise ConfigError(field_name, f"{uri!r} names no object (s3://bucket/key)")
    if len(uri) > 1024:
        raise ConfigError(field_name, f"{uri!r} is longer than 1024 characters")


def validate_workteam_arn(workteam_arn: Any, region: str) -> str:
    """A private or vendor work team ARN in ``region``; ConfigError naming ``workteam_arn`` otherwise.

    No workteam (None or empty) and the public-crowd ARN are refused with :data:`MTURK_CLOSED`.
    """
    if workteam_arn is None or (isinstance(workteam_arn, str) and not workteam_arn.strip()):
        raise ConfigError("workteam_arn", f"is required: {MTURK_CLOSED}")
    match = WORKTEAM_ARN_RE.match(workteam_arn) if isinstance(workteam_arn, str) else None
    if match is None:
        raise ConfigError(
            "workteam_arn",
            f"{workteam_arn!r} is not a work team ARN "
            "(arn:aws:sagemaker:<region>:<account>:workteam/private-crowd/<team>)",
        )
    if match["kind"] == "public-crowd":
        raise ConfigError("workteam_arn", f"{workteam_arn} is the public workforce: {MTURK_CLOSED}")
    if match["region"] != region:
        raise ConfigError(
            "workteam_arn", f"{workteam_arn} is in {match['region']}, but the labeling job runs in {region}"
        )
    return workteam_arn


def _int_in_range(value: Any, field_name: str, low: int, high: int | None, note: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(field_name, f"must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"{low} to {high}"
        raise ConfigError(field_name, f"{value} is out of range: {bounds}" + (f" ({note})" if note else ""))
    return value


def required_text(value: Any, field_name: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(field_name, "is required")
    if len(value) > max_length:
        raise ConfigError(field_name, f"is {len(value)} characters; at most {max_length}")
    return value


def _validate_keywords(keywords: Any) -> list[str]:
    if isinstance(keywords, str | bytes) or not isinstance(keywords, Sequence):
        raise ConfigError("task_keywords", "must be a list of keywords")
    if not 1 <= len(keywords) <= MAX_TASK_KEYWORDS:
        raise ConfigError("task_keywords", f"has {len(keywords)} keywords; give 1 to {MAX_TASK_KEYWORDS}")
    for index, keyword in enumerate(keywords):
        if not isinstance(keyword, str) or len(keyword) > MAX_TASK_KEYWORD or not TASK_KEYWORD_RE.match(
            keyword
        ):
            raise ConfigError(
                f"task_keywords[{index}]",
                f"{keyword!r} must be 1-{MAX_TASK_KEYWORD} letters and digits, words separated by one space",
            )
    return list(keywords)


def _validate_stopping_conditions(conditions: Any) -> dict[str, int]:
    if not isinstance(conditions, Mapping):
        raise ConfigError("stopping_conditions", f"must be a dict, got {type(conditions).__name__}")
    unknown = sorted(set(conditions) - set(STOPPING_CONDITION_RANGES))
    if unknown:
        raise ConfigError(
            "stopping_conditions", f"unknown key(s) {unknown}; use {sorted(STOPPING_CONDITION_RANGES)}"
        )
    return {
        key: _int_in_range(value, f"stopping_conditions.{key}", *STOPPING_CONDITION_RANGES[key])
        for key, value in conditions.items()
    }


def _validate_tags(tags: Any) -> list[dict[str, str]]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
    elif isinstance(tags, Sequence) and not isinstance(tags, str | bytes):
        pairs = [dict(t) if isinstance(t, Mapping) else t for t in tags]
    else:
        raise ConfigError("tags", "must be a dict or a list of {'Key': ..., 'Value': ...}")
    if len(pairs) > MAX_TAGS:
        raise ConfigError("tags", f"has {len(pairs)} tags; at most {MAX_TAGS}")
    for index, pair in enumerate(pairs):
        if not isinstance(pair, dict) or set(pair) != {"Key", "Value"}:
            raise ConfigError(f"tags[{index}]", f"{pair!r} is not {{'Key': ..., 'Value': ...}}")
        key, value = pair["Key"], pair["Value"]
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or key.lower().startswith("aws:"):
            raise ConfigError(
                f"tags[{index}]", f"key {key!r} must be 1-128 characters, not starting with aws:"
            )
        if not isinstance(value, str) or len(value) > 256:
            raise ConfigError(
                f"tags[{index}]", f"value {value!r} for {key!r} must be a string of at most 256 characters"
            )
    return pairs


def manifest_uri_of(job_or_request: Mapping[str, Any]) -> str | None:
    source = job_or_request.get("InputConfig", {}).get("DataSource", {})
    return source.get("S3DataSource", {}).get("ManifestS3Uri")


def output_path_of(job_or_request: Mapping[str, Any]) -> str | None:
    return job_or_request.get("OutputConfig", {}).get("S3OutputPath")


def as_list(value: Any, field_name: str) -> list[Any]:
    """A rendered template field that must be a list (an XComArg resolves to one; a Jinja string does not)."""
    if isinstance(value, str | bytes):
        raise ConfigError(
            field_name,
            f"must be a list, got the string {value[:80]!r}; pass an XComArg or a list, or set "
            "render_template_as_native_obj=True on the DAG",
        )
    if value is None:
        raise ConfigError(field_name, "is required")
    return list(value)


__all__ = [
    "BOUNDING_BOX_LAMBDA_ACCOUNTS",
    "COUNTER_NAMES",
    "DEFAULT_TASK_KEYWORDS",
    "DEFAULT_TASK_TITLE",
    "DEFAULT_WAITER_DELAY",
    "FAILED_STATES",
    "LABEL_ATTRIBUTE_RE",
    "MAX_LABEL_ATTRIBUTE",
    "MAX_LABELING_JOB_S",
    "MTURK_CLOSED",
    "PUBLIC_WORKFORCE_ACCOUNT",
    "REUSABLE_STATES",
    "STOPPABLE_STATES",
    "TASK_TIME_LIMIT_S",
    "TERMINAL_STATES",
    "WAIT_MARGIN_S",
    "bounding_box_lambda_arns",
    "format_progress",
    "job_failure_message",
    "job_output_prefix",
    "labeling_job_request",
    "labeling_wait_budget_s",
    "output_manifest_uri",
    "public_workteam_arn",
    "validate_workteam_arn",
    "waiter_attempts",
    "as_list",
    "required_text",
    "validate_labels",
    "validate_s3_uri",
    "manifest_uri_of",
    "output_path_of",
]

# The waiter (waiters/sagemaker_vision.json) every wait on a labeling job uses: Completed -> success,
# Failed/Stopped -> failure, Initializing/InProgress/Stopping -> retry.
LABELING_JOB_COMPLETE = "labeling_job_complete"
# Status and counters, logged by the waiter on every attempt so a person can follow the job.
LABELING_JOB_STATUS_QUERIES = ["LabelingJobStatus", "LabelCounters"]

__all__ += ["LABELING_JOB_COMPLETE", "LABELING_JOB_STATUS_QUERIES"]
