"""Label Studio backend against a real Label Studio server and the embedded AWS emulator.

One server per test run (the session fixture in tests/label_studio_server.py); every test works
in its own project, so the tests are independent. Annotations are submitted through the REST
API exactly as the labelling UI submits them (``POST /api/tasks/{id}/annotations/``, boxes in
percent of the image).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import requests
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.common.compat.sdk import AirflowException
from airflow.sdk.exceptions import TaskDeferred
from airflow.triggers.base import TriggerEvent

from local_aws.env import LABEL_STUDIO_READER_KEY
from sagemaker_vision.core.label_studio import (
    DEFAULT_PRESIGN_CONN_ID,
    TaskProgress,
    presigned_url_signer,
    rectangle_label_config,
    task_progress,
)
from sagemaker_vision.core.manifest import validate_manifest
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks.label_studio import LabelStudioError, LabelStudioHook
from sagemaker_vision.operators.label_studio import LabelStudioLabelingOperator
from sagemaker_vision.triggers.label_studio import LabelStudioTrigger
from tests.label_studio_server import label_studio  # noqa: F401 - the session fixture

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "include" / "sample_data" / "images"
CLASSES = ["circle", "square", "triangle"]
CLASS_MAP = {"0": "circle", "1": "square", "2": "triangle"}
ATTR = "bounding-box"

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def env(label_studio, emulator_env, monkeypatch):  # noqa: F811 - the imported fixture
    """Airflow connections to the Label Studio server and the emulator, plus a fresh bucket."""
    url, token = label_studio
    monkeypatch.setenv("AIRFLOW_CONN_LABEL_STUDIO_DEFAULT",
                       json.dumps({"conn_type": "http", "host": url, "password": token}))
    s3 = boto3.client("s3", endpoint_url=emulator_env.endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"ls-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    return SimpleNamespace(url=url, token=token, s3=s3, bucket=bucket, endpoint=emulator_env.endpoint_url,
                           headers={"Authorization": f"Token {token}"})


def _upload(env, prefix: str, names: list[str]) -> list[str]:
    uris = []
    for name in names:
        env.s3.put_object(Bucket=env.bucket, Key=f"{prefix}{name}", Body=(IMAGES / name).read_bytes())
        uris.append(f"s3://{env.bucket}/{prefix}{name}")
    return uris


def _tasks_by_uri(env, project_id: int) -> dict[str, dict[str, Any]]:
    tasks = LabelStudioHook().list_tasks(project_id)
    return {t["data"].get("s3_uri") or t["data"]["image"]: t for t in tasks}


def _box(label: str, x: float, y: float, w: float, h: float, size: tuple[int, int]) -> dict[str, Any]:
    """One rectanglelabels result as the labelling UI posts it (percent of the image)."""
    return {
        "id": uuid.uuid4().hex[:10], "from_name": "label", "to_name": "image", "type": "rectanglelabels",
        "original_width": size[0], "original_height": size[1], "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]},
    }


def _annotate(env, task_id: int, result: list[dict[str, Any]], *, cancelled: bool = False) -> dict[str, Any]:
    response = requests.post(f"{env.url}/api/tasks/{task_id}/annotations/", headers=env.headers,
                             json={"result": result, "was_cancelled": cancelled}, timeout=30)
    assert response.status_code == 201, response.text[:500]
    return response.json()


def _read_manifest(env, uri: str) -> dict[str, dict[str, Any]]:
    bucket, key = uri[5:].split("/", 1)
    body = env.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    validate_manifest(body.splitlines(), label_attribute=ATTR, source=uri)
    lines = [json.loads(line) for line in body.splitlines()]
    return {line["source-ref"]: line for line in lines}


def _boxes(line: dict[str, Any]) -> list[tuple[int, int, int, int, int]]:
    return [(a["class_id"], a["left"], a["top"], a["width"], a["height"]) for a in line[ATTR]["annotations"]]


def _size(line: dict[str, Any]) -> tuple[int, int]:
    size = line[ATTR]["image_size"][0]
    return size["width"], size["height"]


def _first_event(trigger: LabelStudioTrigger) -> TriggerEvent:
    async def first() -> TriggerEvent:
        async for event in trigger.run():
            return event
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(first())


# --------------------------------------------------------------------------- no server needed


def test_trigger_serialize_round_trip():
    trigger = LabelStudioTrigger(project_id=7, expected_tasks=12, min_annotations=2, poll_interval=5,
                                 max_attempts=30, label_studio_conn_id="ls_other")
    classpath, kwargs = trigger.serialize()
    assert classpath == "sagemaker_vision.triggers.label_studio.LabelStudioTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs  # JSON-serialisable as stored by the triggerer
    rebuilt = LabelStudioTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {"project_id": 7, "expected_tasks": 12, "min_annotations": 2, "poll_interval": 5.0,
                      "max_attempts": 30, "label_studio_conn_id": "ls_other"}


def test_task_progress_counts_annotated_skipped_and_pending():
    tasks = [
        {"total_annotations": 2, "cancelled_annotations": 0},  # annotated twice
        {"total_annotations": 1, "cancelled_annotations": 3},  # annotated once, skipped by others
        {"total_annotations": 0, "cancelled_annotations": 1},  # skipped
        {"total_annotations": 0, "cancelled_annotations": 0},  # to do
    ]
    assert task_progress(tasks, 1) == TaskProgress(total=4, annotated=2, skipped=1)
    at_two = task_progress(tasks, 2)
    assert (at_two.annotated, at_two.skipped, at_two.pending, at_two.complete) == (1, 2, 1, False)
    assert task_progress(tasks[:3], 1).describe() == "2 of 3 tasks annotated, 1 skipped, 0 to do"
    assert not task_progress([], 1).complete


def test_label_config_rejects_bad_class_lists():
    with pytest.raises(ValueError, match=r"labels: duplicate class names \['a'\]"):
        rectangle_label_config(["a", "b", "a"])
    with pytest.raises(ValueError, match=r"labels\[1\] must be a non-empty string"):
        rectangle_label_config(["a", " "])
    with pytest.raises(ValueError, match="labels: must be a non-empty list"):
        rectangle_label_config("circle")


class _FlakyHandler(BaseHTTPRequestHandler):
    """Answers 503 to the first ``fail`` requests of each path, then 200 with a project."""

    def _answer(self) -> None:
        server = self.server
        server.seen.append((self.command, self.path, self.headers.get("Authorization")))
        count = sum(1 for _, path, _ in server.seen if path == self.path)
        status, body = (503, b"<html><title>Service Unavailable</title></html>") if count <= server.fail \
            else (200, json.dumps({"id": 1, "task_number": 3}).encode())
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_server(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    server.seen, server.fail = [], 2
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    conn = {"conn_type": "http", "host": url, "password": "tok"}
    monkeypatch.setenv("AIRFLOW_CONN_LS_FLAKY", json.dumps(conn))
    yield server, url
    server.shutdown()
    server.server_close()


def test_hook_retries_gets_on_5xx_but_never_reposts(flaky_server):
    server, url = flaky_server
    hook = LabelStudioHook("ls_flaky", backoff_factor=0.01)
    assert hook.get_project(1) == {"id": 1, "task_number": 3}
    assert [s[:2] for s in server.seen] == [("GET", "/api/projects/1/")] * 3
    assert all(auth == "Token tok" for _, _, auth in server.seen)

    server.seen.clear()
    with pytest.raises(LabelStudioError) as err:
        hook.import_tasks(5, [{"data": {"image": "s3://b/a.jpg"}}])
    assert str(err.value) == f"POST {url}/api/projects/5/import -> HTTP 503: Service Unavailable"
    assert err.value.status == 503 and len(server.seen) == 1  # a POST is not retried: no double import

    server.seen.clear()
    assert asyncio.run(LabelStudioHook("ls_flaky", backoff_factor=0.01).arequest("GET", "/api/projects/2/")) \
        == {"id": 1, "task_number": 3}
    assert len(server.seen) == 3


# --------------------------------------------------------------------------- against the server


@pytest.mark.label_studio
def test_project_from_class_list_is_created_once_and_kept_in_sync(env):
    hook = LabelStudioHook()
    title = f"config {uuid.uuid4().hex[:8]}"
    odd = 'a "quoted" <odd> & name'
    project = hook.get_or_create_project(title, rectangle_label_config([*CLASSES, odd]))
    parsed = hook.get_project(project["id"])["parsed_label_config"]["label"]
    assert parsed["type"] == "RectangleLabels" and parsed["to_name"] == ["image"]
    assert parsed["labels"] == [*CLASSES, odd]

    again = hook.get_or_create_project(title, rectangle_label_config([*CLASSES, odd]))
    assert again["id"] == project["id"]
    # A project whose title merely contains ours is not a match.
    longer = hook.get_or_create_project(f"{title} v2", rectangle_label_config(CLASSES))
    assert longer["id"] != project["id"]
    assert [p["id"] for p in hook.find_projects(title)] == [project["id"]]

    changed = hook.get_or_create_project(title, rectangle_label_config(CLASSES))
    assert changed["id"] == project["id"]
    assert hook.get_project(project["id"])["parsed_label_config"]["label"]["labels"] == CLASSES


@pytest.mark.label_studio
def test_operator_waits_for_annotators_then_writes_the_manifest_to_the_pixel(env):
    names = ["shape_000.jpg", "shape_001.jpg", "shape_002.jpg", "shape_003.jpg", "shape_004.jpg"]
    uris = _upload(env, "raw/", names)
    a, b, c, d, e = uris
    manifest_uri = f"s3://{env.bucket}/labels/output.manifest"
    title = f"shapes {uuid.uuid4().hex[:8]}"

    def operator(image_uris: list[str], **kwargs: Any) -> LabelStudioLabelingOperator:
        settings = {"poke_interval": 0.2, "timeout": 60, "presign_expiry": 3600, **kwargs}
        return LabelStudioLabelingOperator(
            task_id="label", project_title=title, labels=CLASSES, image_uris=image_uris,
            output_manifest_uri=manifest_uri, label_attribute=ATTR, **settings)

    # 1. First run: the project is created, one task per image, nobody has labelled yet: defer.
    op = operator(uris)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LabelStudioTrigger) and deferred.value.method_name == "execute_complete"
    assert (trigger.expected_tasks, trigger.min_annotations, trigger.poll_interval) == (5, 1, 0.2)
    assert trigger.max_attempts == 300  # timeout / poke_interval
    project_id = trigger.project_id
    tasks = _tasks_by_uri(env, project_id)
    assert sorted(tasks) == sorted(uris)
    # Tasks hold a presigned GET URL (that really fetches the image) and the s3:// source.
    image_url = tasks[a]["data"]["image"]
    assert image_url.startswith(env.endpoint) and "X-Amz-Signature=" in image_url
    fetched = requests.get(image_url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == (IMAGES / names[0]).read_bytes()

    # 2. Annotators at work (image sizes: 000/003 are 320x240, 001/004 256x256, 002 240x320).
    _annotate(env, tasks[a]["id"], [_box("circle", 12.5, 25, 25, 50, (320, 240)),
                                    _box("triangle", 50, 10, 33.3, 20.1, (320, 240))])
    _annotate(env, tasks[b]["id"], [_box("square", 0, 0, 50, 50, (256, 256))])  # superseded below
    _annotate(env, tasks[b]["id"], [_box("square", 25, 25, 50, 50, (256, 256))])
    _annotate(env, tasks[c]["id"], [])  # looked, found nothing: an image with no objects
    _annotate(env, tasks[d]["id"], [_box("square", 75, 50, 25, 50, (320, 240))])
    _annotate(env, tasks[d]["id"], [_box("circle", 0, 0, 10, 10, (320, 240))], cancelled=True)

    # 3. The trigger polls: 4 of 5 done, the 5th untouched -> it gives up after its attempts.
    short = LabelStudioTrigger(**{**trigger.serialize()[1], "max_attempts": 2, "poll_interval": 0.05})
    timeout = _first_event(short)
    assert timeout.payload["status"] == "timeout"
    assert timeout.payload["progress"] == {"total": 5, "annotated": 4, "skipped": 0, "pending": 1}
    with pytest.raises(AirflowException, match=f"project {project_id} '{title}' was not done after 60 s: "
                                               "4 of 5 tasks annotated, 0 skipped, 1 to do after 2 polls. "
                                               "Stopped waiting, but the project is still open"):
        op.execute_complete({}, timeout.payload)

    # 4. The last image is skipped by its annotator: the project is done.
    _annotate(env, tasks[e]["id"], [], cancelled=True)
    done = _first_event(trigger)
    assert done.payload == {"status": "success", "project_id": project_id,
                            "message": "4 of 5 tasks annotated, 1 skipped, 0 to do",
                            "progress": {"total": 5, "annotated": 4, "skipped": 1, "pending": 0}}
    result = op.execute_complete({}, done.payload)
    assert result == {"manifest_uri": manifest_uri, "images": 4, "skipped_unannotated": 1, "boxes": 4,
                      "project_id": project_id, "backend": "label_studio"}

    manifest = _read_manifest(env, manifest_uri)
    assert sorted(manifest) == sorted([a, b, c, d])
    # 12.5%..37.5% of 320 = 40..120; 25%..75% of 240 = 60..180.
    # 50%..83.3% of 320 = 160..266.56 -> 160..267; 10%..30.1% of 240 = 24..72.24 -> 24..72.
    assert _size(manifest[a]) == (320, 240)
    assert _boxes(manifest[a]) == [(0, 40, 60, 80, 120), (2, 160, 24, 107, 48)]
    assert _boxes(manifest[b]) == [(1, 64, 64, 128, 128)]  # the newer annotation wins
    assert _size(manifest[c]) == (240, 320) and _boxes(manifest[c]) == []  # size read from S3
    assert _boxes(manifest[d]) == [(1, 240, 120, 80, 120)]  # the cancelled one is ignored
    for line in manifest.values():
        meta = line[f"{ATTR}-metadata"]
        assert meta["class-map"] == CLASS_MAP and meta["human-annotated"] == "yes"
        assert meta["job-name"] == f"label-studio/project-{project_id}"
        assert len(meta["objects"]) == len(line[ATTR]["annotations"])
    first_body = env.s3.get_object(Bucket=env.bucket, Key="labels/output.manifest")["Body"].read()

    # 5. Re-run with the same images, not deferrable: nothing imported twice, same manifest.
    rerun = operator(uris, deferrable=False)
    assert rerun.execute({})["images"] == 4
    assert len(_tasks_by_uri(env, project_id)) == 5
    assert LabelStudioHook().project_progress(project_id).task_number == 5
    rebody = env.s3.get_object(Bucket=env.bucket, Key="labels/output.manifest")["Body"].read()
    assert [json.loads(x)[ATTR] for x in rebody.splitlines()] == \
        [json.loads(x)[ATTR] for x in first_body.splitlines()]

    # 6. One more image: only it is imported, and the synchronous wait times out naming the progress.
    (f,) = _upload(env, "raw/", ["shape_005.jpg"])
    grown = operator([*uris, f], deferrable=False, timeout=1)
    with pytest.raises(AirflowException,
                       match="was not done after 1 s: 4 of 6 tasks annotated, 1 skipped, 1 to do. "
                             "Stopped waiting, but the project is still open.*resume waiting on the same project"):
        grown.execute({})
    assert sorted(_tasks_by_uri(env, project_id)) == sorted([*uris, f])
    # Paging: 6 tasks in pages of 4 (async) and of 2 (sync), each task exactly once.
    hook = LabelStudioHook()
    assert sorted(t["id"] for t in hook.list_tasks(project_id, page_size=2)) == \
        sorted(t["id"] for t in asyncio.run(hook.alist_tasks(project_id, page_size=4)))
    assert len({t["id"] for t in hook.list_tasks(project_id, page_size=2)}) == 6


KEY_FIELDS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


def _resolved_signer(env, task: dict[str, Any]) -> tuple[str | None, str]:
    """What the annotator's browser gets: Label Studio's 303 to a URL it presigned (signer, URL)."""
    task = requests.get(f"{env.url}/api/tasks/{task['id']}/", headers=env.headers, timeout=10).json()
    assert task["data"]["image"].startswith(f"/tasks/{task['id']}/resolve/")
    redirect = requests.get(env.url + task["data"]["image"], headers=env.headers, timeout=10,
                            allow_redirects=False)
    assert redirect.status_code == 303, redirect.text[:300]
    location = redirect.headers["Location"]
    return presigned_url_signer(location)[0], location


@pytest.mark.label_studio
def test_s3_storage_mode_sends_no_keys_and_label_studio_signs_as_itself(env, sent, monkeypatch):
    """s3_storage: the storage is created without keys; Label Studio presigns with its own identity.

    The test server's own identity is the emulator's reader (tests/label_studio_server.py); the
    operator needs no reader connection in this mode, so it is removed here.
    """
    monkeypatch.delenv("AIRFLOW_CONN_AWS_LABEL_STUDIO_READER")
    names = ["shape_006.jpg", "shape_007.jpg", "shape_008.jpg"]
    uris = _upload(env, "pool/", names)
    env.s3.put_object(Bucket=env.bucket, Key="pool/README.txt", Body=b"not an image")
    manifest_uri = f"s3://{env.bucket}/labels/storage.manifest"

    def operator(**kwargs: Any) -> LabelStudioLabelingOperator:
        return LabelStudioLabelingOperator(
            task_id="label", project_title=f"storage {env.bucket}", labels=CLASSES,
            images_prefix=f"s3://{env.bucket}/pool/", image_refs="s3_storage", presign_expiry=120,
            output_manifest_uri=manifest_uri, label_attribute=ATTR, poke_interval=0.2, timeout=30, **kwargs)

    with pytest.raises(TaskDeferred) as deferred:
        operator().execute({})
    project_id = deferred.value.trigger.project_id
    tasks = _tasks_by_uri(env, project_id)
    assert sorted(tasks) == sorted(uris)  # Label Studio's sync found the 3 images, not the README
    assert all(t["data"]["image"].startswith("s3://") for t in tasks.values())
    (storage,) = requests.get(f"{env.url}/api/storages/s3", headers=env.headers,
                              params={"project": project_id}, timeout=10).json()
    assert (storage["status"], storage["last_sync_count"]) == ("completed", 3)
    assert storage["s3_endpoint"] == env.endpoint
    # No keys at all: Label Studio's API takes them as optional and falls back to its own identity.
    (created,) = [json.loads(b.split(" ", 2)[2].rsplit(" ", 1)[0]) for b in sent
                  if b.startswith("POST /api/storages/s3 ")]
    assert {k: created[k] for k in KEY_FIELDS} == dict.fromkeys(KEY_FIELDS)
    assert (created["presign"], created["presign_ttl"]) == (True, 2)  # 120 s, in minutes
    _no_secret_in(sent)

    # Label Studio presigns on view, signed by the server's own identity, for presign_ttl minutes.
    signer, location = _resolved_signer(env, tasks[uris[0]])
    assert signer == LABEL_STUDIO_READER_KEY and "X-Amz-Expires=120&" in location
    assert _airflow_principal()[0] not in location
    image = requests.get(location, timeout=10)
    assert image.status_code == 200 and image.content == (IMAGES / names[0]).read_bytes()

    # A storage reused from an older version still holds keys it was given (they take precedence
    # over the server's identity); the next run erases them.
    old = requests.patch(f"{env.url}/api/storages/s3/{storage['id']}", headers=env.headers, timeout=10,
                         json={"aws_access_key_id": "AKIAOLDSTOREDKEY", "aws_secret_access_key": "old-secret"})
    assert old.status_code == 200, old.text[:300]
    assert _resolved_signer(env, tasks[uris[0]])[0] == "AKIAOLDSTOREDKEY"

    sizes = {uris[0]: (320, 240), uris[1]: (256, 256), uris[2]: (240, 320)}
    _annotate(env, tasks[uris[0]]["id"], [_box("triangle", 0, 0, 100, 100, sizes[uris[0]])])
    _annotate(env, tasks[uris[1]]["id"], [_box("circle", 10, 20, 30, 40, sizes[uris[1]])])
    _annotate(env, tasks[uris[2]]["id"], [])

    result = operator(deferrable=False).execute({})  # re-syncs (nothing new) and publishes at once
    assert (result["images"], result["skipped_unannotated"], result["boxes"]) == (3, 0, 2)
    assert len(_tasks_by_uri(env, project_id)) == 3
    assert _resolved_signer(env, tasks[uris[0]])[0] == LABEL_STUDIO_READER_KEY  # the stored keys are gone
    patched = [json.loads(b.split(" ", 2)[2].rsplit(" ", 1)[0]) for b in sent
               if b.startswith("PATCH /api/storages/s3/")]
    assert patched and all({k: body[k] for k in KEY_FIELDS} == dict.fromkeys(KEY_FIELDS) for body in patched)
    _no_secret_in(sent)
    manifest = _read_manifest(env, manifest_uri)
    assert _boxes(manifest[uris[0]]) == [(2, 0, 0, 320, 240)]
    # 10%..40% of 256 = 25.6..102.4 -> 26..102; 20%..60% = 51.2..153.6 -> 51..154.
    assert _boxes(manifest[uris[1]]) == [(0, 26, 51, 76, 103)]
    assert _size(manifest[uris[2]]) == (240, 320) and _boxes(manifest[uris[2]]) == []


@pytest.mark.label_studio
def test_hook_errors_name_the_status_and_url(env, monkeypatch):
    hook = LabelStudioHook()
    with pytest.raises(LabelStudioError) as err:
        hook.get_project(987654)
    assert str(err.value).startswith(f"GET {env.url}/api/projects/987654/ -> HTTP 404: ")
    assert "No Project matches the given query" in str(err.value) and err.value.status == 404

    with pytest.raises(LabelStudioError, match=rf"POST {env.url}/api/projects/ -> HTTP 400: .*title"):
        hook.request("POST", "/api/projects/", json_body={"title": "ab", "label_config": "<View/>"})
    with pytest.raises(LabelStudioError, match=f"GET {env.url}/api/projects/987654/ -> HTTP 404"):
        asyncio.run(hook.arequest("GET", "/api/projects/987654/"))

    wrong = "wrong-token-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_LS_WRONG", json.dumps({"conn_type": "http", "host": env.url,
                                                            "extra": {"token": wrong}}))
    with pytest.raises(LabelStudioError) as err:
        LabelStudioHook("ls_wrong").find_projects("anything")
    assert str(err.value).startswith(
        f"GET {env.url}/api/projects/?title=anything&page=1&page_size=100 -> HTTP 401")
    assert wrong not in str(err.value) and wrong not in repr(LabelStudioHook("ls_wrong"))

    # Host and port in their own fields, nobody listening there.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = {"conn_type": "http", "host": "127.0.0.1", "port": port, "password": "x"}
    monkeypatch.setenv("AIRFLOW_CONN_LS_DOWN", json.dumps(down))
    with pytest.raises(LabelStudioError,
                       match=rf"GET http://127.0.0.1:{port}/api/projects/1/ failed: ConnectionError"):
        LabelStudioHook("ls_down", max_retries=1, backoff_factor=0.01).get_project(1)

    monkeypatch.setenv("AIRFLOW_CONN_LS_NOTOKEN", json.dumps({"conn_type": "http", "host": env.url}))
    with pytest.raises(LabelStudioError, match="connection 'ls_notoken' has no API token"):
        LabelStudioHook("ls_notoken").get_project(1)


@pytest.mark.label_studio
def test_operator_refuses_bad_input_before_creating_anything(env):
    title = f"never {uuid.uuid4().hex[:8]}"
    bad = LabelStudioLabelingOperator(task_id="label", project_title=title, labels=CLASSES,
                                      image_uris=["s3://ok-bucket/a.jpg", "http://example.com/b.jpg"],
                                      output_manifest_uri=f"s3://{env.bucket}/m.manifest")
    with pytest.raises(ValueError, match=r"image_uris\[1\]: 'http://example.com/b.jpg' is not an s3:// URI"):
        bad.execute({})
    empty = LabelStudioLabelingOperator(task_id="label", project_title=title, labels=CLASSES,
                                        images_prefix=f"s3://{env.bucket}/nothing/",
                                        output_manifest_uri=f"s3://{env.bucket}/m.manifest")
    with pytest.raises(ValueError, match=f"images_prefix: s3://{env.bucket}/nothing/ holds no"):
        empty.execute({})
    assert LabelStudioHook().find_projects(title) == []
    with pytest.raises(ValueError, match="give exactly one of image_uris and images_prefix"):
        LabelStudioLabelingOperator(task_id="x", project_title=title, labels=CLASSES,
                                    output_manifest_uri="s3://b/m")


# --------------------------------------------------------------------------- the reader principal


AIRFLOW_KEY, AIRFLOW_SECRET = "AKIAAIRFLOWPRINCIPAL", "airflow-principal-secret-canary"
AIRFLOW_TOKEN = "airflow-principal-session-token-canary"


@pytest.fixture
def sent(env, monkeypatch):
    """Every request body the hook sends to Label Studio, as JSON text; aws_default gets keys of
    its own (the emulator's fake key and secret are the same word), and a session token, so that a
    leak is visible."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": AIRFLOW_KEY, "password": AIRFLOW_SECRET,
        "extra": {"region_name": "us-east-1", "endpoint_url": env.endpoint, "aws_session_token": AIRFLOW_TOKEN}}))
    bodies: list[str] = []
    original = LabelStudioHook.request

    def recording(self, method, path, **kwargs):
        bodies.append(f"{method} {path} {json.dumps(kwargs.get('json_body'))} {json.dumps(kwargs.get('params'))}")
        return original(self, method, path, **kwargs)

    monkeypatch.setattr(LabelStudioHook, "request", recording)
    return bodies


