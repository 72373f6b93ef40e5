"""Ground Truth labeling jobs, which moto 5.2.5 does not have at all.

A job validates what SageMaker validates server-side (name rules, label attribute name rules,
readable input manifest and label category file, unique name, the retired public workforce),
stays InProgress for its emulated duration on the shared clock (``extension.py``; kind
``labeling``) with LabelCounters moving, then writes a real output manifest to
``<S3OutputPath>/<job>/manifests/output/output.manifest``. The "workers" are the sample data's
answer key: an image whose basename is in ``include/sample_data`` gets its true boxes; any other
readable image gets an empty annotation list; an unreadable one, or one in a bucket without the
CORS rule Ground Truth needs, counts as FailedNonRetryableError and is left out. Only
bounding-box tasks are emulated.

Rules and their sources:

* Public workforce: Amazon Mechanical Turk closed on 2026-09-30 (notice on the MTurk API
  reference pages); Ground Truth is closed to new customers (note on every Ground Truth page,
  e.g. ``sms-bounding-box``). A public-crowd ``WorkteamArn`` or a ``PublicWorkforceTaskPrice``
  is a ValidationException.
* CORS: "If you do not add a CORS configuration to the Amazon S3 buckets that contain your input
  data, labeling tasks for those input data objects will fail" (``sms-cors-update``; the rule is
  GET from origin ``*``). The objects of such a bucket fail (FailedNonRetryableError, the
  LabelCounters member for "objects that could not be labeled due to an error"); when no object
  at all could be labeled the job ends Failed, naming the bucket.
* Label category file (botocore, ``LabelCategoryConfigS3Uri``): ``{"document-version":
  "2018-11-28", "labels": [{"label": ...}, ...]}``, at least one label, each unique. Bounding
  box via the API: at most 50 labels, each at most 256 characters ("Input Data Quotas", Label
  Category Quotas).
* Input manifest: one JSON object per line; bounding-box jobs identify each image with
  ``"source-ref"`` (``sms-bounding-box``: "use "source-ref" to identify the location of each
  image file"), an ``s3://`` URI; at most 100,000 objects ("Input Data Quotas").
* Lifetime: "Labeling jobs fail after 30 days with an appropriate client error message"
  (botocore, ``LabelingJobStoppingConditions``).
"""

from __future__ import annotations

import io
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from moto.core.utils import utcnow
from moto.sagemaker.exceptions import (
    ResourceInUseException,
    ResourceNotFound,
    ValidationError,
)
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.utils import arn_formatter

from . import s3io
from .answer_key import AnswerKey
from .extension import Extension, state_of

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ATTRIBUTE_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}$")
# Built-in task types are recognised by their pre-annotation Lambda (PRE-<TaskType>).
BUILTIN_TASK_RE = re.compile(r":function:(?:[A-Za-z0-9-]*)PRE-([A-Za-z]+)$")
STOP_FRACTION = 0.25  # Stopping lasts this share of the timeline
CONFIDENCE = 0.95
PUBLIC_WORKFORCE_ACCOUNT = "394669845002"
LABEL_CATEGORIES_VERSION = "2018-11-28"
MAX_BOUNDING_BOX_LABELS = 50  # Input Data Quotas, Label Category Quotas, API column
MAX_LABEL_LENGTH = 256
MAX_MANIFEST_OBJECTS = 100_000  # Input Data Quotas: every type but semantic segmentation
# SageMaker Developer Guide, "Input data" (sms-data-input): the manifest is UTF-8, one JSON object per
# line delimited by \n or \r\n; "Each JSON object in the manifest file can be no larger than 100,000
# characters. No single attribute within an object can be larger than 20,000 characters. Attribute
# names can't begin with $ (dollar sign)."
MAX_MANIFEST_OBJECT_CHARS = 100_000
MAX_MANIFEST_ATTRIBUTE_CHARS = 20_000
MAX_JOB_SECONDS = 30 * 86_400  # LabelingJobStoppingConditions: jobs fail after 30 days
# Realistic emulated duration, a round estimate (AWS publishes none): five minutes for the job
# to start and consolidate, plus 30 s per image and worker for a person drawing a few boxes on
# a simple image (TaskTimeLimitInSeconds is only the upper bound). Override it per job name with
# Control.set_duration("labeling", seconds, name_prefix), e.g. days for a slow private team.
SETUP_SECONDS = 300.0
SECONDS_PER_OBJECT = 30.0


