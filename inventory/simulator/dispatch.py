"""One request in, one ``Response`` out: what the HTTP server answers, without a socket.

The HTTP layer (``server.py``) and in-process adapters (an ``httpx.MockTransport`` in the tests)
both call ``respond``, so routing, the control endpoints, faults and the request log behave the
same with and without a socket. Only the transfer itself (``Response.cut``) is left to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping

from inventory.simulator.api import Response, handle_api
from inventory.simulator.control import CONTROL_PREFIX, handle_control
from inventory.simulator.state import SimulatedCloudflare

__all__ = ["Response", "respond"]


def respond(
    sim: SimulatedCloudflare,
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes = b"",
) -> Response:
    """Answer one request; an API request is in ``sim.requests`` before this returns."""
    if path.startswith(CONTROL_PREFIX):
        return handle_control(sim, method, path, query, body)
    response, record = handle_api(
        sim,
        sim.limiter,
        method=method,
        path=path,
        query=query,
        headers={name.lower(): value for name, value in headers.items()},
    )
    # Recorded before the answer goes out: a client that has its response sees its request in
    # the log, and one that hangs up mid-answer is still counted.
    sim.record(record)
    return response
