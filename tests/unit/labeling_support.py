"""The Ground Truth labeling-job request the unit tests build, and botocore's check of it."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from sagemaker_vision.core import labeling_job

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/ground-truth"
PRIVATE_TEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/shapes-team"
PUBLIC_TEAM = "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"
LABELS = ["circle", "square", "triangle"]
OUTPUT_URI = "s3://gt-bucket/labels/out/shapes-1/manifests/output/output.manifest"


def sagemaker_model():
    return botocore.session.get_session().get_service_model("sagemaker")


def botocore_errors(request: dict[str, Any]) -> str:
    """botocore's client-side validation report for CreateLabelingJob ('' when valid)."""
    shape = sagemaker_model().operation_model("CreateLabelingJob").input_shape
    report = ParamValidator().validate(request, shape)
    return report.generate_report() if report.has_errors() else ""


def build(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_name": "shapes-1",
        "input_manifest_uri": "s3://gt-bucket/labels/in/input.manifest",
        "output_path": "s3://gt-bucket/labels/out/",
        "role_arn": ROLE,
        "label_attribute": "bounding-box",
        "labels": LABELS,
        "categories_uri": "s3://gt-bucket/labels/in/label-categories.json",
        "template_uri": "s3://gt-bucket/labels/in/bounding-box.liquid.html",
        "region": REGION,
        "task_description": "Draw a box around every circle, square and triangle",
        "workteam_arn": PRIVATE_TEAM,
    }
    args.update(overrides)
    return labeling_job.labeling_job_request(**args)


def describe_response(status: str, **extra: Any) -> dict[str, Any]:
    """A DescribeLabelingJob answer for the job ``build()`` creates, in ``status``."""
    return {
        "LabelingJobStatus": status,
        "LabelCounters": {"TotalLabeled": 1, "HumanLabeled": 1, "MachineLabeled": 0,
                          "FailedNonRetryableError": 0, "Unlabeled": 2},
        "CreationTime": "2026-11-25T00:00:00Z",
        "LastModifiedTime": "2026-11-25T00:00:00Z",
        "JobReferenceCode": "abc",
        "LabelingJobName": "shapes-1",
        "LabelingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/shapes-1",
        "LabelAttributeName": "bounding-box",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://gt-bucket/labels/in/input.manifest"}}},
        "OutputConfig": {"S3OutputPath": "s3://gt-bucket/labels/out/"},
        "RoleArn": ROLE,
        "HumanTaskConfig": build()["HumanTaskConfig"],
        **extra,
    }