def _airflow_principal() -> tuple[str, str, str | None]:
    creds = AwsBaseHook(aws_conn_id="aws_default", client_type="s3").get_credentials()
    return creds.access_key, creds.secret_key, creds.token


def _reader_principal() -> tuple[str, str]:
    creds = AwsBaseHook(aws_conn_id=DEFAULT_PRESIGN_CONN_ID, client_type="s3").get_credentials()
    return creds.access_key, creds.secret_key


def _no_secret_in(bodies: list[str]) -> None:
    """No body sent to Label Studio holds the Airflow principal's key id, secret or token, nor the
    reader's secret (the reader's key id is in its presigned URLs, by design)."""
    assert _airflow_principal() == (AIRFLOW_KEY, AIRFLOW_SECRET, AIRFLOW_TOKEN)
    reader_secret = f"{LABEL_STUDIO_READER_KEY}-secret"  # local_aws.env: the emulator's reader
    assert bodies
    for body in bodies:
        for secret in (AIRFLOW_KEY, AIRFLOW_SECRET, AIRFLOW_TOKEN, reader_secret):
            assert secret not in body, body[:300]


def test_presigned_urls_are_the_readers_short_lived_and_renewed_while_waiting(env, sent):
    reader_key, reader_secret = _reader_principal()
    assert reader_key != _airflow_principal()[0]
    names = ["shape_010.jpg", "shape_011.jpg"]
    uris = _upload(env, "reader/", names)
    lifetime = 4
    op = LabelStudioLabelingOperator(
        task_id="label", project_title=f"reader {uuid.uuid4().hex[:8]}", labels=CLASSES, image_uris=uris,
        output_manifest_uri=f"s3://{env.bucket}/labels/reader.manifest", label_attribute=ATTR,
        poke_interval=0.25, timeout=60, presign_expiry=lifetime)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger, kwargs = deferred.value.trigger, deferred.value.kwargs
    # The trigger hands back when the URLs are due (half their life), not at the end of the wait.
    assert trigger.max_attempts == math.ceil(lifetime / 2 / 0.25)
    project_id = trigger.project_id
    first = {uri: t["data"]["image"] for uri, t in _tasks_by_uri(env, project_id).items()}
    for url in first.values():
        signer, expires_at = presigned_url_signer(url)
        assert signer == reader_key  # never the Airflow principal's key id
        assert "X-Amz-Expires=4&" in url and expires_at <= time.time() + lifetime + 1
        assert requests.get(url, timeout=10).status_code == 200

    # The trigger runs out its attempts (nobody annotates): execute_complete renews and waits on.
    event = _first_event(trigger)
    assert event.payload["status"] == "timeout"
    time.sleep(1.1)  # a new X-Amz-Date, so a renewed URL differs from the first
    with pytest.raises(TaskDeferred) as again:
        op.execute_complete({}, event.payload, **kwargs)
    assert again.value.kwargs == kwargs  # the same deadline: renewals do not extend the wait
    renewed = {uri: t["data"]["image"] for uri, t in _tasks_by_uri(env, project_id).items()}
    assert all(renewed[u] != first[u] and presigned_url_signer(renewed[u])[0] == reader_key for u in uris)
    assert any(body.startswith("PATCH /api/tasks/") for body in sent)

    # S3 refuses the first URLs once they expire (the emulator too); the renewed ones still work.
    time.sleep(max(0.0, presigned_url_signer(first[uris[0]])[1] - time.time() + 1.1))
    stale = requests.get(first[uris[0]], timeout=10)
    assert stale.status_code == 403 and "Request has expired" in stale.text
    # Annotated now: the wait ends and the manifest is written; the renewed URL works until then.
    tasks = _tasks_by_uri(env, project_id)
    for uri, size in zip(uris, [(320, 240), (256, 256)], strict=True):
        _annotate(env, tasks[uri]["id"], [_box("circle", 10, 10, 20, 20, size)])
    done = _first_event(again.value.trigger)
    assert done.payload["status"] == "success"
    assert op.execute_complete({}, done.payload, **kwargs)["images"] == 2

    assert reader_secret == f"{LABEL_STUDIO_READER_KEY}-secret"
    _no_secret_in(sent)  # presigned mode sends no secret at all


