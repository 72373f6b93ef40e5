"""The one not-found rule for maybe-missing keys (sagemaker_vision.hooks.s3.key_missing and its users).

S3 answers GET/HEAD of a missing key with 404 only to a principal with s3:ListBucket; the project's
role (prefix-conditioned ListBucket) gets 403 AccessDenied, told apart by ListObjectsV2(Prefix=key).
"""

from __future__ import annotations

import asyncio
import io

import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.hooks import s3 as s3_hooks


def _error(status: int, code: str, operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class FakeS3:
    """GET/HEAD answer ``status``/``code`` for keys not in ``readable``; ``listed`` is the bucket's keys."""

    def __init__(self, status: int, code: str, listed=(), readable=None):
        self.status, self.code = status, code
        self.listed = sorted(listed)
        self.readable = dict(readable or {})
        self.calls: list[tuple[str, dict]] = []

    def _refuse(self, op: str, key: str):
        if key in self.readable:
            return None
        return _error(self.status, self.code if op == "GetObject" else str(self.status), op)

    def get_object(self, Bucket, Key, **kw):
        self.calls.append(("GetObject", {"Key": Key}))
        err = self._refuse("GetObject", Key)
        if err:
            raise err
        return {"Body": io.BytesIO(self.readable[Key]), "ETag": '"e"'}

    def head_object(self, Bucket, Key, **kw):
        self.calls.append(("HeadObject", {"Key": Key}))
        err = self._refuse("HeadObject", Key)
        if err:
            raise err
        return {"ContentLength": len(self.readable[Key])}

    def list_objects_v2(self, Bucket, Prefix, MaxKeys):
        self.calls.append(("ListObjectsV2", {"Prefix": Prefix, "MaxKeys": MaxKeys}))
        keys = [k for k in self.listed if k.startswith(Prefix)][:MaxKeys]
        return {"Contents": [{"Key": k} for k in keys], "KeyCount": len(keys)}


class AsyncFakeS3:
    def __init__(self, sync: FakeS3):
        self.sync = sync

    async def head_object(self, **kw):
        return self.sync.head_object(**kw)

    async def get_object(self, **kw):
        return self.sync.get_object(**kw)

    async def list_objects_v2(self, **kw):
        return self.sync.list_objects_v2(**kw)


def test_404_no_such_key_is_missing_without_a_listing():
    s3 = FakeS3(404, "NoSuchKey")
    assert s3_hooks.read_if_exists(s3, "s3://bkt/p/state.json") is None
    assert s3_hooks.exists(s3, "s3://bkt/p/state.json") is False
    assert [c[0] for c in s3.calls] == ["GetObject", "HeadObject"]


def test_403_on_an_unlisted_key_is_missing_and_asks_only_for_that_key():
    s3 = FakeS3(403, "AccessDenied", listed=["p/state.json.bak", "p/state.jsonl"])  # longer keys only
    assert s3_hooks.read_if_exists(s3, "s3://bkt/p/state.json") is None
    assert s3_hooks.exists(s3, "s3://bkt/p/state.json") is False
    assert s3_hooks.head_object_if_exists(s3, "bkt", "p/") is None  # a prefix channel is no object
    assert ("ListObjectsV2", {"Prefix": "p/state.json", "MaxKeys": 1}) in s3.calls


def test_403_on_a_listed_key_is_a_permission_problem_and_names_the_key():
    s3 = FakeS3(403, "AccessDenied", listed=["p/state.json", "p/state.json.bak"])
    with pytest.raises(ClientError) as get:
        s3_hooks.read_if_exists(s3, "s3://bkt/p/state.json")
    assert get.value.response["Error"]["Code"] == "AccessDenied"
    assert "s3://bkt/p/state.json exists" in "\n".join(get.value.__notes__)
    with pytest.raises(ClientError) as head:
        s3_hooks.exists(s3, "s3://bkt/p/state.json")
    assert head.value.response["Error"]["Code"] == "403"
    assert "permission problem" in "\n".join(head.value.__notes__)


def test_other_errors_are_not_missing_and_readable_keys_are_read():
    s3 = FakeS3(500, "InternalError", readable={"p/a": b"data"})
    assert s3_hooks.read_if_exists(s3, "s3://bkt/p/a") == b"data"
    assert s3_hooks.exists(s3, "s3://bkt/p/a") is True
    with pytest.raises(ClientError, match="InternalError"):
        s3_hooks.read_if_exists(s3, "s3://bkt/p/other")
    assert not any(c[0] == "ListObjectsV2" for c in s3.calls)


def test_the_async_rule_is_the_same():
    absent = AsyncFakeS3(FakeS3(403, "AccessDenied", listed=["p/out.json.tmp"]))
    assert asyncio.run(s3_hooks.head_object_if_exists_async(absent, "bkt", "p/out.json")) is None
    present = AsyncFakeS3(FakeS3(403, "AccessDenied", listed=["p/out.json"]))
    with pytest.raises(ClientError):
        asyncio.run(s3_hooks.head_object_if_exists_async(present, "bkt", "p/out.json"))


def test_iter_lines_of_a_missing_key_under_403_is_a_config_error_naming_it():
    from sagemaker_vision.core.validate import ConfigError

    s3 = FakeS3(403, "AccessDenied")
    with pytest.raises(ConfigError, match="s3://bkt/p/manifest.jsonl does not exist"):
        list(s3_hooks.iter_lines(s3, "s3://bkt/p/manifest.jsonl", "manifest"))


def test_read_bytes_of_a_missing_key_under_403_is_a_config_error_naming_it():
    from sagemaker_vision.core.validate import ConfigError

    s3 = FakeS3(403, "AccessDenied")
    with pytest.raises(ConfigError, match="sample_image: s3://bkt/p/img.jpg does not exist"):
        s3_hooks.read_bytes(s3, "s3://bkt/p/img.jpg", "sample_image")


def test_the_training_channel_check_reads_a_403_for_a_missing_object_as_missing():
    """check_s3_url used the provider's check_for_key (HeadObject, only 404 is "missing"): a prefix
    channel, or a missing manifest, got the project's role a ClientError 403 instead of the check."""
    from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook

    class Hook:
        def __init__(self, s3):
            self.s3 = s3

        def get_conn(self):
            return self.s3

        def check_for_key(self, key, bucket_name):  # the provider's: only a 404 is "missing"
            try:
                self.s3.head_object(Bucket=bucket_name, Key=key)
            except ClientError as exc:
                if exc.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
                    return False
                raise
            return True

        def check_for_prefix(self, prefix, bucket_name, delimiter):
            return any(k.startswith(prefix) for k in self.s3.listed)

    hook = SageMakerVisionHook.__new__(SageMakerVisionHook)
    hook.__dict__["s3_hook"] = Hook(FakeS3(403, "AccessDenied", listed=["p/train/a.jpg"]))
    assert hook.check_s3_url("s3://bkt/p/train/") is True  # a prefix channel
    with pytest.raises(Exception, match="does not exist"):
        hook.check_s3_url("s3://bkt/p/train.manifest")
    hook.__dict__["s3_hook"] = Hook(FakeS3(403, "AccessDenied", listed=["p/train.manifest"]))
    with pytest.raises(ClientError, match="AccessDenied|403"):  # there, but not readable
        hook.check_s3_url("s3://bkt/p/train.manifest")


def test_a_lease_that_was_never_taken_reads_as_free_under_403():
    """The lease read took only NoSuchKey/404 as "no lease": the project's role got a ClientError."""
    from sagemaker_vision.hooks.endpoint_lease import EndpointLease
    from sagemaker_vision.triggers.endpoint_lease import EndpointLeaseTrigger

    key = "sagemaker-vision-locks/endpoints/us-east-1/ep.json"
    lease = EndpointLease(FakeS3(403, "AccessDenied"), "bkt", key, "dag/run", ttl_seconds=60)
    assert lease.read().exists is False
    trigger = EndpointLeaseTrigger(bucket="bkt", key=key, owner="dag/run", poll_seconds=1, deadline=0)
    assert asyncio.run(trigger._read(AsyncFakeS3(FakeS3(403, "AccessDenied")))).exists is False
    held = EndpointLease(FakeS3(403, "AccessDenied", listed=[key]), "bkt", key, "dag/run", ttl_seconds=60)
    with pytest.raises(ClientError, match="AccessDenied"):  # there but unreadable: never taken as free
        held.read()
    with pytest.raises(ClientError, match="AccessDenied"):
        asyncio.run(trigger._read(AsyncFakeS3(FakeS3(403, "AccessDenied", listed=[key]))))


def test_the_first_sync_reads_a_403_for_its_missing_state_as_no_state_without_a_warning(caplog):
    import logging

    from sagemaker_vision.hooks.s3_sync import load_state

    log = logging.getLogger("test.s3_sync")
    with caplog.at_level(logging.WARNING, logger="test.s3_sync"):
        assert load_state(FakeS3(403, "AccessDenied"), "bkt", "p/raw/", {}, log) == {}
    assert not caplog.records  # the first sync has no state: nothing to warn about
    with caplog.at_level(logging.WARNING, logger="test.s3_sync"):
        assert load_state(FakeS3(403, "AccessDenied", listed=["p/raw.s3sync-state.json"]), "bkt", "p/raw/", {},
                          log) == {}
    assert "Ignoring the sync state" in caplog.text  # there but unreadable: said, then verified by HEAD


def test_a_403_whose_listing_is_refused_too_says_what_the_role_lacks():
    class Unlistable(FakeS3):
        def list_objects_v2(self, **kw):
            raise _error(403, "AccessDenied", "ListObjectsV2")

    with pytest.raises(ClientError) as err:
        s3_hooks.exists(Unlistable(403, "AccessDenied"), "s3://bkt/locks/ep.json")
    assert err.value.operation_name == "ListObjectsV2"
    assert "s3:ListBucket with an s3:prefix condition" in "\n".join(err.value.__notes__)
    assert "s3://bkt/locks/ep.json" in "\n".join(err.value.__notes__)


class AppearingS3(FakeS3):
    """The key is written between the refused read and the listing (an async result landing)."""

    def list_objects_v2(self, Bucket, Prefix, MaxKeys):
        self.readable[Prefix] = b"{}"
        self.listed = sorted({*self.listed, Prefix})
        return super().list_objects_v2(Bucket=Bucket, Prefix=Prefix, MaxKeys=MaxKeys)


def test_a_key_that_appears_between_the_403_and_the_listing_is_read_not_called_forbidden():
    s3 = AppearingS3(403, "AccessDenied")
    assert s3_hooks.head_object_if_exists(s3, "bkt", "out/x.out") == {"ContentLength": 2}
    assert [c[0] for c in s3.calls] == ["HeadObject", "ListObjectsV2", "HeadObject"]
    s3 = AppearingS3(403, "AccessDenied")
    assert s3_hooks.read_if_exists(s3, "s3://bkt/out/x.out") == b"{}"
    s3 = AppearingS3(403, "AccessDenied")
    assert asyncio.run(s3_hooks.head_object_if_exists_async(AsyncFakeS3(s3), "bkt", "out/x.out")) \
        == {"ContentLength": 2}


def test_a_listed_key_refused_twice_is_a_permission_problem():
    s3 = FakeS3(403, "AccessDenied", listed=["out/x.out"])
    with pytest.raises(ClientError) as refused:
        s3_hooks.head_object_if_exists(s3, "bkt", "out/x.out")
    assert "a permission problem" in " ".join(getattr(refused.value, "__notes__", []))
    assert [c[0] for c in s3.calls] == ["HeadObject", "ListObjectsV2", "HeadObject", "ListObjectsV2"]
