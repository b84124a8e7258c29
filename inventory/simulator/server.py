"""The simulator over real HTTP: a quiet, keep-alive ``ThreadingHTTPServer`` on loopback."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from inventory.simulator.api import Response
from inventory.simulator.dispatch import respond
from inventory.simulator.state import SimulatedCloudflare

__all__ = ["SimulatorHTTPServer", "serve_forever", "serve_in_thread"]

log = logging.getLogger(__name__)


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # benchmarks open many connections at once

    def __init__(self, address: tuple[str, int], sim: SimulatedCloudflare) -> None:
        super().__init__(address, _Handler)
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/client/v4"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request (killed, timed out) is routine, not a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s disconnected", client_address)
            return
        super().handle_error(request, client_address)

    def track(self, connection: socket.socket, *, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        # keep-alive handlers would otherwise go on serving pooled connections after shutdown
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so httpx reuses connections
    server_version = "cloudflare"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    timeout = 300
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        with suppress(OSError):  # the client may already be gone
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        """Silent: one stderr line per request drowns test output."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header, by the simulated server's clock (``sim.clock_skew``)."""
        now = time.time() if timestamp is None else timestamp
        return super().date_time_string(now + self.server.sim.clock_skew)

    def do_GET(self) -> None:  # the name the base class dispatches to
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            body = b""
        response = respond(
            self.server.sim,
            method=self.command,
            path=url.path,
            query=query,
            headers=dict(self.headers.items()),
            body=body,
        )
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if response.cut is None:
            self.wfile.write(response.body)
            return
        self.wfile.write(response.body[: len(response.body) // 2])
        if response.cut == "stall":
            time.sleep(response.seconds)
        self.close_connection = True


@contextmanager
def serve_in_thread(
    sim: SimulatedCloudflare, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    server = SimulatorHTTPServer((host, port), sim)
    thread = threading.Thread(
        target=server.serve_forever,
        # shutdown() waits for the loop's next poll: a short interval keeps a test's teardown
        # from waiting (tens of ms a test over the suite), at the cost of idle wake-ups.
        kwargs={"poll_interval": 0.01},
        name="simulated-cloudflare",
        daemon=True,
    )
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(timeout=5)


def _advance_loop(sim: SimulatedCloudflare, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        for line in sim.advance():
            log.info("simulator: %s", line)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the server, even where SIGINT was inherited as ignored.

    A shell starts background jobs (``inventory simulate &``) with SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: ``kill -INT`` would be silently dropped.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)


def serve_forever(
    sim: SimulatedCloudflare,
    *,
    host: str = "127.0.0.1",
    port: int = 8787,
    advance_every: float | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    server = SimulatorHTTPServer((host, port), sim)
    stop = threading.Event()
    if advance_every:
        threading.Thread(
            target=_advance_loop,
            args=(sim, advance_every, stop),
            name="simulator-advance",
            daemon=True,
        ).start()
    _stop_on_signals()
    if ready is not None:
        ready(server.base_url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        log.info("simulator stopped")
    finally:
        stop.set()
        server.close_connections()
        server.server_close()
