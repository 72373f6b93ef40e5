"""Label images in a Label Studio server and publish the result as a Ground Truth manifest.

* :class:`LabelStudioHook` drives Label Studio's REST API with the Airflow connection
  ``label_studio_default``: conn_type ``http``, host ``http://host:port`` (scheme and port may
  also be in the schema and port fields), password = the API token (or extra ``{"token": ...}``).
  Requests carry ``Authorization: Token <t>`` (Label Studio's legacy API token, which must be
  enabled on the server: ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true``).
* :func:`rectangle_label_config` builds the labelling UI (RectangleLabels) from the class list.
* :class:`LabelStudioLabelingOperator` creates or reuses a project, imports one task per image
  not yet in it, waits (deferrable, :class:`~sagemaker_vision.triggers.LabelStudioTrigger`)
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

A task is *annotated* when it has at least ``min_annotations`` annotations that were not
cancelled, and *skipped* when it has fewer but an annotator pressed Skip (Label Studio records
that as a cancelled annotation): skipping is the annotator's final word on the image, so skipped
tasks do not hold the pipeline up and are left out of the manifest (``skipped_unannotated``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from html import unescape
from typing import TYPE_CHECKING, Any, Literal, NamedTuple
from xml.sax.saxutils import quoteattr

import requests
from airflow.providers.common.compat.sdk import AirflowException
from airflow.sdk import BaseHook, BaseOperator
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sagemaker_vision import aws, labels, s3io
from sagemaker_vision.config import ConfigError
from sagemaker_vision.triggers import LabelStudioTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_CONN_ID = "label_studio_default"
IMAGE_REFS = ("presigned", "s3_storage")
ImageRefs = Literal["presigned", "s3_storage"]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# SigV4 presigned URLs live at most 7 days (also Label Studio's on-view URLs in s3_storage mode).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# Presigned URLs live one hour (the AWS CLI's default for presign) and are renewed once half of
# that has passed, so an annotator's page always has at least half an hour left.
PRESIGN_LIFETIME_SECONDS = 3600
# The read-only principal that presigns for Label Studio: an AWS connection the user sets.
DEFAULT_PRESIGN_CONN_ID = "aws_label_studio_reader"
READER_POLICY = "include/iam/label-studio-reader-policy.json"
RETRY_STATUSES = (500, 502, 503, 504)
IMPORT_BATCH = 500
PROJECT_PAGE_SIZE = 100
TASK_PAGE_SIZE = 500  # Label Studio has no cap by default; 500 keeps one page well under a second
EXCERPT = 300
# Distinct, readable box colours for the labelling UI, cycled over the classes.
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#800000", "#aaffc3", "#808000", "#000075")


# What a wait that ran out of its timeout says: nothing is lost, a retry picks the project up again.
RESUME_HINT = ("Stopped waiting, but the project is still open and annotators can keep working: clear or "
               "retry this task to resume waiting on the same project (found by title; no task is imported "
               "twice)")


class LabelStudioError(AirflowException):
    """A Label Studio API call failed; the message names the method, URL, status and body."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


# --------------------------------------------------------------------------- pure helpers


def rectangle_label_config(labels: Sequence[str]) -> str:
    """The labelling UI for axis-aligned boxes: one ``<Label>`` per class, in class-id order.

    Rotation is off because a Ground Truth manifest holds axis-aligned boxes only.
    """
    if isinstance(labels, str) or not labels:
        raise ConfigError("labels", f"must be a non-empty list of class names, got {labels!r}")
    names = list(labels)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ConfigError("labels", f"labels[{i}] must be a non-empty string, got {name!r}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("labels", f"duplicate class names {duplicates}")
    lines = ['<View>', '  <Image name="image" value="$image" zoom="true" zoomControl="true"/>',
             '  <RectangleLabels name="label" toName="image" canRotate="false">']
    for i, name in enumerate(names):
        colour = quoteattr(PALETTE[i % len(PALETTE)])
        lines.append(f"    <Label value={quoteattr(name)} background={colour}/>")
    lines += ["  </RectangleLabels>", "</View>"]
    return "\n".join(lines)


class ProjectProgress(NamedTuple):
    """Label Studio's own counters of a project (``GET /api/projects/{id}/``)."""

    task_number: int
    num_tasks_with_annotations: int
    finished_task_number: int


@dataclass(frozen=True)
class TaskProgress:
    """How many tasks of a project are annotated, skipped and still to do (see module doc)."""

    total: int
    annotated: int
    skipped: int

    @property
    def pending(self) -> int:
        return self.total - self.annotated - self.skipped

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.pending == 0

    def describe(self) -> str:
        return (f"{self.annotated} of {self.total} tasks annotated, {self.skipped} skipped, "
                f"{self.pending} to do")

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "pending": self.pending}


