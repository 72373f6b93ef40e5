"""local_aws.strict: the strict walk of a request against botocore's model, check by check."""

from __future__ import annotations

import base64

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError

from local_aws import strict

ROLE = "arn:aws:iam::123456789012:role/sagemaker-vision-execution"


def _training(**overrides):
    params = {
        "TrainingJobName": "od-2026-12-01",
        "AlgorithmSpecification": {"TrainingImage": "811284229777.dkr.ecr.us-east-1.amazonaws.com/object-detection:1",
                                   "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"num_classes": "2"},
        "Tags": [{"Key": "project", "Value": "vision"}],
    }
    params.update(overrides)
    return params


def _kinds(found):
    return [(v.path, v.kind) for v in found]


def test_a_valid_request_has_no_violations():
    assert strict.violations("sagemaker", "CreateTrainingJob", _training()) == []


def test_required_member_missing_is_value_null_must_not_be_null():
    params = _training()
    del params["RoleArn"]
    params["OutputDataConfig"] = {"KmsKeyId": "k"}
    found = strict.violations("sagemaker", "CreateTrainingJob", params)
    assert _kinds(found) == [("roleArn", "required"), ("outputDataConfig.s3OutputPath", "required")]
    assert str(found[0]) == "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"


def test_unknown_members_at_top_and_nested():
    params = _training(Bogus=1, ResourceConfig={"InstanceType": "ml.p3.2xlarge", "InstanceCount": 1,
                                                "VolumeSizeInGB": 50, "Extra": "x"})
    assert _kinds(strict.violations("sagemaker", "CreateTrainingJob", params)) == [
        ("bogus", "unknown"), ("resourceConfig.extra", "unknown")]


def test_enum_outside_the_value_set():
    params = _training(ResourceConfig={"InstanceType": "ml.banana", "InstanceCount": 1, "VolumeSizeInGB": 50})
    (found,) = strict.violations("sagemaker", "CreateTrainingJob", params)
    assert found.path == "resourceConfig.instanceType" and found.kind == "enum"
    assert found.constraint.startswith("Member must satisfy enum value set: [ml.m4.xlarge, ")


def test_numeric_min_and_max():
    low = _training(StoppingCondition={"MaxRuntimeInSeconds": 0})
    (found,) = strict.violations("sagemaker", "CreateTrainingJob", low)
    assert str(found) == ("Value '0' at 'stoppingCondition.maxRuntimeInSeconds' failed to satisfy constraint: "
                          "Member must have value greater than or equal to 1")
    # UpdateEndpointWeightsAndCapacities: DesiredInstanceCount has min 0 and no max; weights min 0
    ok = {"EndpointName": "ep", "DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": 0.0}]}
    assert strict.violations("sagemaker", "UpdateEndpointWeightsAndCapacities", ok) == []
    bad = {"EndpointName": "ep", "DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": -1.0}]}
    assert _kinds(strict.violations("sagemaker", "UpdateEndpointWeightsAndCapacities", bad)) == [
        ("desiredWeightsAndCapacities.1.member.desiredWeight", "range")]
    # max: application-autoscaling TargetValue has none, but PutScalingPolicy ScalableDimension is enum;
    # MaxCapacity of RegisterScalableTarget is a plain integer; use a real max: logs Limit (max 10000)
    found = strict.violations("logs", "GetLogEvents", {"logGroupName": "g", "logStreamName": "s", "limit": 10001})
    assert [str(v) for v in found] == ["Value '10001' at 'limit' failed to satisfy constraint: "
                                       "Member must have value less than or equal to 10000"]


def test_string_length_min_and_max():
    found = strict.violations("sagemaker", "CreateTrainingJob", _training(TrainingJobName="x" * 64))
    assert _kinds(found) == [("trainingJobName", "length"), ("trainingJobName", "pattern")]
    assert found[0].constraint == "Member must have length less than or equal to 63"
    found = strict.violations("sagemaker", "CreateTrainingJob", _training(RoleArn="arn:aws:iam::1:role"))
    assert ("roleArn", "length") in _kinds(found)


