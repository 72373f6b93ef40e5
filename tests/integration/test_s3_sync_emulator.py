"""The S3 sync (core, hooks and operators s3_sync) against the emulator, whose SSE-KMS, SSE-C and
multipart ETags are not MD5s (as on AWS).

Issue 8, defect 5 (every object re-copied on every run in SSE-KMS / SSE-C buckets and for
multipart objects) and issue 9, item 4 (a one-byte edit in a large file, mtime kept, never
synced). Each scenario runs local -> S3 and S3 -> S3.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sagemaker_vision.core import s3_responses
from sagemaker_vision.core import s3_sync as core_sync
from sagemaker_vision.core import s3_sync_state as sync_state
from sagemaker_vision.core.aws_config import botocore_config
from sagemaker_vision.core.s3_sync import S3SyncError
from sagemaker_vision.hooks import s3_sync, s3_upload_journal
from sagemaker_vision.hooks.s3_sync import sync
from sagemaker_vision.operators.s3_sync import S3SyncOperator

pytestmark = pytest.mark.integration

SRC, DEST = "sync-src", "sync-dest"
DEST_URI = f"s3://{DEST}/raw/"
KEY = os.urandom(32)
SRC_KEY = os.urandom(32)
MiB = 1024**2
BIG = core_sync.SMALL_FILE_LIMIT + MiB  # uploaded as multipart (two parts)


class Calls:
    def __init__(self, client: Any):
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3", self._record)

    def _record(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1


@pytest.fixture
def s3(emulator):
    emulator.reset()
    client = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=botocore_config(max_pool_connections=8))
    for bucket in (SRC, DEST):
        client.create_bucket(Bucket=bucket)
    yield client
    emulator.reset()


def _encrypt(s3, bucket: str, algorithm: str) -> None:
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": algorithm},
        "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]}}]})


def _files(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        (root / f"img_{i}.jpg").write_bytes(os.urandom(2000 + i))
    (root / "big.tif").write_bytes(os.urandom(BIG))
    return root


def _edit_one_byte_keep_mtime(path: Path) -> bytes:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


# (bucket default encryption, sync kwargs, read kwargs) per scenario
SCENARIOS = {
    "plain": (None, {}, {}),
    "sse-kms-bucket-default": ("aws:kms", {}, {}),
    "sse-kms-requested": (None, {"sse": "aws:kms", "sse_kms_key_id": "alias/images"}, {}),
    "sse-c": ("AES256", {"sse_customer_key": KEY}, {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY}),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_local_to_s3_copies_once_and_catches_a_one_byte_edit(s3, tmp_path, scenario):
    default, kwargs, read = SCENARIOS[scenario]
    if default:
        _encrypt(s3, DEST, default)
    root = _files(tmp_path / "images")
    calls = Calls(s3)
    assert sync(str(root), DEST_URI, client=s3, **kwargs)["copied"] == 7
    etag = s3.head_object(Bucket=DEST, Key="raw/img_0.jpg", **read)["ETag"]
    assert s3.head_object(Bucket=DEST, Key="raw/big.tif", **read)["ETag"].strip('"').endswith("-2")

    calls.counts.clear()
    again = sync(str(root), DEST_URI, client=s3, **kwargs)
    assert (again["copied"], again["skipped"], again["verified_by_head"]) == (0, 7, 0)
    assert calls.counts["HeadObject"] == 0 and calls.counts["PutObject"] == 0
    assert s3.head_object(Bucket=DEST, Key="raw/img_0.jpg", **read)["ETag"] == etag  # not rewritten

    edited = _edit_one_byte_keep_mtime(root / "big.tif")
    small = _edit_one_byte_keep_mtime(root / "img_3.jpg")
    result = sync(str(root), DEST_URI, client=s3, **kwargs)
    assert (result["copied"], result["skipped"]) == (2, 5)
    assert s3.get_object(Bucket=DEST, Key="raw/big.tif", **read)["Body"].read() == edited
    assert s3.get_object(Bucket=DEST, Key="raw/img_3.jpg", **read)["Body"].read() == small


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_without_the_state_object_md5chksum_metadata_still_prevents_recopies(s3, tmp_path, scenario):
    default, kwargs, _ = SCENARIOS[scenario]
    if default:
        _encrypt(s3, DEST, default)
    root = _files(tmp_path / "images")
    sync(str(root), DEST_URI, client=s3, **kwargs)
    s3.delete_object(Bucket=DEST, Key=sync_state.state_key("raw/"))
    result = sync(str(root), DEST_URI, client=s3, **kwargs)
    # The plain bucket's single-part ETags are MD5s and prove equality without a HEAD.
    expected_heads = 1 if scenario == "plain" else 7
    assert (result["copied"], result["verified_by_head"]) == (0, expected_heads)
    again = sync(str(root), DEST_URI, client=s3, **kwargs)  # the state was rebuilt
    assert (again["copied"], again["verified_by_head"]) == (0, 0)


def test_objects_written_by_someone_else_are_verified_then_copied_never_skipped(s3, tmp_path):
    _encrypt(s3, DEST, "aws:kms")
    root = _files(tmp_path / "images")
    for path in root.iterdir():  # same bytes, uploaded by another tool: no md5chksum, no state
        s3.put_object(Bucket=DEST, Key=f"raw/{path.name}", Body=path.read_bytes())
    result = sync(str(root), DEST_URI, client=s3)
    assert (result["copied"], result["verified_by_head"]) == (7, 7)  # unverifiable: copied once
    assert sync(str(root), DEST_URI, client=s3)["copied"] == 0


@pytest.mark.parametrize("scenario", ["plain", "sse-kms", "sse-c"])
def test_s3_to_s3_copies_once_and_catches_changed_sources(s3, tmp_path, scenario):
    kwargs: dict[str, Any] = {}
    src_put: dict[str, Any] = {}
    if scenario == "sse-kms":
        _encrypt(s3, SRC, "aws:kms")
        _encrypt(s3, DEST, "aws:kms")
    elif scenario == "sse-c":
        _encrypt(s3, SRC, "AES256")
        _encrypt(s3, DEST, "AES256")
        src_put = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": SRC_KEY}
        kwargs = {"sse_customer_key": KEY, "source_sse_customer_key": SRC_KEY}
    bodies = {f"in/img_{i}.jpg": os.urandom(3000 + i) for i in range(5)}
    for key, body in bodies.items():
        s3.put_object(Bucket=SRC, Key=key, Body=body, **src_put)
    s3.upload_file(str(_files(tmp_path / "x") / "big.tif"), SRC, "in/big.tif", ExtraArgs=src_put or None)

    calls = Calls(s3)
    assert sync(f"s3://{SRC}/in/", DEST_URI, client=s3, **kwargs)["copied"] == 6
    calls.counts.clear()
    again = sync(f"s3://{SRC}/in/", DEST_URI, client=s3, **kwargs)
    assert (again["copied"], again["skipped"], again["verified_by_head"]) == (0, 6, 0)
    assert calls.counts["CopyObject"] == calls.counts["HeadObject"] == 0

    changed = bytearray(bodies["in/img_2.jpg"])
    changed[10] ^= 0x01  # same size
    s3.put_object(Bucket=SRC, Key="in/img_2.jpg", Body=bytes(changed), **src_put)
    result = sync(f"s3://{SRC}/in/", DEST_URI, client=s3, **kwargs)
    assert (result["copied"], result["skipped"]) == (1, 5)
    read = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": KEY} if scenario == "sse-c" else {}
    assert s3.get_object(Bucket=DEST, Key="raw/img_2.jpg", **read)["Body"].read() == bytes(changed)


def test_sse_c_on_a_bucket_that_blocks_it_fails_naming_the_keys(s3, tmp_path):
    root = _files(tmp_path / "images")
    with pytest.raises(S3SyncError, match=r"raw/img_0\.jpg \(AccessDenied\)"):
        sync(str(root), DEST_URI, client=s3, sse_customer_key=KEY)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sse": "aws:kmz"}, "^sse: "),
    ({"sse_kms_key_id": "alias/x"}, "^sse_kms_key_id: "),
    ({"sse_customer_key": b"short"}, "^sse_customer_key: "),
    ({"sse": "AES256", "sse_customer_key": KEY}, "^sse_customer_key: "),
])
def test_encryption_arguments_are_checked_before_any_call(tmp_path, kwargs, match):
    class NoCalls:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"client.{name} used")

    with pytest.raises(ValueError, match=match):
        sync(str(tmp_path), DEST_URI, client=NoCalls(), **kwargs)


def test_an_include_filter_keeps_what_the_state_knows_of_the_other_files(s3, tmp_path):
    _encrypt(s3, DEST, "aws:kms")
    root = _files(tmp_path / "images")
    sync(str(root), DEST_URI, client=s3)
    assert sync(str(root), DEST_URI, client=s3, include="*.jpg")["skipped"] == 6
    again = sync(str(root), DEST_URI, client=s3)
    assert (again["copied"], again["verified_by_head"]) == (0, 0)  # big.tif still known


def test_names_s3_or_a_manifest_cannot_carry_are_refused_by_name_and_the_rest_syncs(s3, tmp_path, caplog):
    """Issue 9, item 13b: one file name with a newline failed the whole sync."""
    import logging

    root = tmp_path / "images"
    deep = root / "/".join(["d" * 200] * 6)  # 1,200 bytes of folders: the key passes 1,024 bytes
    deep.mkdir(parents=True)
    fine = ["ok.jpg", "café.jpg", "with space.jpg", "日本.jpg"]
    odd = ["new\nline.jpg", "cr\r.jpg", "tab\there.jpg", "bell\x07.jpg", "sep\u2028.jpg"]
    for name in fine + odd:
        (root / name).write_bytes(name.encode())
    (deep / "long.jpg").write_bytes(b"deep")
    os.close(os.open(os.path.join(os.fsencode(root), b"latin1-\xe9.jpg"), os.O_CREAT | os.O_WRONLY))
    caplog.set_level(logging.WARNING, logger=s3_sync.__name__)
    result = sync(str(root), DEST_URI, client=s3)
    assert (result["copied"], result["refused"]) == (len(fine), len(odd) + 2)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=DEST, Prefix="raw/")["Contents"]}
    assert keys == {f"raw/{n}" for n in fine}
    assert ascii("new\nline.jpg") in caplog.text and "U+000A" in caplog.text
    assert "S3 keys are at most 1024 bytes" in caplog.text and "not valid UTF-8" in caplog.text
    assert ascii("new\nline.jpg") in result["refused_files"]
    again = sync(str(root), DEST_URI, client=s3, delete=True)  # refused names are never deleted either
    assert (again["copied"], again["skipped"], again["deleted"], again["refused"]) == (0, len(fine), 0, 7)


def _open_upload(s3, key: str, bucket: str = DEST) -> str:
    """What a sync killed mid-upload leaves: an upload with one part written and no completion."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=os.urandom(5 * MiB))
    return upload


