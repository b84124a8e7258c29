"""Deterministic construction of simulated servers, portals and whole accounts.

An account depends only on the seed and its index (its own ``random.Random``), so accounts can be
built lazily, in any order, and still come out identical between runs. The same record builders
serve the mutations that add records later, with "now" from the simulator's clock instead of a
random past.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from inventory.simulator import catalog
from inventory.simulator.entities import AccountState, LinkState, PortalState, ServerState

__all__ = [
    "ADMINS",
    "Shape",
    "Stamps",
    "base_time",
    "build_account",
    "iso",
    "make_portal",
    "make_server",
    "set_status",
]

ADMINS = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dmitri@example.com",
    "automation@example.com",
)
_CODE_MODES = ("off", "opt_in", "default_on", "enforced")


@dataclass(frozen=True)
class Shape:
    portals: int
    servers: int  # the shared pool portals draw from
    servers_per_portal: int
    tools: int
    prompts: int
    unattached: int  # extra servers that sit in no portal


@dataclass(frozen=True)
class Stamps:
    created_at: str
    created_by: str
    modified_at: str
    modified_by: str

    @classmethod
    def now(cls, when: str, actor: str) -> Stamps:
        return cls(when, actor, when, actor)

    def as_fields(self) -> dict[str, str]:
        return {
            "created_at": self.created_at,
            "created_by": self.created_by,
            "modified_at": self.modified_at,
            "modified_by": self.modified_by,
        }


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def base_time(seed: int) -> datetime:
    return datetime(2025, 9, 1, 9, tzinfo=UTC) + timedelta(days=seed % 97)


def _past_stamps(rng: random.Random, base: datetime) -> Stamps:
    created = base - timedelta(days=rng.randint(20, 400), seconds=rng.randint(0, 86_399))
    modified = created + timedelta(seconds=rng.randint(0, int((base - created).total_seconds())))
    return Stamps(iso(created), rng.choice(ADMINS), iso(modified), rng.choice(ADMINS))


def set_status(fields: dict[str, Any], status: str, *, when: str, error: str | None = None) -> None:
    fields["status"] = status
    fields.pop("error", None)
    fields.pop("error_details", None)
    if status == "error":
        code = 502
        fields["error"] = (
            error or f"Failed to sync capabilities: upstream returned {code} Bad Gateway"
        )
        fields["error_details"] = {
            "cause": fields["error"],
            "is_upstream": True,
            "mcp_code": -32603,
            "retryable": True,
            "status_code": code,
        }
        fields["last_synced"] = when
    elif status == "ready":
        fields["last_synced"] = when
        fields["last_successful_sync"] = when


def _auth(rng: random.Random, slug: str, team: str) -> dict[str, Any]:
    auth_type = rng.choices(("oauth", "bearer", "unauthenticated"), (5, 3, 2))[0]
    if auth_type != "oauth":
        return {"auth_type": auth_type, "authentication_status": "not_required"}
    mode = "manual" if rng.random() < 0.25 else "dcr"
    issuer = f"https://auth.{slug}.example"
    summary = {
        "auth_mode": mode,
        "has_client_secret": mode == "manual",
        "client_secret_version": 1,
        "config": {
            "authorization_endpoint": f"{issuer}/oauth/authorize",
            "issuer": issuer,
            "resource": f"https://{team}.mcp.{slug}.example",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "token_endpoint": f"{issuer}/oauth/token",
        },
        "registration_info": {
            "client_id": f"{slug}-{rng.getrandbits(48):012x}",
            "redirect_uris": [f"https://mcp-{team}.example.com/oauth/callback"],
            "scope": "read write",
            "token_endpoint_auth_method": "client_secret_basic" if mode == "manual" else "none",
        },
    }
    status = (
        "manual"
        if mode == "manual"
        else rng.choices(("connected", "required", "stale"), (8, 1, 1))[0]
    )
    return {"auth_type": "oauth", "authentication_status": status, "auth_config_summary": summary}


def make_server(
    rng: random.Random, acct: AccountState, shape: Shape, *, stamps: Stamps, synced: str, seq: int
) -> ServerState:
    slug = rng.choice(catalog.PRODUCTS).slug
    team = rng.choice(catalog.TEAMS)
    server_id = f"{slug}-{acct.next_server_no}"
    acct.next_server_no += 1
    title = catalog.product(slug).title
    fields: dict[str, Any] = {
        "id": server_id,
        "name": f"{title} ({team})",
        "hostname": f"https://{team}.mcp.{slug}.example/{rng.choice(('mcp', 'sse'))}",
        "description": None if rng.random() < 0.2 else f"{title} MCP server for the {team} team",
        **_auth(rng, slug, team),
        "status": "ready",
        "is_shared_oauth_callback_enabled": rng.random() < 0.2,
        "secure_web_gateway": rng.random() < 0.2,
        "last_synced": synced,
        "last_successful_sync": synced,
        **stamps.as_fields(),
    }
    status = rng.choices(("ready", "stale", "error"), (85, 7, 8))[0]
    if status != "ready":
        set_status(fields, status, when=synced)
    tools = catalog.tool_set(slug, shape.tools)
    server = ServerState(
        seq=seq,
        slug=slug,
        fields=fields,
        tools=tools,
        prompts=catalog.prompt_set(slug, shape.prompts),
    )
    if tools[0] and rng.random() < 0.25:
        name = rng.choice(tools[0])["name"]
        alias = f"{team}_{name}"[:40].rstrip("_")
        server.updated_tools.append({"name": name, "enabled": True, "alias": alias})
    if len(tools[0]) > 1 and rng.random() < 0.15:
        server.updated_tools.append({"name": tools[0][-1]["name"], "enabled": False})
    return server


def make_portal(
    rng: random.Random,
    acct: AccountState,
    server_ids: list[str],
    *,
    stamps: Stamps,
    seq: int,
) -> PortalState:
    no = acct.next_portal_no
    acct.next_portal_no += 1
    team = rng.choice(catalog.TEAMS)
    fields: dict[str, Any] = {
        "id": f"portal-{team}-{no}",
        "name": f"{team.title()} MCP portal {no}",
        "hostname": f"mcp-{team}-{no}.example.com",
        "description": f"MCP tools approved for the {team} team",
        "secure_web_gateway": rng.random() < 0.3,
        **stamps.as_fields(),
    }
    if rng.random() < 0.3:  # newer portals carry code_mode beside the deprecated flag
        mode = rng.choice(_CODE_MODES)
        fields["code_mode"] = mode
        fields["allow_code_mode"] = mode != "off"
    if rng.random() < 0.1:  # a field the published schema does not know yet
        fields["x_experimental"] = {"edge_routing": "beta", "cohort": rng.randint(1, 9)}
    links = []
    for server_id in server_ids:
        link = LinkState(
            server_id, default_disabled=rng.random() < 0.1, on_behalf=rng.random() < 0.85
        )
        server = acct.servers[server_id]
        if server.tools and rng.random() < 0.3:
            name = rng.choice(server.tools)["name"]
            link.updated_tools.append(
                {"name": name, "enabled": True, "portal_alias": f"{team}_{name}"[:40].rstrip("_")}
            )
        links.append(link)
    return PortalState(seq=seq, fields=fields, links=links)


def _assign(rng: random.Random, pool: list[str], portals: int, per_portal: int) -> list[list[str]]:
    # successive shuffles of the pool: every pool server lands in a portal before any repeats
    per_portal = min(per_portal, len(pool))
    bag: list[str] = []
    out = []
    for _ in range(portals):
        chosen: list[str] = []
        while len(chosen) < per_portal:
            if not bag:
                bag = rng.sample(pool, len(pool))
            server_id = bag.pop()
            if server_id not in chosen:
                chosen.append(server_id)
        out.append(chosen)
    return out


def build_account(account_id: str, index: int, *, seed: int, shape: Shape) -> AccountState:
    rng = random.Random(f"inventory-simulator:{seed}:{index}")
    base = base_time(seed)
    acct = AccountState(account_id, index)
    for seq in range(shape.servers + shape.unattached):
        synced = iso(base - timedelta(seconds=rng.randint(60, 86_400)))
        server = make_server(
            rng, acct, shape, stamps=_past_stamps(rng, base), synced=synced, seq=seq
        )
        acct.servers[server.id] = server
    pool = [s.id for s in list(acct.servers.values())[: shape.servers]]
    for seq, server_ids in enumerate(_assign(rng, pool, shape.portals, shape.servers_per_portal)):
        portal = make_portal(rng, acct, server_ids, stamps=_past_stamps(rng, base), seq=seq)
        acct.portals[portal.id] = portal
    return acct
