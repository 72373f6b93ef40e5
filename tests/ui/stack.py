"""A real Airflow (api-server, dag-processor, scheduler) on a throwaway AIRFLOW_HOME, for the UI tests.

Each component is its own process in its own process group, started with the settings of
``make airflow`` (``scripts/_local.py``) plus the emulator's ``aws_default``; :meth:`AirflowStack.stop`
ends each group by its PID, SIGTERM then SIGKILL, and is safe to call at any point of ``start``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN = "admin"
STOP_GRACE_S = 20


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _local_settings() -> dict[str, str]:
    """``airflow_base_env()`` of scripts/_local.py: the one place for local Airflow settings."""
    spec = importlib.util.spec_from_file_location("_sv_local_settings", ROOT / "scripts" / "_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.airflow_base_env()


class HttpError(RuntimeError):
    def __init__(self, status: int, url: str, body: str):
        super().__init__(f"HTTP {status} from {url}: {body[:500]}")
        self.status = status


@dataclass
class AirflowStack:
    """Airflow components on ``home``, talking to the emulator at ``emulator_url``."""

    home: Path
    emulator_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "component-logs"

    def env(self) -> dict[str, str]:
        from local_aws import airflow_env

        # Nothing of the test process's own Airflow settings (unit-test mode, its AIRFLOW_HOME).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_"))}
        env.update(_local_settings())
        env.update(airflow_env(self.emulator_url))
        env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        })
        env.update(self.extra_env)
        return env

    def migrate(self) -> None:
        """``airflow db migrate`` first: it also writes airflow.cfg, whose generated secrets
        (JWT, fernet) every component must then share."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        with open(self.logs / "db-migrate.log", "wb") as log:
            subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=self.env(), check=True,
                           stdout=log, stderr=subprocess.STDOUT, timeout=180)

    def start(self, *components: str) -> None:
        env = self.env()
        for name in components:
            with open(self.logs / f"{name}.log", "ab") as log:
                # Own session = own process group: stopping it also stops the workers it forked.
                self.procs[name] = subprocess.Popen(
                    [str(BIN / "airflow"), name], env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT,
                )

    def stop(self) -> None:
        """SIGTERM each component's process group, SIGKILL what is left after the grace period."""
        for proc in self.procs.values():
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            # The group may outlive its leader (a forked worker): end it too.
            _signal_group(proc.pid, signal.SIGKILL)

    def log_text(self, component: str) -> str:
        path = self.logs / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_running(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            tails = "\n".join(f"--- {n} ---\n{self.log_text(n)[-3000:]}" for n in dead)
            raise AssertionError(f"Airflow components exited: {dead}\n{tails}")

    def wait_until(self, what: str, predicate, timeout: float, interval: float = 1.0) -> Any:
        """Poll ``predicate`` until it returns something truthy; fail naming ``what`` and the logs."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            self.check_running()
            try:
                result = predicate()
                if result:
                    return result
            except (OSError, HttpError) as error:  # not up yet
                last_error = error
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error}); "
                             f"component logs in {self.logs}")

    # ---- HTTP ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, token: str | None = None, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as error:
            raise HttpError(error.code, req.full_url, error.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def admin_password(self) -> str:
        """The password SimpleAuthManager generated for ``admin`` when the api-server started."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())[ADMIN]

    def token(self) -> str:
        """A bearer token for the public REST API, from ``POST /auth/token`` as a client would."""
        answer = self.request("POST", "/auth/token", body={"username": ADMIN, "password": self.admin_password()})
        return answer["access_token"]


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
