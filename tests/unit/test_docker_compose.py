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

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
LONG_RUNNING = (
    "postgres",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "aws-emulator",
    "label-studio",
)
# Host port -> (service, container port): the documented ones, and no others.
PUBLISHED_PORTS = {
    8080: ("airflow-apiserver", 8080),
    5055: ("aws-emulator", 5055),
    8081: ("label-studio", 8080),
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|_KEY(_ID)?$|^AIRFLOW_CONN_|SQL_ALCHEMY_CONN")
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
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


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
    # LocalExecutor: nothing Celery-shaped is left behind from the official file.
    assert not {"redis", "airflow-worker", "flower"} & set(services)


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
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
        assert int(env["AIRFLOW__CORE__PARALLELISM"]) >= 1
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    # Tokens signed by the scheduler must verify in the API server: one secret for all.
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert len({_env(services[n])[key] for n in AIRFLOW_SERVICES}) == 1, key


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
    # Tasks run inside the scheduler and talk to the Execution API.
    assert services["airflow-scheduler"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
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
         "config", "-q"],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr
