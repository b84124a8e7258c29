"""The simulator's explicit mutations, mixed into ``SimulatedCloudflare``.

Each runs under the simulator's lock, moves the simulated clock seven seconds, stamps
``modified_at``/``modified_by`` on what it touches and drops the account's cached pages. Records
the call does not touch keep their serialized bytes.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from inventory.simulator import catalog
from inventory.simulator.entities import AccountState, LinkState, PortalState, ServerState
from inventory.simulator.generate import (
    ADMINS,
    Shape,
    Stamps,
    iso,
    make_portal,
    make_server,
    set_status,
)
from inventory.simulator.pages import PageCache

__all__ = ["SERVER_STATUSES", "Mutations"]

SERVER_STATUSES = ("waiting", "ready", "stale", "error")


class Mutations:
    # provided by SimulatedCloudflare
    seed: int
    shape: Shape
    account_ids: list[str]
    pages: PageCache
    rng: random.Random
    _lock: threading.RLock
    _clock: datetime
    _mutations: int
    # Cloudflare re-syncing each server's capabilities this often (None: never on its own)
    resync_every: timedelta | None

    def _account(self, account_id: str) -> AccountState:
        raise NotImplementedError

    @contextmanager
    def _mutate(self, account_id: str) -> Iterator[tuple[AccountState, Stamps]]:
        with self._lock:
            acct = self._account(account_id)
            self._clock += timedelta(seconds=7)
            self._mutations += 1
            yield acct, Stamps.now(iso(self._clock), ADMINS[self._mutations % len(ADMINS)])
            acct.changed()
            self.pages.drop_account(account_id)

    @property
    def now(self) -> datetime:
        """The simulated clock: the time the last mutation was stamped with."""
        with self._lock:
            return self._clock

    def resync_servers(self, account_id: str, server_ids: Iterable[str] | None = None) -> int:
        """Cloudflare re-syncing servers and finding them as they were (all, by default).

        ``last_synced`` moves, and ``last_successful_sync`` too unless the server is in error;
        nothing else does (not ``modified_at``: nobody edited the server).
        """
        with self._lock:
            acct = self._account(account_id)
            self._clock += timedelta(seconds=1)
            when = iso(self._clock)
            ids = list(server_ids) if server_ids is not None else list(acct.servers)
            for server_id in ids:
                _resync(acct.server(server_id), when)
            acct.changed()
            self.pages.drop_account(account_id)
            return len(ids)

    def pass_time(self, duration: timedelta) -> int:
        """Move the simulated clock by ``duration``; with ``resync_every`` set, Cloudflare
        re-syncs each server on its own schedule meanwhile (each at its own phase of the
        interval, so re-syncs are spread over it). Returns how many servers were re-synced."""
        with self._lock:
            start, end = self._clock.timestamp(), (self._clock + duration).timestamp()
            self._clock += duration
            if self.resync_every is None:
                return 0
            period = self.resync_every.total_seconds()
            moved = 0
            for account_id in self.account_ids:
                acct = self._account(account_id)
                touched = False
                for server in acct.servers.values():
                    phase = (server.seq * 7919) % period
                    due = phase + math.floor((end - phase) / period) * period
                    if due > start:
                        _resync(server, iso(datetime.fromtimestamp(due, UTC)))
                        touched, moved = True, moved + 1
                if touched:
                    acct.changed()
                    self.pages.drop_account(account_id)
            return moved

    def rename_portal(self, account_id: str, portal_id: str, name: str) -> None:
        with self._mutate(account_id) as (acct, now):
            _stamp(acct.portal(portal_id), now)["name"] = name

    def set_portal_description(self, account_id: str, portal_id: str, description: str) -> None:
        with self._mutate(account_id) as (acct, now):
            _stamp(acct.portal(portal_id), now)["description"] = description

    def set_portal_fields(self, account_id: str, portal_id: str, fields: dict[str, Any]) -> None:
        """Set any fields of a portal's record, documented or not (a field the API adds)."""
        with self._mutate(account_id) as (acct, now):
            _stamp(acct.portal(portal_id), now).update(fields)

    def set_server_fields(self, account_id: str, server_id: str, fields: dict[str, Any]) -> None:
        """Set any fields of a server's record: ``auth_config_summary``, a field the API adds."""
        with self._mutate(account_id) as (acct, now):
            _stamp(acct.server(server_id), now).update(fields)

    def set_server_status(
        self, account_id: str, server_id: str, status: str, *, error: str | None = None
    ) -> None:
        if status not in SERVER_STATUSES:
            raise ValueError(f"status must be one of {SERVER_STATUSES}")
        with self._mutate(account_id) as (acct, now):
            set_status(
                _stamp(acct.server(server_id), now), status, when=now.modified_at, error=error
            )

    def set_server_description(
        self, account_id: str, server_id: str, description: str | None
    ) -> None:
        with self._mutate(account_id) as (acct, now):
            _stamp(acct.server(server_id), now)["description"] = description

    def _add_capability(
        self, account_id: str, server_id: str, item: dict[str, Any] | None, family: str
    ) -> str:
        with self._mutate(account_id) as (acct, now):
            server = acct.server(server_id)
            current = server.tools if family == "tools" else server.prompts
            taken = {i["name"] for i in current}
            if item is None:
                item = (catalog.next_tool if family == "tools" else catalog.next_prompt)(
                    server.slug, taken
                )
            elif not isinstance(item.get("name"), str) or item["name"] in taken:
                raise ValueError(f"{family[:-1]} needs a name not already on {server_id}")
            _set_capabilities(server, family, (*current, dict(item)), now)
            return str(item["name"])

    def _change_capability(
        self,
        account_id: str,
        server_id: str,
        name: str,
        family: str,
        changes: dict[str, Any] | None,
    ) -> None:
        with self._mutate(account_id) as (acct, now):
            server = acct.server(server_id)
            current = server.tools if family == "tools" else server.prompts
            if name not in {i["name"] for i in current}:
                raise KeyError(f"{server_id} has no {family[:-1]} {name!r}")
            if changes is None:
                updated = tuple(i for i in current if i["name"] != name)
            else:  # copy on write: catalog dicts are shared between servers
                updated = tuple({**i, **changes} if i["name"] == name else i for i in current)
            _set_capabilities(server, family, updated, now)

    def add_tool(self, account_id: str, server_id: str, tool: dict[str, Any] | None = None) -> str:
        return self._add_capability(account_id, server_id, tool, "tools")

    def remove_tool(self, account_id: str, server_id: str, name: str) -> None:
        self._change_capability(account_id, server_id, name, "tools", None)

    def update_tool(self, account_id: str, server_id: str, name: str, *, description: str) -> None:
        self._change_capability(account_id, server_id, name, "tools", {"description": description})

    def add_prompt(
        self, account_id: str, server_id: str, prompt: dict[str, Any] | None = None
    ) -> str:
        return self._add_capability(account_id, server_id, prompt, "prompts")

    def remove_prompt(self, account_id: str, server_id: str, name: str) -> None:
        self._change_capability(account_id, server_id, name, "prompts", None)

    def delete_portal(self, account_id: str, portal_id: str) -> None:
        with self._mutate(account_id) as (acct, _):
            acct.portal(portal_id)
            acct.deleted[portal_id] = acct.portals.pop(portal_id)

    def restore_portal(self, account_id: str, portal_id: str) -> None:
        with self._mutate(account_id) as (acct, _):
            if portal_id not in acct.deleted:
                raise KeyError(f"portal {portal_id!r} was not deleted")
            portal = acct.deleted.pop(portal_id)
            acct.portals[portal_id] = portal

    def toggle_override(
        self, account_id: str, portal_id: str, server_id: str, tool_name: str
    ) -> None:
        with self._mutate(account_id) as (acct, now):
            portal = acct.portal(portal_id)
            link = portal.link(server_id)
            if link is None or server_id not in acct.servers:
                raise KeyError(f"server {server_id!r} is not in portal {portal_id!r}")
            entry = next((e for e in link.updated_tools if e["name"] == tool_name), None)
            if entry is None:
                link.updated_tools.append({"name": tool_name, "enabled": False})
            else:
                entry["enabled"] = not entry.get("enabled", True)
            link.touch()
            _stamp(portal, now)

    def set_server_override(
        self,
        account_id: str,
        server_id: str,
        tool_name: str,
        *,
        enabled: bool,
        alias: str | None = None,
    ) -> None:
        with self._mutate(account_id) as (acct, now):
            server = acct.server(server_id)
            entry: dict[str, Any] = {"name": tool_name, "enabled": enabled}
            if alias is not None:
                entry["alias"] = alias
            others = [e for e in server.updated_tools if e["name"] != tool_name]
            server.updated_tools = [*others, entry]
            _stamp(server, now)

    def add_portal(
        self, account_id: str, *, server_ids: list[str] | None = None, at_start: bool = False
    ) -> str:
        with self._mutate(account_id) as (acct, now):
            rng = random.Random(f"{self.seed}:{acct.index}:portal:{acct.next_portal_no}")
            if server_ids is None:
                pool = sorted(acct.servers)
                server_ids = rng.sample(pool, min(self.shape.servers_per_portal, len(pool)))
            for server_id in server_ids:
                acct.server(server_id)
            seq = acct.edge_seq(first=at_start)
            portal = make_portal(rng, acct, server_ids, stamps=now, seq=seq)
            acct.portals[portal.id] = portal
            return portal.id

    def add_server(self, account_id: str, *, at_start: bool = False) -> str:
        with self._mutate(account_id) as (acct, now):
            rng = random.Random(f"{self.seed}:{acct.index}:server:{acct.next_server_no}")
            seq = acct.edge_seq(first=at_start)
            server = make_server(rng, acct, self.shape, stamps=now, synced=now.modified_at, seq=seq)
            acct.servers[server.id] = server
            return server.id

    def delete_server(self, account_id: str, server_id: str) -> None:
        with self._mutate(account_id) as (acct, _):
            acct.server(server_id)
            del acct.servers[server_id]
            acct.hidden.discard(server_id)
            for portal in [*acct.portals.values(), *acct.deleted.values()]:
                portal.links = [li for li in portal.links if li.server_id != server_id]

    def hide_server(self, account_id: str, server_id: str, *, hidden: bool = True) -> None:
        """Make a server one that only portals show (``/servers`` no longer lists it, and its
        detail route answers 404 as Cloudflare's would for an id it does not know there)."""
        with self._mutate(account_id) as (acct, _):
            acct.server(server_id)
            if hidden:
                acct.hidden.add(server_id)
            else:
                acct.hidden.discard(server_id)

    def add_portal_only_server(self, account_id: str, portal_id: str) -> str:
        """A new server that exists only inside ``portal_id``."""
        server_id = self.add_server(account_id)
        self.hide_server(account_id, server_id)
        self.attach_server(account_id, portal_id, server_id)
        return server_id

    def attach_server(self, account_id: str, portal_id: str, server_id: str) -> None:
        with self._mutate(account_id) as (acct, now):
            portal = acct.portal(portal_id)
            acct.server(server_id)
            if portal.link(server_id) is not None:
                raise ValueError(f"server {server_id!r} is already in portal {portal_id!r}")
            portal.links.append(LinkState(server_id))
            _stamp(portal, now)

    def set_default_disabled(
        self, account_id: str, portal_id: str, server_id: str, *, disabled: bool
    ) -> None:
        """Attach the server's tools disabled (or enabled) by default in this portal."""
        with self._mutate(account_id) as (acct, now):
            portal = acct.portal(portal_id)
            link = portal.link(server_id)
            if link is None:
                raise KeyError(f"server {server_id!r} is not in portal {portal_id!r}")
            link.default_disabled = disabled
            link.touch()
            _stamp(portal, now)

    def detach_server(self, account_id: str, portal_id: str, server_id: str) -> None:
        with self._mutate(account_id) as (acct, now):
            portal = acct.portal(portal_id)
            if portal.link(server_id) is None:
                raise KeyError(f"server {server_id!r} is not in portal {portal_id!r}")
            portal.links = [li for li in portal.links if li.server_id != server_id]
            _stamp(portal, now)

    def shuffle(self, account_id: str) -> None:
        """List the same content in another order: portals, servers, attachments, tools, prompts.

        Nothing is stamped as modified: a real API may reorder a listing at any time.
        """
        with self._lock:
            acct = self._account(account_id)
            rng = random.Random(self.seed * 7919 + acct.version)
            seqs = [p.seq for p in acct.portals.values()] + [s.seq for s in acct.servers.values()]
            rng.shuffle(seqs)
            records: list[PortalState | ServerState] = [*acct.portals.values()]
            records += acct.servers.values()
            for record, seq in zip(records, seqs, strict=True):
                record.seq = seq
            for portal in acct.portals.values():
                rng.shuffle(portal.links)
                portal.touch()
            for server in acct.servers.values():
                server.tools, server.tools_json = tuple(reversed(server.tools)), None
                server.prompts, server.prompts_json = tuple(reversed(server.prompts)), None
                server.touch()
            acct.changed()
            self.pages.drop_account(account_id)

    def revoke(self, account_id: str) -> None:
        with self._lock:
            self._account(account_id).revoked = True

    def unrevoke(self, account_id: str) -> None:
        with self._lock:
            self._account(account_id).revoked = False


def _resync(server: ServerState, when: str) -> None:
    server.fields["last_synced"] = when
    if server.fields.get("status") != "error":
        server.fields["last_successful_sync"] = when
    server.touch()


def _stamp(record: PortalState | ServerState, now: Stamps) -> dict[str, Any]:
    record.fields["modified_at"] = now.modified_at
    record.fields["modified_by"] = now.modified_by
    record.touch()
    return record.fields


def _set_capabilities(
    server: ServerState, family: str, items: tuple[dict[str, Any], ...], now: Stamps
) -> None:
    # a changed capability list means the server was just synced
    if family == "tools":
        server.set_tools(items)
    else:
        server.set_prompts(items)
    set_status(_stamp(server, now), "ready", when=now.modified_at)
