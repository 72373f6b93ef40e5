"""The emulator refuses a labeling job name over 63 characters, as SageMaker does (botocore's
LabelingJobName: max 63, pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}). Issue 9, finding 11c: a
47-character pipeline_name derived a 70-character labeling job name; PipelineConfig now refuses it
first (tests/unit/core/test_naming.py), and this is what AWS, and the emulator, would answer."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration


def test_create_labeling_job_with_a_70_character_name_is_a_validation_exception(emulator_env):
    sagemaker = boto3.client("sagemaker", endpoint_url=emulator_env.endpoint_url, region_name="us-east-1",
                             config=Config(parameter_validation=False, retries={"max_attempts": 1}))
    name = "p" * 47 + "-20261123-000000-labels"
    with pytest.raises(ClientError) as info:
        sagemaker.create_labeling_job(
            LabelingJobName=name, LabelAttributeName="bounding-box",
            InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://b/in.manifest"}}},
            OutputConfig={"S3OutputPath": "s3://b/out/"},
            RoleArn="arn:aws:iam::123456789012:role/sagemaker-vision-execution",
            HumanTaskConfig={
                "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
                "UiConfig": {"UiTemplateS3Uri": "s3://b/template.liquid"},
                "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox",
                "TaskTitle": "Boxes", "TaskDescription": "Draw boxes", "NumberOfHumanWorkersPerDataObject": 1,
                "TaskTimeLimitInSeconds": 300,
                "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn":
                                                  "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"},
            })
    error = info.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert (f"Value '{name}' at 'labelingJobName' failed to satisfy constraint: "
            "Member must have length less than or equal to 63") in error["Message"]
    jobs = sagemaker.list_labeling_jobs()["LabelingJobSummaryList"]
    assert name not in [j["LabelingJobName"] for j in jobs]  # refused before moto made anything
