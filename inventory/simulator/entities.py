"""The simulated account's records and their JSON, kept as reusable byte pieces.

A listing page is the concatenation of per-record pieces: a server's scalar fields, its tools and
prompts (often the very bytes of a shared catalog tool set), and for a server embedded in a portal
the portal-specific tail. Each piece is serialized once and dropped when its record changes, so an
unchanged account lists without any JSON encoding and a changed one re-encodes only what changed.
"""

from __future__ import annotations

from typing import Any

from inventory.simulator.catalog import dumps

__all__ = ["AccountState", "LinkState", "PortalState", "ServerState"]

Json = dict[str, Any]


class ServerState:
    __slots__ = (
        "_head",
        "_overrides",
        "fields",
        "prompts",
        "prompts_json",
        "seq",
        "slug",
        "tools",
        "tools_json",
        "updated_prompts",
        "updated_tools",
        "version",
    )

    def __init__(
        self,
        *,
        seq: int,
        slug: str,
        fields: Json,
        tools: tuple[tuple[Json, ...], bytes | None],
        prompts: tuple[tuple[Json, ...], bytes | None],
    ) -> None:
        self.seq = seq
        self.slug = slug  # catalog product, so added tools fit the server
        self.fields = fields  # scalar fields in the order Cloudflare lists them
        self.tools, self.tools_json = tools
        self.prompts, self.prompts_json = prompts
        self.updated_tools: list[Json] = []  # server-wide shape: name, enabled, alias, description
        self.updated_prompts: list[Json] = []
        self.version = 0
        self._head: bytes | None = None
        self._overrides: bytes | None = None

    @property
    def id(self) -> str:
        return str(self.fields["id"])

    def touch(self) -> None:
        self.version += 1
        self._head = None
        self._overrides = None

    def set_tools(self, tools: tuple[Json, ...]) -> None:
        # a new tuple, never an edit of the shared catalog one
        self.tools, self.tools_json = tools, None
        self.touch()

    def set_prompts(self, prompts: tuple[Json, ...]) -> None:
        self.prompts, self.prompts_json = prompts, None
        self.touch()

    def head(self) -> bytes:
        if self._head is None:
            self._head = dumps(self.fields)[1:-1]
        return self._head

    def capabilities(self) -> list[bytes]:
        if self.tools_json is None:
            self.tools_json = dumps(self.tools)
        if self.prompts_json is None:
            self.prompts_json = dumps(self.prompts)
        return [b',"tools":', self.tools_json, b',"prompts":', self.prompts_json]

    def overrides(self) -> bytes:
        if self._overrides is None:
            self._overrides = (
                b',"updated_tools":'
                + dumps(self.updated_tools)
                + b',"updated_prompts":'
                + dumps(self.updated_prompts)
            )
        return self._overrides

    def pieces(self) -> list[bytes]:
        return [b"{", self.head(), *self.capabilities(), self.overrides(), b"}"]


def _merge(portal_entries: list[Json], server_entries: list[Json]) -> list[Json]:
    # the portal shape also reports the server-wide alias and description of the same capability
    by_name = {e["name"]: e for e in server_entries}
    out = []
    for entry in portal_entries:
        merged = dict(entry)
        server_entry = by_name.get(entry["name"], {})
        if "alias" in server_entry:
            merged["server_alias"] = server_entry["alias"]
        if "description" in server_entry:
            merged["server_description"] = server_entry["description"]
        out.append(merged)
    return out


class LinkState:
    """One server as attached to one portal."""

    __slots__ = (
        "_tail",
        "default_disabled",
        "on_behalf",
        "server_id",
        "updated_prompts",
        "updated_tools",
    )

    def __init__(
        self, server_id: str, *, default_disabled: bool = False, on_behalf: bool = True
    ) -> None:
        self.server_id = server_id
        self.default_disabled = default_disabled
        self.on_behalf = on_behalf
        self.updated_tools: list[
            Json
        ] = []  # portal shape: name, enabled, portal_alias, portal_description
        self.updated_prompts: list[Json] = []
        self._tail: tuple[int, bytes] | None = None

    def touch(self) -> None:
        self._tail = None

    def tail(self, server: ServerState) -> bytes:
        if self._tail is None or self._tail[0] != server.version:
            fields = {
                "server_id": self.server_id,
                "default_disabled": self.default_disabled,
                "on_behalf": self.on_behalf,
                "updated_tools": _merge(self.updated_tools, server.updated_tools),
                "updated_prompts": _merge(self.updated_prompts, server.updated_prompts),
            }
            self._tail = (server.version, b"," + dumps(fields)[1:-1])
        return self._tail[1]

    def pieces(self, server: ServerState) -> list[bytes]:
        return [b"{", server.head(), *server.capabilities(), self.tail(server), b"}"]


