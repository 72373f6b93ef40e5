"""Ground Truth request builder, inputs, CORS rules and wait budget (core/labeling_job): pure, no AWS.
"""

from __future__ import annotations

import json
import re

import pytest

from sagemaker_vision.core import labeling_inputs, labeling_job
from sagemaker_vision.core.validate import ConfigError
from tests.unit.labeling_support import (
    LABELS,
    OUTPUT_URI,
    PRIVATE_TEAM,
    PUBLIC_TEAM,
    REGION,
    ROLE,
    botocore_errors,
    build,
    sagemaker_model,
)


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
    assert documented == labeling_job.BOUNDING_BOX_LAMBDA_ACCOUNTS


@pytest.mark.parametrize("region", sorted(labeling_job.BOUNDING_BOX_LAMBDA_ACCOUNTS))
def test_every_supported_region_builds_its_own_arns(region):
    account = labeling_job.BOUNDING_BOX_LAMBDA_ACCOUNTS[region]
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
    lines = list(labeling_inputs.input_manifest_lines(iter(uris)))
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
        list(labeling_inputs.input_manifest_lines(uris))
    assert err.value.field == field


def test_label_categories_document():
    assert labeling_inputs.label_categories_document(LABELS) == {
        "document-version": "2018-11-28",
        "labels": [{"label": "circle"}, {"label": "square"}, {"label": "triangle"}],
    }
    with pytest.raises(ConfigError, match=r"^labels\[1\]"):
        labeling_inputs.label_categories_document(["a", "a"])


def test_render_template_fills_header_and_labels_and_keeps_liquid():
    page = labeling_inputs.render_template(LABELS, "Box every shape")
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
    page = labeling_inputs.render_template(['say "hi"', "<b>{{ x }}</b>"], 'Boxes & {% include "x" %}')
    assert 'header="Boxes &amp; &#123;% include &quot;x&quot; %&#125;"' in page
    assert "<li>say &quot;hi&quot;</li>" in page
    assert "<li>&lt;b&gt;&#123;&#123; x &#125;&#125;&lt;/b&gt;</li>" in page
    assert "{{ x }}" not in page and "{% include" not in page


def test_render_template_rejects_a_template_that_is_not_a_bounding_box_ui(tmp_path):
    plain = tmp_path / "plain.html"
    plain.write_text("<crowd-form>${header}${label_items}</crowd-form>")
    with pytest.raises(ConfigError, match=r"^template_path: .*grant_read_access"):
        labeling_inputs.render_template(LABELS, "d", plain)
    with pytest.raises(ConfigError, match=r"^template_path: cannot read"):
        labeling_inputs.render_template(LABELS, "d", tmp_path / "missing.html")
    stray = tmp_path / "stray.html"
    stray.write_text(labeling_inputs.DEFAULT_TEMPLATE_PATH.read_text() + "<p>costs $5 per ${price}</p>")
    with pytest.raises(ConfigError, match=r"^template_path: .*placeholder"):
        labeling_inputs.render_template(LABELS, "d", stray)
    with pytest.raises(ConfigError, match=r"^description"):
        labeling_inputs.render_template(LABELS, "")


def test_labeling_input_uris_and_output_manifest_uri():
    with_slash = labeling_inputs.labeling_input_uris("s3://gt-bucket/labels/in/")
    assert with_slash == labeling_inputs.labeling_input_uris("s3://gt-bucket/labels/in") == {
        "input_manifest_uri": "s3://gt-bucket/labels/in/input.manifest",
        "categories_uri": "s3://gt-bucket/labels/in/label-categories.json",
        "template_uri": "s3://gt-bucket/labels/in/bounding-box.liquid.html",
    }
    assert labeling_job.output_manifest_uri("s3://gt-bucket/labels/out/", "shapes-1") == OUTPUT_URI
    assert labeling_job.output_manifest_uri("s3://gt-bucket/labels/out", "shapes-1") == OUTPUT_URI
    with pytest.raises(ConfigError, match="^inputs_prefix"):
        labeling_inputs.labeling_input_uris("gt-bucket/labels")


# -- CORS (defect 3) -------------------------------------------------------------------------------
def test_cors_rule_is_the_one_the_ground_truth_guide_gives():
    # sms-cors-update, JSON: [{"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
    # "ExposeHeaders": []}]
    assert labeling_inputs.GROUND_TRUTH_CORS_RULE == {"AllowedHeaders": [], "AllowedMethods": ["GET"],
                                                      "AllowedOrigins": ["*"], "ExposeHeaders": []}


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
    merged = labeling_inputs.merged_cors_rules(existing)
    if not added:
        assert merged is None
        return
    assert merged[:-1] == existing and merged[-1] == labeling_inputs.GROUND_TRUTH_CORS_RULE


# -- wait budget (defect 1, labeling) --------------------------------------------------------------
def test_wait_budget_covers_the_task_lifetimes_and_the_30_day_job_limit():
    one_day = build(task_availability_lifetime_s=86_400, task_time_limit_s=28_800)
    assert labeling_job.labeling_wait_budget_s(one_day) == 30 * 86_400 + 3_600  # AWS ends jobs after 30 days
    month = build(task_availability_lifetime_s=2_592_000, task_time_limit_s=28_800)
    assert labeling_job.labeling_wait_budget_s(month) == 2_592_000 + 28_800 + 3_600  # a task taken at the last moment
    assert labeling_job.waiter_attempts(2_595_600, 60) == 43_261 and labeling_job.waiter_attempts(61, 60) == 3