def test_the_reader_must_be_a_connection_and_a_principal_of_its_own(env, monkeypatch, sent):
    (uri,) = _upload(env, "reader-missing/", ["shape_009.jpg"])
    title = f"no reader {uuid.uuid4().hex[:8]}"

    def operator(**kwargs: Any) -> LabelStudioLabelingOperator:
        return LabelStudioLabelingOperator(task_id="label", project_title=title, labels=CLASSES, image_uris=[uri],
                                           output_manifest_uri=f"s3://{env.bucket}/m.manifest", **kwargs)

    # AwsBaseHook would fall back to the worker's own credentials for a missing connection.
    monkeypatch.delenv("AIRFLOW_CONN_AWS_LABEL_STUDIO_READER")
    with pytest.raises(ConfigError) as missing:
        operator().execute({})
    assert missing.value.field == "label_studio_presign_aws_conn_id"
    assert "'aws_label_studio_reader' does not exist" in str(missing.value)
    assert "label-studio-reader-policy.json" in str(missing.value)
    # A reader connection holding the Airflow principal's own keys is no separate principal.
    key, secret, _ = _airflow_principal()
    monkeypatch.setenv("AIRFLOW_CONN_SAME_PRINCIPAL", json.dumps({
        "conn_type": "aws", "login": key, "password": secret, "extra": {"endpoint_url": env.endpoint}}))
    with pytest.raises(ConfigError, match="signs as the same principal as 'aws_default'"):
        operator(presign_aws_conn_id="same_principal").execute({})
    assert LabelStudioHook().find_projects(title) == []  # refused before anything was created
    assert not any(body.startswith("POST") for body in sent)


