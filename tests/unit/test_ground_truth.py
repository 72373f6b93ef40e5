"""Ground Truth backend: request builder, inputs, waiter, trigger, operator and sensor logic.

No AWS: the operator and sensor run against a mocked hook; S3 uploads go to moto in-process.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError, WaiterError
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from botocore.waiter import WaiterModel

from sagemaker_vision import ground_truth as gt
from sagemaker_vision.config import ConfigError
from sagemaker_vision.triggers import LabelingJobTrigger
from sagemaker_vision.waiters import (
    LABELING_JOB_COMPLETE,
    LABELING_JOB_WAITERS,
    LabelingJobHook,
    load_waiter_config,
)

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
    return gt.labeling_job_request(**args)


# -- request builder ---------------------------------------------------------------------------
def test_private_team_request_has_every_field_and_no_worker_price():
    assert build(tags={"pipeline": "shapes"}, stopping_conditions={"MaxHumanLabeledObjectCount": 500},
                 max_concurrent_tasks=200, workers_per_object=3) == {
        "LabelingJobName": "shapes-1",
        "LabelAttributeName": "bounding-box",
        "InputConfig": {
            "DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://gt-bucket/labels/in/input.manifest"}},
        },
        "OutputConfig": {"S3OutputPath": "s3://gt-bucket/labels/out/"},
        "RoleArn": ROLE,
        "LabelCategoryConfigS3Uri": "s3://gt-bucket/labels/in/label-categories.json",
        "HumanTaskConfig": {
            "WorkteamArn": PRIVATE_TEAM,
            "UiConfig": {"UiTemplateS3Uri": "s3://gt-bucket/labels/in/bounding-box.liquid.html"},
            "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:PRE-BoundingBox",
            "TaskKeywords": ["Images", "bounding boxes", "object detection"],
            "TaskTitle": "Draw a box around each object",
            "TaskDescription": "Draw a box around every circle, square and triangle",
            "NumberOfHumanWorkersPerDataObject": 3,
            "TaskTimeLimitInSeconds": 300,
            "TaskAvailabilityLifetimeInSeconds": 86_400,
            "MaxConcurrentTaskCount": 200,
            "AnnotationConsolidationConfig": {
                "AnnotationConsolidationLambdaArn":
                    "arn:aws:lambda:us-east-1:432418664414:function:ACS-BoundingBox"
            },
        },
        "StoppingConditions": {"MaxHumanLabeledObjectCount": 500},
        "Tags": [{"Key": "pipeline", "Value": "shapes"}],
    }


@pytest.mark.parametrize("workteam", [None, "", "  ", PUBLIC_TEAM])
def test_the_public_workforce_is_refused_saying_mturk_closed_and_what_to_use(workteam):
    """Defect 4: None / empty used to mean Mechanical Turk; it closed on 2026-09-30."""
    with pytest.raises(ConfigError) as err:
        build(workteam_arn=workteam)
    message = str(err.value)
    assert err.value.field == "workteam_arn"
    assert "closed on 2026-09-30" in message
    assert "private or vendor work team" in message and "label_backend=label_studio" in message


def test_the_operator_refuses_the_public_workforce_before_any_aws_call():
    op = gt.GroundTruthLabelingOperator(
        task_id="label", job_name="shapes-1", role_arn=ROLE, output_path="s3://gt-bucket/out/",
        label_attribute="bounding-box", labels=LABELS, task_description="Draw boxes",
        inputs_prefix="s3://gt-bucket/in/", image_uris=["s3://gt-bucket/raw/a.jpg"],
    )
    hook = mock.MagicMock()
    hook.conn_region_name = REGION
    with mock.patch.object(type(op), "hook", new_callable=mock.PropertyMock, return_value=hook), \
            mock.patch("sagemaker_vision.aws.client") as client:
        with pytest.raises(ConfigError, match="closed on 2026-09-30"):
            op.execute({"ti": mock.MagicMock()})
    hook.find_labeling_job.assert_not_called()
    hook.conn.create_labeling_job.assert_not_called()
    client.assert_not_called()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"task_availability_lifetime_s": 2_592_000},
        {"workteam_arn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/vendor-crowd/acme-labels"},
        {"stopping_conditions": {"MaxHumanLabeledObjectCount": 1, "MaxPercentageOfInputDatasetLabeled": 100},
         "tags": [{"Key": "a", "Value": ""}], "max_concurrent_tasks": 5000, "workers_per_object": 9,
         "task_time_limit_s": 28_800,
         "task_keywords": ["x"] * 5, "task_title": "t" * 128, "task_description": "d" * 255},
        {"region": "ap-southeast-2", "task_time_limit_s": 30, "task_availability_lifetime_s": 60,
         "workteam_arn": PRIVATE_TEAM.replace(REGION, "ap-southeast-2")},
    ],
)
def test_requests_pass_botocore_validation(overrides):
    assert botocore_errors(build(**overrides)) == ""


def test_lambda_accounts_match_the_botocore_api_reference():
    """The table is the one in the API reference; botocore ships that text with the model."""
    doc = sagemaker_model().shape_for("HumanTaskConfig").members["PreHumanTaskLambdaArn"].documentation
    documented = dict(re.findall(r"arn:aws:lambda:([a-z0-9-]+):(\d{12}):function:PRE-BoundingBox", doc))
    assert documented == gt.BOUNDING_BOX_LAMBDA_ACCOUNTS


@pytest.mark.parametrize("region", sorted(gt.BOUNDING_BOX_LAMBDA_ACCOUNTS))
def test_every_supported_region_builds_its_own_arns(region):
    account = gt.BOUNDING_BOX_LAMBDA_ACCOUNTS[region]
    task = build(region=region, workteam_arn=PRIVATE_TEAM.replace(REGION, region))["HumanTaskConfig"]
    assert task["PreHumanTaskLambdaArn"] == f"arn:aws:lambda:{region}:{account}:function:PRE-BoundingBox"
    assert task["AnnotationConsolidationConfig"]["AnnotationConsolidationLambdaArn"] == (
        f"arn:aws:lambda:{region}:{account}:function:ACS-BoundingBox"
    )
    assert botocore_errors(build(region=region, workteam_arn=PRIVATE_TEAM.replace(REGION, region))) == ""


@pytest.mark.parametrize("region", ["eu-north-1", "us-west-1", "cn-north-1", "", None, "US-EAST-1"])
def test_unknown_region_is_an_error_naming_region(region):
    with pytest.raises(ConfigError) as err:
        build(region=region)
    assert err.value.field == "region"
    assert "us-east-1" in str(err.value)  # lists the regions that work


BAD_INPUTS = [
    ({"job_name": "shapes_1"}, "job_name"),
    ({"job_name": "-shapes"}, "job_name"),
    ({"job_name": "a" * 64}, "job_name"),
    ({"job_name": ""}, "job_name"),
    ({"label_attribute": "bounding-box-metadata"}, "label_attribute"),
    ({"label_attribute": "bounding-box-ref"}, "label_attribute"),
    ({"label_attribute": "bounding_box"}, "label_attribute"),
    ({"label_attribute": "b" * 128}, "label_attribute"),
    ({"label_attribute": ""}, "label_attribute"),
    ({"labels": []}, "labels"),
    ({"labels": "circle"}, "labels"),
    ({"labels": [f"l{i}" for i in range(11)]}, "labels"),
    ({"labels": ["circle", "circle"]}, "labels[1]"),
    ({"labels": ["circle", " square"]}, "labels[1]"),
    ({"labels": ["circle", ""]}, "labels[1]"),
    ({"labels": ["circle", 3]}, "labels[1]"),
    ({"labels": ["circle", "x" * 257]}, "labels[1]"),
    ({"input_manifest_uri": "gt-bucket/in.manifest"}, "input_manifest_uri"),
    ({"input_manifest_uri": "s3://gt-bucket/in/"}, "input_manifest_uri"),
    ({"output_path": "https://example.com/out"}, "output_path"),
    ({"categories_uri": "s3://Bad_Bucket/c.json"}, "categories_uri"),
    ({"template_uri": None}, "template_uri"),
    ({"role_arn": "ground-truth"}, "role_arn"),
    ({"role_arn": "arn:aws:iam::123:role/x"}, "role_arn"),
    ({"workteam_arn": "private-crowd/shapes-team"}, "workteam_arn"),
    ({"workteam_arn": ""}, "workteam_arn"),
    ({"workteam_arn": PRIVATE_TEAM.replace("us-east-1", "us-west-2")}, "workteam_arn"),
    ({"workteam_arn": PUBLIC_TEAM.replace("394669845002", "123456789012")}, "workteam_arn"),
    ({"workers_per_object": 0}, "workers_per_object"),
    ({"workers_per_object": 10}, "workers_per_object"),
    ({"workers_per_object": 2.0}, "workers_per_object"),
    ({"workers_per_object": True}, "workers_per_object"),
    ({"task_time_limit_s": 29}, "task_time_limit_s"),
    ({"task_time_limit_s": 28_801}, "task_time_limit_s"),
    ({"task_availability_lifetime_s": 59}, "task_availability_lifetime_s"),
    ({"task_availability_lifetime_s": 2_592_001}, "task_availability_lifetime_s"),
    ({"task_title": ""}, "task_title"),
    ({"task_title": "t" * 129}, "task_title"),
    ({"task_description": "   "}, "task_description"),
    ({"task_description": "d" * 256}, "task_description"),
    ({"task_keywords": []}, "task_keywords"),
    ({"task_keywords": ["a"] * 6}, "task_keywords"),
    ({"task_keywords": "images"}, "task_keywords"),
    ({"task_keywords": ["images", "bounding-boxes"]}, "task_keywords[1]"),
    ({"task_keywords": ["k" * 31]}, "task_keywords[0]"),
    ({"max_concurrent_tasks": 0}, "max_concurrent_tasks"),
    ({"max_concurrent_tasks": 5001}, "max_concurrent_tasks"),
    ({"stopping_conditions": {"MaxRuntime": 3}}, "stopping_conditions"),
    ({"stopping_conditions": [1]}, "stopping_conditions"),
    ({"stopping_conditions": {"MaxHumanLabeledObjectCount": 0}},
     "stopping_conditions.MaxHumanLabeledObjectCount"),
    ({"stopping_conditions": {"MaxPercentageOfInputDatasetLabeled": 101}},
     "stopping_conditions.MaxPercentageOfInputDatasetLabeled"),
    ({"tags": "a=b"}, "tags"),
    ({"tags": {f"k{i}": "v" for i in range(51)}}, "tags"),
    ({"tags": {"aws:owner": "me"}}, "tags[0]"),
    ({"tags": [{"Key": "a"}]}, "tags[0]"),
    ({"tags": {"a": "v" * 257}}, "tags[0]"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUTS, ids=[f for _, f in BAD_INPUTS])
def test_bad_input_is_an_error_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        build(**overrides)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_default_lifetime_is_one_day():
    assert build()["HumanTaskConfig"]["TaskAvailabilityLifetimeInSeconds"] == 86_400
    explicit = build(task_availability_lifetime_s=600)
    assert explicit["HumanTaskConfig"]["TaskAvailabilityLifetimeInSeconds"] == 600


# -- inputs ------------------------------------------------------------------------------------
def test_input_manifest_lines_one_source_ref_per_image():
    uris = ["s3://gt-bucket/raw/a.jpg", "s3://gt-bucket/raw/sub dir/b.png"]
    lines = list(gt.input_manifest_lines(iter(uris)))
    assert [json.loads(line) for line in lines] == [{"source-ref": u} for u in uris]
    assert all("\n" not in line for line in lines)


@pytest.mark.parametrize(
    ("uris", "field"),
    [
        ([], "image_uris"),
        ("s3://gt-bucket/raw/a.jpg", "image_uris"),
        (["s3://gt-bucket/raw/a.jpg", "s3://gt-bucket/raw/a.jpg"], "image_uris[1]"),
        (["s3://gt-bucket/raw/a.jpg", "/tmp/b.jpg"], "image_uris[1]"),
        (["s3://gt-bucket/raw/"], "image_uris[0]"),
    ],
)
def test_input_manifest_lines_reject_bad_uris(uris, field):
    with pytest.raises(ConfigError) as err:
        list(gt.input_manifest_lines(uris))
    assert err.value.field == field


def test_label_categories_document():
    assert gt.label_categories_document(LABELS) == {
        "document-version": "2018-11-28",
        "labels": [{"label": "circle"}, {"label": "square"}, {"label": "triangle"}],
    }
    with pytest.raises(ConfigError, match=r"^labels\[1\]"):
        gt.label_categories_document(["a", "a"])


def test_render_template_fills_header_and_labels_and_keeps_liquid():
    page = gt.render_template(LABELS, "Box every shape")
    assert '<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>' in page
    assert '<crowd-bounding-box\n    name="boundingBox"' in page
    assert 'src="{{ task.input.taskObject | grant_read_access }}"' in page
    assert 'labels="{{ task.input.labels | to_json | escape }}"' in page
    assert 'header="Box every shape"' in page
    for label in LABELS:
        assert f"<li>{label}</li>" in page
    assert "${" not in page and "$header" not in page
    # Only Ground Truth's own Liquid is left: the two expressions above.
    assert re.findall(r"\{\{.*?\}\}|\{%.*?%\}", page) == [
        "{{ task.input.taskObject | grant_read_access }}",
        "{{ task.input.labels | to_json | escape }}",
    ]


def test_render_template_escapes_html_and_liquid_in_user_text():
    page = gt.render_template(['say "hi"', "<b>{{ x }}</b>"], 'Boxes & {% include "x" %}')
    assert 'header="Boxes &amp; &#123;% include &quot;x&quot; %&#125;"' in page
    assert "<li>say &quot;hi&quot;</li>" in page
    assert "<li>&lt;b&gt;&#123;&#123; x &#125;&#125;&lt;/b&gt;</li>" in page
    assert "{{ x }}" not in page and "{% include" not in page


def test_render_template_rejects_a_template_that_is_not_a_bounding_box_ui(tmp_path):
    plain = tmp_path / "plain.html"
    plain.write_text("<crowd-form>${header}${label_items}</crowd-form>")
    with pytest.raises(ConfigError, match=r"^template_path: .*grant_read_access"):
        gt.render_template(LABELS, "d", plain)
    with pytest.raises(ConfigError, match=r"^template_path: cannot read"):
        gt.render_template(LABELS, "d", tmp_path / "missing.html")
    stray = tmp_path / "stray.html"
    stray.write_text(gt.DEFAULT_TEMPLATE_PATH.read_text() + "<p>costs $5 per ${price}</p>")
    with pytest.raises(ConfigError, match=r"^template_path: .*placeholder"):
        gt.render_template(LABELS, "d", stray)
    with pytest.raises(ConfigError, match=r"^description"):
        gt.render_template(LABELS, "")


def test_labeling_input_uris_and_output_manifest_uri():
    with_slash = gt.labeling_input_uris("s3://gt-bucket/labels/in/")
    assert with_slash == gt.labeling_input_uris("s3://gt-bucket/labels/in") == {
        "input_manifest_uri": "s3://gt-bucket/labels/in/input.manifest",
        "categories_uri": "s3://gt-bucket/labels/in/label-categories.json",
        "template_uri": "s3://gt-bucket/labels/in/bounding-box.liquid.html",
    }
    assert gt.output_manifest_uri("s3://gt-bucket/labels/out/", "shapes-1") == OUTPUT_URI
    assert gt.output_manifest_uri("s3://gt-bucket/labels/out", "shapes-1") == OUTPUT_URI
    with pytest.raises(ConfigError, match="^inputs_prefix"):
        gt.labeling_input_uris("gt-bucket/labels")


@pytest.fixture
def s3():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket="gt-bucket")
        yield client


def _read(s3_client, uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_prepare_labeling_inputs_uploads_three_files(s3):
    images = [f"s3://gt-bucket/raw/shape_{i:03d}.jpg" for i in range(3)]
    uris = gt.prepare_labeling_inputs(
        s3, image_uris=images, labels=LABELS, description="Box the shapes", inputs_prefix="s3://gt-bucket/labels/in"
    )
    assert uris == gt.labeling_input_uris("s3://gt-bucket/labels/in")
    manifest = _read(s3, uris["input_manifest_uri"]).decode().splitlines()
    assert [json.loads(line) for line in manifest] == [{"source-ref": u} for u in images]
    assert json.loads(_read(s3, uris["categories_uri"])) == gt.label_categories_document(LABELS)
    assert _read(s3, uris["template_uri"]).decode() == gt.render_template(LABELS, "Box the shapes")


def test_prepare_labeling_inputs_uploads_nothing_when_an_image_uri_is_bad(s3):
    with pytest.raises(ConfigError, match=r"^image_uris\[1\]"):
        gt.prepare_labeling_inputs(s3, image_uris=["s3://gt-bucket/raw/a.jpg", "raw/b.jpg"], labels=LABELS,
                                   description="d", inputs_prefix="s3://gt-bucket/labels/in")
    assert s3.list_objects_v2(Bucket="gt-bucket").get("KeyCount", 0) == 0


def test_prepare_labeling_inputs_without_images_keeps_the_existing_manifest(s3):
    s3.put_object(Bucket="gt-bucket", Key="labels/in/input.manifest", Body=b'{"source-ref":"s3://x/y.jpg"}\n')
    uris = gt.prepare_labeling_inputs(s3, image_uris=None, labels=LABELS, description="d",
                                      inputs_prefix="s3://gt-bucket/labels/in")
    assert set(uris) == {"categories_uri", "template_uri"}
    assert _read(s3, "s3://gt-bucket/labels/in/input.manifest") == b'{"source-ref":"s3://x/y.jpg"}\n'


# -- waiter ------------------------------------------------------------------------------------
def test_waiter_json_loads_with_the_acceptors():
    config = load_waiter_config(LABELING_JOB_WAITERS)
    model = WaiterModel(config)
    assert model.waiter_names == [LABELING_JOB_COMPLETE]
    waiter = model.get_waiter(LABELING_JOB_COMPLETE)
    assert waiter.operation == "DescribeLabelingJob"
    states = {(a.argument, a.expected): a.state for a in waiter.acceptors}
    assert states == {
        ("LabelingJobStatus", "Completed"): "success",
        ("LabelingJobStatus", "Failed"): "failure",
        ("LabelingJobStatus", "Stopped"): "failure",
        ("LabelingJobStatus", "Initializing"): "retry",
        ("LabelingJobStatus", "InProgress"): "retry",
        ("LabelingJobStatus", "Stopping"): "retry",
    }
    # Every status the API can return has an acceptor.
    status_enum = sagemaker_model().shape_for("LabelingJobStatus").enum
    assert sorted(expected for _, expected in states) == sorted(status_enum)


def _describe_response(status: str, **extra: Any) -> dict[str, Any]:
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


def _hook_with_stubbed_client(responses: list[dict[str, Any]]) -> tuple[LabelingJobHook, Stubber]:
    """The hook, and a Stubber on a sync client answering DescribeLabelingJob with ``responses``."""
    client = boto3.client("sagemaker", region_name=REGION)
    stubber = Stubber(client)
    for response in responses:
        stubber.add_response("describe_labeling_job", response, {"LabelingJobName": "shapes-1"})
    return LabelingJobHook(aws_conn_id=None, region_name=REGION), stubber


def test_sync_waiter_retries_in_progress_and_succeeds_on_completed():
    hook, stubber = _hook_with_stubbed_client(
        [_describe_response("InProgress"), _describe_response("Stopping"), _describe_response("Completed")]
    )
    with stubber:
        waiter = hook.get_waiter(LABELING_JOB_COMPLETE, client=stubber.client)
        waiter.wait(LabelingJobName="shapes-1", WaiterConfig={"Delay": 0, "MaxAttempts": 5})
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_sync_waiter_fails_on_failed_and_stopped(status):
    response = _describe_response(status, FailureReason="ClientError: no access")
    hook, stubber = _hook_with_stubbed_client([response])
    with stubber:
        waiter = hook.get_waiter(LABELING_JOB_COMPLETE, client=stubber.client)
        with pytest.raises(WaiterError, match="terminal failure") as err:
            waiter.wait(LabelingJobName="shapes-1", WaiterConfig={"Delay": 0, "MaxAttempts": 5})
    assert err.value.last_response["FailureReason"] == "ClientError: no access"


def test_hook_reads_this_packages_waiters():
    hook = LabelingJobHook(aws_conn_id=None, region_name=REGION)
    assert Path(hook.waiter_path) == LABELING_JOB_WAITERS
    assert hook._list_custom_waiters() == [LABELING_JOB_COMPLETE]


# -- trigger -----------------------------------------------------------------------------------
def test_trigger_serialize_round_trip():
    trigger = LabelingJobTrigger(job_name="shapes-1", waiter_delay=5, waiter_max_attempts=12,
                                 aws_conn_id="aws_gt", region_name="eu-west-1",
                                 botocore_config={"retries": {"mode": "standard"}})
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.LabelingJobTrigger"
    assert kwargs == {"job_name": "shapes-1", "waiter_delay": 5, "waiter_max_attempts": 12,
                      "aws_conn_id": "aws_gt", "region_name": "eu-west-1",
                      "botocore_config": {"retries": {"mode": "standard"}}}
    json.dumps(kwargs)  # what the triggerer stores
    rebuilt = LabelingJobTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.waiter_args == {"LabelingJobName": "shapes-1"}
    assert rebuilt.waiter_name == LABELING_JOB_COMPLETE


def test_trigger_minimal_serialize_round_trip_and_hook():
    classpath, kwargs = LabelingJobTrigger(job_name="shapes-1").serialize()
    assert kwargs == {"job_name": "shapes-1", "waiter_delay": 60, "waiter_max_attempts": 43_200,
                      "aws_conn_id": "aws_default"}
    hook = LabelingJobTrigger(**kwargs).hook()
    assert isinstance(hook, LabelingJobHook)
    # No botocore_config given: the package's retry policy applies.
    assert hook.config.retries == {"mode": "standard", "total_max_attempts": 8}


def test_trigger_events_for_failures():
    from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
    from airflow.providers.common.compat.sdk import AirflowException

    trigger = LabelingJobTrigger(job_name="shapes-1")
    failed = trigger._event_from_exception(WaiterTerminalFailure(
        "x", last_response={"LabelingJobStatus": "Failed", "FailureReason": "ClientError: bad manifest"}))
    assert failed.payload == {"status": "failed", "job_name": "shapes-1",
                              "message": "ClientError: bad manifest"}
    stopped = trigger._event_from_exception(
        WaiterTerminalFailure("x", last_response={"LabelingJobStatus": "Stopped"}))
    assert stopped.payload["status"] == "stopped" and "Stopped" in stopped.payload["message"]
    timeout = trigger._event_from_exception(WaiterMaxAttemptsError("Waiter error: max attempts reached"))
    assert timeout.payload["status"] == "timeout"
    other = trigger._event_from_exception(AirflowException("AccessDenied"))
    assert other.payload == {"status": "error", "message": "AccessDenied", "job_name": "shapes-1"}


# -- operator ----------------------------------------------------------------------------------
def make_operator(**overrides: Any) -> gt.GroundTruthLabelingOperator:
    args: dict[str, Any] = {
        "task_id": "label",
        "job_name": "shapes-1",
        "role_arn": ROLE,
        "output_path": "s3://gt-bucket/labels/out/",
        "label_attribute": "bounding-box",
        "labels": LABELS,
        "task_description": "Box the shapes",
        "inputs_prefix": "s3://gt-bucket/labels/in/",
        "image_uris": [f"s3://gt-bucket/raw/shape_{i:03d}.jpg" for i in range(3)],
        "workteam_arn": PRIVATE_TEAM,
        "deferrable": True,
        "waiter_delay": 2,
        "waiter_max_attempts": 7,
    }
    args.update(overrides)
    return gt.GroundTruthLabelingOperator(**args)


def mock_hook(op, *jobs: dict[str, Any] | None) -> mock.MagicMock:
    """Install a hook whose find_labeling_job returns ``jobs`` one after the other (last repeats)."""
    hook = mock.MagicMock(spec=LabelingJobHook)
    hook.conn_region_name = REGION
    hook.conn_partition = "aws"
    sequence = list(jobs)
    hook.find_labeling_job.side_effect = lambda name: sequence.pop(0) if len(sequence) > 1 else sequence[0]
    hook.conn = mock.MagicMock()
    hook.conn.create_labeling_job.return_value = {"LabelingJobArn": "arn:...:labeling-job/shapes-1"}
    op.__dict__["hook"] = hook  # the cached_property's slot
    return hook


def existing(status: str, **extra: Any) -> dict[str, Any]:
    job = _describe_response(status, **extra)
    if status == "Completed":
        job.setdefault("LabelingJobOutput", {"OutputDatasetS3Uri": OUTPUT_URI})
    return job


@pytest.fixture
def no_uploads():
    with mock.patch.object(gt, "prepare_labeling_inputs") as prepare, mock.patch.object(gt.aws, "client") as client:
        prepare.return_value = gt.labeling_input_uris("s3://gt-bucket/labels/in/")
        # An existing input manifest reads as empty (its refs only decide which buckets get CORS).
        client.return_value.get_object.side_effect = lambda **_: {"Body": io.BytesIO(b"")}
        yield prepare


def test_existing_in_progress_job_is_reused_and_deferred(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator()
    hook = mock_hook(op, existing("InProgress"))
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    hook.conn.create_labeling_job.assert_not_called()
    no_uploads.assert_not_called()
    trigger = deferred.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    assert trigger.serialize()[1] == {"job_name": "shapes-1", "waiter_delay": 2, "waiter_max_attempts": 7,
                                      "aws_conn_id": "aws_default"}
    assert deferred.value.method_name == "execute_complete"


def test_existing_completed_job_returns_its_output_without_creating(no_uploads):
    op = make_operator()
    hook = mock_hook(op, existing("Completed"))
    assert op.execute({}) == OUTPUT_URI
    hook.conn.create_labeling_job.assert_not_called()
    no_uploads.assert_not_called()


@pytest.mark.parametrize("status", ["Failed", "Stopped"])
def test_existing_failed_job_fails_with_its_reason(status, no_uploads):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator()
    hook = mock_hook(op, existing(status, FailureReason="ClientError: Cannot access the input manifest"))
    with pytest.raises(AirflowException) as err:
        op.execute({})
    message = str(err.value)
    assert f"shapes-1 is {status}" in message
    assert "ClientError: Cannot access the input manifest" in message
    assert "change job_name" in message
    hook.conn.create_labeling_job.assert_not_called()
    no_uploads.assert_not_called()


def test_existing_stopping_job_is_not_reused(no_uploads):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator()
    hook = mock_hook(op, existing("Stopping"))
    with pytest.raises(AirflowException, match="Stopping .*change job_name"):
        op.execute({})
    hook.conn.create_labeling_job.assert_not_called()


def test_existing_job_with_another_label_attribute_is_not_reused(no_uploads):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator(label_attribute="boxes")
    mock_hook(op, existing("Completed"))
    with pytest.raises(AirflowException, match="label_attribute: the existing job has 'bounding-box'"):
        op.execute({})


def test_new_job_uploads_inputs_creates_and_defers(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator()
    hook = mock_hook(op, None, existing("InProgress"))
    with pytest.raises(TaskDeferred):
        op.execute({})
    no_uploads.assert_called_once()
    assert no_uploads.call_args.kwargs["image_uris"] == op.image_uris
    assert no_uploads.call_args.kwargs["inputs_prefix"] == "s3://gt-bucket/labels/in/"
    hook.conn.create_labeling_job.assert_called_once()
    request = hook.conn.create_labeling_job.call_args.kwargs
    assert request == op.build_request(REGION)
    assert botocore_errors(request) == ""


def test_new_job_created_meanwhile_is_reused(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator()
    hook = mock_hook(op, None, existing("InProgress"))
    hook.conn.create_labeling_job.side_effect = ClientError(
        {"Error": {"Code": "ResourceInUse", "Message": "already exists"}}, "CreateLabelingJob")
    with pytest.raises(TaskDeferred):
        op.execute({})


def test_existing_manifest_is_used_as_is(no_uploads):
    from airflow.providers.common.compat.sdk import TaskDeferred

    op = make_operator(image_uris=None, input_manifest_uri="s3://gt-bucket/prepared/input.manifest")
    hook = mock_hook(op, None, existing("InProgress"))
    with pytest.raises(TaskDeferred):
        op.execute({})
    assert no_uploads.call_args.kwargs["image_uris"] is None
    request = hook.conn.create_labeling_job.call_args.kwargs
    assert request["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"] == (
        "s3://gt-bucket/prepared/input.manifest")


def test_bad_arguments_fail_before_any_aws_call(no_uploads):
    op = make_operator(labels="circle,square")
    hook = mock_hook(op, None)
    with pytest.raises(ConfigError, match="^labels: must be a list"):
        op.execute({})
    hook.find_labeling_job.assert_not_called()
    with pytest.raises(ValueError, match="exactly one of image_uris and input_manifest_uri"):
        make_operator(input_manifest_uri="s3://gt-bucket/in.manifest")


def test_not_waiting_returns_where_the_output_will_be(no_uploads):
    op = make_operator(wait_for_completion=False)
    mock_hook(op, None, existing("InProgress"))
    assert op.execute({}) == OUTPUT_URI


def test_sync_wait_failure_carries_the_failure_reason(no_uploads):
    from airflow.providers.amazon.aws.exceptions import WaiterTerminalFailure
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator(deferrable=False)
    failed = existing("Failed", FailureReason="ClientError: emulated")
    hook = mock_hook(op, existing("InProgress"), failed)
    with mock.patch.object(gt, "wait", side_effect=WaiterTerminalFailure("x", last_response=failed)) as wait:
        with pytest.raises(AirflowException, match="shapes-1 is Failed: ClientError: emulated"):
            op.execute({})
    assert wait.call_args.kwargs["args"] == {"LabelingJobName": "shapes-1"}
    assert wait.call_args.kwargs["waiter_delay"] == 2 and wait.call_args.kwargs["waiter_max_attempts"] == 7
    hook.get_waiter.assert_called_once_with(gt.LABELING_JOB_COMPLETE)


def test_sync_wait_success_returns_the_output(no_uploads):
    op = make_operator(deferrable=False)
    mock_hook(op, existing("InProgress"), existing("Completed"))
    with mock.patch.object(gt, "wait"):
        assert op.execute({}) == OUTPUT_URI


def test_sync_wait_running_out_of_attempts_says_the_job_keeps_running(no_uploads):
    from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator(deferrable=False)
    mock_hook(op, existing("InProgress"))
    with mock.patch.object(gt, "wait", side_effect=WaiterMaxAttemptsError("max attempts")):
        with pytest.raises(AirflowException,
                           match="still running: .*InProgress: 1/3 labeled .*resume waiting on the same job"):
            op.execute({})


def test_execute_persists_the_console_link(no_uploads):
    op = make_operator()
    mock_hook(op, existing("Completed"))
    ti = mock.MagicMock()
    op.execute({"ti": ti})
    ti.xcom_push.assert_called_once_with(
        key="sagemaker_labeling_job",
        value={"region_name": REGION, "aws_domain": "aws.amazon.com", "job_name": "shapes-1"},
    )
    link = gt.SageMakerLabelingJobLink()
    assert link.name == "SageMaker Labeling Job"
    assert link.format_link(region_name=REGION, aws_domain="aws.amazon.com", job_name="shapes-1") == (
        "https://console.aws.amazon.com/sagemaker/groundtruth?region=us-east-1#/labeling-jobs/details/shapes-1"
    )


@pytest.mark.parametrize(("status", "stops"), [("InProgress", True), ("Initializing", True),
                                               ("Completed", False), ("Stopping", False), (None, False)])
def test_on_kill_stops_a_running_job(status, stops):
    op = make_operator()
    hook = mock_hook(op, existing(status) if status else None)
    op.on_kill()
    if stops:
        hook.stop_labeling_job.assert_called_once_with("shapes-1")
    else:
        hook.stop_labeling_job.assert_not_called()


def test_execute_complete_success_redescribes_for_the_output():
    op = make_operator()
    mock_hook(op, existing("Completed"))
    assert op.execute_complete({}, {"status": "success", "job_name": "shapes-1"}) == OUTPUT_URI


@pytest.mark.parametrize(
    ("event", "job", "match"),
    [
        (None, None, "event is None"),
        ({"status": "failed", "job_name": "shapes-1", "message": "ClientError: x"},
         existing("Failed", FailureReason="ClientError: x"), "shapes-1 is Failed: ClientError: x"),
        ({"status": "stopped", "job_name": "shapes-1", "message": "stopped"},
         existing("Stopped"), "shapes-1 is Stopped: no FailureReason given"),
        ({"status": "timeout", "job_name": "shapes-1", "message": "max attempts"},
         existing("InProgress"), "still running .*resume waiting on the same job"),
        ({"status": "error", "job_name": "shapes-1", "message": "AccessDenied"},
         existing("InProgress"), r"failed \(error\): AccessDenied"),
        ({"status": "success", "job_name": "other-job"}, existing("Completed"), "not shapes-1"),
    ],
)
def test_execute_complete_errors(event, job, match):
    from airflow.providers.common.compat.sdk import AirflowException

    op = make_operator()
    mock_hook(op, job)
    with pytest.raises(AirflowException, match=match):
        op.execute_complete({}, event)


def test_operator_template_fields_and_hook_config():
    op = make_operator(botocore_config=None)
    for name in ("job_name", "labels", "image_uris", "inputs_prefix", "output_path", "role_arn"):
        assert name in op.template_fields
    assert op._hook_parameters["config"].retries == {"mode": "standard", "total_max_attempts": 8}
    given = make_operator(botocore_config={"read_timeout": 5})
    assert given._hook_parameters["config"] == {"read_timeout": 5}


# -- sensor ------------------------------------------------------------------------------------
def make_sensor(**overrides: Any) -> gt.GroundTruthLabelingJobSensor:
    return gt.GroundTruthLabelingJobSensor(
        **{"task_id": "wait", "job_name": "shapes-1", "poke_interval": 5, "timeout": 60, **overrides})


def test_sensor_poke():
    from airflow.providers.common.compat.sdk import AirflowException

    sensor = make_sensor()
    mock_hook(sensor, existing("InProgress"))
    assert not sensor.poke({})
    mock_hook(sensor, existing("Completed"))
    done = sensor.poke({})
    assert done and done.xcom_value == OUTPUT_URI
    mock_hook(sensor, existing("Failed", FailureReason="ClientError: no workers"))
    with pytest.raises(AirflowException, match="ClientError: no workers"):
        sensor.poke({})
    mock_hook(sensor, None)
    with pytest.raises(AirflowException, match="shapes-1 does not exist"):
        sensor.poke({})


def test_deferrable_sensor_defers_with_the_same_trigger():
    from airflow.providers.common.compat.sdk import TaskDeferred

    sensor = make_sensor(deferrable=True)
    mock_hook(sensor, existing("InProgress"))
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LabelingJobTrigger)
    assert (trigger.waiter_delay, trigger.attempts, trigger.job_name) == (5, 12, "shapes-1")
    mock_hook(sensor, existing("Completed"))
    assert sensor.execute({}) == OUTPUT_URI
    assert sensor.execute_complete({}, {"status": "success", "job_name": "shapes-1"}) == OUTPUT_URI


# -- CORS (defect 3) -------------------------------------------------------------------------------
def test_cors_rule_is_the_one_the_ground_truth_guide_gives():
    # sms-cors-update, JSON: [{"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
    # "ExposeHeaders": []}]
    assert gt.GROUND_TRUTH_CORS_RULE == {"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
                                         "ExposeHeaders": []}


@pytest.mark.parametrize(("existing", "added"), [
    ([], True),
    ([{"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://app.example.com"]}], True),
    ([{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://app.example.com"]}], True),  # named origin only
    ([{"AllowedMethods": ["HEAD"], "AllowedOrigins": ["*"]}], True),
    ([{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"]}], False),
    ([{"AllowedMethods": ["PUT"], "AllowedOrigins": ["x"]}, {"AllowedMethods": ["get"], "AllowedOrigins": ["*"]}],
     False),
])
def test_merged_cors_rules_keep_the_owners_rules_first_and_add_no_duplicate(existing, added):
    merged = gt.merged_cors_rules(existing)
    if not added:
        assert merged is None
        return
    assert merged[:-1] == existing and merged[-1] == gt.GROUND_TRUTH_CORS_RULE


def test_ensure_cors_adds_the_rule_once_and_keeps_the_buckets_rules(s3):
    s3.create_bucket(Bucket="gt-images")
    s3.create_bucket(Bucket="gt-other")
    theirs = {"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://uploads.example.com"], "MaxAgeSeconds": 30}
    s3.put_bucket_cors(Bucket="gt-images", CORSConfiguration={"CORSRules": [theirs]})
    buckets = gt.image_buckets(["s3://gt-images/raw/a.jpg", "s3://gt-other/b.png", "s3://gt-images/raw/c.jpg"])
    assert buckets == ["gt-images", "gt-other"]
    assert gt.ensure_cors(s3, buckets) == {"gt-images": "added", "gt-other": "added"}
    rules = s3.get_bucket_cors(Bucket="gt-images")["CORSRules"]
    assert [r["AllowedMethods"] for r in rules] == [["PUT"], ["GET"]] and rules[0]["MaxAgeSeconds"] == 30
    assert s3.get_bucket_cors(Bucket="gt-other")["CORSRules"][0]["AllowedOrigins"] == ["*"]
    assert gt.ensure_cors(s3, buckets) == {"gt-images": "present", "gt-other": "present"}
    assert len(s3.get_bucket_cors(Bucket="gt-images")["CORSRules"]) == 2


def test_ensure_cors_names_the_bucket_and_permission_when_it_cannot_read_or_write():
    client = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("get_bucket_cors", "AccessDenied", "denied", 403)
        with pytest.raises(ConfigError, match=r"bucket gt-images .*s3:GetBucketCORS"):
            gt.ensure_cors(client, ["gt-images"])
        stub.add_client_error("get_bucket_cors", "NoSuchCORSConfiguration", "none", 404)
        stub.add_client_error("put_bucket_cors", "AccessDenied", "denied", 403)
        with pytest.raises(ConfigError, match=r"bucket gt-images .*s3:PutBucketCORS.*tasks fail"):
            gt.ensure_cors(client, ["gt-images"])


def test_the_operator_ensures_cors_before_creating_the_job(no_uploads):
    op = make_operator(deferrable=False)
    hook = mock_hook(op, None)
    order: list[str] = []
    hook.conn.create_labeling_job.side_effect = lambda **_: order.append("create") or {"LabelingJobArn": "arn"}
    from airflow.providers.common.compat.sdk import AirflowException

    with mock.patch.object(gt, "ensure_cors", side_effect=lambda *a, **k: order.append("cors")) as ensure, \
            pytest.raises(AirflowException, match="does not exist"):  # the mocked describe finds nothing after
        op.execute({})
    assert order[:2] == ["cors", "create"]
    assert ensure.call_args.args[1] == ["gt-bucket"]


# -- wait budget (defect 1, labeling) --------------------------------------------------------------
def test_wait_budget_covers_the_task_lifetimes_and_the_30_day_job_limit():
    one_day = build(task_availability_lifetime_s=86_400, task_time_limit_s=28_800)
    assert gt.labeling_wait_budget_s(one_day) == 30 * 86_400 + 3_600  # AWS ends jobs after 30 days
    month = build(task_availability_lifetime_s=2_592_000, task_time_limit_s=28_800)
    assert gt.labeling_wait_budget_s(month) == 2_592_000 + 28_800 + 3_600  # a task taken at the last moment
    assert gt.waiter_attempts(2_595_600, 60) == 43_261 and gt.waiter_attempts(61, 60) == 3


def test_the_pipeline_operator_waits_the_whole_budget():
    """The old label task gave Ground Truth 10 days of polls; a private team's tasks live up to 30 days."""
    from sagemaker_vision.labeling import PipelineGroundTruthOperator

    op = PipelineGroundTruthOperator(task_id="ground_truth", poll_seconds=60)
    request = build(task_availability_lifetime_s=2_592_000, task_time_limit_s=28_800)
    assert op._attempts(request) * 60 >= 2_592_000 + 28_800
    assert op._attempts(request) * 60 > 10 * 86_400
    explicit = make_operator(waiter_max_attempts=7)
    assert explicit._attempts(request) == 7


def test_the_sensor_waits_as_long_as_a_job_can_run_by_default():
    sensor = gt.GroundTruthLabelingJobSensor(task_id="wait", job_name="shapes-1")
    assert sensor.timeout >= gt.MAX_LABELING_JOB_S + gt.TASK_TIME_LIMIT_S[1]  # not BaseSensor's 7 days
    assert gt.GroundTruthLabelingJobSensor(task_id="w", job_name="j", timeout=60).timeout == 60
