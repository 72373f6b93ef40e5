"""The one SageMaker not-found rule, against the emulator's answers and the shapes AWS documents."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.hooks.sagemaker import (
    DESCRIBE,
    SageMakerVisionHook,
    all_tags,
    describe_or_none,
    is_not_found,
)


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeSomething")


@pytest.mark.parametrize(("code", "message"), [
    ("ResourceNotFound", "Requested resource not found"),  # DescribeTrainingJob/DescribeLabelingJob model
    ("ValidationException", 'Could not find endpoint "arn:aws:sagemaker:us-east-1:1:endpoint/x".'),
    ("ValidationException", "Could not find model \"arn:...\"."),
    ("ValidationException", "Requested resource not found."),
])
def test_what_sagemaker_says_for_a_missing_resource_is_not_found(code, message):
    assert is_not_found(client_error(code, message))


@pytest.mark.parametrize(("code", "message"), [
    # A real validation error must surface, not read as "missing" (training._existing hid these).
    ("ValidationException",
     "1 validation error detected: Value 'x y' at 'trainingJobName' failed to satisfy constraint"),
    ("ThrottlingException", "Rate exceeded"),
    ("AccessDeniedException", "not authorized to perform: sagemaker:DescribeEndpoint"),
    ("ResourceInUse", "Cannot create already existing endpoint"),
])
def test_other_errors_are_not_not_found(code, message):
    assert not is_not_found(client_error(code, message))


def test_a_non_client_error_is_not_not_found():
    assert not is_not_found(RuntimeError("Could not find endpoint"))


@pytest.mark.integration
@pytest.mark.parametrize("kind", sorted(DESCRIBE))
def test_each_kind_missing_in_the_emulator_is_none(aws_clients, kind):
    assert describe_or_none(aws_clients["sagemaker"], kind, "sagemaker-vision-no-such-thing") is None


@pytest.mark.integration
def test_an_existing_resource_is_described_and_its_tags_read_across_pages(aws_clients):
    sm = aws_clients["sagemaker"]
    name = "hook-test-model"
    tags = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50)]  # 50: the documented maximum
    try:
        sm.create_model(ModelName=name, ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker-vision",
                        PrimaryContainer={"Image": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
                                          "ModelDataUrl": "s3://sagemaker-vision-demo/m/model.tar.gz"},
                        Tags=tags)
    except ClientError as exc:  # pragma: no cover - a rerun in one session
        if "already exist" not in str(exc).lower():
            raise
    found = describe_or_none(sm, "model", name)
    assert found is not None and found["ModelName"] == name
    assert all_tags(sm, found["ModelArn"]) == {t["Key"]: t["Value"] for t in tags}


def test_tags_follow_next_token_until_the_last_page():
    class Pager:
        def __init__(self):
            self.calls: list[dict] = []

        def list_tags(self, **kwargs):
            self.calls.append(kwargs)
            if "NextToken" not in kwargs:
                return {"Tags": [{"Key": "a", "Value": "1"}], "NextToken": "t1"}
            return {"Tags": [{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "3"}]}

    pager = Pager()
    assert all_tags(pager, "arn:x") == {"a": "3", "b": "2"}
    assert [c.get("NextToken") for c in pager.calls] == [None, "t1"]
    assert all(c["MaxResults"] >= 50 for c in pager.calls)  # ListTagsMaxResults min is 50


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="endpoint_config"):
        describe_or_none(object(), "endpoint-config", "x")


@pytest.mark.integration
def test_the_hook_requires_by_kind_and_names_what_is_missing(emulator_env):
    hook = SageMakerVisionHook(aws_conn_id="aws_default")
    assert hook.find("endpoint", "sagemaker-vision-absent") is None
    with pytest.raises(LookupError, match="endpoint config 'sagemaker-vision-absent'"):
        hook.require("endpoint_config", "sagemaker-vision-absent")
    assert hook.waiter_path.name == "sagemaker_vision.json" and hook.waiter_path.is_file()
