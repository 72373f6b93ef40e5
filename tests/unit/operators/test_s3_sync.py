"""operators.s3_sync: the operator's execute(), its argument checks, and the pipeline's sync task."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import s3_sync
from sagemaker_vision.operators.s3_sync import S3SyncOperator
from tests.unit.hooks import test_s3_sync as sync_cases
from tests.unit.hooks.test_s3_sync import DEST_URI, _dest_keys

# The moto fixtures of the sync's own tests (assigned, so pytest finds them here too).
aws_env = sync_cases.aws_env
s3 = sync_cases.s3
images = sync_cases.images


def test_operator_execute(s3: Any, images: Path) -> None:
    op = S3SyncOperator(task_id="sync_images", source=str(images), dest=DEST_URI, include="*.jpg,*.png",
                        max_concurrency=4)
    assert op.template_fields == ("source", "dest", "include")
    result = op.execute(context={})  # type: ignore[arg-type]
    assert result["copied"] == 24 and result["dest"] == DEST_URI
    assert op.client.meta.config.max_pool_connections == 4
    assert op.client.meta.config.retries["mode"] == aws.RETRIES["mode"]  # the package retry policy
    assert len(_dest_keys(s3)) == 24


def test_operator_validates_templated_fields_in_execute_before_building_a_client(aws_env: None) -> None:
    op = S3SyncOperator(task_id="sync_images", source="{{ params.src }}", dest="{{ params.dest }}")
    op.source, op.dest = "/data/images", "bucket-without-scheme/raw"  # as rendered
    with pytest.raises(ValueError, match="^dest: 'bucket-without-scheme/raw' is not an s3:// URI"):
        op.execute(context={})  # type: ignore[arg-type]
    assert "client" not in op.__dict__


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_concurrency": 0}, "^max_concurrency: "),
    ({"compare": "md5"}, "^compare: "),
    ({"sse": "AES128"}, "^sse: "),
    ({"sse_customer_key": "too short"}, "^sse_customer_key: "),
])
def test_operator_rejects_static_arguments_at_parse_time(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        S3SyncOperator(task_id="t", source="/x", dest=DEST_URI, **kwargs)


def test_the_pipelines_sync_task_uploads_images_only_never_files_outside_the_folder(s3: Any, tmp_path: Path,
                                                                                    caplog) -> None:
    """Issue 9, item 1, through the DAG's own sync_images task (its include pattern, its operator):
    a symlink to a secrets file outside the folder and a notes.txt are not uploaded, and the log says why."""
    from airflow.dag_processing.dagbag import DagBag

    root_dir = Path(__file__).resolve().parents[3]
    dag = DagBag(dag_folder=str(root_dir / "dags" / "pipelines.py")).dags["shapes-detector.pipeline"]
    task = dag.get_task("sync_images")
    assert task.source == "{{ pipeline().sync_source }}"  # the config-checked folder (image roots)
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.jpg").write_bytes(b"jpeg")
    (images / "b.PNG").write_bytes(b"png")
    (images / "notes.txt").write_bytes(b"not an image")
    secrets = tmp_path / "secrets"
    secrets.write_bytes(b"aws_secret_access_key = hunter2")
    (images / "innocent.jpg").symlink_to(secrets)
    (images / "inside.jpg").symlink_to(images / "a.jpg")
    op = S3SyncOperator(task_id="sync_images", source=str(images), dest=DEST_URI, include=task.include)
    caplog.set_level(logging.INFO, logger=s3_sync.__name__)
    result = op.execute(context={})  # type: ignore[arg-type]
    assert sorted(_dest_keys(s3)) == ["raw/a.jpg", "raw/b.PNG", "raw/inside.jpg"]
    assert result["copied"] == 3
    assert f"Skipping symlink {images / 'innocent.jpg'} -> {secrets}: it points outside the source folder" \
        in caplog.text
    assert "hunter2" not in caplog.text
