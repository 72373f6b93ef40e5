"""moto's ThreadedMotoServer in a process of its own on 127.0.0.1, for P5.

Prints ``moto on http://127.0.0.1:<port>`` once it listens and serves until SIGTERM/SIGINT.
Request logging is off: a sync makes thousands of requests and neither side should pay for it.
"""

from __future__ import annotations

import argparse
import signal
import threading

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class _QuietHandler(MotoRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class QuietMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer without a log line per request."""

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=_QuietHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = QuietMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"moto on http://{host}:{port}", flush=True)
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
