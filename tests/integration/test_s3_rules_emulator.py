"""The emulator's S3 rules (local_aws/s3_rules.py): ETags that are not MD5s, SSE-C, copies' checksums.

Each test states the AWS behaviour it pins and fails on stock moto 5.2.5 (the patches off).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.integration

BUCKET = "s3-rules-test"
KEY = os.urandom(32)  # an SSE-C customer key
OTHER_KEY = os.urandom(32)
SSE_C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY}
MiB = 1024**2


@pytest.fixture
def s3(emulator):
    client = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    emulator.reset()
    client.create_bucket(Bucket=BUCKET)
    yield client
    emulator.reset()


def _allow_sse_c(s3, sse="AES256"):
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": sse},
        "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]}}]})


def _etag(s3, key, **extra):
    return s3.head_object(Bucket=BUCKET, Key=key, **extra)["ETag"].strip('"')


def test_plain_and_sse_s3_etags_are_md5s(s3):
    s3.put_object(Bucket=BUCKET, Key="plain", Body=b"hello")
    s3.put_object(Bucket=BUCKET, Key="sse-s3", Body=b"hello", ServerSideEncryption="AES256")
    md5 = hashlib.md5(b"hello").hexdigest()
    assert _etag(s3, "plain") == _etag(s3, "sse-s3") == md5


def test_sse_kms_etags_are_not_md5s_and_change_on_every_write(s3):
    body = b"the same bytes"
    first = s3.put_object(Bucket=BUCKET, Key="kms", Body=body, ServerSideEncryption="aws:kms")["ETag"].strip('"')
    listed = s3.list_objects_v2(Bucket=BUCKET)["Contents"][0]["ETag"].strip('"')
    assert first == listed == _etag(s3, "kms")
    assert first != hashlib.md5(body).hexdigest()
    s3.put_object(Bucket=BUCKET, Key="kms", Body=body, ServerSideEncryption="aws:kms")
    assert _etag(s3, "kms") != first


def test_bucket_default_kms_and_copies_into_it_are_not_md5s(s3):
    s3.put_object(Bucket=BUCKET, Key="src", Body=b"abc")
    s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}}]})
    s3.put_object(Bucket=BUCKET, Key="default", Body=b"abc")
    s3.copy_object(Bucket=BUCKET, Key="copy", CopySource={"Bucket": BUCKET, "Key": "src"})
    md5 = hashlib.md5(b"abc").hexdigest()
    assert _etag(s3, "src") == md5
    assert _etag(s3, "default") != md5 and _etag(s3, "copy") != md5


def test_multipart_etags_are_md5_of_part_md5s(s3):
    parts = [os.urandom(5 * MiB), b"tail"]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mp")["UploadId"]
    done = [{"PartNumber": n, "ETag": s3.upload_part(Bucket=BUCKET, Key="mp", UploadId=upload, PartNumber=n,
                                                     Body=p)["ETag"]} for n, p in enumerate(parts, 1)]
    s3.complete_multipart_upload(Bucket=BUCKET, Key="mp", UploadId=upload, MultipartUpload={"Parts": done})
    etag = _etag(s3, "mp")
    assert etag != hashlib.md5(b"".join(parts)).hexdigest()
    assert etag == hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"


def test_sse_c_is_blocked_on_new_buckets(s3):
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=BUCKET, Key="c", Body=b"x", **SSE_C)
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError):
        s3.create_multipart_upload(Bucket=BUCKET, Key="c", **SSE_C)


def test_sse_c_objects_need_their_key_to_be_read(s3):
    _allow_sse_c(s3)
    put = s3.put_object(Bucket=BUCKET, Key="c", Body=b"secret", **SSE_C)
    assert put["ETag"].strip('"') != hashlib.md5(b"secret").hexdigest()
    assert put["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(KEY).digest()).decode()
    assert s3.get_object(Bucket=BUCKET, Key="c", **SSE_C)["Body"].read() == b"secret"
    assert s3.head_object(Bucket=BUCKET, Key="c", **SSE_C)["SSECustomerAlgorithm"] == "AES256"
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as missing:
            call(Bucket=BUCKET, Key="c")
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        with pytest.raises(ClientError) as wrong:
            call(Bucket=BUCKET, Key="c", SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY)
        assert wrong.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    s3.put_object(Bucket=BUCKET, Key="plain", Body=b"x")
    with pytest.raises(ClientError) as not_ssec:
        s3.get_object(Bucket=BUCKET, Key="plain", **SSE_C)
    assert not_ssec.value.response["Error"]["Code"] == "InvalidRequest"


def test_copy_from_sse_c_needs_the_copy_source_key(s3):
    _allow_sse_c(s3)
    s3.put_object(Bucket=BUCKET, Key="c", Body=b"secret", **SSE_C)
    with pytest.raises(ClientError) as info:
        s3.copy_object(Bucket=BUCKET, Key="d", CopySource={"Bucket": BUCKET, "Key": "c"})
    assert info.value.response["Error"]["Code"] == "InvalidRequest"
    s3.copy_object(Bucket=BUCKET, Key="d", CopySource={"Bucket": BUCKET, "Key": "c"},
                   CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=KEY, **SSE_C)
    assert s3.get_object(Bucket=BUCKET, Key="d", **SSE_C)["Body"].read() == b"secret"


def test_sse_c_multipart_needs_the_key_on_every_part(s3):
    _allow_sse_c(s3)
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mc", **SSE_C)["UploadId"]
    with pytest.raises(ClientError):
        s3.upload_part(Bucket=BUCKET, Key="mc", UploadId=upload, PartNumber=1, Body=b"x")
    etag = s3.upload_part(Bucket=BUCKET, Key="mc", UploadId=upload, PartNumber=1, Body=b"x", **SSE_C)["ETag"]
    s3.complete_multipart_upload(Bucket=BUCKET, Key="mc", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert _etag(s3, "mc", **SSE_C).endswith("-1")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=BUCKET, Key="mc")


def test_a_server_side_copy_of_a_multipart_object_reads_back(s3, tmp_path):
    """Issue 9, item 14: a copy of a >= 8 MiB (multipart) upload failed its checksum on GET."""
    path = tmp_path / "big.manifest"
    path.write_bytes(os.urandom(9 * MiB))
    s3.upload_file(str(path), BUCKET, "big")  # s3transfer: multipart above 8 MiB, CRC32 by default
    s3.copy_object(Bucket=BUCKET, Key="copy", CopySource={"Bucket": BUCKET, "Key": "big"})
    body = s3.get_object(Bucket=BUCKET, Key="copy", ChecksumMode="ENABLED")["Body"].read()
    assert body == path.read_bytes()


def test_keys_longer_than_1024_utf8_bytes_are_refused(s3):
    """S3 keys are at most 1,024 bytes of UTF-8 ("Naming Amazon S3 objects"); moto took any length."""
    at_limit = "raw/" + "é" * 510  # 4 + 1020 bytes
    s3.put_object(Bucket=BUCKET, Key=at_limit, Body=b"x")
    assert s3.get_object(Bucket=BUCKET, Key=at_limit)["Body"].read() == b"x"
    over = at_limit + "x"  # 1,025 bytes, 515 characters
    for call in (lambda: s3.put_object(Bucket=BUCKET, Key=over, Body=b"x"),
                 lambda: s3.copy_object(Bucket=BUCKET, Key=over, CopySource={"Bucket": BUCKET, "Key": at_limit}),
                 lambda: s3.create_multipart_upload(Bucket=BUCKET, Key=over)):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == "KeyTooLongError"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [at_limit]


def test_in_progress_uploads_are_listed_by_prefix_in_order_with_their_time_and_in_pages(s3):
    """ListMultipartUploads (botocore s3 model): prefix, key then initiation order, pages of max-uploads,
    real Initiated times (moto 5.2.5 says 2010-11-10 for all and never pages); AbortMultipartUpload ends one."""
    import datetime as dt

    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    ids = {}
    for key in ("raw/b", "raw/a", "raw/b", "other/c", "raw/c"):
        ids.setdefault(key, []).append(s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"])
    after = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    pages = list(s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET, Prefix="raw/", MaxUploads=2))
    assert [len(p.get("Uploads", [])) for p in pages] == [2, 2]
    assert pages[0]["IsTruncated"] and pages[0]["NextKeyMarker"] == "raw/b" and not pages[-1]["IsTruncated"]
    listed = [u for p in pages for u in p["Uploads"]]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [
        ("raw/a", ids["raw/a"][0]), ("raw/b", ids["raw/b"][0]), ("raw/b", ids["raw/b"][1]), ("raw/c", ids["raw/c"][0])]
    assert all(before <= u["Initiated"] <= after for u in listed)
    s3.abort_multipart_upload(Bucket=BUCKET, Key="raw/a", UploadId=ids["raw/a"][0])
    left = s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]
    assert sorted(u["Key"] for u in left) == ["other/c", "raw/b", "raw/b", "raw/c"]
    with pytest.raises(ClientError) as gone:
        s3.abort_multipart_upload(Bucket=BUCKET, Key="raw/a", UploadId=ids["raw/a"][0])
    assert gone.value.response["Error"]["Code"] == "NoSuchUpload"


def test_head_reports_a_multipart_objects_composite_checksum_as_get_does(s3, tmp_path):
    """A multipart upload's checksum is a checksum of part checksums, "<base64>-<parts>", type COMPOSITE
    ("Checking object integrity"); moto's HEAD sent the bare value, which reads as the data's own."""
    path = tmp_path / "big"
    path.write_bytes(os.urandom(9 * MiB))
    s3.upload_file(str(path), BUCKET, "big")  # CRC32 parts (s3transfer's default), two of them
    head = s3.head_object(Bucket=BUCKET, Key="big", ChecksumMode="ENABLED")
    get = s3.get_object(Bucket=BUCKET, Key="big", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == get["ChecksumCRC32"] and head["ChecksumCRC32"].endswith("-2")
    assert head["ChecksumType"] == get["ChecksumType"] == "COMPOSITE"
    assert get["Body"].read() == path.read_bytes()


def test_multipart_copies_with_a_checksum_give_and_need_every_parts_checksum(s3, tmp_path):
    """UploadPartCopy answers with the part's checksum (CopyPartResult); completing a composite-checksum
    upload without each part's checksum is InvalidRequest (boto/s3transfer#241 quotes AWS's message)."""
    path = tmp_path / "big"
    path.write_bytes(os.urandom(9 * MiB))
    s3.upload_file(str(path), BUCKET, "big")
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="bare", ChecksumAlgorithm="SHA256")["UploadId"]
    part = s3.upload_part_copy(Bucket=BUCKET, Key="bare", UploadId=upload, PartNumber=1,
                               CopySource={"Bucket": BUCKET, "Key": "big"})["CopyPartResult"]
    data = path.read_bytes()
    assert part["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    with pytest.raises(ClientError) as info:
        s3.complete_multipart_upload(Bucket=BUCKET, Key="bare", UploadId=upload, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert info.value.response["Error"]["Code"] == "InvalidRequest"
    assert "must include the checksum for each part. It was missing for part 1" in str(info.value)
    # s3transfer's managed copy (UploadPartCopy above its 8 MiB threshold) passes them on, as on AWS.
    s3.copy({"Bucket": BUCKET, "Key": "big"}, BUCKET, "managed", ExtraArgs={"ChecksumAlgorithm": "SHA256"})
    got = s3.get_object(Bucket=BUCKET, Key="managed", ChecksumMode="ENABLED")
    assert got["ChecksumSHA256"].endswith("-2") and got["Body"].read() == data


def test_a_9_mib_manifest_published_by_copy_is_read_back_by_prepare_manifests(s3):
    """Issue 9, item 14, through the package's own path: a backend stages its manifest (upload_file:
    multipart above 8 MiB), label.publish copies it to labels/dt=…/output.manifest (CopyObject), and
    prepare_manifests reads it back (GetObject, botocore validating the response checksum)."""
    import json
    from datetime import UTC, datetime

    from sagemaker_vision.core.config import PipelineConfig, RunInfo
    from sagemaker_vision.core.params import param_defaults
    from sagemaker_vision.hooks import s3 as s3io
    from sagemaker_vision.pipeline.label import publish_manifest
    from sagemaker_vision.pipeline.manifests import prepare_manifests

    run = RunInfo(run_id="manual__9mib", run_after=datetime(2026, 11, 25, tzinfo=UTC))
    cfg = PipelineConfig.from_params({**param_defaults(), "bucket": BUCKET, "prefix": "big-manifest",
                                      "role_arn": "arn:aws:iam::123456789012:role/sagemaker-vision-execution"},
                                     run=run, region="us-east-1")
    sample = Path(__file__).resolve().parents[2] / "include" / "sample_data" / "output.manifest"
    template = json.loads(sample.read_text().splitlines()[0])
    staged = f"{cfg.labeling_work_prefix}import.manifest"
    lines = 0
    with s3io.staged_upload(s3, staged) as out:
        while out.tell() < 9 * MiB:
            template["source-ref"] = f"{cfg.raw_prefix}img_{lines:06d}.jpg"
            out.write(json.dumps(template) + "\n")
            lines += 1
    assert s3.head_object(Bucket=BUCKET, Key=s3io.split_uri(staged)[1])["ETag"].strip('"').endswith("-2")
    published = publish_manifest(cfg, s3, staged)
    assert published["images"] == lines and published["manifest_uri"] == cfg.labeled_manifest_uri
    result = prepare_manifests(cfg, s3, manifest_uri=cfg.labeled_manifest_uri)
    assert result["num_training_samples"] + result["num_validation_samples"] == lines


def test_a_missing_key_is_403_access_denied_unless_the_principal_may_list_the_bucket(s3, emulator):
    """S3 API Reference, GetObject / HeadObject "Permissions": a missing key is 404 only with
    s3:ListBucket; the project's role has it only under an s3:prefix condition, so 403 by default."""
    from local_aws.control import Control

    s3.put_object(Bucket=BUCKET, Key="there", Body=b"x")
    with pytest.raises(ClientError) as get:
        s3.get_object(Bucket=BUCKET, Key="missing")
    assert get.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert get.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key="missing")
    assert head.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert head.value.response["Error"]["Code"] == "403"  # a HEAD error has no body
    assert s3.get_object(Bucket=BUCKET, Key="there")["Body"].read() == b"x"
    with pytest.raises(ClientError) as bucket:  # a missing bucket is still NoSuchBucket
        s3.get_object(Bucket="no-such-bucket-here", Key="missing")
    assert bucket.value.response["Error"]["Code"] == "NoSuchBucket"

    control = Control(emulator.endpoint_url)
    assert control.state()["missing_key_status"] == 403
    control.set_missing_key_status(404)  # a principal with full s3:ListBucket
    with pytest.raises(ClientError) as get:
        s3.get_object(Bucket=BUCKET, Key="missing")
    assert get.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key="missing")
    assert head.value.response["Error"]["Code"] == "404"
    emulator.reset()  # back to 403
    assert control.state()["missing_key_status"] == 403
    with pytest.raises(Exception, match="missing_key_status"):
        control.set_missing_key_status(500)


