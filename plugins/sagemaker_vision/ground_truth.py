"""The SageMaker Ground Truth backend of the ``label`` stage: bounding-box labeling jobs.

The amazon provider has no labeling-job operator, sensor, trigger or waiter; this module adds
them in the provider's style, on top of pure functions that do the thinking:

* :func:`labeling_job_request` builds and validates a ``CreateLabelingJob`` request for the
  built-in bounding-box task on a private or vendor work team before any AWS call (the public
  workforce, Amazon Mechanical Turk, closed on 2026-09-30); every error is a
  :class:`~sagemaker_vision.config.ConfigError` naming the argument at fault.
* :func:`input_manifest_lines`, :func:`label_categories_document` and :func:`render_template`
  make the three inputs a job reads, and :func:`prepare_labeling_inputs` publishes them to S3.
* :func:`ensure_cors` gives every bucket holding input images the CORS rule Ground Truth's
  worker UI needs (without it the tasks fail), merged with the bucket's own rules.
* :class:`GroundTruthLabelingOperator` creates the job, or reuses the one of the same name,
  and waits (deferrable, with :class:`~sagemaker_vision.triggers.LabelingJobTrigger`) for the
  output manifest; :class:`GroundTruthLabelingJobSensor` waits for a job started elsewhere;
  :class:`SageMakerLabelingJobLink` is the console link both show.
"""

from __future__ import annotations

import html
import json
import re
import string
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import AwsBaseHookMixin, aws_template_fields
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait
from airflow.providers.common.compat.sdk import AirflowException, conf
from airflow.sdk import PokeReturnValue
from botocore.exceptions import ClientError

from sagemaker_vision import aws, s3io
from sagemaker_vision.config import (
    INCLUDE_DIR,
    ConfigError,
    parse_s3_uri,
    validate_sagemaker_name,
)
from sagemaker_vision.triggers import LABELING_JOB_STATUS_QUERIES, LabelingJobTrigger
from sagemaker_vision.waiters import LABELING_JOB_COMPLETE, LabelingJobHook

if TYPE_CHECKING:
    from airflow.sdk import Context

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
MTURK_CLOSED = (
    "the public workforce (Amazon Mechanical Turk) closed on 2026-09-30, and Ground Truth is closed "
    "to new customers. Give the ARN of a private or vendor work team your account already has "
    "(arn:aws:sagemaker:<region>:<account>:workteam/private-crowd/<team>), or label with "
    "label_backend=label_studio"
)

# The CORS rule Ground Truth's worker UI needs on every bucket holding input images, exactly as
# the Ground Truth guide gives it ("CORS Requirement for Input Image Data", sms-cors-update):
# without a CORS configuration "labeling tasks for those input data objects will fail". Jobs
# created through the API get none; the console adds it.
GROUND_TRUTH_CORS_RULE: dict[str, list[str]] = {
    "AllowedHeaders": [],
    "AllowedMethods": ["GET"],
    "AllowedOrigins": ["*"],
    "ExposeHeaders": [],
}

# HumanTaskConfig limits (CreateLabelingJob API reference and botocore's model).
MAX_WORKERS_PER_OBJECT = 9
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
LABEL_ATTRIBUTE_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
MAX_LABEL_ATTRIBUTE = 127
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-/]+$")
WORKTEAM_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"workteam/(?P<kind>private-crowd|vendor-crowd|public-crowd)/(?P<name>[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62})$"
)
STOPPING_CONDITION_RANGES = {
    "MaxHumanLabeledObjectCount": (1, None),
    "MaxPercentageOfInputDatasetLabeled": (1, 100),
}
MAX_TAGS = 50

LABEL_CATEGORIES_VERSION = "2018-11-28"
DEFAULT_TEMPLATE_PATH = INCLUDE_DIR / "templates" / "bounding_box.liquid.html"
# What a worker UI for the built-in bounding-box task cannot do without.
REQUIRED_TEMPLATE_SNIPPETS = (
    "<crowd-form",
    "<crowd-bounding-box",
    "{{ task.input.taskObject | grant_read_access }}",
    "{{ task.input.labels | to_json | escape }}",
)
# Object names under ``inputs_prefix``.
INPUT_MANIFEST_NAME = "input.manifest"
LABEL_CATEGORIES_NAME = "label-categories.json"
TEMPLATE_NAME = "bounding-box.liquid.html"

