"""Structure of docker-compose.yaml: the file users start from, which cannot run here (no engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.pins import pins as _pins

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-worker",
    "airflow-dag-processor",
    "airflow-triggerer",
    "flower",
)
LONG_RUNNING = (
    "postgres",
    "redis",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-worker",
    "airflow-dag-processor",
    "airflow-triggerer",
    "aws-emulator",
    "label-studio",
    "flower",
)
# Host port -> (service, container port): the documented ones, and no others.
PUBLISHED_PORTS = {
    8080: ("airflow-apiserver", 8080),
    5055: ("aws-emulator", 5055),
    8081: ("label-studio", 8080),
    5555: ("flower", 5555),
}
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY(_ID)?$|^AIRFLOW_CONN_|SQL_ALCHEMY_CONN|RESULT_BACKEND")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="module")
def compose(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _pin(name: str) -> str:
    pins = _pins("requirements.txt")
    assert name in pins, f"{name} is not pinned in requirements.txt"
    return pins[name]


def _python_minor() -> str:
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    match = re.search(r">=\s*(3\.\d+)", requires)
    assert match, requires
    return match.group(1)


def _env(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment must be a mapping (merged from the anchors)"
    return env


def _host_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    published = []
    for spec in service.get("ports", []):
        match = re.fullmatch(r"(?:(.+):)?(\d+):(\d+)", str(spec))
        assert match, f"unexpected port syntax {spec!r}"
        published.append((match.group(1) or "", int(match.group(2)), int(match.group(3))))
    return published


def test_required_services_exist(services: dict[str, Any]) -> None:
    assert set(AIRFLOW_SERVICES) | set(LONG_RUNNING) <= set(services)
    # Optional extras only: `docker compose up` without a profile starts the Airflow stack alone.
    assert {name for name, service in services.items() if service.get("profiles")} == {
        "aws-emulator", "label-studio", "flower",
    }


def test_airflow_services_share_the_pinned_image(services: dict[str, Any], text: str) -> None:
    airflow_version = _pin("apache-airflow")
    base_image = f"apache/airflow:{airflow_version}-python{_python_minor()}"
    first = services[AIRFLOW_SERVICES[0]]
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["image"] == first["image"], name
        assert service["build"] == first["build"], name
        assert service["build"]["args"]["AIRFLOW_BASE_IMAGE"] == base_image, name
        assert service["build"]["target"] == "airflow", name
    assert airflow_version in first["image"]
    # The lock is what gets installed; the base image arg is what FROM uses.
    dockerfile = first["build"]["dockerfile_inline"]
    assert "FROM $${AIRFLOW_BASE_IMAGE} AS airflow" in dockerfile
    assert "pip install --no-cache-dir -r /opt/airflow/requirements.txt" in dockerfile
    assert "apache/airflow:" not in text.replace(base_image, ""), "a second, unpinned Airflow image"


def test_dockerfile_has_no_unescaped_compose_interpolation(services: dict[str, Any]) -> None:
    # Compose would substitute ${X} itself (empty when unset); Dockerfile variables need $${X}.
    dockerfile = services["airflow-apiserver"]["build"]["dockerfile_inline"]
    assert not re.search(r"(?<!\$)\$\{", dockerfile)


def test_dependencies_are_baked_not_installed_at_start(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        assert not _env(services[name]).get("_PIP_ADDITIONAL_REQUIREMENTS"), name


def test_airflow_settings(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
        assert int(env["AIRFLOW__CORE__PARALLELISM"]) >= 1
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # Tokens signed by the scheduler must verify in the API server: one secret for all.
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len({_env(services[n])[key] for n in AIRFLOW_SERVICES}) == 1, key


def test_celery_broker_and_result_backend(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        env = _env(services[name])
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0", name
        # Task states come back through the metadata database, with the same credentials.
        backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert backend.startswith("db+postgresql://"), (name, backend)
        conn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert backend.split("://", 1)[1] == conn.split("://", 1)[1], name
        # The scheduler-wide cap leaves room for more than one worker's concurrency.
        assert int(env["AIRFLOW__CORE__PARALLELISM"]) > int(env["AIRFLOW__CELERY__WORKER_CONCURRENCY"]), name
    redis = services["redis"]
    assert redis["image"].startswith("redis:"), redis["image"]
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert not redis.get("ports"), "the broker is for the Compose network only"


def test_worker_runs_celery_and_can_be_scaled(services: dict[str, Any]) -> None:
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    probe = " ".join(worker["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][0] == "CMD-SHELL"
    # $$ so that the shell, not Compose, expands HOSTNAME: each replica pings its own node.
    assert f'celery --app {CELERY_APP} inspect ping -d "celery@$${{HOSTNAME}}"' in probe
    # Warm shutdown: the entrypoint passes SIGTERM to Celery alone, which lets running tasks finish.
    assert _env(worker)["DUMB_INIT_SETSID"] == "0"
    # `docker compose up --scale airflow-worker=N` refuses a fixed name or a published host port.
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert not worker.get("hostname"), "one hostname for every replica would merge their Celery nodes"
    deps = worker["depends_on"]
    for dep in ("redis", "postgres", "airflow-apiserver"):
        assert deps[dep]["condition"] == "service_healthy", dep
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    assert "container_name" not in services["airflow-scheduler"]


def test_flower_is_optional(services: dict[str, Any]) -> None:
    flower = services["flower"]
    assert flower["command"] == "celery flower"
    assert flower["profiles"] == ["flower"]


def test_image_installs_the_celery_provider(services: dict[str, Any]) -> None:
    dockerfile = services["airflow-worker"]["build"]["dockerfile_inline"]
    install = next(line for line in dockerfile.splitlines() if "pip install" in line)
    assert "-r /opt/airflow/requirements.txt" in install
    assert "-r /opt/airflow/requirements-celery.txt" in install
    copy = next(line for line in dockerfile.splitlines() if line.startswith("COPY") and "requirements-celery" in line)
    assert "requirements.txt" in copy.split()
    celery = _pins("requirements-celery.txt")
    for name in ("apache-airflow-providers-celery", "celery", "redis", "kombu"):
        assert name in celery, f"{name} is not pinned in requirements-celery.txt"
    # The same Airflow as the base image, and no package at another version than the dev lock
    # (the emulator image installs requirements-dev.txt on top of this one).
    assert celery["apache-airflow"] == _pin("apache-airflow")
    dev = _pins("requirements-dev.txt")
    moved = {name: (version, dev[name]) for name, version in celery.items() if dev.get(name, version) != version}
    assert not moved, f"requirements-celery.txt and requirements-dev.txt disagree: {moved}"
    # The test venv stays on the LocalExecutor: the Celery lock is only the image's.
    assert "apache-airflow-providers-celery" not in dev
    source = (ROOT / "requirements-celery.in").read_text()
    assert re.search(r"^apache-airflow-providers-celery==", source, re.M)
    assert "requirements-celery.in -o requirements-celery.txt" in (ROOT / "Makefile").read_text(), "make lock"


def test_code_is_mounted_read_only_into_every_airflow_service(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        volumes = services[name]["volumes"]
        for folder in ("dags", "plugins", "include"):
            assert f"./{folder}:/opt/airflow/{folder}:ro" in volumes, (name, folder)
        assert "./logs:/opt/airflow/logs" in volumes, name


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check, name
        assert check["test"] and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert re.fullmatch(r"\d+s", check["interval"]), name
        assert int(check["retries"]) >= 3, name
        assert services[name].get("restart") in ("always", "unless-stopped"), name
    assert "airflow-init" not in LONG_RUNNING and "restart" not in services["airflow-init"]


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("airflow-apiserver", "http://localhost:8080/api/v2/version"),
        ("airflow-scheduler", "http://localhost:8974/health"),
        ("airflow-dag-processor", "airflow jobs check --job-type DagProcessorJob"),
        ("airflow-triggerer", "airflow jobs check --job-type TriggererJob"),
        ("label-studio", "http://localhost:8080/health"),
        ("postgres", "pg_isready"),
        ("redis", "redis-cli ping"),
        ("airflow-worker", f"{CELERY_APP} inspect ping"),
        ("flower", "http://localhost:5555/"),
    ],
)
def test_healthcheck_probes(services: dict[str, Any], name: str, probe: str) -> None:
    assert probe in " ".join(services[name]["healthcheck"]["test"])


def test_depends_on(services: dict[str, Any]) -> None:
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        if name != "airflow-init":
            assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
    assert "airflow-init" not in services["airflow-init"]["depends_on"]
    # Tasks run on the workers, which need the broker and the Execution API.
    for name in AIRFLOW_SERVICES:
        if name != "airflow-init":
            assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            # A dependency behind a profile breaks `docker compose up` without that profile.
            assert not services[dep].get("profiles"), (name, dep)
            if "healthcheck" in services[dep]:
                assert spec["condition"] == "service_healthy", (name, dep)


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert "postgres-db-volume:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "$")):
                assert source in declared, (name, source)


def test_emulator_service(services: dict[str, Any]) -> None:
    emulator = services["aws-emulator"]
    assert emulator["profiles"] == ["emulator"]
    assert emulator["build"]["target"] == "emulator"
    assert "FROM airflow AS emulator" in emulator["build"]["dockerfile_inline"]
    assert "-r /opt/airflow/requirements-dev.txt" in emulator["build"]["dockerfile_inline"]
    assert emulator["build"]["args"] == services["airflow-apiserver"]["build"]["args"]
    command = [*emulator["entrypoint"], *emulator["command"]]
    assert command == ["python", "-m", "local_aws", "serve", "--port", "5055", "--host", "0.0.0.0"]
    assert "./local_aws:/opt/airflow/local_aws:ro" in emulator["volumes"]
    assert "./include:/opt/airflow/include:ro" in emulator["volumes"]
    # The default aws_default connection targets this service, so it works with --profile emulator.
    conn = _env(services["airflow-scheduler"])["AIRFLOW_CONN_AWS_DEFAULT"]
    match = INTERPOLATION.fullmatch(conn)
    assert match and match.group(1) == "AIRFLOW_CONN_AWS_DEFAULT", "must be overridable for real AWS"
    assert "endpoint_url=http%3A%2F%2Faws-emulator%3A5055" in match.group(2)


def test_label_studio_service(services: dict[str, Any]) -> None:
    studio = services["label-studio"]
    assert studio["profiles"] == ["labeling"]
    assert studio["image"] == "heartexlabs/label-studio:1.23.2"
    env = _env(studio)
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["LATEST_VERSION_CHECK"] == "false"
    assert env["SENTRY_DSN"] == "" and env["FRONTEND_SENTRY_DSN"] == ""
    for key in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"):
        match = INTERPOLATION.fullmatch(env[key])
        assert match and match.group(1) == key and match.group(2), key
    assert "label-studio-data:/label-studio/data" in studio["volumes"]


def test_only_documented_host_ports_on_loopback_by_default(services: dict[str, Any], text: str) -> None:
    seen: dict[int, tuple[str, int]] = {}
    for name, service in services.items():
        for address, host, container in _host_ports(service):
            assert host not in seen, f"host port {host} published twice"
            seen[host] = (name, container)
            assert address == "${BIND_ADDRESS:-127.0.0.1}", (name, address)
    assert seen == PUBLISHED_PORTS
    header = text.split("\n---", 1)[0]
    for host in PUBLISHED_PORTS:
        assert str(host) in header, f"port {host} is not documented in the header"


def test_no_hard_coded_secrets(services: dict[str, Any], text: str) -> None:
    header = text.split("\n---", 1)[0]
    for name, service in services.items():
        for key, value in _env(service).items():
            # *_FILE settings are paths to secrets and true/false are feature flags: not secrets.
            if not SECRET_NAME.search(key) or key.endswith("_FILE") or value in (None, "", "true", "false"):
                continue
            names = INTERPOLATION.findall(str(value))
            # Every secret comes from the environment; its fallback is a documented local default.
            assert names, f"{name}: {key} is hard-coded; read it from ${{...}}"
            for variable, _default in names:
                assert re.search(rf"\b{variable}\b", header), (
                    f"{name}: {key} falls back on {variable}, which the header does not document"
                )


@pytest.mark.skipif(shutil.which("docker") is None, reason="docker CLI not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode != 0:
        pytest.skip("docker compose plugin not installed")
    # `config` only parses and interpolates: no engine needed. All profiles, so every service is checked.
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "--profile", "emulator", "--profile", "labeling",
         "--profile", "flower", "config", "-q"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_shipped_pipeline_files_load_with_the_stacks_defaults(monkeypatch):
    """A pipeline file that leaves the role or bucket out takes them from the environment; the stack sets
    both (emulator defaults), so the shipped pipelines load instead of showing as import errors."""
    import re

    from sagemaker_vision.core.pipeline_file import ENV_DEFAULTS, load_pipelines

    env = yaml.safe_load(COMPOSE_FILE.read_text())["x-airflow-common"]["environment"]
    for name in ("SAGEMAKER_VISION_ROLE_ARN", "SAGEMAKER_VISION_BUCKET"):
        default = re.fullmatch(r"\$\{" + name + r":-(.+)\}", str(env[name]))
        assert default, f"{name} must default to a value: {env.get(name)!r}"
        monkeypatch.setenv(name, default.group(1))
    monkeypatch.delenv(ENV_DEFAULTS["pipeline_name"], raising=False)
    good, bad = load_pipelines(ROOT / "include" / "pipelines")
    assert bad == [] and len(good) >= 2
