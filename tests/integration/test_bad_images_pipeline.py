"""Issue 8, defect 9: a folder with a corrupt ``broken.jpg`` and a good ``.png``, as a new user tried it.

``bad_image_policy=fail`` (the default) stops the run at ``validate_images``, before labeling or
anything paid, naming ``broken.jpg`` and its reason; ``skip`` goes green without it, the report
names it, and the smoke test names the (validated, labeled) image it used.

Each run uses a key prefix of its own, so its ``raw/dt=…/`` partition holds only this folder.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "include" / "sample_data"
SMALL_RUN = {"load_test_requests": 10, "load_test_concurrency": 2}


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "pipelines.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.get_dag("shapes-detector.pipeline")
    for task in dag.tasks:
        task.retries = 0
    return dag


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """broken.jpg (3000 bytes of noise), shape_001.png (a good PNG), three sample JPEGs; and an import
    manifest labeling three good images (broken.jpg has no label, like the new user's; nor has shape_003.jpg)."""
    monkeypatch.setenv("SAGEMAKER_VISION_IMAGE_ROOTS", str(tmp_path))  # image_source outside include/
    images = tmp_path / "images"
    images.mkdir()
    (images / "broken.jpg").write_bytes(os.urandom(3000))
    for name in ("shape_000.jpg", "shape_002.jpg", "shape_003.jpg"):
        shutil.copy(SAMPLE / "images" / name, images / name)
    with Image.open(SAMPLE / "images" / "shape_001.jpg") as im:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    (images / "shape_001.png").write_bytes(buf.getvalue())
    lines = []
    for line in (SAMPLE / "output.manifest").read_text().splitlines():
        rec = json.loads(line)
        name = rec["source-ref"].rsplit("/", 1)[-1]
        if name in ("shape_000.jpg", "shape_001.jpg", "shape_002.jpg"):
            rec["source-ref"] = rec["source-ref"].replace("shape_001.jpg", "shape_001.png")
            lines.append(json.dumps(rec))
    manifest = tmp_path / "labels.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    return images, manifest


def _conf(name: str, folder: tuple[Path, Path], **extra):
    images, manifest = folder
    return {"pipeline_name": name, "prefix": name, "image_source": str(images), "import_manifest": str(manifest),
            **SMALL_RUN, **extra}


def _states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def _read_json(s3, uri: str):
    bucket, key = uri[len("s3://"):].split("/", 1)
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _run_prefix(s3, bucket: str, name: str) -> str:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{name}/runs/{name}/", Delimiter="/")
    (prefix,) = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    return f"s3://{bucket}/{prefix}"


def test_fail_policy_stops_before_labeling_naming_broken_jpg(airflow_db, aws_clients, folder, caplog, capfd):
    caplog.set_level(logging.INFO)
    s3, sm = aws_clients["s3"], aws_clients["sagemaker"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    name = "bad-images-fail"
    run = _dag().test(run_conf=_conf(name, folder))
    out, err = capfd.readouterr()
    captured = "\n".join((caplog.text, out, err))

    states = _states(run)
    assert run.state == "failed" and states["sync_images"] == "success", states
    assert states["validate_images"] == "failed", states
    labeling = [t for t in states if t.startswith("label")]
    assert labeling and all(states[t] != "success" for t in labeling), states
    assert re.search(r"broken\.jpg: not a readable image \(3000 bytes", captured), "the error names neither"
    assert "bad_image_policy is fail" in captured

    report = _read_json(s3, _run_prefix(s3, bucket, name) + "reports/image_validation.json")
    assert report["policy"] == "fail" and report["checked"] == 5 and report["valid"] == 4
    ((bad),) = report["bad"]
    assert bad["uri"].endswith("/broken.jpg") and "not a readable image" in bad["reason"]
    # Nothing was paid for: no training job of this pipeline.
    assert not [j for j in sm.list_training_jobs()["TrainingJobSummaries"] if j["TrainingJobName"].startswith(name)]


def test_skip_policy_goes_green_without_it_and_names_the_smoke_image(airflow_db, aws_clients, folder, caplog):
    caplog.set_level(logging.INFO)
    s3 = aws_clients["s3"]
    bucket = os.environ["SAGEMAKER_VISION_BUCKET"]
    name = "bad-images-skip"
    run = _dag().test(run_conf=_conf(name, folder, bad_image_policy="skip"))
    assert run.state == "success", _states(run)

    prefix = _run_prefix(s3, bucket, name)
    report = _read_json(s3, prefix + "reports/image_validation.json")
    assert report["policy"] == "skip"
    assert [b["uri"].rsplit("/", 1)[-1] for b in report["bad"]] == ["broken.jpg"]
    assert "not a readable image" in report["bad"][0]["reason"]

    refs = []
    for split in ("train", "validation"):
        body = s3.get_object(Bucket=bucket, Key=prefix.split("/", 3)[3] + f"manifests/{split}.manifest")["Body"]
        refs += [json.loads(line)["source-ref"] for line in body.read().splitlines()]
    assert sorted(r.rsplit("/", 1)[-1] for r in refs) == ["shape_000.jpg", "shape_001.png", "shape_002.jpg"]

    smoke = _read_json(s3, prefix + "reports/smoke_test.json")
    assert smoke["image"].rsplit("/", 1)[-1] != "broken.jpg"
    assert smoke["image"] in refs and smoke["image_from"].endswith("validation.manifest")
    assert f"Smoke test of endpoint '{name}' with {smoke['image']}" in caplog.text
    assert f"Bad image s3://{bucket}/{name}/raw/" in caplog.text and "broken.jpg: not a readable image" in caplog.text

    # The good image without a label is left out of training, and said to be: never silently.
    unlabeled = _read_json(s3, prefix + "reports/unlabeled_images.json")
    assert [d["uri"].rsplit("/", 1)[-1] for d in unlabeled["dropped"]] == ["shape_003.jpg"]
    assert "no line for it in import_manifest" in unlabeled["dropped"][0]["reason"]
    assert "Image left out of training: " in caplog.text and "shape_003.jpg" in caplog.text


def test_the_async_smoke_test_sends_the_picked_image_not_a_local_sample(airflow_db):
    """Both smoke tests use the one picker: the async one gets its s3 URI from the smoke_image task."""
    dag = _dag()
    smoke_async = dag.task_dict["train_and_deploy.smoke_test_async"]
    assert "train_and_deploy.smoke_image" in smoke_async.upstream_task_ids
    assert "include/sample_data" not in str(smoke_async.sample_image)
    assert dag.task_dict["validate_images"].downstream_task_ids & {t for t in dag.task_dict if t.startswith("label")}
