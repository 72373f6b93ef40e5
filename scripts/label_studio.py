"""Run Label Studio locally as a service in its own venv: install | start | stop | status | env.

    python scripts/label_studio.py install   # .venv-label-studio + a migrated template data dir
    python scripts/label_studio.py start     # http://127.0.0.1:8081, prints URL and API token
    python scripts/label_studio.py env       # export AIRFLOW_CONN_LABEL_STUDIO_DEFAULT=...
    python scripts/label_studio.py stop

Development tooling only: the admin user, password and API token below are fixed, public values
for a server bound to 127.0.0.1. Never use them, or this script, for a shared deployment.

Label Studio gets its own venv (``.venv-label-studio``, from ``requirements-label-studio.txt``)
because its Django stack pins versions that conflict with Airflow. State lives under
``.state/label-studio/`` (git-ignored): ``data/`` for the default server, ``template-<key>/``,
a stopped, already-migrated data dir that new servers start from (a fresh database spends
20-30 s in migrations; a copy of the template is healthy in a few seconds), and
``server.json``, the pid file of the default server.

The server is started with an environment built from scratch (PATH, HOME, LANG and the Label
Studio variables) because Label Studio also reads bare variables such as ``HOST``, ``PORT`` and
``USERNAME``; version checks, Sentry and analytics are switched off so it never calls out.
Its only AWS identity is the one given to :func:`start` (``start`` on the command line gives it the
emulator's read-only reader): Label Studio's S3 storage signs with it, never with keys sent to it.
The functions here are also used by the test fixture ``tests/label_studio_server.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-label-studio"
REQUIREMENTS = ROOT / "requirements-label-studio.txt"
STATE = ROOT / ".state" / "label-studio"
DEFAULT_DATA_DIR = STATE / "data"
PID_FILE = STATE / "server.json"
HOST = "127.0.0.1"
DEFAULT_PORT = 8081

# Local-only development credentials: public on purpose, valid only on 127.0.0.1.
DEFAULT_USERNAME = "admin@example.com"
DEFAULT_PASSWORD = "local-dev-only-password"
DEFAULT_TOKEN = "local-dev-only-label-studio-token-0001"  # <= 40 chars (the token column)

START_TIMEOUT = 240.0  # a cold start on 2 cores spends most of this in migrations
STOP_TIMEOUT = 20.0


class LabelStudioError(RuntimeError):
    pass


@dataclass
class Server:
    """A running Label Studio: what ``start`` returns and what the pid file holds."""

    url: str
    token: str
    pid: int
    port: int
    data_dir: str
    log_file: str
    start_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# --------------------------------------------------------------------------- install


def _requirements_digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def _uv() -> str | None:
    for candidate in (shutil.which("uv"), ROOT / ".venv" / "bin" / "uv", Path(sys.executable).parent / "uv"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def venv_python() -> Path:
    return VENV / "bin" / "python"


def installed() -> bool:
    stamp = VENV / ".installed"
    return stamp.is_file() and stamp.read_text().strip() == _requirements_digest()


@contextlib.contextmanager
def _locked(name: str):
    """An exclusive lock across processes (two test runs may install or build the template at once)."""
    import fcntl

    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def install(force: bool = False, quiet: bool = True) -> float:
    """Create ``.venv-label-studio`` from the pinned requirements; seconds taken (0 if up to date)."""
    if installed() and not force:
        return 0.0
    with _locked("install"):
        if installed() and not force:  # another process installed it while we waited
            return 0.0
        return _install(force, quiet)


def _install(force: bool, quiet: bool) -> float:
    if not REQUIREMENTS.is_file():
        raise LabelStudioError(f"{REQUIREMENTS} is missing")
    started = time.monotonic()
    uv = _uv()
    python = sys.executable
    if sys.version_info[:2] != (3, 11):
        python = shutil.which("python3.11") or python
    stamp = VENV / ".installed"
    stamp.unlink(missing_ok=True)
    q = ["-q"] if quiet else []
    if uv:
        _run([uv, "venv", *q, "--allow-existing", "--python", python, str(VENV)])
        # Copies, not hard links into uv's cache: Label Studio rewrites files in its own package
        # (core/version_.py) at run time, which would otherwise alter the cached wheel too.
        _run([uv, "pip", "install", *q, "--link-mode", "copy", *(["--reinstall"] if force else []),
              "--python", str(venv_python()), "-r", str(REQUIREMENTS)])
    else:
        if not venv_python().exists():
            _run([python, "-m", "venv", str(VENV)])
        _run([str(venv_python()), "-m", "pip", "install", *q, "--disable-pip-version-check",
              *(["--force-reinstall"] if force else []), "-r", str(REQUIREMENTS)])
    if not (VENV / "bin" / "label-studio").exists():
        raise LabelStudioError(f"{VENV}/bin/label-studio is missing after installing {REQUIREMENTS.name}")
    stamp.write_text(_requirements_digest() + "\n")
    return time.monotonic() - started


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise LabelStudioError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}")


# --------------------------------------------------------------------------- start / stop


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something accepts connections on host:port or the port cannot be bound.

    Label Studio silently moves to the next port when its port is busy, so callers check first.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# Label Studio's SSRF guard refuses every reserved subnet (its core/utils/io.py validate_ip list),
# loopback included, which would bar the local AWS emulator as an S3 endpoint. This is that list
# minus 127.0.0.0/8: only this machine's loopback is opened, private networks stay banned.
BANNED_SUBNETS = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "233.252.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/128",
    "::1/128", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
    "2001:0000::/32", "2001:20::/28", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "ff00::/8",
)


# The AWS identity of the local server: the emulator's read-only Label Studio reader (fake keys,
# meaningless outside the emulator; the same values as local_aws/env.py). In s3_storage mode Label
# Studio signs with the identity of its own process (boto3's default chain): it is never sent keys.
EMULATOR_READER_IDENTITY = {"AWS_ACCESS_KEY_ID": "label-studio-reader",
                            "AWS_SECRET_ACCESS_KEY": "label-studio-reader-secret"}


def server_env(data_dir: Path, username: str, password: str, token: str,
               aws_identity: dict[str, str] | None = None) -> dict[str, str]:
    """The whole environment of the server process: nothing is inherited from the caller.

    ``aws_identity`` (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, optionally
    ``AWS_SESSION_TOKEN``) is the only AWS identity the server gets: the caller's ``~/.aws`` files
    and the instance metadata service are switched off, so it never signs as the developer.
    """
    allowed = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    if aws_identity and set(aws_identity) - allowed:
        raise LabelStudioError(f"aws_identity: unknown variables {sorted(set(aws_identity) - allowed)}")
    return {
        **(aws_identity or {}),
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": f"{VENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(STATE)),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        # Label Studio asks git for its own version from its package dir, which lives inside this
        # repository's work tree: stop git there, or it reports (and caches) our commit as its own.
        "GIT_CEILING_DIRECTORIES": str(ROOT),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        # Must be set when the organisation is created (the first start) for `Token <t>` to work.
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        # Never call out: no PyPI version check, no Sentry, no usage analytics.
        "LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
        # Let S3 storages point at the emulator on 127.0.0.1 (see BANNED_SUBNETS).
        "LABEL_STUDIO_USE_DEFAULT_BANNED_SUBNETS": "false",
        "LABEL_STUDIO_USER_ADDITIONAL_BANNED_SUBNETS": ",".join(BANNED_SUBNETS),
    }


def _http_status(url: str, token: str | None = None, timeout: float = 2.0) -> int | None:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - 127.0.0.1 only
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _tail(path: Path, limit: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _is_label_studio(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process running our venv's label-studio."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return _alive(pid)
    return "label-studio" in cmdline or str(VENV) in cmdline


def start(port: int = DEFAULT_PORT, data_dir: Path = DEFAULT_DATA_DIR, *, template: Path | None = None,
          username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD, token: str = DEFAULT_TOKEN,
          timeout: float = START_TIMEOUT, aws_identity: dict[str, str] | None = None) -> Server:
    """Start Label Studio on 127.0.0.1:``port`` with ``data_dir``; return once /health answers.

    A ``data_dir`` without a database is first filled from ``template`` (a migrated data dir)
    when one is given. The server runs in its own process group; stop it with :func:`stop`.
    ``aws_identity``: the AWS keys of the server process (see :func:`server_env`); none when None.
    """
    if not installed():
        raise LabelStudioError(f"{VENV} is missing or out of date: "
                               "run `python scripts/label_studio.py install`")
    if port_in_use(port):
        raise LabelStudioError(f"port {port} on {HOST} is already in use; pick another with --port "
                               "(Label Studio would silently move to the next free port)")
    data_dir = Path(data_dir).resolve()
    if template is not None and not (data_dir / "label_studio.sqlite3").exists():
        if data_dir.exists() and any(data_dir.iterdir()):
            raise LabelStudioError(f"{data_dir} is not empty but has no label_studio.sqlite3")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(template, data_dir, dirs_exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / "label-studio.log"
    cmd = [str(VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", HOST,
           "--port", str(port), "--data-dir", str(data_dir)]
    started = time.monotonic()
    with open(log_file, "ab") as log:
        env = server_env(data_dir, username, password, token, aws_identity)
        proc = subprocess.Popen(cmd, env=env, cwd=data_dir,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://{HOST}:{port}"
    try:
        while True:
            if proc.poll() is not None:
                raise LabelStudioError(f"Label Studio exited with {proc.returncode} before {url}/health "
                                       f"answered; {log_file}:\n{_tail(log_file)}")
            if "is in use" in _tail(log_file, 20000):
                raise LabelStudioError(f"port {port} was taken while Label Studio started; {log_file}")
            if _http_status(f"{url}/health") == 200:
                break
            if time.monotonic() - started > timeout:
                raise LabelStudioError(f"{url}/health did not answer within {timeout:.0f} s; "
                                       f"{log_file}:\n{_tail(log_file)}")
            time.sleep(0.25)
        status = _http_status(f"{url}/api/current-user/whoami", token)
        if status != 200:
            raise LabelStudioError(
                f"{url}/api/current-user/whoami answered {status} to the configured token: {data_dir} was "
                "created with another token or without LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN; delete it")
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        raise
    return Server(url=url, token=token, pid=proc.pid, port=port, data_dir=str(data_dir),
                  log_file=str(log_file), start_seconds=round(time.monotonic() - started, 2))


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the server whose process group leader is ``pid``; False if it was not running."""
    if not _alive(pid):
        return False
    if not _is_label_studio(pid):
        raise LabelStudioError(f"pid {pid} is not a Label Studio process; not signalling it")
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if not _alive(pid):
            return True
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return True


