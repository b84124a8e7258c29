"""The simulator without a socket: an ``httpx.MockTransport`` over the same request handler.

For fast tests (Hypothesis) that need the simulator's behaviour but not real HTTP; everything
the HTTP server decides is decided here too, except cut-short bodies (``stall``/``truncate``).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx

from inventory.simulator.api import handle_api
from inventory.simulator.state import SimulatedCloudflare

__all__ = ["BASE_URL", "mock_transport"]

BASE_URL = "http://simulated-cloudflare.invalid/client/v4"


def mock_transport(sim: SimulatedCloudflare) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        query = dict(parse_qsl(request.url.query.decode("ascii"), keep_blank_values=True))
        headers = {name.lower(): value for name, value in request.headers.items()}
        response, record = handle_api(
            sim,
            sim.limiter,
            method=request.method,
            path=request.url.path,
            query=query,
            headers=headers,
        )
        sim.record(record)
        return httpx.Response(
            response.status,
            content=response.body,
            headers=[("Content-Type", response.content_type), *response.headers],
        )

    return httpx.MockTransport(handle)