@dataclass
class LabelingJob:
    """One labeling job; ``describe()`` renders DescribeLabelingJob."""

    account_id: str
    partition: str
    name: str
    arn: str
    request: dict[str, Any]
    labels: list[str]
    items: list[dict[str, Any]]
    started: float
    duration: float  # real seconds at the time scale of creation
    creation_time: datetime
    emulated_duration: float = 0.0
    fail_reason: str | None = None
    status: str = "InProgress"
    failure_reason: str | None = None
    last_modified_time: datetime = field(default_factory=utcnow)
    counters: dict[str, int] = field(default_factory=dict)
    output: dict[str, str] | None = None
    stop_at: float | None = None
    stop_done: int = 0  # items labeled when the stop was requested
    tags: list[dict[str, str]] = field(default_factory=list)
    reference_code: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def attribute(self) -> str:
        return self.request["LabelAttributeName"]

    def describe(self) -> dict[str, Any]:
        """DescribeLabelingJob response."""
        r = self.request
        out = {
            "LabelingJobStatus": self.status,
            "LabelCounters": dict(self.counters),
            "FailureReason": self.failure_reason,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "JobReferenceCode": self.reference_code,
            "LabelingJobName": self.name,
            "LabelingJobArn": self.arn,
            "LabelAttributeName": self.attribute,
            "InputConfig": r["InputConfig"],
            "OutputConfig": r["OutputConfig"],
            "RoleArn": r["RoleArn"],
            "LabelCategoryConfigS3Uri": r.get("LabelCategoryConfigS3Uri"),
            "StoppingConditions": r.get("StoppingConditions"),
            "LabelingJobAlgorithmsConfig": r.get("LabelingJobAlgorithmsConfig"),
            "HumanTaskConfig": r["HumanTaskConfig"],
            "Tags": self.tags or None,
            "LabelingJobOutput": self.output,
        }
        return {k: v for k, v in out.items() if v is not None}

    def summary(self) -> dict[str, Any]:
        """One ListLabelingJobs entry."""
        task = self.request["HumanTaskConfig"]
        out = {
            "LabelingJobName": self.name,
            "LabelingJobArn": self.arn,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.last_modified_time,
            "LabelingJobStatus": self.status,
            "LabelCounters": dict(self.counters),
            "WorkteamArn": task.get("WorkteamArn"),
            "PreHumanTaskLambdaArn": task.get("PreHumanTaskLambdaArn"),
            "AnnotationConsolidationLambdaArn":
                (task.get("AnnotationConsolidationConfig") or {}).get("AnnotationConsolidationLambdaArn"),
            "FailureReason": self.failure_reason,
            "LabelingJobOutput": self.output,
            "InputConfig": self.request["InputConfig"],
        }
        return {k: v for k, v in out.items() if v is not None}


def _validation(message: str) -> ValidationError:
    return ValidationError(message)


def _task_type(request: dict[str, Any]) -> str | None:
    arn = (request.get("HumanTaskConfig") or {}).get("PreHumanTaskLambdaArn") or ""
    match = BUILTIN_TASK_RE.search(arn)
    return match.group(1) if match else None


def _check_workforce(request: dict[str, Any]) -> None:
    """The public workforce (Amazon Mechanical Turk) is gone: refuse it like any unknown team."""
    task = request.get("HumanTaskConfig") or {}
    arn = task.get("WorkteamArn") or ""
    if "/public-crowd/" in arn or f":{PUBLIC_WORKFORCE_ACCOUNT}:workteam/" in arn:
        raise _validation(
            f"WorkteamArn {arn} is the public workforce: Amazon Mechanical Turk closed on 2026-09-30 "
            "and Ground Truth is closed to new customers. Use a private or vendor work team."
        )
    if "PublicWorkforceTaskPrice" in task:
        raise _validation("PublicWorkforceTaskPrice applies only to the public workforce (Amazon Mechanical "
                          "Turk), which closed on 2026-09-30.")


