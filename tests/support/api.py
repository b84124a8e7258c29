"""Cloudflare's API in unit tests: the simulator's own request handler behind httpx, no socket.

``SimulatorTransport`` is the one fake of the API: routing, credentials, paging, result_info,
rate-limit headers, scripted faults and ``set_listing``'s arbitrary records all come from
``inventory.simulator``, exactly as they do over real HTTP.

What the simulator cannot say without a socket, or on purpose never says, is played at the
transport instead, ahead of the simulator, through ``SimulatorTransport.ahead``; each helper is
named for what it simulates: ``reply`` (arbitrary bytes), ``raises`` (a failed connection),
``broken_body`` (a body that breaks off mid-read), ``html_page`` (a proxy's error page).
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

import httpx

from inventory.simulator import SimulatedCloudflare
from inventory.simulator.transport import answer
from tests.support.clocks import FakeClock

Scripted = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class Only:
    """A scripted answer for requests to one endpoint ("portals", "servers") only."""

    endpoint: str
    answer: Scripted

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return self.answer(request)

    def wants(self, request: httpx.Request) -> bool:
        return request.url.path.rstrip("/").endswith("/" + self.endpoint)


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


class BrokenStream(httpx.SyncByteStream):
    """A body sent in ``chunks`` that may break off with ``error`` after them; counts chunks."""

    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks, self.error, self.sent = chunks, error, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
        if self.error is not None:
            raise self.error


class SimulatorTransport(httpx.MockTransport):
    """``sim`` answering httpx requests in process (``inventory.simulator.transport.answer``);
    ``ahead`` answers first, one request each.

    With a ``clock``, every request takes ``latency`` seconds of fake time. Requests are kept in
    ``requests`` as httpx sent them (``sim.requests`` has what the simulator made of them).
    """

    def __init__(
        self, sim: SimulatedCloudflare, *, clock: FakeClock | None = None, latency: float = 0.0
    ) -> None:
        super().__init__(self._handle)
        self.sim = sim
        self.clock = clock or FakeClock()
        self.latency = latency
        self.ahead: deque[Scripted] = deque()  # each answers one request, in order
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def _handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
            self.clock.advance(self.latency)
            scripted = next(
                (s for s in self.ahead if not isinstance(s, Only) or s.wants(request)), None
            )
            if scripted is not None:
                self.ahead.remove(scripted)
        if scripted is not None:
            return scripted(request)
        return answer(self.sim, request)


# --- what only a transport says ------------------------------------------------------------


def reply(
    status: int, content: bytes, content_type: str = "application/json", **headers: str
) -> Scripted:
    """Exactly these bytes, whatever was asked."""
    return lambda _r: httpx.Response(
        status, content=content, headers={"Content-Type": content_type, **headers}
    )


def json_reply(status: int, body: object, **headers: str) -> Scripted:
    """``body`` as JSON, whatever was asked: envelopes the simulator never sends."""
    return reply(status, json.dumps(body).encode(), **headers)


def error_reply(status: int, code: int, message: str, **headers: str) -> Scripted:
    """An error envelope with any code and text (a message quoting a credential, say)."""
    body = {"success": False, "errors": [{"code": code, "message": message}], "result": None}
    return json_reply(status, body, **headers)


def html_page(status: int, title: str) -> Scripted:
    """A proxy's or captive portal's HTML page."""
    page = f"<html><head><title>{title}</title></head><body>{'x' * 500}</body></html>"
    return reply(status, page.encode(), "text/html; charset=UTF-8")


def raises(error: type[httpx.RequestError]) -> Scripted:
    """A connection that fails before any response (refused, timed out, reset)."""

    def fault(request: httpx.Request) -> httpx.Response:  # the name shows in test ids
        raise error("simulated", request=request)

    return fault


def broken_body(chunks: Iterable[bytes], error: Exception | None = None) -> Scripted:
    """A 200 whose body breaks off with ``error`` after ``chunks``."""
    return lambda _r: httpx.Response(
        200, headers={"Content-Type": "application/json"}, stream=BrokenStream(chunks, error)
    )
