"""A simulated Cloudflare MCP portal API, served over real HTTP on loopback.

It lists ``/client/v4/accounts/{account_id}/access/ai-controls/mcp/portals`` and ``.../servers`` the
way Cloudflare does (envelopes, paging, auth, rate-limit headers), holds state that tests and demos
mutate, and plays scripted faults. It is independent of the product: nothing here imports
inventory's sync, fetch, client, db or CLI.

    sim = SimulatedCloudflare(seed=7)
    with serve_in_thread(sim) as base_url:   # "http://127.0.0.1:PORT/client/v4"
        ...
"""

from inventory.simulator.dispatch import Response, respond
from inventory.simulator.faults import Fault, FaultKind, FaultSet, Violation
from inventory.simulator.server import SimulatorHTTPServer, serve_forever, serve_in_thread
from inventory.simulator.state import (
    SERVER_STATUSES,
    RequestRecord,
    SimulatedCloudflare,
    UnknownAccountError,
)

__all__ = [
    "SERVER_STATUSES",
    "Fault",
    "FaultKind",
    "FaultSet",
    "RequestRecord",
    "Response",
    "SimulatedCloudflare",
    "SimulatorHTTPServer",
    "UnknownAccountError",
    "Violation",
    "respond",
    "serve_forever",
    "serve_in_thread",
]