class PortalState:
    __slots__ = ("_head", "fields", "links", "seq")

    def __init__(self, *, seq: int, fields: Json, links: list[LinkState]) -> None:
        self.seq = seq
        self.fields = fields
        self.links = links
        self._head: bytes | None = None

    @property
    def id(self) -> str:
        return str(self.fields["id"])

    def touch(self) -> None:
        self._head = None

    def link(self, server_id: str) -> LinkState | None:
        return next((li for li in self.links if li.server_id == server_id), None)

    def pieces(self, servers: dict[str, ServerState]) -> list[bytes]:
        if self._head is None:
            self._head = dumps(self.fields)[1:-1]
        out = [b"{", self._head, b',"servers":[']
        first = True
        for link in self.links:
            server = servers.get(link.server_id)
            if server is None:  # a deleted server simply disappears from the portal
                continue
            if not first:
                out.append(b",")
            out.extend(link.pieces(server))
            first = False
        out.append(b"]}")
        return out


class AccountState:
    __slots__ = (
        "_order",
        "deleted",
        "hidden",
        "id",
        "index",
        "next_portal_no",
        "next_server_no",
        "portals",
        "revoked",
        "servers",
        "version",
    )

    def __init__(self, account_id: str, index: int) -> None:
        self.id = account_id
        self.index = index
        self.servers: dict[str, ServerState] = {}
        self.portals: dict[str, PortalState] = {}
        self.deleted: dict[
            str, PortalState
        ] = {}  # kept so restore_portal brings a portal back as it was
        self.hidden: set[str] = set()  # servers only portals show: /servers does not list them
        self.revoked = False
        self.version = 0
        self.next_portal_no = 1
        self.next_server_no = 1
        self._order: dict[str, list[Any]] = {}

    def portal(self, portal_id: str) -> PortalState:
        try:
            return self.portals[portal_id]
        except KeyError:
            raise KeyError(f"no portal {portal_id!r} in account {self.id}") from None

    def server(self, server_id: str) -> ServerState:
        try:
            return self.servers[server_id]
        except KeyError:
            raise KeyError(f"no server {server_id!r} in account {self.id}") from None

    def changed(self) -> None:
        self.version += 1
        self._order.clear()

    def ordered_portals(self) -> list[PortalState]:
        if "portals" not in self._order:
            self._order["portals"] = sorted(self.portals.values(), key=lambda p: p.seq)
        result: list[PortalState] = self._order["portals"]
        return result

    def ordered_servers(self) -> list[ServerState]:
        if "servers" not in self._order:
            self._order["servers"] = sorted(self.servers.values(), key=lambda s: s.seq)
        result: list[ServerState] = self._order["servers"]
        return result

    def edge_seq(self, *, first: bool) -> int:
        # a sequence number that sorts before (drift at the start) or after everything listed now
        seqs = [p.seq for p in self.portals.values()] + [s.seq for s in self.servers.values()]
        seqs += [p.seq for p in self.deleted.values()]
        return min(seqs, default=0) - 1 if first else max(seqs, default=0) + 1

    def listed_servers(self) -> list[ServerState]:
        """The servers ``/servers`` lists: all but those only portals show."""
        if "listed" not in self._order:
            self._order["listed"] = [s for s in self.ordered_servers() if s.id not in self.hidden]
        result: list[ServerState] = self._order["listed"]
        return result

    def count(self, endpoint: str) -> int:
        return len(self.portals if endpoint == "portals" else self.listed_servers())

    def detail_pieces(self, endpoint: str, entity_id: str) -> list[bytes] | None:
        """One record as its detail route returns it, or None where that route answers 404."""
        if endpoint == "portals":
            portal = self.portals.get(entity_id)
            return portal.pieces(self.servers) if portal is not None else None
        server = self.servers.get(entity_id)
        return server.pieces() if server is not None and entity_id not in self.hidden else None

    def page_pieces(self, endpoint: str, start: int, stop: int) -> list[bytes]:
        out: list[bytes] = []
        if endpoint == "portals":
            for portal in self.ordered_portals()[start:stop]:
                out.extend(portal.pieces(self.servers))
                out.append(b",")
        else:
            for server in self.listed_servers()[start:stop]:
                out.extend(server.pieces())
                out.append(b",")
        if out:
            out.pop()
        return out
