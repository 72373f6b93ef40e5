"""A stub SageMaker ``InvokeEndpoint`` server with a fixed service time, for load-engine benchmarks.

Raw asyncio streams speaking HTTP/1.1 with keep-alive, no dependencies beyond the standard
library. It answers ``POST /endpoints/<name>/invocations`` after ``service_ms`` with a small
object-detection reply, so a boto3 ``sagemaker-runtime`` client whose ``endpoint_url`` points
here behaves as against a real endpoint whose model takes exactly that long. It checks no
signature and binds to 127.0.0.1 only.

Run it::

    python benchmarks/stub_server.py --port 8089 --service-ms 50

or from Python: ``url, stop = start_in_thread(0, 50)`` (port 0 picks a free port).

``fail_every=N`` answers every N-th invocation with a ``424 ModelError``, the way the service
reports a model container that raised, so error mapping is exercised through real botocore
parsing. ``garbage_every=N`` answers every N-th invocation with ``200`` and a body that is not
the object-detection format (:data:`GARBAGE`), the hostile endpoint a load test must not count
as healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import threading

HOST = "127.0.0.1"
MAX_HEADER_BYTES = 16 * 1024
# SageMaker real-time endpoints reject larger payloads; the stub refuses them the same way.
MAX_BODY_BYTES = 25 * 1024 * 1024
PATH_RE = re.compile(r"^/endpoints/([A-Za-z0-9](?:-*[A-Za-z0-9]){0,62})/invocations$")

REPLY = json.dumps({"prediction": [[1.0, 0.91, 0.25, 0.30, 0.60, 0.72], [0.0, 0.47, 0.05, 0.10, 0.20, 0.35]]})
GARBAGE = "<html><body>upstream answered nonsense</body></html>"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 424: "Failed Dependency"}


class StubServer:
    """The stub's request handling and counters; one instance per listening socket."""

    def __init__(self, service_ms: float, fail_every: int = 0, garbage_every: int = 0) -> None:
        if service_ms < 0:
            raise ValueError(f"service_ms must be >= 0, got {service_ms}")
        if fail_every < 0:
            raise ValueError(f"fail_every must be >= 0, got {fail_every}")
        self.service_s = service_ms / 1000.0
        self.fail_every = fail_every
        if garbage_every < 0:
            raise ValueError(f"garbage_every must be >= 0, got {garbage_every}")
        self.garbage_every = garbage_every
        self.invocations = 0
        self.open_connections = 0
        self.max_open_connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one connection until the client closes it or asks to."""
        self.open_connections += 1
        self.max_open_connections = max(self.max_open_connections, self.open_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # client closed the connection between requests
                except asyncio.LimitOverrunError:
                    await self._send(writer, 400, {"message": "request headers too large"}, keep_alive=False)
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                parts = request_line.split(" ")
                if len(parts) != 3:
                    await self._send(writer, 400, {"message": "malformed request line"}, keep_alive=False)
                    return
                method, target, version = parts
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                try:
                    length = int(headers.get("content-length", "0"))
                except ValueError:
                    length = -1
                if length < 0 or length > MAX_BODY_BYTES or "chunked" in headers.get("transfer-encoding", ""):
                    await self._send(writer, 413, {"message": "need a Content-Length under the limit"},
                                     keep_alive=False)
                    return
                try:
                    await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                status, payload, error_type = await self._respond(method, target.split("?", 1)[0])
                await self._send(writer, status, payload, keep_alive=keep_alive, error_type=error_type)
                if not keep_alive:
                    return
        except asyncio.CancelledError:
            # Only stop() cancels handlers; ending quietly spares Python 3.11's stream callback from
            # logging each parked keep-alive connection as an error.
            return
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _respond(self, method: str, path: str) -> tuple[int, dict | str, str | None]:
        match = PATH_RE.match(path)
        if not match:
            return 404, {"message": f"no route for {path}"}, "UnknownOperationException"
        if method != "POST":
            return 405, {"message": f"{method} not allowed"}, None
        self.invocations += 1
        number = self.invocations
        await asyncio.sleep(self.service_s)
        if self.fail_every and number % self.fail_every == 0:
            return 424, {"message": f"stub model error on invocation {number}",
                         "OriginalStatusCode": 500}, "ModelError"
        if self.garbage_every and number % self.garbage_every == 0:
            return 200, GARBAGE, None
        return 200, REPLY, None

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: dict | str, *, keep_alive: bool,
                    error_type: str | None = None) -> None:
        body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "x-Amzn-Invoked-Production-Variant: AllTraffic",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        if error_type:
            lines.append(f"x-amzn-ErrorType: {error_type}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()


async def serve(port: int, service_ms: float, fail_every: int = 0,
                garbage_every: int = 0) -> tuple[asyncio.Server, StubServer]:
    """Start listening on 127.0.0.1:``port`` (0 picks a free port); returns the server and its stub."""
    stub = StubServer(service_ms, fail_every, garbage_every)
    # A deep backlog so a ramp that opens hundreds of connections at once is not refused.
    server = await asyncio.start_server(stub.handle, HOST, port, backlog=2048, limit=MAX_HEADER_BYTES)
    return server, stub


class Stopper:
    """``stop()`` for a stub running in a thread; ``.stub`` exposes its counters."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: asyncio.Server, stub: StubServer,
                 thread: threading.Thread) -> None:
        self.loop, self.server, self.stub, self.thread = loop, server, stub, thread

    def __call__(self) -> None:
        """Close the listener and every connection and join the thread; idempotent."""
        if self.loop.is_closed() or not self.thread.is_alive():
            return

        def shutdown() -> None:
            self.server.close()
            self.loop.stop()

        with contextlib.suppress(RuntimeError):  # loop closed by a concurrent stop()
            self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(timeout=10)


def start_in_thread(port: int = 0, service_ms: float = 50.0, *, fail_every: int = 0, garbage_every: int = 0,
                    ready_timeout_s: float = 10.0) -> tuple[str, Stopper]:
    """Serve in a daemon thread with its own event loop; returns ``(url, stop)``.

    ``stop()`` closes the listener and every connection and joins the thread; ``stop.stub``
    holds the request counters.
    """
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            holder["server"], holder["stub"] = loop.run_until_complete(serve(port, service_ms, fail_every,
                                                                                    garbage_every))
        except BaseException as exc:  # surfaced to the caller below
            holder["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        # Cancel handlers still parked on keep-alive connections, then close the loop.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name=f"stub-server-{port}", daemon=True)
    thread.start()
    if not started.wait(ready_timeout_s):
        raise RuntimeError(f"stub server did not start within {ready_timeout_s} s")
    if "error" in holder:
        raise RuntimeError(f"stub server failed to start on port {port}: {holder['error']}")
    server: asyncio.Server = holder["server"]  # type: ignore[assignment]
    stub: StubServer = holder["stub"]  # type: ignore[assignment]
    bound_port = server.sockets[0].getsockname()[1]
    return f"http://{HOST}:{bound_port}", Stopper(loop, server, stub, thread)


def main(argv: list[str] | None = None) -> None:
    """Command line: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--service-ms", type=float, default=50.0, help="fixed service time per request")
    parser.add_argument("--fail-every", type=int, default=0, help="answer every N-th request with ModelError")
    args = parser.parse_args(argv)

    async def run() -> None:
        server, _ = await serve(args.port, args.service_ms, args.fail_every)
        print(f"stub InvokeEndpoint on http://{HOST}:{server.sockets[0].getsockname()[1]} "
              f"service_ms={args.service_ms}", flush=True)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    main()
