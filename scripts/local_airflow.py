"""`make airflow`: a local Airflow 3 on the embedded emulator, for clicking through the UI.

Starts the emulator in this process, then api-server, scheduler, dag-processor and triggerer
as separate processes (not `airflow standalone`, which leaves orphans behind), each the leader of
a process group of its own. SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed), at any
moment including start-up, stops every group with all its workers, then the emulator.

It refuses to start while the UI's or the emulator's port is taken, naming the process that
holds it; a component that dies during start-up is reported at once with the end of its log.
`--print-env` (`make airflow-env`) prints the environment the `airflow` CLI needs to reach this
instance: `eval "$(make -s airflow-env)"`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from _local import AIRFLOW_HOME, BIN, airflow_base_env, migrate_db, start_emulator
from _procs import StopFlag, launch, log_tail, port_holder, say, stop_groups

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DEFAULT_PORT = 8080
DEFAULT_EMULATOR_PORT = 5055
START_TIMEOUT = 120.0  # seconds for the api-server to answer


def api_env(port: int) -> dict[str, str]:
    """The api-server settings of this instance (the CLI needs them too)."""
    return {
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    }


def cli_env(port: int = DEFAULT_PORT, emulator_port: int = DEFAULT_EMULATOR_PORT,
            home: Path = AIRFLOW_HOME) -> dict[str, str]:
    """Everything the components get beyond the user's shell: what `airflow` needs to reach them."""
    from local_aws import airflow_env

    return {**airflow_base_env(home), **airflow_env(f"http://127.0.0.1:{emulator_port}"), **api_env(port)}


def print_env(port: int, emulator_port: int, home: Path = AIRFLOW_HOME) -> None:
    """Shell lines for `eval`: the instance's settings, and the venv's `airflow` first on PATH."""
    for key, value in cli_env(port, emulator_port, home).items():
        print(f"export {key}={shlex.quote(value)}")
    print(f'export PATH={shlex.quote(str(BIN))}:"$PATH"')


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _report_dead(procs: dict[str, subprocess.Popen], logs: Path, when: str) -> bool:
    """Print each component that exited, with its exit code and the tail of its log."""
    dead = {name: p.returncode for name, p in procs.items() if p.poll() is not None}
    for name, code in dead.items():
        log = logs / f"{name}.log"
        say(f"\n{name} exited with code {code} {when}. End of {log}:\n{log_tail(log)}\n", file=sys.stderr)
    return bool(dead)


def main(argv: list[str] | None = None, *, components: dict[str, list[str]] | None = None,
         home: Path = AIRFLOW_HOME, grace: float = 20.0) -> int:
    """``components`` (name -> argv) and ``home`` replace the real ones in tests."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--emulator-port", type=int, default=DEFAULT_EMULATOR_PORT)
    parser.add_argument("--print-env", action="store_true",
                        help="print `export` lines for the airflow CLI and exit (make airflow-env)")
    args = parser.parse_args(argv)
    if args.print_env:
        print_env(args.port, args.emulator_port, home)
        return 0
    stop = StopFlag().install()  # before anything starts: no signal may leave a child behind

    busy = [(what, port, holder) for what, port in (("the Airflow UI", args.port), ("the emulator", args.emulator_port))
            if port and (holder := port_holder(port))]
    for what, port, holder in busy:
        say(f"port {port} ({what}) is taken by {holder}. Stop it first, or choose another port: "
            f"make airflow AIRFLOW_ARGS='--port N --emulator-port M'", file=sys.stderr)
    if busy:
        return 2

    commands = components or {name: [str(BIN / "airflow"), name] for name in COMPONENTS}
    procs: dict[str, subprocess.Popen] = {}
    logs = home / "component-logs"
    emu = None
    try:
        emu, env = start_emulator(port=args.emulator_port, home=home)
        env.update(api_env(args.port))
        if stop or not migrate_db(env, stop=lambda: bool(stop)):
            return _stopped(stop, "during start-up")
        logs.mkdir(parents=True, exist_ok=True)
        for name, cmd in commands.items():
            with open(logs / f"{name}.log", "ab") as log:  # the child keeps its own descriptor
                procs[name] = launch(cmd, env, log)
            say(f"started {name:14s} pid {procs[name].pid}  log {logs / (name + '.log')}")
            if stop:
                return _stopped(stop, "during start-up")

        ui = f"http://127.0.0.1:{args.port}"
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(f"{ui}/api/v2/version"):
            if _report_dead(procs, logs, "during start-up"):
                return 1
            if time.monotonic() > deadline:
                say(f"api-server did not answer on {ui} within {START_TIMEOUT:.0f} s. End of "
                    f"{logs / 'api-server.log'}:\n{log_tail(logs / 'api-server.log')}", file=sys.stderr)
                return 1
            if stop.sleep(0.5):
                return _stopped(stop, "during start-up")

        passwords = home / "simple_auth_manager_passwords.json.generated"
        login = json.loads(passwords.read_text()) if passwords.exists() else {}
        ports = "" if (args.port, args.emulator_port) == (DEFAULT_PORT, DEFAULT_EMULATOR_PORT) else (
            f" AIRFLOW_ARGS='--port {args.port} --emulator-port {args.emulator_port}'")
        say("\n" + "=" * 72)
        say(f"Airflow UI   {ui}")
        for user, password in login.items():
            say(f"login        {user} / {password}")
        say(f"emulator     {emu.endpoint_url} (aws_default points here)")
        say(f'airflow CLI  eval "$(make -s airflow-env{ports})"   (AIRFLOW_HOME={home})')
        say("Ctrl-C (or closing this terminal) stops every component and its workers.")
        say("=" * 72)
        while not stop.sleep(1):
            if _report_dead(procs, logs, "while running"):
                say("stopping the rest.", file=sys.stderr)
                return 1
        return _stopped(stop, "")
    except KeyboardInterrupt:  # a second signal interrupted a step: stop without a grace period
        return _stopped(stop, "again")
    finally:
        stop.cleaning = True
        survivors = stop_groups(procs.values(), grace=grace, hurry=lambda: stop.hurry)
        if survivors:
            say(f"could not stop pids {survivors}", file=sys.stderr)
        if emu is not None:
            emu.stop()


def _stopped(stop: StopFlag, when: str) -> int:
    say(f"\n{stop.name}{' ' + when if when else ''}: stopping…")
    return 0 if stop.signum == signal.SIGINT else 128 + int(stop.signum or 0)


if __name__ == "__main__":
    sys.exit(main())
