"""Label Studio's REST API as an Airflow hook (sync ``requests``, async ``aiohttp`` for the trigger).

The connection ``label_studio_default``: conn_type ``http``, host ``http://host:port`` (scheme and
port may also be in the schema and port fields), password = the API token (or extra
``{"token": ...}``). Requests carry ``Authorization: Token <t>`` (Label Studio's legacy API token,
which must be enabled on the server: ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true``). A connection
that does not exist fails the task at once, without retries (:class:`LabelStudioConnectionMissing`):
no retry can create it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowNotFoundException
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from sagemaker_vision.core.label_studio import ProjectProgress, TaskProgress, excerpt, task_progress
from sagemaker_vision.core.validate import ConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

__all__ = [
    "DEFAULT_CONN_ID",
    "LabelStudioConnectionMissing",
    "LabelStudioError",
    "LabelStudioHook",
    "connection_settings",
    "missing_connection_message",
]

DEFAULT_CONN_ID = "label_studio_default"
RETRY_STATUSES = (500, 502, 503, 504)
IMPORT_BATCH = 500
PROJECT_PAGE_SIZE = 100
TASK_PAGE_SIZE = 500  # Label Studio has no cap by default; 500 keeps one page well under a second


class LabelStudioError(AirflowException):
    """A Label Studio API call failed; the message names the method, URL, status and body."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.status = status


class LabelStudioConnectionMissing(LabelStudioError, AirflowFailException):
    """The Label Studio connection does not exist: the task fails at once, no retry can fix it."""


def missing_connection_message(conn_id: str) -> str:
    """What to do when the Airflow connection ``conn_id`` to Label Studio does not exist."""
    return (
        f"The Airflow connection {conn_id!r} to the Label Studio server does not exist, so the task fails "
        "without retrying. Start a local server with `make label-studio` (http://127.0.0.1:8081), then set "
        f"the connection: `eval \"$(python scripts/label_studio.py env)\"` exports "
        f"AIRFLOW_CONN_{conn_id.upper()} for the Airflow processes, or create an http connection {conn_id!r} "
        "whose host is the server's URL and whose password is its API token."
    )


def connection_settings(conn: Connection) -> tuple[str, str]:
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
        try:
            conn = self.get_connection(self.label_studio_conn_id)
        except AirflowNotFoundException:
            raise LabelStudioConnectionMissing(missing_connection_message(self.label_studio_conn_id)) from None
        return connection_settings(conn)

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
                f"{method} {response.url} -> HTTP {response.status_code}: {excerpt(response.content)}",
                url=response.url, status=response.status_code,
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(
                f"{method} {response.url} -> HTTP {response.status_code} but the body is not JSON: "
                f"{excerpt(response.content)}", url=response.url, status=response.status_code,
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
                                       f"{excerpt(json.dumps(body))}", url=url)
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
            detail = excerpt(storage.get("traceback") or json.dumps(storage.get("meta")), 600)
            raise LabelStudioError(f"S3 storage sync {self._url(path)} ended {storage.get('status')}: "
                                   f"{detail}", url=self._url(path))
        self.log.info("Synced S3 storage %s: %s new tasks", storage_id, storage.get("last_sync_count"))
        return storage

    # ------------------------------------------------------------------ async, for the triggerer

    async def _aget_settings(self) -> tuple[str, str]:
        if "_settings" not in self.__dict__:
            try:
                conn = await self.aget_connection(self.label_studio_conn_id)
            except AirflowNotFoundException:
                raise LabelStudioConnectionMissing(missing_connection_message(self.label_studio_conn_id)) from None
            self.__dict__["_settings"] = connection_settings(conn)
        return self._settings

    async def arequest(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """The async counterpart of :meth:`request`, for GETs: same retries and error messages."""
        import aiohttp  # lazy: only the triggerer makes async calls; keeps DAG parsing fast

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
                            f"{method} {response.url} -> HTTP {response.status}: {excerpt(body)}",
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
