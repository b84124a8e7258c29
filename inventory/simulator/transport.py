"""The simulator without a socket: an ``httpx.MockTransport`` over the same request handler.

For fast tests that need the simulator's behaviour but not real HTTP: ``answer`` puts one httpx
request through ``respond`` (what the HTTP server calls), so routing, the control endpoints,
faults and the request log are the same; a cut-short transfer (``stall``/``truncate``) sends half
the body, then breaks the read as the socket would (read timeout / connection closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx

from inventory.simulator.dispatch import respond
from inventory.simulator.state import SimulatedCloudflare

__all__ = ["BASE_URL", "answer", "mock_transport"]

BASE_URL = "http://simulated-cloudflare.invalid/client/v4"


class _CutShort(httpx.SyncByteStream):
    def __init__(self, part: bytes, error: Exception) -> None:
        self.part, self.error = part, error

    def __iter__(self) -> Iterator[bytes]:
        yield self.part
        raise self.error


def answer(sim: SimulatedCloudflare, request: httpx.Request) -> httpx.Response:
    reply = respond(
        sim,
        method=request.method,
        path=request.url.path,
        query=dict(request.url.params),
        headers=dict(request.headers),
        body=request.content,
    )
    headers = [
        ("Content-Type", reply.content_type),
        ("Date", format_datetime(datetime.now(UTC), usegmt=True)),
        *reply.headers,
    ]
    if reply.cut is None:
        return httpx.Response(reply.status, headers=headers, content=reply.body)
    error = httpx.ReadTimeout if reply.cut == "stall" else httpx.RemoteProtocolError
    headers.append(("Content-Length", str(len(reply.body))))
    part = reply.body[: len(reply.body) // 2]
    stream = _CutShort(part, error(f"simulated {reply.cut}", request=request))
    return httpx.Response(reply.status, headers=headers, stream=stream)


def mock_transport(sim: SimulatedCloudflare) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: answer(sim, request))