def _read_labels(account: str, partition: str, uri: str) -> list[str]:
    data = s3io.read(account, partition, uri)
    if data is None:
        raise _validation(f"Cannot access the label category configuration file {uri}.")
    expected = ('expected {"document-version": "2018-11-28", "labels": [{"label": "label_1"}, ...]}')
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise _validation(f"The label category configuration file {uri} is not valid JSON: {expected}") from exc
    if not isinstance(doc, dict) or doc.get("document-version") != LABEL_CATEGORIES_VERSION:
        raise _validation(f"The label category configuration file {uri} must have \"document-version\": "
                          f"\"{LABEL_CATEGORIES_VERSION}\": {expected}")
    entries = doc.get("labels")
    if not isinstance(entries, list) or not entries:
        raise _validation(f"The label category configuration file {uri} lists no labels: {expected}")
    labels: list[str] = []
    for index, entry in enumerate(entries):
        label = entry.get("label") if isinstance(entry, dict) else None
        if not isinstance(label, str) or not label:
            raise _validation(f"The label category configuration file {uri}: labels[{index}] is not "
                              f"{{\"label\": <name>}}: {expected}")
        if len(label) > MAX_LABEL_LENGTH:
            raise _validation(f"The label category configuration file {uri}: labels[{index}] is longer than "
                              f"{MAX_LABEL_LENGTH} characters.")
        if label in labels:
            raise _validation(f"The label category configuration file {uri} has duplicate labels: "
                              f"labels[{index}] {label!r}; each label category must be unique.")
        labels.append(label)
    if len(labels) > MAX_BOUNDING_BOX_LABELS:
        raise _validation(f"The label category configuration file {uri} has {len(labels)} labels; a bounding "
                          f"box job takes at most {MAX_BOUNDING_BOX_LABELS}.")
    return labels


def _read_manifest(account: str, partition: str, uri: str) -> tuple[list[dict[str, Any]], str | None]:
    """Manifest lines, plus a FailureReason if the file is empty or malformed."""
    data = s3io.read(account, partition, uri)
    if data is None:
        raise _validation(f"Cannot access the input manifest file {uri}: the object does not exist.")
    items: list[dict[str, Any]] = []
    # Lines end at \n only (a \r before it is JSON whitespace): str.splitlines would also cut at
    # U+2028 and other characters a JSON string may hold.
    for lineno, raw_bytes in enumerate(data.split(b"\n"), start=1):
        try:
            raw = raw_bytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [], f"ClientError: {uri} line {lineno} is not UTF-8 ({exc.reason} at byte {exc.start})."
        if not raw.strip():
            continue
        if len(raw.rstrip("\r")) > MAX_MANIFEST_OBJECT_CHARS:
            return [], (f"ClientError: {uri} line {lineno} is {len(raw.rstrip(chr(13)))} characters; a manifest "
                        f"object can be no larger than {MAX_MANIFEST_OBJECT_CHARS} characters.")
        try:
            line = json.loads(raw)
        except ValueError:
            return [], f"ClientError: {uri} line {lineno} is not valid JSON."
        if not isinstance(line, dict):
            return [], f"ClientError: {uri} line {lineno} is not a JSON object."
        for name, value in line.items():
            if name.startswith("$"):
                return [], f"ClientError: {uri} line {lineno}: attribute name {name!r} begins with '$'."
            size = len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False))
            if size > MAX_MANIFEST_ATTRIBUTE_CHARS:
                return [], (f"ClientError: {uri} line {lineno}: attribute {name!r} is {size} characters; no "
                            f"attribute can be larger than {MAX_MANIFEST_ATTRIBUTE_CHARS} characters.")
        ref = line.get("source-ref")
        if not isinstance(ref, str) or not ref.startswith("s3://") or len(ref) <= 5:
            return [], (f"ClientError: {uri} line {lineno} has no \"source-ref\" s3:// URI; bounding box jobs "
                        "identify each image with source-ref.")
        items.append(line)
        if len(items) > MAX_MANIFEST_OBJECTS:
            return [], f"ClientError: {uri} has more than {MAX_MANIFEST_OBJECTS} data objects."
    if not items:
        return [], f"ClientError: the input manifest {uri} is empty."
    return items, None