DEFAULT_TASK_TITLE = "Draw a box around each object"
DEFAULT_TASK_KEYWORDS = ("Images", "bounding boxes", "object detection")

TERMINAL_STATES = frozenset({"Completed", "Failed", "Stopped"})
FAILED_STATES = frozenset({"Failed", "Stopped"})
# Initializing and InProgress jobs are reused by a re-run; a Stopping job is on its way to Stopped.
REUSABLE_STATES = frozenset({"Initializing", "InProgress", "Completed"})
STOPPABLE_STATES = frozenset({"Initializing", "InProgress"})
COUNTER_NAMES = ("TotalLabeled", "HumanLabeled", "MachineLabeled", "Unlabeled", "FailedNonRetryableError")

DEFAULT_WAITER_DELAY = 60


# --------------------------------------------------------------------------------------------
# Pure builders
# --------------------------------------------------------------------------------------------


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
    """Status checks ``delay_s`` apart that cover ``budget_s`` (one definition: ``endpoint_waits.max_attempts``)."""
    from sagemaker_vision.endpoint_waits import max_attempts

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
    _validate_labels(labels)
    for field_name, uri in (
        ("input_manifest_uri", input_manifest_uri),
        ("output_path", output_path),
        ("categories_uri", categories_uri),
        ("template_uri", template_uri),
    ):
        _validate_s3_uri(uri, field_name, allow_prefix=field_name == "output_path")
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
        "TaskTitle": _text(task_title, "task_title", MAX_TASK_TITLE),
        "TaskDescription": _text(task_description, "task_description", MAX_TASK_DESCRIPTION),
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


def input_manifest_lines(image_uris: Iterable[str]) -> Iterator[str]:
    """One ``{"source-ref": <uri>}`` JSON line (no newline) per image; checks each URI as it goes.

    Raises :class:`ConfigError` naming ``image_uris[<index>]`` for a URI that is not an
    ``s3://bucket/key`` object or repeats an earlier one (a worker would label it twice), and
    ``image_uris`` when there is none.
    """
    if isinstance(image_uris, str | bytes):
        raise ConfigError("image_uris", "must be a list of s3:// image URIs, not a single string")
    seen: set[str] = set()
    for index, uri in enumerate(image_uris):
        field_name = f"image_uris[{index}]"
        _validate_s3_uri(uri, field_name)
        if uri in seen:
            raise ConfigError(field_name, f"{uri} is listed twice")
        seen.add(uri)
        yield json.dumps({"source-ref": uri}, separators=(",", ":"))
    if not seen:
        raise ConfigError("image_uris", "lists no images")


def label_categories_document(labels: Sequence[str]) -> dict[str, Any]:
    """The label category configuration file Ground Truth reads (``LabelCategoryConfigS3Uri``)."""
    _validate_labels(labels)
    return {"document-version": LABEL_CATEGORIES_VERSION, "labels": [{"label": label} for label in labels]}


def render_template(
    labels: Sequence[str], description: str, template_path: str | Path = DEFAULT_TEMPLATE_PATH
) -> str:
    """The worker UI with ``description`` as its header and ``labels`` in its instructions.

    The template's ``${header}`` and ``${label_items}`` are Python placeholders; the Liquid
    expressions (``{{ task.input.* }}``) are left for Ground Truth. Both inserted texts are
    HTML-escaped, and their braces turned into entities, so neither can break the markup or
    inject Liquid.
    """
    _validate_labels(labels)
    _text(description, "description", MAX_TASK_DESCRIPTION)
    path = Path(template_path)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("template_path", f"cannot read {path}: {exc.strerror or exc}") from None
    missing = [snippet for snippet in REQUIRED_TEMPLATE_SNIPPETS if snippet not in source]
    if missing:
        raise ConfigError("template_path", f"{path} is not a bounding-box worker UI: it lacks {missing}")
    items = "\n".join(f"        <li>{_escape(label)}</li>" for label in labels)
    try:
        return string.Template(source).substitute(header=_escape(description), label_items=items)
    except (KeyError, ValueError) as exc:
        raise ConfigError(
            "template_path",
            f"{path} has a placeholder other than ${{header}} and ${{label_items}} ({exc}); "
            "write a literal dollar sign as $$",
        ) from None