def test_list_length_and_list_members_with_one_based_member_paths():
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    found = strict.violations("sagemaker", "CreateTrainingJob", _training(Tags=tags))
    assert [str(v) for v in found][0].endswith("Member must have length less than or equal to 50")
    found = strict.violations("sagemaker", "CreateTrainingJob",
                              _training(Tags=[{"Key": "ok", "Value": "v"}, {"Key": "bad{", "Value": "v"}]))
    assert _kinds(found) == [("tags.2.member.key", "pattern")]


def test_map_keys_and_values_reported_at_the_map():
    found = strict.violations("sagemaker", "CreateTrainingJob", _training(HyperParameters={"k": "v" * 2501}))
    assert len(found) == 1
    assert found[0].path == "hyperParameters"
    assert found[0].constraint == ("Map value must satisfy constraint: "
                                   "[Member must have length less than or equal to 2500]")
    found = strict.violations("sagemaker", "CreateTrainingJob", _training(HyperParameters={"k" * 257: "v"}))
    assert found[0].constraint == ("Map keys must satisfy constraint: "
                                   "[Member must have length less than or equal to 256]")
    assert str(found[0]).startswith(f"Value '{{{'k' * 257}=v}}' at 'hyperParameters'")
    # map length: HyperParameters has max 100 entries
    many = {f"k{i}": "v" for i in range(101)}
    assert _kinds(strict.violations("sagemaker", "CreateTrainingJob", _training(HyperParameters=many))) == [
        ("hyperParameters", "length")]


def test_list_of_scalars_reported_at_the_list():
    found = strict.violations("cloudwatch", "DeleteAlarms", {"AlarmNames": ["ok", "x" * 256, "y" * 300]})
    assert [str(v) for v in found] == [
        f"Value '[ok, {'x' * 256}, {'y' * 300}]' at 'alarmNames' failed to satisfy constraint: "
        "Member must satisfy constraint: [Member must have length less than or equal to 255]"]
    found = strict.violations("logs", "DescribeLogStreams", {"logGroupName": "g", "orderBy": "Nope"})
    assert _kinds(found) == [("orderBy", "enum")]


def test_blob_length_client_and_wire():
    body = b"x" * (6 * 1024 * 1024 + 1)
    found = strict.violations("sagemaker-runtime", "InvokeEndpoint",
                              {"EndpointName": "ep", "Body": body, "ContentType": "image/jpeg"})
    assert [(v.path, v.constraint) for v in found] == [
        ("body", "Member must have length less than or equal to 6291456")]
    encoded = base64.b64encode(b"\x00" * 10).decode()
    assert strict.violations("sagemaker-runtime", "InvokeEndpoint", {"EndpointName": "ep", "Body": encoded},
                             wire=True) == []


def test_wire_types_and_nulls():
    params = _training(ResourceConfig={"InstanceType": "ml.p3.2xlarge", "InstanceCount": "1", "VolumeSizeInGB": True})
    assert _kinds(strict.violations("sagemaker", "CreateTrainingJob", params, wire=True)) == [
        ("resourceConfig.instanceCount", "type"), ("resourceConfig.volumeSizeInGB", "type")]
    params = _training(RoleArn=None)
    assert _kinds(strict.violations("sagemaker", "CreateTrainingJob", params, wire=True)) == [("roleArn", "required")]