def create(ext: Extension, backend: SageMakerModelBackend, request: dict[str, Any]) -> str:
    """CreateLabelingJob with SageMaker's server-side checks; returns the job ARN."""
    name = request["LabelingJobName"]
    attribute = request["LabelAttributeName"]
    account, partition = backend.account_id, backend.partition
    if not NAME_RE.match(name):
        raise _validation(
            f"1 validation error detected: Value '{name}' at 'labelingJobName' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {NAME_RE.pattern[1:-1]}"
        )
    if not ATTRIBUTE_RE.match(attribute):
        raise _validation(
            f"1 validation error detected: Value '{attribute}' at 'labelAttributeName' failed to satisfy "
            f"constraint: Member must satisfy regular expression pattern: {ATTRIBUTE_RE.pattern[1:-1]}"
        )
    if attribute.endswith("-metadata"):
        raise _validation(f"LabelAttributeName '{attribute}' must not end with '-metadata'.")
    task = _task_type(request)
    if attribute.endswith("-ref") != (task == "SemanticSegmentation"):
        raise _validation(
            f"LabelAttributeName '{attribute}': only semantic segmentation jobs use a name ending "
            "in '-ref', and they must."
        )
    if task is not None and task != "BoundingBox":
        raise _validation(f"local_aws emulator: only BoundingBox labeling jobs are emulated, not {task}.")
    _check_workforce(request)
    source = request["InputConfig"]["DataSource"]
    if "S3DataSource" not in source:
        raise _validation("local_aws emulator: streaming labeling jobs (SnsDataSource) are not emulated.")
    for path in (request["OutputConfig"]["S3OutputPath"], source["S3DataSource"]["ManifestS3Uri"]):
        try:
            s3io.split_uri(path)
        except s3io.S3PathError as exc:
            raise _validation(str(exc)) from exc
    with ext.lock:
        jobs = state_of(backend).labeling
        arn = arn_formatter("labeling-job", name, account, backend.region_name)
        if name in jobs:
            raise ResourceInUseException(
                f"Labeling job names must be unique within an AWS account and region; {arn} already exists."
            )
        category_uri = request.get("LabelCategoryConfigS3Uri")
        labels = (_read_labels(account, partition, category_uri) if category_uri
                  else list(ext.key().classes))
        items, bad_manifest = _read_manifest(account, partition, source["S3DataSource"]["ManifestS3Uri"])
        rule = ext.faults.take("labeling_failure", name)
        now = utcnow()
        workers = int((request.get("HumanTaskConfig") or {}).get("NumberOfHumanWorkersPerDataObject") or 1)
        emulated = ext.emulated_duration("labeling", name,
                                         SETUP_SECONDS + SECONDS_PER_OBJECT * len(items) * workers)
        fail_reason = bad_manifest or (rule.reason if rule else None)
        if emulated > MAX_JOB_SECONDS and not fail_reason:
            # The workers would need longer than AWS lets a job run: it fails at the 30-day mark.
            emulated, fail_reason = float(MAX_JOB_SECONDS), (
                "ClientError: The labeling job did not finish within 30 days, the longest a labeling job "
                "can run; the data objects not labeled by then were not labeled.")
        job = LabelingJob(
            account_id=account, partition=partition, name=name, arn=arn, request=request,
            labels=labels, items=items, started=ext.now(), duration=ext.real_seconds(emulated),
            creation_time=now, last_modified_time=now, emulated_duration=emulated,
            fail_reason=fail_reason,
            tags=list(request.get("Tags") or []),
        )
        _set_progress(job, 0)
        jobs[name] = job
        refresh(ext, backend, job)
        return arn


def describe(ext: Extension, backend: SageMakerModelBackend, name: str) -> dict[str, Any]:
    """DescribeLabelingJob."""
    with ext.lock:
        return _get(ext, backend, name).describe()


def stop(ext: Extension, backend: SageMakerModelBackend, name: str) -> None:
    """StopLabelingJob: InProgress -> Stopping -> Stopped with a partial output manifest."""
    with ext.lock:
        job = _get(ext, backend, name)
        if job.status in ("Stopping", "Stopped"):
            return
        if job.status != "InProgress":
            raise _validation(f"Labeling job {name} is {job.status} and cannot be stopped.")
        job.status = "Stopping"
        job.last_modified_time = _emulated_time(ext, job)
        job.stop_done = job.counters.get("HumanLabeled", 0)
        job.stop_at = ext.now() + STOP_FRACTION * job.duration
        refresh(ext, backend, job)