def _open_uploads(s3, prefix: str = "") -> list[str]:
    return sorted(u["Key"] for u in s3.list_multipart_uploads(Bucket=DEST, Prefix=prefix).get("Uploads", []))


def test_the_next_sync_aborts_a_killed_syncs_uploads_but_not_a_live_ones(s3, tmp_path, caplog):
    """Issue 9, item 13a, for uploads no sync journal lists (an older sync, another tool): aborted once
    idle on S3's clock (here a 1 s margin; the Date header has whole seconds, hence the 2.1 s wait)."""
    import logging
    import time

    root = _files(tmp_path / "images")
    dead = _open_upload(s3, "raw/big.tif")  # the killed run's
    other_prefix = _open_upload(s3, "elsewhere/big.tif")  # not this sync's destination
    time.sleep(2.1)
    live = _open_upload(s3, "raw/other-run.tif")  # a concurrent sync, writing parts right now
    second = boto3.client("s3", endpoint_url=s3.meta.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    started_meanwhile = []

    def concurrent_start(**_: Any) -> None:
        if not started_meanwhile:  # the live run writes its next part; a third run starts after this one did
            second.upload_part(Bucket=DEST, Key="raw/other-run.tif", UploadId=live, PartNumber=2, Body=b"tail")
            started_meanwhile.append(second.create_multipart_upload(Bucket=DEST, Key="raw/new-run.tif")["UploadId"])

    s3.meta.events.register("before-call.s3.ListMultipartUploads", concurrent_start)
    caplog.set_level(logging.INFO, logger=s3_sync.__name__)
    result = sync(str(root), DEST_URI, client=s3, stale_upload_seconds=1.0)
    assert (result["copied"], result["aborted_uploads"]) == (7, 1)
    assert _open_uploads(s3, "raw/") == ["raw/new-run.tif", "raw/other-run.tif"]
    assert _open_uploads(s3, "elsewhere/") == ["elsewhere/big.tif"]
    assert f"Aborted the multipart upload of s3://{DEST}/raw/big.tif (upload {dead}" in caplog.text
    assert f"Leaving the multipart upload of s3://{DEST}/raw/other-run.tif (upload {live}" in caplog.text
    parts = s3.list_parts(Bucket=DEST, Key="raw/other-run.tif", UploadId=live)["Parts"]
    s3.complete_multipart_upload(Bucket=DEST, Key="raw/other-run.tif", UploadId=live, MultipartUpload={
        "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})  # it still finishes
    assert other_prefix and s3.head_object(Bucket=DEST, Key="raw/other-run.tif")["ContentLength"] == 5 * MiB + 4
    # With the default idle margin nothing this young is aborted.
    assert sync(str(root), DEST_URI, client=s3)["aborted_uploads"] == 0


def test_a_one_byte_edit_of_a_multipart_file_keeping_size_and_mtime_is_synced(s3, tmp_path):
    """Issue 9, item 4, on its own: the files predate the upload (as real ones do), so no mtime
    comparison can catch the edit by accident; only the recorded content MD5 can. Fails at e57e7db."""
    import time

    root = _files(tmp_path / "images")
    hour_ago = time.time() - 3600
    for path in root.iterdir():
        os.utime(path, (hour_ago, hour_ago))
    sync(str(root), DEST_URI, client=s3)
    edited = _edit_one_byte_keep_mtime(root / "big.tif")
    result = sync(str(root), DEST_URI, client=s3)
    assert result["copied"] == 1
    assert s3.get_object(Bucket=DEST, Key="raw/big.tif")["Body"].read() == edited


# -- issue 9, item 13a, on the DAG's default path: the upload journal ----------------------------

class Killed(Exception):
    """What a dead worker's requests amount to: none of them reaches S3 any more."""


def _client(s3) -> Any:
    return boto3.client("s3", endpoint_url=s3.meta.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=botocore_config(max_pool_connections=16))


def _ti(try_number: int, run_id: str = "scheduled__2026-11-22T00:00:00+00:00") -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(dag_id="shapes-detector.pipeline", task_id="sync_images", run_id=run_id,
                           map_index=-1, try_number=try_number)


def _sync_task(client, root: Path, ti: Any) -> dict[str, Any]:
    """The DAG's sync task as a worker runs it: the operator's defaults, this try's task instance."""
    op = S3SyncOperator(task_id="sync_images", source=str(root), dest=DEST_URI, include="*.jpg,*.tif")
    op.__dict__["client"] = client  # the worker's client, on the emulator
    return op.execute({"ti": ti})


def _journal(s3) -> dict[str, Any]:
    import json

    return json.loads(s3.get_object(Bucket=DEST, Key=sync_state.journal_key("raw/"))["Body"].read())["attempts"]


def test_the_next_try_aborts_a_killed_tries_uploads_at_once_and_leaves_a_live_run_alone(s3, tmp_path):
    """Issue 9, item 13a, with the operator's defaults (as the DAG runs it): try 1 is killed after
    CreateMultipartUpload and one UploadPart; try 2 comes 30 s later (Airflow's retry delay), far
    below the 15-minute idle margin, and must abort the upload at once, whatever its age, while
    another DAG run's sync into the same partition is mid-upload and keeps its upload. Fails at
    26768bf (try 2 left the killed upload open)."""
    root = _files(tmp_path / "images")
    worker = _client(s3)
    sent: Counter[str] = Counter()
    dead = threading.Event()

    def count(event_name: str, **_: Any) -> None:
        if dead.is_set():
            raise Killed("the worker was killed")  # no request of the dead process gets out
        sent[event_name.rsplit(".", 1)[-1]] += 1

    worker.meta.events.register("before-call.s3", count)
    worker.meta.events.register("after-call.s3.UploadPart", lambda **_: dead.set())  # killed once a part is in
    with pytest.raises((Killed, S3SyncError)):
        _sync_task(worker, root, _ti(1))
    [killed] = s3.list_multipart_uploads(Bucket=DEST, Prefix="raw/")["Uploads"]
    assert killed["Key"] == "raw/big.tif" and sent["CreateMultipartUpload"] == 1
    assert s3.list_parts(Bucket=DEST, Key="raw/big.tif", UploadId=killed["UploadId"]).get("Parts")
    assert sent["AbortMultipartUpload"] == 0  # the dying process could not clean up

    # Another DAG run (a manual one) syncs other files into the same partition: mid-upload now.
    other = _files(tmp_path / "other")
    for p in other.iterdir():
        p.rename(other / f"other-{p.name}")
    live_client, paused, proceed = _client(s3), threading.Event(), threading.Event()

    def hold_second_part(event_name: str, params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            paused.set()
            assert proceed.wait(20), "the test never let the live run go on"

    live_client.meta.events.register("before-parameter-build.s3.UploadPart", hold_second_part)
    live_result: list[Any] = []
    live = threading.Thread(target=lambda: live_result.append(
        _sync_task(live_client, other, _ti(1, run_id="manual__2026-11-23T09:00:00+00:00"))))
    live.start()
    try:
        assert paused.wait(20)
        retry = _sync_task(_client(s3), root, _ti(2))  # the automatic retry, with its own worker
        open_now = s3.list_multipart_uploads(Bucket=DEST, Prefix="raw/")["Uploads"]
    finally:
        proceed.set()
        live.join(20)
    assert (retry["copied"], retry["skipped"], retry["aborted_uploads"]) == (1, 6, 1)  # try 1 sent the small ones
    assert [u["Key"] for u in open_now] == ["raw/other-big.tif"]  # the live run's, and only it
    assert live_result and live_result[0]["copied"] == 7  # the live run completed its upload
    assert s3.list_multipart_uploads(Bucket=DEST, Prefix="raw/").get("Uploads", []) == []
    assert _journal(s3) == {}  # every attempt that finished took its entry out
    for upload_id, key in ((killed["UploadId"], "raw/big.tif"), (open_now[0]["UploadId"], "raw/other-big.tif")):
        with pytest.raises(ClientError, match="NoSuchUpload"):  # aborted, or completed: a rerun finds nothing
            s3.abort_multipart_upload(Bucket=DEST, Key=key, UploadId=upload_id)
    assert s3.get_object(Bucket=DEST, Key="raw/big.tif")["Body"].read() == (root / "big.tif").read_bytes()


def test_another_runs_attempt_is_aborted_only_once_its_heartbeat_is_stale_on_s3s_clock(s3, tmp_path, monkeypatch):
    """A crashed sync of another DAG run whose journal heartbeat is 16 minutes old on S3's clock is
    dead; one that beat a minute ago is alive. Worker time is never read: the heartbeats are S3
    times and the comparison uses the Date of S3's response."""
    from datetime import datetime, timedelta

    root = _files(tmp_path / "images")
    crashed = s3.create_multipart_upload(Bucket=DEST, Key="raw/crashed.tif")["UploadId"]
    beating = s3.create_multipart_upload(Bucket=DEST, Key="raw/beating.tif")["UploadId"]
    owner = {"dag_id": "shapes-detector.pipeline", "task_id": "sync_images", "run_id": "manual__x",
             "map_index": -1, "try_number": 1}
    journal = s3_upload_journal.UploadJournal(s3, DEST, "raw/", owner=owner,
                                              stale_seconds=sync_state.STALE_UPLOAD_SECONDS)

    def write(attempts: dict[str, Any], now: Any) -> None:
        attempts["crashed"] = {"owner": {**owner, "run_id": "manual__y"}, "uploads": {crashed: "raw/crashed.tif"},
                               "heartbeat": (now - timedelta(minutes=16)).isoformat()}
        attempts["beating"] = {"owner": {**owner, "run_id": "manual__z"}, "uploads": {beating: "raw/beating.tif"},
                               "heartbeat": (now - timedelta(minutes=1)).isoformat()}

    journal.update(write)

    class WorkerClock(datetime):  # a worker whose clock is off by any amount: it is never asked
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            raise AssertionError("the sync read the worker's clock")

    for module in (s3_responses, sync_state, s3_upload_journal):  # every module of the sync that reads a datetime
        monkeypatch.setattr(module, "datetime", WorkerClock)
    result = _sync_task(_client(s3), root, _ti(1))
    assert result["aborted_uploads"] == 1
    assert _open_uploads(s3, "raw/") == ["raw/beating.tif"]
    assert set(_journal(s3)) == {"beating"}


def test_attempt_is_dead_rules():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 22, 0, 30, tzinfo=UTC)
    me = {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": -1, "try_number": 3}
    fresh = (now - timedelta(seconds=5)).isoformat()
    dead = sync_state.attempt_is_dead
    assert dead({"owner": {**me, "try_number": 2}, "heartbeat": fresh}, me, now, 900)  # an earlier try
    assert dead({"owner": {**me, "try_number": 3}, "heartbeat": fresh}, me, now, 900) is None
    assert dead({"owner": {**me, "map_index": 1, "try_number": 1}, "heartbeat": fresh}, me, now, 900) is None
    assert dead({"owner": None, "heartbeat": fresh}, None, now, 900) is None
    assert dead({"owner": None, "heartbeat": (now - timedelta(seconds=900)).isoformat()}, None, now, 900)
    assert dead({"owner": None, "heartbeat": "garbage"}, me, now, 0) is None  # no usable time: alive
    assert dead({"owner": None, "heartbeat": fresh}, me, None, 0) is None


def test_an_upload_whose_id_cannot_be_journaled_is_aborted_and_its_file_fails(s3, tmp_path):
    """Never an upload nobody can find again: if the journal write after CreateMultipartUpload fails,
    the new upload is aborted before any part is sent, the file fails by name, the others sync."""
    root = _files(tmp_path / "images")

    def deny_journal(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == sync_state.journal_key("raw/"):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied by the test"}}, "PutObject")

    s3.meta.events.register("before-parameter-build.s3.PutObject", deny_journal)
    with pytest.raises(S3SyncError, match=r"raw/big\.tif") as failed:
        sync(str(root), DEST_URI, client=s3)
    assert [f.key for f in failed.value.failures] == ["raw/big.tif"]
    assert _open_uploads(s3, "raw/") == []
    assert sorted(s3_sync.list_s3(s3, DEST, "raw/")) == [f"img_{i}.jpg" for i in range(6)]


def test_a_running_sync_renews_its_heartbeat_on_s3s_clock(s3, tmp_path, monkeypatch):
    """What keeps a long live sync from being taken for dead by another run's sync: its journal entry's
    heartbeat (an S3 time) moves on while it uploads, and the entry goes when it is done."""
    import time

    monkeypatch.setattr(s3_upload_journal, "HEARTBEAT_SECONDS", 0.2)
    root = _files(tmp_path / "images")
    client, paused, proceed = _client(s3), threading.Event(), threading.Event()

    def hold_second_part(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            paused.set()
            assert proceed.wait(20)

    client.meta.events.register("before-parameter-build.s3.UploadPart", hold_second_part)
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(sync(str(root), DEST_URI, client=client)))
    worker.start()
    try:
        assert paused.wait(20)
        [first] = _journal(s3).values()
        time.sleep(1.6)  # S3's Date header counts whole seconds
        [later] = _journal(s3).values()
    finally:
        proceed.set()
        worker.join(20)
    assert list(first["uploads"].values()) == ["raw/big.tif"] and later["uploads"] == first["uploads"]
    assert datetime_of(later["heartbeat"]) > datetime_of(first["heartbeat"])
    assert done and done[0]["copied"] == 7 and _journal(s3) == {}


def datetime_of(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)