def test_nothing_that_would_send_credentials_is_sent(env, monkeypatch, sent):
    """An s3_storage endpoint with credentials in it, or any body holding a secret, is refused
    before Label Studio gets a request."""
    (uri,) = _upload(env, "creds/", ["shape_009.jpg"])
    title = f"no creds {uuid.uuid4().hex[:8]}"

    def operator(**kwargs: Any) -> LabelStudioLabelingOperator:
        return LabelStudioLabelingOperator(task_id="label", labels=CLASSES, image_uris=[uri],
                                           output_manifest_uri=f"s3://{env.bucket}/m.manifest",
                                           **{"project_title": title, **kwargs})

    host = env.endpoint.split("://", 1)[1]
    for endpoint in (f"http://{AIRFLOW_KEY}:{AIRFLOW_SECRET}@{host}", f"http://reader@{host}",
                     f"{env.endpoint}/?X-Amz-Security-Token={AIRFLOW_TOKEN}"):
        with pytest.raises(ConfigError) as err:
            operator(image_refs="s3_storage", label_studio_s3_endpoint=endpoint).execute({})
        assert err.value.field == "label_studio_s3_endpoint" and "carries credentials" in str(err.value)
        assert AIRFLOW_SECRET not in str(err.value) and AIRFLOW_TOKEN not in str(err.value)
    assert sent == []  # nothing reached Label Studio

    # Whatever the field, a secret in a body is refused before the request leaves (here the title).
    for mode in ("presigned", "s3_storage"):
        with pytest.raises(LabelStudioError, match="not sent: its body would hand Label Studio the secret key "
                                                   "of 'aws_default'") as err:
            operator(image_refs=mode, project_title=f"x {AIRFLOW_SECRET}").execute({})
        assert AIRFLOW_SECRET not in str(err.value)
    assert sent and not any(body.startswith(("POST", "PATCH")) for body in sent)
    assert LabelStudioHook().find_projects(title) == []

    # The AWS connection's own endpoint_url is what Label Studio gets when none is given.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": AIRFLOW_KEY, "password": AIRFLOW_SECRET,
        "extra": {"endpoint_url": f"http://{AIRFLOW_KEY}:{AIRFLOW_SECRET}@{host}"}}))
    with pytest.raises(ConfigError, match="carries credentials") as err:
        operator(image_refs="s3_storage").execute({})
    assert err.value.field == "endpoint_url of the AWS connection 'aws_default'"