def list_jobs(ext: Extension, backend: SageMakerModelBackend, params: dict[str, Any]) -> dict[str, Any]:
    """ListLabelingJobs with its filters, sorting and index-based paging."""
    with ext.lock:
        refresh_all(ext, backend)
        jobs = list(state_of(backend).labeling.values())
    checks = [
        ("NameContains", lambda j, v: v in j.name),
        ("StatusEquals", lambda j, v: j.status == v),
        ("CreationTimeAfter", lambda j, v: j.creation_time > _naive(v)),
        ("CreationTimeBefore", lambda j, v: j.creation_time < _naive(v)),
        ("LastModifiedTimeAfter", lambda j, v: j.last_modified_time > _naive(v)),
        ("LastModifiedTimeBefore", lambda j, v: j.last_modified_time < _naive(v)),
    ]
    for param, check in checks:
        value = params.get(param)
        if value is not None:
            jobs = [j for j in jobs if check(j, value)]
    sort_by = params.get("SortBy") or "CreationTime"
    sort_key = {"Name": lambda j: j.name, "Status": lambda j: j.status}.get(
        sort_by, lambda j: j.creation_time)
    jobs.sort(key=sort_key, reverse=(params.get("SortOrder") or "Ascending") == "Descending")
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError as exc:
        raise _validation(f"Invalid pagination token {token!r}.") from exc
    limit = int(params.get("MaxResults") or 10)
    page = jobs[start : start + limit]
    result: dict[str, Any] = {"LabelingJobSummaryList": [j.summary() for j in page]}
    if start + limit < len(jobs):
        result["NextToken"] = str(start + limit)
    return result


def resource_for_arn(backend: SageMakerModelBackend, arn: str) -> LabelingJob | None:
    """The job behind a labeling-job ARN (for AddTags/ListTags/DeleteTags)."""
    name = arn.rsplit("/", 1)[-1]
    job = state_of(backend).labeling.get(name)
    return job if job is not None and job.arn == arn else None


def refresh_all(ext: Extension, backend: SageMakerModelBackend) -> None:
    """Bring every labeling job of ``backend`` up to date."""
    with ext.lock:
        for job in list(state_of(backend).labeling.values()):
            refresh(ext, backend, job)


def refresh(ext: Extension, backend: SageMakerModelBackend, job: LabelingJob) -> None:
    """Move ``job`` along its timeline to now. Idempotent; caller holds ext.lock."""
    if job.status in ("Completed", "Failed", "Stopped"):
        return
    now = ext.now()
    if job.status == "Stopping":
        if job.stop_at is not None and now >= job.stop_at:
            _finish(ext, job, "Stopped", job.items[: job.stop_done])
        return
    frac = (now - job.started) / job.duration if job.duration > 0 else float("inf")
    if frac < 1:
        done = min(len(job.items), math.floor(frac * len(job.items)))
        if done != job.counters.get("HumanLabeled"):
            _set_progress(job, done)
            job.last_modified_time = _emulated_time(ext, job)
        return
    if job.fail_reason:
        job.status, job.failure_reason = "Failed", job.fail_reason
        job.last_modified_time = job.creation_time + timedelta(seconds=job.emulated_duration)
        ext.counters["labeling_failed"] += 1
        return
    _finish(ext, job, "Completed", job.items)


def _get(ext: Extension, backend: SageMakerModelBackend, name: str) -> LabelingJob:
    job = state_of(backend).labeling.get(name)
    if job is None:
        raise ResourceNotFound(f"Could not find requested job with name {name}")
    refresh(ext, backend, job)
    return job


def _emulated_time(ext: Extension, job: LabelingJob) -> datetime:
    """The job's emulated "now": its creation plus the emulated seconds its timeline has run."""
    if job.duration <= 0:
        return job.creation_time + timedelta(seconds=job.emulated_duration)
    elapsed = (ext.now() - job.started) * job.emulated_duration / job.duration
    return job.creation_time + timedelta(seconds=elapsed)


def bucket_allows_ground_truth(account: str, partition: str, bucket: str) -> bool:
    """Whether ``bucket`` has a CORS rule granting GET from any origin (``sms-cors-update``)."""
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import s3_backends

    try:
        rules = s3_backends[account][partition].get_bucket(bucket).cors
    except MissingBucket:
        return False
    for rule in rules:
        methods = {str(m).upper() for m in (rule.allowed_methods or [])}
        if "GET" in methods and "*" in (rule.allowed_origins or []):
            return True
    return False


def _naive(value: Any) -> Any:
    # botocore parses request timestamps as aware datetimes; moto's are naive UTC.
    return value.replace(tzinfo=None) if isinstance(value, datetime) and value.tzinfo else value