def labeling_input_uris(inputs_prefix: str) -> dict[str, str]:
    """Where :func:`prepare_labeling_inputs` puts the manifest, categories and template."""
    bucket, key = parse_s3_uri(inputs_prefix, "inputs_prefix")
    base = f"s3://{bucket}/{key.strip('/')}/" if key.strip("/") else f"s3://{bucket}/"
    return {
        "input_manifest_uri": base + INPUT_MANIFEST_NAME,
        "categories_uri": base + LABEL_CATEGORIES_NAME,
        "template_uri": base + TEMPLATE_NAME,
    }


def job_output_prefix(output_path: str, job_name: str) -> str:
    """Where Ground Truth writes a job's outputs: ``<OutputConfig.S3OutputPath>/<job>/``."""
    return f"{output_path.rstrip('/')}/{job_name}/"


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
# S3 side
# --------------------------------------------------------------------------------------------


def prepare_labeling_inputs(
    s3_client: Any,
    *,
    image_uris: Iterable[str] | None,
    labels: Sequence[str],
    description: str,
    inputs_prefix: str,
    template_path: str | Path = DEFAULT_TEMPLATE_PATH,
) -> dict[str, str]:
    """Publish the input manifest, label categories and worker UI under ``inputs_prefix``.

    Each is one S3 object written in one put, so a reader sees the old file or the new one,
    never half of one; the manifest is streamed to a temp file first and only uploaded if every
    image URI is valid. Returns ``{"input_manifest_uri", "categories_uri", "template_uri"}``;
    ``image_uris=None`` writes no manifest (the job reads an existing one) and leaves
    ``input_manifest_uri`` out.
    """
    uris = labeling_input_uris(inputs_prefix)
    categories = label_categories_document(labels)
    template = render_template(labels, description, template_path)
    if image_uris is None:
        del uris["input_manifest_uri"]
    else:
        manifest_uri = uris["input_manifest_uri"]
        with s3io.staged_upload(s3_client, manifest_uri, content_type="application/jsonl") as out:
            for line in input_manifest_lines(image_uris):
                out.write(line + "\n")
    s3io.put_json(s3_client, uris["categories_uri"], categories)
    s3io.put_bytes(s3_client, uris["template_uri"], template.encode("utf-8"), "text/html; charset=utf-8")
    return uris


def cors_rule_allows_ground_truth(rule: Mapping[str, Any]) -> bool:
    """Whether a bucket CORS rule already grants what :data:`GROUND_TRUTH_CORS_RULE` does.

    That is a GET from any origin (``*``). A rule for named origins only is not enough: the
    worker UI's origin is not documented, so only the documented rule counts.
    """
    methods = {str(m).upper() for m in rule.get("AllowedMethods") or []}
    return "GET" in methods and "*" in (rule.get("AllowedOrigins") or [])