def test_the_package_tells_a_missing_key_from_a_forbidden_one_under_the_emulators_403(s3):
    """sagemaker_vision.hooks.s3 against the emulator: a missing key (403) is missing; a key that is there
    but refused (an SSE-C object read with another key: 403 AccessDenied) is re-raised, naming it."""
    from sagemaker_vision.hooks import s3 as s3io

    _allow_sse_c(s3)
    s3.put_object(Bucket=BUCKET, Key="p/there.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="p/secret", Body=b"s", **SSE_C)
    s3.put_object(Bucket=BUCKET, Key="p/missing.json.bak", Body=b"{}")  # listed under the key as a prefix
    assert s3io.read_if_exists(s3, f"s3://{BUCKET}/p/missing.json") is None
    assert s3io.exists(s3, f"s3://{BUCKET}/p/missing.json") is False
    assert s3io.read_if_exists(s3, f"s3://{BUCKET}/p/there.json") == b"{}"
    assert s3io.exists(s3, f"s3://{BUCKET}/p/there.json") is True
    with pytest.raises(ClientError) as denied:
        s3io.get_object_if_exists(s3, BUCKET, "p/secret", SSECustomerAlgorithm="AES256", SSECustomerKey=OTHER_KEY)
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert f"s3://{BUCKET}/p/secret exists" in "\n".join(denied.value.__notes__)
