"""The Emulator: moto's threaded server on 127.0.0.1 with the extension and middleware in front."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from . import patches
from .answer_key import AnswerKey
from .extension import EXTENSION
from .middleware import EmulatorMiddleware

DEFAULT_SAMPLE_DATA = Path(__file__).resolve().parent.parent / "include" / "sample_data"

_active_lock = threading.Lock()
_active: Emulator | None = None


class _QuietHandler(MotoRequestHandler):
    """No access log line per request (a load test makes hundreds a second); errors still print."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _Server(ThreadedMotoServer):
    """ThreadedMotoServer whose app is wrapped, which reports bind errors instead of hanging."""

    def __init__(self, host: str, port: int, wrap: Any, verbose: bool) -> None:
        super().__init__(ip_address=host, port=port, verbose=False)
        self._wrap = wrap
        self._log_requests = verbose
        self.error: BaseException | None = None

    def _server_entry(self) -> None:
        try:
            app = self._wrap(DomainDispatcherApplication(create_backend_app))
            handler = MotoRequestHandler if self._log_requests else _QuietHandler
            self._server = make_server(self._ip_address, self._port, app, threaded=True,
                                       request_handler=handler)
        except BaseException as exc:  # noqa: BLE001 - handed to start() to re-raise
            self.error = exc
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        self._server.serve_forever()

    def start(self) -> None:
        super().start()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            self._server.server_close()  # release the port now, not at garbage collection


def _tick_interval(transition_seconds: float) -> float:
    # Often enough that a side effect lands within ~10% of a transition, never a busy loop.
    return min(0.25, max(0.02, transition_seconds / 10))


class Emulator:
    """Moto plus this project's SageMaker extension, serving every AWS service on one port.

    Only one Emulator runs per process at a time (moto's state is process-global); ``start()``
    resets moto's state so each start begins empty, and a stopped Emulator can start again.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", transition_seconds: float = 2.0,
                 sample_data_dir: Path = DEFAULT_SAMPLE_DATA, verbose: bool = False) -> None:
        if transition_seconds < 0:
            raise ValueError("transition_seconds must be >= 0")
        self.host = host
        self.port = port
        self.transition_seconds = transition_seconds
        self.sample_data_dir = Path(sample_data_dir)
        self.verbose = verbose
        self._server: _Server | None = None
        self._url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://host:port`` of the running emulator."""
        if self._url is None:
            raise RuntimeError("Emulator is not running; call start() first")
        return self._url

    def start(self) -> str:
        """Install the extension, reset moto, listen; returns the endpoint URL."""
        global _active
        answer_key = AnswerKey.load(self.sample_data_dir)  # fail before touching anything
        with _active_lock:
            if _active is not None:
                raise RuntimeError(f"an Emulator is already running in this process at {_active._url}")
            _active = self
        try:
            EXTENSION.configure(self.transition_seconds, answer_key)
            patches.install()
            self._reset_state()
            self._server = _Server(self.host, self.port, self._wrap, self.verbose)
            self._server.start()
        except BaseException:
            self._server = None
            self._release()
            raise
        host, port = self._server.get_host_and_port()
        self._url = f"http://{host}:{port}"
        EXTENSION.start_ticker(_tick_interval(self.transition_seconds))
        return self._url

    def set_transition_seconds(self, seconds: float) -> None:
        """Change the timeline length for resources created from now on (running ones keep theirs)."""
        if seconds < 0:
            raise ValueError("transition_seconds must be >= 0")
        self.transition_seconds = seconds
        if self._server is not None:
            EXTENSION.configure(seconds, EXTENSION.key())
            EXTENSION.start_ticker(_tick_interval(seconds))

    def _wrap(self, app: Any) -> EmulatorMiddleware:
        return EmulatorMiddleware(app, EXTENSION, reset=self.reset,
                                  set_transition_seconds=self.set_transition_seconds)

    def stop(self) -> None:
        """Stop serving and undo the patches. Safe to call twice."""
        if self._server is not None:
            try:
                self._server.stop()
            finally:
                self._server = None
                self._url = None
                self._release()

    def _release(self) -> None:
        global _active
        EXTENSION.stop_ticker()
        EXTENSION.clear()
        patches.uninstall()
        with _active_lock:
            if _active is self:
                _active = None

    def reset(self) -> None:
        """Empty moto's state and forget fault rules and mAP overrides."""
        self._reset_state()

    @staticmethod
    def _reset_state() -> None:
        from moto.moto_api._internal.models import moto_api_backend

        with EXTENSION.lock:
            moto_api_backend.reset()
            EXTENSION.clear()

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