def test_hook_refuses_a_body_holding_a_secret(flaky_server):
    server, url = flaky_server
    hook = LabelStudioHook("ls_flaky", backoff_factor=0.01)
    hook.refuse_to_send("the session token of 'aws_default'", 'tok/en+with"quote')
    hook.refuse_to_send("nothing", None)  # a principal without a token adds no rule
    assert hook.never_send == [("the session token of 'aws_default'", 'tok/en+with"quote')]
    with pytest.raises(LabelStudioError) as err:
        hook.import_tasks(5, [{"data": {"image": 's3://b/tok/en+with"quote.jpg'}}])
    assert str(err.value) == (f"POST {url}/api/projects/5/import not sent: its body would hand Label Studio "
                              "the session token of 'aws_default'; Label Studio must never receive an AWS "
                              "secret key or session token")
    with pytest.raises(LabelStudioError, match="not sent"):
        hook.find_projects('tok/en+with"quote')  # the query string too
    assert server.seen == []
    assert hook.get_project(1) == {"id": 1, "task_number": 3}  # other requests go through


# --------------------------------------------------------------------------- through the pipeline DAG


def test_pipeline_labels_with_label_studio_in_its_own_task(env, airflow_db, aws_clients, monkeypatch, tmp_path):
    """label_backend=label_studio: label.label_studio runs (nobody else's execute), label.publish publishes.

    The folder also holds a corrupt broken.jpg; under bad_image_policy=skip annotators never get it.
    """
    import os
    import shutil
    import sys
    from datetime import UTC, datetime

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import BaseOperator

    # Every operator refuses to be executed by another one (Airflow's safeguard, made strict).
    monkeypatch.setattr(BaseOperator, "allow_nested_operators",
                        property(lambda self: False, lambda self, value: None), raising=False)
    sys.path.insert(0, str(ROOT / "scripts"))
    from _annotator import SimulatedAnnotator

    title = f"pipeline-{uuid.uuid4().hex[:8]}"
    annotator = SimulatedAnnotator(env.url, env.token, title, max_seconds=240)
    annotator.start()
    try:
        dag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py")).get_dag(
            "shapes-detector.pipeline")
        when = datetime(2026, 11, 15, tzinfo=UTC)
        images = tmp_path / "images"
        shutil.copytree(ROOT / "include" / "sample_data" / "images", images)
        monkeypatch.setenv("SAGEMAKER_VISION_IMAGE_ROOTS", str(tmp_path))  # image_source outside include/
        (images / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 3000)  # a JPEG header, no image
        conf = {"pipeline_name": "ls-pipeline", "prefix": "ls-pipeline", "label_backend": "label_studio",
                "label_studio_project": title, "load_test_requests": 10, "load_test_concurrency": 1,
                "image_source": str(images), "bad_image_policy": "skip"}
        run = dag.test(logical_date=when, run_after=when, run_conf=conf)
    finally:
        annotator.stop()
        annotator.join(timeout=15)
    assert run.state == "success", run.state
    states = {ti.task_id: ti.state for ti in run.get_task_instances() if ti.task_id.startswith("label.")}
    assert states == {"label.choose_backend": "success", "label.label_studio": "success",
                      "label.import": "skipped", "label.ground_truth": "skipped", "label.publish": "success"}
    assert annotator.annotated == 12  # the 12 good images; broken.jpg never became a task
    s3, bucket = aws_clients["s3"], os.environ["SAGEMAKER_VISION_BUCKET"]
    (published,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="ls-pipeline/")["Contents"]
                    if "/labels/dt=" in o["Key"] and o["Key"].endswith("/output.manifest") and "/work/" not in o["Key"]]
    lines = [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=published)["Body"].read().splitlines()]
    truth = {json.loads(x)["source-ref"].rsplit("/", 1)[-1]: len(json.loads(x)[ATTR]["annotations"])
             for x in (ROOT / "include" / "sample_data" / "output.manifest").read_text().splitlines()}
    assert {line["source-ref"].rsplit("/", 1)[-1]: len(line[ATTR]["annotations"]) for line in lines} == truth
