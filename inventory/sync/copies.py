"""A portal's embedded copies of servers: which to keep, and how they differ from /servers. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from inventory.cloudflare.models import Portal, PortalServer
from inventory.rows import OBSERVED

__all__ = ["PORTAL_ONLY_KEYS", "differing", "embedded_entries", "embedded_server_ids"]

# Keys of an embedded server that belong to its portal, not to the server.
PORTAL_ONLY_KEYS = (
    "server_id",
    "default_disabled",
    "on_behalf",
    "updated_tools",
    "updated_prompts",
)
# Keys left out when an embedded copy is compared with the /servers copy of the same server.
_NOT_COMPARED = frozenset(("id", *PORTAL_ONLY_KEYS, *OBSERVED))
_CAPABILITIES = frozenset(("tools", "prompts"))


def embedded_server_ids(raw: object) -> set[str]:
    servers = raw.get("servers") if isinstance(raw, dict) else None
    found: set[str] = set()
    for item in servers if isinstance(servers, list) else []:
        if isinstance(item, dict):
            for name in ("server_id", "id"):
                value = item.get(name)
                if isinstance(value, str) and value:
                    found.add(value)
    return found


def differing(embedded: Mapping[str, Any], listed: Mapping[str, Any]) -> list[str]:
    """Fields both copies of a server carry with different values, observations aside. Tools
    and prompts (stored from /servers) are compared by count only: comparing every definition
    of every embedded copy would cost more than the rest of the transform."""
    found = []
    for k, v in embedded.items():
        if k in _NOT_COMPARED or k not in listed:
            continue
        other = listed[k]
        if k in _CAPABILITIES:
            differs = isinstance(v, list) and isinstance(other, list) and len(v) != len(other)
        else:
            differs = other != v and not _same_items(v, other)
        if differs:
            found.append(k)
    return sorted(found)


def _same_items(a: object, b: object) -> bool:
    """Two lists that hold the same items in another order."""
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
        return False
    return sorted(map(_canonical, a)) == sorted(map(_canonical, b))


def _canonical(raw: object) -> str:
    return json.dumps(raw, sort_keys=True, default=str)


def embedded_entries(
    portal: Portal, raw: Mapping[str, Any]
) -> list[tuple[PortalServer, Mapping[str, Any]]]:
    """The portal's embedded servers, one per server: of repeated ones, the same one whatever
    the order they come in (the least by canonical JSON)."""
    entries = list(zip(portal.servers, raw.get("servers") or [], strict=True))
    by_key: dict[str, tuple[PortalServer, Mapping[str, Any]]] = {}
    repeated = False
    for embedded, embedded_raw in entries:
        chosen = by_key.get(embedded.key)
        if chosen is None:
            by_key[embedded.key] = (embedded, embedded_raw)
            continue
        repeated = True
        if _canonical(embedded_raw) < _canonical(chosen[1]):
            by_key[embedded.key] = (embedded, embedded_raw)
    return list(by_key.values()) if repeated else entries