def merged_cors_rules(existing: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    """The bucket's rules with Ground Truth's appended, or None when an equivalent rule exists.

    The existing rules come first and unchanged: S3 applies the first rule that matches a
    request, so the owner's rules keep deciding for their own origins.
    """
    rules = [dict(rule) for rule in existing]
    if any(cors_rule_allows_ground_truth(rule) for rule in rules):
        return None
    return [*rules, {key: list(value) for key, value in GROUND_TRUTH_CORS_RULE.items()}]


def image_buckets(image_uris: Iterable[str]) -> list[str]:
    """The distinct buckets of ``image_uris``, in first-seen order."""
    buckets: dict[str, None] = {}
    for index, uri in enumerate(image_uris):
        bucket, _ = parse_s3_uri(uri, f"image_uris[{index}]")
        buckets.setdefault(bucket, None)
    return list(buckets)


def ensure_cors(s3_client: Any, buckets: Iterable[str], log: Any = None) -> dict[str, str]:
    """Give each bucket the CORS rule Ground Truth needs, keeping every rule it already has.

    AWS: "If you do not add a CORS configuration to the Amazon S3 buckets that contain your
    input data, labeling tasks for those input data objects will fail" (Ground Truth guide,
    ``sms-cors-update``). ``PutBucketCors`` replaces the whole configuration, so the existing
    rules are read first and written back ahead of the new one. Returns ``{bucket: "present" |
    "added"}``. A bucket whose CORS cannot be read or written raises ConfigError naming it and
    the permission, before the job is created.
    """
    outcome: dict[str, str] = {}
    for bucket in buckets:
        try:
            existing = s3_client.get_bucket_cors(Bucket=bucket).get("CORSRules") or []
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchCORSConfiguration":
                raise ConfigError(
                    "image_uris", f"cannot read the CORS configuration of bucket {bucket} (needs "
                    f"s3:GetBucketCORS): {exc}"
                ) from exc
            existing = []
        rules = merged_cors_rules(existing)
        if rules is None:
            outcome[bucket] = "present"
            continue
        try:
            s3_client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
        except ClientError as exc:
            raise ConfigError(
                "image_uris", f"cannot add Ground Truth's CORS rule to bucket {bucket} (needs "
                f"s3:PutBucketCORS; without it the labeling tasks fail): {exc}"
            ) from exc
        outcome[bucket] = "added"
        if log is not None:
            log.info("Added Ground Truth's CORS rule (GET from *) to bucket %s, after its %d existing "
                     "rule(s)", bucket, len(existing))
    return outcome


# SageMaker Developer Guide, "Input data": "No single attribute within an object can be larger than
# 20,000 characters. Attribute names can't begin with $ (dollar sign)." (The 100,000 characters of
# a whole object are labels.MAX_LINE_CHARS.)
MAX_MANIFEST_ATTRIBUTE_CHARS = 20_000


def _manifest_refs(s3_client: Any, manifest_uri: str) -> Iterator[str]:
    """The ``source-ref`` of each line of an existing input manifest."""
    from sagemaker_vision.labels import LineError, parse_line

    for lineno, raw in enumerate(s3io.iter_lines(s3_client, manifest_uri, "input_manifest_uri"), start=1):
        try:  # the one manifest parser: UTF-8, one object per line, unique keys, a line cap
            rec = parse_line(raw, first=lineno == 1)
        except LineError as exc:
            field = f" {exc.field}:" if exc.field else ""
            raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}:{field} {exc.message}") from None
        if rec is None:
            continue
        for name, value in rec.items():  # Ground Truth's rules for a manifest object ("Input data")
            if name.startswith("$"):
                raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}: {name}: Ground Truth refuses "
                                                        "attribute names beginning with '$'")
            size = len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False))
            if size > MAX_MANIFEST_ATTRIBUTE_CHARS:
                raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}: {name}: {size} characters, over "
                                                        f"Ground Truth's {MAX_MANIFEST_ATTRIBUTE_CHARS} per attribute")
        ref = rec.get("source-ref")
        if not isinstance(ref, str):
            raise ConfigError("input_manifest_uri", f"{manifest_uri}:{lineno}: no source-ref")
        yield ref


# --------------------------------------------------------------------------------------------
# Airflow: link, operator, sensor
# --------------------------------------------------------------------------------------------


class SageMakerLabelingJobLink(BaseAwsLink):
    """The labeling job's page in the SageMaker Ground Truth console."""

    name = "SageMaker Labeling Job"
    key = "sagemaker_labeling_job"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/sagemaker/groundtruth?region={region_name}#/labeling-jobs/details/{job_name}"
    )


