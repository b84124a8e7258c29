"""Seeded random activity: the edits behind ``advance()`` and the bulk edits behind ``churn()``.

Both go through the simulator's public mutations, so they stamp, tick the clock and invalidate
caches exactly as explicit calls do, and both draw from the simulator's own ``random.Random`` so a
seed replays the same story.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inventory.simulator.state import SimulatedCloudflare

__all__ = ["churn_account", "random_mutation"]

Mutation = Callable[["SimulatedCloudflare", random.Random, str], "str | None"]

_SUFFIXES = ("(prod)", "(staging)", "v2", "- restricted", "- pilot", "(EU)", "(US)")


def _rename_portal(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    portal_ids = sim.portal_ids(account_id)
    if not portal_ids:
        return None
    portal_id = rng.choice(portal_ids)
    name = f"{portal_id.replace('-', ' ').title()} {rng.choice(_SUFFIXES)}"
    sim.rename_portal(account_id, portal_id, name)
    return f"renamed portal {portal_id} to {name!r}"


def _server_status(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    server_ids = sim.server_ids(account_id)
    if not server_ids:
        return None
    server_id = rng.choice(server_ids)
    status = rng.choice(("ready", "ready", "stale", "error"))
    sim.set_server_status(account_id, server_id, status)
    return f"server {server_id} is now {status}"


def _server_with(
    sim: SimulatedCloudflare, rng: random.Random, account_id: str, family: str
) -> str | None:
    names = sim.tool_names if family == "tools" else sim.prompt_names
    candidates = [s for s in sim.server_ids(account_id) if names(account_id, s)]
    return rng.choice(candidates) if candidates else None


def _add_tool(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    server_ids = sim.server_ids(account_id)
    if not server_ids:
        return None
    server_id = rng.choice(server_ids)
    return f"server {server_id} gained tool {sim.add_tool(account_id, server_id)}"


def _remove_tool(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    server_id = _server_with(sim, rng, account_id, "tools")
    if server_id is None:
        return None
    name = rng.choice(sim.tool_names(account_id, server_id))
    sim.remove_tool(account_id, server_id, name)
    return f"server {server_id} lost tool {name}"


def _add_prompt(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    server_ids = sim.server_ids(account_id)
    if not server_ids:
        return None
    server_id = rng.choice(server_ids)
    return f"server {server_id} gained prompt {sim.add_prompt(account_id, server_id)}"


def _remove_prompt(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    server_id = _server_with(sim, rng, account_id, "prompts")
    if server_id is None:
        return None
    name = rng.choice(sim.prompt_names(account_id, server_id))
    sim.remove_prompt(account_id, server_id, name)
    return f"server {server_id} lost prompt {name}"


def _toggle_override(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    portal_ids = [p for p in sim.portal_ids(account_id) if sim.portal_server_ids(account_id, p)]
    if not portal_ids:
        return None
    portal_id = rng.choice(portal_ids)
    server_id = rng.choice(sim.portal_server_ids(account_id, portal_id))
    tools = sim.tool_names(account_id, server_id)
    if not tools:
        return None
    tool = rng.choice(tools)
    sim.toggle_override(account_id, portal_id, server_id, tool)
    return f"portal {portal_id} toggled tool {tool} of {server_id}"


def _server_override(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    server_id = _server_with(sim, rng, account_id, "tools")
    if server_id is None:
        return None
    tool = rng.choice(sim.tool_names(account_id, server_id))
    enabled = rng.random() < 0.5
    sim.set_server_override(account_id, server_id, tool, enabled=enabled)
    return f"server {server_id} {'enabled' if enabled else 'disabled'} tool {tool} server-wide"


def _delete_portal(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    portal_ids = sim.portal_ids(account_id)
    if len(portal_ids) < 2:  # keep something to look at
        return None
    portal_id = rng.choice(portal_ids)
    sim.delete_portal(account_id, portal_id)
    return f"deleted portal {portal_id}"


def _restore_portal(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    deleted = sim.deleted_portal_ids(account_id)
    if not deleted:
        return None
    portal_id = rng.choice(deleted)
    sim.restore_portal(account_id, portal_id)
    return f"restored portal {portal_id}"


def _add_portal(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    del rng  # add_portal seeds its own generator so explicit calls stay reproducible too
    return f"added portal {sim.add_portal(account_id)}"


def _attach(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    portal_ids = sim.portal_ids(account_id)
    if not portal_ids:
        return None
    portal_id = rng.choice(portal_ids)
    attached = set(sim.portal_server_ids(account_id, portal_id))
    candidates = [s for s in sim.server_ids(account_id) if s not in attached]
    if not candidates:
        return None
    server_id = rng.choice(candidates)
    sim.attach_server(account_id, portal_id, server_id)
    return f"attached server {server_id} to portal {portal_id}"


def _detach(sim: SimulatedCloudflare, rng: random.Random, account_id: str) -> str | None:
    pairs = [
        (p, s) for p in sim.portal_ids(account_id) for s in sim.portal_server_ids(account_id, p)
    ]
    if not pairs:
        return None
    portal_id, server_id = rng.choice(pairs)
    sim.detach_server(account_id, portal_id, server_id)
    return f"detached server {server_id} from portal {portal_id}"


_MUTATIONS: tuple[tuple[Mutation, int], ...] = (
    (_rename_portal, 3),
    (_server_status, 3),
    (_add_tool, 3),
    (_remove_tool, 2),
    (_add_prompt, 1),
    (_remove_prompt, 1),
    (_toggle_override, 3),
    (_server_override, 1),
    (_delete_portal, 1),
    (_restore_portal, 1),
    (_add_portal, 1),
    (_attach, 1),
    (_detach, 1),
)


def random_mutation(sim: SimulatedCloudflare) -> str:
    rng = sim.rng
    functions = [m for m, _ in _MUTATIONS]
    weights = [w for _, w in _MUTATIONS]
    for _ in range(
        100
    ):  # some edits do not apply to every account (nothing deleted to restore, ...)
        account_id = rng.choice(sim.account_ids)
        description = rng.choices(functions, weights)[0](sim, rng, account_id)
        if description is not None:
            return f"account {account_id[:8]}: {description}"
    return "nothing to change"


def churn_account(sim: SimulatedCloudflare, account_id: str, fraction: float) -> int:
    rng = sim.rng
    portal_ids = sim.portal_ids(account_id)
    server_ids = sim.server_ids(account_id)
    tools = [(s, name) for s in server_ids for name in sim.tool_names(account_id, s)]
    total = len(portal_ids) + len(server_ids) + len(tools)
    picks = rng.sample(range(total), max(0, min(total, round(fraction * total))))
    for i in sorted(picks):
        tag = f"revision {rng.getrandbits(32):08x}"
        if i < len(portal_ids):
            sim.set_portal_description(account_id, portal_ids[i], f"MCP tools, {tag}")
        elif i < len(portal_ids) + len(server_ids):
            server_id = server_ids[i - len(portal_ids)]
            sim.set_server_description(account_id, server_id, f"MCP server, {tag}")
        else:
            server_id, name = tools[i - len(portal_ids) - len(server_ids)]
            sim.update_tool(account_id, server_id, name, description=f"Updated tool, {tag}")
    return len(picks)