def task_progress(tasks: Iterable[Mapping[str, Any]], min_annotations: int) -> TaskProgress:
    """Count tasks from Label Studio's task list (``total_annotations`` excludes cancelled ones)."""
    total = annotated = skipped = 0
    for task in tasks:
        total += 1
        live = int(task.get("total_annotations") or 0)
        cancelled = int(task.get("cancelled_annotations") or 0)
        if live >= min_annotations:
            annotated += 1
        elif cancelled > 0:
            skipped += 1
    return TaskProgress(total=total, annotated=annotated, skipped=skipped)


def task_s3_uri(task: Mapping[str, Any]) -> str | None:
    """The s3:// URI of a task's image: ``data.s3_uri`` (our imports) or an s3:// ``data.image``."""
    data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
    for value in (data.get("s3_uri"), data.get("image")):
        if isinstance(value, str) and value.startswith("s3://"):
            return value
    return None


def _excerpt(body: str | bytes | None, limit: int = EXCERPT) -> str:
    """A short, single-line view of a response body: JSON compacted, HTML reduced to text."""
    if body is None:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        if "<html" in text[:500].lower() or "<!doctype" in text[:500].lower():
            title = re.search(r"<title>(.*?)</title>", text, re.S | re.I)
            heading = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S | re.I)
            text = " / ".join(unescape(re.sub(r"<[^>]+>", "", m.group(1))).strip()
                              for m in (title, heading) if m) or "(HTML page)"
    else:
        if isinstance(parsed, dict):
            parsed = {k: v for k, v in parsed.items() if k not in ("id", "version", "exc_info")}
        text = json.dumps(parsed, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def connection_settings(conn: Any) -> tuple[str, str]:
    """(base URL, API token) from an Airflow connection; errors name the connection and field."""
    host = (conn.host or "").strip().rstrip("/")
    if not host:
        raise LabelStudioError(f"connection {conn.conn_id!r}: host is empty; set it to e.g. http://127.0.0.1:8081")
    if "://" not in host:
        scheme = (conn.schema or "http").strip() or "http"
        host = f"{scheme}://{host}"
        if conn.port:
            host = f"{host}:{conn.port}"
    extra = conn.extra_dejson if isinstance(conn.extra_dejson, dict) else {}
    token = conn.password or extra.get("token")
    if not token:
        raise LabelStudioError(f"connection {conn.conn_id!r} has no API token: set its password "
                               'or extra {"token": "..."}')
    return host, str(token)


# --------------------------------------------------------------------------- hook


class LabelStudioHook(BaseHook):
    """Label Studio's REST API over ``requests`` (sync) and ``aiohttp`` (async, for triggers).

    GETs are retried (``max_retries`` times, exponential backoff) on connection errors and
    5xx answers; POSTs only when the connection failed before anything was sent, so an import
    is never applied twice. Errors name the method, URL, status and a body excerpt; the token
    is never logged.

    :param label_studio_conn_id: Airflow connection (conn_type ``http``, password = API token).
    :param timeout: Seconds to wait for an answer (long calls such as export use 5x this).
    :param max_retries: Retries of one request after the first try.
    """

    conn_name_attr = "label_studio_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "http"
    hook_name = "Label Studio"

    def __init__(self, label_studio_conn_id: str = DEFAULT_CONN_ID, *, timeout: float = 30.0,
                 max_retries: int = 3, backoff_factor: float = 0.5) -> None:
        super().__init__()
        self.label_studio_conn_id = label_studio_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        # Secrets that must never leave for Label Studio: (what it is, value). See refuse_to_send.
        self.never_send: list[tuple[str, str]] = []

    def refuse_to_send(self, what: str, value: str | None) -> None:
        """Refuse every later request whose body or query holds ``value`` (a secret named ``what``)."""
        if value:
            self.never_send.append((what, str(value)))

    def __repr__(self) -> str:  # never show the token
        return f"{type(self).__name__}(label_studio_conn_id={self.label_studio_conn_id!r})"

    @cached_property
    def _settings(self) -> tuple[str, str]:
        return connection_settings(self.get_connection(self.label_studio_conn_id))

    @property
    def base_url(self) -> str:
        return self._settings[0]

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        retry = Retry(
            total=self.max_retries, connect=self.max_retries, read=self.max_retries,
            status=self.max_retries, backoff_factor=self.backoff_factor,
            status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE"}),
            raise_on_status=False, respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update({"Authorization": f"Token {self._settings[1]}", "Accept": "application/json"})
        return session

    def get_conn(self) -> requests.Session:
        return self.session

    # ------------------------------------------------------------------ plumbing

    def _url(self, path: str) -> str:
        return self.base_url + path

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json_body: Any = None, timeout: float | None = None) -> Any:
        """One API call; returns the decoded JSON (None for an empty body)."""
        url = self._url(path)
        if self.never_send:
            sent = json.dumps([params, json_body], default=str)
            for what, value in self.never_send:
                if value in sent or json.dumps(value)[1:-1] in sent:
                    raise LabelStudioError(f"{method} {url} not sent: its body would hand Label Studio {what}; "
                                           "Label Studio must never receive an AWS secret key or session token",
                                           url=url)
        self.log.debug("%s %s", method, url)
        try:
            response = self.session.request(method, url, params=params, json=json_body,
                                            timeout=(min(10.0, self.timeout), timeout or self.timeout))
        except requests.RequestException as exc:
            raise LabelStudioError(f"{method} {url} failed: {type(exc).__name__}: {exc}", url=url) from None
        if response.status_code >= 400:
            raise LabelStudioError(
                f"{method} {response.url} -> HTTP {response.status_code}: {_excerpt(response.content)}",
                url=response.url, status=response.status_code,
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(
                f"{method} {response.url} -> HTTP {response.status_code} but the body is not JSON: "
                f"{_excerpt(response.content)}", url=response.url, status=response.status_code,
            ) from None

    # ------------------------------------------------------------------ projects

    def get_project(self, project_id: int) -> dict[str, Any]:
        return self.request("GET", f"/api/projects/{int(project_id)}/")

    def find_projects(self, title: str) -> list[dict[str, Any]]:
        """Projects whose title is exactly ``title`` (the API's filter is a substring match)."""
        found: list[dict[str, Any]] = []
        page, seen = 1, 0
        while True:
            body = self.request("GET", "/api/projects/",
                                params={"title": title, "page": page, "page_size": PROJECT_PAGE_SIZE})
            results = body.get("results", []) if isinstance(body, dict) else body
            found += [p for p in results if p.get("title") == title]
            seen += len(results)
            if not results or not isinstance(body, dict) or not body.get("next"):
                return found
            if seen >= body.get("count", 0):
                return found
            page += 1

    def get_or_create_project(self, title: str, label_config: str, *,
                              description: str = "") -> dict[str, Any]:
        """The project titled exactly ``title``, created if missing; its label config is kept in sync.

        Changing the config of a project with annotations is validated by Label Studio (a class
        still used by an annotation cannot be removed); its refusal is raised as is.
        """
        if not isinstance(title, str) or len(title.strip()) < 3:
            raise ConfigError("project_title",
                              f"must be at least 3 characters (Label Studio's rule), got {title!r}")
        matches = self.find_projects(title)
        if len(matches) > 1:
            ids = ", ".join(str(p["id"]) for p in matches)
            raise LabelStudioError(f"{len(matches)} Label Studio projects are titled {title!r} (ids {ids}) "
                                   f"at {self.base_url}; rename or delete all but one")
        if not matches:
            project = self.request("POST", "/api/projects/",
                                   json_body={"title": title, "label_config": label_config,
                                              "description": description})
            self.log.info("Created Label Studio project %s %r", project["id"], title)
            return project
        project = matches[0]
        if project.get("label_config", "").strip() != label_config.strip():
            self.log.info("Updating the label config of Label Studio project %s %r", project["id"], title)
            project = self.request("PATCH", f"/api/projects/{project['id']}/",
                                   json_body={"label_config": label_config})
        else:
            self.log.info("Reusing Label Studio project %s %r", project["id"], title)
        return project

    def project_progress(self, project_id: int) -> ProjectProgress:
        body = self.get_project(project_id)
        return ProjectProgress(*(int(body.get(name) or 0) for name in ProjectProgress._fields))

    # ------------------------------------------------------------------ tasks

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> int:
        """Create tasks (``[{"data": {...}}, ...]``) in batches; returns how many were created."""
        created = 0
        for start in range(0, len(tasks), IMPORT_BATCH):
            batch = list(tasks[start : start + IMPORT_BATCH])
            body = self.request("POST", f"/api/projects/{int(project_id)}/import", json_body=batch,
                                timeout=self.timeout * 5)
            count = int((body or {}).get("task_count", -1))
            if count != len(batch):
                url = self._url(f"/api/projects/{project_id}/import")
                raise LabelStudioError(f"POST {url} created {count} tasks for {len(batch)} sent: "
                                       f"{_excerpt(json.dumps(body))}", url=url)
            created += count
        return created

    def list_tasks(self, project_id: int, *, page_size: int = TASK_PAGE_SIZE) -> Iterator[dict[str, Any]]:
        """Every task of the project (data, ``total_annotations``, ``cancelled_annotations``)."""
        page, seen = 1, 0
        while True:
            body = self.request("GET", "/api/tasks/", params=_task_page_params(project_id, page, page_size))
            tasks = body.get("tasks", [])
            yield from tasks
            seen += len(tasks)
            if not tasks or seen >= int(body.get("total", 0)):
                return
            page += 1

    def task_progress(self, project_id: int, min_annotations: int = 1) -> TaskProgress:
        return task_progress(self.list_tasks(project_id), min_annotations)

    def update_task_data(self, task_id: int, data: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a task's data (``PATCH /api/tasks/<id>/``): annotations stay as they are."""
        return self.request("PATCH", f"/api/tasks/{int(task_id)}/", json_body={"data": dict(data)})

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """All tasks with their annotations (cancelled ones included), as Label Studio's JSON export."""
        body = self.request("GET", f"/api/projects/{int(project_id)}/export",
                            params={"exportType": "JSON", "download_all_tasks": "true"},
                            timeout=self.timeout * 10)
        if not isinstance(body, list):
            raise LabelStudioError(f"GET {self._url(f'/api/projects/{project_id}/export')} returned "
                                   f"{type(body).__name__}, not a list of tasks")
        return body

    # ------------------------------------------------------------------ S3 source storage

    def create_s3_source_storage(
        self, project_id: int, *, bucket: str, prefix: str = "", title: str | None = None,
        regex_filter: str | None = None, use_blob_urls: bool = True, presign: bool = True,
        presign_ttl_minutes: int = 60, recursive_scan: bool = True, region_name: str | None = None,
        s3_endpoint: str | None = None, sync: bool = True, sync_timeout: float = 600.0,
        poll_interval: float = 1.0,
    ) -> dict[str, Any]:
        """An S3 import storage of the project (reused by title and updated), synced if ``sync``.

        With ``use_blob_urls`` every object under ``prefix`` matching ``regex_filter`` becomes a
        task ``{"image": "s3://bucket/key"}``; Label Studio presigns the URL (``presign_ttl_minutes``)
        whenever an annotator opens the task. Label Studio itself calls S3 (``s3_endpoint`` when
        not AWS) with its server's own AWS identity: this method sends no keys. The three key
        fields are sent as null, which also erases keys that an older version stored in a reused
        storage (Label Studio keeps a field that a PATCH leaves out).
        """
        title = title or f"s3://{bucket}/{prefix}"
        payload = {
            "project": int(project_id), "title": title, "bucket": bucket, "prefix": prefix.rstrip("/"),
            "regex_filter": regex_filter or "", "use_blob_urls": use_blob_urls, "presign": presign,
            "presign_ttl": presign_ttl_minutes, "recursive_scan": recursive_scan,
            "region_name": region_name, "s3_endpoint": s3_endpoint,
            "aws_access_key_id": None, "aws_secret_access_key": None, "aws_session_token": None,
        }
        existing = [s for s in self.request("GET", "/api/storages/s3", params={"project": int(project_id)})
                    if s.get("title") == title]
        if existing:
            storage = self.request("PATCH", f"/api/storages/s3/{existing[0]['id']}", json_body=payload)
        else:
            storage = self.request("POST", "/api/storages/s3", json_body=payload)
            self.log.info("Created S3 source storage %s (%s) of project %s", storage["id"], title, project_id)
        return self.sync_s3_source_storage(storage["id"], timeout=sync_timeout,
                                           poll_interval=poll_interval) if sync else storage

    def sync_s3_source_storage(self, storage_id: int, *, timeout: float = 600.0,
                               poll_interval: float = 1.0) -> dict[str, Any]:
        """Scan the bucket for new objects (new tasks only; synced keys are remembered) and wait."""
        path = f"/api/storages/s3/{int(storage_id)}"
        storage = self.request("POST", f"{path}/sync", timeout=self.timeout * 5)
        deadline = time.monotonic() + timeout
        while storage.get("status") in ("initialized", "queued", "in_progress"):
            if time.monotonic() > deadline:
                raise LabelStudioError(f"S3 storage sync {self._url(path)} still {storage.get('status')} "
                                       f"after {timeout:.0f} s")
            time.sleep(poll_interval)
            storage = self.request("GET", path)
        if storage.get("status") != "completed":
            detail = _excerpt(storage.get("traceback") or json.dumps(storage.get("meta")), 600)
            raise LabelStudioError(f"S3 storage sync {self._url(path)} ended {storage.get('status')}: "
                                   f"{detail}", url=self._url(path))
        self.log.info("Synced S3 storage %s: %s new tasks", storage_id, storage.get("last_sync_count"))
        return storage

    # ------------------------------------------------------------------ async, for the triggerer

    async def _aget_settings(self) -> tuple[str, str]:
        if "_settings" not in self.__dict__:
            conn = await self.aget_connection(self.label_studio_conn_id)
            self.__dict__["_settings"] = connection_settings(conn)
        return self._settings

    async def arequest(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """The async counterpart of :meth:`request`, for GETs: same retries and error messages."""
        import aiohttp

        base_url, token = await self._aget_settings()
        url = base_url + path
        headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self.timeout, connect=min(10.0, self.timeout))
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                async with aiohttp.ClientSession(timeout=timeout) as session, session.request(
                    method, url, params=params, headers=headers
                ) as response:
                    body = await response.read()
                    if response.status in RETRY_STATUSES and not last:
                        raise _Retry(f"HTTP {response.status}")
                    if response.status >= 400:
                        raise LabelStudioError(
                            f"{method} {response.url} -> HTTP {response.status}: {_excerpt(body)}",
                            url=str(response.url), status=response.status,
                        )
                    return json.loads(body) if body else None
            except (TimeoutError, aiohttp.ClientError, _Retry) as exc:
                if last:
                    raise LabelStudioError(f"{method} {url} failed after {attempt + 1} tries: "
                                           f"{type(exc).__name__}: {exc}", url=url) from None
                await asyncio.sleep(self.backoff_factor * 2**attempt)
        raise AssertionError("unreachable")

    async def alist_tasks(self, project_id: int, *, page_size: int = TASK_PAGE_SIZE) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = []
        page = 1
        while True:
            params = _task_page_params(project_id, page, page_size)
            body = await self.arequest("GET", "/api/tasks/", params=params)
            batch = body.get("tasks", [])
            tasks += batch
            if not batch or len(tasks) >= int(body.get("total", 0)):
                return tasks
            page += 1

    async def atask_progress(self, project_id: int, min_annotations: int = 1) -> TaskProgress:
        return task_progress(await self.alist_tasks(project_id), min_annotations)


class _Retry(Exception):
    pass


def _task_page_params(project_id: int, page: int, page_size: int) -> dict[str, Any]:
    # resolve_uri=false: list the stored data, do not presign every image of the page.
    return {"project": int(project_id), "page": page, "page_size": page_size, "resolve_uri": "false"}


# --------------------------------------------------------------------------- operator


class LabelStudioLabelingOperator(BaseOperator):
    """Have people draw boxes in Label Studio; publish them as a Ground Truth manifest in S3.

    Creates (or reuses, by exact title) the project ``project_title`` with a RectangleLabels UI
    for ``labels``, imports one task per image that is not in the project yet (re-runs import
    nothing twice: tasks are matched by the image's s3:// URI kept in the task data), then waits
    until every task of the project is annotated ``min_annotations`` times or skipped. Finally it
    exports the project, converts it with :func:`sagemaker_vision.labels.from_label_studio`
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
    def aws_hook(self) -> Any:
        return aws.hook("s3", self.aws_conn_id, self.region_name)

    @cached_property
    def s3(self) -> Any:
        return self.aws_hook.conn

    @cached_property
    def reader_hook(self) -> Any:
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

    def reader_credentials(self) -> Any:
        """The reader principal's credentials, refused unless it is a connection of its own.

        AwsBaseHook falls back to the worker's default credentials for a connection id that does
        not exist, which would hand Label Studio the Airflow principal after all: so the
        connection must exist, and its access key must not be the Airflow connection's.
        """
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

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
        from urllib.parse import parse_qs, urlsplit

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
        class_names = _as_list(self.labels, "labels")
        label_config = rectangle_label_config(class_names)
        labels.check_label_attribute(self.label_attribute)
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
            uris = _as_list(self.image_uris, "image_uris")
            for i, uri in enumerate(uris):
                s3io.split_uri(uri, f"image_uris[{i}]")
                if uri.endswith("/"):
                    raise ConfigError(f"image_uris[{i}]", f"{uri!r} is a prefix, not an image")
            images = list(dict.fromkeys(uris))
            if not images:
                raise ConfigError("image_uris", "is empty")
            return images
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
            data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
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
        location = self.images_prefix or _common_prefix(_as_list(self.image_uris, "image_uris"))
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
        from sagemaker_vision.inference import image_size

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
            uris = _as_list(self.image_uris, "image_uris")
            if len({s3io.split_uri(u, "image_uris")[0] for u in uris}) == 1:
                confine = _common_prefix(uris)
        conversion = labels.from_label_studio(
            export, label_attribute=self.label_attribute, class_names=_as_list(self.labels, "labels"),
            job_name=f"label-studio/project-{project_id}", image_size_of=self._image_size,
            images_prefix=confine, source=f"Label Studio project {project_id} export",
        )
        body = "".join(labels.dumps_line(record) + "\n" for record in conversion)
        if conversion.num_images == 0:
            raise AirflowException(f"Label Studio project {project_id}: no task has an annotation "
                                   f"({len(conversion.unannotated_task_ids)} skipped); nothing to publish")
        labels.validate_manifest(body.splitlines(), label_attribute=self.label_attribute,
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


def presigned_url_signer(url: str) -> tuple[str | None, float]:
    """(access key id, expiry as epoch seconds) of a SigV4 presigned URL; (None, 0) otherwise."""
    from calendar import timegm
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    try:
        key = query["X-Amz-Credential"][0].split("/", 1)[0]
        signed = timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
        return key, float(signed + int(query["X-Amz-Expires"][0]))
    except (KeyError, IndexError, ValueError):
        return None, 0.0


def _as_list(value: Any, field_name: str) -> list[str]:
    """A templated list may arrive as a JSON string; anything else must already be a list."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(field_name, f"must be a list (or its JSON), got {value[:80]!r}") from None
    if not isinstance(value, (list, tuple)):
        raise ConfigError(field_name, f"must be a list, got {type(value).__name__}")
    return list(value)


def _common_prefix(uris: Sequence[str]) -> str:
    """The deepest s3://bucket/dir/ holding every URI (they must share one bucket)."""
    buckets = {s3io.split_uri(u, "image_uris")[0] for u in uris}
    if len(buckets) != 1:
        raise ConfigError("image_uris", f"s3_storage needs all images in one bucket, got {sorted(buckets)}")
    keys = [s3io.split_uri(u)[1] for u in uris]
    dirs = [k.rsplit("/", 1)[0] + "/" if "/" in k else "" for k in keys]
    common = dirs[0]
    for d in dirs[1:]:
        while not d.startswith(common):
            common = common[:-1].rsplit("/", 1)[0] + "/" if "/" in common[:-1] else ""
    return f"s3://{buckets.pop()}/{common}"


__all__ = [
    "DEFAULT_CONN_ID", "DEFAULT_PRESIGN_CONN_ID", "PRESIGN_LIFETIME_SECONDS", "presigned_url_signer",
    "LabelStudioError", "LabelStudioHook", "LabelStudioLabelingOperator",
    "ProjectProgress", "TaskProgress", "connection_settings", "rectangle_label_config", "task_progress",
    "task_s3_uri",
]
