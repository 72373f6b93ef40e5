"""`make airflow` (scripts/local_airflow.py) and `make demo` (scripts/demo.py), as a user meets them.

The launcher runs for real in a child process: its signal handling, port check, process-group
stop and start-up reporting. Only the four Airflow components are replaced by small fakes that
behave like them where it matters (a listening api-server that is slow to answer, workers left
in the group, a task process that moved to a group of its own, a component that ignores
SIGTERM, one that dies at start-up), so each test takes seconds instead of a real start-up.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

FAKE = textwrap.dedent('''
    """A fake Airflow component: fake.py ROLE PIDDIR PORT"""
    import os, signal, socket, subprocess, sys, time, json
    role, piddir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def note(kind, pid):
        open(os.path.join(piddir, f"{role}-{kind}-{pid}"), "w").close()
    note("leader", os.getpid())
    json.dump(dict(os.environ), open(os.path.join(piddir, f"{role}.env"), "w"))
    if role == "scheduler-dies":
        print("Traceback: ImportError: no module named boom", flush=True)
        sys.exit(3)
    sleeper = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    worker = subprocess.Popen([sys.executable, "-c", sleeper])  # stays in the group, ignores SIGTERM
    note("worker", worker.pid)
    task = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)  # own group
    note("task", task.pid)
    if role == "scheduler":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL stops this one
    if role == "api-server":
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(50)  # listens but never answers: still "starting up"
    time.sleep(600)
''')

HARNESS = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    sys.path.insert(0, {scripts!r})
    import local_airflow
    components = json.loads({components!r})
    sys.exit(local_airflow.main(sys.argv[1:], components=components, home=Path({home!r}), grace={grace!r}))
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Launcher:
    """scripts/local_airflow.py's main() in a child process, on fake components and a tmp home."""

    def __init__(self, tmp: Path, roles: dict[str, str], grace: float = 2.0):
        self.piddir = tmp / "pids"
        self.piddir.mkdir()
        self.home = tmp / "home"
        self.home.mkdir()
        # A migrated home: the launcher skips `airflow db migrate` as on every start but the first.
        (self.home / f".migrated-{importlib.metadata.version('apache-airflow')}").touch()
        (tmp / "fake.py").write_text(FAKE)
        self.port, self.emulator_port = free_port(), free_port()
        components = {name: [sys.executable, str(tmp / "fake.py"), role, str(self.piddir), str(self.port)]
                      for name, role in roles.items()}
        code = HARNESS.format(scripts=str(SCRIPTS), components=json.dumps(components), home=str(self.home),
                              grace=grace)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "--port", str(self.port), "--emulator-port", str(self.emulator_port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def pids(self) -> list[int]:
        return [int(p.name.rsplit("-", 1)[1]) for p in self.piddir.iterdir() if p.suffix != ".env"]

    def wait_for_pids(self, count: int, timeout: float = 60) -> list[int]:
        deadline = time.monotonic() + timeout
        while len(self.pids()) < count:
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, f"only {self.pids()} started"
            time.sleep(0.1)
        time.sleep(0.3)  # the last fake is past its bookkeeping
        return self.pids()

    def finish(self, timeout: float = 30) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


ROLES = {"api-server": "api-server", "scheduler": "scheduler", "dag-processor": "dag-processor",
         "triggerer": "triggerer"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_during_start_up_stops_every_process_of_every_group(tmp_path, sig):
    launcher = Launcher(tmp_path, ROLES)
    try:
        pids = launcher.wait_for_pids(3 * len(ROLES))  # leader, worker, task of each
        assert not port_free(launcher.port) and not port_free(launcher.emulator_port)
        launcher.proc.send_signal(sig)
        code, out, err = launcher.finish()
        assert code == (0 if sig == signal.SIGINT else 128 + sig), (out, err)
        assert f"{signal.Signals(sig).name} during start-up: stopping" in out
        survivors = [pid for pid in pids if not gone(pid)]
        assert survivors == [], (survivors, out, err)
        assert port_free(launcher.port) and port_free(launcher.emulator_port)
    finally:
        launcher.kill()


def test_a_second_signal_cuts_the_grace_period_short_and_still_leaves_nothing(tmp_path):
    launcher = Launcher(tmp_path, ROLES, grace=60.0)  # the fake scheduler ignores SIGTERM
    try:
        pids = launcher.wait_for_pids(3 * len(ROLES))
        launcher.proc.send_signal(signal.SIGINT)
        time.sleep(1.0)  # in the grace period now
        started = time.monotonic()
        launcher.proc.send_signal(signal.SIGINT)  # the impatient second Ctrl-C
        code, out, err = launcher.finish()
        assert time.monotonic() - started < 20, (out, err)  # SIGKILL at once, not after 60 s
        assert code == 0 and [pid for pid in pids if not gone(pid)] == [], (out, err)
        assert port_free(launcher.port) and port_free(launcher.emulator_port)
    finally:
        launcher.kill()


def test_a_component_dying_at_start_up_is_reported_at_once_with_its_log(tmp_path):
    launcher = Launcher(tmp_path, {**ROLES, "scheduler": "scheduler-dies"})
    try:
        started = time.monotonic()
        code, out, err = launcher.finish(timeout=60)
        assert code == 1, (out, err)
        assert "scheduler exited with code 3 during start-up" in err
        assert "ImportError: no module named boom" in err  # the reason, not only the log's path
        assert time.monotonic() - started < 30
        assert [pid for pid in launcher.pids() if not gone(pid)] == []
    finally:
        launcher.kill()


@pytest.mark.parametrize("which", ["--port", "--emulator-port"])
def test_a_taken_port_is_refused_naming_the_process_that_holds_it(which):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        other = "--emulator-port" if which == "--port" else "--port"
        run = subprocess.run([sys.executable, str(SCRIPTS / "local_airflow.py"), which, str(taken), other,
                              str(free_port())], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.returncode == 2, run
    assert f"port {taken}" in run.stderr and f"pid {os.getpid()} (" in run.stderr, run.stderr
    assert sys.executable in run.stderr or "pytest" in run.stderr  # its command line
    assert "started" not in run.stdout  # nothing was started


def test_airflow_env_gives_the_cli_what_the_components_get(tmp_path):
    """eval "$(make -s airflow-env)" sets every Airflow/AWS variable the launcher hands its components."""
    make = subprocess.run(["make", "-s", "airflow-env"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert make.returncode == 0, make.stderr
    lines = make.stdout.splitlines()
    assert lines and all(line.startswith("export ") for line in lines), make.stdout
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    shell = subprocess.run(["bash", "-c", f'eval "$(make -s airflow-env)" && python -c {json.dumps(dump)}'],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    cli = json.loads(shell.stdout)
    assert cli["AIRFLOW_HOME"] == str(ROOT / ".state" / "airflow-home")
    assert cli["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert json.loads(cli["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == "http://127.0.0.1:5055"
    which = subprocess.run(["bash", "-c", 'eval "$(make -s airflow-env)" && command -v airflow'],
                           capture_output=True, text=True, cwd=ROOT)
    assert Path(which.stdout.strip()).parent == ROOT / ".venv" / "bin"

    # The same settings as a running instance's component, for its home and ports.
    import local_airflow

    launcher = Launcher(tmp_path, ROLES)
    try:
        launcher.wait_for_pids(3 * len(ROLES))
        component = json.loads((launcher.piddir / "scheduler.env").read_text())
    finally:
        launcher.proc.send_signal(signal.SIGTERM)
        launcher.finish()
        launcher.kill()
    printed = local_airflow.cli_env(launcher.port, launcher.emulator_port, launcher.home)
    added = {k for k in component if k.startswith(("AIRFLOW", "AWS_", "SAGEMAKER_VISION_")) and k not in os.environ}
    assert added <= set(printed), added - set(printed)
    assert {k: component[k] for k in printed} == printed


# -- make demo ---------------------------------------------------------------------------------
def test_demo_runs_in_an_airflow_home_of_its_own(monkeypatch, tmp_path):
    import _local
    import demo

    seen: dict[str, object] = {}

    class FakeEmulator:
        endpoint_url = "http://127.0.0.1:1"

        def stop(self) -> None:
            seen["stopped"] = True

    def start_emulator(**kwargs):
        seen["home"] = kwargs.get("home", _local.AIRFLOW_HOME)
        return FakeEmulator(), {**_local.airflow_base_env(seen["home"])}

    def run(cmd, env, **_kwargs):
        seen["env"] = env
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(demo, "start_emulator", start_emulator)
    monkeypatch.setattr(demo, "migrate_db", lambda env, **_: seen.setdefault("migrated", env["AIRFLOW_HOME"]))
    monkeypatch.setattr(demo.subprocess, "run", run)
    monkeypatch.setattr(sys, "argv", ["demo.py"])
    assert demo.main() == 1
    assert Path(seen["home"]) == _local.DEMO_AIRFLOW_HOME != _local.AIRFLOW_HOME
    assert seen["env"]["AIRFLOW_HOME"] == seen["migrated"] == str(_local.DEMO_AIRFLOW_HOME)


def _fake_demo(monkeypatch, argv: list[str]) -> dict[str, object]:
    import _local
    import demo

    seen: dict[str, object] = {}

    class FakeEmulator:
        endpoint_url = "http://127.0.0.1:1"

        def stop(self) -> None:
            pass

    def run(cmd, env, **_kwargs):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(demo, "start_emulator",
                        lambda **kw: (FakeEmulator(), {**_local.airflow_base_env(_local.DEMO_AIRFLOW_HOME)}))
    monkeypatch.setattr(demo, "migrate_db", lambda env, **_: None)
    monkeypatch.setattr(demo.subprocess, "run", run)
    monkeypatch.setattr(sys, "argv", ["demo.py", *argv])
    seen["rc"] = demo.main()
    return seen


def test_demo_runs_the_pipeline_file_it_is_given_with_one_load_worker_under_dags_test(monkeypatch, capsys):
    seen = _fake_demo(monkeypatch, ["--pipeline", "shapes-realtime"])
    cmd = seen["cmd"]
    assert cmd[1:4] == ["dags", "test", "shapes-realtime.pipeline"]
    assert json.loads(cmd[cmd.index("--conf") + 1])["load_workers"] == 1  # dags test runs mapped tasks in turn
    assert "sets load_workers: 2" in capsys.readouterr().out


def test_demo_refuses_a_pipeline_file_that_does_not_exist_naming_the_ones_that_do(monkeypatch, capsys):
    seen = _fake_demo(monkeypatch, ["--pipeline", "nope"])
    assert seen["rc"] == 2 and "cmd" not in seen
    assert "shapes-detector, shapes-realtime" in capsys.readouterr().err



def test_demo_leaves_the_callers_environment_as_it_found_it(monkeypatch):
    """The demo reads its pipeline file with the emulator's bucket and role, but only while reading: run
    in-process (as these tests do), a lasting change would send every later test to the demo's bucket."""
    import os

    before = dict(os.environ)
    seen = _fake_demo(monkeypatch, ["--pipeline", "shapes-detector"])
    assert "cmd" in seen  # it got as far as running the DAG, so it read the file
    assert dict(os.environ) == before

@pytest.mark.integration
def test_demo_copies_the_reports_to_a_local_folder(emulator, tmp_path):
    import boto3
    import demo

    s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="demo-copy")
    prefix = "object-detection/runs/shapes-detector/20261201T000000/reports/"
    files = {"report.json": b'{"totals": {}}', "chart.png": b"\x89PNG\r\n\x1a\nfake", "smoke_test.json": b"{}"}
    for name, body in files.items():
        s3.put_object(Bucket="demo-copy", Key=prefix + name, Body=body)
    s3.put_object(Bucket="demo-copy", Key=prefix + "unrelated.json", Body=b"{}")

    saved = demo.save_reports(s3, "demo-copy", prefix, tmp_path / "20261201T000000")
    assert sorted(saved) == sorted(files)
    assert {name: path.read_bytes() for name, path in saved.items()} == files
    assert sorted(p.name for p in (tmp_path / "20261201T000000").iterdir()) == sorted(files)

    s3.delete_object(Bucket="demo-copy", Key=prefix + "report.json")  # e.g. no load test ran
    s3.delete_object(Bucket="demo-copy", Key=prefix + "chart.png")
    assert sorted(demo.save_reports(s3, "demo-copy", prefix, tmp_path / "again")) == ["smoke_test.json"]
    assert demo.OUTPUT == ROOT / "demo-output"
    assert "demo-output/" in (ROOT / ".gitignore").read_text().splitlines()