def _set_progress(job: LabelingJob, done: int) -> None:
    job.counters = {"TotalLabeled": done, "HumanLabeled": done, "MachineLabeled": 0,
                    "FailedNonRetryableError": 0, "Unlabeled": len(job.items) - done}


def _finish(ext: Extension, job: LabelingJob, status: str, items: list[dict[str, Any]]) -> None:
    """Label ``items``, write the output manifest, and end the job in ``status``."""
    key = ext.key()
    out_lines, failed = [], 0
    cors: dict[str, bool] = {}
    no_cors: list[str] = []
    for item in items:
        bucket = s3io.split_uri(item["source-ref"])[0]
        if bucket not in cors:
            cors[bucket] = bucket_allows_ground_truth(job.account_id, job.partition, bucket)
            if not cors[bucket]:
                no_cors.append(bucket)
        line = _label(job, key, item) if cors[bucket] else None  # the worker UI cannot load the image
        if line is None:
            failed += 1
        else:
            out_lines.append(json.dumps(line, separators=(",", ":")))
    uri = s3io.join(job.request["OutputConfig"]["S3OutputPath"], job.name, "manifests", "output",
                    "output.manifest")
    end = job.emulated_duration if status == "Completed" else None
    job.last_modified_time = (job.creation_time + timedelta(seconds=end)) if end is not None \
        else _emulated_time(ext, job)
    if items and not out_lines and no_cors:
        job.counters = {"TotalLabeled": 0, "HumanLabeled": 0, "MachineLabeled": 0,
                        "FailedNonRetryableError": failed, "Unlabeled": len(job.items) - failed}
        job.status = "Failed"
        job.failure_reason = (
            f"ClientError: All {failed} data objects failed: the S3 bucket(s) {', '.join(no_cors)} holding the "
            "input images have no CORS configuration allowing GET from origin *, so the labeling tasks "
            "failed (see 'CORS Requirement for Input Image Data')."
        )
        ext.counters["labeling_failed"] += 1
        return
    try:
        s3io.write(job.account_id, job.partition, uri, ("\n".join(out_lines) + "\n").encode()
                   if out_lines else b"")
    except s3io.S3PathError as exc:
        job.status = "Failed"
        job.failure_reason = f"ClientError: Cannot write the output manifest {uri}: {exc}"
        ext.counters["labeling_failed"] += 1
        return
    labeled = len(out_lines)
    job.counters = {"TotalLabeled": labeled, "HumanLabeled": labeled, "MachineLabeled": 0,
                    "FailedNonRetryableError": failed, "Unlabeled": len(job.items) - labeled - failed}
    job.output = {"OutputDatasetS3Uri": uri}
    job.status = status
    ext.counters[f"labeling_{status.lower()}"] += 1


def _label(job: LabelingJob, key: AnswerKey, item: dict[str, Any]) -> dict[str, Any] | None:
    """One output line: the answer key's boxes in the job's class ids, or None if unreadable."""
    source = item.get("source-ref")
    if not isinstance(source, str):
        return None
    try:
        data = s3io.read(job.account_id, job.partition, source)
    except s3io.S3PathError:
        return None
    if data is None:
        return None  # a worker cannot label an object that is not there
    sample = key.by_basename.get(source.rsplit("/", 1)[-1])
    annotations: list[dict[str, int]] = []
    if sample is not None:
        width, height, depth = sample.width, sample.height, sample.depth
        for a in sample.annotations:
            label = key.class_name(a["class_id"])
            if label in job.labels:  # a worker can only pick a label the job offers
                annotations.append({**a, "class_id": job.labels.index(label)})
    else:
        size = _image_size(data)
        if size is None:
            return None
        width, height, depth = size
    out = dict(item)
    out[job.attribute] = {
        "image_size": [{"width": width, "height": height, "depth": depth}],
        "annotations": annotations,
    }
    out[f"{job.attribute}-metadata"] = {
        "objects": [{"confidence": CONFIDENCE} for _ in annotations],
        "class-map": {str(i): label for i, label in enumerate(job.labels)},
        "type": "groundtruth/object-detection",
        "human-annotated": "yes",
        "creation-date": utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "job-name": f"labeling-job/{job.name}",
    }
    return out


def _image_size(data: bytes) -> tuple[int, int, int] | None:
    """Width, height and channel count of an image, or None if it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height, len(img.getbands())
    except (UnidentifiedImageError, OSError):
        return None