class _LabelingJobWaitMixin(AwsBaseHookMixin[LabelingJobHook]):
    """What the operator and the sensor share: the hook, describing, finishing and trigger events."""

    aws_hook_class = LabelingJobHook
    job_name: str
    log: Any  # BaseOperator's

    @property
    def _hook_parameters(self) -> dict[str, Any]:
        params = super()._hook_parameters
        if params["config"] is None:
            params["config"] = aws.botocore_config()
        return params

    def _describe(self) -> dict[str, Any]:
        job = self.hook.find_labeling_job(self.job_name)
        if job is None:
            raise AirflowException(
                f"Labeling job {self.job_name} does not exist in {self.hook.conn_region_name}"
            )
        return job

    def _finish(self, job: Mapping[str, Any]) -> str:
        """The output manifest URI of a Completed job; AirflowException with FailureReason otherwise."""
        self.log.info("%s", format_progress(job))
        status = job["LabelingJobStatus"]
        if status in FAILED_STATES:
            raise AirflowException(job_failure_message(job))
        if status != "Completed":
            raise AirflowException(f"Labeling job {self.job_name} is still {status}")
        uri = (job.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
        if not uri:
            raise AirflowException(
                f"Labeling job {self.job_name} is Completed but reports no OutputDatasetS3Uri"
            )
        self.log.info("Labeling job %s wrote its output manifest to %s", self.job_name, uri)
        return uri

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after :class:`LabelingJobTrigger`: the output manifest URI, or the reason it failed."""
        event = validate_execute_complete_event(event)
        job_name = event.get("job_name", self.job_name)
        if job_name != self.job_name:
            raise AirflowException(f"Trigger event is for labeling job {job_name}, not {self.job_name}")
        if event["status"] == "success":
            return self._finish(self._describe())
        if event["status"] == "timeout":
            raise AirflowException(
                f"Stopped waiting, but labeling job {job_name} is still running ({event.get('message')}). "
                "Clear or retry this task to resume waiting on the same job (it is reused, nothing is "
                "created again)"
            )
        # failed / stopped / error: the job's own state says best what happened.
        job = self.hook.find_labeling_job(job_name)
        if job is not None and job["LabelingJobStatus"] in FAILED_STATES:
            self._finish(job)  # raises with FailureReason
        raise AirflowException(
            f"Waiting for labeling job {job_name} failed ({event['status']}): {event.get('message')}"
        )

    def _trigger(self, waiter_delay: int, waiter_max_attempts: int) -> LabelingJobTrigger:
        return LabelingJobTrigger(
            job_name=self.job_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )

    def _persist_link(self, context: Context) -> None:
        SageMakerLabelingJobLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_name=self.job_name,
        )


class GroundTruthLabelingOperator(_LabelingJobWaitMixin, AwsBaseOperator[LabelingJobHook]):
    """Label images with bounding boxes in a SageMaker Ground Truth labeling job.

    Publishes the inputs (manifest from ``image_uris``, label categories, worker UI) under
    ``inputs_prefix``, creates the job and waits for it; returns the output manifest's S3 URI.

    Re-running is safe: a job named ``job_name`` that is Initializing, InProgress or Completed
    is reused (nothing is uploaded or created again), so a retry or a cleared task picks up the
    job it started. A Failed, Stopping or Stopped job cannot be restarted: the task fails with
    its ``FailureReason`` and you change ``job_name`` to try again.

    :param job_name: The labeling job's name, unique in the account and region (templated).
    :param role_arn: IAM role Ground Truth assumes to read inputs and write outputs (templated).
    :param output_path: S3 prefix the job writes under (templated).
    :param label_attribute: Key of the labels in the output manifest (templated).
    :param labels: The 1 to 10 box labels, in class-id order (templated).
    :param task_description: What workers read; also the header of the worker UI (templated).
    :param inputs_prefix: S3 prefix for the input manifest, categories and UI (templated).
    :param image_uris: The images to label, as s3:// URIs (templated); or give
        ``input_manifest_uri`` for an existing manifest of ``{"source-ref": ...}`` lines.
    :param input_manifest_uri: An existing input manifest, instead of ``image_uris`` (templated).
    :param workteam_arn: A private or vendor work team (templated). Required: the public
        workforce (Mechanical Turk) closed on 2026-09-30.
    :param workers_per_object: Workers who label each image, 1-9; their boxes are consolidated.
    :param task_time_limit_s: Seconds a worker has for one image (30 to 28,800).
    :param task_availability_lifetime_s: Seconds a task stays on offer; None for one day
        (at most 30 days).
    :param task_title: Title workers see (templated).
    :param task_keywords: Up to 5 keywords workers see with the task.
    :param max_concurrent_tasks: Images on offer at the same time (AWS default 1000).
    :param stopping_conditions: ``MaxHumanLabeledObjectCount`` and/or
        ``MaxPercentageOfInputDatasetLabeled``.
    :param tags: Tags for the job, as a dict or a list of ``{"Key", "Value"}``.
    :param template_path: The worker UI template; the bundled bounding-box UI by default.
    :param wait_for_completion: Wait for the job to end. If False, return the URI where the
        output manifest will appear (``<output_path>/<job>/manifests/output/output.manifest``).
    :param waiter_delay: Seconds between two status checks.
    :param waiter_max_attempts: Status checks before giving up waiting (the job keeps running);
        None covers the job's own limits (:func:`labeling_wait_budget_s`).
    :param ensure_bucket_cors: Before creating the job, give each bucket holding the images the
        CORS rule Ground Truth needs (:func:`ensure_cors`; needs ``s3:GetBucketCORS`` and
        ``s3:PutBucketCORS``). False if you manage the buckets' CORS yourself.
    :param deferrable: Wait in the triggerer instead of holding a worker slot.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "job_name",
        "role_arn",
        "output_path",
        "label_attribute",
        "labels",
        "task_description",
        "inputs_prefix",
        "image_uris",
        "input_manifest_uri",
        "workteam_arn",
        "task_title",
        "tags",
    )
    template_fields_renderers = {"labels": "json", "image_uris": "json", "tags": "json"}
    operator_extra_links = (SageMakerLabelingJobLink(),)
    ui_color = "#f0eede"

    def __init__(
        self,
        *,
        job_name: str,
        role_arn: str,
        output_path: str,
        label_attribute: str,
        labels: Sequence[str],
        task_description: str,
        inputs_prefix: str,
        image_uris: Sequence[str] | None = None,
        input_manifest_uri: str | None = None,
        workteam_arn: str | None = None,
        workers_per_object: int = 1,
        task_time_limit_s: int = 300,
        task_availability_lifetime_s: int | None = None,
        task_title: str = DEFAULT_TASK_TITLE,
        task_keywords: Sequence[str] = DEFAULT_TASK_KEYWORDS,
        max_concurrent_tasks: int | None = None,
        stopping_conditions: Mapping[str, int] | None = None,
        tags: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
        template_path: str | Path = DEFAULT_TEMPLATE_PATH,
        wait_for_completion: bool = True,
        waiter_delay: int = DEFAULT_WAITER_DELAY,
        waiter_max_attempts: int | None = None,
        ensure_bucket_cors: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if (image_uris is None) == (input_manifest_uri is None):
            raise ValueError(f"{self.task_id}: give exactly one of image_uris and input_manifest_uri")
        self.job_name = job_name
        self.role_arn = role_arn
        self.output_path = output_path
        self.label_attribute = label_attribute
        self.labels = labels
        self.task_description = task_description
        self.inputs_prefix = inputs_prefix
        self.image_uris = image_uris
        self.input_manifest_uri = input_manifest_uri
        self.workteam_arn = workteam_arn
        self.workers_per_object = workers_per_object
        self.task_time_limit_s = task_time_limit_s
        self.task_availability_lifetime_s = task_availability_lifetime_s
        self.task_title = task_title
        self.task_keywords = task_keywords
        self.max_concurrent_tasks = max_concurrent_tasks
        self.stopping_conditions = stopping_conditions
        self.tags = tags
        self.template_path = template_path
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.ensure_bucket_cors = ensure_bucket_cors
        self.deferrable = deferrable

    def build_request(self, region: str) -> dict[str, Any]:
        """The CreateLabelingJob request for ``region``; raises ConfigError before any AWS call."""
        uris = labeling_input_uris(self.inputs_prefix)
        return labeling_job_request(
            job_name=self.job_name,
            input_manifest_uri=self.input_manifest_uri or uris["input_manifest_uri"],
            output_path=self.output_path,
            role_arn=self.role_arn,
            label_attribute=self.label_attribute,
            labels=_as_list(self.labels, "labels"),
            categories_uri=uris["categories_uri"],
            template_uri=uris["template_uri"],
            region=region,
            task_description=self.task_description,
            workteam_arn=self.workteam_arn,
            workers_per_object=self.workers_per_object,
            task_time_limit_s=self.task_time_limit_s,
            task_availability_lifetime_s=self.task_availability_lifetime_s,
            task_title=self.task_title,
            task_keywords=_as_list(self.task_keywords, "task_keywords"),
            max_concurrent_tasks=self.max_concurrent_tasks,
            stopping_conditions=self.stopping_conditions,
            tags=self.tags,
        )

    def _attempts(self, job_or_request: Mapping[str, Any]) -> int:
        """Status checks the wait may make: as given, or enough to cover the job's own limits."""
        if self.waiter_max_attempts is not None:
            return int(self.waiter_max_attempts)
        return waiter_attempts(labeling_wait_budget_s(job_or_request), self.waiter_delay)

    def execute(self, context: Context) -> str:
        request = self.build_request(self.hook.conn_region_name)
        job = self.hook.find_labeling_job(self.job_name)
        if job is None:
            job = self._create(request)
            self.log.info("%s", format_progress(job))
        else:
            self._check_reusable(job, request)
            self.log.info("Reusing %s (created %s)", format_progress(job), job.get("CreationTime"))
        self._persist_link(context)

        if job["LabelingJobStatus"] in TERMINAL_STATES:
            return self._finish(job)
        if not self.wait_for_completion:
            uri = output_manifest_uri(self.output_path, self.job_name)
            self.log.info("Not waiting; the output manifest will be written to %s", uri)
            return uri
        if self.deferrable:
            self.defer(
                trigger=self._trigger(self.waiter_delay, self._attempts(job)),
                method_name="execute_complete",
            )
        return self._wait(self._attempts(job))

    def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        labels = _as_list(self.labels, "labels")
        image_uris = None if self.input_manifest_uri else _as_list(self.image_uris, "image_uris")
        uris = prepare_labeling_inputs(
            aws.client("s3", self.aws_conn_id, self.region_name),
            image_uris=image_uris,
            labels=labels,
            description=self.task_description,
            inputs_prefix=self.inputs_prefix,
            template_path=self.template_path,
        )
        self.log.info("Published the labeling inputs %s; labels %s", ", ".join(uris.values()), labels)
        s3 = aws.client("s3", self.aws_conn_id, self.region_name)
        # An existing input manifest is checked line by line before the paid CreateLabelingJob.
        image_refs = image_uris if image_uris is not None else list(_manifest_refs(s3, self.input_manifest_uri))
        if self.ensure_bucket_cors:
            ensure_cors(s3, image_buckets(image_refs), log=self.log)
        try:
            arn = self.hook.conn.create_labeling_job(**request)["LabelingJobArn"]
            self.log.info("Created labeling job %s", arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceInUse":
                raise
            # Created meanwhile by another try of this task: reuse it like any existing job.
            self.log.info("Labeling job %s was created meanwhile; reusing it", self.job_name)
            job = self._describe()
            self._check_reusable(job, request)
            return job
        return self._describe()

    def _check_reusable(self, job: Mapping[str, Any], request: Mapping[str, Any]) -> None:
        """Refuse a job of this name that cannot finish, or that labels something else."""
        status = job["LabelingJobStatus"]
        if status in FAILED_STATES:
            raise AirflowException(job_failure_message(job))
        if status not in REUSABLE_STATES:
            raise AirflowException(
                f"Labeling job {self.job_name} is {status} and will end Stopped; it cannot be reused: "
                "change job_name to start a new job."
            )
        differences = [
            f"{name}: the existing job has {mine!r}, this task asks for {theirs!r}"
            for name, mine, theirs in (
                ("label_attribute", job.get("LabelAttributeName"), request["LabelAttributeName"]),
                ("input_manifest_uri", _manifest_uri(job), _manifest_uri(request)),
                ("output_path", _output_path(job), _output_path(request)),
            )
            if mine != theirs
        ]
        if differences:
            raise AirflowException(
                f"A labeling job named {self.job_name} already exists but labels something else; "
                "change job_name or the arguments. " + "; ".join(differences)
            )

    def _wait(self, attempts: int) -> str:
        """Wait on the worker with the sync waiter, logging status and LabelCounters each time."""
        try:
            wait(
                waiter=self.hook.get_waiter(LABELING_JOB_COMPLETE),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=attempts,
                args={"LabelingJobName": self.job_name},
                failure_message=f"Labeling job {self.job_name} did not complete",
                status_message=f"Labeling job {self.job_name} not done yet",
                status_args=LABELING_JOB_STATUS_QUERIES,
            )
        except WaiterTerminalFailure:
            pass  # Failed or Stopped: _finish raises with the FailureReason
        except WaiterMaxAttemptsError:
            raise AirflowException(
                f"Stopped waiting, but the job is still running: {format_progress(self._describe())} "
                f"after {attempts} checks {self.waiter_delay} s apart. Clear or retry this task to "
                f"resume waiting on the same job ({self.job_name} is reused, nothing is created again)"
            ) from None
        return self._finish(self._describe())

    def on_kill(self) -> None:
        """Stop the job if it is still running: a killed task should not leave workers paid for it."""
        job = self.hook.find_labeling_job(self.job_name)
        if job is None or job["LabelingJobStatus"] not in STOPPABLE_STATES:
            return
        self.log.info("Stopping %s", format_progress(job))
        self.hook.stop_labeling_job(self.job_name)


class GroundTruthLabelingJobSensor(_LabelingJobWaitMixin, AwsBaseSensor[LabelingJobHook]):
    """Wait for a Ground Truth labeling job started elsewhere; return its output manifest URI.

    Succeeds when the job is Completed (the output manifest URI goes to XCom), fails with the
    job's ``FailureReason`` when it is Failed or Stopped.

    :param job_name: The labeling job to wait for (templated).
    :param deferrable: Wait in the triggerer between checks instead of holding a worker slot;
        ``poke_interval`` is then the trigger's delay and ``timeout`` bounds its attempts.
    :param timeout: Seconds to wait; by default as long as any labeling job can run (30 days, plus
        a last task's time limit and an hour), not the sensors' 7 days.
    """

    template_fields: Sequence[str] = aws_template_fields("job_name")
    operator_extra_links = (SageMakerLabelingJobLink(),)
    ui_color = "#f0eede"

    def __init__(
        self,
        *,
        job_name: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ):
        kwargs.setdefault("timeout", MAX_LABELING_JOB_S + TASK_TIME_LIMIT_S[1] + WAIT_MARGIN_S)
        super().__init__(**kwargs)
        self.job_name = job_name
        self.deferrable = deferrable

    def execute(self, context: Context) -> Any:
        self._persist_link(context)
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if done:
            return done.xcom_value
        delay = max(1, int(self.poke_interval))
        self.defer(
            trigger=self._trigger(delay, max(1, int(self.timeout // delay))),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> PokeReturnValue:
        job = self._describe()
        self.log.info("%s", format_progress(job))
        if job["LabelingJobStatus"] in TERMINAL_STATES:
            return PokeReturnValue(is_done=True, xcom_value=self._finish(job))
        return PokeReturnValue(is_done=False)


# --------------------------------------------------------------------------------------------
# Validation helpers (each error names the argument)
# --------------------------------------------------------------------------------------------


def _validate_label_attribute(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError("label_attribute", "is required")
    if len(value) > MAX_LABEL_ATTRIBUTE or not LABEL_ATTRIBUTE_RE.match(value):
        raise ConfigError(
            "label_attribute",
            f"{value!r} must be 1-{MAX_LABEL_ATTRIBUTE} letters, digits and inner hyphens",
        )
    if value.endswith("-metadata"):
        raise ConfigError("label_attribute", f"{value!r} may not end in -metadata (Ground Truth adds it)")
    if value.endswith("-ref"):
        raise ConfigError(
            "label_attribute", f"{value!r} may not end in -ref (only semantic-segmentation labels do)"
        )


def _validate_labels(labels: Any) -> None:
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


def _validate_s3_uri(uri: Any, field_name: str, allow_prefix: bool = False) -> None:
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


def _text(value: Any, field_name: str, max_length: int) -> str:
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


def _manifest_uri(job_or_request: Mapping[str, Any]) -> str | None:
    source = job_or_request.get("InputConfig", {}).get("DataSource", {})
    return source.get("S3DataSource", {}).get("ManifestS3Uri")


def _output_path(job_or_request: Mapping[str, Any]) -> str | None:
    return job_or_request.get("OutputConfig", {}).get("S3OutputPath")


def _escape(text: str) -> str:
    """HTML-escape, and make braces entities so Liquid sees no tags in user text."""
    return html.escape(text, quote=True).replace("{", "&#123;").replace("}", "&#125;")


def _as_list(value: Any, field_name: str) -> list[Any]:
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
    "DEFAULT_TEMPLATE_PATH",
    "GroundTruthLabelingJobSensor",
    "GroundTruthLabelingOperator",
    "LabelingJobHook",
    "GROUND_TRUTH_CORS_RULE",
    "MTURK_CLOSED",
    "PUBLIC_WORKFORCE_ACCOUNT",
    "SageMakerLabelingJobLink",
    "bounding_box_lambda_arns",
    "format_progress",
    "input_manifest_lines",
    "label_categories_document",
    "labeling_input_uris",
    "labeling_job_request",
    "output_manifest_uri",
    "prepare_labeling_inputs",
    "ensure_cors",
    "labeling_wait_budget_s",
    "validate_workteam_arn",
    "public_workteam_arn",
    "render_template",
]
