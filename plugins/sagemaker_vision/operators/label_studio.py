"""Label images in a Label Studio server and publish the result as a Ground Truth manifest.

* :func:`~sagemaker_vision.core.label_studio.rectangle_label_config` builds the labelling UI
  (RectangleLabels) from the class list; :class:`~sagemaker_vision.hooks.label_studio.LabelStudioHook`
  drives the REST API.
* :class:`LabelStudioLabelingOperator` creates or reuses a project, imports one task per image
  not yet in it, waits (deferrable, :class:`~sagemaker_vision.triggers.label_studio.LabelStudioTrigger`)
  until every task is annotated or skipped, exports the project and writes the manifest.

Label Studio is never sent an AWS secret key or session token, nobody's. ``presigned`` mode:
image URLs are presigned by a read-only principal of its own (the Airflow connection
``aws_label_studio_reader``, policy ``include/iam/label-studio-reader-policy.json``:
``s3:GetObject`` on the images), live one hour, and are renewed (``PATCH /api/tasks/<id>/``) while
the project waits. ``s3_storage`` mode: the S3 import storage is created with no keys at all
(Label Studio's API takes ``aws_access_key_id``, ``aws_secret_access_key`` and
``aws_session_token`` as optional; without them its boto3 session uses the server's own default
credential chain: its environment, or the instance/task role it runs with), ``presign=True`` and
``presign_ttl`` the same short lifetime in minutes, so Label Studio presigns each image on view
with its own identity. That identity must carry the reader policy and nothing else. Every request
body is checked before it is sent: one that holds the secret key or session token of the Airflow
principal or of the reader is refused.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.common.compat.sdk import AirflowException, AirflowNotFoundException
from airflow.sdk import BaseHook, BaseOperator

from sagemaker_vision.core.converters import from_label_studio
from sagemaker_vision.core.inference import image_size
from sagemaker_vision.core.label_studio import (
    DEFAULT_PRESIGN_CONN_ID,
    IMAGE_EXTENSIONS,
    IMAGE_REFS,
    MAX_PRESIGN_SECONDS,
    PRESIGN_LIFETIME_SECONDS,
    READER_POLICY,
    RESUME_HINT,
    ImageRefs,
    as_list,
    common_prefix,
    presigned_url_signer,
    rectangle_label_config,
    task_progress,
    task_s3_uri,
)
from sagemaker_vision.core.manifest import check_label_attribute, validate_manifest
from sagemaker_vision.core.manifest_parse import dumps_line
from sagemaker_vision.core.validate import ConfigError
from sagemaker_vision.hooks import base as aws
from sagemaker_vision.hooks import s3 as s3io
from sagemaker_vision.hooks.label_studio import (
    DEFAULT_CONN_ID,
    LabelStudioConnectionMissing,
    LabelStudioError,
    LabelStudioHook,
)
from sagemaker_vision.triggers.label_studio import LabelStudioTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context
    from botocore.credentials import ReadOnlyCredentials

__all__ = ["LabelStudioLabelingOperator"]


class LabelStudioLabelingOperator(BaseOperator):
    """Have people draw boxes in Label Studio; publish them as a Ground Truth manifest in S3.

    Creates (or reuses, by exact title) the project ``project_title`` with a RectangleLabels UI
    for ``labels``, imports one task per image that is not in the project yet (re-runs import
    nothing twice: tasks are matched by the image's s3:// URI kept in the task data), then waits
    until every task of the project is annotated ``min_annotations`` times or skipped. Finally it
    exports the project, converts it with :func:`sagemaker_vision.core.converters.from_label_studio`
    (percent to pixels, class ids in the order of ``labels``; an annotation without boxes is an
    image with no objects and is kept), validates the manifest and writes it with one S3 put.

    :param project_title: Label Studio project, found by exact title (templated).
    :param labels: Class names; index = class id in the manifest (templated).
    :param output_manifest_uri: ``s3://`` URI of the manifest to write (templated).
    :param label_attribute: The manifest's label attribute, e.g. ``bounding-box`` (templated).
    :param image_uris: ``s3://`` URIs of the images (templated); or give ``images_prefix``.
    :param images_prefix: ``s3://bucket/prefix/``: every .jpg/.jpeg/.png under it (templated).
    :param image_refs: How annotators' browsers get the images. ``presigned``: each task holds
        a presigned GET URL made with ``presign_aws_conn_id`` (valid ``presign_expiry``
        seconds, renewed while the operator waits). ``s3_storage``: the project gets an S3
        source storage without keys, and Label Studio presigns on view with its server's own AWS
        identity (environment or instance/task role), which must carry
        ``include/iam/label-studio-reader-policy.json``; ``presign_aws_conn_id`` is not used. With
        ``images_prefix`` Label Studio's own sync imports the images.
    :param presign_expiry: Lifetime of presigned URLs in seconds (``presigned``; renewed once
        half of it has passed, so it must be at least twice ``poke_interval``), or of Label
        Studio's on-view URLs (``s3_storage``, rounded up to minutes). At most 7 days (SigV4).
    :param presign_aws_conn_id: The read-only AWS principal that presigns for Label Studio
        (``presigned``; see ``include/iam/label-studio-reader-policy.json``): required, and not
        the principal of ``aws_conn_id``, so no URL in Label Studio carries the Airflow principal.
    :param label_studio_s3_endpoint: S3 endpoint that Label Studio should use (``s3_storage``);
        the AWS connection's ``endpoint_url`` when None, AWS itself when neither is set. It must
        not carry credentials (user info, or a signature in its query).
    :param min_annotations: Non-cancelled annotations a task needs to count as annotated.
    :param poke_interval: Seconds between two progress checks.
    :param timeout: Seconds to wait for the annotators before failing.
    :param deferrable: Wait in the triggerer (no worker slot held) instead of on the worker.
    :param label_studio_conn_id: Airflow connection of the Label Studio server.
    :param aws_conn_id: Airflow connection for S3.
    :param region_name: AWS region; the connection's when None.
    :return: ``{"manifest_uri", "images", "skipped_unannotated", "boxes", "project_id", "backend"}``
    """

    template_fields: Sequence[str] = ("project_title", "labels", "output_manifest_uri", "label_attribute",
                                      "image_uris", "images_prefix")
    template_fields_renderers = {"labels": "json", "image_uris": "json"}
    ui_color = "#ffe0cc"

    def __init__(
        self,
        *,
        project_title: str,
        labels: Sequence[str],
        output_manifest_uri: str,
        label_attribute: str = "bounding-box",
        image_uris: Sequence[str] | None = None,
        images_prefix: str | None = None,
        image_refs: ImageRefs = "presigned",
        presign_expiry: int = PRESIGN_LIFETIME_SECONDS,
        presign_aws_conn_id: str = DEFAULT_PRESIGN_CONN_ID,
        label_studio_s3_endpoint: str | None = None,
        min_annotations: int = 1,
        poke_interval: float = 60.0,
        timeout: float = 7 * 24 * 3600.0,
        deferrable: bool = True,
        label_studio_conn_id: str = DEFAULT_CONN_ID,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (image_uris is None) == (images_prefix is None):
            raise ValueError(f"{self.task_id}: give exactly one of image_uris and images_prefix")
        if image_refs not in IMAGE_REFS:
            raise ValueError(f"{self.task_id}: image_refs must be one of {IMAGE_REFS}, got {image_refs!r}")
        if not isinstance(min_annotations, int) or min_annotations < 1:
            raise ValueError(f"{self.task_id}: min_annotations must be an integer >= 1, "
                             f"got {min_annotations!r}")
        if not 1 <= presign_expiry <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"{self.task_id}: presign_expiry must be 1..{MAX_PRESIGN_SECONDS} s, "
                             f"got {presign_expiry}")
        if poke_interval <= 0 or timeout <= 0:
            raise ValueError(f"{self.task_id}: poke_interval and timeout must be positive, "
                             f"got {poke_interval} and {timeout}")
        if image_refs == "presigned" and poke_interval > presign_expiry / 2:
            raise ValueError(f"{self.task_id}: presign_expiry {presign_expiry} s must be at least twice "
                             f"poke_interval {poke_interval} s: URLs are renewed between two polls")
        self.project_title = project_title
        self.labels = labels
        self.output_manifest_uri = output_manifest_uri
        self.label_attribute = label_attribute
        self.image_uris = image_uris
        self.images_prefix = images_prefix
        self.image_refs = image_refs
        self.presign_expiry = presign_expiry
        self.presign_aws_conn_id = presign_aws_conn_id
        self.label_studio_s3_endpoint = label_studio_s3_endpoint
        self.min_annotations = min_annotations
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.label_studio_conn_id = label_studio_conn_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @cached_property
    def hook(self) -> LabelStudioHook:
        return LabelStudioHook(self.label_studio_conn_id)

    @cached_property
    def aws_hook(self) -> AwsBaseHook:
        return aws.hook("s3", self.aws_conn_id, self.region_name)

    @cached_property
    def s3(self) -> Any:
        return self.aws_hook.conn

    @cached_property
    def reader_hook(self) -> AwsBaseHook:
        return aws.hook("s3", self.presign_aws_conn_id, self.region_name)

    @cached_property
    def presign_client(self) -> Any:
        """The reader's client, SigV4 explicitly: botocore may otherwise presign with SigV2, which
        newer regions refuse."""
        self.reader_credentials()
        return self.reader_hook.get_client_type(config=aws.botocore_config(signature_version="s3v4"))

    @property
    def renew_seconds(self) -> float:
        """Presigned URLs are renewed once they have less than this left (half their lifetime)."""
        return self.presign_expiry / 2

    def reader_credentials(self) -> ReadOnlyCredentials:
        """The reader principal's credentials, refused unless it is a connection of its own.

        AwsBaseHook falls back to the worker's default credentials for a connection id that does
        not exist, which would hand Label Studio the Airflow principal after all: so the
        connection must exist, and its access key must not be the Airflow connection's.
        """
        field = "label_studio_presign_aws_conn_id"
        try:
            BaseHook.get_connection(self.presign_aws_conn_id)
        except AirflowNotFoundException:
            raise ConfigError(field, f"the AWS connection {self.presign_aws_conn_id!r} does not exist. Label Studio "
                              "gets image URLs presigned by a read-only principal of its own: create an "
                              f"IAM identity with {READER_POLICY} and an Airflow connection for it") from None
        reader = self.reader_hook.get_credentials()
        own = self.aws_hook.get_credentials()
        if reader.access_key == own.access_key:
            raise ConfigError(field, f"the connection {self.presign_aws_conn_id!r} signs as the same principal as "
                              f"{self.aws_conn_id!r} (access key {reader.access_key[:4]}...): give it the keys or "
                              f"role of a read-only identity ({READER_POLICY})")
        return reader

    def storage_endpoint(self) -> str | None:
        """The S3 endpoint given to Label Studio (``s3_storage``), refused if it carries credentials."""
        endpoint = self.label_studio_s3_endpoint or self.aws_hook.conn_config.endpoint_url
        field = "label_studio_s3_endpoint" if self.label_studio_s3_endpoint else \
            f"endpoint_url of the AWS connection {self.aws_conn_id!r}"
        if not endpoint:
            return None
        parts = urlsplit(str(endpoint))
        signed = {k for k in parse_qs(parts.query, keep_blank_values=True)
                  if k.lower().startswith("x-amz-") or k in ("AWSAccessKeyId", "Signature")}
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(field, f"must be an http(s)://host[:port] URL, got {parts.scheme or '(none)'}://...")
        if parts.username is not None or parts.password is not None or signed:
            raise ConfigError(field, "carries credentials (user info or a signed query) that would be stored in "
                              "Label Studio; give a bare http(s)://host[:port]: Label Studio signs with its "
                              f"server's own identity ({READER_POLICY})")
        return str(endpoint)

    def _guard_secrets(self) -> None:
        """No request to Label Studio may carry a secret of the Airflow principal or the reader."""
        if self.hook.never_send:
            return
        own = self.aws_hook.get_credentials()
        self.hook.refuse_to_send(f"the secret key of {self.aws_conn_id!r}", own.secret_key)
        self.hook.refuse_to_send(f"the session token of {self.aws_conn_id!r}", own.token)
        if self.image_refs == "presigned":
            reader = self.reader_credentials()
            self.hook.refuse_to_send(f"the secret key of {self.presign_aws_conn_id!r}", reader.secret_key)
            self.hook.refuse_to_send(f"the session token of {self.presign_aws_conn_id!r}", reader.token)

    # ------------------------------------------------------------------ execute

    def execute(self, context: Context) -> dict[str, Any]:
        class_names = as_list(self.labels, "labels")
        label_config = rectangle_label_config(class_names)
        check_label_attribute(self.label_attribute)
        s3io.split_uri(self.output_manifest_uri, "output_manifest_uri")
        images = self._images()  # fails on bad input before anything is created
        if self.image_refs == "s3_storage":
            self.storage_endpoint()
        self._guard_secrets()  # presigned: the reader must be a connection and principal of its own

        project = self.hook.get_or_create_project(self.project_title, label_config)
        project_id = int(project["id"])
        if self.image_refs == "s3_storage":
            self._ensure_storage(project_id)
        existing = list(self.hook.list_tasks(project_id))
        if self.image_refs == "presigned":
            self._renew(project_id, existing)  # a previous try's URLs may have expired
        in_project = {uri for task in existing if (uri := task_s3_uri(task))}
        missing = [uri for uri in images if uri not in in_project]
        if missing:
            created = self.hook.import_tasks(project_id, [self._task(uri) for uri in missing])
            self.log.info("Imported %d new tasks into project %s (%d images were already there)",
                          created, project_id, len(images) - len(missing))
        else:
            self.log.info("All %d images are already tasks of project %s", len(images), project_id)

        progress = self.hook.task_progress(project_id, self.min_annotations)
        self.log.info("Project %s %r: %s", project_id, self.project_title, progress.describe())
        if progress.complete:
            return self._publish(project_id)
        if self.deferrable:
            self._defer(project_id, progress.total, time.time() + self.timeout)  # the wait starts now
        return self._wait(project_id, progress.total)

    def _defer(self, project_id: int, expected: int, deadline: float) -> None:
        """Wait in the triggerer until the project is done, the deadline passes or, with presigned
        URLs, until they are due for renewal: then execute_complete renews them and defers again."""
        wait = max(0.0, deadline - time.time())
        if self.image_refs == "presigned":
            wait = min(wait, self.renew_seconds)
        self.defer(
            trigger=LabelStudioTrigger(
                project_id=project_id,
                expected_tasks=expected,
                min_annotations=self.min_annotations,
                poll_interval=self.poke_interval,
                max_attempts=max(1, math.ceil(wait / self.poke_interval)),
                label_studio_conn_id=self.label_studio_conn_id,
            ),
            method_name="execute_complete",
            kwargs={"deadline": deadline, "expected": expected},
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         deadline: float | None = None, expected: int | None = None) -> dict[str, Any]:
        if not event or "status" not in event:
            raise AirflowException(f"{self.task_id}: the Label Studio trigger sent no event ({event!r})")
        if event["status"] == "missing_connection":  # no retry can create the connection
            raise LabelStudioConnectionMissing(str(event.get("message")))
        self._guard_secrets()
        project_id = int(event.get("project_id", -1))
        if event["status"] == "success":
            self.log.info("Project %s: %s", project_id, event.get("message"))
            return self._publish(project_id)
        if event["status"] == "timeout" and deadline is not None and time.time() < deadline:
            # Not the end of the wait: the presigned URLs are due; renew them and wait on.
            renewed = self._renew(project_id) if self.image_refs == "presigned" else 0
            self.log.info("Project %s: %s; renewed %d presigned URLs, waiting on", project_id,
                          event.get("message"), renewed)
            self._defer(project_id, int(expected if expected is not None else event.get("progress", {}).get(
                "total", 0)), deadline)
        if event["status"] == "timeout":
            raise AirflowException(f"Label Studio project {project_id} {self.project_title!r} was not done "
                                   f"after {self.timeout:.0f} s: {event.get('message')}. {RESUME_HINT}")
        raise AirflowException(f"Waiting for Label Studio project {project_id} failed: "
                               f"{event.get('message')}")

    def _wait(self, project_id: int, expected: int) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            time.sleep(min(self.poke_interval, max(0.0, deadline - time.monotonic())))
            tasks = list(self.hook.list_tasks(project_id))
            if self.image_refs == "presigned":
                self._renew(project_id, tasks)
            progress = task_progress(tasks, self.min_annotations)
            self.log.info("Project %s: %s", project_id, progress.describe())
            if progress.total < expected:
                raise AirflowException(f"Label Studio project {project_id} has {progress.total} tasks, "
                                       f"{expected} were imported: were tasks deleted?")
            if progress.complete:
                return self._publish(project_id)
            if time.monotonic() >= deadline:
                raise AirflowException(f"Label Studio project {project_id} {self.project_title!r} was not "
                                       f"done after {self.timeout:.0f} s: {progress.describe()}. {RESUME_HINT}")

    # ------------------------------------------------------------------ steps

    def _images(self) -> list[str]:
        if self.image_uris is not None:
            uris = as_list(self.image_uris, "image_uris")
            for i, uri in enumerate(uris):
                s3io.split_uri(uri, f"image_uris[{i}]")
                if uri.endswith("/"):
                    raise ConfigError(f"image_uris[{i}]", f"{uri!r} is a prefix, not an image")
            images = list(dict.fromkeys(uris))
            if not images:
                raise ConfigError("image_uris", "is empty")
            return images
        assert self.images_prefix is not None  # __init__: exactly one of image_uris and images_prefix
        bucket, key = s3io.split_uri(self.images_prefix, "images_prefix")
        # A folder, as Label Studio's storage sees it: "s3://b/pool" does not take in "pool2/".
        folder = f"s3://{bucket}/{key.rstrip('/')}/" if key.strip("/") else f"s3://{bucket}/"
        images = sorted(f"s3://{bucket}/{k}" for k, _ in s3io.list_keys(self.s3, folder)
                        if k.lower().endswith(IMAGE_EXTENSIONS))
        if not images:
            raise ConfigError("images_prefix",
                              f"{self.images_prefix} holds no {'/'.join(IMAGE_EXTENSIONS)} images")
        return images

    def _task(self, uri: str) -> dict[str, Any]:
        if self.image_refs == "presigned":
            return {"data": {"image": self._presign(uri), "s3_uri": uri}}
        return {"data": {"image": uri, "s3_uri": uri}}

    def _presign(self, uri: str) -> str:
        bucket, key = s3io.split_uri(uri)
        return self.presign_client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(self.presign_expiry))

    def _renew(self, project_id: int, tasks: Iterable[Mapping[str, Any]] | None = None) -> int:
        """Re-presign every task URL with less than :attr:`renew_seconds` left, or signed by another
        principal than the reader (an older version of this operator, a rotated key)."""
        tasks = self.hook.list_tasks(project_id) if tasks is None else tasks
        reader_key = self.reader_credentials().access_key
        renewed = 0
        for task in tasks:
            raw = task.get("data")
            data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            uri, image = data.get("s3_uri"), data.get("image")
            if not (isinstance(uri, str) and uri.startswith("s3://") and isinstance(image, str)):
                continue
            signer, expires_at = presigned_url_signer(image)
            if signer == reader_key and expires_at - time.time() > self.renew_seconds:
                continue
            self.hook.update_task_data(int(task["id"]), {**data, "image": self._presign(uri)})
            renewed += 1
        if renewed:
            self.log.info("Project %s: renewed %d presigned image URLs (valid %d s, signed by %s)", project_id,
                          renewed, self.presign_expiry, self.presign_aws_conn_id)
        return renewed

    def _ensure_storage(self, project_id: int) -> None:
        """An S3 source storage so Label Studio can presign s3:// images when annotators open them."""
        location = self.images_prefix or common_prefix(as_list(self.image_uris, "image_uris"))
        bucket, prefix = s3io.split_uri(location, "images_prefix")
        extensions = "|".join(re.escape(e.lstrip(".")) for e in IMAGE_EXTENSIONS)
        try:
            self.hook.create_s3_source_storage(
                project_id, bucket=bucket, prefix=prefix, title=f"images s3://{bucket}/{prefix}",
                regex_filter=rf"(?i).*\.({extensions})$", presign=True,
                presign_ttl_minutes=max(1, min(32767, math.ceil(self.presign_expiry / 60))),
                region_name=self.s3.meta.region_name, s3_endpoint=self.storage_endpoint(),
                # With a prefix, Label Studio's sync imports the images; explicit URIs are imported by us.
                sync=self.images_prefix is not None,
            )
        except LabelStudioError as exc:
            if exc.status is None:  # no answer (or refused before sending): nothing to add
                raise
            raise LabelStudioError(
                f"{exc}. In s3_storage mode Label Studio reads s3://{bucket}/{prefix} with its server's own AWS "
                f"identity (no keys are sent to it): give the Label Studio process credentials of a read-only "
                f"identity with {READER_POLICY} (its environment, or the instance/task role it runs with), or "
                "use image_refs='presigned'", url=exc.url, status=exc.status) from None

    def _image_size(self, uri: str) -> tuple[int, int]:
        """Width and height of an S3 image from its header (a ranged GET; the whole object if needed)."""
        bucket, key = s3io.split_uri(uri)
        head = self.s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-65535")["Body"].read()
        try:
            return image_size(head)
        except (ValueError, OSError):
            return image_size(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def _publish(self, project_id: int) -> dict[str, Any]:
        export = self.hook.export(project_id)
        for task in export:
            uri = task_s3_uri(task)
            if uri is None:
                image = str((task.get("data") or {}).get("image"))[:120]
                raise AirflowException(
                    f"Label Studio project {project_id} task {task.get('id')}: data has no s3_uri and "
                    f"data.image {image!r} is not s3://; was it added by hand?")
            task["data"] = {**task["data"], "image": uri}  # presigned URL -> the s3:// source-ref
        # Every image must lie under the images this operator imported (anyone holding the server's
        # token can edit a task's data): the converter refuses refs outside, '..' and the like.
        confine = self.images_prefix
        if confine is None:
            uris = as_list(self.image_uris, "image_uris")
            if len({s3io.split_uri(u, "image_uris")[0] for u in uris}) == 1:
                confine = common_prefix(uris)
        conversion = from_label_studio(
            export, label_attribute=self.label_attribute, class_names=as_list(self.labels, "labels"),
            job_name=f"label-studio/project-{project_id}", image_size_of=self._image_size,
            images_prefix=confine, source=f"Label Studio project {project_id} export",
        )
        body = "".join(dumps_line(record) + "\n" for record in conversion)
        if conversion.num_images == 0:
            raise AirflowException(f"Label Studio project {project_id}: no task has an annotation "
                                   f"({len(conversion.unannotated_task_ids)} skipped); nothing to publish")
        validate_manifest(body.splitlines(), label_attribute=self.label_attribute,
                                 source=self.output_manifest_uri)
        s3io.put_bytes(self.s3, self.output_manifest_uri, body.encode("utf-8"), "application/jsonl")
        skipped = len(conversion.unannotated_task_ids)
        self.log.info("Wrote %s: %d images, %d boxes; %d skipped tasks left out (ids %s), %d cancelled and "
                      "%d superseded annotations ignored", self.output_manifest_uri, conversion.num_images,
                      conversion.num_boxes, skipped, conversion.unannotated_task_ids[:20],
                      conversion.cancelled_annotations, conversion.superseded_annotations)
        return {"manifest_uri": self.output_manifest_uri, "images": conversion.num_images,
                "skipped_unannotated": skipped, "boxes": conversion.num_boxes, "project_id": project_id,
                "backend": "label_studio"}
