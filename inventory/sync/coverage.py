"""What a listing vouches for: which stored rows absent from it the diff may delete. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory.rows import Key, Kind

__all__ = ["Coverage"]


@dataclass(slots=True)
class Coverage:
    """Which stored rows the listing vouches for, so which absent ones may be deleted.

    A portal or server row goes only if its listing was complete and, when ``gone_portals`` /
    ``gone_servers`` are given (the sync always gives them), its absence was confirmed: a detail
    request answered "not found", or (a server only portals showed) the two-sync rule held. A
    child row (link, override, tool, prompt) goes when its parent is listed (the parent's record
    says what it holds) or is itself confirmed gone.
    """

    portals_complete: bool = True
    servers_complete: bool = True
    protected_portals: set[str] = field(default_factory=set)
    protected_servers: set[str] = field(default_factory=set)
    gone_portals: set[str] | None = None  # None: not gated by confirmation (plain unit use)
    gone_servers: set[str] | None = None
    listed_portals: set[str] = field(default_factory=set)  # in the snapshot just built
    listed_servers: set[str] = field(default_factory=set)

    def may_delete(self, kind: Kind, key: Key) -> bool:
        if kind in ("portal", "portal_server") or (kind == "override" and key[0]):
            return self._may_delete_under_portal(kind, key[0])
        server_id = key[1] if kind == "override" else key[0]
        if not self.servers_complete or server_id in self.protected_servers:
            return False
        if kind != "server" and server_id in self.listed_servers:
            return True
        if self.gone_servers is None:
            return True
        # A portal hidden by a shifting listing may hold the server: its portals must be whole.
        return self.portals_complete and server_id in self.gone_servers

    def _may_delete_under_portal(self, kind: Kind, portal_id: str) -> bool:
        if not self.portals_complete or portal_id in self.protected_portals:
            return False
        if kind != "portal" and portal_id in self.listed_portals:
            return True
        return self.gone_portals is None or portal_id in self.gone_portals
