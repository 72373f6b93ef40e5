"""`make airflow`: a local Airflow 3 on the embedded emulator, for clicking through the UI.

Starts the emulator in this process, then api-server, scheduler, dag-processor and triggerer
as separate processes (not `airflow standalone`, which leaves orphans behind). Ctrl-C stops
each by its PID, then the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from _local import AIRFLOW_HOME, BIN, migrate_db, start_emulator

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def _wait_healthy(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def stop_all(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each component's process group, then SIGKILL what is left after 20 s."""
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--emulator-port", type=int, default=5055)
    args = parser.parse_args()

    emu, env = start_emulator(port=args.emulator_port)
    env["AIRFLOW__API__PORT"] = str(args.port)
    env["AIRFLOW__API__HOST"] = "127.0.0.1"
    env["AIRFLOW__API__BASE_URL"] = f"http://127.0.0.1:{args.port}"
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = "admin:admin"
    procs: dict[str, subprocess.Popen] = {}
    logs = AIRFLOW_HOME / "component-logs"
    try:
        migrate_db(env)
        logs.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
            # Own process group, so stopping a component also stops the workers it forked.
            procs[name] = subprocess.Popen([str(BIN / "airflow"), name], env=env, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
            print(f"started {name:14s} pid {procs[name].pid}  log {logs / (name + '.log')}")
        ui = f"http://127.0.0.1:{args.port}"
        if not _wait_healthy(f"{ui}/api/v2/version", 120):
            print(f"api-server did not answer on {ui}; see {logs}/api-server.log", file=sys.stderr)
            return 1
        passwords = AIRFLOW_HOME / "simple_auth_manager_passwords.json.generated"
        login = json.loads(passwords.read_text()) if passwords.exists() else {}
        print("\n" + "=" * 72)
        print(f"Airflow UI   {ui}")
        for user, password in login.items():
            print(f"login        {user} / {password}")
        print(f"emulator     {emu.endpoint_url} (aws_default points here)")
        print("Ctrl-C stops every component by its PID.")
        print("=" * 72, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        print(f"{', '.join(dead)} exited; stopping the rest. Logs: {logs}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop_all(procs)
        emu.stop()


if __name__ == "__main__":
    sys.exit(main())
