"""CLI: ``python -m local_aws serve`` runs the emulator until SIGINT/SIGTERM;
``python -m local_aws env --endpoint-url URL`` prints the matching ``export`` lines."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from .env import airflow_env
from .server import DEFAULT_SAMPLE_DATA, Emulator

STATE_FILE = "emulator.json"


def _serve(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    emulator = Emulator(port=args.port, host=args.host, transition_seconds=args.transition_seconds,
                        sample_data_dir=args.sample_data, verbose=args.verbose)
    url = emulator.start()
    state_file: Path | None = None
    try:
        if args.state_dir:
            # The only file the CLI writes: where the emulator is, for other processes to find.
            args.state_dir.mkdir(parents=True, exist_ok=True)
            state_file = args.state_dir / STATE_FILE
            state_file.write_text(json.dumps({"endpoint_url": url, "pid": os.getpid(),
                                              "transition_seconds": args.transition_seconds}) + "\n")
        print(url, flush=True)
        stop.wait()
    finally:
        emulator.stop()
        if state_file is not None:
            state_file.unlink(missing_ok=True)
    return 0


def _env(args: argparse.Namespace) -> int:
    for key, value in airflow_env(args.endpoint_url, args.region).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m local_aws", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulator until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5055, help="0 picks a free port")
    serve.add_argument("--transition-seconds", type=float, default=2.0)
    serve.add_argument("--sample-data", type=Path, default=DEFAULT_SAMPLE_DATA)
    serve.add_argument("--state-dir", type=Path, help=f"write {STATE_FILE} here while running")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    env = sub.add_parser("env", help="print export lines pointing Airflow at an emulator")
    env.add_argument("--endpoint-url", default="http://127.0.0.1:5055")
    env.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    return _serve(args) if args.command == "serve" else _env(args)


if __name__ == "__main__":
    sys.exit(main())