def test_message_in_aws_format():
    found = strict.violations("sagemaker", "CreateTrainingJob", _training(TrainingJobName="bad_name"))
    assert strict.message(found) == (
        "1 validation error detected: Value 'bad_name' at 'trainingJobName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
    two = strict.violations("sagemaker", "CreateTrainingJob", _training(TrainingJobName="bad_name" * 9))
    assert strict.message(two).startswith("2 validation errors detected: Value '")
    assert "; Value '" in strict.message(two)
    with pytest.raises(strict.StrictValidationError, match="sagemaker.CreateTrainingJob: 2 validation errors"):
        strict.check("sagemaker", "CreateTrainingJob", _training(TrainingJobName="bad_name" * 9))


def _model_pattern(service, shape):
    return botocore.session.get_session().get_service_model(service).shape_for(shape).metadata["pattern"]


# Real patterns from botocore 1.43.117's models, each with values that must pass and must fail.
PATTERNS = [
    ("sagemaker", "TrainingJobName", ["od-1", "a", "A-b--c9"], ["bad_name", "-lead", "trail-", "x" * 64, ""]),
    ("sagemaker", "ModelName", ["m", "m-1"], ["m_", "-m", "m-"]),
    ("sagemaker", "RoleArn", [ROLE, "arn:aws-cn:iam::123456789012:role/a/b"],
     ["arn:aws:iam::12345:role/x", "role/x", f"{ROLE} "]),
    ("sagemaker", "S3Uri", ["s3://b/k", "https://b.s3.amazonaws.com/k", "s3://b"], ["b/k", "S3://b/k", "ftp://b"]),
    ("sagemaker", "TagKey", ["project", "a b", "ü:é/=+-@", "k.1_2"], ["bad{", "a,b", "x*"]),
    ("sagemaker", "ArnOrName", ["wt", "arn:aws:sagemaker:us-east-1:123456789012:workteam/wt"], ["wt-", "a_b"]),
    ("sagemaker", "TaskKeyword", ["Images", "bounding boxes"], ["two  spaces", " lead", "trail "]),
    ("sagemaker", "ChannelName", ["train", "validation.1-a_b"], ["tr ain", ""]),
    ("sagemaker", "ContainerImage", ["repo/image:1"], ["repo/image :1", ""]),
    ("sagemaker", "TaskTitle", ["Draw boxes", "tab\tok", "émoji ok"], ["\x00nul", "\U0001F600"]),
    ("sagemaker", "WorkteamArn", ["arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t"],
     ["arn:aws:sagemaker:us-east-1:1:workteam/x"]),
    ("sagemaker-runtime", "InferenceId", ["id-1", "a b", "é"], [" lead", "tab\there", "aé"]),
    ("sagemaker-runtime", "Header", ["image/jpeg"], ["imagé/jpeg"]),
    ("logs", "LogGroupName", ["/aws/sagemaker/TrainingJobs", "a#b"], ["a b", "a*b", ""]),
]


@pytest.mark.parametrize(("service", "shape", "good", "bad"), PATTERNS, ids=[f"{s}.{n}" for s, n, *_ in PATTERNS])
def test_real_model_patterns_full_match(service, shape, good, bad):
    pattern = _model_pattern(service, shape)
    for value in good:
        assert strict._full_match(pattern, value), (pattern, value)
    for value in bad:
        assert not strict._full_match(pattern, value), (pattern, value)


def test_java_translation():
    # POSIX classes are ASCII in Java
    assert not strict._full_match(r"\p{Print}+", "é") and strict._full_match(r"\p{Print}+", "a ~")
    assert not strict._full_match(r"[\p{Alnum}-]+", "é") and strict._full_match(r"[\p{Alnum}-]+", "a-1")
    # \w and \d are ASCII in Java, \p{L} stays Unicode
    assert not strict._full_match(r"\w+", "é") and not strict._full_match(r"\d", "\u0663")
    assert strict._full_match(r"\p{L}+", "é")
    # a surrogate-pair range is a supplementary range
    assert strict._full_match("[\\uD800\\uDC00-\\uDBFF\\uDFFF]", "\U0001F600")
    pattern = _model_pattern("sagemaker", "ProcessingEnvironmentValue") if False else \
        "[\\u0020-\\uD7FF\\uE000-\\uFFFD\\uD800\\uDC00-\\uDBFF\\uDFFF\\t]*"
    assert strict._full_match(pattern, "ok \U0001F600\t") and not strict._full_match(pattern, "\x01")
    # \A ... \z anchors
    assert strict._full_match(r"\A\S[\p{Print}]*\z", "ab c") and not strict._full_match(r"\A\S[\p{Print}]*\z", "")
    # full match, not search
    assert not strict._full_match("[a-z]+", "abc1")


# Java's line terminators (java.util.regex.Pattern, "Line terminators"): "." matches none of them.
JAVA_LINE_TERMINATORS = ["\n", "\r", "\u0085", "\u2028", "\u2029"]


@pytest.mark.parametrize("terminator", JAVA_LINE_TERMINATORS, ids=repr)
def test_java_dot_matches_no_line_terminator_in_real_model_patterns(terminator):
    s3_uri = _model_pattern("sagemaker", "S3Uri")  # ^(https|s3)://([^/]+)/?(.*)$
    assert "(.*)" in s3_uri
    assert strict._full_match(s3_uri, "s3://b/kx")
    assert not strict._full_match(s3_uri, f"s3://b/k{terminator}x"), repr(terminator)
    reservation = _model_pattern("sagemaker", "AIMlReservationArn")  # ...:[a-z0-9\-]{1,14}/.*
    arn = "arn:aws:sagemaker:us-east-1:123456789012:reservation/"
    assert strict._full_match(reservation, arn + "r-1 x")
    assert not strict._full_match(reservation, arn + f"r{terminator}1")
    # and through the whole walk: the request AWS refuses is refused
    bad = _training(OutputDataConfig={"S3OutputPath": f"s3://b/out{terminator}/"})
    assert ("outputDataConfig.s3OutputPath", "pattern") in _kinds(
        strict.violations("sagemaker", "CreateTrainingJob", bad))


def test_java_dot_translation_leaves_escaped_dots_and_dots_in_classes_alone():
    assert strict.java_to_python(r"a.b") == "a" + strict._JAVA_DOT + "b"
    assert strict.java_to_python(r"a\.b") == r"a\.b"  # an escaped dot stays literal
    assert strict.java_to_python(r"[.\-]+") == r"[.\-]+"  # inside a class "." is literal
    assert strict.java_to_python(r"\\.") == "\\\\" + strict._JAVA_DOT  # escaped backslash, then any
    assert strict._full_match(r"a\.b", "a.b") and not strict._full_match(r"a\.b", "axb")
    assert strict._full_match("[.]", ".") and not strict._full_match("[.]", "x")
    assert not strict._full_match("[.]", "\r")
    # characters that are no line terminator still match "."
    for ch in ("\t", "\x0b", "\x0c", "\x00", "\u00e9", "\U0001F600"):
        assert strict._full_match(".", ch), repr(ch)


def test_a_pattern_match_that_times_out_is_a_violation_not_a_pass(monkeypatch):
    import botocore.model

    # Catastrophic backtracking: (a|aa)+b on a long run of a's takes exponential time.
    pattern = "(a|aa)+b"
    before = strict.pattern_timeouts
    assert not strict._full_match(pattern, "a" * 60)
    assert strict.pattern_timeouts == before + 1
    # Through the walk: a model whose member has that pattern refuses the value.
    model = botocore.model.ServiceModel({
        "metadata": {"protocol": "json", "apiVersion": "2026-01-01", "endpointPrefix": "x",
                     "serviceId": "X", "jsonVersion": "1.1", "targetPrefix": "X"},
        "operations": {"Op": {"name": "Op", "http": {"method": "POST", "requestUri": "/"},
                              "input": {"shape": "In"}}},
        "shapes": {"In": {"type": "structure", "members": {"Name": {"shape": "Name"}}},
                   "Name": {"type": "string", "pattern": pattern}},
    }, service_name="x")
    found = strict.violations(model, "Op", {"Name": "a" * 60})
    assert [(v.path, v.kind) for v in found] == [("name", "pattern")]
    assert strict.pattern_timeouts == before + 2
    assert strict.violations(model, "Op", {"Name": "aab"}) == []


def test_every_pattern_of_the_models_we_use_compiles():
    session = botocore.session.get_session()
    count = 0
    for service in ("sagemaker", "sagemaker-runtime", "application-autoscaling", "logs", "cloudwatch", "s3", "sts"):
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern is not None:
                strict.compiled(pattern)
                count += 1
    assert count > 300


def test_what_botocore_itself_lets_through():
    """The checks botocore leaves out: the request below passes ParamValidator but not the strict walk."""
    client = botocore.session.get_session().create_client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    params = _training(TrainingJobName="bad_name" + "x" * 60,
                       ResourceConfig={"InstanceType": "ml.banana", "InstanceCount": 1, "VolumeSizeInGB": 50},
                       HyperParameters={"k": "v" * 2501})
    validator = client.meta.events  # noqa: F841 - the client is only built to show its validator
    from botocore.validate import ParamValidator

    model = client.meta.service_model.operation_model("CreateTrainingJob")
    assert not ParamValidator().validate(params, model.input_shape).has_errors()
    kinds = {v.kind for v in strict.violations("sagemaker", "CreateTrainingJob", params)}
    assert kinds == {"length", "pattern", "enum"}
    with pytest.raises(ParamValidationError):  # and what botocore does catch, strict catches too
        client.create_training_job(**{k: v for k, v in params.items() if k != "RoleArn"})
    assert ("roleArn", "required") in _kinds(strict.violations(
        "sagemaker", "CreateTrainingJob", {k: v for k, v in params.items() if k != "RoleArn"}))


def test_rest_request_members_from_uri_headers_and_query():
    params, payload = strict.rest_request_params(
        "s3", "PutObject", {"Bucket": "b", "Key": "k"},
        {"x-amz-storage-class": "STANDARD", "content-length": "12", "x-amz-meta-sha256": "abc",
         "x-amz-server-side-encryption-bucket-key-enabled": "true", "user-agent": "ignored"}, {})
    assert params == {"Bucket": "b", "Key": "k", "StorageClass": "STANDARD", "ContentLength": 12,
                      "Metadata": {"sha256": "abc"}, "BucketKeyEnabled": True}
    assert payload == frozenset({"Body"})
    assert strict.violations("s3", "PutObject", params) == []
    params, _ = strict.rest_request_params("s3", "ListObjectsV2", {"Bucket": "b"}, {},
                                           {"max-keys": "ten", "encoding-type": "url", "list-type": "2"})
    assert _kinds(strict.violations("s3", "ListObjectsV2", params)) == [("maxKeys", "type")]
    # an XML payload that was sent but not decoded is not reported missing; one that was not sent is
    params, payload = strict.rest_request_params("s3", "DeleteObjects", {"Bucket": "b"}, {}, {"delete": ""})
    assert strict.violations("s3", "DeleteObjects", params, unchecked=payload) == []
    assert _kinds(strict.violations("s3", "DeleteObjects", params)) == [("delete", "required")]


def test_middleware_reads_headers_once_the_same_way_for_every_check():
    from local_aws import middleware

    environ = {"HTTP_X_AMZ_STORAGE_CLASS": "STANDARD", "HTTP_X_AMZ_META_SHA256": "x", "CONTENT_TYPE": "image/jpeg",
               "CONTENT_LENGTH": "3", "QUERY_STRING": "a=b", "PATH_INFO": "/b/k"}
    assert middleware.request_headers(environ) == {
        "x-amz-storage-class": "STANDARD", "x-amz-meta-sha256": "x", "content-type": "image/jpeg",
        "content-length": "3"}
    # WSGI servers set an absent Content-Type / Content-Length to "": no header was sent
    assert middleware.request_headers({"CONTENT_TYPE": "", "CONTENT_LENGTH": ""}) == {}


def test_s3_signing_is_recognised_in_the_header_and_in_a_presigned_query_string():
    from local_aws import middleware

    header = "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    assert middleware.signed_for_s3({"HTTP_AUTHORIZATION": header})
    presigned = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20261201%2Fus-east-1%2Fs3%2F"
                 "aws4_request&X-Amz-Date=20261201T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host"
                 "&X-Amz-Signature=0")
    assert middleware.signed_for_s3({"QUERY_STRING": presigned})
    assert not middleware.signed_for_s3({"QUERY_STRING": presigned.replace("%2Fs3%2F", "%2Fsagemaker%2F")})
    assert not middleware.signed_for_s3({"QUERY_STRING": "prefix=s3/aws4_request"})
    assert not middleware.signed_for_s3({})