def template_dir(username: str = DEFAULT_USERNAME, token: str = DEFAULT_TOKEN) -> Path:
    """The template depends on the pinned versions (migrations) and on the admin and token in it."""
    key = hashlib.sha256(f"{_requirements_digest()}\0{username}\0{token}".encode()).hexdigest()[:12]
    return STATE / f"template-{key}"


def ensure_template(username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD,
                    token: str = DEFAULT_TOKEN) -> tuple[Path, float]:
    """A stopped, migrated data dir with the admin user; (path, seconds of the cold start or 0)."""
    target = template_dir(username, token)
    if (target / "label_studio.sqlite3").is_file():
        return target, 0.0
    with _locked("template"):
        if (target / "label_studio.sqlite3").is_file():
            return target, 0.0
        return _build_template(target, username, password, token)


def _build_template(target: Path, username: str, password: str, token: str) -> tuple[Path, float]:
    staging = Path(tempfile.mkdtemp(prefix="template-build-", dir=STATE))
    try:
        server = start(free_port(), staging, username=username, password=password, token=token)
        stop(server.pid)
        (staging / "label-studio.log").unlink(missing_ok=True)
        staging.rename(target)
        return target, server.start_seconds
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def _read_pid_file() -> Server | None:
    try:
        return Server(**json.loads(PID_FILE.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def connection_json(url: str, token: str) -> str:
    return json.dumps({"conn_type": "http", "host": url, "password": token})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="create .venv-label-studio and the migrated template")
    p_install.add_argument("--force", action="store_true", help="reinstall even if up to date")
    p_start = sub.add_parser("start", help="start the default server in the background")
    p_start.add_argument("--port", type=int, default=DEFAULT_PORT)
    p_start.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    sub.add_parser("stop", help="stop the default server")
    sub.add_parser("status", help="is the default server running and healthy")
    sub.add_parser("env", help="print the Airflow connection for the default server as an export line")
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            seconds = install(force=args.force)
            print(f"{VENV}: " + (f"installed in {seconds:.1f} s" if seconds else "up to date"))
            path, cold = ensure_template()
            print(f"template {path}: " + (f"migrated in {cold:.1f} s" if cold else "up to date"))
            return 0
        if args.command == "start":
            running = _read_pid_file()
            if running and _alive(running.pid):
                print(f"already running: {running.url} (pid {running.pid})")
                return 0
            install()
            template = template_dir()
            server = start(args.port, args.data_dir,
                           template=template if (template / "label_studio.sqlite3").is_file() else None,
                           aws_identity=EMULATOR_READER_IDENTITY)
            STATE.mkdir(parents=True, exist_ok=True)
            PID_FILE.write_text(server.to_json())
            print(f"Label Studio {server.url} healthy in {server.start_seconds:.1f} s (pid {server.pid})")
            print(f"  login {DEFAULT_USERNAME} / {DEFAULT_PASSWORD}   (local-only dev credentials)")
            print(f"  API token {server.token}   header: Authorization: Token {server.token}")
            print(f"  AWS identity (s3_storage mode): the emulator's reader, "
                  f"{EMULATOR_READER_IDENTITY['AWS_ACCESS_KEY_ID']}")
            print(f"  log {server.log_file}")
            print(f"  export AIRFLOW_CONN_LABEL_STUDIO_DEFAULT='{connection_json(server.url, server.token)}'")
            return 0
        if args.command == "stop":
            running = _read_pid_file()
            if running is None:
                print("not running (no pid file)")
                return 0
            print(f"stopped pid {running.pid}" if stop(running.pid) else f"pid {running.pid} was not running")
            PID_FILE.unlink(missing_ok=True)
            return 0
        if args.command == "status":
            running = _read_pid_file()
            if running is None or not _alive(running.pid):
                print("not running")
                return 1
            health = _http_status(f"{running.url}/health")
            print(f"{running.url} pid {running.pid}: /health {health}")
            return 0 if health == 200 else 1
        if args.command == "env":
            running = _read_pid_file()
            url = running.url if running else f"http://{HOST}:{DEFAULT_PORT}"
            token = running.token if running else DEFAULT_TOKEN
            print(f"export AIRFLOW_CONN_LABEL_STUDIO_DEFAULT='{connection_json(url, token)}'")
            return 0
    except LabelStudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
